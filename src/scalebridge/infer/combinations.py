"""Identifiable combinations of non-identifiable unknowns, found by exact rank tests.

A function ``phi`` of the unknowns is locally identifiable exactly when its gradient lies in the
row space ``W`` of the output Jacobian ``J = d(y_k)/d(unknowns)`` at a generic point, i.e. when
``kappa . grad(phi) = 0`` for every vector ``kappa`` of the kernel of ``J``.  Over F_p and at
random points this gives linear conditions on candidate combinations:

* **monomials** ``phi = prod v_i^a_i`` (``koff/kon``, ``s*Rtot``): ``grad(phi) = phi (a_i / v_i)``,
  so the identifiable exponent vectors form the subspace ``{a : sum_i kappa_i a_i / v_i = 0}``
  -- one point suffices, and the subspace is defined over Q;
* **polynomials** of low degree (``k1 + k2``, ``a01 + a12 + a21``): ``sum_t c_t grad(t)`` must lie
  in ``W`` at every point, which is linear in the coefficients ``c``; points are added until the
  solution space stops shrinking.

Solutions modulo p are lifted to small rationals by rational reconstruction and checked again at
an independent random point.  Among them a maximal algebraically independent family is kept (by
the rank of their gradients), preferring monomials, then linear forms, then quadratics; it has as
many members as the rank test says there are independent identifiable directions, unless the
search space is too small (the result then says how many were found).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import combinations_with_replacement
from math import gcd

import flint

from ..model.expr import Call, Expr, Num, Sym

__all__ = [
    "CandidateCombination",
    "combination_expr",
    "find_combinations",
    "rational_reconstruction",
]

# A kernel oracle: a fresh random point -> (values of the unknowns, kernel vectors), mod p.
KernelOracle = Callable[[], tuple[list[int], list[list[int]]]]


def rational_reconstruction(a: int, p: int) -> Fraction | None:
    """The fraction n/d with |n|, d <= sqrt(p/2) congruent to a mod p, or None (Wang)."""
    a %= p
    bound = int((p // 2) ** 0.5)
    r0, r1 = p, a
    s0, s1 = 0, 1
    while r1 > bound:
        q = r0 // r1
        r0, r1 = r1, r0 - q * r1
        s0, s1 = s1, s0 - q * s1
    if s1 == 0 or abs(s1) > bound:
        return None
    f = Fraction(r1, s1)
    if (f.numerator - a * f.denominator) % p:
        return None
    return f


def _nullspace(rows: list[list[int]], ncols: int, p: int) -> list[list[int]]:
    """Basis of {c : R c = 0} mod p, as lists (reduced so each has a unit pivot)."""
    if not rows:
        return [[int(i == j) for i in range(ncols)] for j in range(ncols)]
    M = flint.nmod_mat(len(rows), ncols, [v % p for r in rows for v in r], p)
    N, nul = M.nullspace()
    if nul == 0:
        return []
    basis = [[int(N[i, j]) for i in range(ncols)] for j in range(nul)]
    # Reduced row echelon form of the basis (as rows) for canonical, small representatives.
    B = flint.nmod_mat(basis, p)
    R, rank = B.rref()
    return [[int(R[i, j]) for j in range(ncols)] for i in range(rank)]


def _lift(vec: Sequence[int], p: int) -> list[int] | None:
    """A modular vector as a primitive integer vector (rational reconstruction), or None."""
    fr = []
    for v in vec:
        f = rational_reconstruction(v, p)
        if f is None:
            return None
        fr.append(f)
    den = 1
    for f in fr:
        den = den * f.denominator // gcd(den, f.denominator)
    ints = [int(f * den) for f in fr]
    g = 0
    for x in ints:
        g = gcd(g, abs(x))
    if g == 0:
        return None
    return [x // g for x in ints]


@dataclass(frozen=True)
class CandidateCombination:
    """A combination found by the search: ``kind`` is 'monomial' (``exponents`` over the
    variables) or 'polynomial' (``terms``: exponent tuple -> integer coefficient)."""

    kind: str
    terms: tuple[tuple[tuple[int, ...], int], ...]

    def value(self, vals: Sequence[int], p: int) -> int:
        """The combination at ``vals`` (mod p); monomials may have negative exponents."""
        out = 0
        for exps, c in self.terms:
            t = c % p
            for v, e in zip(vals, exps, strict=True):
                if e:
                    t = t * pow(v, e, p) % p
            out = (out + t) % p
        return out

    def gradient(self, vals: Sequence[int], p: int) -> list[int]:
        g = [0] * len(vals)
        for exps, c in self.terms:
            for i, e in enumerate(exps):
                if not e:
                    continue
                t = c * e % p
                for j, (v, ej) in enumerate(zip(vals, exps, strict=True)):
                    ee = ej - 1 if j == i else ej
                    if ee:
                        t = t * pow(v, ee, p) % p
                g[i] = (g[i] + t) % p
        return g

    def numerator_denominator(
        self,
    ) -> tuple[dict[tuple[int, ...], int], dict[tuple[int, ...], int]]:
        """``phi = P / Q`` with P, Q polynomials (exponent tuple -> coefficient)."""
        if self.kind == "monomial":
            ((exps, c),) = self.terms
            num = tuple(max(e, 0) for e in exps)
            den = tuple(max(-e, 0) for e in exps)
            return {num: c}, {den: 1}
        return dict(self.terms), {tuple(0 for _ in self.terms[0][0]): 1}


def combination_expr(c: CandidateCombination, names: Sequence[str]) -> Expr:
    """The expression tree of a combination over variable ``names``."""

    def mono(exps: Sequence[int]) -> tuple[Expr | None, Expr | None]:
        num: list[Expr] = []
        den: list[Expr] = []
        for nm, e in zip(names, exps, strict=True):
            if e > 0:
                num.append(Sym(nm) if e == 1 else Call("pow", (Sym(nm), Num(float(e)))))
            elif e < 0:
                den.append(Sym(nm) if e == -1 else Call("pow", (Sym(nm), Num(float(-e)))))
        n = None if not num else (num[0] if len(num) == 1 else Call("mul", tuple(num)))
        d = None if not den else (den[0] if len(den) == 1 else Call("mul", tuple(den)))
        return n, d

    out: Expr | None = None
    # positive terms first, so that a difference reads a - b rather than -b + a
    for exps, coef in sorted(c.terms, key=lambda t: t[1] < 0):
        n, d = mono(exps)
        body: Expr = n if n is not None else Num(1.0)
        if d is not None:
            body = Call("div", (body, d))
        if abs(coef) != 1:
            body = (
                Num(float(abs(coef)))
                if n is None and d is None
                else (Call("mul", (Num(float(abs(coef))), body)))
            )
        if out is None:
            out = Call("neg", (body,)) if coef < 0 else body
        elif coef < 0:
            out = Call("sub", (out, body))
        elif isinstance(out, Call) and out.op == "add":
            out = Call("add", (*out.args, body))
        else:
            out = Call("add", (out, body))
    assert out is not None
    return out


def _in_row_space(grad: Sequence[int], kernel: Sequence[Sequence[int]], p: int) -> bool:
    return all(sum(k * g for k, g in zip(kv, grad, strict=True)) % p == 0 for kv in kernel)


def _embed(vec_v: Sequence[int], var_cols: Sequence[int], ncols: int) -> list[int]:
    out = [0] * ncols
    for v, c in zip(vec_v, var_cols, strict=True):
        out[c] = v
    return out


class _Samples:
    """Random points drawn from the oracle once and reused by every search."""

    def __init__(self, oracle: KernelOracle):
        self.oracle = oracle
        self.points: list[tuple[list[int], list[list[int]]]] = []

    def __getitem__(self, i: int) -> tuple[list[int], list[list[int]]]:
        while len(self.points) <= i:
            self.points.append(self.oracle())
        return self.points[i]


def _generic_solutions(
    samples: _Samples,
    make_rows: Callable[[list[int], list[list[int]]], list[list[int]]],
    nunk: int,
    p: int,
    max_points: int,
    first: int = 1,
) -> list[list[int]]:
    """Integer vectors c solving the linear conditions ``make_rows`` gives at every random
    point: points are added until the solution space has not shrunk twice in a row."""
    rows: list[list[int]] = []
    dim = nunk
    stable = 0
    for i in range(first, first + max_points):
        vals, ker = samples[i]
        rows += make_rows(vals, ker)
        basis = _nullspace(rows, nunk, p)
        if len(basis) == dim:
            stable += 1
            if stable >= 2:
                break
        else:
            stable = 0
            dim = len(basis)
        if dim == 0:
            return []
    out = []
    for vec in _nullspace(rows, nunk, p):
        ints = _lift(vec, p)
        if ints is not None:
            out.append(ints)
    return out


def _orient(a: list[int]) -> list[int]:
    """Sign convention for exponent vectors: more positive than negative entries; on a tie the
    last nonzero entry positive (koff/kon rather than kon/koff)."""
    pos = sum(1 for x in a if x > 0)
    neg = sum(1 for x in a if x < 0)
    last = next((x for x in reversed(a) if x), 0)
    if neg > pos or (neg == pos and last < 0):
        return [-x for x in a]
    return a


def find_combinations(
    oracle: KernelOracle,
    var_cols: Sequence[int],
    ncols: int,
    p: int,
    target: int,
    *,
    preferred: Sequence[int] = (),
    extra_cols: Sequence[int] = (),
    max_quadratic_vars: int = 8,
    max_points: int = 40,
) -> tuple[list[CandidateCombination], bool, list[int]]:
    """Search identifiable combinations of the unknowns in columns ``var_cols``.

    ``oracle()`` draws a fresh random point and returns (values of all ``ncols`` unknowns,
    kernel vectors of the Jacobian there).  Monomials in the ``preferred`` columns alone (say,
    parameters rather than initial values) are tried first.  Polynomials may also use the
    ``extra_cols`` (identifiable unknowns, as in ``a12*x0_0 + a12*x1_0``); independence is judged
    on the ``var_cols`` part of the gradients.  Returns (combinations, complete, columns):
    complete says whether ``target`` independent combinations were found, and every
    combination's exponents refer to ``columns`` (``var_cols`` then the used ``extra_cols``)."""
    q = len(var_cols)
    pcols = list(var_cols) + [c for c in extra_cols if c not in set(var_cols)]
    nq = len(pcols)

    def padded(cs: list[CandidateCombination]) -> list[CandidateCombination]:
        return [
            CandidateCombination(c.kind, tuple((e + (0,) * (nq - len(e)), k) for e, k in c.terms))
            for c in cs
        ]

    if q == 0 or target <= 0:
        return [], True, pcols
    chosen: list[CandidateCombination] = []
    samples = _Samples(oracle)
    check_vals, check_ker = samples[0]  # the independent check point

    def sub_vals(vals: Sequence[int]) -> list[int]:
        return [vals[c] for c in var_cols]

    def verified(c: CandidateCombination) -> bool:
        g = _embed(c.gradient(sub_vals(check_vals), p), var_cols, ncols)
        return _in_row_space(g, check_ker, p) and any(g)

    chosen_grads: list[list[int]] = []

    def independent_add(c: CandidateCombination) -> bool:
        g = c.gradient(sub_vals(check_vals), p)
        grads = [*chosen_grads, g]
        M = flint.nmod_mat(len(grads), q, [v for x in grads for v in x], p)
        if M.rank() == len(grads):
            chosen.append(c)
            chosen_grads.append(g)
            return True
        return False

    # 1. Monomials prod v_i^a_i: sum_i kappa_i a_i / v_i = 0 at every point.
    pref = [i for i, c in enumerate(var_cols) if c in set(preferred)]
    subsets = [pref, list(range(q))] if pref and len(pref) < q else [list(range(q))]
    for sub in subsets:

        def mono_rows(
            vals: list[int], ker: list[list[int]], sub: list[int] = sub
        ) -> list[list[int]]:
            v = sub_vals(vals)
            return [[kv[var_cols[i]] * pow(v[i], -1, p) % p for i in sub] for kv in ker]

        sols = _generic_solutions(samples, mono_rows, len(sub), p, max_points)
        if sols:
            sols = _short_basis(sols)
        for a_sub in sols:
            a = [0] * q
            for i, x in zip(sub, a_sub, strict=True):
                a[i] = x
            c = CandidateCombination("monomial", ((tuple(_orient(a)), 1),))
            if verified(c):
                independent_add(c)
            if len(chosen) >= target:
                return padded(chosen), True, pcols

    # 2./3. Polynomials: linear forms, then quadratics (without constant term), over the
    # searched unknowns and the identifiable ones; mixed products before squares.
    lin = [tuple(int(i == j) for i in range(nq)) for j in range(nq)]
    shapes: list[list[tuple[int, ...]]] = [lin]
    if nq <= max_quadratic_vars:
        quad = []
        for i, j in combinations_with_replacement(range(nq), 2):
            e = [0] * nq
            e[i] += 1
            e[j] += 1
            quad.append(tuple(e))
        quad.sort(key=lambda e: (-sum(1 for x in e if x), e[::-1]))
        shapes.append(lin + quad)
    for support in shapes:
        # terms must involve a searched unknown
        support = [e for e in support if any(e[:q])]

        def poly_rows(
            vals: list[int], ker: list[list[int]], support: list[tuple[int, ...]] = support
        ) -> list[list[int]]:
            v = [vals[c] for c in pcols]
            grads = [CandidateCombination("polynomial", ((e, 1),)).gradient(v, p) for e in support]
            out = []
            for kv in ker:
                kk = [kv[c] for c in pcols]
                out.append([sum(a * b for a, b in zip(kk, g, strict=True)) % p for g in grads])
            return out

        for coeffs in _generic_solutions(samples, poly_rows, len(support), p, max_points):
            terms = tuple((e, c) for e, c in zip(support, coeffs, strict=True) if c)
            if not terms:
                continue
            if sum(c < 0 for _, c in terms) * 2 > len(terms) or (
                sum(c < 0 for _, c in terms) * 2 == len(terms) and terms[0][1] < 0
            ):
                terms = tuple((e, -c) for e, c in terms)
            cand = CandidateCombination("polynomial", terms)
            gv = cand.gradient([check_vals[c] for c in pcols], p)
            if not any(gv[:q]) or not _in_row_space(_embed(gv, pcols, ncols), check_ker, p):
                continue
            grads = [*chosen_grads, gv[:q]]
            M = flint.nmod_mat(len(grads), q, [v for g in grads for v in g], p)
            if M.rank() == len(grads):
                chosen.append(cand)
                chosen_grads.append(gv[:q])
            if len(chosen) >= target:
                return padded(chosen), True, pcols
    return padded(chosen), len(chosen) >= target, pcols


def _short_basis(vectors: list[list[int]]) -> list[list[int]]:
    """LLL-reduced integer basis of the lattice spanned by ``vectors``."""
    R = flint.fmpz_mat(vectors).lll()
    out = [[int(R[i, j]) for j in range(R.ncols())] for i in range(R.nrows())]
    out = [v for v in out if any(v)]
    out.sort(key=lambda v: (sum(1 for x in v if x), sum(abs(x) for x in v)))
    return out
