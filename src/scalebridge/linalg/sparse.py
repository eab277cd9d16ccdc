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
``tol`` times the largest candidate below it.  Fill concentrates at the end of the elimination:
when a trailing ``m x m`` block of the factors (steps ``k0 = n - m`` on) is cheaper to treat
as dense (predicted cost, chosen after each full factorization), :func:`refactor` eliminates
only with the columns before ``k0`` sparsely, which leaves the Schur complement
``A22 - L21 U12`` of that block, and factors it with a dense kernel in the same pivot order
(contiguous loops run several times more multiply-adds per second).  For the egfr network
(n = 356) the last 150 steps form a full block holding 97 % of the arithmetic.

Storage (``LUFactors``): ``L`` column ``k`` has its unit diagonal first; ``U`` column ``k`` has its
diagonal last, the other entries in the order they must be eliminated.  After :func:`factor` the
row indices of both are pivot steps.  Capacities of ``Li``/``Lx`` and ``Ui``/``Ux`` are fixed
when the factors are allocated; :func:`factor` reports ``CAPACITY`` when they are too small, and
the Python layer enlarges them and retries.

A pivot is declared zero when its magnitude is at most ``n * eps`` times the largest magnitude in
its column of ``A`` (or is zero or not finite): the matrix is reported singular, not factored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..codegen.jit import kernel

if TYPE_CHECKING:
    import scipy.sparse as sp

EPS = float(np.finfo(np.float64).eps)

# Compiled once per installation.  These functions never allocate arrays, so they run without
# the runtime's reference counting (``_nrt=False``, as numba does for its own non-allocating
# helpers): the atomic count updates on every array handed between compiled functions
# otherwise take most of the time of a step for small models (measured: 3x).

# factor() return codes (positive values k + 1 mean: singular at step k)
OK = 0
CAPACITY = -1

# LUFactors.info slots
INFO_VALID = 0  # 1 when L, U, pinv hold a factorization whose pattern refactor() can reuse
INFO_N_FACTOR = 1  # full factorizations so far
INFO_N_REFACTOR = 2  # successful refactorizations so far
INFO_LNZ = 3
INFO_UNZ = 4
INFO_K0 = 5  # first step of the dense trailing block used by refactor() (n: none)
INFO_SIZE = 6

DENSE_TAIL_MIN = 16  # smallest trailing block worth a dense kernel
DENSE_SPEEDUP = 3.0  # dense multiply-adds per indexed sparse multiply-add in equal time

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
    w: np.ndarray  # float64[n]  solve / refactor scratch
    S: np.ndarray  # float64[m_cap, m_cap]  dense trailing block (m_cap may be 0)
    info: np.ndarray  # int64[INFO_SIZE]


def allocate(n: int, q: np.ndarray, lcap: int, ucap: int, dense_cap: int = 0) -> LUFactors:
    """Empty factors for an n x n matrix with column order ``q`` and the given capacities
    (``dense_cap``: the largest dense trailing block refactorizations may use)."""
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
        S=np.zeros((min(dense_cap, n), min(dense_cap, n)), dtype=np.float64),
        info=np.zeros(INFO_SIZE, dtype=np.int64),
    )


def enlarge(F: LUFactors, factor: float = 2.0) -> LUFactors:
    """The same (empty) factors with capacities multiplied by ``factor``."""
    n = F.q.shape[0]
    G = allocate(
        n, F.q, int(F.Li.shape[0] * factor) + n, int(F.Ui.shape[0] * factor) + n, F.S.shape[0]
    )
    G.info[INFO_N_FACTOR] = F.info[INFO_N_FACTOR]
    G.info[INFO_N_REFACTOR] = F.info[INFO_N_REFACTOR]
    return G


@kernel(_nrt=False)
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


@kernel(_nrt=False)
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
    F.info[INFO_K0] = _dense_tail(F)
    return OK


@kernel(_nrt=False)
def _dense_tail(F: LUFactors) -> int:
    """First step ``k0`` of the dense trailing block that minimises the predicted cost of a
    refactorization, ``DENSE_SPEEDUP * sparse(k0) + (n - k0)^3 / 3`` (``n``: no block).

    An off-diagonal entry of ``U`` in row ``J < k0`` costs one sparse elimination with column
    ``J`` of ``L``; everything from step ``k0`` on is done by the dense kernel.  Blocks are at
    most ``F.S`` and at least :data:`DENSE_TAIL_MIN` in size.
    """
    n = F.q.shape[0]
    m_cap = F.S.shape[0]
    Lp, Up, Ui, urow = F.Lp, F.Up, F.Ui, F.xi
    if m_cap < DENSE_TAIL_MIN:
        return n
    for i in range(n):
        urow[i] = 0
    for k in range(n):
        for p in range(Up[k], Up[k + 1] - 1):
            urow[Ui[p]] += 1
    sparse_work = 0.0  # of the eliminations with columns before k0
    best_k0 = n
    best = np.inf
    for k0 in range(n + 1):
        m = n - k0
        if m == 0 or (DENSE_TAIL_MIN <= m <= m_cap):
            cost = DENSE_SPEEDUP * sparse_work + m * m * m / 3.0
            if cost < best:
                best = cost
                best_k0 = k0
        if k0 < n:
            sparse_work += urow[k0] * (Lp[k0 + 1] - Lp[k0] - 1)
    return best_k0


@kernel(_nrt=False)
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
    colmax = F.w
    k0 = F.info[INFO_K0]
    tiny_rel = n * EPS
    for k in range(n):
        col = q[k]
        cm = 0.0
        for pa in range(Ap[col], Ap[col + 1]):
            x[pinv[Ai[pa]]] += Ax[pa]
            a = abs(Ax[pa])
            if a > cm:
                cm = a
        colmax[k] = cm
        pend = Up[k + 1] - 1  # the diagonal is last
        for p in range(Up[k], pend):
            jj = Ui[p]
            if jj >= k0:  # (only in the dense tail; no earlier row depends on these)
                continue
            xj = x[jj]
            Ux[p] = xj
            x[jj] = 0.0
            if xj != 0.0:
                for pl in range(Lp[jj] + 1, Lp[jj + 1]):
                    x[Li[pl]] -= Lx[pl] * xj
        if k >= k0:  # Schur complement column into the dense block
            j = k - k0
            for r in range(k0, n):
                F.S[r - k0, j] = x[r]
                x[r] = 0.0
            continue
        piv = x[k]
        x[k] = 0.0
        amax = 0.0
        for pl in range(Lp[k] + 1, Lp[k + 1]):
            a = abs(x[Li[pl]])
            if a > amax:
                amax = a
        apiv = abs(piv)
        if not (apiv >= tol * amax) or not (apiv > tiny_rel * cm) or apiv == np.inf:
            for pl in range(Lp[k] + 1, Lp[k + 1]):
                x[Li[pl]] = 0.0
            F.info[INFO_VALID] = 0
            return False
        Ux[pend] = piv
        for pl in range(Lp[k] + 1, Lp[k + 1]):
            r = Li[pl]
            Lx[pl] = x[r] / piv
            x[r] = 0.0
    if k0 < n and not _dense_tail_lu(F, k0, tol, tiny_rel):
        F.info[INFO_VALID] = 0
        return False
    F.info[INFO_N_REFACTOR] += 1
    return True


@kernel(_nrt=False)
def _dense_tail_lu(F: LUFactors, k0: int, tol: float, tiny_rel: float) -> bool:
    """LU of the dense trailing block ``F.S`` in the diagonal pivot order, with the pivot tests
    of :func:`refactor`, and the results stored into ``L`` and ``U``."""
    n = F.q.shape[0]
    m = n - k0
    S, colmax = F.S, F.w
    for j in range(m):
        piv = S[j, j]
        amax = 0.0
        for i in range(j + 1, m):
            a = abs(S[i, j])
            if a > amax:
                amax = a
        apiv = abs(piv)
        if not (apiv >= tol * amax) or not (apiv > tiny_rel * colmax[k0 + j]) or apiv == np.inf:
            return False
        inv = 1.0 / piv
        for i in range(j + 1, m):
            lij = S[i, j]
            if lij != 0.0:
                lij *= inv
                S[i, j] = lij
                for c in range(j + 1, m):
                    S[i, c] -= lij * S[j, c]
    Lp, Li, Lx, Up, Ui, Ux = F.Lp, F.Li, F.Lx, F.Up, F.Ui, F.Ux
    for k in range(k0, n):
        j = k - k0
        for p in range(Up[k], Up[k + 1]):  # (the diagonal is the last entry)
            jj = Ui[p]
            if jj >= k0:
                Ux[p] = S[jj - k0, j]
        for pl in range(Lp[k] + 1, Lp[k + 1]):
            Lx[pl] = S[Li[pl] - k0, j]
    return True


@kernel(_nrt=False)
def factorize(
    Ap: np.ndarray, Ai: np.ndarray, Ax: np.ndarray, F: LUFactors, tol: float, refactor_tol: float
) -> int:
    """Refactor when possible, else factor in full; return codes as :func:`factor`."""
    if refactor(Ap, Ai, Ax, F, refactor_tol):
        return OK
    return factor(Ap, Ai, Ax, F, tol)


@kernel(_nrt=False)
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
    import scipy.sparse as sp  # imported here: SciPy's sparse stack costs 0.2 s to import
    from scipy.sparse.linalg import splu

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


def refactor_cost(F: LUFactors) -> tuple[float, float]:
    """Multiply-adds of a :func:`refactor` with the pattern in ``F``: (sparse, dense tail)."""
    n = F.q.shape[0]
    k0 = int(F.info[INFO_K0])
    unz = int(F.info[INFO_UNZ])
    below = np.diff(F.Lp) - 1  # sub-diagonal entries of each column of L
    rows = F.Ui[:unz]
    offdiag = np.ones(unz, dtype=bool)
    offdiag[F.Up[1:] - 1] = False
    sparse_rows = rows[offdiag & (rows < k0)]  # eliminations done column by column
    m = n - k0
    return float(below[sparse_rows].sum()), m**3 / 3.0


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
        cap = 2 * nnz + 4 * self.n
        self.factors = allocate(self.n, q, cap, cap, min(self.n, 512))
        self.tol = float(tol)
        self.refactor_tol = float(refactor_tol)

    @classmethod
    def from_matrix(cls, A: sp.spmatrix | sp.sparray | np.ndarray, **kw: object) -> SparseLU:
        """Pattern from a matrix (its stored entries, explicit zeros included)."""
        import scipy.sparse as sp

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
