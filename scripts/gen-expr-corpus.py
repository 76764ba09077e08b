#!/usr/bin/env python3
"""Generates test/fixtures/expr-corpus.json: the differential corpus of the expression language.

Every expected result comes from CPython itself (docs/expression-semantics.md: "Python" means CPython
3.11). Each expression is evaluated with ``eval(expr, {'__builtins__': <the fixed function set>}, ctx)``
and the value (or the exception class name) is recorded. Run it from the repository root:

    python3 scripts/gen-expr-corpus.py            # writes test/fixtures/expr-corpus.json
    python3 scripts/gen-expr-corpus.py --check    # exits 1 if the committed file is stale

The output is deterministic (no randomness, no timestamps, sorted nothing that Python orders).

How the documented differences from Python are handled (docs/expression-semantics.md):
- ints beyond +-(2**53 - 1): the expression is evaluated through an AST rewrite in which every binary
  operator and every call checks its result (and `**` and `*` check *before* computing, so
  `10 ** 10 ** 10` is never computed). A result out of range makes the expected outcome
  OverflowError, marked ``"differs": "int-range"``; an int literal out of range is a SyntaxError.
- values longer than Limits.MAX_VALUE_SIZE (1,000,000 UTF-16 code units or items): LimitError,
  ``"differs": "value-size"``.
- a negative base with a fractional exponent (Python gives a complex): ValueError,
  ``"differs": "complex-result"``.
- ``\\N{name}`` escapes in string literals are a SyntaxError, marked ``"differs": "named-escape"``.
- round(x, n) of a float: cases where CPython's correctly-rounded result differs from the documented
  algorithm are left out (counted in the summary printed on stderr).
- `sum()` adds left to right with `+`; an intermediate int out of range is OverflowError.
- attribute access on dicts (`d.k` reads key k: a deliberate difference from Python): context dicts
  are evaluated as `AttrDict`, whose attribute lookup reads only its own keys (AttributeError
  otherwise), exactly like `d['k']` but with AttributeError instead of KeyError.
- anything outside the language (lambda, comprehensions, dict literals, `is` with a non-singleton,
  calls to other functions, str % formatting, ...) is rejected here: the generator fails on it, or
  leaves the case out when only the evaluation reveals it (str % ...).

Value encoding in the JSON (the same for contexts and expected values): None -> null, bool -> true/
false, int -> a JSON number, str -> a JSON string, list -> a JSON array, float ->
{"$float": repr(x)} (so 3.0 stays a float, and inf, -inf, nan, -0.0 survive), tuple ->
{"$tuple": [...]}, dict -> {"$dict": {...}}. A case's "ctx" is either an object of encoded values or
the name of a shared context in "contexts".
"""
from __future__ import annotations

import ast
import builtins
import io
import json
import math
import operator
import random
import re
import sys
import tokenize
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / 'test' / 'fixtures' / 'expr-corpus.json'

MAX_INT = 2**53 - 1
MAX_VALUE_SIZE = 1_000_000
MAX_TEXT_LENGTH = 10_000
FUNCTIONS = ('len', 'abs', 'min', 'max', 'round', 'int', 'float', 'str', 'bool', 'sum', 'any', 'all')
METHODS = ('lower', 'upper', 'strip', 'startswith', 'endswith', 'replace', 'split', 'get')


# --------------------------------------------------------------------------------------------------
# Documented differences, raised from inside the instrumented evaluation


class Differs(Exception):
    """The language deliberately differs from CPython here; `error` is what it raises instead."""

    def __init__(self, error: str, tag: str):
        super().__init__(tag)
        self.error = error
        self.tag = tag


class Excluded(Exception):
    """A case this corpus leaves out (documented imprecision, or outside the language)."""


def utf16_len(s: str) -> int:
    return len(s.encode('utf-16-le')) // 2


def check(v):
    """Checks a produced value against the language's limits."""
    if type(v) is int and not -MAX_INT <= v <= MAX_INT:
        raise Differs('OverflowError', 'int-range')
    if isinstance(v, complex):
        raise Differs('ValueError', 'complex-result')
    if isinstance(v, str) and utf16_len(v) > MAX_VALUE_SIZE:
        raise Differs('LimitError', 'value-size')
    if isinstance(v, (list, tuple)) and len(v) > MAX_VALUE_SIZE:
        raise Differs('LimitError', 'value-size')
    return v


def is_int(v) -> bool:
    return isinstance(v, int)  # bool included, as in Python


def w_mul(a, b):
    # Refuse huge repetitions before Python allocates them.
    for seq, n in ((a, b), (b, a)):
        if isinstance(seq, (str, list, tuple)) and is_int(n) and not isinstance(n, float):
            size = (utf16_len(seq) if isinstance(seq, str) else len(seq)) * max(int(n), 0)
            if size > MAX_VALUE_SIZE:
                raise Differs('LimitError', 'value-size')
    return check(operator.mul(a, b))


def w_pow(a, b):
    if is_int(a) and is_int(b) and b > 0 and abs(int(a)) >= 2 and b > 53:
        raise Differs('OverflowError', 'int-range')
    return check(operator.pow(a, b))


def w_mod(a, b):
    if isinstance(a, str):
        raise Excluded('str % formatting is outside the language')
    return check(operator.mod(a, b))


BINOPS = {
    ast.Add: lambda a, b: check(operator.add(a, b)),
    ast.Sub: lambda a, b: check(operator.sub(a, b)),
    ast.Mult: w_mul,
    ast.Div: lambda a, b: check(operator.truediv(a, b)),
    ast.FloorDiv: lambda a, b: check(operator.floordiv(a, b)),
    ast.Mod: w_mod,
    ast.Pow: w_pow,
}
BINOP_NAMES = {op: f'_wp_{op.__name__}' for op in BINOPS}


def w_sum(*args):
    result = builtins.sum(*args)  # Python's own result or exception (e.g. "can't sum strings")
    acc = args[1] if len(args) > 1 else 0
    for item in args[0]:
        acc = check(acc + item)  # the language adds left to right: intermediates are checked
    return result


def w_round(*args):
    result = builtins.round(*args)
    if len(args) == 2 and args[1] is not None and isinstance(args[0], float) and is_int(args[1]):
        ours = documented_round(args[0], int(args[1]))
        if repr(ours) != repr(result):
            raise Excluded(f'round({args[0]!r}, {args[1]!r}): CPython {result!r}, documented algorithm {ours!r}')
    return result


def round_half_even(y: float) -> float:
    if math.isinf(y) or math.isnan(y):
        return y
    f = math.floor(y)
    d = y - f
    r = float(f + 1) if d > 0.5 else float(f) if d < 0.5 else float(f if f % 2 == 0 else f + 1)
    return math.copysign(0.0, y) if r == 0 else r


def documented_round(x: float, n: int) -> float:
    """round(x, n) for a float x as docs/expression-semantics.md specifies it."""
    if math.isinf(x) or math.isnan(x):
        return x
    if n >= 0:
        p = 10.0 ** n
        return round_half_even(x * p) / p
    p = 10.0 ** -n
    return round_half_even(x / p) * p


def w_call(v):
    return check(v)


def w_attr(obj, name):
    """`a.b` in the language: a dict's own key; on anything else AttributeError, even where Python has
    the attribute (`(1).real`, `'a'.upper` without a call): then the case is marked as differing."""
    if isinstance(obj, AttrDict):
        return getattr(obj, name)
    if hasattr(obj, name):
        raise Differs('AttributeError', 'attribute-on-non-dict')
    raise AttributeError(name)


def w_get(obj, *args):
    """`d.get(k[, default])` in the language: dict.get on a context dict (whose attribute lookup reads
    only keys); on anything else Python's own lookup, which fails with AttributeError."""
    if isinstance(obj, AttrDict):
        return dict.get(obj, *args)
    return obj.get(*args)


def make_builtins():
    b = {name: getattr(builtins, name) for name in FUNCTIONS}
    b['sum'] = w_sum
    b['round'] = w_round
    return b


class AttrDict(dict):
    """A context dict: `d.k` reads own key k (the language's attribute access), nothing else."""

    def __getattribute__(self, name):
        if name.startswith('__'):
            return dict.__getattribute__(self, name)
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        raise AttributeError(name)


def to_python_ctx(v):
    if isinstance(v, dict):
        return AttrDict((k, to_python_ctx(x)) for k, x in v.items())
    if isinstance(v, list):
        return [to_python_ctx(x) for x in v]
    return v


# --------------------------------------------------------------------------------------------------
# The language's syntax, checked on Python's AST (the generator refuses to record anything else)


class Outside(Exception):
    pass


ALLOWED_BINOPS = tuple(BINOPS)
SINGLETONS = (None, True, False)


def depth_of(node: ast.AST) -> int:
    children = [c for c in ast.iter_child_nodes(node) if isinstance(c, ast.expr)]
    return 1 + max((depth_of(c) for c in children), default=0)


def validate(text: str, tree: ast.Expression) -> None:
    if len(text) > MAX_TEXT_LENGTH:
        raise Outside('too long')
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.STRING:
            if tok.string[0] not in '\'"' or tok.string[:3] in ("'''", '"""'):
                raise Outside(f'string form {tok.string[:3]!r}')
        if tok.type == tokenize.NUMBER:
            low = tok.string.lower()
            if low.startswith(('0x', '0o', '0b')) or low.endswith('j'):
                raise Outside(f'number form {tok.string!r}')
    prev_string = False
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.STRING and prev_string:
            raise Outside('implicit string concatenation')
        prev_string = tok.type == tokenize.STRING
    for node in ast.walk(tree.body):
        if not isinstance(node, ast.expr):
            continue  # operators, Load contexts: judged with their parent node
        if isinstance(node, ast.BinOp):
            if not isinstance(node.op, ALLOWED_BINOPS):
                raise Outside(type(node.op).__name__)
        elif isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Invert):
                raise Outside('~')
        elif isinstance(node, ast.Compare):
            for op, right in zip(node.ops, node.comparators):
                if isinstance(op, (ast.Is, ast.IsNot)):
                    if not (isinstance(right, ast.Constant) and any(right.value is s for s in SINGLETONS)):
                        raise Outside('is with a non-singleton')
        elif isinstance(node, ast.Call):
            if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
                raise Outside('keyword or starred arguments')
            if isinstance(node.func, ast.Name):
                if node.func.id not in FUNCTIONS:
                    raise Outside(f'call of {node.func.id}')
            elif isinstance(node.func, ast.Attribute):
                if node.func.attr not in METHODS:
                    raise Outside(f'method {node.func.attr}')
            else:
                raise Outside('call of an expression')
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith('__') or node.attr in ('constructor', 'prototype'):
                raise Outside('reserved attribute')
        elif isinstance(node, ast.Name):
            if node.id in FUNCTIONS and not any(
                isinstance(p, ast.Call) and p.func is node for p in ast.walk(tree.body)
            ):
                raise Outside(f'function {node.id} used as a value')
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, (int, float, str)) and node.value is not None:
                raise Outside(f'constant {node.value!r}')
        elif isinstance(node, (ast.BoolOp, ast.IfExp, ast.Subscript, ast.Slice, ast.List, ast.Tuple)):
            pass
        else:
            raise Outside(type(node).__name__)
    if depth_of(tree.body) > 100:
        raise Outside('too deep')


class Instrument(ast.NodeTransformer):
    """Routes every binary operator and call through the checks above."""

    def visit_BinOp(self, node: ast.BinOp):
        self.generic_visit(node)
        fn = ast.Name(id=BINOP_NAMES[type(node.op)], ctx=ast.Load())
        return ast.copy_location(ast.Call(func=fn, args=[node.left, node.right], keywords=[]), node)

    def visit_Call(self, node: ast.Call):
        if isinstance(node.func, ast.Attribute):  # a str method call: Python's own lookup
            node.func.value = self.visit(node.func.value)
        node.args = [self.visit(a) for a in node.args]
        if isinstance(node.func, ast.Attribute) and node.func.attr == 'get':  # dict.get, even on AttrDict
            args = [node.func.value, *node.args]
            node = ast.copy_location(ast.Call(func=ast.Name(id='_wp_get', ctx=ast.Load()), args=args, keywords=[]), node)
        fn = ast.Name(id='_wp_call', ctx=ast.Load())
        return ast.copy_location(ast.Call(func=fn, args=[node], keywords=[]), node)

    def visit_Attribute(self, node: ast.Attribute):
        self.generic_visit(node)
        fn = ast.Name(id='_wp_attr', ctx=ast.Load())
        args = [node.value, ast.Constant(value=node.attr)]
        return ast.copy_location(ast.Call(func=fn, args=args, keywords=[]), node)


def python_error_name(e: BaseException) -> str:
    if isinstance(e, SyntaxError):  # IndentationError, TabError
        return 'SyntaxError'
    for name in ('NameError', 'TypeError', 'ZeroDivisionError', 'KeyError', 'IndexError',
                 'AttributeError', 'ValueError', 'OverflowError'):
        if isinstance(e, getattr(builtins, name)):
            return name
    raise RuntimeError(f'unexpected exception class {type(e).__name__}: {e}')


def evaluate(text: str, ctx: dict):
    """Returns ('value', v, differs) or ('error', name, differs)."""
    source = text.lstrip(' \t')  # as builtins.eval does with a string
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            tree = ast.parse(source, mode='eval')
    except SyntaxError:
        return ('error', 'SyntaxError', None)
    except ValueError:  # e.g. a NUL character in the source
        return ('error', 'SyntaxError', None)
    validate(text, tree)
    if re.search(r'(?<!\\)\\N\{', text):
        return ('error', 'SyntaxError', 'named-escape')  # \N{name} needs Unicode's name table
    for node in ast.walk(tree.body):
        if isinstance(node, ast.Constant) and type(node.value) is int and node.value > MAX_INT:
            return ('error', 'SyntaxError', 'int-literal')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        code = compile(ast.fix_missing_locations(Instrument().visit(tree)), '<expr>', 'eval')
    env = {'__builtins__': make_builtins(), '_wp_call': w_call, '_wp_attr': w_attr, '_wp_get': w_get}
    for op, name in BINOP_NAMES.items():
        env[name] = BINOPS[op]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            value = eval(code, env, to_python_ctx(ctx))
        check(value)
        return ('value', value, None)
    except Differs as d:
        return ('error', d.error, d.tag)
    except Excluded:
        raise
    except Exception as e:  # noqa: BLE001 - every Python error class is data here
        return ('error', python_error_name(e), None)


# --------------------------------------------------------------------------------------------------
# JSON encoding


def enc(v):
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        assert -MAX_INT <= v <= MAX_INT
        return v
    if isinstance(v, float):
        return {'$float': repr(v)}
    if isinstance(v, list):
        return [enc(x) for x in v]
    if isinstance(v, tuple):
        return {'$tuple': [enc(x) for x in v]}
    if isinstance(v, dict):
        return {'$dict': {k: enc(x) for k, x in dict.items(v)}}
    raise TypeError(f'cannot encode {type(v).__name__}')


def check_ctx_value(v, where: str):
    """A context value must look the same to JavaScript: an integral float would be read as an int."""
    if isinstance(v, float):
        if math.isfinite(v) and (v == int(v)):
            raise ValueError(f'{where}: integral float {v!r} in a context would be an int in JS')
    elif isinstance(v, int) and not isinstance(v, bool):
        assert -MAX_INT <= v <= MAX_INT, where
    elif isinstance(v, list):
        for i, x in enumerate(v):
            check_ctx_value(x, f'{where}[{i}]')
    elif isinstance(v, dict):
        for k, x in v.items():
            assert isinstance(k, str)
            check_ctx_value(x, f'{where}.{k}')
    elif isinstance(v, tuple):
        raise ValueError(f'{where}: tuples cannot come from a JS context')
    else:
        assert v is None or isinstance(v, (bool, str)), where


# --------------------------------------------------------------------------------------------------
# Contexts and cases

STD = {
    'x': 7, 'y': -3, 'z': 0, 'f': 2.5, 'g': -0.5, 'h': 0.1, 'n': None, 't': True, 'F': False,
    's': 'Hello, World', 'e': '', 'l': [1, 2, 3, 4, 5], 'el': [], 'words': ['pear', 'apple', 'fig'],
    'mixed': [1, 'a', None, 2.5, True], 'nested': [[1, 2], [3], []],
    'd': {'a': 1, 'b': {'c': 'deep', 'n': 2}, 'name': 'Ann', 'items': [1, 2], 'f': 1.5, 'z': 0},
    'ed': {}, 'nan': float('nan'), 'inf': float('inf'), 'ninf': float('-inf'),
    'big': MAX_INT, 'nbig': -MAX_INT, 'score': 85, 'status': 'active', 'kind': 'a', 'tags': ['x', 'y'],
    'u': 'ß😀é', 'emoji': '😀', 'quote': "it's", 'dq': 'say "hi"', 'ws': ' \t pad \n',
    'digits': '0123456789', 'csv': 'a,b,,c', 'people': [{'name': 'Ann', 'age': 31}, {'name': 'Bob', 'age': 25}],
}
CONTEXTS = {'std': STD}

cases: list[dict] = []


def add(group: str, expr: str, ctx='std', note: str | None = None, strv: bool = True):
    cases.append({'group': group, 'expr': expr, 'ctx': ctx, 'note': note, 'strv': strv})


def lit(v) -> str:
    """Python source for a literal operand (parenthesized when negative)."""
    r = repr(v)
    return f'({r})' if r.startswith('-') else r


# ---- literals
for src in ['1', '0', '00', '-1', '1.5', '1e3', '1E-3', '.5', '5.', '1_000', '1_000.5', '1e1_0', '2.5e-3',
            'True', 'False', 'None', "'a'", '"b"', "''", '""', "'it\\'s'", '"say \\"hi\\""', "'a\\nb'",
            "'tab\\tx'", "'back\\\\slash'", "'\\x41'", "'\\u00e9'", "'\\U0001F600'", "'\\101'", "'\\0'",
            "'\\q'", "'\\N{BULLET}'", "'\\a\\b\\f\\v\\r'", "'ß'", "'😀'", "'\"'", '"\'"',
            '[]', '[1]', "[1, 'a', None]", '[1, 2,]', '()', '(1,)', '(1, 2)', '(1, 2,)', '((1, 2), [3])',
            '[[]]', '[()]', '(((1)))', '9007199254740991', '-9007199254740991', '9007199254740992',
            '-9007199254740992', '99999999999999999999', '1e308', '1e309', '-1e309', '5e-324', '1e-400',
            '1.7976931348623157e308', '0.1', '0.30000000000000004', '123456789012345678901234567890.0',
            '1_0', '0.0', '-0.0', '0e0', ' 1', '1 ', '\t1', '( 1 )', 'x', ' x + 1 ']:
    add('literal', src)

# ---- syntax errors (Python and the language agree these are not expressions)
for src in ['', ' ', '1 +', '(1', '[1, 2', "'abc", '"abc', '1 2', 'x y', ')', '*', '1 === 1', 'a.', 'a[',
            'a[]', 'not', '1 if 2', 'if', 'else', 'and 1', '1 and', '1 <> 2', 'x = 1', '1;2', '[1,,2]',
            '(,)', '1__0', '1_', '01', '1e', '.', '$x', 'x!', 'x.1', 'len(', "'\\N{NOPE}'", "'\\x4'",
            '1 +* 2', 'x[1:2:3:4]', 'True = 1', '1 if 2 else', 'None.', '[1 2]', '(1 2)',
            'a b c', '1..2', '@x', '`x`', '1 not 2', 'is None', 'x is', 'x not', 'x in', 'x not in']:
    add('syntax', src, strv=False)

# ---- arithmetic: every operator over a grid of ints, floats, bools (literals), then via the context
NUMS = [7, -7, 2, 0, 2.5, -2.5, 0.0, -0.0, True, False, 3.0]
OPS = ['+', '-', '*', '/', '//', '%', '**']
for op in OPS:
    for a in NUMS:
        for b in NUMS:
            add('arith-grid', f'{lit(a)} {op} {lit(b)}')

CTX_NUMS = {'a1': 7, 'a2': -7, 'a3': 3, 'a4': 0, 'a5': 2.5, 'a6': -2.5, 'a7': 0.1, 'a8': True, 'a9': False,
            'a10': -0.75}
CONTEXTS['nums'] = CTX_NUMS
for op in OPS:
    for a in CTX_NUMS:
        for b in ['a1', 'a2', 'a4', 'a5', 'a6', 'a8', 'a9', 'a10']:
            add('arith-ctx', f'{a} {op} {b}', ctx='nums')

for src in [
    # floor division and modulo signs
    '7 // 2', '-7 // 2', '7 // -2', '-7 // -2', '7 % 3', '-7 % 3', '7 % -3', '-7 % -3', '7.5 // 2',
    '-7.5 // 2', '7.5 % 2', '-7.5 % 2', '7.5 % -2', '-7.5 % -2', '1 % 0.3', '-1 % 0.3', '0.3 % -1',
    '1e308 // 1e-308', '1 // inf', '-1 // inf', '5 % inf', '-5 % inf', '5 % ninf', 'inf // 2', 'inf % 2',
    '2 // nan', 'nan % 2', '-0.0 // 1', '0.0 // -1', '-0.0 % 5', '0.0 % -5', '0 % 5', '-1e-300 % 1e300',
    '1e300 % -1e-300', '6 // 0.1', '6 % 0.1', '0.7 // 0.1', '0.7 % 0.1', '-0.7 // 0.1', '1 // 3.0',
    'big // 2', 'big // 3', 'big // 7', 'big % 10', 'big % 7', 'nbig // 7', 'nbig % 7', 'nbig // -7',
    'big // -9007199254740990', 'nbig // 9007199254740990', 'big // 9007199254740990',
    '9007199254740989 // 2', '-9007199254740989 // 2', 'big % -2', 'nbig % 2', 'big % big', 'big // big',
    'big // 1', 'nbig // -1', 'big / 3', 'big / 1', 'big % 0.5', 'big // 0.5',
    # int range (documented difference: OverflowError)
    'big + 0', 'big - 1', 'big + 1', 'nbig - 1', 'big * -1', 'big * 2', 'big + big', 'nbig + nbig',
    'big + 1.0', 'big + 0.5', 'big * 1.0', '4503599627370496 * 2', '4503599627370495 * 2 + 1',
    '-4503599627370496 * 2', '2 ** 52', '2 ** 53', '(-2) ** 53', '(-2) ** 52', '3 ** 33', '3 ** 34',
    '2 ** 1000', '10 ** 15', '10 ** 16', '94906265 ** 2', '94906267 ** 2', '2 ** 52 + 2 ** 52 - 1',
    '2 ** 52 * 2', '(2 ** 26) * (2 ** 26) * 2', '-(nbig)', 'abs(nbig)', '1 - nbig', 'big // -1',
    'big - -1', 'x * 1000000000 * 1000000000', 'nbig % big', '2 ** 63 // 2 ** 62',
    # true division
    '1 / 2', '1 / 3', '2 / 3', '-1 / 3', '4 / 2', '0 / 5', '0 / -5', '-0.0 / 5', '1 / -inf',
    '1e308 / 1e-308', '1e-308 / 1e308', '5e-324 / 2', '7 / 7', 'True / 2',
    # division by zero
    '1 / 0', '1 // 0', '1 % 0', '1.0 / 0', '1 / 0.0', '0 / 0', '0.0 / 0.0', '1 // 0.0', '1 % 0.0',
    '1.5 // 0', '1.5 % 0', 'True / False', 'x / z', 'x // z', 'x % z', 'f / z', 'inf / 0', 'nan / 0',
    'nan // 0.0', '1 / -0.0', '0 ** -1', '0.0 ** -1', '0 ** -1.5', '(-0.0) ** -1', '0 ** -2',
    '0.0 ** -0.5', 'z ** -1', 'False ** -1',
    # power
    '2 ** 10', '2 ** -1', '2 ** -2', '(-2) ** -1', '(-2) ** 3', '(-2) ** 2', '-2 ** 2', '2 ** 3 ** 2',
    '2 ** 0.5', '4 ** 0.5', '(-4) ** 0.5', '(-8) ** (1/3)', '(-8.0) ** 3', '(-8.0) ** 3.0',
    '(-8.0) ** -3', '(-8) ** -3', '0 ** 0', '0.0 ** 0', '(-0.0) ** 3', '(-0.0) ** 2', '(-0.0) ** 0.5',
    '2.0 ** 1024', '2 ** 1024.0', '10.0 ** 308', '10.0 ** 309', '(-10.0) ** 309', '10 ** -400',
    '2 ** -1074', '2 ** -1075', '10 ** -5', '10 ** -1', '1.1 ** 10000', '0.5 ** 10000',
    'inf ** 2', 'inf ** -1', 'ninf ** 3', 'ninf ** 2', 'ninf ** 0.5', 'ninf ** -1', 'nan ** 0',
    '1 ** nan', 'nan ** 1', '1 ** inf', '(-1) ** inf', '(-2.0) ** inf', '(-0.5) ** inf', '(-2) ** ninf',
    '2 ** ninf', '0.5 ** ninf', '0.0 ** ninf', '0 ** inf', 'inf ** 0', '(-1.5) ** 2', '(-1.5) ** 2.5',
    '(-1) ** 0.5', '(-1) ** -0.5', '(-1.0) ** 1e300', 'g ** 2', 'g ** 0.5', 'g ** -2', 'f ** f',
    '2 ** True', 'True ** True', 'True ** -1', 'False ** 0', '1 ** -1', '(-1) ** -1', '(-1) ** 9007199254740991',
    '1 ** 9007199254740991', '0 ** 9007199254740991', '(-1) ** 2 ** 52', '2 ** 0', '7 ** 1', '1.5 ** 2',
    'x ** y', 'y ** x', 'y ** y', 'x ** 0.5', 'y ** 0.5', 'y ** 2.0', '(-27) ** (1/3)', '2 ** -0.5',
    # bools as ints
    'True + True', 'True * 2.5', 'False - True', 'True / True', 'True // True', 'True % 2', '-True',
    '+False', '-(-True)', 'True + 0', 'True * True', 'True - 1.5', 't + t + t', 'F * 10', 't * x',
    # unary
    '-x', '--x', '- -1', '-(-0.0)', '-0', '-0.0', '+x', '+f', '+-+-1', '-(1)', "-'a'", "+'a'", '-None',
    '-[1]', '-n', '+n', '-s', '-inf', '-nan', '- - -x', '-(2 ** 52)', '-t', '-F',
    # type errors
    "1 + 'a'", "'a' + 1", '[1] + (1,)', "'a' - 'a'", "'a' * 2.0", "'a' * 'a'", '[1] * 2.5', 'None + 1',
    '1 + None', "'a' / 2", '[1] // 2', "'a' % 1", '[1] % 2', 'True + \'a\'', '[1] - [1]', '(1,) * (1,)',
    'l + 1', 'd + d', 'd * 2', 'n * 2', 'el + ()', "'a' ** 2", '2 ** None', '[1] ** 2', 'd - 1',
    "1 // 'a'", "'a' // 1", 'None / None', '1.5 * [1]', '[1] * 1.0', "'ab' * True", "True * 'ab'",
    # sequence arithmetic
    "'a' + 'b'", "'ab' * 3", "3 * 'ab'", "'ab' * 0", "'ab' * -1", '[1] * 3', '0 * [1]', '[1, 2] * -5',
    '(1, 2) * 2', '2 * (1,)', '[1, 2] + [3]', '(1,) + (2,)', '[] + []', '() + ()', 'l + l', 'l * 2',
    'words + tags', "s + '!'", "e + e", '[1] * True', '[1] * False', "'x' * t", 'tags * 2',
    "len('ab' * 500000)", "len('ab' * 500001)", 'len([0] * 1000000)', 'len([0] * 1000001)',
    "len('😀' * 500000)", "len('😀' * 500001)", "len('abc' * 333334)", "len([1, 2] * 500001)",
    "len((1,) * 1000001)", "len('a' * 1000000 + 'b')", "len('a' * 999999 + 'b')",
    "len([0] * 600000 + [0] * 600000)", "len('a' * 600000 + 'a' * 600000)", "len('x' * 2 ** 40)",
    "len(('a' * 600000).replace('a', 'bb'))", "len(('a' * 600000).replace('a', 'b'))",
    # float overflow to inf (no error outside **) and nan
    '1e308 * 10', '-1e308 * 10', '1e308 * 10 - 1e308 * 10', '1e308 + 1e308', 'inf - inf', 'inf * 0',
    '0.1 + 0.2', '0.1 * 3', '1 - 0.9', '1e16 + 1', '1e16 + 2', '2 ** 53 - 1 + 0.5',
    'f + x', 'x - f', 'f * y', 'h * 3', 'x / f', 'x // f', 'x % f', 'y // f', 'y % f', 'g // 1', 'g % 1',
]:
    add('arith', src)

# ---- float ** float must be C's pow() (correctly rounded in glibc), not an approximation
POW_BASES = ['0.1', '0.5', '1.1', '1.5', '2.5', '3.7', '7.0', '10.0', '123.456', '9007199254740991.0', '1e-300', '1e300',
             '0.999999', '(-2.5)', '(-0.1)']
POW_EXPS = ['-3.5', '-2', '-1', '-0.5', '0.3', '0.5', '1.5', '2', '3', '10.5', '100', '-100', '0.1', '(-1.0)', '7']
for b in POW_BASES:
    for e in POW_EXPS:
        add('pow', f'{b} ** {e}')

# a deterministic sample of float ** float over many magnitudes (random.Random(seed).random() is
# stable across CPython versions)
_r = random.Random(20240611)
for _ in range(150):
    base = _r.choice([_r.uniform(0, 2), _r.uniform(0, 1e3), 10 ** _r.uniform(-300, 300), float(_r.randrange(1, 2**53))])
    exp = _r.choice([_r.uniform(-60, 60), float(_r.randrange(-40, 40)), _r.uniform(-2, 2), 1 / _r.randrange(2, 9)])
    if base > 0 and math.isfinite(base):
        add('pow', f'{base!r} ** {lit(exp)}')

# extremes: results near the largest and smallest doubles
for src in ['1e308 ** 1', '1e308 ** True', '1e308 ** 1.0', '(-1e308) ** 1', '1.7976931348623157e308 ** 1', '1e308 ** 0.5',
            '1e308 ** 1.0000001', '1e200 ** 1.5', '1e154 ** 2', '1.3407807929942596e154 ** 2', '1.3407807929942597e154 ** 2',
            '5e-324 ** 1', '5e-324 ** 0.5', '5e-324 ** 1.5', '2.0 ** 1023', '2.0 ** -1074', '2.0 ** -1075', '1e-308 ** 1',
            '0.5 ** 1074', '0.5 ** 1075', '10.0 ** -323', '10.0 ** -324', '1.0000000000000002 ** 1e16', '0.9999999999999999 ** 1e17',
            '(-1e308) ** 3', '(-5e-324) ** 3', '1.0000001 ** 7e9', 'f ** t', 'g ** t', 'inf ** t', 'big ** t', 'big ** 1.0',
            '9007199254740991.0 ** 2', '9007199254740991.0 ** 0.5', '9007199254740991.0 ** -0.5', '3037000499.97605 ** 2']:
    add('pow', src)

# int ** negative int is pow(float(a), float(b))
for b in ['2', '3', '7', '10', '123', '9007199254740991', '-3', '-9007199254740991', '4503599627370496']:
    for e in ['-1', '-2', '-3', '-7', '-13', '-100']:
        add('pow', f'{lit(int(b)) if b.startswith("-") else b} ** {lit(int(e))}')

# ---- the sign of zero: an int has none (0 * -1 is 0, so float() of it is 0.0); floats keep it
for src in [
    'str(float(0 * -1))', 'str(float(-0))', 'str(float(z * -1))', 'str(z * -1 * 1.0)', 'str(-z * 1.0)', 'str(float(-z))',
    'str(0 // -1 * 1.0)', 'str(float(0 % -5))', 'str(float(round(-0.4)))', 'str(float(int(-0.5)))', 'str(1.0 * int(-0.5))',
    'str(float(-0 + 0))', 'str(float(max(0, -0)))', 'str(-0 * 1.0)', 'str(float(round(-0.5)))', 'str(float(-False))',
    'str(-False * 1.0)', 'str(float(0 * y))', 'str(float(z // y))', 'str(float(round(g)))', 'str(float(int(g)))',
    'str(float(sum([0, -0])))', 'str(float(abs(-0)))', 'str(float(min(-0, 0)))', 'str(float(round(-4, -1)))',
    'str(float(round(-0.4) * 1))', 'str(-0.0 * 0)', 'str(0.0 * -1)', 'str(-0.0 + 0)', 'str(-0.0 - 0)', 'str(-0.0 // 1)',
    'str(float(-0.0))', 'str(round(-0.4, 0))', 'str(round(-0.0))', 'str(int(-0.0))', 'str(-0.0 % 1)', 'str(abs(-0.0))',
    'str(max(-0.0, 0))', 'str(max(0, -0.0))', 'str(min(0.0, -0.0))', 'str(sum([-0.0]))', 'str(sum([-0.0], -0.0))',
]:
    add('negzero', src, strv=False)

# ---- comparisons
for src in [
    '1 < 2', '2 < 1', '1 < 1.5', '1 == 1.0', '1 == True', '0 == False', '2 == True', '1.0 == True',
    '1 != 1.0', "'a' < 'b'", "'a' < 'B'", "'abc' < 'abd'", "'ab' < 'abc'", "'' < 'a'", "'a' <= 'a'",
    "'😀' > 'Ａ'", "'😀' > '\uffee'", "'é' > 'z'", "emoji > 'Ａ'", "'a😀' < 'aＡ'",
    '[1, 2] < [1, 3]', '[1, 2] < [1, 2, 0]', '[1, 2] <= [1, 2]', '[1, 2] > [1]', "[1, 'a'] < [2, 'b']",
    "[1, 'a'] < [1, 2]", "[1, 'a'] < [2, 2]", '(1, 2) < (1, 2)', '(1, 2) <= (1, 2)', '(1, 3) > (1, 2, 9)',
    '[1] < (1,)', '[1] == (1,)', '[1] != (1,)', '() == ()', '() < (1,)', 'None == None', 'None == 0',
    'None != None', 'None < 1', 'None < None', "'1' == 1", "'a' < 1", "1 < 'a'", "1 >= 'a'", 'True < 2',
    'False < True', 'True > 0.5', '[] == []', '[] < []', '[[1]] < [[2]]', '[[1]] < [[1, 0]]', '[[1]] < [(1,)]',
    '[1, 2] == [1, 2.0]', '[1, [2]] == [1, [2]]', '[True] == [1]', 'nested == [[1, 2], [3], []]',
    'd == d', 'd != ed', 'd < d', 'ed == ed', 'd.b == d.b', 'people[0] == people[0]', 'people[0] == people[1]',
    'd < 1', 'l < d', 'l == l', 'l < l', 'l <= l', 'words < tags', 'el < l', 'el == []', 'el == ()',
    'nan < 1', 'nan > 1', 'nan >= nan', 'nan == nan', 'nan != nan', 'nan == 1', '[nan] < [1]',
    'inf > big', 'ninf < nbig', 'inf == inf', 'inf == ninf', 'big == 9007199254740991.0',
    'big < 9007199254740992.0', 'big + 0.0 == big', '0.0 == -0.0', '0 == -0.0', '0.1 + 0.2 == 0.3',
    '1 < 2 < 3', '3 > 2 > 1', '1 < 3 < 2', '1 < 2 > 0', '1 == 1 == 1.0', "1 < 2 < 'a'", "2 < 1 < 'a'",
    "5 > 4 < 'a'", "1 > 2 < 'a'", '0 <= score <= 100', '0 <= score < 80', 'x > y > z', 'y < z < x',
    '1 < 2 < 3 < 4 < 5', '1 < 2 < 3 < 4 < 1', '(1 < 2) < 3', '1 < (2 < 3)', '1 in [1] == True',
    "'a' in 'abc' in 'xabcx'", "'a' < 'b' != 'c'", '1 == 1.0 == True != False', 'x == 7 == x',
    'score >= 80', "status == 'active'", "score >= 80 and status == 'active'", "kind != 'a'",
    "s == 'Hello, World'", 'mixed == mixed', 'x < f', 'f < x', 'g < y', 'g > y', 'h < 0.1', 'h == 0.1',
    "n == 'None'", "t == 'True'", 'F == 0', 'F == 0.0', 'F == e', 'F == el', "n < ''", 'n == n',
    "'abc' == 'ABC'.lower()", '[1, 2] < [1, nan]', '[1, nan] < [1, 2]', '[nan, 1] > [1, 1]',
    "(1, 'a') < (1, 'b')", "(1, 'a') < (2, None)", "(1, None) < (1, None)", "(1, None) == (1, None)",
]:
    add('compare', src)

# ---- and / or / not / conditional
for src in [
    "0 or 'x'", "'' and 1 / 0", '1 and 0.0', 'None or []', '[] or ()', '1 / 0 or 1', '0 and q', '1 or q',
    'q or 1', 'x and y', 'x or y', 'z and y', 'z or y', 'n or e or el or 0 or F', 'n or e or el or 0 or F or ed',
    '1 and 2 and 3', '1 and 0 and 1 / 0', 'e or s', 's and e', 'not x', 'not z', 'not n', 'not e', 'not s',
    'not el', 'not l', 'not ed', 'not d', 'not nan', 'not inf', 'not 0.0', 'not -0.0', 'not not x',
    'not not not x', 'not 1 == 2', 'not 1 < 2 < 3', "not 'a' in s", "not 'H' in s", 'not x > 5 and y < 0',
    'not (x > 5 and y < 0)', 'x > 5 or 1 / 0', 'x < 5 and 1 / 0', 'x < 5 or 1 / 0', 'n and n.foo',
    'd and d.a', 'ed and ed.a', 'ed or d.a', '1 if x else 1 / 0', '1 / 0 if z else 2', 'x if x > y else y',
    "'big' if score > 90 else 'mid' if score > 50 else 'low'", "'yes' if n is None else 'no'",
    '(1 if t else 2) + 3', '1 if t else 2 + 3', '[] if el else ()', 'l if l else el', 'q if F else x',
    'x if q else y', 'f if nan else g', 'not x if y else z', '0 or 0.0', '0.0 or 0', '0 and 0.0', '[] and 0',
    "'a' and 'b' or 'c'", "'' and 'b' or 'c'", 'F or F', 'F and t', 't and F', '(x or y) * 2', 'x or y * 2',
    'not (x or y)', 'x > 1 and y > 1 or z == 0', 'x > 1 and (y > 1 or z == 0)', 'nan and 1', 'inf and ninf',
    '1 if x else y if z else q', '(q if F else 5) if x else q',
]:
    add('logic', src)

# ---- in / not in
for src in [
    "'a' in 'abc'", "'' in 'abc'", "'' in ''", "'abc' in 'abc'", "'ac' in 'abc'", "'A' in 'abc'", '1 in "abc"',
    "None in 'abc'", "['a'] in 'abc'", "'lo, W' in s", "'😀' in u", "'ß' in u", "'s' in u", "'é' not in u",
    '1 in [1, 2]', '3 in [1, 2]', '1.0 in [1]', 'True in [1]', '1 in [True]', '0 in [False]', "'1' in [1]",
    '[1] in [[1]]', '(1, 2) in [(1, 2)]', '(1, 2) in [[1, 2]]', '[1, 2] in [(1, 2)]', '2 in (1, 2)',
    "'a' in ('a',)", 'None in [None]', 'None in []', 'el in [el]', 'nan in [1, 2]', 'inf in [inf]',
    "'a' in d", "'b' in d", "'zz' in d", "'zz' not in d", '1 in d', '1.5 in d', 'None in d', 'True in d',
    '[1] in d', 'd in d', '() in d', "'c' in d.b", "'c' in d['b']", "'a' in ed", "'a' in 5", '1 in 1',
    "'a' in None", '1 in True', "'a' in 2.5", 'x in l', 'x not in l', 'y in l', '3 in l', '3 not in l',
    "'fig' in words", "'Fig' in words", "'x' in tags", "'a' in kind", "kind in 'abc'", "kind in tags",
    "'Ann' in people", "'age' in people[0]",
    'people[0] in people', '1 in mixed', "'a' in mixed", 'None in mixed', '2.5 in mixed', 'True in mixed',
    "'apple' in words[1]", "'p' in words[1]", "1 not in [1]", "'' not in s", '[] in [[]]', '() in [()]',
    '[] in [()]', "'a' in ['a'] in [['a']]", "not 'q' in s", "'q' not in s and 'H' in s",
]:
    add('in', src)

# ---- is None / True / False
for src in [
    'n is None', 'n is not None', 'x is None', 'x is not None', 'None is None', 'e is None', '0 is None',
    'el is None', 'not n is None', 'not x is None', 'F is False', 'F is not False', 't is True', 'True is True',
    '1 is True', '1.0 is True', '0 is False', 'x > 1 is True', '(x > 1) is True', 'l is None', 'd is None',
    'd.a is None', 'ed is not None', 'nan is None', 'q is None', '[] is None', '(1 is True) is False',
    'n is None is True', 'not F is False', "'' is False", 'F is None', 'None is not None', 'x is not True',
]:
    add('is', src)

# ---- subscription
for src in [
    's[0]', 's[-1]', 's[11]', 's[12]', 's[-12]', 's[-13]', 'l[0]', 'l[-1]', 'l[4]', 'l[5]', 'l[-5]', 'l[-6]',
    'l[1.0]', 'l[True]', 'l[False]', "l['a']", 'l[None]', 'l[[0]]', 'l[x - 3]', 'l[y]', 'l[big]', 'l[nbig]',
    "d['a']", "d['b']", "d['b']['c']", "d['b']['n']", "d['missing']", 'd[0]', 'd[1.5]', 'd[None]', 'd[True]',
    'd[[1]]', 'd[d]', "d['b'].c", "ed['a']", 'el[0]', 'el[-1]', "e[0]", "''[0]", '(1, 2)[1]', '(1, 2)[-2]',
    '(1, 2)[2]', '()[0]', '[1, 2][0]', '[[1, 2], [3]][0][1]', 'nested[0][1]', 'nested[2][0]', 'nested[-1]',
    "'abc'[1]", "'abc'[None]", "'abc'[1.5]", "'abc'['a']", '5[0]', 'x[0]', 'None[0]', 'n[0]', 'f[0]',
    't[0]', 'u[0]', 'u[1]', 'u[2]', 'u[-1]', 'u[-2]', 'u[3]', 'emoji[0]', 'emoji[-1]', 'emoji[1]', "'a😀b'[2]",
    'people[0].name', "people[1]['age']", 'people[2]', "people[-1].name.upper()", 'mixed[2]', 'mixed[3]',
    'words[x - 6]', "d['items'][1]", 'd.items[-1]', 'd.items[2]', 'tags[t]', 'tags[F]', 'l[-0]', 'l[0.0]',
    "d['']", "d['A']", 'digits[9]', 'digits[-10]', 'digits[10]', 'l[1:2][0]', 's[0][0][0]',
]:
    add('index', src)

# ---- slices: a grid of bounds and steps over a list, a tuple, a str (with astral characters)
BOUNDS = [None, 0, 1, 3, -1, -3, 9, 10, -10, 100, -100]
STEPS = [None, 1, 2, -1, -2, 3, -4]


def slice_src(a, b, c):
    sa = '' if a is None else str(a)
    sb = '' if b is None else str(b)
    if c is None:
        return f'[{sa}:{sb}]'
    return f'[{sa}:{sb}:{c}]'


CONTEXTS['seq'] = {'sl': list(range(10)), 'ss': 'abcdefghij', 'su': 'a😀bÆc😀dßeé', 'se': '', 'sel': []}
i = 0
for a in BOUNDS:
    for b in BOUNDS:
        for c in STEPS:
            i += 1
            if i % 9 == 0:
                add('slice', 'sl' + slice_src(a, b, c), ctx='seq', strv=False)
            if i % 9 == 1:
                add('slice', 'ss' + slice_src(a, b, c), ctx='seq', strv=False)
            if i % 9 == 2:
                add('slice', 'su' + slice_src(a, b, c), ctx='seq', strv=False)
            if i % 11 == 3:
                add('slice', '(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)' + slice_src(a, b, c), ctx='seq', strv=False)
for src in [
    'sl[::0]', 'ss[::0]', 'sl[1:2:0]', 'sl[1.5:]', 'sl[:1.5]', 'sl[::1.5]', "sl['a':]", 'sl[None:2]',
    'sl[True:]', 'sl[:True]', 'sl[::True]', 'sl[::-True]', 'sl[::None]', 'se[::-1]', 'se[1:]', 'sel[::-1]',
    'sel[5:1]', 'su[::-1]', 'su[1:2]', 'su[1::2]', 'len(su[1:])', "'😀😀😀'[1:]", "'😀😀😀'[::2]",
    "'a😀'[::-1]", 'ss[-100:100:3]', 'ss[5:1:-1]', 'ss[5:1]', 'sl[-3:]', 'sl[:-3]',
    'sl[-3::-1]', 'sl[100::-1]', 'sl[:-100:-1]', 'sl[-100::-1]', 'sl[9007199254740991:]',
    'sl[-9007199254740991:]', 'sl[::9007199254740991]', 'sl[::-9007199254740991]', 'sl[1:3][::-1]',
    'sl[0:0]',
]:
    add('slice', src, ctx='seq', strv=False)
for src in [
    'd[1:2]', 'x[1:2]', 'n[1:]', 'f[:1]', 'd.items[::-1]', 'tags[1:]', 'people[1:][0].name', 'l[1:-1]',
    'l[x - 7:]', 'l[:y]', 'l[::y]', 'l[::z]', "s[7:]", 's[::-1]', 's[-5:].upper()', 'u[::-1]', 'u[1:2]',
]:
    add('slice', src, strv=False)

# ---- attribute access (dicts: own keys; everything else: AttributeError)
for src in [
    'd.a', 'd.b', 'd.b.c', 'd.b.n', 'd.name', 'd.items', 'd.items[0]', 'd.f', 'd.z', 'd.missing',
    "d['missing']", 'd.b.missing', 'd.b.c.missing', 'd.a.b', 'l.a', 's.foo', 'n.foo', 'x.foo', 'f.foo',
    't.foo', 'e.foo', 'el.foo', 'ed.a', 'ed.items', 'd.name.upper()', "d['b'].c", 'd.b["c"]', 'd.A',
    'people[0].age', 'people[0].age + people[1].age', 'people[1].missing', 'nan.foo', 'd.items.foo',
    '(1, 2).foo', '[1].foo', "'abc'.foo", 'd.name.foo', 'd.b.n * 2', 'd.f * 2', 'd.z or d.a',
    'not d.z', 'd.a == 1 and d.b.c == "deep"', 'len(d.b)', 'len(d.b.c)',
]:
    add('attr', src)

# ---- functions
for src in [
    # len
    'len(s)', 'len(e)', 'len(l)', 'len(el)', 'len(d)', 'len(ed)', 'len((1, 2))', 'len(())', 'len(u)',
    'len(emoji)', "len('😀')", "len('👍🏽')", "len('e\u0301')", 'len(5)', 'len(2.5)', 'len(None)', 'len(True)',
    'len()', 'len(s, s)', 'len(nested)', 'len(people)', 'len(s) > 5',
    # abs
    'abs(-5)', 'abs(5)', 'abs(-2.5)', 'abs(-0.0)', 'abs(0)', 'abs(True)', 'abs(False)', 'abs(ninf)',
    'abs(nan)', "abs('a')", 'abs(None)', 'abs([1])', 'abs()', 'abs(1, 2)', 'abs(y)', 'abs(g)', 'abs(nbig)',
    # min / max
    'min(1, 2)', 'max(1, 2)', 'min(3, 1, 2)', 'max(3, 1, 2)', 'min([3, 1, 2])', 'max((3, 1, 2))', "max('abc')",
    "min('abc')", "min('')", 'max(d)', 'min(d)', 'max(ed)', 'min([])', 'max(())', 'max(1)', 'min()', 'max()',
    "max(1, 'a')", "min([1, 'a'])", 'max([1, 2.0, 2])', 'max(2.0, 2)', 'max(2, 2.0)', 'min(1, 1.0)',
    'min(1.0, 1)', 'max(True, 1)', 'max(1, True)', 'min(False, 0)', 'min([[1, 2], [1]])', 'max((1, 2), (1, 3))',
    'max([nan, 1])', 'max([1, nan])', 'min([nan, 1])', 'min(1, nan)', 'max(inf, big)', 'min(ninf, nbig)',
    'max(l)', 'min(l)', 'max(words)', 'min(words)', 'max(tags)', 'max(x, y, z)', 'min(x, y, z)', 'max(f, g)',
    "max('b', 'a', 'c')", "max(['a'], ['b'])", 'max([1], (1,))', 'max(None, 1)', 'max(n)', 'min(5.5)',
    'max(mixed)', 'max(u)', 'min(u)', 'max(emoji, "Ａ")', 'min([-0.0, 0.0])', 'min([0.0, -0.0])',
    'max(0, -0.0)', 'max(people[0].age, people[1].age)', 'max([[], [0]])', 'min(nested)', 'max(nested)',
    'max(s)', 'min(s)', 'max(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)',
    # round
    'round(2.5)', 'round(3.5)', 'round(-2.5)', 'round(-0.5)', 'round(0.5)', 'round(1.5)', 'round(2.4999)',
    'round(-0.4)', 'round(7)', 'round(True)', 'round(inf)', 'round(ninf)', 'round(nan)', "round('a')",
    'round(None)', 'round()', 'round(1, 2, 3)', 'round(2.5, None)', 'round(1.5, 0)', 'round(2.5, 0)',
    'round(-0.4, 0)', 'round(0.125, 2)', 'round(0.375, 2)', 'round(1.2345, 1)', 'round(1.25, 1)',
    'round(-1.25, 1)', 'round(1234.5678, -2)', 'round(1250.0, -2)', 'round(1350.0, -2)', 'round(15, -1)',
    'round(25, -1)', 'round(-25, -1)', 'round(35, -1)', 'round(5, -1)', 'round(7, 2)', 'round(7, 0)',
    'round(123456, -3)', 'round(123500, -3)', 'round(124500, -3)', 'round(-124500, -3)', 'round(True, 2)',
    'round(inf, 2)', 'round(nan, 2)', 'round(ninf, -1)', 'round(1, 2.0)', "round(1.5, 'a')", 'round(2.675, 2)',
    'round(0.5, 1)', 'round(f)', 'round(g)', 'round(h, 1)', 'round(big)', 'round(1e16)', 'round(9e15)',
    'round(4503599627370496.5)', 'round(4503599627370495.5)', 'round(-4503599627370495.5)', 'round(1e300)',
    'round(x, -1)', 'round(y, -1)', 'round(big, -1)', 'round(big, -15)', 'round(big, -16)', 'round(0, -5)',
    'round(1.5, -1)', 'round(5.0, -1)', 'round(15.0, -1)', 'round(2.5, 3)', 'round(0.0, 2)', 'round(-0.0)',
    'round(-0.0, 1)',
    # int
    'int(7)', 'int(True)', 'int(False)', 'int(3.9)', 'int(-3.9)', 'int(-0.5)', 'int(0.0)', 'int(-0.0)',
    "int('12')", "int(' -12 ')", "int('+0')", "int('007')", "int('1_2')", "int('1_000_000')", "int('_12')",
    "int('12_')", "int('1__2')", "int('')", "int(' ')", "int('1.0')", "int('1e3')", "int('0x10')", "int('a')",
    "int('\\t12\\n')", "int('12 3')", "int('-')", "int('+-1')", "int('9007199254740991')",
    "int('9007199254740992')", "int('-9007199254740991')", "int('99999999999999999999')", 'int(1e16)',
    'int(9007199254740991.0)', 'int(9007199254740992.0)', 'int(-9007199254740992.0)', 'int(1e300)', 'int(inf)',
    'int(ninf)', 'int(nan)', 'int(None)', 'int([1])', 'int(d)', 'int()', 'int(1, 2, 3)', 'int(f)', 'int(g)',
    "int(digits)", "int(s)", "int('3')",
    # float
    'float(1)', 'float(True)', 'float(-0.0)', "float('1.5')", "float(' 1.5 ')", "float('1e5')", "float('1E-5')",
    "float('nan')", "float('NaN')", "float(' nan ')", "float('inf')", "float('-inf')", "float('+inf')",
    "float('infinity')", "float('-iNfInItY')", "float('Infinity')", "float('1_0.5')", "float('1__0')",
    "float('_1')", "float('.5')", "float('5.')", "float('.')", "float('')", "float(' ')", "float('0x1p3')",
    "float('1e400')", "float('-1e400')", "float('-0')", "float('1e-400')", "float('1.5.2')", "float('e5')",
    "float('1e')", "float('inf5')", "float('nana')", "float('- 1')", "float('+1.5')", "float('1_000')",
    "float('1_e5')", "float('1e_5')", "float('1e5_0')", "float('\\t2.5\\n')", 'float([1])', 'float(None)',
    'float()', 'float(1, 2)', 'float(big)', 'float(nbig)', 'float(x)', 'float(f)', 'float(s)', "float('0.1')",
    "float('00.5')", "float('1.')", "float('9007199254740993')", "float('123456789012345678901234567890')",
    "float('2.2250738585072014e-308')", "float('4.9e-324')", "float('2.4e-324')",
    # str
    'str()', 'str(None)', 'str(True)', 'str(False)', 'str(0)', 'str(-5)', 'str(big)', 'str(nbig)', "str('x')",
    'str(s)', 'str(e)', 'str(1, 2)', 'str(d)', 'str(ed)', 'str(l)', 'str(el)', 'str(nested)', 'str(people)',
    'str(mixed)', 'str(words)', 'str(())', 'str((1,))', 'str((1, 2))', "str((1, 'a', (2,), [3]))",
    "str(['a', \"it's\", 'say \"hi\"'])", 'str([quote])', 'str([dq])', "str(['both \\' and \"'])",
    "str(['back\\\\slash'])", "str(['\\n\\t\\r'])", "str(['\\x00\\x1f\\x7f'])", "str(['\\x01', '\\x1b'])",
    "str(['é', 'ß', '😀', 'Ａ'])", 'str([u, emoji])', "str([''])", "str([\"'\"])", "str(['\"'])",
    "str(['\\'\"'])", 'str([[], [[]], ()])', 'str([None, True, False])', 'str([1.0, 2, -0.0])',
    'str([inf, ninf, nan])', 'str(d.b)', 'str([d.b])', 'str((d.b,))', 'str([ws])', 'str(ws)', "str('a\\\\b')",
    'str([0.1, 1e16, 1e-05, 1.5e300])', 'str([s, s])', 'str((e,))', 'str([[1, 2], (3, 4)])',
    # bool
    'bool()', 'bool(0)', 'bool(0.0)', 'bool(-0.0)', 'bool(nan)', "bool('0')", "bool('')", "bool('False')",
    'bool(el)', 'bool(l)', 'bool(ed)', 'bool(d)', 'bool(())', 'bool((0,))', 'bool(None)', 'bool([[]])',
    'bool(1, 2)', 'bool(x)', 'bool(z)', 'bool(F)', 'bool(t)', 'bool(inf)', 'bool(e)', 'bool(s)',
    # sum
    'sum([])', 'sum(())', 'sum(l)', 'sum([1.5, 2])', 'sum((1, 2), 3)', 'sum([1, 2], 0.5)', "sum('abc')",
    "sum([1, 'a'])", "sum(['a'])", "sum(['a'], '')", "sum([], '')", 'sum(d)', 'sum(ed)', 'sum([0.1] * 10)',
    'sum([True, True])', 'sum([True], True)', 'sum(5)', 'sum(None)', 'sum()', 'sum([[1], [2]], [])',
    'sum([[1]], [])', 'sum([], [])', 'sum([(1,)], ())', 'sum([[1]])', 'sum([1, 2], [])', 'sum([1], 2, 3)',
    'sum([1e308, 1e308, -1e308])', 'sum([1e16, 1, 1])', 'sum([1, 1, 1e16])', 'sum([inf, ninf])',
    'sum([big, 1, -5])', 'sum([big, -5, 1])', 'sum([big, 0.5])', 'sum([big], 1)', 'sum(nested, [])',
    'sum([f, g, h])', 'sum([x, y, z])', 'sum(mixed)', 'sum([1, None])', 'sum([d.a, d.b.n])', 'sum(tags, e)',
    # any / all
    'any([])', 'all([])', "any('')", "all('abc')", "all('')", "any([0, '', None])", "any([0, '', None, 1])",
    'all([1, 1.0, True, [0]])', 'all([1, 0])', 'any(d)', 'all(d)', 'any(ed)', 'all(ed)', 'any((0, 0.0))',
    'any(5)', 'any(None)', 'all(1.5)', 'any()', 'all([], [])', 'any([nan])', 'all([nan])', 'any(el)',
    'all(l)', 'any(nested)', 'all(nested)', 'any(mixed)', 'all(mixed)', 'any(s)', 'all(e)',
    'all([x > 0, y < 0])', 'any([x > 100, y > 100])',
    # nested calls
    'len(str(big))', 'str(len(s))', 'int(str(x)) + 1', 'float(str(f))', "max(len(s), len('abc'))",
    'abs(min(l) - max(l))', 'round(sum([f, g]) / 2, 1)', 'str(round(f))', 'str(round(f, 0))', 'bool(str(F))',
    'int(float(7))', 'str(int(-3.9))', 'str(float(x))', 'str(abs(-0.0))', 'str(sum([0.5, 0.5]))',
    'str(max(2.0, 2))', 'str(min(1, 1.0))', 'str(x / 1)', 'str(x // 1)', 'str(f // 1)',
]:
    add('call', src)

# ---- str of floats (repr rules)
for src in [
    'str(1.0)', 'str(0.1)', 'str(1e-05)', 'str(0.0001)', 'str(0.00012345)', 'str(1e16)', 'str(1e15)',
    'str(9999999999999998.0)', 'str(1.5e300)', 'str(inf)', 'str(ninf)', 'str(nan)', 'str(-0.0)', 'str(0.0)',
    'str(5e-324)', 'str(1.7976931348623157e308)', 'str(0.1 + 0.2)', 'str(1 / 3)', 'str(2 / 3)', 'str(1e22)',
    'str(1e21)', 'str(1e-7)', 'str(123456789.123)', 'str(-1.5e-7)', 'str(100.0)', 'str(2 ** 0.5)',
    'str(123456789012345678.0)', 'str(1e100)', 'str(1.2345678901234567e-300)', 'str(12345.678)',
    'str(0.5)', 'str(-2.5)', 'str(f)', 'str(g)', 'str(h)', 'str(3.0)', 'str(-3.0)', 'str(1e16 - 2)',
    'str(1e16 + 2)', 'str(2.0 ** 53)', 'str(2.0 ** 60)', 'str(1 / 1024)', 'str(1e-4 / 2)', 'str(0.001)',
    'str(1234567890123456.7)', 'str(1.0e-10)', 'str(7.0 // 2)', 'str(7 // 2)', 'str(7.0 % 2)', 'str(7 % 2)',
    'str(7 / 7)', 'str(2 ** 2)', 'str(2 ** -2)', 'str(2.0 ** 2)', 'str(True + True)', 'str(True / True)',
    'str(-(0.0))', 'str(0.0 * -1)', 'str(-0.0 + 0.0)', 'str(-0.0 - 0.0)', 'str(float(big))',
    'str(float(nbig))', 'str(big + 1.0)', 'str(1e15 + 0.3)', 'str(1e16 / 3)', 'str(0.000123)',
    'str(4.35)', 'str(0.1 * 3)', 'str(1.1 * 1.1)', 'str(3.14159e-5)', 'str(9.999999999999999e15)',
    'str(1e+16)', 'str(1E16)', 'str(1.0e16)', 'str(2e-05)', 'str(2.5e-05)', 'str(1e-05 * 10)',
    'str(6.02214076e23)', 'str(1.602176634e-19)', 'str(299792458.0)', 'str(float(2 ** 52))',
]:
    add('str-float', src, strv=False)

# ---- string methods
for src in [
    "'AbC'.lower()", "'AbC'.upper()", "s.lower()", "s.upper()", "e.upper()", "'  x '.strip()", "ws.strip()",
    "'xxaxx'.strip('x')", "'abc'.strip('')", "'abc'.strip(None)", "'abc'.strip(1)", "'abcba'.strip('ab')",
    "'\\x1ca\\x1f'.strip()", "'\\x85a\\xa0'.strip()", "'\\u2003a\\u3000'.strip()", "'\\ufeffa'.strip()",
    "'\\u200ba'.strip()", "'\\x0b\\x0ca\\x1c\\x1d\\x1e'.strip()", "'\\u2028a\\u2029'.strip()",
    "'a\\x1cb'.split()", "'a\\xa0b\\u2003c'.split()", "'a\\ufeffb'.split()", "'a\\u200bb'.split()",
    "'abc'.upper(1)", "'abc'.lower(None)", "'a b'.split(' ', 1)", "csv.split(',')", "'  a  b '.split()",
    "'a b c'.split(None, 1)", "'a b c'.split(None, 0)", "'a b c'.split(None, -1)", "''.split()", "''.split(',')",
    "'abc'.split('')", "'abc'.split(1)", "'a,b,c'.split(',', 1)", "'a,b,c'.split(',', -1)", "'a,b,c'.split(',', 0)",
    "'a,,b'.split(',,')", "'aaa'.split('a')", "'  '.split()", "'  '.split(' ')", "' a b '.split(' ')",
    "'a\\tb\\nc  d'.split()", "'a b'.split(None)", "'a b'.split(' ', 1.5)", "'a b'.split(' ', None)",
    "'abc'.split('b', 5)", "'a😀b😀c'.split('😀')", "'a'.replace('', '-')", "''.replace('', '-')",
    "'aaa'.replace('a', 'b', 2)", "'aaa'.replace('a', 'b', -1)", "'aaa'.replace('a', 'b', 0)",
    "'abc'.replace(1, 'b')", "'abc'.replace('a', 1)", "'abc'.replace('a')", "'abc'.replace('a', 'b', 'c')",
    "'abc'.replace('', '-', 2)", "'abab'.replace('ab', '')", "'a😀a'.replace('😀', 'x')",
    "'a😀a'.replace('', '.')", "s.replace('l', 'L')", "s.replace('o', '0', 1)", "'aaa'.replace('aa', 'b')",
    "'abc'.startswith('a')", "'abc'.startswith(('x', 'a'))", "'abc'.startswith(('x', 'y'))",
    "'abc'.startswith(())", "'abc'.startswith(['a'])", "'abc'.startswith('')", "'abc'.startswith(1)",
    "'abc'.startswith(('a', 1))", "'abc'.endswith('bc')", "'abc'.endswith(('c',))", "'abc'.endswith('')",
    "'abc'.endswith('abcd')", "'abc'.endswith(None)", "'😀a'.startswith('😀')", "u.endswith('é')",
    "s.startswith('Hello')", "s.endswith('world')", "s.lower().endswith('world')", "'abc'.startswith()",
    "'abc'.endswith('a', 'b', 'c', 'd')", "s.strip().lower().split()", "s.split(', ')[1].upper()",
    "d.name.lower()", "d.name.startswith('A')", "'ABC'.lower().upper().lower()", "quote.upper()",
    "x.lower()", "n.upper()", "l.split()", "d.strip()", "f.upper()", "t.lower()", "el.strip()",
    "(1, 2).upper()", "d.b.c.upper()", "kind.upper() == 'A'", "status.startswith('act')",
    "len(s.split())", "s.split()[0]", "s.split(',')", "'  '.strip() == ''", "'x'.strip('xyz')",
    "'abc'.strip('cba')", "'a-b_c'.replace('-', '_').split('_')", "'ǅ'.lower()", "'ǅ'.upper()",
    "'ﬁ'.upper()", "'ŉ'.upper()", "'ΰ'.upper()", "'ß'.upper()", "'ẞ'.lower()", "'İ'.lower()", "len('İ'.lower())",
    "'I'.lower()", "'ı'.upper()", "'ΣΑΣ'.lower()", "'ΑΣ Σ'.lower()", "'Σ'.lower()", "'ΑΣ'.lower()",
    "'ΑΣ.'.lower()", "'aΣb'.lower()", "'ΑΣΑ'.lower()", "'Straße'.upper()", "'ÉCOLE'.lower()",
    "'ǈ'.upper()", "'Ω'.lower()", "'K'.lower()", "'Å'.lower()", "u.upper()", "u.lower()", "emoji.upper()",
    "'ﬀ'.upper()", "'ᾳ'.upper()", "'Ⓐ'.lower()", "'𐐀'.lower()", "'𐐨'.upper()", "len('ﬃ'.upper())",
    "'abc'.lower", "s.upper", "x.real", "f.imag", "l.append", "d.keys", "d.get", "'abc'.split()[5]", "'a'.startswith('a', 'b')",
    # dict.get and `in` on dicts: reading a key that may be missing
    "d.get('a')", "d.get('a', 5)", "d.get('missing')", "d.get('missing', 5)", "d.get('missing', None)",
    "d.get('b').get('c')", "d.b.get('n', 0) + 1", "ed.get('x', 'dflt')",
    "d.get(1)", "d.get(1, 'one')", "d.get(1.5, 2)", "d.get(True, 3)", "d.get(None, 4)", "d.get((1, 2), 5)",
    "d.get([1])", "d.get([1], 2)", "d.get(d)", "d.get()", "d.get('a', 1, 2)", "d.get('items')[1]",
    "d.get('z') is None", "d.get('z', 7)", "d.get('missing') is None", "d.get('name').lower()",
    "s.get('a')", "l.get(0)", "x.get('a')", "n.get('a')", "(1, 2).get(0)", "d.items.get(0)",
    "'a' in d", "'missing' in d", "1 in d", "[1] in d", "'c' in d.b", "'a' not in ed",
    "d.get('a') if 'a' in d else -1", "d['missing'] if 'missing' in d else d.get('missing', -1)",
]:
    add('method', src, strv=False)

# ---- unicode: lengths, indexing, ordering by code points
for src in [
    "len('ß😀é')", "len('👨‍👩‍👧')", "len('🇪🇸')", "'🇪🇸'[0]", "'🇪🇸'[1]", "'👨‍👩‍👧'[1]", "'😀' < '😁'",
    "'\uffff' < '😀'", "'𐀀' > '\ue000'", "min('a😀Ａ')", "max('a😀Ａ')", "max(['😀', 'Ａ'])", "'😀' in '😀😀'",
    "'😀'.strip('😀')", "'😀a😀'.strip('😀')", "str(['😀'])", "'é' == 'é'", "len('é')", "'😀' * 3",
    "len('😀' * 3)", "('😀' * 3)[1]", "('😀' * 3)[-1:]", "u[::2]", "u[1:]", "len(u.upper())", "u.upper()[1]",
    "'Ａ' < '😀' < '🙂'", "'\\U0001F600' == '😀'", "len('\\u00e9')",
]:
    add('unicode', src, strv=False)

# ---- names
for src in [
    'undefined_name', 'X', 'len(q)', 'x + q', 'True or q', 'q if False else 1', 'q + 1 / 0', '1 / 0 + q',
    '[1 / 0, q]', 'len(1 / 0)', '[q, 1 / 0]', 'q.a', 'q[0]', 'not q', '-q', 'q is None', "d['b'] and q",
    "d.missing and q", 'x_1', '_x', 'Len', 'true', 'none', 'NaN', 'inf_', 'score2',
]:
    add('name', src)

# ---- error precedence: left to right, the first error wins
for src in [
    "1 / 0 + 'a'", "'a' + 1 / 0", '[1][5] + q', "d['zz'].a", 'd.zz[0]', "(1 / 0) < 'a'", "'a' < 1 / 0",
    "len(5) + 1 / 0", "max([]) + int('x')", "int('x') + max([])", "1 < 'a' < 1 / 0", "abs('a') or 1 / 0",
    "l[10] if x else 1 / 0", "1 / 0 if l[10] else 0", "[l[9], 1 / 0]", "(1 / 0, l[9])", "str(1 / 0)",
    "'abc'.split('')[q]", "'abc'.split(q)", "q.split('')", "2 ** 60 + 'a'", "'a' + 2 ** 60", "1 / 0 + 2 ** 60",
    "2 ** 60 + 1 / 0", "x * 2 ** 60 * 0", "[2 ** 60] if F else 0", "2 ** 60 if F else 0", "len('a' * 2 ** 60)",
    "int('9' * 20)", "str(2 ** 60)", "(-8) ** 0.5 < 1", "(-8) ** 0.5 == 1", "1 < (-8) ** 0.5",
    "[(-8) ** 0.5][0] or 1", "(-8) ** 0.5 if F else 1",
]:
    add('precedence', src)

# ---- realistic conditions (the kind pipelines use)
CONTEXTS['order'] = {
    'total': 149.99, 'status': 'new', 'items': [{'sku': 'A1', 'qty': 2, 'price': 19.99},
                                                 {'sku': 'B2', 'qty': 1, 'price': 110.01}],
    'customer': {'name': 'Zoë', 'tier': 'gold', 'tags': ['vip', 'eu'], 'since': 2019},
    'rows': 1200, 'pending': 0, '_loop_iteration': 3, 'coupon': None, 'ratio': 0.75, 'country': 'ES',
}
for src in [
    "total > 100 and status == 'new'", 'rows > 0', 'pending > 0', '_loop_iteration < 3', '_loop_iteration <= 3',
    "customer.tier == 'gold' and 'vip' in customer.tags", "customer['name'].upper()", 'len(items) == 2',
    "items[0].qty * items[0].price + items[1].qty * items[1].price", "sum([items[0].qty, items[1].qty])",
    "coupon is None or coupon == 'X'", "coupon.code", "coupon['code']", "country in ('ES', 'FR', 'DE')",
    "country.lower() in ['es', 'fr']", "round(total * ratio, 2)", "str(round(total))", "int(total) // 10 * 10",
    "total if total > 100 else 0", "customer.since >= 2020 or customer.tier != 'basic'", 'items[0].sku[0]',
    "max(items[0].price, items[1].price)", "min(items[0].qty, items[1].qty, 5)", "not coupon", "coupon or 'none'",
    "customer.tags[-1]", "customer.tags[2]", "customer.missing", "'eu' in customer.tags and total < 1000",
    "0 <= ratio <= 1", "ratio * 100 // 1", "ratio * 100 % 7", "rows / 7", "rows // 7", "rows % 7", "str(rows / 4)",
    "str(rows) + ' rows'", "status.startswith('ne') and rows >= 1200",
    "len(customer.name)", "customer.name[1]", "customer.name.upper()", "customer.name.lower() == 'zoë'",
]:
    add('realistic', src, ctx='order')


# --------------------------------------------------------------------------------------------------
# Evaluation and output


def resolve_ctx(ctx):
    return CONTEXTS[ctx] if isinstance(ctx, str) else ctx


def contains_float(v) -> bool:
    if isinstance(v, float):
        return True
    if isinstance(v, (list, tuple)):
        return any(contains_float(x) for x in v)
    if isinstance(v, dict):
        return any(contains_float(x) for x in dict.values(v))
    return False


def main() -> int:
    for name, ctx in CONTEXTS.items():
        for k, v in ctx.items():
            check_ctx_value(v, f'{name}.{k}')
    out_cases = []
    excluded: dict[str, int] = {}
    seen = set()
    work = list(cases)
    idx = 0
    while idx < len(work):
        c = work[idx]
        idx += 1
        key = (c['expr'], json.dumps(c['ctx'], sort_keys=True) if not isinstance(c['ctx'], str) else c['ctx'])
        if key in seen:
            continue
        seen.add(key)
        ctx = resolve_ctx(c['ctx'])
        try:
            kind, payload, differs = evaluate(c['expr'], ctx)
        except Outside as o:
            print(f'gen-expr-corpus: outside the language: {c["expr"]!r}: {o}', file=sys.stderr)
            return 2
        except Excluded as x:
            reason = str(x).split(':')[0]
            excluded[reason] = excluded.get(reason, 0) + 1
            continue
        rec = {'id': len(out_cases), 'group': c['group'], 'expr': c['expr'], 'ctx': c['ctx']}
        if kind == 'value':
            rec['expect'] = {'value': enc(payload)}
            rec['truthy'] = bool(payload)
            # int-vs-float is invisible in a JS number: check it again through str().
            numeric = (isinstance(payload, (int, float)) and not isinstance(payload, bool)) or (
                isinstance(payload, (list, tuple)) and contains_float(payload))
            if c['strv'] and numeric:
                work.insert(idx, {'group': c['group'] + ':str', 'expr': f'str({c["expr"]})', 'ctx': c['ctx'],
                                  'note': 'int/float distinction', 'strv': False})
        else:
            rec['expect'] = {'error': payload}
        if differs:
            rec['differs'] = differs
        if c.get('note'):
            rec['note'] = c['note']
        out_cases.append(rec)

    groups: dict[str, int] = {}
    errors: dict[str, int] = {}
    for r in out_cases:
        groups[r['group']] = groups.get(r['group'], 0) + 1
        if 'error' in r['expect']:
            errors[r['expect']['error']] = errors.get(r['expect']['error'], 0) + 1
    doc = {
        '_generated': 'GENERATED by scripts/gen-expr-corpus.py from CPython — do not edit; '
                      'run `python3 scripts/gen-expr-corpus.py` to regenerate',
        'python': sys.version.split()[0],
        'encoding': 'null/bool/int/str as JSON; {"$float": repr}; {"$tuple": [...]}; {"$dict": {...}}; '
                    'ctx is an object of encoded values or the name of a shared context',
        'limits': {'maxInt': MAX_INT, 'maxValueSize': MAX_VALUE_SIZE},
        'count': len(out_cases),
        'groups': groups,
        'errors': errors,
        'excluded': excluded,
        'contexts': {name: {k: enc(v) for k, v in ctx.items()} for name, ctx in CONTEXTS.items()},
        'cases': out_cases,
    }
    text = json.dumps(doc, ensure_ascii=False, indent=None, separators=(',', ':'))
    # One case per line: readable diffs, still compact.
    text = text.replace(',"cases":[{', ',"cases":[\n{').replace('},{"id":', '},\n{"id":')
    text += '\n'
    if '--check' in sys.argv:
        current = OUT.read_text(encoding='utf-8') if OUT.exists() else ''
        if current != text:
            print('gen-expr-corpus: test/fixtures/expr-corpus.json is stale', file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding='utf-8')
    print(f'gen-expr-corpus: {len(out_cases)} cases ({", ".join(f"{k} {v}" for k, v in groups.items())}); '
          f'errors: {errors}; excluded: {excluded}', file=sys.stderr)
    if sys.version_info[:2] != (3, 11):
        print('gen-expr-corpus: WARNING: the language follows CPython 3.11; this is '
              f'{sys.version.split()[0]}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
