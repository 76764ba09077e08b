/**
 * Lexer and parser of the expression language: Python expression syntax, restricted to the safe
 * subset of docs/expression-semantics.md. Every node carries the source offset of its operator or
 * first token, for error carets. Anything outside the subset is a syntax error at parse time.
 */
import { BinOp, CmpOp, FN_NAMES, Limits, METHOD_NAMES } from './bytecode.js';
import { ExpressionError } from '../errors.js';
import { PyFloat } from '../vm/values.js';

export type Node =
  | { type: 'const'; value: unknown; pos: number }
  | { type: 'name'; id: string; pos: number }
  | { type: 'attr'; obj: Node; name: string; pos: number }
  | { type: 'index'; obj: Node; index: Node; pos: number }
  | { type: 'slice'; obj: Node; lower: Node | null; upper: Node | null; step: Node | null; pos: number }
  | { type: 'list' | 'tuple'; items: Node[]; pos: number }
  | { type: 'unary'; op: 'neg' | 'pos' | 'not'; operand: Node; pos: number }
  | { type: 'binop'; op: number; left: Node; right: Node; pos: number }
  | { type: 'compare'; ops: number[]; operands: Node[]; positions: number[]; pos: number }
  | { type: 'boolop'; op: 'and' | 'or'; values: Node[]; pos: number }
  | { type: 'ifexp'; test: Node; body: Node; orelse: Node; pos: number }
  | { type: 'call'; fn: number; args: Node[]; pos: number }
  | { type: 'method'; method: number; receiver: Node; args: Node[]; pos: number };

type TokenType = 'num' | 'str' | 'name' | 'op' | 'eof';
interface Token {
  type: TokenType;
  text: string;
  value?: unknown;
  pos: number;
}

const KEYWORDS = new Set(['and', 'or', 'not', 'in', 'is', 'if', 'else', 'True', 'False', 'None']);
const UNSUPPORTED_KEYWORDS = new Set([
  'lambda', 'for', 'while', 'def', 'class', 'import', 'from', 'return', 'yield', 'await', 'async',
  'with', 'as', 'global', 'nonlocal', 'del', 'pass', 'raise', 'try', 'except', 'finally', 'assert',
  'break', 'continue', 'elif',
]);
/** Names never readable as context keys or attributes: JS and Python object internals. */
const FORBIDDEN_NAMES = new Set(['constructor', 'prototype', '__proto__']);

const OPERATORS = [
  '**', '//', '==', '!=', '<=', '>=', ':=', '->', '<<', '>>',
  '+', '-', '*', '/', '%', '<', '>', '(', ')', '[', ']', ',', '.', ':',
  '{', '}', '&', '|', '^', '~', '@', '=', ';', '!',
];

function syntaxError(text: string, pos: number, reason: string): ExpressionError {
  return new ExpressionError('syntax', 'SyntaxError', reason, text, pos);
}

const ID_START = /[\p{L}\p{Nl}_]/u;
const ID_CONTINUE = /[\p{L}\p{Nl}\p{Mn}\p{Mc}\p{Nd}\p{Pc}_]/u;

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f') {
      i++;
      continue;
    }
    if (c === '\\' && (text[i + 1] === '\n' || (text[i + 1] === '\r' && text[i + 2] === '\n'))) {
      i += text[i + 1] === '\n' ? 2 : 3;
      continue;
    }
    if (c === '#') throw syntaxError(text, i, 'comments are not allowed in expressions');
    const start = i;
    // Numbers
    if ((c >= '0' && c <= '9') || (c === '.' && text[i + 1]! >= '0' && text[i + 1]! <= '9')) {
      const m = /^(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|(?:\d(?:_?\d)*)?\.?(?:\d(?:_?\d)*)?(?:[eE][+-]?\d(?:_?\d)*)?)/.exec(text.slice(i));
      const raw = m![0];
      i += raw.length;
      if (i < n && ID_CONTINUE.test(text[i]!)) {
        if (text[i] === 'j' || text[i] === 'J') throw syntaxError(text, start, 'complex numbers are not supported');
        throw syntaxError(text, start, 'invalid number literal');
      }
      tokens.push({ type: 'num', text: raw, value: numberValue(text, raw, start), pos: start });
      continue;
    }
    // Names, keywords, string prefixes
    if (ID_START.test(c) || c.charCodeAt(0) >= 0xd800) {
      let j = i + 1;
      while (j < n) {
        const cp = text.codePointAt(j)!;
        const ch = String.fromCodePoint(cp);
        if (!ID_CONTINUE.test(ch)) break;
        j += ch.length;
      }
      if (j === i + 1 && !ID_START.test(c)) {
        const cp = text.codePointAt(i)!;
        const ch = String.fromCodePoint(cp);
        if (!ID_START.test(ch)) throw syntaxError(text, i, `invalid character '${ch}'`);
        j = i + ch.length;
        while (j < n) {
          const ch2 = String.fromCodePoint(text.codePointAt(j)!);
          if (!ID_CONTINUE.test(ch2)) break;
          j += ch2.length;
        }
      }
      const word = text.slice(i, j);
      if ((text[j] === "'" || text[j] === '"') && /^(?:[rRuUfFbB]|[bB][rR]|[rR][bB]|[fF][rR]|[rR][fF])$/.test(word)) {
        const prefix = word.toLowerCase();
        if (prefix.includes('f')) throw syntaxError(text, start, 'f-strings are not supported');
        if (prefix.includes('b')) throw syntaxError(text, start, 'bytes literals are not supported');
        const [value, end] = readString(text, j, prefix.includes('r'));
        tokens.push({ type: 'str', text: text.slice(start, end), value, pos: start });
        i = end;
        continue;
      }
      tokens.push({ type: 'name', text: word, pos: start });
      i = j;
      continue;
    }
    if (c === "'" || c === '"') {
      const [value, end] = readString(text, i, false);
      tokens.push({ type: 'str', text: text.slice(start, end), value, pos: start });
      i = end;
      continue;
    }
    const op = OPERATORS.find((o) => text.startsWith(o, i));
    if (!op) throw syntaxError(text, i, `invalid character '${String.fromCodePoint(text.codePointAt(i)!)}'`);
    tokens.push({ type: 'op', text: op, pos: start });
    i += op.length;
  }
  tokens.push({ type: 'eof', text: '', pos: n });
  return tokens;
}

function numberValue(text: string, raw: string, pos: number): unknown {
  const clean = raw.replace(/_/g, '');
  if (/^0[xXoObB]/.test(clean)) {
    const radix = /^0[xX]/.test(clean) ? 16 : /^0[oO]/.test(clean) ? 8 : 2;
    const digits = clean.slice(2);
    const v = parseInt(digits, radix);
    if (!Number.isSafeInteger(v)) throw syntaxError(text, pos, `integer literal out of range (ints are exact up to ±${Limits.MAX_INT})`);
    return v;
  }
  if (/^\d+$/.test(clean)) {
    if (clean.length > 1 && clean[0] === '0' && /[1-9]/.test(clean)) {
      throw syntaxError(text, pos, 'leading zeros in decimal integer literals are not permitted');
    }
    const v = Number(clean);
    if (!Number.isSafeInteger(v)) throw syntaxError(text, pos, `integer literal out of range (ints are exact up to ±${Limits.MAX_INT})`);
    return v;
  }
  if (clean === '.' || clean === '') throw syntaxError(text, pos, 'invalid number literal');
  const v = Number(clean);
  if (Number.isNaN(v)) throw syntaxError(text, pos, 'invalid number literal');
  return Number.isInteger(v) ? new PyFloat(v) : v;
}

function readString(text: string, start: number, raw: boolean): [string, number] {
  const q = text[start]!;
  const triple = text.startsWith(q.repeat(3), start);
  const delim = triple ? q.repeat(3) : q;
  let i = start + delim.length;
  let out = '';
  while (true) {
    if (i >= text.length) throw syntaxError(text, start, 'unterminated string literal');
    if (text.startsWith(delim, i)) return [out, i + delim.length];
    const c = text[i]!;
    if (!triple && (c === '\n' || c === '\r')) throw syntaxError(text, start, 'unterminated string literal');
    if (c !== '\\') {
      out += c;
      i++;
      continue;
    }
    const e = text[i + 1];
    if (e === undefined) throw syntaxError(text, start, 'unterminated string literal');
    if (raw) {
      out += c + e;
      i += 2;
      continue;
    }
    i += 2;
    switch (e) {
      case '\n': break;
      case '\\': out += '\\'; break;
      case "'": out += "'"; break;
      case '"': out += '"'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'a': out += '\x07'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'v': out += '\v'; break;
      case 'x': case 'u': case 'U': {
        const len = e === 'x' ? 2 : e === 'u' ? 4 : 8;
        const hex = text.slice(i, i + len);
        if (hex.length !== len || !/^[0-9a-fA-F]+$/.test(hex)) throw syntaxError(text, i - 2, `truncated \\${e} escape`);
        const cp = parseInt(hex, 16);
        if (cp > 0x10ffff) throw syntaxError(text, i - 2, 'illegal Unicode character');
        out += String.fromCodePoint(cp);
        i += len;
        break;
      }
      case 'N': throw syntaxError(text, i - 2, '\\N{...} escapes are not supported');
      default:
        if (e >= '0' && e <= '7') {
          let j = i - 1;
          let oct = '';
          while (j < text.length && oct.length < 3 && text[j]! >= '0' && text[j]! <= '7') oct += text[j++];
          out += String.fromCharCode(parseInt(oct, 8));
          i = j;
        } else {
          out += `\\${e}`; // Python keeps unknown escapes as they are
        }
    }
  }
}

const COMPARE_OPS: Record<string, number> = {
  '<': CmpOp.LT, '<=': CmpOp.LE, '>': CmpOp.GT, '>=': CmpOp.GE, '==': CmpOp.EQ, '!=': CmpOp.NE,
};

/** Parses an expression text into an AST (throws ExpressionError with code WPIPE_ERR_EXPRESSION_SYNTAX). */
export function parse(text: string): Node {
  if (typeof text !== 'string') {
    throw new ExpressionError('syntax', 'SyntaxError', `an expression must be a string, got ${typeof text}`, String(text), 0);
  }
  if (text.length > Limits.MAX_TEXT_LENGTH) {
    throw syntaxError(text.slice(0, 200), 0, `expression too long (${text.length} characters; limit ${Limits.MAX_TEXT_LENGTH})`);
  }
  const tokens = tokenize(text);
  let k = 0;
  let depth = 0;
  const peek = (): Token => tokens[k]!;
  const next = (): Token => tokens[k++]!;
  const isOp = (t: Token, o: string): boolean => t.type === 'op' && t.text === o;
  const isWord = (t: Token, w: string): boolean => t.type === 'name' && t.text === w;
  const fail = (t: Token, reason: string): never => {
    throw syntaxError(text, t.pos, reason);
  };
  const expect = (o: string): Token => {
    const t = next();
    if (!isOp(t, o)) fail(t, t.type === 'eof' ? `expected '${o}' before the end` : `expected '${o}'`);
    return t;
  };
  const enter = (t: Token): void => {
    if (++depth > Limits.MAX_DEPTH) fail(t, `expression nested too deeply (limit ${Limits.MAX_DEPTH})`);
  };

  function expression(): Node {
    const t = peek();
    enter(t);
    if (isWord(t, 'lambda')) fail(t, "'lambda' is not supported");
    const body = orTest();
    let result = body;
    if (isWord(peek(), 'if')) {
      const ifTok = next();
      const test = orTest();
      if (!isWord(peek(), 'else')) fail(peek(), "expected 'else' in conditional expression");
      next();
      const orelse = expression();
      result = { type: 'ifexp', test, body, orelse, pos: ifTok.pos };
    }
    if (isOp(peek(), ':=')) fail(peek(), 'assignment expressions (:=) are not supported');
    depth--;
    return result;
  }

  function orTest(): Node {
    const first = andTest();
    if (!isWord(peek(), 'or')) return first;
    const values = [first];
    const pos = peek().pos;
    while (isWord(peek(), 'or')) {
      next();
      values.push(andTest());
    }
    return { type: 'boolop', op: 'or', values, pos };
  }

  function andTest(): Node {
    const first = notTest();
    if (!isWord(peek(), 'and')) return first;
    const values = [first];
    const pos = peek().pos;
    while (isWord(peek(), 'and')) {
      next();
      values.push(notTest());
    }
    return { type: 'boolop', op: 'and', values, pos };
  }

  function notTest(): Node {
    const t = peek();
    if (isWord(t, 'not')) {
      next();
      enter(t);
      const operand = notTest();
      depth--;
      return { type: 'unary', op: 'not', operand, pos: t.pos };
    }
    return comparison();
  }

  function comparison(): Node {
    const first = arith();
    const ops: number[] = [];
    const operands = [first];
    const positions: number[] = [];
    while (true) {
      const t = peek();
      let op: number | undefined;
      if (t.type === 'op' && t.text in COMPARE_OPS) {
        next();
        op = COMPARE_OPS[t.text];
      } else if (isWord(t, 'in')) {
        next();
        op = CmpOp.IN;
      } else if (isWord(t, 'not') && isWord(tokens[k + 1]!, 'in')) {
        k += 2;
        op = CmpOp.NOT_IN;
      } else if (isWord(t, 'is')) {
        next();
        op = CmpOp.IS;
        if (isWord(peek(), 'not')) {
          next();
          op = CmpOp.IS_NOT;
        }
        const r = peek();
        if (!(isWord(r, 'None') || isWord(r, 'True') || isWord(r, 'False'))) {
          fail(r, "'is' and 'is not' are only supported with None, True or False");
        }
      } else if (isOp(t, '<<') || isOp(t, '>>') || isOp(t, '&') || isOp(t, '|') || isOp(t, '^')) {
        fail(t, `the bitwise operator '${t.text}' is not supported`);
      } else {
        break;
      }
      ops.push(op!);
      positions.push(t.pos);
      operands.push(arith());
    }
    if (ops.length === 0) return first;
    return { type: 'compare', ops, operands, positions, pos: positions[0]! };
  }

  function arith(): Node {
    let left = term();
    while (isOp(peek(), '+') || isOp(peek(), '-')) {
      const t = next();
      const right = term();
      left = { type: 'binop', op: t.text === '+' ? BinOp.ADD : BinOp.SUB, left, right, pos: t.pos };
    }
    return left;
  }

  function term(): Node {
    let left = factor();
    while (true) {
      const t = peek();
      let op: number;
      if (isOp(t, '*')) op = BinOp.MUL;
      else if (isOp(t, '/')) op = BinOp.TRUEDIV;
      else if (isOp(t, '//')) op = BinOp.FLOORDIV;
      else if (isOp(t, '%')) op = BinOp.MOD;
      else if (isOp(t, '@')) return fail(t, "the operator '@' is not supported");
      else break;
      next();
      const right = factor();
      left = { type: 'binop', op, left, right, pos: t.pos };
    }
    return left;
  }

  function factor(): Node {
    const t = peek();
    if (isOp(t, '-') || isOp(t, '+')) {
      next();
      enter(t);
      const operand = factor();
      depth--;
      return { type: 'unary', op: t.text === '-' ? 'neg' : 'pos', operand, pos: t.pos };
    }
    if (isOp(t, '~')) fail(t, "the operator '~' is not supported");
    return power();
  }

  function power(): Node {
    const base = primary();
    if (isOp(peek(), '**')) {
      const t = next();
      enter(t);
      const exponent = factor();
      depth--;
      return { type: 'binop', op: BinOp.POW, left: base, right: exponent, pos: t.pos };
    }
    return base;
  }

  function checkName(t: Token, name: string, what: string): void {
    if (name.startsWith('__') || FORBIDDEN_NAMES.has(name)) fail(t, `access to '${name}' is not allowed`);
    if (UNSUPPORTED_KEYWORDS.has(name)) fail(t, `'${name}' is not supported`);
    if (KEYWORDS.has(name)) fail(t, `invalid syntax: '${name}' cannot be used as ${what}`);
  }

  function callArgs(): Node[] {
    const args: Node[] = [];
    while (!isOp(peek(), ')')) {
      const t = peek();
      if (isOp(t, '*') || isOp(t, '**')) fail(t, 'argument unpacking is not supported');
      if (t.type === 'name' && isOp(tokens[k + 1]!, '=')) fail(t, 'keyword arguments are not supported');
      args.push(expression());
      if (isWord(peek(), 'for')) fail(peek(), 'comprehensions are not supported');
      if (!isOp(peek(), ',')) break;
      next();
    }
    expect(')');
    return args;
  }

  function primary(): Node {
    let node = atom();
    let trailers = 0;
    while (true) {
      const t = peek();
      if (isOp(t, '.')) {
        next();
        const nameTok = next();
        if (nameTok.type !== 'name') fail(nameTok, 'expected an attribute name after "."');
        const name = nameTok.text;
        checkName(nameTok, name, 'an attribute name');
        if (isOp(peek(), '(')) {
          const method = (METHOD_NAMES as readonly string[]).indexOf(name);
          if (method < 0) fail(nameTok, `calling '${name}' is not allowed (methods: ${METHOD_NAMES.join(', ')})`);
          next();
          const args = callArgs();
          node = { type: 'method', method, receiver: node, args, pos: nameTok.pos };
        } else {
          node = { type: 'attr', obj: node, name, pos: nameTok.pos };
        }
      } else if (isOp(t, '[')) {
        next();
        node = subscript(node, t);
      } else if (isOp(t, '(')) {
        if (node.type === 'name' && trailers === 0) {
          const fn = (FN_NAMES as readonly string[]).indexOf(node.id);
          if (fn < 0) fail(t, `calling '${node.id}' is not allowed (functions: ${FN_NAMES.join(', ')})`);
          next();
          node = { type: 'call', fn, args: callArgs(), pos: node.pos };
        } else {
          fail(t, 'only the built-in functions and string methods can be called');
        }
      } else {
        break;
      }
      if (++trailers > Limits.MAX_DEPTH) fail(t, `expression nested too deeply (limit ${Limits.MAX_DEPTH})`);
    }
    return node;
  }

  function subscript(obj: Node, open: Token): Node {
    const part = (): Node | null => (isOp(peek(), ':') || isOp(peek(), ']') ? null : expression());
    const lower = part();
    if (isOp(peek(), ']')) {
      const close = next();
      if (!lower) fail(close, 'empty subscript');
      return { type: 'index', obj, index: lower!, pos: open.pos };
    }
    if (isOp(peek(), ',')) fail(peek(), 'tuple subscripts are not supported');
    expect(':');
    const upper = part();
    let step: Node | null = null;
    if (isOp(peek(), ':')) {
      next();
      step = part();
    }
    expect(']');
    return { type: 'slice', obj, lower, upper, step, pos: open.pos };
  }

  function atom(): Node {
    const t = next();
    switch (t.type) {
      case 'num':
        return { type: 'const', value: t.value, pos: t.pos };
      case 'str': {
        let value = t.value as string;
        while (peek().type === 'str') value += next().value as string;
        if (value.length > Limits.MAX_VALUE_SIZE) fail(t, 'string literal too long');
        return { type: 'const', value, pos: t.pos };
      }
      case 'name': {
        if (t.text === 'True') return { type: 'const', value: true, pos: t.pos };
        if (t.text === 'False') return { type: 'const', value: false, pos: t.pos };
        if (t.text === 'None') return { type: 'const', value: null, pos: t.pos };
        checkName(t, t.text, 'a name');
        return { type: 'name', id: t.text, pos: t.pos };
      }
      case 'op': {
        if (t.text === '(') {
          enter(t);
          if (isOp(peek(), ')')) {
            next();
            depth--;
            return { type: 'tuple', items: [], pos: t.pos };
          }
          const first = expression();
          if (isWord(peek(), 'for')) fail(peek(), 'comprehensions are not supported');
          if (isOp(peek(), ')')) {
            next();
            depth--;
            return first;
          }
          const items = [first];
          while (isOp(peek(), ',')) {
            next();
            if (isOp(peek(), ')')) break;
            items.push(expression());
          }
          expect(')');
          depth--;
          return { type: 'tuple', items, pos: t.pos };
        }
        if (t.text === '[') {
          enter(t);
          const items: Node[] = [];
          while (!isOp(peek(), ']')) {
            if (isOp(peek(), '*')) fail(peek(), 'unpacking is not supported');
            items.push(expression());
            if (isWord(peek(), 'for')) fail(peek(), 'comprehensions are not supported');
            if (!isOp(peek(), ',')) break;
            next();
          }
          expect(']');
          depth--;
          return { type: 'list', items, pos: t.pos };
        }
        if (t.text === '{') fail(t, 'dict and set literals are not supported');
        if (t.text === '*') fail(t, 'unpacking is not supported');
        return fail(t, `invalid syntax at '${t.text}'`);
      }
      case 'eof':
        return fail(t, text.trim() === '' ? 'empty expression' : 'unexpected end of expression');
      default:
        return fail(t, 'invalid syntax');
    }
  }

  const tree = expression();
  checkTreeDepth(tree, text);
  const rest = peek();
  if (rest.type !== 'eof') {
    if (isOp(rest, ',')) fail(rest, 'a bare tuple needs parentheses');
    if (isOp(rest, '=')) fail(rest, "assignment is not supported (did you mean '=='?)");
    fail(rest, `invalid syntax at '${rest.text}'`);
  }
  return tree;
}

/** Deepest AST allowed (long operator chains nest left-deep, so they count too). */
const MAX_TREE_DEPTH = 400;

function children(node: Node): Node[] {
  switch (node.type) {
    case 'attr': return [node.obj];
    case 'index': return [node.obj, node.index];
    case 'slice': return [node.obj, node.lower, node.upper, node.step].filter((x): x is Node => x !== null);
    case 'list': case 'tuple': return node.items;
    case 'unary': return [node.operand];
    case 'binop': return [node.left, node.right];
    case 'compare': return node.operands;
    case 'boolop': return node.values;
    case 'ifexp': return [node.test, node.body, node.orelse];
    case 'call': return node.args;
    case 'method': return [node.receiver, ...node.args];
    default: return [];
  }
}

/** Iterative, so a hostile tree cannot overflow the stack here; later passes recurse safely. */
function checkTreeDepth(root: Node, text: string): void {
  const stack: Array<[Node, number]> = [[root, 1]];
  while (stack.length > 0) {
    const [node, d] = stack.pop()!;
    if (d > MAX_TREE_DEPTH) throw syntaxError(text, node.pos, `expression nested too deeply (limit ${MAX_TREE_DEPTH} levels)`);
    for (const child of children(node)) stack.push([child, d + 1]);
  }
}
