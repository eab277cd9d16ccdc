"""Expression trees <-> sympy, node by node (no text is ever parsed by sympy).

:func:`to_sympy` maps an :class:`~scalebridge.model.expr.Expr` onto a sympy expression, each
``Sym(name)`` onto ``sympy.Symbol(name, real=True)`` (or onto the symbol given in ``symbols``);
:func:`from_sympy` maps a sympy expression back onto a tree.  Both cover the arithmetic, powers
and roots, ``exp``/``ln``/``log10``/``logb``, ``sqrt``, ``abs``, the trigonometric and hyperbolic
functions and their inverses, ``min``/``max``, ``piecewise`` and the relational and logical
operators; anything else (``rateOf``, ``floor``, ``factorial``, user functions not expanded, ...)
raises :class:`~scalebridge.errors.UnsupportedFeatureError` naming the operation.

Conventions: SBML ``piecewise(v1, c1, v2, c2, ..., otherwise)`` <-> ``sympy.Piecewise``;
``root(n, x)`` -> ``x**(1/n)``; ``time`` <-> the symbol ``time``; ``pi``/``exponentiale`` <->
``sympy.pi``/``sympy.E``.  Numbers come back as :class:`~scalebridge.model.expr.Num` floats
(rationals are divided out), so a round trip preserves values, not the tree's shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sympy

from ..errors import UnsupportedFeatureError
from .expr import Call, Expr, FunCall, Num, Sym

__all__ = ["from_sympy", "sym", "to_sympy"]

_UNARY: dict[str, Callable[[Any], Any]] = {
    "exp": sympy.exp,
    "ln": sympy.log,
    "sqrt": sympy.sqrt,
    "abs": sympy.Abs,
    "sin": sympy.sin,
    "cos": sympy.cos,
    "tan": sympy.tan,
    "sec": sympy.sec,
    "csc": sympy.csc,
    "cot": sympy.cot,
    "sinh": sympy.sinh,
    "cosh": sympy.cosh,
    "tanh": sympy.tanh,
    "sech": sympy.sech,
    "csch": sympy.csch,
    "coth": sympy.coth,
    "arcsin": sympy.asin,
    "arccos": sympy.acos,
    "arctan": sympy.atan,
    "arcsec": sympy.asec,
    "arccsc": sympy.acsc,
    "arccot": sympy.acot,
    "arcsinh": sympy.asinh,
    "arccosh": sympy.acosh,
    "arctanh": sympy.atanh,
    "arcsech": sympy.asech,
    "arccsch": sympy.acsch,
    "arccoth": sympy.acoth,
}
_BACK_UNARY: dict[Any, str] = {f: name for name, f in _UNARY.items() if name not in ("sqrt",)}
_RELATIONAL: dict[str, Callable[[Any, Any], Any]] = {
    "lt": sympy.Lt,
    "le": sympy.Le,
    "gt": sympy.Gt,
    "ge": sympy.Ge,
    "eq": sympy.Eq,
    "ne": sympy.Ne,
}
_BACK_RELATIONAL: dict[type, str] = {
    sympy.StrictLessThan: "lt",
    sympy.LessThan: "le",
    sympy.StrictGreaterThan: "gt",
    sympy.GreaterThan: "ge",
    sympy.Equality: "eq",
    sympy.Unequality: "ne",
}


def sym(name: str) -> sympy.Symbol:
    """The sympy symbol that stands for model quantity ``name`` (real)."""
    return sympy.Symbol(name, real=True)


def to_sympy(e: Expr, symbols: Mapping[str, Any] | None = None) -> Any:
    """The sympy form of ``e``; ``symbols`` overrides the symbol (or value) used for a name."""
    symbols = symbols or {}

    def go(n: Expr) -> Any:
        if isinstance(n, Num):
            v = n.value
            return sympy.Integer(int(v)) if v.is_integer() else sympy.Float(v)
        if isinstance(n, Sym):
            return symbols[n.name] if n.name in symbols else sym(n.name)
        if isinstance(n, FunCall):
            raise UnsupportedFeatureError(
                f"function '{n.name}' must be expanded before symbolic work"
            )
        assert isinstance(n, Call)
        op = n.op
        if op == "time":
            return symbols.get("time", sym("time"))
        if op == "pi":
            return sympy.pi
        if op == "exponentiale":
            return sympy.E
        if op == "true":
            return sympy.true
        if op == "false":
            return sympy.false
        if op == "inf":
            return sympy.oo
        a = [go(x) for x in n.args]
        if op == "add":
            return sympy.Add(*a)
        if op == "mul":
            return sympy.Mul(*a)
        if op == "sub":
            return a[0] - a[1]
        if op == "div":
            return a[0] / a[1]
        if op == "neg":
            return -a[0]
        if op == "pow":
            return a[0] ** a[1]
        if op == "root":
            return a[1] ** (1 / a[0])
        if op == "log10":
            return sympy.log(a[0], 10)
        if op == "logb":
            return sympy.log(a[1], a[0])
        if op in _UNARY:
            return _UNARY[op](a[0])
        if op == "min":
            return sympy.Min(*a)
        if op == "max":
            return sympy.Max(*a)
        if op in _RELATIONAL:
            return _RELATIONAL[op](a[0], a[1])
        if op == "and":
            return sympy.And(*a)
        if op == "or":
            return sympy.Or(*a)
        if op == "xor":
            return sympy.Xor(*a)
        if op == "not":
            return sympy.Not(a[0])
        if op == "implies":
            return sympy.Implies(a[0], a[1])
        if op == "piecewise":
            pieces = [(a[i], a[i + 1]) for i in range(0, len(a) - 1, 2)]
            if len(a) % 2:
                pieces.append((a[-1], sympy.true))
            return sympy.Piecewise(*pieces)
        raise UnsupportedFeatureError(f"'{op}' has no symbolic form here")

    return go(e)


def from_sympy(s: Any) -> Expr:
    """The expression tree of the sympy expression ``s`` (symbols become ``Sym`` by name)."""
    if isinstance(s, bool) or s is sympy.true or s is sympy.false:
        return Call("true") if bool(s) else Call("false")
    if isinstance(s, (int, float)):
        return Num(float(s))
    if s is sympy.pi:
        return Call("pi")
    if s is sympy.E:
        return Call("exponentiale")
    if s is sympy.oo:
        return Call("inf")
    if s is sympy.zoo or s is sympy.nan:
        raise UnsupportedFeatureError("the expression is undefined (division by zero)")
    if isinstance(s, sympy.Number):
        return Num(float(s))
    if isinstance(s, sympy.Symbol):
        return Call("time") if s.name == "time" else Sym(s.name)
    if isinstance(s, sympy.Add):
        terms = [from_sympy(t) for t in s.as_ordered_terms()]
        return terms[0] if len(terms) == 1 else Call("add", tuple(terms))
    if isinstance(s, sympy.Mul):
        num_, den = sympy.fraction(s)
        if den != 1:
            return Call("div", (from_sympy(num_), from_sympy(den)))
        coeff, rest = s.as_coeff_mul()
        if coeff == -1:
            return Call("neg", (from_sympy(sympy.Mul(*rest)),))
        factors = [from_sympy(f) for f in s.args]
        return Call("mul", tuple(factors))
    if isinstance(s, sympy.Pow):
        base, ex = s.args
        if ex == sympy.Rational(1, 2):
            return Call("sqrt", (from_sympy(base),))
        if ex.is_number and ex < 0:
            inv = sympy.Pow(base, -ex)
            return Call("div", (Num(1.0), from_sympy(inv)))
        return Call("pow", (from_sympy(base), from_sympy(ex)))
    if isinstance(s, sympy.exp):
        return Call("exp", (from_sympy(s.args[0]),))
    if isinstance(s, sympy.log):
        return Call("ln", (from_sympy(s.args[0]),))
    if isinstance(s, sympy.Abs):
        return Call("abs", (from_sympy(s.args[0]),))
    if isinstance(s, sympy.Min):
        return Call("min", tuple(from_sympy(a) for a in s.args))
    if isinstance(s, sympy.Max):
        return Call("max", tuple(from_sympy(a) for a in s.args))
    if type(s) in _BACK_RELATIONAL:
        return Call(_BACK_RELATIONAL[type(s)], (from_sympy(s.lhs), from_sympy(s.rhs)))
    if isinstance(s, sympy.And):
        return Call("and", tuple(from_sympy(a) for a in s.args))
    if isinstance(s, sympy.Or):
        return Call("or", tuple(from_sympy(a) for a in s.args))
    if isinstance(s, sympy.Xor):
        return Call("xor", tuple(from_sympy(a) for a in s.args))
    if isinstance(s, sympy.Not):
        return Call("not", (from_sympy(s.args[0]),))
    if isinstance(s, sympy.Implies):
        return Call("implies", (from_sympy(s.args[0]), from_sympy(s.args[1])))
    if isinstance(s, sympy.Piecewise):
        out: list[Expr] = []
        for value, cond in s.args:
            if cond is sympy.true:
                out.append(from_sympy(value))
                break
            out += [from_sympy(value), from_sympy(cond)]
        return Call("piecewise", tuple(out))
    f = getattr(s, "func", None)
    if f in _BACK_UNARY:
        return Call(_BACK_UNARY[f], (from_sympy(s.args[0]),))
    raise UnsupportedFeatureError(f"sympy '{type(s).__name__}' has no expression-tree form")
