"""The compiled BDF/NDF integrator against mathematics and an independent reference.

Models are hand-built :class:`~scalebridge.codegen.vm.Kernel` tables (see ``make_kernel``), so
these tests exercise the integrator alone.  References are closed forms (matrix exponentials,
exact roots) or SciPy's Radau (an implicit Runge-Kutta method, independent of the BDF code)
computed here at tight tolerances.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm
from scipy.optimize import brentq

from scalebridge.codegen import vm
from scalebridge.codegen.program import Assembler
from scalebridge.errors import OptionError, SolverError
from scalebridge.linalg import sparse as sparse_lu
from scalebridge.model.parse import parse_expr
from scalebridge.wellmixed import bdf

# --- kernel construction ----------------------------------------------------------------------

Term = tuple[int, float, str, str]  # dydt[dst] += coef * v[a] * v[b]; names "y<k>", "one", derived


def make_kernel(
    n: int,
    terms: Sequence[Term],
    *,
    roots: Sequence[str] = (),
    derived: Sequence[tuple[str, str]] = (),
    partials: Sequence[tuple[str, str]] = (),
    jac_extra: Sequence[tuple[int, int, float, str]] = (),
) -> tuple[vm.Kernel, np.ndarray]:
    """A kernel for dy/dt = sum of ``terms``; returns it and an initialised value array.

    ``derived`` values (name, infix expression of ``y<k>``/``time``/earlier names) are
    computed before the right-hand side, ``partials`` before the Jacobian, ``roots`` are the
    root functions.  Jacobian entries of terms whose factors are states are generated
    (d(c a b)/da = c b); ``jac_extra`` adds ``(row, col, coef, weight name)`` entries for
    terms with derived factors.  Outputs record the states.
    """
    names: dict[str, int] = {"time": vm.SLOT_TIME, "one": vm.SLOT_ONE}
    for k in range(n):
        names[f"y{k}"] = 2 + k
    for nm, _ in (*derived, *partials):
        names[nm] = len(names)
    root_slots = np.arange(len(names), len(names) + len(roots), dtype=np.int64)
    n_slots = len(names) + len(roots)

    def state(nm: str) -> int:
        return int(nm[1:]) if nm.startswith("y") and nm[1:].isdigit() else -1

    entries: list[tuple[int, int, float, str]] = []
    for dst, coef, a, b in terms:
        for x, other in ((a, b), (b, a)):
            if state(x) >= 0:
                entries.append((dst, state(x), coef, other))
    entries += list(jac_extra)
    pattern = sorted({(r, c) for r, c, _, _ in entries})
    pos = {rc: p for p, rc in enumerate(pattern)}
    indptr = np.zeros(n + 1, dtype=np.int64)
    for r, _ in pattern:
        indptr[r + 1] += 1
    indptr = np.cumsum(indptr)

    asm = Assembler()
    seg = np.zeros((vm.SEG_EVENT0, 2), dtype=np.int64)

    def slot_of(nm: str) -> int:
        return names[nm]

    for s, items in ((vm.SEG_DERIV, derived), (vm.SEG_PARTIALS, partials)):
        start = asm.pos()
        for nm, text in items:
            asm.assign(parse_expr(text), names[nm], slot_of)
        seg[s] = (start, asm.pos())
    start = asm.pos()
    for j, text in enumerate(roots):
        asm.assign(parse_expr(text), int(root_slots[j]), slot_of)
    seg[vm.SEG_ROOTS] = (start, asm.pos())
    code, consts = asm.arrays()

    def i64(x: Sequence[int]) -> np.ndarray:
        return np.asarray(x, dtype=np.int64)

    def f64(x: Sequence[float]) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)

    K = vm.Kernel(
        code=code,
        consts=consts,
        seg=seg,
        stack_size=max(asm.max_depth, 1),
        n_slots=n_slots,
        x_slots=i64(range(2, 2 + n)),
        sop_dst=i64([t[0] for t in terms]),
        sop_coef=f64([t[1] for t in terms]),
        sop_a=i64([names[t[2]] for t in terms]),
        sop_b=i64([names[t[3]] for t in terms]),
        acc_dst=i64([pos[(e[0], e[1])] for e in entries]),
        acc_coef=f64([e[2] for e in entries]),
        acc_w=i64([names[e[3]] for e in entries]),
        acc_src=i64([-1] * len(entries)),
        n_g=max(len(pattern), 1),
        jac_indptr=indptr,
        jac_indices=i64([c for _, c in pattern]),
        root_slots=root_slots,
        rec_slots=i64(range(2, 2 + n)),
    )
    v = np.zeros(n_slots)
    v[vm.SLOT_ONE] = 1.0
    return K, v


def linear_kernel(A: np.ndarray, roots: Sequence[str] = ()) -> tuple[vm.Kernel, np.ndarray]:
    """y' = A y."""
    n = A.shape[0]
    terms = [(i, float(A[i, k]), f"y{k}", "one") for i in range(n) for k in range(n) if A[i, k]]
    return make_kernel(n, terms, roots=roots)


def robertson_kernel() -> tuple[vm.Kernel, np.ndarray]:
    terms = [
        (0, -0.04, "y0", "one"),
        (1, 0.04, "y0", "one"),
        (0, 1e4, "y1", "y2"),
        (1, -1e4, "y1", "y2"),
        (1, -3e7, "y1", "y1"),
        (2, 3e7, "y1", "y1"),
    ]
    return make_kernel(3, terms)


Run = tuple[bdf.BdfResult, np.ndarray]


def run(
    K: vm.Kernel,
    v: np.ndarray,
    y0: Sequence[float],
    t_stop: float,
    t_out: Sequence[float] = (),
    *,
    t0: float = 0.0,
    **kw: object,
) -> Run:
    """Solve with a NaN-filled output array; returns the result and the outputs."""
    t_grid = np.asarray(t_out, dtype=np.float64)
    out = np.full((t_grid.shape[0], K.rec_slots.shape[0]), np.nan)
    res = bdf.solve(K, t0, np.asarray(y0, dtype=np.float64), t_stop, t_grid, 0, out, v, **kw)
    return res, out


def _rob(t: float, y: np.ndarray) -> list[float]:
    return [
        -0.04 * y[0] + 1e4 * y[1] * y[2],
        0.04 * y[0] - 1e4 * y[1] * y[2] - 3e7 * y[1] ** 2,
        3e7 * y[1] ** 2,
    ]


def _rob_jac(t: float, y: np.ndarray) -> list[list[float]]:
    return [
        [-0.04, 1e4 * y[2], 1e4 * y[1]],
        [0.04, -1e4 * y[2] - 6e7 * y[1], -1e4 * y[1]],
        [0.0, 6e7 * y[1], 0.0],
    ]


# --- linear systems against the matrix exponential --------------------------------------------


def _stiff_matrix(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return Q @ np.diag(-np.logspace(0, 6, n)) @ Q.T  # eigenvalues -1 .. -1e6


def _linear_errors(
    A: np.ndarray, y0: np.ndarray, T: float, rtols: Sequence[float], atol_factor: float
) -> list[float]:
    K, v = linear_kernel(A)
    t_out = np.linspace(0.0, T, 21)[1:-1]
    exact = np.array([expm(A * t) @ y0 for t in (*t_out, T)])
    errs = []
    for rtol in rtols:
        res, out = run(K, v, y0, T, t_out, rtol=rtol, atol=rtol * atol_factor)
        assert res.status == bdf.Status.SUCCESS and res.t == T
        assert res.i_out == t_out.shape[0]
        errs.append(float(np.max(np.abs(np.vstack((out, res.y)) - exact))))
    return errs


def test_stiff_linear_system_matches_expm_and_is_tolerance_proportional() -> None:
    A = _stiff_matrix(6, seed=1)
    y0 = np.random.default_rng(2).standard_normal(6)
    rtols = [1e-3, 1e-5, 1e-7, 1e-9]
    errs = _linear_errors(A, y0, 2.0, rtols, atol_factor=1e-3)
    for rtol, err in zip(rtols, errs, strict=True):
        assert err < 10 * rtol * np.max(np.abs(y0))
    assert all(b < a for a, b in itertools.pairwise(errs))
    assert errs[-1] < 1e-4 * errs[0]


def test_oscillatory_linear_system_converges() -> None:
    A = np.array([[0.0, 1.0], [-100.0, -0.1]])  # damped oscillator, 16 periods
    errs = _linear_errors(A, np.array([1.0, 0.0]), 10.0, [1e-5, 1e-7, 1e-9, 1e-11], 1e-2)
    assert all(b < 0.2 * a for a, b in itertools.pairwise(errs))
    assert errs[-1] < 1e-6


def test_linear_jacobian_is_evaluated_once() -> None:
    K, v = linear_kernel(_stiff_matrix(5, seed=3))
    res, _ = run(K, v, np.ones(5), 10.0, rtol=1e-8, atol=1e-12)
    assert res.ok and res.n_jac == 1
    assert res.n_lu < res.n_steps / 3  # LU reused over several steps
    assert res.n_rhs < 3 * res.n_steps


# --- Robertson, van der Pol -------------------------------------------------------------------


@pytest.fixture(scope="module")
def robertson_reference() -> dict[float, np.ndarray]:
    ref = {}
    for T in (1e5, 4e10):
        sol = solve_ivp(
            _rob,
            (0.0, T),
            [1.0, 0.0, 0.0],
            method="Radau",
            rtol=1e-12,
            atol=1e-14,
            jac=_rob_jac,
            t_eval=[1.0, 100.0, T],
        )
        assert sol.success
        ref[T] = sol.y.T
    return ref


@pytest.mark.parametrize("T", [1e5, 4e10])
def test_robertson_matches_radau(T: float, robertson_reference: dict[float, np.ndarray]) -> None:
    K, v = robertson_kernel()
    atol = np.array([1e-10, 1e-16, 1e-10])
    res, out = run(K, v, [1.0, 0.0, 0.0], T, [1.0, 100.0], rtol=1e-8, atol=atol)
    assert res.status == bdf.Status.SUCCESS and res.t == T
    got = np.vstack((out, res.y))
    ref = robertson_reference[T]
    # Componentwise: relative accuracy well within 1e-5 above the absolute tolerance scale.
    assert np.all(np.abs(got - ref) <= 1e-5 * np.abs(ref) + 1e3 * atol)
    assert np.all(np.abs(got.sum(axis=1) - 1.0) < 1e-10)
    assert res.n_steps < 3000


def test_robertson_conservation_loose_tolerance() -> None:
    K, v = robertson_kernel()
    res, out = run(
        K,
        v,
        [1.0, 0.0, 0.0],
        4e10,
        np.logspace(-5, 10, 16),
        rtol=1e-4,
        atol=np.array([1e-8, 1e-14, 1e-8]),
    )
    assert res.ok
    assert np.all(np.abs(out.sum(axis=1) - 1.0) < 1e-10)
    assert abs(res.y.sum() - 1.0) < 1e-10


def test_van_der_pol_stiff_one_period() -> None:
    mu = 1e3
    # y0' = y1;  y1' = mu y1 - mu y0^2 y1 - y0  with w = y0^2 y1 as a derived value
    K, v = make_kernel(
        2,
        [(0, 1.0, "y1", "one"), (1, mu, "y1", "one"), (1, -mu, "w", "one"), (1, -1.0, "y0", "one")],
        derived=[("w", "y0^2*y1")],
        partials=[("dw0", "2*y0*y1"), ("dw1", "y0^2")],
        jac_extra=[(1, 0, -mu, "dw0"), (1, 1, -mu, "dw1")],
    )
    T = 2000.0  # the period is about (3 - 2 ln 2) mu = 1614
    t_out = [500.0, 1000.0, 1500.0]

    def f(t: float, y: np.ndarray) -> list[float]:
        return [y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]]

    def jac(t: float, y: np.ndarray) -> list[list[float]]:
        return [[0.0, 1.0], [-2 * mu * y[0] * y[1] - 1.0, mu * (1 - y[0] ** 2)]]

    ref = solve_ivp(
        f, (0.0, T), [2.0, 0.0], method="Radau", rtol=1e-10, atol=1e-10, jac=jac, t_eval=[*t_out, T]
    )
    res, out = run(K, v, [2.0, 0.0], T, t_out, rtol=1e-8, atol=1e-10)
    assert res.status == bdf.Status.SUCCESS
    assert res.n_steps < 5000
    got = np.vstack((out, res.y))
    # y0 on the slow branches; the fast jumps sit away from these times
    assert np.allclose(got[:, 0], ref.y[0], rtol=1e-5, atol=1e-6)
    # sign change of y0 over one period: the solution went round the cycle
    assert np.sign(got[1, 0]) != np.sign(got[0, 0]) or np.sign(got[2, 0]) != np.sign(got[1, 0])


# --- stopping, output, roots ------------------------------------------------------------------


def test_never_steps_past_t_stop() -> None:
    # The right-hand side is NaN for t > 1: any evaluation beyond t_stop = 1 would fail the run.
    K, v = make_kernel(1, [(0, 1.0, "w", "one")], derived=[("w", "piecewise(1, time <= 1, 0/0)")])
    res, _ = run(K, v, [0.0], 1.0, rtol=1e-8, atol=1e-10)
    assert res.status == bdf.Status.SUCCESS
    assert res.t == 1.0
    assert abs(res.y[0] - 1.0) < 1e-12
    # y' = sqrt(1 - t): derivatives unbounded at t_stop
    K, v = make_kernel(1, [(0, 1.0, "w", "one")], derived=[("w", "sqrt(1 - time)")])
    for t_stop in (1.0, 0.999999):
        res, _ = run(K, v, [0.0], t_stop, rtol=1e-8, atol=1e-10)
        assert res.status == bdf.Status.SUCCESS and res.t == t_stop
        assert abs(res.y[0] - 2.0 / 3.0 * (1.0 - (1.0 - t_stop) ** 1.5)) < 1e-6


def test_output_grid_interpolation_and_stop_point() -> None:
    K, v = linear_kernel(np.array([[-1.0]]))
    t_out = np.array([0.0, *np.linspace(0.05, 2.95, 59), 3.0, 3.5])
    res, out = run(K, v, [1.0], 3.0, t_out, rtol=1e-9, atol=1e-12)
    assert res.ok and res.t == 3.0
    n_before = t_out.shape[0] - 2
    assert res.i_out == n_before  # the stop time itself and later points are not recorded
    assert np.all(np.isnan(out[n_before:]))
    err = np.abs(out[:n_before, 0] - np.exp(-t_out[:n_before]))
    assert np.max(err) < 1e-8
    assert out[0, 0] == 1.0


def test_output_index_is_respected() -> None:
    K, v = linear_kernel(np.array([[-1.0]]))
    t_out = np.array([0.1, 0.2, 0.3, 0.4])
    out = np.full((4, 1), -7.0)
    res = bdf.solve(K, 0.0, np.array([1.0]), 1.0, t_out, 2, out, v, rtol=1e-8, atol=1e-10)
    assert res.i_out == 4
    assert np.all(out[:2] == -7.0)
    assert np.allclose(out[2:, 0], np.exp(-t_out[2:]), rtol=1e-7)


def test_root_located_at_ln2() -> None:
    K, v = linear_kernel(np.array([[-1.0]]), roots=["y0 - 0.5"])
    t_out = np.array([0.5, 0.6931, 0.7, 1.0])
    res, out = run(K, v, [1.0], 5.0, t_out, rtol=1e-12, atol=1e-14)
    assert res.status == bdf.Status.ROOT
    assert abs(res.t - math.log(2.0)) < 1e-10
    assert res.t >= math.log(2.0) - 1e-12  # the right end of the bracket: sign already changed
    assert res.y[0] <= 0.5
    assert list(res.roots_fired) == [True]
    assert res.i_out == 2 and np.isnan(out[2, 0])  # only grid points before the root


def test_earliest_of_several_roots_is_reported() -> None:
    K, v = linear_kernel(np.array([[-1.0]]), roots=["y0 - 0.3", "y0 - 0.7", "0.5 - y0"])
    res, _ = run(K, v, [1.0], 5.0, rtol=1e-10, atol=1e-12)
    assert res.status == bdf.Status.ROOT
    assert abs(res.t - math.log(1 / 0.7)) < 1e-8
    assert list(res.roots_fired) == [False, True, False]
    # restart from there: the next root is y = 0.5
    res2 = bdf.solve(
        K,
        res.t,
        res.y,
        5.0,
        np.zeros(0),
        0,
        np.zeros((0, 1)),
        v,
        rtol=1e-10,
        atol=1e-12,
        workspace=res.workspace,
    )
    assert res2.status == bdf.Status.ROOT
    assert abs(res2.t - math.log(2.0)) < 1e-8
    assert list(res2.roots_fired) == [False, False, True]


def test_root_zero_at_start_is_ignored_until_nonzero() -> None:
    # g1 = y0 - 1 is exactly zero at the start, then negative: no event.
    # g2 = t + 0.75 - y0 = t + 0.75 - exp(-t) starts at -0.25 and crosses zero later.
    K, v = linear_kernel(np.array([[-1.0]]), roots=["y0 - 1", "time + 0.75 - y0"])
    res, _ = run(K, v, [1.0], 3.0, rtol=1e-10, atol=1e-12)
    t_star = brentq(lambda t: t + 0.75 - math.exp(-t), 0.0, 3.0)
    assert res.status == bdf.Status.ROOT
    assert list(res.roots_fired) == [False, True]
    assert abs(res.t - t_star) < 1e-8


def test_root_zero_at_start_then_crossing_fires() -> None:
    # g = sin(2 pi t) is zero at t = 0, becomes positive, crosses zero at t = 0.5.
    K, v = linear_kernel(np.array([[-1.0]]), roots=["sin(2*pi*time)"])
    res, _ = run(K, v, [1.0], 2.0, rtol=1e-10, atol=1e-12)
    assert res.status == bdf.Status.ROOT
    assert abs(res.t - 0.5) < 1e-12
    assert list(res.roots_fired) == [True]


def test_touching_zero_is_not_a_crossing() -> None:
    # g = floor(4 y) - 2 with y = exp(-t): 2, 1, then exactly 0 for y in [0.5, 0.75) -- no
    # sign yet -- and -1 from y < 0.5 on (t = ln 2).  A second function is exactly zero on
    # the way (y - 0.75 passes zero) but is checked by sign only.
    K, v = linear_kernel(np.array([[-1.0]]), roots=["floor(4*y0) - 2", "max(y0 - 0.75, 0)"])
    res, _ = run(K, v, [1.0], 5.0, rtol=1e-10, atol=1e-12)
    assert res.status == bdf.Status.ROOT
    assert list(res.roots_fired) == [True, False]
    assert abs(res.t - math.log(2.0)) < 1e-9
    assert math.floor(4 * res.y[0]) - 2 < 0  # the new sign holds at the returned time


def test_root_with_landing_exactly_on_zero_reports_the_new_sign() -> None:
    # g = 0.25 - y0 hits zero at t = ln 4; whichever point the bracketing ends on, g > 0 there.
    K, v = linear_kernel(np.array([[-1.0]]), roots=["0.25 - y0"])
    res, _ = run(K, v, [1.0], 5.0, rtol=1e-10, atol=1e-12)
    assert res.status == bdf.Status.ROOT and res.roots_fired[0]
    assert 0.25 - res.y[0] > 0.0
    assert abs(res.t - math.log(4.0)) < 1e-9


def test_time_root_without_states() -> None:
    K, v = make_kernel(0, [], roots=["time - 0.3"])
    out = np.full((3, 0), np.nan)
    res = bdf.solve(
        K, 0.0, np.zeros(0), 1.0, np.array([0.1, 0.2, 0.5]), 0, out, v, rtol=1e-6, atol=1e-9
    )
    assert res.status == bdf.Status.ROOT
    # g(0.3) = 0 exactly: the new sign holds just after, within the time tolerance
    assert 0.3 < res.t < 0.3 + 100 * np.finfo(float).eps and res.i_out == 2


# --- linear solvers inside the integrator ------------------------------------------------------


def _sparse_system(n: int, seed: int) -> np.ndarray:
    """A stiff, sparse, nonsymmetric chain-like reaction system."""
    rng = np.random.default_rng(seed)
    A = np.zeros((n, n))
    for i in range(n):
        for k in rng.choice(n, size=3, replace=False):
            if k != i:
                A[i, k] = rng.uniform(0.0, 1.0) * 10.0 ** rng.uniform(0, 4)
    A -= np.diag(A.sum(axis=0) + rng.uniform(0.1, 1.0, n))  # columns: outflow + decay
    return A


def test_dense_and_sparse_paths_agree() -> None:
    A = _sparse_system(80, seed=4)
    K, v = linear_kernel(A)
    y0 = np.random.default_rng(5).uniform(0.0, 1.0, 80)
    t_out = np.linspace(0.1, 1.9, 10)
    res_d, out_d = run(K, v, y0, 2.0, t_out, rtol=1e-8, atol=1e-12, linear_solver="dense")
    res_s, out_s = run(K, v, y0, 2.0, t_out, rtol=1e-8, atol=1e-12, linear_solver="sparse")
    assert res_d.ok and res_s.ok
    assert res_d.workspace.kind == "dense" and res_s.workspace.kind == "sparse"
    exact = expm(A * 2.0) @ y0
    for y in (res_d.y, res_s.y):
        assert np.max(np.abs(y - exact)) < 1e-6 * np.max(np.abs(exact))
    assert np.max(np.abs(out_d - out_s)) < 1e-6 * np.max(np.abs(out_d))
    assert abs(res_d.n_steps - res_s.n_steps) <= 0.05 * res_d.n_steps + 2


def test_sparse_path_on_a_nonlinear_problem_and_storage_growth() -> None:
    K, v = robertson_kernel()
    kw = dict(rtol=1e-8, atol=np.array([1e-10, 1e-16, 1e-10]))
    res_d, _ = run(K, v, [1.0, 0.0, 0.0], 1e3, linear_solver="dense", **kw)
    ws = bdf.Workspace(K, "sparse")
    # far too little LU storage: the call enlarges it and starts over
    ws.core = ws.core._replace(lu=sparse_lu.allocate(3, ws.core.lu.q, 1, 1))
    out = np.zeros((0, 3))
    res_s = bdf.solve(K, 0.0, np.array([1.0, 0.0, 0.0]), 1e3, np.zeros(0), 0, out, v,
                      workspace=ws, **kw)  # fmt: skip
    assert res_d.ok and res_s.ok
    assert ws.core.lu.Li.shape[0] > 1
    assert np.allclose(res_s.y, res_d.y, rtol=1e-7, atol=1e-14)


def test_linear_solver_choice_rule() -> None:
    assert bdf.choose_linear_solver(10, 0.0) == "dense"
    assert bdf.choose_linear_solver(356, 1.7e6) == "sparse"
    assert bdf.choose_linear_solver(356, 1e7) == "dense"
    K, _ = linear_kernel(_sparse_system(80, seed=6))
    ws = bdf.Workspace(K)
    assert ws.kind == "sparse" and 3 * ws.sparse_work[0] + ws.sparse_work[1] < 80**3 / 6
    K, _ = linear_kernel(_stiff_matrix(70, seed=7))  # full Jacobian
    assert bdf.Workspace(K).kind == "dense"


# --- failures ---------------------------------------------------------------------------------


def test_blow_up_is_a_failure_naming_the_component_and_time() -> None:
    K, v = make_kernel(1, [(0, 1.0, "y0", "y0")])  # y' = y^2, y(0) = 1: y = 1/(1 - t)
    res, _ = run(K, v, [1.0], 2.0, rtol=1e-6, atol=1e-9)
    assert not res.ok
    assert res.status in (
        bdf.Status.STEP_UNDERFLOW,
        bdf.Status.NONFINITE,
        bdf.Status.NEWTON_FAILURE,
    )
    assert res.component == 0
    assert 1.0 - 1e-3 < res.t <= 1.0
    with pytest.raises(SolverError, match="'x'") as info:
        res.raise_for_status(["x"])
    assert info.value.variable == "x" and info.value.time == res.t


def test_failure_returns_last_accepted_state() -> None:
    # y' = -sqrt(y): y = (1 - t/2)^2 reaches 0 at t = 2; beyond, iterates go negative (NaN).
    K, v = make_kernel(1, [(0, 1.0, "w", "one")], derived=[("w", "-sqrt(y0)")])
    res, _ = run(K, v, [1.0], 3.0, rtol=1e-8, atol=1e-12)
    assert not res.ok and res.component == 0
    assert abs(res.t - 2.0) < 1e-2
    assert abs(res.y[0] - (1.0 - res.t / 2.0) ** 2) < 1e-6  # the state at res.t, not y0


def test_wrong_jacobian_is_a_newton_failure() -> None:
    # y' = -y, but the Jacobian claims 1e20: the simplified Newton iteration stalls (its
    # contraction rate is ~1) unless h < ~1e-20, which 20 step reductions do not reach.
    # (With several components a correction-based test cannot always see this: a component
    # whose corrections are negligible looks converged.  The Jacobian is analytic here.)
    K, v = make_kernel(1, [(0, -1.0, "y0", "one")], jac_extra=[(0, 0, 1e20, "one")])
    res, _ = run(K, v, [1.0], 1.0, rtol=1e-6, atol=1e-9)
    assert res.status == bdf.Status.NEWTON_FAILURE
    assert res.component == 0 and res.t == 0.0 and res.n_conv_fail == bdf.MAX_CONV_FAILS
    assert np.array_equal(res.y, [1.0])


def test_nonfinite_jacobian_names_its_row() -> None:
    K, v = make_kernel(
        2,
        [(0, -1.0, "y0", "one"), (1, -1.0, "y1", "one")],
        partials=[("bad", "sqrt(0 - 1)")],
        jac_extra=[(1, 0, 1.0, "bad")],
    )
    res, _ = run(K, v, [1.0, 1.0], 1.0, rtol=1e-6, atol=1e-9)
    assert res.status == bdf.Status.NONFINITE and res.component == 1
    assert "Jacobian" in res.message


def test_nonfinite_right_hand_side_at_start() -> None:
    K, v = make_kernel(2, [(0, 1.0, "y0", "one"), (1, 1.0, "w", "one")], derived=[("w", "ln(y1)")])
    res, _ = run(K, v, [1.0, -1.0], 1.0, rtol=1e-6, atol=1e-9)
    assert res.status == bdf.Status.NONFINITE and res.component == 1 and res.t == 0.0


def test_too_many_steps() -> None:
    K, v = robertson_kernel()
    res, _ = run(K, v, [1.0, 0.0, 0.0], 1e5, rtol=1e-6, atol=1e-10, max_steps=20)
    assert res.status == bdf.Status.TOO_MANY_STEPS and res.n_steps == 20
    assert 0.0 < res.t < 1e5 and 0 <= res.component < 3


# --- API --------------------------------------------------------------------------------------


def test_workspace_reuse_gives_identical_results() -> None:
    K, v = robertson_kernel()
    r1, o1 = run(K, v, [1.0, 0.0, 0.0], 100.0, [1.0, 10.0], rtol=1e-6, atol=1e-10)
    out = np.full((2, 3), np.nan)
    r2 = bdf.solve(
        K,
        0.0,
        np.array([1.0, 0.0, 0.0]),
        100.0,
        np.array([1.0, 10.0]),
        0,
        out,
        v,
        rtol=1e-6,
        atol=1e-10,
        workspace=r1.workspace,
    )
    assert np.array_equal(r1.y, r2.y) and np.array_equal(o1, out)
    assert (r1.n_steps, r1.n_rhs, r1.n_jac, r1.n_lu) == (r2.n_steps, r2.n_rhs, r2.n_jac, r2.n_lu)
    K2, v2 = linear_kernel(-np.eye(2))
    with pytest.raises(OptionError):
        bdf.solve(
            K2,
            0.0,
            np.ones(2),
            1.0,
            np.zeros(0),
            0,
            np.zeros((0, 2)),
            v2,
            rtol=1e-6,
            atol=1e-9,
            workspace=r1.workspace,
        )


def test_user_h0_and_hmax() -> None:
    K, v = linear_kernel(np.array([[-1.0]]))
    res, _ = run(K, v, [1.0], 10.0, rtol=1e-6, atol=1e-9, hmax=0.01)
    assert res.ok and res.n_steps >= 1000
    res2, _ = run(K, v, [1.0], 10.0, rtol=1e-6, atol=1e-9, h0=1e-9)
    assert res2.ok and abs(res2.y[0] - math.exp(-10.0)) < 1e-6


@pytest.mark.parametrize(
    "kw",
    [
        dict(rtol=0.0, atol=1e-9),
        dict(rtol=1e-6, atol=-1.0),
        dict(rtol=1e-6, atol=np.array([-1.0])),
        dict(rtol=1e-6, atol=np.array([np.nan])),
        dict(rtol=1e-6, atol=[1e-9, 1e-9]),
        dict(rtol=1e-6, atol=1e-9, linear_solver="magic"),
        dict(rtol=1e-6, atol=1e-9, hmax=0.0),
    ],
)
def test_bad_options(kw: dict[str, object]) -> None:
    K, v = linear_kernel(np.array([[-1.0]]))
    with pytest.raises(OptionError):
        bdf.solve(K, 0.0, np.ones(1), 1.0, np.zeros(0), 0, np.zeros((0, 1)), v, **kw)  # type: ignore[arg-type]


def test_bad_time_interval() -> None:
    K, v = linear_kernel(np.array([[-1.0]]))
    with pytest.raises(OptionError):
        bdf.solve(
            K, 1.0, np.ones(1), 0.0, np.zeros(0), 0, np.zeros((0, 1)), v, rtol=1e-6, atol=1e-9
        )
    res = bdf.solve(
        K, 1.0, np.ones(1), 1.0, np.zeros(0), 0, np.zeros((0, 1)), v, rtol=1e-6, atol=1e-9
    )
    assert res.status == bdf.Status.SUCCESS and res.t == 1.0 and res.y[0] == 1.0
