"""Expression trees: the one representation of all user math in scalebridge.

An expression is an immutable tree of

* :class:`Num` -- a floating-point constant;
* :class:`Sym` -- a reference to a model symbol (species, parameter, compartment, reaction, ...);
* :class:`Call` -- a built-in operation from the whitelist :data:`OPS` (arithmetic, relational,
  logical, ``piecewise``, the MathML function set, and the zero-argument constants ``time``,
  ``avogadro``, ``pi``, ``exponentiale``, ``true``, ``false``, ``inf``, ``nan``);
* :class:`FunCall` -- a call of a user-defined function (SBML ``functionDefinition``).

Conventions
-----------
* ``add`` and ``mul`` are n-ary; ``sub`` and ``div`` binary; ``neg`` unary; ``pow`` binary.
* Relational and logical operations evaluate to 1.0 (true) or 0.0 (false); a number used as a
  boolean is true when it is non-zero (SBML L3V2 semantics).
* ``piecewise(v1, c1, v2, c2, ..., [otherwise])`` yields the first ``v_i`` whose ``c_i`` is true,
  else ``otherwise``, else NaN.
* ``ln`` is the natural logarithm, ``log10`` base 10 and ``logb(b, x)`` = ln x / ln b;
  ``root(n, x)`` = x^(1/n).
* ``arccot(x) = atan(1/x)``, ``arcsec(x) = acos(1/x)``, ``arccsc(x) = asin(1/x)`` and the
  hyperbolic reciprocals likewise, as in MathML and libSBML.
* ``rateOf(x)`` is dx/dt (SBML L3V2 csymbol); ``delay`` is not supported.
* Floating point follows IEEE 754 and C99, as the compiled kernels do: x/0 = +-inf, ln 0 = -inf,
  overflow gives a signed infinity, a negative base to a non-integer power is NaN, ``rem`` is
  C ``fmod`` (the sign of the dividend), ``quotient`` truncates toward zero, and ``add`` sums
  left to right.

Constructors :class:`Num`, :class:`Sym` and :class:`Call` keep the structure they are given (so
a model read and written again is equal); the helpers :func:`add`, :func:`mul`, ... fold constants
and are used for derived expressions such as derivatives.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from ..errors import ModelError, UnsupportedFeatureError

# The value SBML Level 3 fixes for its avogadro csymbol (CODATA 2006), not the 2019 SI value
# 6.02214076e23: SBML test-suite case 01323 checks it to 1e-9.
AVOGADRO = 6.02214179e23


class Expr:
    """Base class of expression nodes."""

    __slots__ = ()

    def __str__(self) -> str:
        return to_infix(self)

    # Operators build (structure-preserving) trees, handy in tests and scenarios.
    def __add__(self, other: Expr | float) -> Expr:
        return Call("add", (self, _as_expr(other)))

    def __radd__(self, other: Expr | float) -> Expr:
        return Call("add", (_as_expr(other), self))

    def __sub__(self, other: Expr | float) -> Expr:
        return Call("sub", (self, _as_expr(other)))

    def __rsub__(self, other: Expr | float) -> Expr:
        return Call("sub", (_as_expr(other), self))

    def __mul__(self, other: Expr | float) -> Expr:
        return Call("mul", (self, _as_expr(other)))

    def __rmul__(self, other: Expr | float) -> Expr:
        return Call("mul", (_as_expr(other), self))

    def __truediv__(self, other: Expr | float) -> Expr:
        return Call("div", (self, _as_expr(other)))

    def __rtruediv__(self, other: Expr | float) -> Expr:
        return Call("div", (_as_expr(other), self))

    def __pow__(self, other: Expr | float) -> Expr:
        return Call("pow", (self, _as_expr(other)))

    def __neg__(self) -> Expr:
        return Call("neg", (self,))


@dataclass(frozen=True, slots=True, eq=True, repr=False)
class Num(Expr):
    value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", float(self.value))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Num):
            return False
        a, b = self.value, other.value
        return a == b or (math.isnan(a) and math.isnan(b))

    def __hash__(self) -> int:
        return hash(("Num", self.value))

    def __repr__(self) -> str:
        return f"Num({self.value!r})"


@dataclass(frozen=True, slots=True, eq=True, repr=False)
class Sym(Expr):
    name: str

    def __repr__(self) -> str:
        return f"Sym({self.name!r})"


@dataclass(frozen=True, slots=True, eq=True, repr=False)
class Call(Expr):
    op: str
    args: tuple[Expr, ...] = ()

    def __post_init__(self) -> None:
        arity = OPS.get(self.op)
        if arity is None:
            raise ModelError(f"unknown operation '{self.op}'")
        lo, hi = arity
        n = len(self.args)
        if n < lo or (hi is not None and n > hi):
            raise ModelError(f"'{self.op}' takes {_arity_text(lo, hi)} arguments, got {n}")
        if not isinstance(self.args, tuple):
            object.__setattr__(self, "args", tuple(self.args))

    def __repr__(self) -> str:
        return f"Call({self.op!r}, {self.args!r})"


@dataclass(frozen=True, slots=True, eq=True, repr=False)
class FunCall(Expr):
    name: str
    args: tuple[Expr, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.args, tuple):
            object.__setattr__(self, "args", tuple(self.args))

    def __repr__(self) -> str:
        return f"FunCall({self.name!r}, {self.args!r})"


def _arity_text(lo: int, hi: int | None) -> str:
    if hi is None:
        return f"at least {lo}"
    return str(lo) if lo == hi else f"{lo} to {hi}"


def _as_expr(x: Expr | float) -> Expr:
    return x if isinstance(x, Expr) else Num(float(x))


# ---------------------------------------------------------------------------------------------
# The whitelist: operation -> (min arity, max arity or None)
# ---------------------------------------------------------------------------------------------
CONSTANTS = ("time", "avogadro", "pi", "exponentiale", "true", "false", "inf", "nan")
UNARY_FUNCS = (
    "exp", "ln", "log10", "sqrt", "abs", "floor", "ceiling", "factorial",
    "sin", "cos", "tan", "sec", "csc", "cot",
    "sinh", "cosh", "tanh", "sech", "csch", "coth",
    "arcsin", "arccos", "arctan", "arcsec", "arccsc", "arccot",
    "arcsinh", "arccosh", "arctanh", "arcsech", "arccsch", "arccoth",
)  # fmt: skip
RELATIONAL = ("lt", "le", "gt", "ge", "eq", "ne")
LOGICAL = ("and", "or", "xor", "not", "implies")

OPS: dict[str, tuple[int, int | None]] = {c: (0, 0) for c in CONSTANTS}
OPS.update({f: (1, 1) for f in UNARY_FUNCS})
OPS.update({r: (2, 2) for r in RELATIONAL})
OPS.update(
    {
        "add": (0, None),
        "mul": (0, None),
        "sub": (2, 2),
        "div": (2, 2),
        "pow": (2, 2),
        "neg": (1, 1),
        "root": (2, 2),  # root(n, x)
        "logb": (2, 2),  # logb(base, x)
        "min": (1, None),
        "max": (1, None),
        "rem": (2, 2),
        "quotient": (2, 2),
        "and": (0, None),
        "or": (0, None),
        "xor": (0, None),
        "not": (1, 1),
        "implies": (2, 2),
        "piecewise": (1, None),
        "rateOf": (1, 1),
    }
)
BOOLEAN_OPS = frozenset(RELATIONAL + LOGICAL + ("true", "false"))


# ---------------------------------------------------------------------------------------------
# Traversal
# ---------------------------------------------------------------------------------------------
def walk(e: Expr) -> Iterator[Expr]:
    """Every node of ``e``, parents before children."""
    stack = [e]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, Call | FunCall):
            stack.extend(reversed(node.args))


def symbols(e: Expr) -> set[str]:
    """Names of the model symbols ``e`` refers to (not user-function names)."""
    return {n.name for n in walk(e) if isinstance(n, Sym)}


def function_calls(e: Expr) -> set[str]:
    """Names of the user-defined functions ``e`` calls."""
    return {n.name for n in walk(e) if isinstance(n, FunCall)}


def uses_op(e: Expr, op: str) -> bool:
    return any(isinstance(n, Call) and n.op == op for n in walk(e))


def is_boolean(e: Expr) -> bool:
    """True when ``e`` is a relational or logical expression (an SBML boolean)."""
    if isinstance(e, Call):
        if e.op in BOOLEAN_OPS:
            return True
        if e.op == "piecewise":
            vals = e.args[0::2] if len(e.args) % 2 == 0 else (*e.args[0:-1:2], e.args[-1])
            return all(is_boolean(v) for v in vals)
    return False


def substitute(e: Expr, mapping: Mapping[str, Expr]) -> Expr:
    """Replace symbols by expressions (simultaneously)."""
    if not mapping:
        return e

    def rec(node: Expr) -> Expr:
        if isinstance(node, Sym):
            return mapping.get(node.name, node)
        if isinstance(node, Call):
            if not node.args:
                return node
            new = tuple(rec(a) for a in node.args)
            return node if new == node.args else Call(node.op, new)
        if isinstance(node, FunCall):
            return FunCall(node.name, tuple(rec(a) for a in node.args))
        return node

    return rec(e)


def map_calls(e: Expr, fn: Callable[[Call, tuple[Expr, ...]], Expr | None]) -> Expr:
    """Rebuild ``e`` bottom-up; ``fn(node, new_args)`` may return a replacement for a Call."""

    def rec(node: Expr) -> Expr:
        if isinstance(node, Call):
            new = tuple(rec(a) for a in node.args)
            out = fn(node, new)
            if out is not None:
                return out
            return node if new == node.args else Call(node.op, new)
        if isinstance(node, FunCall):
            return FunCall(node.name, tuple(rec(a) for a in node.args))
        return node

    return rec(e)


def expand_functions(
    e: Expr, functions: Mapping[str, tuple[tuple[str, ...], Expr]], *, element: str | None = None
) -> Expr:
    """Inline calls of user-defined functions ``name -> (argument names, body)``.

    Function bodies may call other functions; recursion is refused.
    """

    def rec(node: Expr, active: tuple[str, ...]) -> Expr:
        if isinstance(node, FunCall):
            if node.name not in functions:
                raise ModelError(f"call of undefined function '{node.name}'", element=element)
            if node.name in active:
                raise ModelError(f"function '{node.name}' calls itself", element=node.name)
            params, body = functions[node.name]
            if len(params) != len(node.args):
                raise ModelError(
                    f"function '{node.name}' takes {len(params)} arguments, got {len(node.args)}",
                    element=element,
                )
            args = tuple(rec(a, active) for a in node.args)
            inner = rec(body, (*active, node.name))
            return substitute(inner, dict(zip(params, args, strict=True)))
        if isinstance(node, Call) and node.args:
            return Call(node.op, tuple(rec(a, active) for a in node.args))
        return node

    return rec(e, ())


# ---------------------------------------------------------------------------------------------
# Infix printing (parseable by scalebridge's parser and by libSBML's L3 infix parser)
# ---------------------------------------------------------------------------------------------
_PREC = {"or": 1, "and": 2, "rel": 3, "add": 4, "sub": 4, "mul": 5, "div": 5, "neg": 6, "pow": 7}
_REL_TEXT = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
_CONST_TEXT = {
    "time": "time",
    "avogadro": "avogadro",
    "pi": "pi",
    "exponentiale": "exponentiale",
    "true": "true",
    "false": "false",
    "inf": "INF",
    "nan": "NaN",
}


def format_number(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "INF" if v > 0 else "-INF"
    if v == int(v) and abs(v) < 1e16:
        return str(int(v))
    return repr(v)


def to_infix(e: Expr, constants: Mapping[str, str] | None = None) -> str:
    """Infix text of ``e``.  ``constants`` may rename the zero-argument constants."""
    names = dict(_CONST_TEXT)
    if constants:
        names.update(constants)

    def rec(node: Expr, parent: int) -> str:
        if isinstance(node, Num):
            s = format_number(node.value)
            return f"({s})" if s.startswith("-") and parent > 0 else s
        if isinstance(node, Sym):
            return node.name
        if isinstance(node, FunCall):
            return f"{node.name}({', '.join(rec(a, 0) for a in node.args)})"
        assert isinstance(node, Call)
        op, args = node.op, node.args
        if op in names:
            return names[op]
        if op in ("add", "mul") and len(args) >= 2:
            p = _PREC[op]
            sym = " + " if op == "add" else " * "
            # The parser reads a + b - c as (a + b) - c and a + b + c as one sum: a nested
            # sum (product) anywhere, or a difference (quotient) after the first term, needs
            # parentheses to be read back as the same tree.
            s = sym.join(
                rec(a, p + 1 if i or (isinstance(a, Call) and a.op == op) else p)
                for i, a in enumerate(args)
            )
            return f"({s})" if parent > p else s
        if op == "add" and len(args) < 2:
            return rec(args[0], parent) if args else "0"
        if op == "mul" and len(args) < 2:
            return rec(args[0], parent) if args else "1"
        if op in ("sub", "div"):
            p = _PREC[op]
            sym = " - " if op == "sub" else " / "
            s = rec(args[0], p) + sym + rec(args[1], p + 1)
            return f"({s})" if parent > p else s
        if op == "neg":
            p = _PREC["neg"]
            s = "-" + rec(args[0], p + 1)
            return f"({s})" if parent >= _PREC["add"] - 0 and parent > 0 else s
        if op == "pow":
            p = _PREC["pow"]
            s = rec(args[0], p + 1) + "^" + rec(args[1], p + 1)
            return f"({s})" if parent >= p else s
        if op in _REL_TEXT and parent >= 0:
            p = _PREC["rel"]
            s = rec(args[0], p + 1) + f" {_REL_TEXT[op]} " + rec(args[1], p + 1)
            return f"({s})" if parent >= p else s
        if op in ("and", "or") and len(args) >= 2:
            p = _PREC[op]
            sym = " && " if op == "and" else " || "
            s = sym.join(rec(a, p + 1) for a in args)
            return f"({s})" if parent > p else s
        name = {"logb": "log"}.get(op, op)
        return f"{name}({', '.join(rec(a, 0) for a in args)})"

    return rec(e, 0)


# ---------------------------------------------------------------------------------------------
# Reference evaluation (plain Python floats; the compiled kernels are tested against this)
# ---------------------------------------------------------------------------------------------
def _truth(x: float) -> bool:
    return x != 0.0 and not math.isnan(x)


def _pos(x: float) -> float:
    return 1.0 if x else 0.0


def _safe(fn: Callable[..., float]) -> Callable[..., float]:
    def g(*a: float) -> float:
        try:
            return float(fn(*a))
        except (ValueError, ZeroDivisionError):
            return math.nan
        except OverflowError:
            return math.inf

    return g


def _div(a: float, b: float) -> float:
    if b == 0.0:
        if a == 0.0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _odd_integer(b: float) -> bool:
    return math.isfinite(b) and b == math.floor(b) and math.fmod(b, 2.0) != 0.0


def _pow(a: float, b: float) -> float:
    # C99 pow, except that a negative base to a non-integer power is NaN (also for -inf).
    if a < 0 and math.isfinite(b) and b != math.floor(b):
        return math.nan
    try:
        r = a**b
    except (ZeroDivisionError, OverflowError):
        # 0 to a negative power, or overflow: infinite, negative for a negative base (or -0)
        # to an odd integer power.
        neg = math.copysign(1.0, a) < 0 and _odd_integer(b)
        return -math.inf if neg else math.inf
    if isinstance(r, complex):
        return math.nan
    return float(r)


def _ln(x: float) -> float:
    return math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan)


def _log10(x: float) -> float:
    return math.log10(x) if x > 0 else (-math.inf if x == 0 else math.nan)


def _integral(fn: Callable[[float], int]) -> Callable[[float], float]:
    # As C floor/ceil/trunc: inf and NaN are kept (math.floor raises on them), and a zero
    # result keeps the sign of the argument (ceil(-0.5) is -0.0; 1/-0.0 is -inf).
    def g(x: float) -> float:
        if not math.isfinite(x):
            return x
        r = float(fn(x))
        return math.copysign(r, x) if r == 0 else r

    return g


def _sinh(x: float) -> float:
    try:
        return math.sinh(x)
    except OverflowError:
        return math.copysign(math.inf, x)


def _cosh(x: float) -> float:
    try:
        return math.cosh(x)
    except OverflowError:
        return math.inf


def _atanh(x: float) -> float:
    if abs(x) < 1:
        return math.atanh(x)
    return math.copysign(math.inf, x) if abs(x) == 1 else math.nan


def _factorial(x: float) -> float:
    if x < 0 or x != math.floor(x):
        return math.gamma(x + 1.0) if x > -1 else math.nan
    return float(math.factorial(int(x))) if x < 171 else math.inf


_trunc = _integral(math.trunc)


def _rem(a: float, b: float) -> float:
    # C fmod: the sign of the dividend; fmod(+-inf, b) is NaN.
    return math.fmod(a, b) if b != 0 and not math.isinf(a) else math.nan


def _quotient(a: float, b: float) -> float:
    # a / b truncated toward zero; an infinite or NaN quotient is kept.
    if b == 0:
        return math.nan
    return _trunc(a / b)


UNARY_IMPL: dict[str, Callable[[float], float]] = {
    "exp": _safe(math.exp),
    "ln": _ln,
    "log10": _log10,
    "sqrt": _safe(math.sqrt),
    "abs": abs,
    "floor": _integral(math.floor),
    "ceiling": _integral(math.ceil),
    "factorial": _safe(_factorial),
    "sin": _safe(math.sin),
    "cos": _safe(math.cos),
    "tan": _safe(math.tan),
    "sec": _safe(lambda x: _div(1.0, math.cos(x))),
    "csc": _safe(lambda x: _div(1.0, math.sin(x))),
    "cot": _safe(lambda x: _div(1.0, math.tan(x))),
    "sinh": _sinh,
    "cosh": _cosh,
    "tanh": math.tanh,
    "sech": lambda x: _div(1.0, _cosh(x)),
    "csch": lambda x: _div(1.0, _sinh(x)),
    "coth": lambda x: _div(1.0, math.tanh(x)),
    "arcsin": _safe(math.asin),
    "arccos": _safe(math.acos),
    "arctan": math.atan,
    "arcsec": _safe(lambda x: math.acos(1.0 / x)),
    "arccsc": _safe(lambda x: math.asin(1.0 / x)),
    "arccot": _safe(lambda x: math.atan(1.0 / x) if x != 0 else math.pi / 2),
    "arcsinh": math.asinh,
    "arccosh": _safe(math.acosh),
    "arctanh": _atanh,
    "arcsech": _safe(lambda x: math.acosh(1.0 / x)),
    "arccsch": _safe(lambda x: math.asinh(1.0 / x)),
    "arccoth": _safe(lambda x: math.atanh(1.0 / x)),
}

CONSTANT_VALUES: dict[str, float] = {
    "avogadro": AVOGADRO,
    "pi": math.pi,
    "exponentiale": math.e,
    "true": 1.0,
    "false": 0.0,
    "inf": math.inf,
    "nan": math.nan,
}


def evaluate(
    e: Expr,
    env: Mapping[str, float],
    *,
    time: float = 0.0,
    functions: Mapping[str, tuple[tuple[str, ...], Expr]] | None = None,
    rate_of: Callable[[str], float] | None = None,
) -> float:
    """Value of ``e`` with symbol values from ``env`` (reference implementation).

    Raises :class:`ModelError` for a symbol missing from ``env``.
    """

    def rec(node: Expr) -> float:
        if isinstance(node, Num):
            return node.value
        if isinstance(node, Sym):
            try:
                return float(env[node.name])
            except KeyError:
                raise ModelError(f"unknown symbol '{node.name}'", element=node.name) from None
        if isinstance(node, FunCall):
            if not functions or node.name not in functions:
                raise ModelError(f"call of undefined function '{node.name}'", element=node.name)
            params, body = functions[node.name]
            vals = [rec(a) for a in node.args]
            return evaluate(
                body, dict(zip(params, vals, strict=True)), time=time, functions=functions
            )
        assert isinstance(node, Call)
        op, args = node.op, node.args
        if op == "time":
            return time
        if op in CONSTANT_VALUES:
            return CONSTANT_VALUES[op]
        if op == "piecewise":
            n = len(args)
            for i in range(0, n - 1, 2):
                if _truth(rec(args[i + 1])):
                    return rec(args[i])
            return rec(args[-1]) if n % 2 == 1 else math.nan
        if op == "and":
            return _pos(all(_truth(rec(a)) for a in args))
        if op == "or":
            return _pos(any(_truth(rec(a)) for a in args))
        if op == "rateOf":
            target = args[0]
            if rate_of is None or not isinstance(target, Sym):
                raise UnsupportedFeatureError("rateOf outside a simulation")
            return rate_of(target.name)
        v = [rec(a) for a in args]
        if op == "add":
            # Left to right, as the compiled kernels add (math.fsum differs in the last bits
            # and raises on inf - inf).
            r = v[0] if v else 0.0
            for x in v[1:]:
                r += x
            return r
        if op == "mul":
            r = 1.0
            for x in v:
                r *= x
            return r
        if op == "sub":
            return v[0] - v[1]
        if op == "div":
            return _div(v[0], v[1])
        if op == "neg":
            return -v[0]
        if op == "pow":
            return _pow(v[0], v[1])
        if op == "root":
            return _pow(v[1], _div(1.0, v[0]))
        if op == "logb":  # no logarithm to a base <= 0
            return math.nan if v[0] <= 0 else _div(_ln(v[1]), _ln(v[0]))
        if op in UNARY_IMPL:
            return UNARY_IMPL[op](v[0])
        if op == "min":
            return math.nan if any(math.isnan(x) for x in v) else min(v)
        if op == "max":
            return math.nan if any(math.isnan(x) for x in v) else max(v)
        if op == "rem":
            return _rem(v[0], v[1])
        if op == "quotient":
            return _quotient(v[0], v[1])
        if op == "lt":
            return _pos(v[0] < v[1])
        if op == "le":
            return _pos(v[0] <= v[1])
        if op == "gt":
            return _pos(v[0] > v[1])
        if op == "ge":
            return _pos(v[0] >= v[1])
        if op == "eq":
            return _pos(v[0] == v[1])
        if op == "ne":
            return _pos(v[0] != v[1])
        if op == "xor":
            return _pos(sum(_truth(x) for x in v) % 2 == 1)
        if op == "not":
            return _pos(not _truth(v[0]))
        if op == "implies":
            return _pos((not _truth(v[0])) or _truth(v[1]))
        raise UnsupportedFeatureError(f"operation '{op}'")

    return rec(e)


# ---------------------------------------------------------------------------------------------
# Simplifying constructors (for derived expressions: derivatives, generated laws)
# ---------------------------------------------------------------------------------------------
ZERO = Num(0.0)
ONE = Num(1.0)


def num(v: float) -> Num:
    return Num(v)


def _is_num(e: Expr, v: float | None = None) -> bool:
    return isinstance(e, Num) and (v is None or e.value == v)


def add(*terms: Expr) -> Expr:
    out: list[Expr] = []
    c = 0.0
    for t in terms:
        parts = t.args if isinstance(t, Call) and t.op == "add" else (t,)
        for p in parts:
            if isinstance(p, Num):
                c += p.value
            else:
                out.append(p)
    if c != 0.0 or not out:
        out.append(Num(c))
    return out[0] if len(out) == 1 else Call("add", tuple(out))


def mul(*factors: Expr) -> Expr:
    out: list[Expr] = []
    c = 1.0
    for f in factors:
        parts = f.args if isinstance(f, Call) and f.op == "mul" else (f,)
        for p in parts:
            if isinstance(p, Num):
                c *= p.value
            else:
                out.append(p)
    if c == 0.0:
        return ZERO
    if not out:
        return Num(c)
    if c == -1.0:
        body = out[0] if len(out) == 1 else Call("mul", tuple(out))
        return neg(body)
    if c != 1.0:
        out.insert(0, Num(c))
    return out[0] if len(out) == 1 else Call("mul", tuple(out))


def neg(a: Expr) -> Expr:
    if isinstance(a, Num):
        return Num(-a.value)
    if isinstance(a, Call) and a.op == "neg":
        return a.args[0]
    return Call("neg", (a,))


def sub(a: Expr, b: Expr) -> Expr:
    if _is_num(b, 0.0):
        return a
    if _is_num(a, 0.0):
        return neg(b)
    if isinstance(a, Num) and isinstance(b, Num):
        return Num(a.value - b.value)
    return Call("sub", (a, b))


def div(a: Expr, b: Expr) -> Expr:
    if _is_num(a, 0.0) and not _is_num(b, 0.0):
        return ZERO
    if _is_num(b, 1.0):
        return a
    if isinstance(a, Num) and isinstance(b, Num) and b.value != 0.0:
        return Num(a.value / b.value)
    return Call("div", (a, b))


def power(a: Expr, b: Expr) -> Expr:
    if _is_num(b, 0.0):
        return ONE
    if _is_num(b, 1.0):
        return a
    if isinstance(a, Num) and isinstance(b, Num):
        return Num(_pow(a.value, b.value))
    return Call("pow", (a, b))


def call(op: str, *args: Expr) -> Expr:
    """Call with constant folding when every argument is a number (and the op is pure)."""
    if args and op not in ("rateOf",) and all(isinstance(a, Num) for a in args):
        return Num(evaluate(Call(op, args), {}))
    return Call(op, args)


def fold(e: Expr) -> Expr:
    """Constant-fold and flatten ``e`` with the simplifying constructors."""

    def rebuild(node: Call, args: tuple[Expr, ...]) -> Expr | None:
        op = node.op
        if op == "add":
            return add(*args)
        if op == "mul":
            return mul(*args)
        if op == "sub":
            return sub(*args)
        if op == "div":
            return div(*args)
        if op == "neg":
            return neg(args[0])
        if op == "pow":
            return power(*args)
        if op == "piecewise":
            return _fold_piecewise(args)
        if args and op not in ("rateOf",) and all(isinstance(a, Num) for a in args):
            return Num(evaluate(Call(op, args), {}))
        return None

    return map_calls(e, rebuild)


def _fold_piecewise(args: tuple[Expr, ...]) -> Expr:
    keep: list[Expr] = []
    n = len(args)
    for i in range(0, n - 1, 2):
        v, c = args[i], args[i + 1]
        if isinstance(c, Num):
            if _truth(c.value):
                if not keep:
                    return v
                keep.append(v)
                return Call("piecewise", tuple(keep))
            continue
        keep.extend((v, c))
    if n % 2 == 1:
        if not keep:
            return args[-1]
        keep.append(args[-1])
    elif not keep:
        return Num(math.nan)
    return Call("piecewise", tuple(keep))


# ---------------------------------------------------------------------------------------------
# Symbolic differentiation
# ---------------------------------------------------------------------------------------------
def diff(e: Expr, var: str) -> Expr:
    """d e / d var, folded.  Piecewise-constant operations have derivative 0 almost everywhere.

    ``e`` must have user functions expanded and ``rateOf`` resolved.
    """
    if var not in symbols(e):
        return ZERO
    # Keyed by id; the node is kept with its derivative so that a temporary node's id
    # (e.g. 1/n of root(n, x)) is not reused by a later node while the memo lives.
    memo: dict[int, tuple[Expr, Expr]] = {}

    def d(node: Expr) -> Expr:
        key = id(node)
        if key in memo:
            return memo[key][1]
        r = _d(node)
        memo[key] = (node, r)
        return r

    def _d(node: Expr) -> Expr:
        if isinstance(node, Num):
            return ZERO
        if isinstance(node, Sym):
            return ONE if node.name == var else ZERO
        if isinstance(node, FunCall):
            raise ModelError(f"differentiate after expanding function '{node.name}'")
        assert isinstance(node, Call)
        op, a = node.op, node.args
        if not a or var not in symbols(node):
            return ZERO
        if op == "add":
            return add(*(d(x) for x in a))
        if op == "sub":
            return sub(d(a[0]), d(a[1]))
        if op == "neg":
            return neg(d(a[0]))
        if op == "mul":
            terms = []
            for i, x in enumerate(a):
                dx = d(x)
                if not _is_num(dx, 0.0):
                    terms.append(mul(*a[:i], dx, *a[i + 1 :]))
            return add(*terms) if terms else ZERO
        if op == "div":
            u, v = a
            du, dv = d(u), d(v)
            t1 = div(du, v)
            if _is_num(dv, 0.0):
                return t1
            return sub(t1, div(mul(u, dv), power(v, Num(2.0))))
        if op in ("pow", "root"):
            if op == "root":
                u, ex = a[1], div(ONE, a[0])
            else:
                u, ex = a
            du, dex = d(u), d(ex)
            terms = []
            if not _is_num(du, 0.0):
                if isinstance(ex, Num):
                    terms.append(mul(ex, power(u, Num(ex.value - 1.0)), du))
                else:
                    terms.append(mul(ex, power(u, sub(ex, ONE)), du))
            if not _is_num(dex, 0.0):
                terms.append(mul(power(u, ex), call("ln", u), dex))
            return add(*terms) if terms else ZERO
        if op == "logb":
            return diff(div(call("ln", a[1]), call("ln", a[0])), var)
        if op == "piecewise":
            new = list(a)
            for i in range(0, len(a) - 1, 2):
                new[i] = d(a[i])
            if len(a) % 2 == 1:
                new[-1] = d(a[-1])
            return _fold_piecewise(tuple(new))
        if op in ("min", "max"):
            if len(a) == 1:
                return d(a[0])
            # min(x, y, ...) = x where x is the least; ties take the first.
            rel = "le" if op == "min" else "ge"
            pieces: list[Expr] = []
            for i, x in enumerate(a[:-1]):
                conds = [Call(rel, (x, y)) for j, y in enumerate(a) if j != i]
                pieces += [d(x), Call("and", tuple(conds))]
            pieces.append(d(a[-1]))
            return _fold_piecewise(tuple(pieces))
        if op in BOOLEAN_OPS or op in ("floor", "ceiling", "factorial", "quotient"):
            return ZERO
        if op == "rem":  # rem(u, v) = u - v * quotient(u, v)
            return sub(d(a[0]), mul(Call("quotient", a), d(a[1])))
        if op == "rateOf":
            raise UnsupportedFeatureError("derivative of rateOf")
        if op in _UNARY_DERIV:
            x = a[0]
            dx = d(x)
            if _is_num(dx, 0.0):
                return ZERO
            return mul(_UNARY_DERIV[op](x), dx)
        raise UnsupportedFeatureError(f"derivative of '{op}'")

    return d(e)


def _c(op: str, x: Expr) -> Expr:
    return Call(op, (x,))


def _sq(x: Expr) -> Expr:
    return power(x, Num(2.0))


_UNARY_DERIV: dict[str, Callable[[Expr], Expr]] = {
    "exp": lambda x: _c("exp", x),
    "ln": lambda x: div(ONE, x),
    "log10": lambda x: div(ONE, mul(x, Num(math.log(10.0)))),
    "sqrt": lambda x: div(ONE, mul(Num(2.0), _c("sqrt", x))),
    "abs": lambda x: Call(
        "piecewise", (ONE, Call("gt", (x, ZERO)), Num(-1.0), Call("lt", (x, ZERO)), ZERO)
    ),
    "sin": lambda x: _c("cos", x),
    "cos": lambda x: neg(_c("sin", x)),
    "tan": lambda x: add(ONE, _sq(_c("tan", x))),
    "sec": lambda x: mul(_c("sec", x), _c("tan", x)),
    "csc": lambda x: neg(mul(_c("csc", x), _c("cot", x))),
    "cot": lambda x: neg(add(ONE, _sq(_c("cot", x)))),
    "sinh": lambda x: _c("cosh", x),
    "cosh": lambda x: _c("sinh", x),
    "tanh": lambda x: sub(ONE, _sq(_c("tanh", x))),
    "sech": lambda x: neg(mul(_c("sech", x), _c("tanh", x))),
    "csch": lambda x: neg(mul(_c("csch", x), _c("coth", x))),
    "coth": lambda x: sub(ONE, _sq(_c("coth", x))),
    "arcsin": lambda x: div(ONE, _c("sqrt", sub(ONE, _sq(x)))),
    "arccos": lambda x: neg(div(ONE, _c("sqrt", sub(ONE, _sq(x))))),
    "arctan": lambda x: div(ONE, add(ONE, _sq(x))),
    "arcsec": lambda x: div(ONE, mul(_c("abs", x), _c("sqrt", sub(_sq(x), ONE)))),
    "arccsc": lambda x: neg(div(ONE, mul(_c("abs", x), _c("sqrt", sub(_sq(x), ONE))))),
    "arccot": lambda x: neg(div(ONE, add(ONE, _sq(x)))),
    "arcsinh": lambda x: div(ONE, _c("sqrt", add(_sq(x), ONE))),
    "arccosh": lambda x: div(ONE, _c("sqrt", sub(_sq(x), ONE))),
    "arctanh": lambda x: div(ONE, sub(ONE, _sq(x))),
    "arcsech": lambda x: neg(div(ONE, mul(x, _c("sqrt", sub(ONE, _sq(x)))))),
    "arccsch": lambda x: neg(div(ONE, mul(_c("abs", x), _c("sqrt", add(ONE, _sq(x)))))),
    "arccoth": lambda x: div(ONE, sub(ONE, _sq(x))),
}
