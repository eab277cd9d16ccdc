"""Dense LU factorization with partial pivoting (compiled, in place).

``lu_factor`` overwrites a C-ordered square matrix ``A`` with its factors: the strictly lower
part holds the multipliers of the unit lower-triangular ``L``, the upper part holds ``U``, and
``perm`` records the row interchanges in LAPACK ``getrf`` style (row ``k`` was swapped with row
``perm[k] >= k`` at step ``k``), so that ``P A = L U``.  Elimination is right-looking and works on
whole rows, which keeps the innermost loop contiguous in memory.

A pivot whose magnitude is zero, not finite, or at most ``n * eps`` times the largest magnitude
in its original column is treated as a sign of a (numerically) singular matrix: factorization
stops and reports the step.  The solution of such a system would be dominated by round-off.
"""

from __future__ import annotations

import numpy as np

from ..codegen.jit import kernel

EPS = float(np.finfo(np.float64).eps)

# Compiled once per installation.  These functions never allocate arrays, so they run without
# the runtime's reference counting (``_nrt=False``, as numba does for its own non-allocating
# helpers): the atomic count updates on every array handed between compiled functions
# otherwise take most of the time of a step for small models (measured: 3x).


@kernel(_nrt=False)
def lu_factor(A: np.ndarray, perm: np.ndarray, colmax: np.ndarray) -> int:
    """Factor ``A`` (n x n, overwritten) as ``P A = L U``.

    ``perm`` (int64[n]) receives the interchanges, ``colmax`` (float64[n]) is scratch space.
    Returns 0 on success, or ``k + 1`` if the pivot of step ``k`` is (numerically) zero.
    """
    n = A.shape[0]
    for j in range(n):
        colmax[j] = 0.0
    for i in range(n):
        for j in range(n):
            a = abs(A[i, j])
            if a > colmax[j]:
                colmax[j] = a
    tiny_rel = n * EPS
    for k in range(n):
        p = k
        amax = abs(A[k, k])
        for i in range(k + 1, n):
            a = abs(A[i, k])
            if a > amax:
                amax = a
                p = i
        perm[k] = p
        # ``not (amax > ...)`` also catches NaN.
        if not (amax > tiny_rel * colmax[k]) or amax == np.inf:
            return k + 1
        if p != k:
            for j in range(n):
                tmp = A[k, j]
                A[k, j] = A[p, j]
                A[p, j] = tmp
        inv = 1.0 / A[k, k]
        for i in range(k + 1, n):
            lik = A[i, k]
            if lik != 0.0:
                lik *= inv
                A[i, k] = lik
                for j in range(k + 1, n):
                    A[i, j] -= lik * A[k, j]
    return 0


@kernel(_nrt=False)
def lu_solve(LU: np.ndarray, perm: np.ndarray, b: np.ndarray, x: np.ndarray) -> None:
    """Solve ``A x = b`` with the factors from :func:`lu_factor` (``x`` may be ``b``)."""
    n = LU.shape[0]
    for i in range(n):
        x[i] = b[i]
    for k in range(n):
        p = perm[k]
        if p != k:
            tmp = x[k]
            x[k] = x[p]
            x[p] = tmp
    for i in range(1, n):
        s = x[i]
        for j in range(i):
            s -= LU[i, j] * x[j]
        x[i] = s
    for i in range(n - 1, -1, -1):
        s = x[i]
        for j in range(i + 1, n):
            s -= LU[i, j] * x[j]
        x[i] = s / LU[i, i]


class DenseLU:
    """Convenience wrapper: ``DenseLU(A).solve(b)``; raises ``ValueError`` if ``A`` is singular."""

    def __init__(self, A: np.ndarray) -> None:
        self.lu = np.array(A, dtype=np.float64, order="C", copy=True)
        n = self.lu.shape[0]
        if self.lu.shape != (n, n):
            raise ValueError("matrix must be square")
        self.perm = np.zeros(n, dtype=np.int64)
        info = lu_factor(self.lu, self.perm, np.empty(n))
        if info:
            raise ValueError(f"matrix is singular (zero pivot at step {info - 1})")

    def solve(self, b: np.ndarray) -> np.ndarray:
        x = np.array(b, dtype=np.float64, copy=True)
        lu_solve(self.lu, self.perm, x, x)
        return x
