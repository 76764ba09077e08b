// The part of the WebAssembly JS API that wpipe uses. @types/node 20 does not declare it (it lives in
// TypeScript's DOM lib, which would bring browser globals into a Node library).
declare namespace WebAssembly {
  type ImportValue = ((...args: never[]) => unknown) | Memory | number;
  type Imports = Record<string, Record<string, ImportValue>>;

  class Module {
    constructor(bytes: ArrayBufferView | ArrayBuffer);
  }

  class Instance {
    constructor(module: Module, imports?: Imports);
    readonly exports: Record<string, unknown>;
  }

  class Memory {
    constructor(descriptor: { initial: number; maximum?: number; shared?: boolean });
    readonly buffer: ArrayBuffer;
    grow(delta: number): number;
  }

  function validate(bytes: ArrayBufferView | ArrayBuffer): boolean;
}
