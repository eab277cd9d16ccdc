"""The one whitelist parser for math written as text (rate laws, rules, observables, ODE text).

Grammar, loosest binding first::

    expr    := or
    or      := and ('||' and)*
    and     := rel ('&&' rel)*
    rel     := sum (('<' | '<=' | '>' | '>=' | '==' | '!=') sum)?
    sum     := product (('+' | '-') product)*
    product := unary (('*' | '/') unary)*
    unary   := ('-' | '+' | '!') unary | power
    power   := atom (('^' | '**') unary)?          (right-associative; -x^2 = -(x^2))
    atom    := NUMBER | NAME | NAME '(' [expr (',' expr)*] ')' | '(' expr ')'

Numbers are decimal with an optional exponent.  Names are identifiers ``[A-Za-z_][A-Za-z0-9_]*``
(Python keywords such as ``lambda`` are ordinary names).  A name followed by ``(`` is a built-in
function from the whitelist of :mod:`.expr` (aliases below) or, otherwise, a call of a
user-defined function, which the model checks exists.  ``log(x)`` is the natural logarithm and
``log(b, x)`` the logarithm to base ``b``.  Anything else -- quotes, attribute access, indexing,
assignment, unknown characters -- is a :class:`~scalebridge.errors.ModelError`.  Nothing here
calls ``eval`` or ``exec``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass

from ..errors import ModelError
from .expr import OPS, UNARY_FUNCS, Call, Expr, FunCall, Num, Sym

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\*\*|<=|>=|==|!=|&&|\|\||[-+*/^(),<>!])
    """,
    re.VERBOSE | re.ASCII,
)

_ALIASES = {
    "ceil": "ceiling",
    "asin": "arcsin",
    "acos": "arccos",
    "atan": "arctan",
    "asec": "arcsec",
    "acsc": "arccsc",
    "acot": "arccot",
    "asinh": "arcsinh",
    "acosh": "arccosh",
    "atanh": "arctanh",
    "asech": "arcsech",
    "acsch": "arccsch",
    "acoth": "arccoth",
    "power": "pow",
    "lt": "lt",
    "leq": "le",
    "gt": "gt",
    "geq": "ge",
    "eq": "eq",
    "neq": "ne",
}
_FUNCTIONS = set(UNARY_FUNCS) | {
    "min", "max", "rem", "quotient", "root", "pow", "piecewise",
    "and", "or", "xor", "not", "implies", "rateOf", "log", "log2",
    "lt", "le", "gt", "ge", "eq", "ne",
}  # fmt: skip
_CONSTANTS = {
    "pi": "pi",
    "exponentiale": "exponentiale",
    "avogadro": "avogadro",
    "true": "true",
    "false": "false",
    "INF": "inf",
    "inf": "inf",
    "infinity": "inf",
    "Infinity": "inf",
    "NaN": "nan",
    "nan": "nan",
    "notanumber": "nan",
}
_REL = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne"}


@dataclass
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(text: str, err: _Err) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            err(pos, f"unexpected character {text[pos]!r}")
        assert m is not None
        kind = m.lastgroup or ""
        if kind != "ws":
            toks.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    toks.append(_Tok("end", "", len(text)))
    return toks


class _Err:
    def __init__(self, text: str, element: str | None, source: str | None):
        self.text, self.element, self.source = text, element, source

    def __call__(self, pos: int, msg: str) -> None:
        snippet = self.text if len(self.text) <= 80 else self.text[:77] + "..."
        raise ModelError(
            f"cannot parse {snippet!r} at column {pos + 1}: {msg}",
            element=self.element,
            source=self.source,
        )


def parse_expr(
    text: str,
    *,
    element: str | None = None,
    source: str | None = None,
    time_names: Collection[str] = ("time",),
    shadow: Collection[str] = (),
) -> Expr:
    """Parse infix ``text`` into an expression tree.

    ``time_names`` are names that mean the simulation time; ``shadow`` are model symbols that
    take precedence over built-in constant names such as ``pi`` or ``time``.  ``element`` and
    ``source`` are quoted in errors.
    """
    if not isinstance(text, str):
        raise ModelError(f"expected text, got {type(text).__name__}", element=element)
    err = _Err(text, element, source)
    toks = _tokenize(text, err)
    p = _Parser(toks, err, set(time_names), set(shadow))
    if toks[0].kind == "end":
        err(0, "empty expression")
    try:
        e = p.expr()
    except RecursionError:
        err(p.peek().pos, "nested too deeply")
        raise
    if p.peek().kind != "end":
        t = p.peek()
        err(t.pos, f"unexpected {t.text!r}")
    return e


class _Parser:
    def __init__(self, toks: list[_Tok], err: _Err, time_names: set[str], shadow: set[str]):
        self.toks, self.i, self.err = toks, 0, err
        self.time_names, self.shadow = time_names, shadow

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def next(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def accept(self, *texts: str) -> _Tok | None:
        t = self.peek()
        if t.kind == "op" and t.text in texts:
            self.i += 1
            return t
        return None

    def expect(self, text: str) -> None:
        t = self.peek()
        if not (t.kind == "op" and t.text == text):
            self.err(t.pos, f"expected {text!r}, found {t.text or 'end of text'!r}")
        self.i += 1

    def expr(self) -> Expr:
        return self.or_()

    def or_(self) -> Expr:
        args = [self.and_()]
        while self.accept("||"):
            args.append(self.and_())
        return args[0] if len(args) == 1 else Call("or", tuple(args))

    def and_(self) -> Expr:
        args = [self.rel()]
        while self.accept("&&"):
            args.append(self.rel())
        return args[0] if len(args) == 1 else Call("and", tuple(args))

    def rel(self) -> Expr:
        left = self.sum()
        t = self.accept(*_REL)
        if t:
            right = self.sum()
            left = Call(_REL[t.text], (left, right))
            t2 = self.peek()
            if t2.kind == "op" and t2.text in _REL:
                self.err(t2.pos, "chained comparison; use && to combine comparisons")
        return left

    def sum(self) -> Expr:
        left = self.product()
        terms = [left]
        while True:
            t = self.accept("+", "-")
            if not t:
                break
            right = self.product()
            if t.text == "+":
                terms.append(right)
            else:
                base = terms[0] if len(terms) == 1 else Call("add", tuple(terms))
                terms = [Call("sub", (base, right))]
        return terms[0] if len(terms) == 1 else Call("add", tuple(terms))

    def product(self) -> Expr:
        factors = [self.unary()]
        while True:
            t = self.accept("*", "/")
            if not t:
                break
            right = self.unary()
            if t.text == "*":
                factors.append(right)
            else:
                base = factors[0] if len(factors) == 1 else Call("mul", tuple(factors))
                factors = [Call("div", (base, right))]
        return factors[0] if len(factors) == 1 else Call("mul", tuple(factors))

    def unary(self) -> Expr:
        t = self.accept("-", "+", "!")
        if t:
            operand = self.unary()
            if t.text == "+":
                return operand
            if t.text == "!":
                return Call("not", (operand,))
            if isinstance(operand, Num):
                return Num(-operand.value)
            return Call("neg", (operand,))
        return self.power()

    def power(self) -> Expr:
        base = self.atom()
        if self.accept("^", "**"):
            return Call("pow", (base, self.unary()))
        return base

    def atom(self) -> Expr:
        t = self.next()
        if t.kind == "num":
            return Num(float(t.text))
        if t.kind == "name":
            nxt = self.peek()
            if nxt.kind == "op" and nxt.text == "(":
                self.i += 1
                args: list[Expr] = []
                if not self.accept(")"):
                    args.append(self.expr())
                    while self.accept(","):
                        args.append(self.expr())
                    self.expect(")")
                return self.call(t, tuple(args))
            name = t.text
            if name in self.shadow:
                return Sym(name)
            if name in self.time_names:
                return Call("time")
            if name in _CONSTANTS:
                return Call(_CONSTANTS[name])
            return Sym(name)
        if t.kind == "op" and t.text == "(":
            e = self.expr()
            self.expect(")")
            return e
        self.err(t.pos, f"unexpected {t.text or 'end of text'!r}")
        raise AssertionError  # pragma: no cover

    def call(self, t: _Tok, args: tuple[Expr, ...]) -> Expr:
        name = _ALIASES.get(t.text, t.text)
        if t.text in self.shadow or name not in _FUNCTIONS:
            return FunCall(t.text, args)
        if name == "log":
            if len(args) == 1:
                return Call("ln", args)
            if len(args) == 2:
                return Call("logb", args)
            self.err(t.pos, "log takes 1 or 2 arguments")
        if name == "log2":
            if len(args) != 1:
                self.err(t.pos, "log2 takes 1 argument")
            return Call("logb", (Num(2.0), args[0]))
        if name == "rateOf" and not (len(args) == 1 and isinstance(args[0], Sym)):
            self.err(t.pos, "rateOf takes one symbol")
        lo, hi = OPS[name]
        if len(args) < lo or (hi is not None and len(args) > hi):
            want = str(lo) if lo == hi else f"{lo}+" if hi is None else f"{lo}-{hi}"
            self.err(t.pos, f"{t.text} takes {want} arguments, got {len(args)}")
        return Call(name, args)


def parse_number(text: str, *, element: str | None = None, source: str | None = None) -> float:
    """A plain number (no expression), for option values such as ``--param k=2.5``."""
    try:
        v = float(text)
    except ValueError:
        raise ModelError(f"not a number: {text!r}", element=element, source=source) from None
    if math.isnan(v):
        raise ModelError(f"not a number: {text!r}", element=element, source=source)
    return v
