"""Global identifiability by the SIAN approach: a polynomial system at a random point, solved by
a Gröbner basis modulo a prime.

Following Hong, Ovchinnikov, Pogudin and Yap (SIAN, Bioinformatics 2019; J. Symb. Comp. 2020):

1. Write each equation as a polynomial relation ``R_j = Q_j x_j' - P_j`` (``f_j = P_j / Q_j``)
   and each output as ``O_i = H_i y_i - G_i``; differentiate them with the total derivative
   ``D`` on jet variables (``D x_j^(a) = x_j^(a+1)``, ``D u^(a) = u^(a+1)``, ``D p = 0``).
2. Keep ``D^k O_i`` for ``k <= h_i``, where ``h_i`` are the orders at which the rank test saw the
   Jacobian rank grow, plus every ``D^(a-1) R_j`` needed to define the state jets they contain.
3. At a random point (parameters, initial values, input jets), put the output jets' values in;
   fix a transcendence basis of the non-identifiable unknowns at their values (so that the system
   is zero-dimensional), and add ``z Q - 1`` with ``Q`` the product of denominators, which removes
   solutions where a denominator vanishes.
4. Compute a Gröbner basis (:mod:`scalebridge.infer.groebner`).  A locally identifiable unknown
   ``v`` is globally identifiable when it takes only its true value ``v*`` on the solution set:
   ``v - v*`` is in the ideal, or the minimal polynomial of ``v - v*`` on the quotient ring
   (found from the normal forms of its powers) is a power of ``T``.

The same test decides any locally identifiable function ``P/Q`` of the unknowns (through the
polynomial ``P - (P/Q)(point) Q``), which is how identifiable combinations get their global label.
State jets may carry weights ``x -> x^w`` (Ilmer, Ovchinnikov, Pogudin, Soto 2022): the weighted
system has the same parameter values at its solutions and is often much faster to solve.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import flint

from ..model.expr import Call, Expr, Num, Sym
from .groebner import GroebnerBasis, GroebnerTimeout, PolyRing, groebner
from .rational import RationalModel, exact_fraction
from .series import Point

__all__ = ["RationalForms", "SianSystem", "build_system", "rational_forms"]


# ---------------------------------------------------------------------------------------------
# Rational functions over Q (exact), for numerators and denominators
# ---------------------------------------------------------------------------------------------
@dataclass
class RationalForms:
    """Numerators and denominators (fmpq_mpoly) of a rational model's expressions."""

    ctx: flint.fmpq_mpoly_ctx
    names: tuple[str, ...]
    equations: dict[str, tuple[flint.fmpq_mpoly, flint.fmpq_mpoly]]
    outputs: dict[str, tuple[flint.fmpq_mpoly, flint.fmpq_mpoly]]
    initial: dict[str, tuple[flint.fmpq_mpoly, flint.fmpq_mpoly]]


def _normalize(
    num: flint.fmpq_mpoly, den: flint.fmpq_mpoly
) -> tuple[flint.fmpq_mpoly, flint.fmpq_mpoly]:
    if num.is_zero():
        return num, den.context().constant(1)
    g = num.gcd(den)
    if not g.is_one():
        num, den = num / g, den / g
    lc = den.leading_coefficient()
    if lc != 1:
        num, den = num / lc, den / lc
    return num, den


def _frac(
    e: Expr, ctx: flint.fmpq_mpoly_ctx, gens: Mapping[str, flint.fmpq_mpoly]
) -> tuple[flint.fmpq_mpoly, flint.fmpq_mpoly]:
    one = ctx.constant(1)
    if isinstance(e, Num):
        f = exact_fraction(e.value)
        return ctx.constant(flint.fmpq(f.numerator, f.denominator)), one
    if isinstance(e, Sym):
        return gens[e.name], one
    assert isinstance(e, Call)
    args = [_frac(a, ctx, gens) for a in e.args]
    op = e.op
    if op == "add" or op == "sub":
        if op == "sub":
            args[1] = (-args[1][0], args[1][1])
        num, den = ctx.constant(0), one
        for a, b in args:
            if b == den:
                num = num + a
            else:
                num, den = num * b + a * den, den * b
        return _normalize(num, den)
    if op == "mul":
        num, den = one, one
        for a, b in args:
            num, den = num * a, den * b
        return _normalize(num, den)
    if op == "neg":
        return -args[0][0], args[0][1]
    if op == "div":
        (a, b), (c, d) = args
        if c.is_zero():
            raise ZeroDivisionError("division by zero in a model expression")
        return _normalize(a * d, b * c)
    if op == "pow":
        ex = e.args[1]
        assert isinstance(ex, Num)
        k = int(ex.value)
        a, b = args[0]
        if k >= 0:
            return a**k, b**k
        if a.is_zero():
            raise ZeroDivisionError("zero to a negative power in a model expression")
        return _normalize(b ** (-k), a ** (-k))
    raise ValueError(f"operation '{op}' in a rational model")  # pragma: no cover


def rational_forms(rm: RationalModel) -> RationalForms:
    """Exact numerator/denominator pairs of every equation, output and initial expression."""
    names = (
        *rm.states,
        *rm.parameters,
        *rm.known_generic,
        *rm.inputs,
        *rm.unknown_inputs,
        *rm.derivatives,
    )
    ctx = flint.fmpq_mpoly_ctx.get(tuple(f"v{i}" for i in range(len(names))), ordering="degrevlex")
    gens = dict(zip(names, ctx.gens(), strict=True)) if names else {}
    # Known values enter as numbers.
    for k, v in rm.known_values.items():
        gens[k] = ctx.constant(flint.fmpq(v.numerator, v.denominator))
    return RationalForms(
        ctx,
        names,
        {s: _frac(e, ctx, gens) for s, e in rm.equations.items()},
        {y: _frac(e, ctx, gens) for y, e in rm.outputs.items()},
        {s: _frac(v, ctx, gens) for s, v in rm.initial.items() if isinstance(v, Expr)},
    )


def degree_bound(forms: RationalForms) -> dict[str, int]:
    """Total degrees used by the error bound of the rank test (see ``structural``)."""
    d_num = max((n.total_degree() for n, _ in forms.equations.values()), default=0)
    d_den = max((q.total_degree() for _, q in forms.equations.values()), default=0)
    g_num = max((n.total_degree() for n, _ in forms.outputs.values()), default=1)
    g_den = max((q.total_degree() for _, q in forms.outputs.values()), default=0)
    ic = max(
        (max(n.total_degree(), q.total_degree()) for n, q in forms.initial.values()), default=1
    )
    n_den = sum(1 for _, q in forms.equations.values() if not q.is_constant())
    n_den += sum(1 for _, q in forms.outputs.values() if not q.is_constant())
    return {
        "f_num": int(d_num),
        "f_den": int(d_den),
        "g_num": int(g_num),
        "g_den": int(g_den),
        "ic": max(int(ic), 1),
        "denominators": n_den,
    }


# ---------------------------------------------------------------------------------------------
# The jet system
# ---------------------------------------------------------------------------------------------
@dataclass
class SianSystem:
    """A zero-dimensional (after slicing) polynomial system and its Gröbner basis."""

    ring: PolyRing
    variables: list[str]  # ring variable i -> 'p:<param>', 'x:<state>:<order>' or 'z'
    basis: GroebnerBasis
    values: dict[str, int]  # true values of the unknowns at the point ('p:..', 'x:..:0')
    orders: dict[str, int]
    seconds: float
    weights: dict[str, int] = field(default_factory=dict)

    @property
    def p(self) -> int:
        return self.ring.p

    def var_index(self, key: str) -> int:
        return self.variables.index(key)

    def polynomial(self, terms: Mapping[tuple[tuple[str, int], ...], int]) -> dict[int, int]:
        """A polynomial in unknowns given as {((key, exponent), ...): coefficient}; keys not
        in the ring (fixed by the slice) are replaced by their values."""
        p = self.ring.p
        out: dict[int, int] = {}
        for mono, c in terms.items():
            exps = [0] * self.ring.n
            coef = c % p
            for key, e in mono:
                if key.startswith("x:") and key in self.variables:
                    e *= self.weights.get(key.split(":")[1], 1)
                if key in self.variables:
                    exps[self.variables.index(key)] += e
                else:
                    coef = coef * pow(self.values[key], e, p) % p
            m = self.ring.mono(exps)
            out[m] = (out.get(m, 0) + coef) % p
        return {m: c for m, c in out.items() if c}

    def minimal_polynomial(
        self, f: dict[int, int], max_degree: int = 48, deadline: float | None = None
    ) -> flint.nmod_poly | None:
        """The minimal polynomial of ``f`` on the quotient ring (the monic m of least degree with
        m(f) in the ideal), from the normal forms of 1, f, f^2, ...; None when it has degree
        above ``max_degree`` (or the ideal is not zero-dimensional)."""
        p = self.ring.p
        nf = self.basis.normal_form
        powers: list[dict[int, int]] = [{0: 1}]
        g: dict[int, int] = {0: 1}
        for _k in range(1, max_degree + 1):
            if deadline is not None and time.monotonic() > deadline:
                raise GroebnerTimeout("time budget exhausted")
            prod: dict[int, int] = {}
            for m1, c1 in g.items():
                for m2, c2 in f.items():
                    prod[m1 + m2] = (prod.get(m1 + m2, 0) + c1 * c2) % p
            g = nf(prod)
            powers.append(g)
            monos = sorted({m for v in powers for m in v})
            if not monos:  # f^k = 0: nilpotent
                return flint.nmod_poly([0] * len(powers[:-1]) + [1], p)
            idx = {m: i for i, m in enumerate(monos)}
            M = flint.nmod_mat(len(monos), len(powers), p)
            for j, v in enumerate(powers):
                for m, c in v.items():
                    M[idx[m], j] = c
            N, nul = M.nullspace()
            if nul:
                coeffs = [int(N[i, 0]) for i in range(len(powers))]
                lead = coeffs[-1]
                if lead == 0:  # pragma: no cover - earlier powers were independent
                    return None
                inv = pow(lead, -1, p)
                return flint.nmod_poly([c * inv % p for c in coeffs], p)
        return None

    def constant_on_solutions(self, f: dict[int, int], **kw: Any) -> bool | None:
        """Is the polynomial ``f`` zero at every solution?  None when undecided."""
        if not self.basis.normal_form(dict(f)):
            return True
        mp = self.minimal_polynomial(f, **kw)
        if mp is None:
            return None
        return all(int(c) == 0 for c in mp.coeffs()[:-1])

    def with_equations(
        self, extra: Sequence[dict[int, int]], deadline: float | None = None
    ) -> SianSystem:
        """The system with more polynomial equations (in this ring) added."""
        polys = []
        for f in extra:
            g = self.ring.from_dict(self.basis.normal_form(dict(f)))
            if g is not None:
                polys.append(g)
        basis = groebner(self.ring, polys, deadline=deadline, start=self.basis)
        return SianSystem(
            ring=self.ring,
            variables=self.variables,
            basis=basis,
            values=self.values,
            orders=self.orders,
            seconds=self.seconds,
            weights=self.weights,
        )


def _jet_name(kind: str, idx: int, order: int) -> str:
    return f"{kind}{idx}_{order}"


def build_system(
    rm: RationalModel,
    forms: RationalForms,
    point: Point,
    y_coeffs: Mapping[str, Sequence[int]],
    orders: Mapping[str, int],
    fixed: Sequence[tuple[str, str]],
    *,
    deadline: float | None = None,
    weights: Mapping[str, int] | None = None,
) -> SianSystem:
    """Build the SIAN system at ``point`` (modulo ``point.modulus`` < 2^31) with output
    ``y_coeffs`` (Taylor coefficients), output orders ``orders`` (-1: unused), the unknowns
    ``fixed`` (('parameter', name) or ('initial', state)) set to their values, and compute its
    Gröbner basis.  Raises :class:`GroebnerTimeout` past ``deadline``."""
    t0 = time.monotonic()
    p = point.modulus
    if rm.unknown_inputs:
        raise GroebnerTimeout("unknown inputs: global analysis not attempted")
    hmax = max(orders.values(), default=-1)
    if hmax < 0:
        raise GroebnerTimeout("no output carries information")
    L = hmax + 1
    dmax = max((d for _, d in rm.derivatives.values()), default=0)
    st_idx = {s: j for j, s in enumerate(rm.states)}
    in_idx = {u: k for k, u in enumerate(rm.inputs)}
    out_idx = {y: i for i, y in enumerate(rm.outputs)}
    par_idx = {q: c for c, q in enumerate(rm.parameters)}
    names: list[str] = []
    for j in range(len(rm.states)):
        names += [_jet_name("x", j, a) for a in range(L + 1)]
    for k in range(len(rm.inputs)):
        names += [_jet_name("u", k, a) for a in range(L + dmax + 1)]
    for i in range(len(rm.outputs)):
        names += [_jet_name("y", i, a) for a in range(L + 1)]
    names += [f"p{c}" for c in range(len(rm.parameters))]
    names.append("z")
    ctx = flint.nmod_mpoly_ctx.get(tuple(names), ordering="degrevlex", modulus=p)
    gen = dict(zip(names, ctx.gens(), strict=True))
    pos = {nm: i for i, nm in enumerate(names)}
    nxt: dict[int, int] = {}
    for nm in names:
        if nm[0] in "xuy":
            base, a_s = nm.rsplit("_", 1)
            succ = f"{base}_{int(a_s) + 1}"
            if succ in pos:
                nxt[pos[nm]] = pos[succ]

    # Map the rational-forms variables onto jets or numbers.
    target: list[tuple[int, int] | tuple[None, int]] = []
    for nm in forms.names:
        if nm in st_idx:
            target.append((pos[_jet_name("x", st_idx[nm], 0)], 0))
        elif nm in par_idx:
            target.append((pos[f"p{par_idx[nm]}"], 0))
        elif nm in rm.known_generic:
            target.append((None, point.values[nm]))
        elif nm in in_idx:
            target.append((pos[_jet_name("u", in_idx[nm], 0)], 0))
        elif nm in rm.derivatives:
            u, d = rm.derivatives[nm]
            target.append((pos[_jet_name("u", in_idx[u], d)], 0))
        else:  # pragma: no cover - unknown inputs are refused above
            raise GroebnerTimeout(f"symbol '{nm}' has no jet")
    nj = len(names)

    def to_jet(f: flint.fmpq_mpoly) -> flint.nmod_mpoly:
        acc: dict[tuple[int, ...], int] = {}
        for exps, c in f.terms():
            coef = int(c.p) % p * pow(int(c.q) % p, -1, p) % p
            e = [0] * nj
            for i, k in enumerate(map(int, exps)):
                if k:
                    tgt, val = target[i]
                    if tgt is None:
                        coef = coef * pow(val, k, p) % p
                    else:
                        e[tgt] += k
            key = tuple(e)
            acc[key] = (acc.get(key, 0) + coef) % p
        return ctx.from_dict({k: v for k, v in acc.items() if v})

    def D(f: flint.nmod_mpoly) -> flint.nmod_mpoly:
        out = ctx.from_dict({})
        for i, dg in enumerate(f.degrees()):
            if dg and i in nxt:
                out += f.derivative(i) * ctx.gens()[nxt[i]]
            elif dg and names[i][0] in "xuy":
                raise GroebnerTimeout("jet order too high")
        return out

    rel: dict[int, flint.nmod_mpoly] = {}
    qden: dict[int, flint.nmod_mpoly] = {}
    for s, (num, den) in forms.equations.items():
        j = st_idx[s]
        qj = to_jet(den)
        qden[j] = qj
        rel[j] = qj * gen[_jet_name("x", j, 1)] - to_jet(num)
    polys: list[flint.nmod_mpoly] = []
    hden: list[flint.nmod_mpoly] = []
    for y, (num, den) in forms.outputs.items():
        i = out_idx[y]
        h = orders.get(y, -1)
        if h < 0:
            continue
        hj = to_jet(den)
        hden.append(hj)
        f = hj * gen[_jet_name("y", i, 0)] - to_jet(num)
        for k in range(h + 1):
            if k:
                f = D(f)
            polys.append(f)
        if deadline is not None and time.monotonic() > deadline:
            raise GroebnerTimeout("time budget exhausted")

    # State relations needed to define the jets x_j^(a), a >= 1 (closure).
    state_rel: dict[tuple[int, int], flint.nmod_mpoly] = {}

    def state_relation(j: int, a: int) -> flint.nmod_mpoly:
        key = (j, a)
        if key not in state_rel:
            state_rel[key] = rel[j] if a == 1 else D(state_relation(j, a - 1))
        return state_rel[key]

    needed: set[tuple[int, int]] = set()
    queue = list(polys)
    while queue:
        f = queue.pop()
        for i, dg in enumerate(f.degrees()):
            nm = names[i]
            if dg and nm[0] == "x":
                base, a_s = nm.rsplit("_", 1)
                j, order = int(base[1:]), int(a_s)
                if order >= 1 and (j, order) not in needed:
                    needed.add((j, order))
                    queue.append(state_relation(j, order))
    polys += [state_relation(j, a) for j, a in sorted(needed)]
    used_states = {j for j, _ in needed}

    # Values: output jets, input jets, known initial values, fixed unknowns.
    subs: dict[str, int] = {}
    fact = [1]
    for a in range(1, L + dmax + 2):
        fact.append(fact[-1] * a % p)
    for y, iy in out_idx.items():
        coeffs = y_coeffs.get(y, ())
        for order_a in range(min(L + 1, len(coeffs))):
            subs[_jet_name("y", iy, order_a)] = coeffs[order_a] * fact[order_a] % p
    for u, iu in in_idx.items():
        cs = point.inputs[u]
        for order_a in range(L + dmax + 1):
            subs[_jet_name("u", iu, order_a)] = cs[order_a] * fact[order_a] % p
    values: dict[str, int] = {}
    for q in par_idx:
        values[f"p:{q}"] = point.values[q]
    for s, j in st_idx.items():
        init = rm.initial.get(s, "unknown") if s in rm.initial else "unknown"
        if init == "unknown":
            values[f"x:{s}:0"] = point.values[s]
        elif init is None:
            subs[_jet_name("x", j, 0)] = point.values[s]
        elif isinstance(init, Fraction):
            subs[_jet_name("x", j, 0)] = init.numerator * pow(init.denominator, -1, p) % p
    ic_eqs: list[flint.nmod_mpoly] = []
    for s, (num, den) in forms.initial.items():
        j = st_idx[s]
        dj = to_jet(den)
        hden.append(dj)
        ic_eqs.append(dj * gen[_jet_name("x", j, 0)] - to_jet(num))
    for kind, name in fixed:
        if kind == "parameter":
            subs[f"p{par_idx[name]}"] = point.values[name]
        else:
            subs[_jet_name("x", st_idx[name], 0)] = point.values[name]
    Q = ctx.constant(1)
    for j in sorted(used_states | set(range(len(rm.states)))):
        if j in qden and not qden[j].is_constant():
            Q *= qden[j]
    for hq in hden:
        if not hq.is_constant():
            Q *= hq
    polys += ic_eqs
    polys.append(gen["z"] * Q - 1)
    subs_idx = {pos[k]: v for k, v in subs.items()}
    # Substitute in one pass over the terms (faster than repeated subs on many variables).
    done: list[dict[tuple[int, ...], int]] = []
    present: set[int] = set()
    for f in polys:
        acc: dict[tuple[int, ...], int] = {}
        for exps, c in f.terms():
            coef = int(c)
            e = [int(k) for k in exps]
            for i, k in enumerate(list(e)):
                if k and i in subs_idx:
                    coef = coef * pow(subs_idx[i], k, p) % p
                    e[i] = 0
            key = tuple(e)
            acc[key] = (acc.get(key, 0) + coef) % p
        acc = {k: v for k, v in acc.items() if v}
        if acc:
            done.append(acc)
            for key in acc:
                present.update(i for i, k in enumerate(key) if k)
    if deadline is not None and time.monotonic() > deadline:
        raise GroebnerTimeout("time budget exhausted")

    # Ring variables: higher jets first, then initial values, z, parameters (grevlex).
    def rank_key(i: int) -> tuple[int, int, int]:
        nm = names[i]
        if nm == "z":
            return (2, 0, 0)
        if nm[0] == "p":
            return (3, 0, int(nm[1:]))
        base, a_s = nm.rsplit("_", 1)
        order = int(a_s)
        return (0 if order else 1, -order, int(base[1:]))

    order_vars = sorted(present, key=rank_key)
    ring = PolyRing(len(order_vars), p)
    newpos = {i: k for k, i in enumerate(order_vars)}
    wt = [1] * nj
    if weights:
        for s_, j in st_idx.items():
            for a in range(L + 1):
                wt[pos[_jet_name("x", j, a)]] = weights.get(s_, 1)
    rpolys: list[tuple[list[int], list[int]]] = []
    for acc in done:
        terms: list[tuple[list[int], int]] = []
        for key, coef in acc.items():
            ex = [0] * len(order_vars)
            for i, k in enumerate(key):
                if k:
                    ex[newpos[i]] = k * wt[i]
            terms.append((ex, coef))
        rp = ring.poly(terms)
        if rp is not None:
            rpolys.append(rp)
    variables = []
    inv_par = {c: q for q, c in par_idx.items()}
    for i in order_vars:
        nm = names[i]
        if nm == "z":
            variables.append("z")
        elif nm[0] == "p":
            variables.append(f"p:{inv_par[int(nm[1:])]}")
        else:
            base, order_s = nm.rsplit("_", 1)
            variables.append(f"x:{rm.states[int(base[1:])]}:{order_s}")
    basis = groebner(ring, rpolys, deadline=deadline)
    return SianSystem(
        ring=ring,
        variables=variables,
        basis=basis,
        values=values,
        orders=dict(orders),
        seconds=time.monotonic() - t0,
        weights=dict(weights or {}),
    )
