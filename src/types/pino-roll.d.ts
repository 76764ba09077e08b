// Types for pino-roll 4 (it ships none): the options src/observe/logger.ts uses.
declare module 'pino-roll' {
  interface PinoRollOptions {
    file: string | (() => string);
    size?: string | number;
    frequency?: 'daily' | 'hourly' | number;
    extension?: string;
    symlink?: boolean;
    limit?: { count?: number; removeOtherLogFiles?: boolean };
    dateFormat?: string;
    mkdir?: boolean;
  }
  /** Opens the first file and returns its SonicBoom stream. */
  export default function roll(options: PinoRollOptions): Promise<NodeJS.WritableStream>;
}
