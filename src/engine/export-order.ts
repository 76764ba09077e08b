/**
 * The names an ES module exports, in the order its source text declares them.
 *
 * Why: `Object.keys()` of a module namespace object is sorted by name (ECMA-262 §10.4.6: a module
 * namespace's [[OwnPropertyKeys]] is its sorted export list; checked on Node 20), so it cannot tell
 * AutoRegister in which order a module declares its steps. This scanner reads the source instead: a
 * small tokenizer that skips comments, strings, template literals and regular expressions, and looks
 * at `export` only at the top level (not inside `namespace N { … }` or a function).
 *
 * It recognises `export [async] function[*] NAME`, `export const|let|var NAME`, `export class NAME`,
 * `export enum NAME`, `export default …`, `export { a, b as c, d as default, "e-f" as g }` (with or
 * without `from '…'`), `export * as ns from '…'`; TypeScript `export type`/`interface`/`declare`
 * forms export nothing at run time and are skipped. What it does not see (a second declarator in
 * `export const a = 1, b = 2`, destructuring `export const { a } = o`, the names of `export * from`,
 * CommonJS `module.exports`) is left to the caller's fallback.
 *
 * @example
 * ```ts
 * scanExportNames("export const b = 1;\nexport function a() {}\nexport { c as d };"); // ['b', 'a', 'd']
 * ```
 */

type Token = { readonly t: 'id' | 'punct' | 'str'; readonly v: string };

/** Keywords after which a `/` starts a regular expression, not a division. */
const REGEX_AFTER = new Set([
  'return', 'typeof', 'instanceof', 'in', 'of', 'new', 'delete', 'void', 'throw', 'case', 'do', 'else', 'yield', 'await',
]);

const ID_START = /[A-Za-z_$\u0080-\uffff]/;
const ID_PART = /[A-Za-z0-9_$\u0080-\uffff]/;

/**
 * Export names of an ES module's source, in declaration order (duplicates removed).
 *
 * @example
 * ```ts
 * scanExportNames('export async function load() {}\nexport default step()(save);'); // ['load', 'default']
 * ```
 */
export function scanExportNames(source: string): string[] {
  const top = topLevelTokens(source);
  const names: string[] = [];
  const add = (n: string | undefined): void => {
    if (n !== undefined && !names.includes(n)) names.push(n);
  };
  for (let i = 0; i < top.length; i++) {
    const tok = top[i]!;
    if (tok.t !== 'id' || tok.v !== 'export') continue;
    const prev = top[i - 1];
    if (prev !== undefined && prev.t === 'punct' && (prev.v === '.' || prev.v === '?.')) continue; // obj.export
    let j = i + 1;
    let next: Token | undefined = top[j];
    if (next === undefined) break;
    if (next.t === 'id' && next.v === 'default') { add('default'); continue; }
    if (next.t === 'punct' && next.v === '{') {
      // export { a, b as c, type T, "x" as y } [from '…']
      j++;
      while (j < top.length && !(top[j]!.t === 'punct' && top[j]!.v === '}')) {
        let item = top[j]!;
        const after = top[j + 1];
        if (item.t === 'id' && item.v === 'type' && after !== undefined && (after.t === 'id' || after.t === 'str') && after.v !== 'as') {
          // `type T` (a type-only export: nothing at run time): skip to the next comma.
          while (j < top.length && !(top[j]!.t === 'punct' && (top[j]!.v === ',' || top[j]!.v === '}'))) j++;
          if (top[j]?.v === ',') j++;
          continue;
        }
        let exported: string | undefined = item.t === 'punct' ? undefined : item.v;
        if (top[j + 1]?.t === 'id' && top[j + 1]!.v === 'as' && top[j + 2] !== undefined && top[j + 2]!.t !== 'punct') {
          item = top[j + 2]!;
          exported = item.v;
          j += 3;
        } else {
          j += 1;
        }
        add(exported);
        if (top[j]?.t === 'punct' && top[j]!.v === ',') j++;
      }
      i = j;
      continue;
    }
    if (next.t === 'punct' && next.v === '*') {
      // export * as ns from '…' names one export; export * from '…' names none we can see.
      if (top[j + 1]?.v === 'as' && top[j + 2] !== undefined && top[j + 2]!.t !== 'punct') add(top[j + 2]!.v);
      continue;
    }
    // Modifiers of a declaration.
    while (next !== undefined && next.t === 'id' && (next.v === 'declare' || next.v === 'abstract' || next.v === 'async')) {
      if (next.v === 'declare') { next = undefined; break; } // a TypeScript declaration exports nothing at run time
      next = top[++j];
    }
    if (next === undefined || next.t !== 'id') continue;
    if (next.v === 'function') {
      j++;
      if (top[j]?.t === 'punct' && top[j]!.v === '*') j++;
      if (top[j]?.t === 'id') add(top[j]!.v);
    } else if (next.v === 'class' || next.v === 'enum') {
      if (top[j + 1]?.t === 'id') add(top[j + 1]!.v);
    } else if (next.v === 'const' || next.v === 'let' || next.v === 'var') {
      // `export const enum E` is a TypeScript compile-time enum: nothing at run time.
      if (top[j + 1]?.t === 'id' && top[j + 1]!.v !== 'enum') add(top[j + 1]!.v);
    }
  }
  return names;
}

/**
 * The tokens of `source` that sit at brace depth 0 (identifiers, punctuation, string literals), with
 * comments, template literals and regular expressions skipped. The braces of a top-level
 * `export { … }` list do not count as depth, so the list stays visible.
 */
function topLevelTokens(src: string): Token[] {
  const out: Token[] = [];
  // What each open brace is: a block or object ('{'), a template substitution ('${'), or the
  // list of a top-level `export { … }` ('list', which does not add depth).
  const stack: Array<'{' | '${' | 'list'> = [];
  let depth = 0;
  let prev: Token | undefined; // last significant token at any depth (for the regex decision)
  let i = src.startsWith('#!') ? src.indexOf('\n') : 0;
  if (i < 0) return out;
  const n = src.length;
  const emit = (tok: Token, at: number): void => {
    prev = tok;
    if (at === 0) out.push(tok);
  };
  const skipTemplate = (): void => {
    // i is just past a backquote or a closing '}' of a substitution.
    while (i < n) {
      const c = src[i]!;
      if (c === '\\') { i += 2; continue; }
      if (c === '`') { i++; prev = { t: 'str', v: '' }; return; }
      if (c === '$' && src[i + 1] === '{') { i += 2; stack.push('${'); depth++; prev = { t: 'punct', v: '${' }; return; }
      i++;
    }
  };
  while (i < n) {
    const c = src[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v' || c === '\u00a0' || c === '\ufeff') { i++; continue; }
    if (c === '/' && src[i + 1] === '/') {
      const end = src.indexOf('\n', i);
      i = end < 0 ? n : end;
      continue;
    }
    if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      i = end < 0 ? n : end + 2;
      continue;
    }
    if (c === '"' || c === "'") {
      let j = i + 1;
      let value = '';
      while (j < n && src[j] !== c && src[j] !== '\n') {
        if (src[j] === '\\') { value += src[j + 1] ?? ''; j += 2; continue; }
        value += src[j];
        j++;
      }
      i = j + 1;
      emit({ t: 'str', v: value }, depth);
      continue;
    }
    if (c === '`') {
      i++;
      skipTemplate();
      continue;
    }
    if (ID_START.test(c)) {
      let j = i + 1;
      while (j < n && ID_PART.test(src[j]!)) j++;
      emit({ t: 'id', v: src.slice(i, j) }, depth);
      i = j;
      continue;
    }
    if (c >= '0' && c <= '9') {
      let j = i + 1;
      while (j < n && /[0-9A-Za-z_.]/.test(src[j]!)) j++;
      emit({ t: 'id', v: '0' }, depth); // a number: only matters as an operand (a '/' after it divides)
      i = j;
      continue;
    }
    if (c === '/') {
      const p = prev;
      const startsRegex = p === undefined ||
        (p.t === 'punct' && p.v !== ')' && p.v !== ']' && p.v !== '}') ||
        (p.t === 'id' && REGEX_AFTER.has(p.v));
      if (startsRegex) {
        let j = i + 1;
        let inClass = false;
        while (j < n && src[j] !== '\n') {
          const d = src[j]!;
          if (d === '\\') { j += 2; continue; }
          if (d === '[') inClass = true;
          else if (d === ']') inClass = false;
          else if (d === '/' && !inClass) break;
          j++;
        }
        j++;
        while (j < n && ID_PART.test(src[j]!)) j++; // flags
        i = j;
        prev = { t: 'str', v: '' };
        continue;
      }
    }
    if (c === '{') {
      const list = depth === 0 && prev !== undefined && prev.t === 'id' && prev.v === 'export';
      emit({ t: 'punct', v: '{' }, depth);
      stack.push(list ? 'list' : '{');
      if (!list) depth++;
      i++;
      continue;
    }
    if (c === '}') {
      const open = stack.pop();
      if (open !== undefined && open !== 'list') depth--;
      i++;
      if (open === '${') { skipTemplate(); continue; }
      emit({ t: 'punct', v: '}' }, depth);
      continue;
    }
    if (c === '?' && src[i + 1] === '.') {
      emit({ t: 'punct', v: '?.' }, depth);
      i += 2;
      continue;
    }
    emit({ t: 'punct', v: c }, depth);
    i++;
  }
  return out;
}
