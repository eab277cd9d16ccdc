"""Sparse LU factorization: left-looking Gilbert-Peierls with threshold partial pivoting.

For an n x n matrix ``A`` in compressed-column form (``Ap``, ``Ai``, ``Ax``) and a fill-reducing
column order ``q`` chosen beforehand, :func:`factor` computes

    P A Q = L U,

``L`` unit lower triangular, ``U`` upper triangular, ``Q`` the column order (step ``k``
eliminates column ``q[k]``) and ``P`` the row order found while factoring (``pinv[i]`` is the
step at which row ``i`` became pivotal).  Column ``k`` of the factors is the solution of the
sparse triangular system ``L x = A[:, q[k]]`` (Gilbert & Peierls, SIAM J. Sci. Stat. Comput.
9, 1988): a depth-first search through the graph of the columns of ``L`` computed so far finds the
nonzero pattern of ``x`` in topological order, so the work is proportional to the arithmetic done,
not to n.  Among the rows of ``x`` that are not pivotal yet, the row with the largest magnitude is
the candidate pivot; the diagonal ``A[q[k], q[k]]`` is preferred whenever its magnitude is at least
``tol`` times that (threshold partial pivoting), which keeps the fill of iteration matrices
``I - c J`` close to that of a symmetric elimination.

:func:`refactor` redoes the numerical work for new values on the same pattern, reusing the row
order and the patterns of ``L`` and ``U`` (no search, no pivot choice).  It refuses -- and the
caller falls back to :func:`factor` -- when a reused pivot is zero, not finite, or smaller than
``tol`` times the largest candidate below it.

Storage (``LUFactors``): ``L`` column ``k`` has its unit diagonal first; ``U`` column ``k`` has its
diagonal last, the other entries in the order they must be eliminated.  After :func:`factor` the
row indices of both are pivot steps.  Capacities of ``Li``/``Lx`` and ``Ui``/``Ux`` are fixed
when the factors are allocated; :func:`factor` reports ``CAPACITY`` when they are too small, and
the Python layer enlarges them and retries.

A pivot is declared zero when its magnitude is at most ``n * eps`` times the largest magnitude in
its column of ``A`` (or is zero or not finite): the matrix is reported singular, not factored.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from numba import njit
from scipy.sparse.linalg import splu

EPS = float(np.finfo(np.float64).eps)

# Compiled once per installation.  These functions never allocate arrays, so they run without
# the runtime's reference counting (``_nrt=False``, as numba does for its own non-allocating
# helpers): the atomic count updates on every array handed between compiled functions
# otherwise take most of the time of a step for small models (measured: 3x).
_jit = njit(cache=True, error_model="numpy", nogil=True, _nrt=False)

# factor() return codes (positive values k + 1 mean: singular at step k)
OK = 0
CAPACITY = -1

# LUFactors.info slots
INFO_VALID = 0  # 1 when L, U, pinv hold a factorization whose pattern refactor() can reuse
INFO_N_FACTOR = 1  # full factorizations so far
INFO_N_REFACTOR = 2  # successful refactorizations so far
INFO_LNZ = 3
INFO_UNZ = 4
INFO_SIZE = 5

DEFAULT_TOL = 0.1
DEFAULT_REFACTOR_TOL = 1e-3


class LUFactors(NamedTuple):
    """Sparse LU factors and the scratch space to compute them (see the module docstring)."""

    q: np.ndarray  # int64[n]    column order
    pinv: np.ndarray  # int64[n]    row -> pivot step
    Lp: np.ndarray  # int64[n+1]
    Li: np.ndarray  # int64[lcap]
    Lx: np.ndarray  # float64[lcap]
    Up: np.ndarray  # int64[n+1]
    Ui: np.ndarray  # int64[ucap]
    Ux: np.ndarray  # float64[ucap]
    xi: np.ndarray  # int64[n]    reach / DFS stack
    pstack: np.ndarray  # int64[n]    DFS positions
    mark: np.ndarray  # int64[n]    DFS marks (stamped with the step)
    x: np.ndarray  # float64[n]  dense accumulator, zero between columns
    w: np.ndarray  # float64[n]  solve scratch
    info: np.ndarray  # int64[INFO_SIZE]


def allocate(n: int, q: np.ndarray, lcap: int, ucap: int) -> LUFactors:
    """Empty factors for an n x n matrix with column order ``q`` and the given capacities."""
    q = np.ascontiguousarray(q, dtype=np.int64)
    if q.shape != (n,) or not np.array_equal(np.sort(q), np.arange(n)):
        raise ValueError("column order must be a permutation of range(n)")
    lcap = max(int(lcap), n, 1)
    ucap = max(int(ucap), n, 1)
    return LUFactors(
        q=q,
        pinv=np.full(n, -1, dtype=np.int64),
        Lp=np.zeros(n + 1, dtype=np.int64),
        Li=np.zeros(lcap, dtype=np.int64),
        Lx=np.zeros(lcap, dtype=np.float64),
        Up=np.zeros(n + 1, dtype=np.int64),
        Ui=np.zeros(ucap, dtype=np.int64),
        Ux=np.zeros(ucap, dtype=np.float64),
        xi=np.zeros(n, dtype=np.int64),
        pstack=np.zeros(n, dtype=np.int64),
        mark=np.full(n, -1, dtype=np.int64),
        x=np.zeros(n, dtype=np.float64),
        w=np.zeros(n, dtype=np.float64),
        info=np.zeros(INFO_SIZE, dtype=np.int64),
    )


def enlarge(F: LUFactors, factor: float = 2.0) -> LUFactors:
    """The same (empty) factors with capacities multiplied by ``factor``."""
    n = F.q.shape[0]
    G = allocate(n, F.q, int(F.Li.shape[0] * factor) + n, int(F.Ui.shape[0] * factor) + n)
    G.info[INFO_N_FACTOR] = F.info[INFO_N_FACTOR]
    G.info[INFO_N_REFACTOR] = F.info[INFO_N_REFACTOR]
    return G


@_jit
def _reach(Ap: np.ndarray, Ai: np.ndarray, col: int, F: LUFactors, stamp: int) -> int:
    """Pattern of ``L \\ A[:, col]`` in topological order into ``F.xi[top:]``; returns ``top``.

    Nodes are (original) row indices; the children of a pivotal row ``j`` are the rows of column
    ``pinv[j]`` of ``L`` below its diagonal.  The depth-first search is iterative: its stack
    grows upwards from ``xi[0]`` while finished nodes fill ``xi`` downwards from the end; the two
    never meet because every node is in at most one of them.
    """
    xi, pstack, mark, pinv, Lp, Li = F.xi, F.pstack, F.mark, F.pinv, F.Lp, F.Li
    n = xi.shape[0]
    top = n
    for pa in range(Ap[col], Ap[col + 1]):
        start = Ai[pa]
        if mark[start] == stamp:
            continue
        depth = 0
        xi[0] = start
        while depth >= 0:
            j = xi[depth]
            jj = pinv[j]
            if mark[j] != stamp:
                mark[j] = stamp
                pstack[depth] = Lp[jj] + 1 if jj >= 0 else 0
            end = Lp[jj + 1] if jj >= 0 else 0
            p = pstack[depth]
            descended = False
            while p < end:
                i = Li[p]
                p += 1
                if mark[i] != stamp:
                    pstack[depth] = p
                    depth += 1
                    xi[depth] = i
                    descended = True
                    break
            if not descended:
                depth -= 1
                top -= 1
                xi[top] = j
    return top


@_jit
def factor(Ap: np.ndarray, Ai: np.ndarray, Ax: np.ndarray, F: LUFactors, tol: float) -> int:
    """Full factorization ``P A Q = L U`` (threshold ``tol`` in (0, 1] for the diagonal).

    Returns :data:`OK`, :data:`CAPACITY` (``Li``/``Ui`` too small), or ``k + 1`` when the matrix
    is singular at step ``k``.
    """
    n = F.q.shape[0]
    q, pinv, Lp, Li, Lx, Up, Ui, Ux = F.q, F.pinv, F.Lp, F.Li, F.Lx, F.Up, F.Ui, F.Ux
    xi, mark, x = F.xi, F.mark, F.x
    lcap = Li.shape[0]
    ucap = Ui.shape[0]
    F.info[INFO_VALID] = 0
    for i in range(n):
        pinv[i] = -1
        mark[i] = -1
    tiny_rel = n * EPS
    lnz = 0
    unz = 0
    for k in range(n):
        Lp[k] = lnz
        Up[k] = unz
        col = q[k]
        top = _reach(Ap, Ai, col, F, k)
        if lnz + (n - top) + 1 > lcap or unz + (n - top) + 1 > ucap:
            for px in range(top, n):
                x[xi[px]] = 0.0
            return CAPACITY
        # x = L \ A[:, col] on the reach only
        for px in range(top, n):
            x[xi[px]] = 0.0
        colmax = 0.0
        for pa in range(Ap[col], Ap[col + 1]):
            x[Ai[pa]] += Ax[pa]
            a = abs(Ax[pa])
            if a > colmax:
                colmax = a
        for px in range(top, n):
            j = xi[px]
            jj = pinv[j]
            if jj < 0:
                continue
            xj = x[j]
            if xj != 0.0:
                for p in range(Lp[jj] + 1, Lp[jj + 1]):
                    x[Li[p]] -= Lx[p] * xj
        # U part and pivot candidates
        ipiv = -1
        amax = 0.0
        for px in range(top, n):
            i = xi[px]
            if pinv[i] < 0:
                a = abs(x[i])
                if a > amax:
                    amax = a
                    ipiv = i
            else:
                Ui[unz] = pinv[i]
                Ux[unz] = x[i]
                unz += 1
        if ipiv < 0 or not (amax > tiny_rel * colmax) or amax == np.inf:
            for px in range(top, n):
                x[xi[px]] = 0.0
            return k + 1
        if pinv[col] < 0 and mark[col] == k and abs(x[col]) >= tol * amax:
            ipiv = col
        piv = x[ipiv]
        Ui[unz] = k
        Ux[unz] = piv
        unz += 1
        pinv[ipiv] = k
        Li[lnz] = ipiv
        Lx[lnz] = 1.0
        lnz += 1
        for px in range(top, n):
            i = xi[px]
            if pinv[i] < 0:
                Li[lnz] = i
                Lx[lnz] = x[i] / piv
                lnz += 1
            x[i] = 0.0
    Lp[n] = lnz
    Up[n] = unz
    for p in range(lnz):
        Li[p] = pinv[Li[p]]
    F.info[INFO_VALID] = 1
    F.info[INFO_N_FACTOR] += 1
    F.info[INFO_LNZ] = lnz
    F.info[INFO_UNZ] = unz
    return OK


@_jit
def refactor(Ap: np.ndarray, Ai: np.ndarray, Ax: np.ndarray, F: LUFactors, tol: float) -> bool:
    """Numerical refactorization on the pattern and row order of the last :func:`factor`.

    Returns False (factors invalid; call :func:`factor`) when there is no previous
    factorization or a reused pivot is zero, not finite, or below ``tol`` times the largest
    magnitude beneath it in its column.
    """
    if F.info[INFO_VALID] == 0:
        return False
    n = F.q.shape[0]
    q, pinv, Lp, Li, Lx, Up, Ui, Ux, x = F.q, F.pinv, F.Lp, F.Li, F.Lx, F.Up, F.Ui, F.Ux, F.x
    tiny_rel = n * EPS
    for k in range(n):
        col = q[k]
        colmax = 0.0
        for pa in range(Ap[col], Ap[col + 1]):
            x[pinv[Ai[pa]]] += Ax[pa]
            a = abs(Ax[pa])
            if a > colmax:
                colmax = a
        pend = Up[k + 1] - 1  # the diagonal is last
        for p in range(Up[k], pend):
            jj = Ui[p]
            xj = x[jj]
            Ux[p] = xj
            x[jj] = 0.0
            if xj != 0.0:
                for pl in range(Lp[jj] + 1, Lp[jj + 1]):
                    x[Li[pl]] -= Lx[pl] * xj
        piv = x[k]
        x[k] = 0.0
        amax = 0.0
        for pl in range(Lp[k] + 1, Lp[k + 1]):
            a = abs(x[Li[pl]])
            if a > amax:
                amax = a
        apiv = abs(piv)
        if not (apiv >= tol * amax) or not (apiv > tiny_rel * colmax) or apiv == np.inf:
            for pl in range(Lp[k] + 1, Lp[k + 1]):
                x[Li[pl]] = 0.0
            F.info[INFO_VALID] = 0
            return False
        Ux[pend] = piv
        for pl in range(Lp[k] + 1, Lp[k + 1]):
            r = Li[pl]
            Lx[pl] = x[r] / piv
            x[r] = 0.0
    F.info[INFO_N_REFACTOR] += 1
    return True


@_jit
def factorize(
    Ap: np.ndarray, Ai: np.ndarray, Ax: np.ndarray, F: LUFactors, tol: float, refactor_tol: float
) -> int:
    """Refactor when possible, else factor in full; return codes as :func:`factor`."""
    if refactor(Ap, Ai, Ax, F, refactor_tol):
        return OK
    return factor(Ap, Ai, Ax, F, tol)


@_jit
def solve(F: LUFactors, b: np.ndarray, out: np.ndarray) -> None:
    """``out = A^{-1} b`` with the factors in ``F`` (``out`` may be ``b``)."""
    n = F.q.shape[0]
    w, pinv, q = F.w, F.pinv, F.q
    Lp, Li, Lx, Up, Ui, Ux = F.Lp, F.Li, F.Lx, F.Up, F.Ui, F.Ux
    for i in range(n):
        w[pinv[i]] = b[i]
    for j in range(n):
        wj = w[j]
        if wj != 0.0:
            for p in range(Lp[j] + 1, Lp[j + 1]):
                w[Li[p]] -= Lx[p] * wj
    for j in range(n - 1, -1, -1):
        pd = Up[j + 1] - 1
        wj = w[j] / Ux[pd]
        w[j] = wj
        if wj != 0.0:
            for p in range(Up[j], pd):
                w[Ui[p]] -= Ux[p] * wj
    for k in range(n):
        out[q[k]] = w[k]


# --- setup (Python) ------------------------------------------------------------------------


def column_order(
    indptr: np.ndarray, indices: np.ndarray, n: int, method: str = "COLAMD"
) -> np.ndarray:
    """A fill-reducing column order for the CSC pattern ``(indptr, indices)``.

    ``method`` is a SuperLU ``permc_spec`` ("COLAMD", "MMD_AT_PLUS_A", "MMD_ATA", "NATURAL").
    SuperLU computes orderings only as part of a factorization, so it is given a strictly
    diagonally dominant matrix (nonsingular) on the pattern plus the diagonal.
    """
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    pattern = sp.csc_matrix(
        (np.ones(indices.shape[0]), np.asarray(indices), np.asarray(indptr)), shape=(n, n)
    )
    rng = np.random.default_rng(12345)
    off = pattern.copy()
    off.data = rng.uniform(0.5, 1.0, off.data.shape[0])
    off.setdiag(0.0)
    off.eliminate_zeros()
    rowsum = np.asarray(abs(off).sum(axis=1)).ravel()
    sample = (off + sp.diags(rowsum + 1.0)).tocsc()
    lu = splu(sample, permc_spec=method)
    # SuperLU's perm_c maps an original column to its position; we want position -> column.
    return np.argsort(np.asarray(lu.perm_c, dtype=np.int64)).astype(np.int64)


class SparseLU:
    """Convenience wrapper around the compiled kernels for one sparsity pattern.

    ``SparseLU(indptr, indices, n)`` prepares a column order (COLAMD unless ``order`` is given
    as a method name or a permutation); :meth:`factor` and :meth:`refactor` take the values in
    the pattern's order; :meth:`solve` solves.  Singular matrices raise ``ValueError``.
    """

    def __init__(
        self,
        indptr: np.ndarray,
        indices: np.ndarray,
        n: int,
        *,
        order: str | np.ndarray = "COLAMD",
        tol: float = DEFAULT_TOL,
        refactor_tol: float = DEFAULT_REFACTOR_TOL,
    ) -> None:
        self.n = int(n)
        self.indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        self.indices = np.ascontiguousarray(indices, dtype=np.int64)
        if self.indptr.shape != (self.n + 1,) or self.indptr[-1] != self.indices.shape[0]:
            raise ValueError("inconsistent CSC pattern")
        if isinstance(order, str):
            q = column_order(self.indptr, self.indices, self.n, order)
        else:
            q = np.asarray(order, dtype=np.int64)
        nnz = self.indices.shape[0]
        self.factors = allocate(self.n, q, 2 * nnz + 4 * self.n, 2 * nnz + 4 * self.n)
        self.tol = float(tol)
        self.refactor_tol = float(refactor_tol)

    @classmethod
    def from_matrix(cls, A: sp.spmatrix | sp.sparray | np.ndarray, **kw: object) -> SparseLU:
        """Pattern from a matrix (its stored entries, explicit zeros included)."""
        M = sp.csc_matrix(A)
        M.sort_indices()
        return cls(M.indptr, M.indices, M.shape[0], **kw)  # type: ignore[arg-type]

    def factor(self, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=np.float64)
        while True:
            code = factor(self.indptr, self.indices, values, self.factors, self.tol)
            if code != CAPACITY:
                break
            self.factors = enlarge(self.factors)
        if code != OK:
            raise ValueError(f"matrix is singular (zero pivot at step {code - 1})")

    def refactor(self, values: np.ndarray) -> bool:
        """Refactor for new values; returns False if it had to factor in full instead."""
        values = np.ascontiguousarray(values, dtype=np.float64)
        if refactor(self.indptr, self.indices, values, self.factors, self.refactor_tol):
            return True
        self.factor(values)
        return False

    def solve(self, b: np.ndarray) -> np.ndarray:
        x = np.array(b, dtype=np.float64, copy=True)
        solve(self.factors, x, x)
        return x

    @property
    def nnz(self) -> int:
        """Stored entries of L and U together (L's unit diagonal included)."""
        return int(self.factors.info[INFO_LNZ] + self.factors.info[INFO_UNZ])
