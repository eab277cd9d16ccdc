"""Power-series solutions of rational ODE models modulo a prime, with exact sensitivities.

For a :class:`~scalebridge.infer.rational.RationalModel` and a point -- values of the unknown
parameters, unknown initial values, generic known constants and the Taylor coefficients of the
inputs, all in the field F_p -- :func:`taylor` computes the Taylor coefficients at ``t = 0`` of
the solution ``x(t) = sum_k x_k t^k`` and of the outputs ``y(t) = sum_k y_k t^k`` up to order
``K``, from ``x_{k+1} = [f(x)]_k / (k + 1)`` (``[.]_k`` is the coefficient of ``t^k``).  With
``gradient=True`` it carries forward-mode dual numbers: every series is a value and its partial
derivatives with respect to the unknowns (the *columns*: parameters, unknown initial values and
the Taylor coefficients of unknown inputs), so the result includes the Jacobian
``d y_k / d unknowns`` exactly modulo p.  The coefficients ``y_k = y^(k)(0) / k!`` are the
output derivatives up to a nonzero factor, which is what the rank tests need.

Series arithmetic uses FLINT's ``nmod_poly`` (truncated products, series inverses).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import flint

from ..errors import UnsupportedFeatureError
from ..model.expr import Call, Expr, Num, Sym
from .rational import RationalModel, exact_fraction

__all__ = ["Point", "TaylorResult", "columns", "sample_point", "taylor", "to_modp"]


class DivisionByZeroSeries(ArithmeticError):
    """A denominator vanishes at t = 0 at the chosen point."""


def to_modp(v: Fraction | int, p: int) -> int:
    """The residue of a rational number modulo p."""
    f = Fraction(v)
    den = f.denominator % p
    if den == 0:
        raise ZeroDivisionError(f"{f} has no value modulo {p}")
    return f.numerator * pow(den, -1, p) % p


@dataclass
class Point:
    """Values in F_p at which a model is expanded.

    ``values`` covers parameters, unknown and generic-known initial values (by state name) and
    generic known constants; ``inputs`` / ``unknown_inputs`` hold Taylor coefficients
    ``u_0, u_1, ...`` of each input."""

    modulus: int
    values: dict[str, int] = field(default_factory=dict)
    inputs: dict[str, list[int]] = field(default_factory=dict)
    unknown_inputs: dict[str, list[int]] = field(default_factory=dict)


def columns(rm: RationalModel, input_order: int = 0) -> list[tuple[str, str, int]]:
    """The unknowns, as (kind, name, order): ('parameter', p, 0), ('initial', x, 0) and, for each
    unknown input w, ('input', w, a) for its Taylor coefficients a = 0 .. input_order."""
    out: list[tuple[str, str, int]] = [("parameter", p, 0) for p in rm.parameters]
    out += [("initial", s, 0) for s in rm.unknown_initial]
    for w in rm.unknown_inputs:
        out += [("input", w, a) for a in range(input_order + 1)]
    return out


def sample_point(rm: RationalModel, p: int, order: int, rng: object) -> Point:
    """A uniformly random point of F_p^* for every free quantity (``rng``: numpy Generator or
    random.Random); inputs get ``order + 1 + (highest derivative order)`` coefficients."""
    import random

    r = rng if isinstance(rng, random.Random) else random.Random(int(rng.integers(2**62)))  # type: ignore[attr-defined]

    def draw() -> int:
        return r.randrange(1, p)

    pt = Point(p)
    for name in rm.parameters:
        pt.values[name] = draw()
    for s in rm.states:
        if s not in rm.initial or rm.initial[s] is None:
            pt.values[s] = draw()
    for k in rm.known_generic:
        pt.values[k] = draw()
    extra = max((o for _, o in rm.derivatives.values()), default=0)
    for u in rm.inputs:
        pt.inputs[u] = [draw() for _ in range(order + extra + 2)]
        if u in rm.normalized_inputs:
            pt.inputs[u][0] = 1  # u(0) = 1: see scalebridge.infer.rational
    for w in rm.unknown_inputs:
        pt.unknown_inputs[w] = [draw() for _ in range(order + extra + 2)]
    return pt


class _DS:
    """A dual power series: value ``v`` and partial derivatives ``g[column]`` (nmod_poly)."""

    __slots__ = ("g", "v")

    def __init__(self, v: flint.nmod_poly, g: dict[int, flint.nmod_poly] | None = None):
        self.v = v
        self.g = g if g is not None else {}


class _Arith:
    def __init__(self, p: int, n: int, gradient: bool):
        self.p = p
        self.n = n
        self.gradient = gradient

    def const(self, c: int) -> _DS:
        return _DS(flint.nmod_poly([c % self.p], self.p))

    def add(self, a: _DS, b: _DS) -> _DS:
        g = dict(a.g)
        for k, gb in b.g.items():
            g[k] = g[k] + gb if k in g else gb
        return _DS(a.v + b.v, g)

    def neg(self, a: _DS) -> _DS:
        return _DS(-a.v, {k: -x for k, x in a.g.items()})

    def sub(self, a: _DS, b: _DS) -> _DS:
        return self.add(a, self.neg(b))

    def mul(self, a: _DS, b: _DS) -> _DS:
        n = self.n
        v = a.v.mul_low(b.v, n)
        g: dict[int, flint.nmod_poly] = {}
        for k, ga in a.g.items():
            g[k] = ga.mul_low(b.v, n)
        for k, gb in b.g.items():
            t = a.v.mul_low(gb, n)
            g[k] = g[k] + t if k in g else t
        return _DS(v, g)

    def inv(self, b: _DS) -> _DS:
        if int(b.v[0]) == 0:
            raise DivisionByZeroSeries
        n = self.n
        inv = b.v.inverse_series_trunc(n)
        if not b.g:
            return _DS(inv)
        inv2 = -inv.mul_low(inv, n)
        return _DS(inv, {k: gb.mul_low(inv2, n) for k, gb in b.g.items()})

    def div(self, a: _DS, b: _DS) -> _DS:
        return self.mul(a, self.inv(b))

    def pow(self, a: _DS, e: int) -> _DS:
        if e < 0:
            return self.inv(self.pow(a, -e))
        out = self.const(1)
        base = a
        while e:
            if e & 1:
                out = self.mul(out, base)
            e >>= 1
            if e:
                base = self.mul(base, base)
        return out


def _evaluate(e: Expr, env: Mapping[str, _DS], ar: _Arith, memo: dict[int, _DS]) -> _DS:
    key = id(e)
    hit = memo.get(key)
    if hit is not None:
        return hit
    if isinstance(e, Num):
        out = ar.const(to_modp(exact_fraction(e.value), ar.p))
    elif isinstance(e, Sym):
        out = env[e.name]
    else:
        assert isinstance(e, Call)
        a = [_evaluate(x, env, ar, memo) for x in e.args]
        op = e.op
        if op == "add":
            out = a[0] if a else ar.const(0)
            for x in a[1:]:
                out = ar.add(out, x)
        elif op == "mul":
            out = a[0] if a else ar.const(1)
            for x in a[1:]:
                out = ar.mul(out, x)
        elif op == "sub":
            out = ar.sub(a[0], a[1])
        elif op == "neg":
            out = ar.neg(a[0])
        elif op == "div":
            out = ar.div(a[0], a[1])
        elif op == "pow":
            ex = e.args[1]
            assert isinstance(ex, Num)
            out = ar.pow(a[0], int(ex.value))
        else:  # pragma: no cover - rationalize() guarantees rational operations
            raise UnsupportedFeatureError(f"operation '{op}' in a rational model")
    memo[key] = out
    return out


def _rising(a: int, d: int) -> int:
    """(a + d)! / a!"""
    out = 1
    for i in range(a + 1, a + d + 1):
        out *= i
    return out


@dataclass
class TaylorResult:
    """Output Taylor coefficients ``y[name][k]`` (k = 0..order) and, with gradients,
    ``dy[name][k]`` = the row of partial derivatives over :attr:`columns`."""

    order: int
    columns: list[tuple[str, str, int]]
    y: dict[str, list[int]]
    dy: dict[str, list[list[int]]]
    x: dict[str, list[int]]


def taylor(
    rm: RationalModel,
    pt: Point,
    order: int,
    *,
    gradient: bool = True,
    outputs: Sequence[str] | None = None,
    input_order: int | None = None,
) -> TaylorResult:
    """Taylor coefficients of the outputs to ``order`` at ``pt`` (see the module docstring).

    Raises :class:`DivisionByZeroSeries` when a denominator vanishes at t = 0 (the caller
    draws another point, or reports the model)."""
    p = pt.modulus
    outs = list(rm.outputs if outputs is None else outputs)
    in_ord = order if input_order is None else input_order
    cols = columns(rm, in_ord) if gradient else []
    index = {c: i for i, c in enumerate(cols)}

    # Constant symbols: parameters (with unit gradients), known constants.
    ar0 = _Arith(p, 1, gradient)
    consts: dict[str, _DS] = {}
    for name in rm.parameters:
        g = {index[("parameter", name, 0)]: flint.nmod_poly([1], p)} if gradient else {}
        consts[name] = _DS(flint.nmod_poly([pt.values[name]], p), g)
    for kname, kval in rm.known_values.items():
        consts[kname] = ar0.const(to_modp(kval, p))
    for kname in rm.known_generic:
        consts[kname] = ar0.const(pt.values[kname])

    # Initial values (coefficient 0 of every state), with their gradients.
    x_val: dict[str, list[int]] = {}
    x_grad: dict[str, dict[int, list[int]]] = {}
    for s in rm.states:
        init: Fraction | Expr | str | None = rm.initial[s] if s in rm.initial else "unknown"
        if init == "unknown":
            x_val[s] = [pt.values[s]]
            x_grad[s] = {index[("initial", s, 0)]: [1]} if gradient else {}
        elif init is None:
            x_val[s] = [pt.values[s]]
            x_grad[s] = {}
        elif isinstance(init, Fraction):
            x_val[s] = [to_modp(init, p)]
            x_grad[s] = {}
        else:
            assert isinstance(init, Expr)
            d = _evaluate(init, consts, ar0, {})
            x_val[s] = [int(d.v[0])]
            x_grad[s] = {k: [int(gk[0])] for k, gk in d.g.items()} if gradient else {}

    def input_series(n: int) -> dict[str, _DS]:
        env: dict[str, _DS] = {}
        for u, coeffs in pt.inputs.items():
            env[u] = _DS(flint.nmod_poly(coeffs[:n], p))
        for w, coeffs in pt.unknown_inputs.items():
            g = {}
            if gradient:
                for a in range(min(n, in_ord + 1)):
                    g[index[("input", w, a)]] = flint.nmod_poly([0] * a + [1], p)
            env[w] = _DS(flint.nmod_poly(coeffs[:n], p), g)
        for name, (u, order_d) in rm.derivatives.items():
            src = pt.inputs.get(u) if u in pt.inputs else pt.unknown_inputs[u]
            assert src is not None
            vals = [src[a + order_d] * _rising(a, order_d) % p for a in range(n)]
            g = {}
            if gradient and u in pt.unknown_inputs:
                for a in range(n):
                    if a + order_d <= in_ord:
                        c = _rising(a, order_d) % p
                        g[index[("input", u, a + order_d)]] = flint.nmod_poly([0] * a + [c], p)
            env[name] = _DS(flint.nmod_poly(vals, p), g)
        return env

    for k in range(order):
        n = k + 1
        ar = _Arith(p, n, gradient)
        env: dict[str, _DS] = dict(consts)
        env.update(input_series(n))
        for s in rm.states:
            env[s] = _DS(
                flint.nmod_poly(x_val[s], p),
                {c: flint.nmod_poly(v, p) for c, v in x_grad[s].items()},
            )
        memo: dict[int, _DS] = {}
        inv_k1 = pow(k + 1, -1, p)
        for s in rm.states:
            d = _evaluate(rm.equations[s], env, ar, memo)
            x_val[s].append(int(d.v[k]) * inv_k1 % p)
            grads = x_grad[s]
            for c in grads:
                grads[c].append(0)
            for c, gc in d.g.items():
                val = int(gc[k]) * inv_k1 % p
                if c not in grads:
                    grads[c] = [0] * (k + 1) + [val]
                else:
                    grads[c][-1] = val

    n = order + 1
    ar = _Arith(p, n, gradient)
    env = dict(consts)
    env.update(input_series(n))
    for s in rm.states:
        env[s] = _DS(
            flint.nmod_poly(x_val[s], p), {c: flint.nmod_poly(v, p) for c, v in x_grad[s].items()}
        )
    memo = {}
    y: dict[str, list[int]] = {}
    dy: dict[str, list[list[int]]] = {}
    for name in outs:
        d = _evaluate(rm.outputs[name], env, ar, memo)
        y[name] = [int(d.v[k]) for k in range(n)]
        if gradient:
            rows = [[0] * len(cols) for _ in range(n)]
            for c, gc in d.g.items():
                for kk in range(n):
                    rows[kk][c] = int(gc[kk])
            dy[name] = rows
    return TaylorResult(order, cols, y, dy, {s: x_val[s] for s in rm.states})
