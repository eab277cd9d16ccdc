"""Dense and sparse LU factorizations against each other, NumPy, and the defining equations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from scalebridge.linalg import DenseLU, SparseLU, column_order
from scalebridge.linalg import sparse as sparse_lu


def _random_sparse(n: int, density: float, seed: int, dominant: bool) -> sp.csc_matrix:
    """Random sparse matrix; if not ``dominant``, a weak diagonal forces off-diagonal pivots."""
    rng = np.random.default_rng(seed)
    A = sp.random(
        n,
        n,
        density=density,
        random_state=rng,
        format="csc",
        data_rvs=lambda k: rng.uniform(-1.0, 1.0, k),
    )
    d = np.abs(A).sum(axis=1).A.ravel() + 1.0 if dominant else rng.uniform(-1e-3, 1e-3, n)
    A = (A + sp.diags(d)).tocsc()
    A.sort_indices()
    return A


@pytest.mark.parametrize("dominant", [True, False])
@pytest.mark.parametrize("order", ["COLAMD", "MMD_AT_PLUS_A", "NATURAL"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sparse_and_dense_agree(dominant: bool, order: str, seed: int) -> None:
    A = _random_sparse(120, 0.04, seed, dominant)
    Ad = A.toarray()
    assert np.linalg.cond(Ad) < 1e10  # (these seeds give well-posed comparisons)
    b = np.random.default_rng(seed + 10).standard_normal(120)
    xd = DenseLU(Ad).solve(b)
    S = SparseLU.from_matrix(A, order=order)
    S.factor(A.data)
    xs = S.solve(b)
    x_np = np.linalg.solve(Ad, b)
    scale = np.linalg.cond(Ad) * np.finfo(float).eps * np.max(np.abs(x_np)) * 10
    assert np.max(np.abs(xd - x_np)) < scale
    assert np.max(np.abs(xs - x_np)) < scale
    assert np.max(np.abs(Ad @ xs - b)) < 1e-10 * np.max(np.abs(Ad)) * np.max(np.abs(xs))


def test_sparse_pivots_off_the_diagonal() -> None:
    # A permutation-like matrix with a zero diagonal: no diagonal pivot is possible.
    n = 50
    rng = np.random.default_rng(3)
    p = np.roll(np.arange(n), 1)
    A = sp.csc_matrix((rng.uniform(1.0, 2.0, n), (np.arange(n), p)), shape=(n, n))
    A = A + sp.csc_matrix((np.full(n, 1e-3), (np.arange(n), np.roll(p, 5))), shape=(n, n))
    A = A.tocsc()
    A.sort_indices()
    S = SparseLU.from_matrix(A)
    S.factor(A.data)
    b = rng.standard_normal(n)
    assert np.allclose(A @ S.solve(b), b, rtol=0, atol=1e-12)


def test_refactor_with_new_values() -> None:
    A = _random_sparse(100, 0.05, 4, dominant=True)
    S = SparseLU.from_matrix(A)
    S.factor(A.data)
    n_factor = int(S.factors.info[sparse_lu.INFO_N_FACTOR])
    rng = np.random.default_rng(5)
    b = rng.standard_normal(100)
    # same pattern, new values, still diagonally dominant: the pivot sequence stays valid
    B = A.copy()
    B.data = A.data * rng.uniform(0.5, 1.5, A.nnz)
    assert S.refactor(B.data)
    assert int(S.factors.info[sparse_lu.INFO_N_FACTOR]) == n_factor
    x = S.solve(b)
    assert np.allclose(x, np.linalg.solve(B.toarray(), b), rtol=1e-12, atol=1e-12)
    # values that make a reused pivot tiny: refactor refuses and a full factorization follows
    C = B.copy()
    diag_pos = [
        p for j in range(100) for p in range(C.indptr[j], C.indptr[j + 1]) if C.indices[p] == j
    ]
    C.data[diag_pos] = 1e-9
    assert not S.refactor(C.data)
    assert int(S.factors.info[sparse_lu.INFO_N_FACTOR]) == n_factor + 1
    x = S.solve(b)
    assert np.allclose(C.toarray() @ x, b, rtol=0, atol=1e-8 * np.max(np.abs(x)))


def test_dense_tail_refactorization() -> None:
    n = 100
    A = _random_sparse(n, 0.05, 4, dominant=True)
    S = SparseLU.from_matrix(A)
    S.factor(A.data)
    k0 = int(S.factors.info[sparse_lu.INFO_K0])
    assert 0 < k0 < n  # the trailing block is refactored densely
    rng = np.random.default_rng(9)
    B = A.copy()
    B.data = A.data * rng.uniform(0.5, 1.5, A.nnz)
    assert S.refactor(B.data)
    # the same refactorization done column by column throughout
    T = SparseLU.from_matrix(A, order=S.factors.q)
    T.factor(A.data)
    T.factors.info[sparse_lu.INFO_K0] = n
    assert T.refactor(B.data)
    lnz = int(S.factors.info[sparse_lu.INFO_LNZ])
    unz = int(S.factors.info[sparse_lu.INFO_UNZ])
    assert np.array_equal(S.factors.Li[:lnz], T.factors.Li[:lnz])
    assert np.allclose(S.factors.Lx[:lnz], T.factors.Lx[:lnz], rtol=1e-12, atol=1e-14)
    assert np.allclose(S.factors.Ux[:unz], T.factors.Ux[:unz], rtol=1e-12, atol=1e-14)
    b = rng.standard_normal(n)
    assert np.allclose(S.solve(b), np.linalg.solve(B.toarray(), b), rtol=1e-11, atol=1e-12)
    # make the first pivot of the dense block vanish: refused, then factored afresh
    col = int(S.factors.q[k0])
    row = int(np.flatnonzero(S.factors.pinv == k0)[0])
    u_kk = S.factors.Ux[S.factors.Up[k0 + 1] - 1]  # the pivot, U[k0, k0]
    C = B.copy()
    (pos,) = [p for p in range(C.indptr[col], C.indptr[col + 1]) if C.indices[p] == row]
    C.data[pos] -= u_kk
    n_factor = int(S.factors.info[sparse_lu.INFO_N_FACTOR])
    assert not S.refactor(C.data)
    assert int(S.factors.info[sparse_lu.INFO_N_FACTOR]) == n_factor + 1
    x = S.solve(b)
    assert np.allclose(C.toarray() @ x, b, rtol=0, atol=1e-9 * np.max(np.abs(x)))


@pytest.mark.parametrize("kind", ["dense", "COLAMD", "MMD_AT_PLUS_A", "NATURAL"])
def test_singular_matrix_is_reported(kind: str) -> None:
    A = _random_sparse(40, 0.1, 6, dominant=True).toarray()
    A[7] = 2.0 * A[3]  # rank deficient: row 7 = 2 row 3
    M = sp.csc_matrix(A)
    M.sort_indices()
    with pytest.raises(ValueError, match="singular"):
        if kind == "dense":
            DenseLU(A)
        else:
            SparseLU.from_matrix(M, order=kind).factor(M.data)


def test_structurally_singular_sparse_matrix() -> None:
    # column 2 holds only an explicit zero
    M = sp.csc_matrix(
        (np.array([1.0, 3.0, 2.0, 4.0, 0.0]), np.array([0, 1, 0, 1, 2]), np.array([0, 2, 4, 5])),
        shape=(3, 3),
    )
    S = SparseLU(M.indptr, M.indices, 3, order=np.arange(3))
    with pytest.raises(ValueError, match="singular"):
        S.factor(M.data)


def test_sparse_storage_grows_when_too_small() -> None:
    A = _random_sparse(80, 0.08, 7, dominant=False)
    S = SparseLU.from_matrix(A)
    S.factors = sparse_lu.allocate(80, S.factors.q, 10, 10)
    S.factor(A.data)
    b = np.ones(80)
    x = S.solve(b)
    assert np.allclose(A @ x, b, atol=1e-9 * np.max(np.abs(x)))
    assert S.factors.Li.shape[0] >= S.factors.info[sparse_lu.INFO_LNZ]


def test_column_order_is_a_permutation() -> None:
    A = _random_sparse(60, 0.05, 8, dominant=True)
    for method in ("COLAMD", "MMD_AT_PLUS_A", "NATURAL"):
        q = column_order(A.indptr.astype(np.int64), A.indices.astype(np.int64), 60, method)
        assert np.array_equal(np.sort(q), np.arange(60))


def test_dense_lu_pivots() -> None:
    A = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 3.0], [4.0, -3.0, 8.0]])
    b = np.array([1.0, 2.0, 3.0])
    assert np.allclose(DenseLU(A).solve(b), np.linalg.solve(A, b), rtol=1e-14, atol=1e-14)
