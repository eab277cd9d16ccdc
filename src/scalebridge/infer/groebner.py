"""Gröbner bases modulo a prime (F4), normal forms and zero-dimensional quotients.

A small, self-contained implementation of Faugère's F4 algorithm over F_p (p < 2^31) in the
graded reverse lexicographic order, written for the polynomial systems of SIAN-style global
identifiability (a few dozen variables, low degrees, zero-dimensional).  python-flint 0.9 has
fast multivariate arithmetic but only a naive Buchberger over Z, and sympy's bases are far too
slow, hence this module.

Representation
--------------
A monomial ``x^e`` in ``n`` variables is one Python integer ``M = deg(e) * 2^(8n) - packed(e)``
with ``packed(e) = sum_i e_i 2^(8 i)`` (exponents below 128).  Then

* ``M(a b) = M(a) + M(b)`` (products are additions, quotients subtractions);
* ``M(a) > M(b)`` exactly when ``a > b`` in grevlex with ``x_0 > x_1 > ... > x_{n-1}``;
* divisibility and lcm are a few bit operations on ``packed`` with guard bits.

A polynomial is ``(monomials, coefficients)`` with monomials in decreasing order and leading
coefficient 1.  The F4 matrices are reduced by their pivot rows with NumPy (int64, entries below
p < 2^31 so products fit), and the remaining block is put in reduced row echelon form by FLINT's
``nmod_mat``.  Pairs are selected by the normal strategy and pruned with the Gebauer–Möller
criteria.  Every loop checks a deadline and raises :class:`GroebnerTimeout` when it passes.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable, Sequence

import flint
import numpy as np

__all__ = ["GroebnerBasis", "GroebnerTimeout", "PolyRing", "groebner"]

Poly = tuple[list[int], list[int]]

# Dense reduction blocks are processed in row chunks of at most this many entries.
_BLOCK_ENTRIES = 4_000_000
# A conservative rate (multiply-adds per second) of FLINT's dense modular elimination, used to
# refuse an elimination that could not finish before the deadline.
_RREF_RATE = 1e9


class GroebnerTimeout(Exception):
    """The deadline passed (or a size limit was hit) before the computation finished."""


class PolyRing:
    """Monomial arithmetic for ``n`` variables modulo the prime ``p`` (see the module docs)."""

    def __init__(self, nvars: int, p: int):
        if not 2 < p < 2**31:
            raise ValueError("the modulus must be a prime below 2^31")
        self.n = nvars
        self.p = p
        self.shift = 8 * nvars
        self.one_deg = 1 << self.shift
        self.guard = sum(128 << (8 * i) for i in range(nvars))
        self.var = [self.mono([1 if j == i else 0 for j in range(nvars)]) for i in range(nvars)]
        # Packed exponents as rows of uint64 words, for vectorized divisibility tests.
        self.words = max(1, (nvars + 7) // 8)
        self.nbytes = 8 * self.words
        self.guard_words = self.to_words([self.guard])[0]

    def to_words(self, packed: Sequence[int]) -> np.ndarray:
        """Rows of uint64 words holding packed exponent vectors."""
        nb = self.nbytes
        buf = b"".join(pk.to_bytes(nb, "little") for pk in packed)
        return np.frombuffer(buf, dtype=np.uint64).reshape(len(packed), self.words)

    def divisible_by(self, lt_words: np.ndarray, m_words: np.ndarray) -> np.ndarray:
        """Boolean matrix [i, j]: does monomial ``lt_words[j]`` divide ``m_words[i]``?"""
        g = self.guard_words
        t = ((m_words[:, None, :] | g) - lt_words[None, :, :]) & g
        return np.all(t == g, axis=2)

    def divides_many(self, a_words: np.ndarray, b_words: np.ndarray) -> np.ndarray:
        """Elementwise: does row ``a_words[k]`` (or the single row) divide ``b_words[k]``?"""
        g = self.guard_words
        return np.all((((b_words | g) - a_words) & g) == g, axis=-1)

    # -- monomials ------------------------------------------------------------------------
    def mono(self, exps: Sequence[int]) -> int:
        deg = 0
        packed = 0
        for i, e in enumerate(exps):
            if e < 0 or e > 127:
                raise GroebnerTimeout("exponent out of range")
            packed |= e << (8 * i)
            deg += e
        return (deg << self.shift) - packed

    def degree(self, m: int) -> int:
        return (m + self.one_deg - 1) >> self.shift

    def packed(self, m: int) -> int:
        return (self.degree(m) << self.shift) - m

    def from_packed(self, pk: int) -> int:
        deg = sum(pk.to_bytes(self.nbytes, "little"))
        return (deg << self.shift) - pk

    def exps(self, m: int) -> tuple[int, ...]:
        pk = self.packed(m)
        return tuple(pk.to_bytes(self.n or 1, "little")[: self.n])

    def divides(self, pa: int, pb: int) -> bool:
        """Does the monomial with packed exponents ``pa`` divide the one with ``pb``?"""
        g = self.guard
        return ((pb | g) - pa) & g == g

    def lcm(self, pa: int, pb: int) -> int:
        """Packed lcm of packed monomials."""
        g = self.guard
        m = ((((pa | g) - pb) & g) >> 7) * 255
        return (pa & m) | (pb & ~m)

    # -- polynomials ----------------------------------------------------------------------
    def poly(self, terms: Iterable[tuple[Sequence[int], int]]) -> Poly | None:
        """A monic polynomial from (exponents, coefficient) terms; None when it is zero."""
        acc: dict[int, int] = {}
        p = self.p
        for e, c in terms:
            m = self.mono(e)
            acc[m] = (acc.get(m, 0) + c) % p
        return self.from_dict(acc)

    def from_dict(self, acc: dict[int, int]) -> Poly | None:
        items = sorted(((m, c) for m, c in acc.items() if c), reverse=True)
        if not items:
            return None
        inv = pow(items[0][1], -1, self.p)
        p = self.p
        return [m for m, _ in items], [c * inv % p for _, c in items]


class GroebnerBasis:
    """A Gröbner basis (grevlex) with normal forms and, when zero-dimensional, the quotient."""

    def __init__(self, ring: PolyRing, polys: list[Poly]):
        self.ring = ring
        # Minimal basis: drop elements whose leading monomial another one divides.
        polys = sorted(polys, key=lambda f: (f[0][0], len(f[0])))
        keep: list[Poly] = []
        for f in polys:
            pf = ring.packed(f[0][0])
            if not any(ring.divides(ring.packed(g[0][0]), pf) for g in keep):
                keep = [g for g in keep if not ring.divides(pf, ring.packed(g[0][0]))]
                keep.append(f)
        self.polys = sorted(keep, key=lambda f: len(f[0]))
        self.lt = [f[0][0] for f in self.polys]
        self.lt_packed = [ring.packed(m) for m in self.lt]

    @property
    def is_one(self) -> bool:
        """True when the ideal is the whole ring (no solutions)."""
        return any(m == 0 for m in self.lt)

    def reducer(self, m: int) -> int:
        pm = self.ring.packed(m)
        div = self.ring.divides
        for i, pl in enumerate(self.lt_packed):
            if div(pl, pm):
                return i
        return -1

    def normal_form(self, f: dict[int, int]) -> dict[int, int]:
        """The normal form of ``f`` (monomial -> coefficient), as a dict."""
        p = self.ring.p
        f = {m: c % p for m, c in f.items() if c % p}
        heap = [-m for m in f]
        heapq.heapify(heap)
        out: dict[int, int] = {}
        while heap:
            m = -heapq.heappop(heap)
            c = f.pop(m, 0)
            if not c:
                continue
            i = self.reducer(m)
            if i < 0:
                out[m] = c
                continue
            q = m - self.lt[i]
            monos, coeffs = self.polys[i]
            for mg, cg in zip(monos[1:], coeffs[1:], strict=True):
                t = q + mg
                old = f.get(t)
                if old is None:
                    heapq.heappush(heap, -t)
                    f[t] = (-c * cg) % p
                else:
                    f[t] = (old - c * cg) % p
        return out

    def is_zero_dimensional(self) -> bool:
        ring = self.ring
        pure = set()
        for pk in self.lt_packed:
            for i in range(ring.n):
                if pk >> (8 * i) << (8 * i) == pk and pk < (256 << (8 * i)):
                    pure.add(i)
                    break
        return len(pure) == ring.n

    def standard_monomials(self, limit: int) -> list[int] | None:
        """The monomials outside the leading-term ideal (a basis of the quotient), or None
        when there are more than ``limit`` (or infinitely many)."""
        if self.is_one:
            return []
        if not self.is_zero_dimensional():
            return None
        ring = self.ring
        seen = {0}
        out = [0]
        frontier = [0]
        while frontier:
            nxt = []
            for m in frontier:
                for v in ring.var:
                    t = m + v
                    if t in seen:
                        continue
                    seen.add(t)
                    if self.reducer(t) < 0:
                        out.append(t)
                        nxt.append(t)
                        if len(out) > limit:
                            return None
            frontier = nxt
        return sorted(out, reverse=True)


def _check(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise GroebnerTimeout("time budget exhausted")


def groebner(
    ring: PolyRing,
    polys: Sequence[Poly],
    *,
    deadline: float | None = None,
    max_basis: int = 20_000,
    start: GroebnerBasis | None = None,
) -> GroebnerBasis:
    """A Gröbner basis of the ideal of ``polys`` (F4, grevlex, modulo ``ring.p``).

    ``start``: a Gröbner basis (in ``ring``) of part of the ideal; its S-pairs are known to
    reduce to zero, so only pairs with the new ``polys`` are formed."""
    G: list[Poly] = []
    ltM: list[int] = []
    ltP: list[int] = []
    active: list[int] = []
    # Pairs as parallel arrays: degree, packed lcm (Python int and words), i, j.
    pair_deg = np.zeros(0, dtype=np.int64)
    pair_words = np.zeros((0, ring.words), dtype=np.uint64)
    pair_lcm: list[int] = []
    pair_i = np.zeros(0, dtype=np.int64)
    pair_j = np.zeros(0, dtype=np.int64)
    lcm = ring.lcm

    def pdeg(pk: int) -> int:
        return sum(pk.to_bytes(ring.nbytes, "little"))

    def update(h: int) -> None:
        nonlocal pair_deg, pair_words, pair_lcm, pair_i, pair_j, active
        lh = ltP[h]
        # New pairs (h, g): keep one pair per lcm that is minimal under divisibility
        # (chain criterion), and drop lcms shared with a coprime pair (product criterion).
        groups: dict[int, bool] = {}
        rep: dict[int, int] = {}
        for i in active:
            lc = lcm(lh, ltP[i])
            coprime = lc == lh + ltP[i]
            if lc in groups:
                groups[lc] = groups[lc] or coprime
            else:
                groups[lc] = coprime
                rep[lc] = i
        minimal: list[int] = []
        new: list[tuple[int, int]] = []
        g = ring.guard
        for lc in sorted(groups, key=pdeg):
            lg = lc | g
            if any((lg - m) & g == g for m in minimal):
                continue
            minimal.append(lc)
            if not groups[lc]:
                new.append((lc, rep[lc]))
        # Old pairs (i, j) with lt(h) | lcm(i, j), unless lcm(i, h) or lcm(j, h) equals it.
        if len(pair_lcm):
            hw = ring.to_words([lh])[0]
            hit = np.flatnonzero(ring.divides_many(hw, pair_words))
            drop = [
                k
                for k in hit.tolist()
                if lcm(ltP[pair_i[k]], lh) != pair_lcm[k] and lcm(ltP[pair_j[k]], lh) != pair_lcm[k]
            ]
            if drop:
                keep = np.ones(len(pair_lcm), dtype=bool)
                keep[drop] = False
                pair_deg = pair_deg[keep]
                pair_words = pair_words[keep]
                pair_i = pair_i[keep]
                pair_j = pair_j[keep]
                pair_lcm = [x for x, k in zip(pair_lcm, keep.tolist(), strict=True) if k]
        if new:
            lcs = [lc for lc, _ in new]
            pair_deg = np.concatenate([pair_deg, np.array([pdeg(x) for x in lcs], dtype=np.int64)])
            pair_words = np.concatenate([pair_words, ring.to_words(lcs)])
            pair_i = np.concatenate([pair_i, np.array([i for _, i in new], dtype=np.int64)])
            pair_j = np.concatenate([pair_j, np.full(len(new), h, dtype=np.int64)])
            pair_lcm = pair_lcm + lcs
        active = [i for i in active if ((ltP[i] | g) - lh) & g != g]
        active.append(h)
        active.sort(key=lambda i: len(G[i][0]))

    def add(f: Poly) -> None:
        G.append(f)
        ltM.append(f[0][0])
        ltP.append(ring.packed(f[0][0]))
        if len(G) > max_basis:
            raise GroebnerTimeout("basis too large")
        update(len(G) - 1)

    if start is not None:
        for f in start.polys:
            G.append(f)
            ltM.append(f[0][0])
            ltP.append(ring.packed(f[0][0]))
        active = sorted(range(len(G)), key=lambda i: len(G[i][0]))
    for f in sorted(polys, key=lambda f: f[0][0]):
        add(f)
        if f[0][0] == 0:
            return GroebnerBasis(ring, [f])

    while len(pair_lcm):
        _check(deadline)
        dmin = int(pair_deg.min())
        selm = pair_deg == dmin
        sel_idx = np.flatnonzero(selm).tolist()
        rows: set[tuple[int, int]] = set()
        for k in sel_idx:
            L = ring.from_packed(pair_lcm[k])
            i, j = int(pair_i[k]), int(pair_j[k])
            rows.add((L - ltM[i], i))
            rows.add((L - ltM[j], j))
        keep = ~selm
        pair_deg = pair_deg[keep]
        pair_words = pair_words[keep]
        pair_i = pair_i[keep]
        pair_j = pair_j[keep]
        pair_lcm = [x for x, k in zip(pair_lcm, keep.tolist(), strict=True) if k]
        new = _reduce(ring, G, ltM, ltP, active, sorted(rows, reverse=True), deadline)
        for f in new:
            add(f)
            if f[0][0] == 0:
                return GroebnerBasis(ring, [f])
    return GroebnerBasis(ring, [G[i] for i in active])


def _reduce(
    ring: PolyRing,
    G: list[Poly],
    ltM: list[int],
    ltP: list[int],
    active: list[int],
    rows: list[tuple[int, int]],
    deadline: float | None,
) -> list[Poly]:
    """One F4 step: symbolic preprocessing, reduction, new basis elements."""
    p = ring.p
    row_monos: list[list[int]] = []
    row_coefs: list[list[int]] = []
    pivot_of: dict[int, int] = {}
    to_reduce: list[int] = []
    seen: set[int] = set()
    for mult, gi in rows:
        monos = [mult + m for m in G[gi][0]]
        idx = len(row_monos)
        row_monos.append(monos)
        row_coefs.append(G[gi][1])
        if monos[0] in pivot_of:
            to_reduce.append(idx)
        else:
            pivot_of[monos[0]] = idx
        seen.update(monos)
    if not to_reduce:
        return []
    # Symbolic preprocessing: a reducer row for every monomial divisible by a leading term,
    # found in vectorized batches (the first divisor in `active`, sorted by length).
    act = list(active)
    act_words = ring.to_words([ltP[i] for i in act])
    pending = [m for m in seen if m not in pivot_of]
    while pending:
        _check(deadline)
        nxt: list[int] = []
        step = max(1, 200_000 // max(1, len(act) * ring.words))
        for start in range(0, len(pending), step):
            batch = pending[start : start + step]
            mw = ring.to_words([ring.packed(m) for m in batch])
            D = ring.divisible_by(act_words, mw)
            anyd = D.any(axis=1)
            first = D.argmax(axis=1)
            for k in np.flatnonzero(anyd).tolist():
                m = batch[k]
                gi = act[int(first[k])]
                q = m - ltM[gi]
                monos = [q + x for x in G[gi][0]]
                pivot_of[m] = len(row_monos)
                row_monos.append(monos)
                row_coefs.append(G[gi][1])
                for x in monos[1:]:
                    if x not in seen:
                        seen.add(x)
                        nxt.append(x)
        pending = nxt
    cols = sorted(seen, reverse=True)
    col = {m: i for i, m in enumerate(cols)}
    ncols = len(cols)
    pivots = sorted((col[m], r) for m, r in pivot_of.items())
    pivot_cols = np.array([c for c, _ in pivots], dtype=np.int64)
    is_pivot = np.zeros(ncols, dtype=bool)
    is_pivot[pivot_cols] = True
    piv_arrays: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def pivot_row(r: int) -> tuple[np.ndarray, np.ndarray]:
        hit = piv_arrays.get(r)
        if hit is None:
            hit = (
                np.fromiter((col[m] for m in row_monos[r]), dtype=np.int64),
                np.array(row_coefs[r], dtype=np.int64),
            )
            piv_arrays[r] = hit
        return hit

    chunk = max(1, _BLOCK_ENTRIES // max(ncols, 1))
    rest: list[np.ndarray] = []
    for start in range(0, len(to_reduce), chunk):
        ids = to_reduce[start : start + chunk]
        S = np.zeros((len(ids), ncols), dtype=np.int64)
        for r, idx in enumerate(ids):
            S[r, [col[m] for m in row_monos[idx]]] = row_coefs[idx]
        steps = 0
        for c, r in pivots:
            coef = S[:, c]
            nz = np.flatnonzero(coef)
            if nz.size == 0:
                continue
            steps += 1
            if steps % 64 == 0:
                _check(deadline)
            pc, pv = pivot_row(r)
            if nz.size == 1:
                i0 = nz[0]
                S[i0, pc] = (S[i0, pc] - (int(coef[i0]) * pv) % p) % p
            elif 2 * nz.size >= coef.size:
                # most rows are hit: update whole columns (cheaper than a 2-d gather)
                t = S[:, pc]
                t -= np.multiply.outer(coef, pv) % p
                t %= p
                S[:, pc] = t
            else:
                block = S[np.ix_(nz, pc)]
                block -= np.multiply.outer(coef[nz], pv) % p
                block %= p
                S[np.ix_(nz, pc)] = block
        S = S[:, ~is_pivot]
        S = S[np.any(S != 0, axis=1)]
        if S.shape[0]:
            rest.append(S)
    if not rest:
        return []
    _check(deadline)
    B = np.concatenate(rest, axis=0)
    free_cols = np.flatnonzero(~is_pivot)
    used = np.flatnonzero(np.any(B != 0, axis=0))
    B = B[:, used]
    nr, nc = B.shape
    if deadline is not None and time.monotonic() + nr * nr * nc / _RREF_RATE > deadline:
        raise GroebnerTimeout("time budget exhausted")
    mat = flint.nmod_mat(nr, nc, B.ravel().tolist(), p)
    R, rank = mat.rref()
    out: list[Poly] = []
    if rank == 0:
        return out
    dense = np.fromiter(map(int, R.entries()), dtype=np.int64, count=nr * nc).reshape(nr, nc)
    mono_of = [cols[int(free_cols[u])] for u in used]
    for i in range(rank):
        nzc = np.flatnonzero(dense[i])
        monos = [mono_of[j] for j in nzc.tolist()]
        coefs = dense[i, nzc].tolist()
        out.append((monos, coefs))
    return out
