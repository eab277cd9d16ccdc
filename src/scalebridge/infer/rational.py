"""Rewrite an explicit ODE model into rational form for structural identifiability.

Structural identifiability by power series and Gröbner bases needs right-hand sides and outputs
that are rational functions of the states, parameters and inputs.  :func:`rationalize` takes an
:class:`~scalebridge.model.odetext.OdeModel` and returns a :class:`RationalModel` whose every
expression uses only ``+ - * /``, integer powers, numbers and symbols.  Non-rational terms are
rewritten by adding states (the usual differential-algebra trick):

* ``time`` -> a state ``t`` with ``dt/dt = 1``, ``t(0) = 0``;
* ``exp(g)`` -> ``z`` with ``dz/dt = z * Dg``;  ``ln(g)`` -> ``l`` with ``dl/dt = Dg / g``;
  ``log10``/``logb`` through ``ln``;
* ``a^b`` (``b`` not an integer) -> ``w`` with ``dw/dt = b * w * Da / a`` when ``b`` is constant,
  through ``exp(b ln a)`` otherwise; ``sqrt``, ``root`` likewise;
* ``sin(g)``, ``cos(g)`` -> the pair ``s``, ``c`` with ``ds/dt = c Dg``, ``dc/dt = -s Dg``;

where ``Dg = sum_x (dg/dx) dx/dt + sum_u (dg/du) u'`` is the total time derivative (a known input's
derivative ``u'`` is a known input of its own, linked to ``u``).  Powers of products are split
into time-varying and constant factors first (``(u/K)^n = u^n K^-n``).

A non-rational term of constants alone is a constant.  With unknown parameters in it, it stands
for one of them that occurs nowhere else (``c = exp(E)`` for ``E``; ``c = K^n`` for ``K`` when
``n`` also occurs elsewhere): for fixed values of the others that parameter and the term
determine each other one-to-one, so they share their identifiability label.  When every
parameter in the term occurs elsewhere too, the term is refused.  With known constants only, it
becomes a generic known constant (or its value, when that is a small fraction such as
``sqrt(4)``).  Anything else (``piecewise``, comparisons, ``abs``, ``floor``, ``min``/``max``,
trigonometric functions other than ``sin``/``cos``, hyperbolic functions, ``sin``/``cos`` of an
unknown constant, ...) raises :class:`~scalebridge.errors.UnsupportedFeatureError` naming the term
and the element.

The initial value of an added state is known when its term at ``t = 0`` involves only known
quantities.  Known inputs inside non-rational terms are analysed with ``u(0) = 1`` (a generic
input otherwise), so that ``u^n`` starts at the known value 1 even when ``n`` is unknown.  For a
rational power ``x^(p/q)`` of a state with unknown ``x(0)``, the initial value is written
``x(0) = r^q`` with a new unknown ``r`` (listed among the parameters, see
:attr:`RationalModel.initial_roots`), so ``w(0) = r^p`` is exact.  When
the term at ``t = 0`` involves unknowns (``exp(x1)`` with ``x1(0)`` unknown), the initial value is
treated as a further unknown, which forgets its algebraic link to the other unknowns: parameters
found identifiable stay identifiable in the original model, but a ``non-identifiable`` label may
then be conservative.  The model records such states in :attr:`RationalModel.relaxed` and says
so in its notes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from ..errors import UnsupportedFeatureError
from ..model.expr import (
    ONE,
    ZERO,
    Call,
    Expr,
    FunCall,
    Num,
    Sym,
    add,
    diff,
    div,
    evaluate,
    fold,
    mul,
    neg,
    power,
    substitute,
    symbols,
    to_infix,
    walk,
)
from ..model.odetext import OdeModel

__all__ = ["RationalModel", "exact_fraction", "rational_ops_only", "rationalize"]

_ARITH = frozenset({"add", "sub", "mul", "div", "neg"})
_REWRITTEN = frozenset({"exp", "ln", "log10", "logb", "pow", "sqrt", "root", "sin", "cos"})
_GENERIC_CONSTANTS = {"pi": "pi", "exponentiale": "e", "avogadro": "avogadro"}


def exact_fraction(v: float) -> Fraction:
    """The rational number a float stands for: the shortest fraction (denominator <= 10^6)
    that rounds to it (so 0.1 -> 1/10, 1/3 -> 1/3), else the float's exact binary value."""
    if not math.isfinite(v):
        raise ValueError(f"{v} is not a finite number")
    f = Fraction(v)
    g = f.limit_denominator(10**6)
    return g if float(g) == v else f


def rational_ops_only(e: Expr) -> bool:
    """True when ``e`` uses only numbers, symbols, ``+ - * /`` and integer powers."""
    for n in walk(e):
        if isinstance(n, Call):
            if n.op in _ARITH:
                continue
            if n.op == "pow" and isinstance(n.args[1], Num) and n.args[1].value.is_integer():
                continue
            return False
        elif isinstance(n, FunCall):
            return False
    return True


@dataclass(frozen=True)
class RationalModel:
    """An ODE model ``dx/dt = f(x, p, k, u, w)``, ``y = g(x, p, k, u, w)`` with ``f``, ``g``
    rational (see :func:`rational_ops_only`), ready for exact identifiability analysis.

    * ``states`` -- the model's states followed by the added ones; ``original_states`` -- the
      model's own;
    * ``parameters`` -- unknown constants (after reparametrization, see ``reparametrized``);
    * ``known_values`` -- known constants with exact rational values; ``known_generic`` -- known
      constants without a value (analysed at generic values);
    * ``inputs`` / ``unknown_inputs`` -- time-varying inputs; ``derivatives`` -- symbol ->
      (input, order) for input derivatives that the rewriting introduced;
    * ``initial`` -- known initial values: a Fraction, an expression of parameters and known
      constants, or None (known, generic).  Other states have unknown initial values;
    * ``auxiliary`` -- added state -> the original term it stands for; ``relaxed`` -- added
      states whose initial value is treated as unknown although the model determines it;
    * ``reparametrized`` -- original parameter -> (new parameter, the term it stands for);
    * ``normalized_inputs`` -- known inputs analysed with ``u(0) = 1`` (they occur inside
      non-rational terms, whose added states then start at known values);
    * ``initial_roots`` -- state -> (r, q): the unknown initial value is ``r^q`` with ``r`` a
      new unknown listed among the parameters (for rational powers ``x^(p/q)`` of the state);
    * ``notes`` -- what the rewriting did, in words.
    """

    states: tuple[str, ...]
    equations: dict[str, Expr]
    outputs: dict[str, Expr]
    parameters: tuple[str, ...]
    known_values: dict[str, Fraction] = field(default_factory=dict)
    known_generic: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    unknown_inputs: tuple[str, ...] = ()
    derivatives: dict[str, tuple[str, int]] = field(default_factory=dict)
    initial: dict[str, Fraction | Expr | None] = field(default_factory=dict)
    original_states: tuple[str, ...] = ()
    auxiliary: dict[str, Expr] = field(default_factory=dict)
    relaxed: tuple[str, ...] = ()
    reparametrized: dict[str, tuple[str, Expr]] = field(default_factory=dict)
    normalized_inputs: tuple[str, ...] = ()
    initial_roots: dict[str, tuple[str, int]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    source: str | None = None

    @property
    def unknown_initial(self) -> tuple[str, ...]:
        """States whose initial values are unknown (in state order)."""
        return tuple(s for s in self.states if s not in self.initial)

    def input_of(self, name: str) -> tuple[str, int]:
        """(input, derivative order) of an input symbol or input-derivative symbol."""
        if name in self.derivatives:
            return self.derivatives[name]
        return (name, 0)


class _Rewriter:
    def __init__(self, model: OdeModel):
        self.m = model
        self.src = model.source
        self.taken: set[str] = set(model.symbols) | set(model.outputs)
        self.states: list[str] = list(model.states)
        self.rhs: dict[str, Expr] = {}
        self.aux: dict[str, Expr] = {}  # aux state -> original (rewritten-args) term
        self.aux_kind: dict[str, tuple[str, Expr, Expr | None]] = {}
        self.aux_order: list[str] = []
        self.memo: dict[Expr, Expr] = {}
        self.known_values: dict[str, Fraction] = {
            k: exact_fraction(v) for k, v in model.known.items() if v is not None
        }
        self.known_generic: list[str] = [k for k, v in model.known.items() if v is None]
        self.derivs: dict[str, tuple[str, int]] = {}
        self.deriv_name: dict[tuple[str, int], str] = {}
        self.const_params: dict[Expr, str] = {}  # reparam term -> new parameter
        self.const_generic: dict[Expr, str] = {}
        self.notes: list[str] = []
        self.normalized: set[str] = set()
        self.root_of: dict[str, str] = {}  # state -> new unknown r with x(0) = r^q
        self.root_power: dict[str, int] = {}  # state -> q
        self.root_users: dict[str, tuple[str, Fraction]] = {}  # aux -> (state, exponent)
        self.time_state: str | None = None
        self.element = ""

    # -- names ----------------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        base = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in hint).strip("_")
        if not base or not (base[0].isalpha() or base[0] == "_"):
            base = "v_" + base
        name, i = base, 1
        while name in self.taken:
            i += 1
            name = f"{base}_{i}"
        self.taken.add(name)
        return name

    def dynamic(self) -> set[str]:
        return set(self.states) | set(self.m.inputs) | set(self.m.unknown_inputs) | set(self.derivs)

    def unsupported(self, node: Expr, why: str) -> UnsupportedFeatureError:
        return UnsupportedFeatureError(
            f"term '{to_infix(node)}' in structural identifiability",
            element=self.element or None,
            source=self.src,
            detail=why,
        )

    def derivative_symbol(self, name: str) -> str:
        """The symbol of d(name)/dt for an input or input-derivative symbol."""
        base, order = self.derivs.get(name, (name, 0))
        key = (base, order + 1)
        if key not in self.deriv_name:
            nm = self.fresh(f"{base}_d{order + 1}")
            self.deriv_name[key] = nm
            self.derivs[nm] = key
        return self.deriv_name[key]

    # -- the rewrite ----------------------------------------------------------------------
    def rewrite(self, e: Expr) -> Expr:
        if isinstance(e, Num):
            if not math.isfinite(e.value):
                raise self.unsupported(e, "the number is not finite")
            return e
        if isinstance(e, Sym):
            return e
        if isinstance(e, FunCall):
            raise self.unsupported(e, "user-defined functions are not supported here")
        assert isinstance(e, Call)
        op = e.op
        if op == "time":
            if self.time_state is None:
                self.time_state = self.fresh(self.m.time_name or "t")
                self.states.append(self.time_state)
                self.rhs[self.time_state] = ONE
                self.notes.append(
                    f"time is the added state '{self.time_state}' (d{self.time_state}/dt = 1, "
                    f"{self.time_state}(0) = 0)"
                )
            return Sym(self.time_state)
        if op in _GENERIC_CONSTANTS:
            if e not in self.const_generic:
                nm = self.fresh(_GENERIC_CONSTANTS[op])
                self.const_generic[e] = nm
                self.known_generic.append(nm)
                self.notes.append(f"the constant {op} is analysed as a generic known constant")
            return Sym(self.const_generic[e])
        args = tuple(self.rewrite(a) for a in e.args)
        if op in _ARITH:
            return Call(op, args)
        if op == "pow" and isinstance(args[1], Num) and args[1].value.is_integer():
            return Call("pow", args)
        if op not in _REWRITTEN:
            raise self.unsupported(
                e,
                "only rational terms, exp, ln, log10, logb, powers, roots, sin and cos "
                "can be analysed",
            )
        term = Call(op, args)
        if term in self.memo:
            return self.memo[term]
        out = self.non_rational(term, e)
        self.memo[term] = out
        return out

    def non_rational(self, term: Call, original: Expr) -> Expr:
        op, args = term.op, term.args
        # Reduce to exp, ln, pow, sin, cos.
        if op == "sqrt":
            return self.rewrite_pow(args[0], Num(0.5), original)
        if op == "root":
            return self.rewrite_pow(args[1], div(ONE, args[0]), original)
        if op == "log10":
            return div(self.ln_of(args[0], original), self.constant(Call("ln", (Num(10.0),))))
        if op == "logb":
            return div(self.ln_of(args[1], original), self.ln_of(args[0], original))
        if op == "pow":
            return self.rewrite_pow(args[0], args[1], original)
        if op == "ln":
            return self.ln_of(args[0], original)
        return self.function_of(op, args[0], original)

    def ln_of(self, g: Expr, original: Expr) -> Expr:
        return self.function_of("ln", g, original)

    def rewrite_pow(self, a: Expr, b: Expr, original: Expr) -> Expr:
        if isinstance(b, Num) and b.value.is_integer():
            return power(a, b)
        dyn = self.dynamic()
        if not (symbols(b) & dyn) and isinstance(a, Call) and a.op in ("mul", "div"):
            # (c u)^b = c^b u^b: keep constant factors apart from time-varying ones
            num, den = _factors(a)
            groups = []
            for fs in (num, den):
                d = [f for f in fs if symbols(f) & dyn]
                c = [f for f in fs if not (symbols(f) & dyn)]
                groups.append((d, c))
            (dn, cn), (dd, cd) = groups
            if (dn or dd) and (cn or cd):
                dyn_part = _ratio(dn, dd)
                const_part = _ratio(cn, cd)
                return mul(
                    self.rewrite_pow(dyn_part, b, original),
                    self.rewrite_pow(const_part, b, original),
                )
        if not (symbols(b) & dyn):
            if not (symbols(a) & self.dynamic()):
                return self.constant(Call("pow", (a, b)))
            return self.new_aux("pow", a, b, Call("pow", (a, b)))
        # a^b = exp(b ln a) for a time-varying exponent
        return self.function_of("exp", mul(b, self.ln_of(a, original)), original)

    def function_of(self, op: str, g: Expr, original: Expr) -> Expr:
        term = Call(op, (g,))
        if not (symbols(g) & self.dynamic()):
            return self.constant(term)
        if op in ("sin", "cos"):
            key = Call("sin", (g,))
            if key not in self.memo:
                s = self.new_aux("sin", g, None, key)
                c = self.new_aux("cos", g, None, Call("cos", (g,)))
                self.memo[key] = s
                self.memo[Call("cos", (g,))] = c
            return self.memo[term]
        return self.new_aux(op, g, None, term)

    def new_aux(self, kind: str, g: Expr, b: Expr | None, term: Expr) -> Expr:
        if term in self.memo:
            return self.memo[term]
        name = self.fresh(f"{kind}_{len(self.aux_order) + 1}")
        if (
            kind == "pow"
            and isinstance(b, Num)
            and isinstance(g, Sym)
            and g.name in self.m.states
            and g.name not in self.m.initial
        ):
            # x^(p/q) of a state with unknown x(0): x(0) = r^q, w(0) = r^p with a new unknown r
            f = exact_fraction(b.value)
            if f.denominator <= 12 and abs(f.numerator) <= 12 and float(f) == b.value:
                root = self.root_of.get(g.name)
                if root is None:
                    root = self.fresh(f"{g.name}_0_root")
                    self.root_of[g.name] = root
                    self.root_power[g.name] = 0
                # r must be a q-th root for every such power of x: use the lcm of denominators
                self.root_power[g.name] = _lcm(self.root_power[g.name], f.denominator)
                self.root_users[name] = (g.name, f)
        self.states.append(name)
        self.aux[name] = term
        self.aux_kind[name] = (kind, g, b)
        self.aux_order.append(name)
        out = Sym(name)
        self.memo[term] = out
        return out

    def constant(self, term: Expr) -> Expr:
        """A non-rational term of constants: a reparametrized parameter or a generic constant."""
        if term in self.const_params:
            return Sym(self.const_params[term])
        if term in self.const_generic:
            return Sym(self.const_generic[term])
        syms = symbols(term)
        unknown = sorted(syms & set(self.m.parameters))
        if not unknown:
            if syms <= set(self.known_values):
                vals = {k: float(v) for k, v in self.known_values.items()}
                v = evaluate(term, vals)
                if math.isfinite(v):
                    f = exact_fraction(v)
                    if float(f) == v and f.denominator < 1000:  # e.g. sqrt(4), 8^(1/3)
                        return Num(v)
            nm = self.fresh("c_" + _hint(term))
            self.const_generic[term] = nm
            self.known_generic.append(nm)
            self.notes.append(
                f"the constant term {to_infix(term)} is analysed as a generic known constant '{nm}'"
            )
            return Sym(nm)
        if isinstance(term, Call) and term.op in ("sin", "cos"):
            raise self.unsupported(
                term, "a periodic function of an unknown parameter cannot be reparametrized"
            )
        nm = self.fresh(f"{_hint(term)}")
        self.const_params[term] = nm
        return Sym(nm)

    # -- derivatives of terms -------------------------------------------------------------
    def total_derivative(self, g: Expr) -> Expr:
        terms: list[Expr] = []
        for s in sorted(symbols(g)):
            if s in self.rhs:
                ds: Expr = self.rhs[s]
            elif s in self.m.inputs or s in self.m.unknown_inputs or s in self.derivs:
                ds = Sym(self.derivative_symbol(s))
            else:
                continue
            partial = diff(g, s)
            if partial != ZERO:
                terms.append(mul(partial, ds))
        return fold(add(*terms)) if terms else ZERO

    def aux_rhs(self, name: str) -> Expr:
        kind, g, b = self.aux_kind[name]
        dg = self.total_derivative(g)
        z = Sym(name)
        if kind == "exp":
            return mul(z, dg)
        if kind == "ln":
            return div(dg, g)
        if kind == "pow":
            assert b is not None
            return div(mul(b, z, dg), g)
        partner = self.memo[Call("cos" if kind == "sin" else "sin", (g,))]
        return mul(partner, dg) if kind == "sin" else neg(mul(partner, dg))

    def aux_initial(
        self, name: str, initial: Mapping[str, Fraction | Expr | None]
    ) -> tuple[bool, Fraction | None]:
        """(known?, exact value or None) of an added state's initial value."""
        kind, g, b = self.aux_kind[name]
        numeric = {s: Num(float(v)) for s, v in initial.items() if isinstance(v, Fraction)}
        numeric.update({k: Num(float(v)) for k, v in self.known_values.items()})
        # Known inputs inside the term are taken with u(0) = 1 (see the module docstring).
        for u in sorted(symbols(g) | (symbols(b) if b is not None else set())):
            if u in self.m.inputs:
                self.normalized.add(u)
        numeric.update({u: ONE for u in self.normalized})
        g0 = fold(substitute(g, numeric))
        b0 = fold(substitute(b, numeric)) if b is not None else None
        syms = symbols(g0) | (symbols(b0) if b0 is not None else set())
        generic_ok = (
            set(self.known_generic)
            | set(self.m.inputs)
            | {d for d, (u, _) in self.derivs.items() if u in self.m.inputs}
            | {s for s, v in initial.items() if v is None}
        )
        if isinstance(g0, Num) and (
            (kind == "pow" and g0.value == 1.0)
            or (kind in ("exp", "cos") and g0.value == 0.0)
            or (kind == "ln" and g0.value == 1.0)
            or (kind == "sin" and g0.value == 0.0)
        ):
            # 1^b = 1, exp(0) = cos(0) = 1, ln(1) = sin(0) = 0 whatever the unknowns
            return True, Fraction(0 if kind in ("ln", "sin") else 1)
        if not syms:
            assert isinstance(g0, Num)
            v = _apply(kind, g0.value, b0.value if isinstance(b0, Num) else None)
            if v is not None and math.isfinite(v):
                f = exact_fraction(v)
                if float(f) == v and f.denominator < 1000:
                    return True, f
            return True, None
        if syms <= generic_ok:
            return True, None
        return False, None


def _lcm(a: int, b: int) -> int:
    return b if a == 0 else a * b // math.gcd(a, b)


def _factors(e: Expr) -> tuple[list[Expr], list[Expr]]:
    """Numerator and denominator factors of a product/quotient tree."""
    if isinstance(e, Call) and e.op == "mul":
        num: list[Expr] = []
        den: list[Expr] = []
        for a in e.args:
            n, d = _factors(a)
            num += n
            den += d
        return num, den
    if isinstance(e, Call) and e.op == "div":
        n1, d1 = _factors(e.args[0])
        n2, d2 = _factors(e.args[1])
        return n1 + d2, d1 + n2
    return [e], []


def _ratio(num: list[Expr], den: list[Expr]) -> Expr:
    top = mul(*num) if num else ONE
    return div(top, mul(*den)) if den else top


def _apply(kind: str, x: float, b: float | None) -> float | None:
    try:
        if kind == "exp":
            return math.exp(x)
        if kind == "ln":
            return math.log(x) if x > 0 else None
        if kind == "pow":
            assert b is not None
            return x**b if x > 0 or (x == 0 and b > 0) else None
        if kind == "sin":
            return math.sin(x)
        if kind == "cos":
            return math.cos(x)
    except (OverflowError, ValueError):
        return None
    return None


def _hint(term: Expr) -> str:
    if isinstance(term, Call):
        names = sorted(symbols(term))
        return term.op + ("_" + "_".join(names) if names else "")
    return "c"


def rationalize(model: OdeModel) -> RationalModel:
    """The rational form of ``model`` (see the module docstring)."""
    rw = _Rewriter(model)
    for s, e in model.equations.items():
        rw.element = s
        rw.rhs[s] = rw.rewrite(e)
    outputs: dict[str, Expr] = {}
    for y, e in model.outputs.items():
        rw.element = y
        outputs[y] = rw.rewrite(e)
    initial: dict[str, Fraction | Expr | None] = {}
    for s, v in model.initial.items():
        rw.element = s
        if v is None:
            initial[s] = None
        elif isinstance(v, Expr):
            initial[s] = rw.rewrite(v)
        else:
            initial[s] = exact_fraction(v)
    if rw.time_state is not None:
        initial[rw.time_state] = Fraction(0)
    # Right-hand sides of the added states, innermost first (their terms use only earlier ones).
    i = 0
    while i < len(rw.aux_order):
        name = rw.aux_order[i]
        rw.element = name
        rw.rhs[name] = rw.rewrite(rw.aux_rhs(name))
        i += 1
    for x, r in rw.root_of.items():
        initial[x] = Call("pow", (Sym(r), Num(float(rw.root_power[x]))))
    relaxed: list[str] = []
    for name in rw.aux_order:
        if name in rw.root_users:
            x, frac = rw.root_users[name]
            power_of_root = frac * rw.root_power[x]  # an integer: (r^q)^(p/q') with q' | q
            initial[name] = Call("pow", (Sym(rw.root_of[x]), Num(float(power_of_root))))
            continue
        known, value = rw.aux_initial(name, initial)
        if known:
            initial[name] = value
        else:
            relaxed.append(name)
    for name in rw.aux_order:
        how = "unknown (treated as independent)" if name in relaxed else "known"
        rw.notes.append(
            f"added state '{name}' = {to_infix(rw.aux[name])}, d{name}/dt = "
            f"{to_infix(rw.rhs[name])}; its initial value is {how}"
        )
    if relaxed:
        rw.notes.append(
            "initial values of " + ", ".join(relaxed) + " are treated as free unknowns: "
            "identifiable labels hold for the original model; non-identifiable labels may be "
            "conservative"
        )
    # Constant non-rational terms of unknown parameters: each replaces one of its parameters
    # that occurs nowhere else (c = K^n stands for K; n stays when it is used elsewhere).
    params = list(model.parameters)
    reparam: dict[str, tuple[str, Expr]] = {}
    everything = [*rw.rhs.values(), *outputs.values()] + [
        v for v in initial.values() if isinstance(v, Expr)
    ]
    used = set().union(*(symbols(e) for e in everything)) if everything else set()
    in_terms: dict[str, int] = {}
    for term in rw.const_params:
        for par in symbols(term) & set(model.parameters):
            in_terms[par] = in_terms.get(par, 0) + 1
    for term, new in rw.const_params.items():
        cands = [
            q
            for q in model.parameters
            if q in symbols(term) and q not in used and in_terms[q] == 1 and q not in reparam
        ]
        if not cands:
            raise UnsupportedFeatureError(
                f"term '{to_infix(term)}' in structural identifiability",
                source=model.source,
                element=new,
                detail="a non-rational term of unknown parameters is analysed by standing for "
                "one of them that occurs nowhere else; here every parameter in it occurs "
                "elsewhere",
            )
        reparam[cands[0]] = (new, term)
    keep_params = [q for q in params if q not in reparam]
    extra_used = set()
    for term in rw.const_params:
        extra_used |= symbols(term) & set(model.parameters)
    missing = [q for q in keep_params if q not in used and q in extra_used]
    for p_, (new, term) in reparam.items():
        params[params.index(p_)] = new
        rw.notes.append(f"parameter '{p_}' is analysed through '{new}' = {to_infix(term)}")
    if missing:
        rw.notes.append(
            "parameters " + ", ".join(missing) + " occur only inside non-rational constant terms"
        )
    for x, r in rw.root_of.items():
        params.append(r)
        rw.notes.append(
            f"the unknown initial value {x}(0) is written {r}^{rw.root_power[x]} (a new unknown "
            f"{r}), so that the added powers of {x} start at known functions of it"
        )
    if rw.normalized:
        rw.notes.append(
            "inputs " + ", ".join(sorted(rw.normalized)) + " appear inside non-rational terms and "
            "are taken with value 1 at t = 0 (generic otherwise)"
        )
    eqs = {s: rw.rhs[s] for s in rw.states}
    for s, e in [*eqs.items(), *outputs.items()]:
        if not rational_ops_only(e):  # pragma: no cover - guards the rewrite itself
            raise UnsupportedFeatureError(
                f"term '{to_infix(e)}' in structural identifiability",
                element=s,
                source=model.source,
                detail="could not be written in rational form",
            )
    return RationalModel(
        states=tuple(rw.states),
        equations=eqs,
        outputs=outputs,
        parameters=tuple(params),
        known_values=rw.known_values,
        known_generic=tuple(rw.known_generic),
        inputs=tuple(model.inputs),
        unknown_inputs=tuple(model.unknown_inputs),
        derivatives=dict(rw.derivs),
        normalized_inputs=tuple(sorted(rw.normalized)),
        initial_roots={x: (r, rw.root_power[x]) for x, r in rw.root_of.items()},
        initial=initial,
        original_states=tuple(model.states),
        auxiliary=dict(rw.aux),
        relaxed=tuple(relaxed),
        reparametrized=reparam,
        notes=tuple(rw.notes),
        source=model.source,
    )
