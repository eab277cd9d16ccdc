"""Morphogen gradients: a source at x = 0 and uptake in the tissue, against exact solutions.

Linear uptake k: D c'' = k c on (0, L), c(0) = c0 (Dirichlet, the value on the boundary face),
c'(L) = 0 (no flux).  Exact: c(x) = c0 cosh((L - x)/lambda) / cosh(L/lambda), lambda = sqrt(D/k),
evaluated at the cell centres.  The finite-volume error is O(h^2), about 0.3 (h/lambda)^2
relative at the far end, so h = lambda/100 (n = 1000 cells, L/lambda = 10) gives about 3e-5;
the test asserts < 1e-4 relative at every cell centre.

Michaelis-Menten uptake: D c'' = V c / (K + c), same boundaries, no closed form: the reference is
scipy's solve_bvp with tol 1e-10 on a fine mesh (its collocation solution is accurate to about
that tolerance).  The finite-volume solution converges to it at second order; the Richardson
extrapolation (4 u_h/2 - u_h)/3 of two resolutions removes the h^2 term and must then agree with
the reference to better than 1e-8 relative (measured: about 1e-10, the reference's
tolerance).  Uptake is given both as a source expression and as a reaction network evaluated
cell by cell; both must give the same field.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_bvp

import scalebridge as sb
from scalebridge.space import Dirichlet, Grid, ReactionDiffusion, solve, steady_state

L, D, C0 = 1.0, 0.01, 1.0
K_LIN = 1.0  # lambda = 0.1
V_MM, K_MM = 0.5, 0.2

MM_NETWORK = """
model uptake
  compartment tissue = 1
  species c in tissue = 0
  J_uptake: c -> ; V * c / (K + c)
  V = 0.5
  K = 0.2
end
"""


def _model(n: int, rate: str | None, params: dict[str, float], network=None) -> ReactionDiffusion:  # type: ignore[no-untyped-def]
    return ReactionDiffusion(
        Grid.box(L, n),
        {"c": D},
        reactions={"c": rate} if rate else {},
        network=network,
        parameters=params,
        boundary={"x-": Dirichlet(C0)},
    )


def test_linear_uptake_matches_cosh_profile() -> None:
    n = 1000
    model = _model(n, "-k*c", {"k": K_LIN})
    ss = steady_state(model)
    x = model.grid.coordinate(0)
    lam = np.sqrt(D / K_LIN)
    exact = C0 * np.cosh((L - x) / lam) / np.cosh(L / lam)
    rel = np.max(np.abs(ss.values("c") - exact) / exact)
    print(f"\nlinear uptake, n={n}: max relative error {rel:.2e}")
    assert rel < 1e-4
    # a coarser grid is worse by the factor 4 of a second-order scheme
    coarse = steady_state(_model(n // 2, "-k*c", {"k": K_LIN}))
    xc = Grid.box(L, n // 2).coordinate(0)
    exact_c = C0 * np.cosh((L - xc) / lam) / np.cosh(L / lam)
    rel_c = np.max(np.abs(coarse.values("c") - exact_c) / exact_c)
    assert 3.6 < rel_c / rel < 4.4


def test_linear_uptake_transient_reaches_the_gradient() -> None:
    model = _model(200, "-k*c", {"k": K_LIN})
    res = solve(model, "crank-nicolson", t_end=20.0, n_points=3, dt=0.05)
    ss = steady_state(model)
    final = res.data["c"].isel(time=-1).values
    # approach to steady state is exp(-k t) at least: e^-20 ~ 2e-9
    assert np.max(np.abs(final - ss.values("c"))) < 1e-7


def _bvp_reference() -> object:
    def f(x, y):  # type: ignore[no-untyped-def]
        return np.vstack([y[1], V_MM * y[0] / (K_MM + y[0]) / D])

    def bc(ya, yb):  # type: ignore[no-untyped-def]
        return np.array([ya[0] - C0, yb[1]])

    xs = np.linspace(0, L, 2001)
    guess = np.vstack([np.exp(-xs / 0.1), -np.exp(-xs / 0.1) / 0.1])
    sol = solve_bvp(f, bc, xs, guess, tol=1e-10, max_nodes=200_000)
    assert sol.success, sol.message
    return sol


@pytest.mark.parametrize("kind", ["expression", "network"])
def test_michaelis_menten_matches_solve_bvp(kind: str) -> None:
    sol = _bvp_reference()
    fields = []
    for n in (1600, 3200):
        if kind == "expression":
            model = _model(n, "-V*c/(K + c)", {"V": V_MM, "K": K_MM})
        else:
            model = _model(n, None, {}, network=sb.from_antimony(MM_NETWORK))
        ss = steady_state(model)
        fields.append((Grid.box(L, n).coordinate(0), ss.values("c")))
    (xc, uc), (xf, uf) = fields
    ref_f = sol.sol(xf)[0]  # type: ignore[attr-defined]
    err_f = np.max(np.abs(uf - ref_f) / ref_f)
    ref_c = sol.sol(xc)[0]  # type: ignore[attr-defined]
    err_c = np.max(np.abs(uc - ref_c) / ref_c)
    # Richardson: the coarse cell centres are the means of fine pairs' centres; average the
    # fine solution over each pair (O(h^2) consistent) before extrapolating
    uf_pairs = 0.5 * (uf[0::2] + uf[1::2])
    ref_pairs = 0.5 * (ref_f[0::2] + ref_f[1::2])
    rich = (4.0 * (uf_pairs - ref_pairs + ref_c) - uc) / 3.0
    err_rich = np.max(np.abs(rich - ref_c) / ref_c)
    print(f"\nMichaelis-Menten ({kind}): rel. error n=1600 {err_c:.2e}, n=3200 {err_f:.2e}, "
          f"Richardson {err_rich:.2e}")  # fmt: skip
    assert err_f < 2e-5
    assert 3.6 < err_c / err_f < 4.4
    assert err_rich < 1e-8


def test_network_and_expression_uptake_agree() -> None:
    n = 300
    a = steady_state(_model(n, "-V*c/(K + c)", {"V": V_MM, "K": K_MM})).values("c")
    b = steady_state(_model(n, None, {}, network=sb.from_antimony(MM_NETWORK))).values("c")
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)
