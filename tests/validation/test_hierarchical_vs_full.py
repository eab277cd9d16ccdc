"""Hierarchical against full: the pipeline's gradient against receptors resolved in every cell.

Tissue x in (0, 1), n = 100 finite volumes, ligand c with c = c0 on the face x = 0 and no flux
at x = 1, from c = 0 and free receptors.  The *full* model keeps the receptor states in every
grid cell (not diffusing, R + C = R_T there), with the binding/internalization kinetics of
``data/receptor_uptake.ant`` and the internalized ligand as the sink::

    dc/dt = D c'' - rho (k_on c R - k_off C),    dC/dt = k_on c R - (k_off + k_int) C,
    R = R_T - C.

The family ``k_on = s``, ``k_off = k_int = s/2``, ``R_T = 20/s`` (rho = 1, D = 0.1, c0 = 2)
keeps the QSSA law fixed, ``V_max = k_int R_T = 10``, ``K_m = (k_off + k_int)/k_on = 1``, so
the pipeline's tissue model is the same for every s, while the receptor relaxation
``t_molecular = 1/(k_off + k_int) = 1/s`` and the receptor capacity shrink:
``t_capture = 1/(rho k_on R_T) = 1/20``, ``t_cell = K_m/(rho V_max) = 0.1``,
``t_diffusion = 1/D = 10``; the molecular/cell ratio is ``eps = t_molecular/t_capture = 20/s``.

The reference for the full model is written here, independently of scalebridge: the same
cell-centred finite volumes (face flux ``D (c_{i+1} - c_i)/h``, Dirichlet face
``2D/h (c0 - c_1)``, as documented in :mod:`scalebridge.space.boundary`), so that the spatial
discretisation error cancels and the comparison measures the model error alone; integrated by
scipy's Radau (rtol 1e-10), and its steady state by Newton's method.

What must hold:

* the steady gradients agree to round-off for *every* s, even unseparated ones (at a steady
  state the receptors sit on their critical manifold, so the sink is exactly rho u(c));
* while the gradient forms, the error ``max_t max_x |c_full - c_pipeline| / c0`` over
  t in {0.05, 0.1, 0.2, 0.3, 0.5} shrinks linearly with eps (ratios 2 +- 0.2 per halving); at
  eps = 0.1 (the separation threshold 10) it is below 1e-2.  Measured:

  ========  ===========  ===========  ========
  s         eps          error         ratio
  ========  ===========  ===========  ========
  200       0.1          6.4e-3
  400       0.05         3.1e-3        2.04
  800       0.025        1.55e-3       2.03
  1600      0.0125       7.7e-4        2.01
  ========  ===========  ===========  ========

* the pipeline's own time stepping (Crank-Nicolson, dt = 5e-4, second order: 2.4e-5 at
  dt = 1e-3, 6.2e-6 at 5e-4, 1.6e-6 at 2.5e-4) is far more accurate than these model errors:
  against scipy's Radau applied to the reduced model it differs by less than 1e-5 of c0;
* the pipeline warns (TimescaleWarning) at s = 20 (eps = 1) and is silent for s >= 200.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.integrate import solve_ivp

from scalebridge.couple import HierarchicalPipeline, TimescaleWarning
from scalebridge.model.expr import evaluate
from scalebridge.space import Dirichlet, Grid, solve, steady_state

N, LENGTH, D, C0, RHO = 100, 1.0, 0.1, 2.0, 1.0
V_MAX, K_M = 10.0, 1.0
TIMES = np.array([0.05, 0.1, 0.2, 0.3, 0.5])
RATIOS = (200.0, 400.0, 800.0, 1600.0)


def _values(s: float) -> dict[str, float]:
    return {"k_on": s, "k_off": s / 2, "k_int": s / 2, "R_T": 20.0 / s}


def _pipeline(s: float) -> HierarchicalPipeline:
    return HierarchicalPipeline(
        Grid.box(LENGTH, N),
        cell_density=RHO,
        boundary={"x-": Dirichlet(C0)},
        values=_values(s),
        diffusivity=D,
        field="c",
    )


def _laplacian() -> tuple[sp.csr_matrix, np.ndarray]:
    h = LENGTH / N
    main = -2.0 * np.ones(N)
    main[0] = -3.0  # interior face (-1) plus the Dirichlet half cell (-2)
    main[-1] = -1.0  # no flux at x = 1
    A = sp.diags([np.ones(N - 1), main, np.ones(N - 1)], [-1, 0, 1]) * (D / h**2)
    b = np.zeros(N)
    b[0] = 2.0 * D / h**2 * C0
    return A.tocsr(), b


A, B = _laplacian()


def _full_rhs(s: float) -> tuple[Any, Any]:
    v = _values(s)
    kon, koff, kint, RT = v["k_on"], v["k_off"], v["k_int"], v["R_T"]

    def f(_t: float, y: np.ndarray) -> np.ndarray:
        c, C = y[:N], y[N:]
        bind = kon * c * (RT - C) - koff * C
        return np.concatenate([A @ c + B - RHO * bind, bind - kint * C])

    def jac(_t: float, y: np.ndarray) -> sp.csc_matrix:
        c, C = y[:N], y[N:]
        R = RT - C
        return sp.bmat(
            [
                [A + sp.diags(-RHO * kon * R), sp.diags(RHO * (kon * c + koff))],
                [sp.diags(kon * R), sp.diags(-(kon * c + koff + kint))],
            ]
        ).tocsc()

    return f, jac


def _full_transient(s: float) -> np.ndarray:
    f, jac = _full_rhs(s)
    sol = solve_ivp(f, (0.0, TIMES[-1]), np.zeros(2 * N), method="Radau", t_eval=TIMES, jac=jac,
                    rtol=1e-10, atol=1e-13)  # fmt: skip
    assert sol.success, sol.message
    return np.asarray(sol.y[:N].T)


def _full_steady(s: float) -> np.ndarray:
    """Newton on the full finite-volume system from a guess off the manifold."""
    f, jac = _full_rhs(s)
    x = np.linspace(0.0, LENGTH, N)
    y = np.concatenate([C0 * np.exp(-x / 0.1), np.zeros(N)])
    for _ in range(100):
        F = f(0.0, y)
        dy = spla.spsolve(jac(0.0, y), -F)
        lam = 1.0
        while np.linalg.norm(f(0.0, y + lam * dy)) > (1 - 1e-4 * lam) * np.linalg.norm(F):
            lam /= 2
            assert lam > 1e-8
        y = y + lam * dy
        if np.max(np.abs(dy)) < 1e-14 * (1 + np.max(np.abs(y))):
            break
    assert np.max(np.abs(f(0.0, y))) < 1e-9
    return y[:N]


def _reduced_transient() -> np.ndarray:
    def f(_t: float, c: np.ndarray) -> np.ndarray:
        return A @ c + B - RHO * V_MAX * c / (K_M + c)

    def jac(_t: float, c: np.ndarray) -> sp.csc_matrix:
        return (A + sp.diags(-RHO * V_MAX * K_M / (K_M + c) ** 2)).tocsc()

    sol = solve_ivp(f, (0.0, TIMES[-1]), np.zeros(N), method="Radau", t_eval=TIMES, jac=jac,
                    rtol=1e-10, atol=1e-13)  # fmt: skip
    return np.asarray(sol.y.T)


@pytest.fixture(scope="module")
def pipeline_transient() -> np.ndarray:
    # the reduced model is the same for every s: one transient serves the whole family
    pipe = _pipeline(RATIOS[0])
    res = pipe.transient(times=[0.0, *TIMES], method="crank-nicolson", dt=5e-4)
    return np.asarray(res.data["c"].values[1:])


def test_pipeline_law_is_the_fixed_michaelis_menten_law() -> None:
    for s in (20.0, 1600.0):
        law = _pipeline(s).uptake
        assert law.V_max == pytest.approx(V_MAX, rel=1e-12)
        assert law.K_m == pytest.approx(K_M, rel=1e-12)


def test_pipeline_time_stepping_error_is_negligible(pipeline_transient: np.ndarray) -> None:
    ref = _reduced_transient()
    err = float(np.max(np.abs(pipeline_transient - ref))) / C0
    print(f"\npipeline (Crank-Nicolson, dt=5e-4) vs reduced reference (Radau): {err:.2e}")
    assert err < 1e-5


def test_transient_error_shrinks_linearly_with_the_timescale_ratio(
    pipeline_transient: np.ndarray,
) -> None:
    rows = []
    for s in RATIOS:
        full = _full_transient(s)
        err = float(np.max(np.abs(full - pipeline_transient))) / C0
        ts = _pipeline(s).timescales
        eps = ts.t_molecular / ts.t_capture  # type: ignore[operator]
        assert eps == pytest.approx(20.0 / s, rel=1e-10)
        rows.append((s, eps, err))
    print("\n     s        eps   max error / c0   ratio")
    for i, (s, eps, err) in enumerate(rows):
        ratio = "" if i == 0 else f"{rows[i - 1][2] / err:.3f}"
        print(f"{s:6.0f} {eps:10.4g} {err:16.3e} {ratio:>7}")
    errors = [e for _, _, e in rows]
    assert errors[0] < 1e-2  # at the separation threshold
    for a, b in itertools.pairwise(errors):
        assert 1.8 < a / b < 2.2  # linear in eps


@pytest.mark.parametrize("s", [1.0, 20.0, 200.0, 1600.0])
def test_steady_gradients_agree_for_every_ratio(s: float) -> None:
    pipe = _pipeline(s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TimescaleWarning)  # s = 1, 20 are not separated
        c_pipe = pipe.gradient.values
    c_full = _full_steady(s)
    rel = float(np.max(np.abs(c_full - c_pipe) / c_full))
    print(f"\ns={s:g}: steady gradient, max relative difference {rel:.1e}")
    assert rel < 1e-10


def test_warning_when_not_separated_and_silence_when_separated() -> None:
    with pytest.warns(TimescaleWarning, match=r"threshold ratio 10\b.*t_capture = 0\.05.*1 x"):
        ts = _pipeline(20.0).timescales
    assert not ts.separated
    with warnings.catch_warnings():
        warnings.simplefilter("error", TimescaleWarning)
        for s in RATIOS:
            assert _pipeline(s).timescales.separated


def test_resolved_model_of_the_pipeline_matches_the_reference() -> None:
    s = 200.0
    pipe = _pipeline(s)
    model = pipe.resolved_model()
    # Li, read by no rate, is left out; R = R_T - C by the local conservation law
    assert model.species == ("c", "C")
    RT = 20.0 / s
    (R_expr,) = pipe.resolved_eliminated().values()
    assert evaluate(R_expr, {"C": 0.25 * RT}) == pytest.approx(0.75 * RT, rel=1e-14)
    init = pipe.resolved_initial(0.0)
    assert init == {"c": 0.0, "C": 0.0}
    ss = steady_state(model, initial=init)
    np.testing.assert_allclose(ss.values("c"), pipe.gradient.values, rtol=1e-10)
    # the receptors sit on their manifold at the steady state
    c = ss.values("c")
    np.testing.assert_allclose(ss.values("C"), RT * c / (K_M + c), rtol=1e-9)
    # transient: at s = 200 the fastest receptor rate, s (k_on c + 1) + rho k_on R_T <= 620,
    # gives dt*lambda <= 0.31 at dt = 5e-4, where Crank-Nicolson is accurate (second order)
    res = solve(model, "crank-nicolson", times=[0.0, *TIMES], dt=5e-4, initial=init)
    full = _full_transient(s)
    err = float(np.max(np.abs(res.data["c"].values[1:] - full))) / C0
    print(f"\nresolved model (Crank-Nicolson, dt=5e-4) vs reference: {err:.2e}")
    assert err < 1e-5
