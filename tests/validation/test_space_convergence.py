"""Convergence of the finite-volume reaction-diffusion solvers against exact solutions.

Spatial order
    A manufactured steady solution u* of  div(D grad u) - k u + f = 0  on [0, 1]^d with a
    smooth, spatially varying diffusivity D and every kind of boundary condition: x- Dirichlet,
    x+ Neumann (gradient), y- Robin, y+ flux, z periodic.  f = k u* - div(D grad u*) is derived
    with sympy and handed to the model as text.  The error max |u_h - u*| at the cell centres
    must fall as h^p with p fitted over three or more resolutions in [1.9, 2.1] (second-order
    scheme: truncation O(h^2) in the interior, an O(1) truncation error confined to the cells
    next to a Dirichlet face, whose effect on the solution is O(h^2)).

Temporal order
    The semi-discrete system of du/dt = D lap u - k(t) u with zero-flux boundaries has the exact
    solution u_ij(t) = exp(-K(t)) + cos(pi x_i) cos(pi y_j) exp(-lambda_h t - K(t)), because
    cos(pi x_i) is an eigenvector of the cell-centred Neumann stencil with eigenvalue
    -(4/h^2) sin^2(pi h/2); K(t) = int_0^t k.  With k(t) = k0 (1 + sin t / 2) the reaction is
    time-dependent and runs through the compiled cell-by-cell path (the nonlinear part N of
    the IMEX schemes); with constant k it is linear and implicit.  The error of the fully
    discrete solution against this exact solution is then purely the time-stepping error, and
    its log-log slope over dt must match each scheme's declared order to within 0.15.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy

from scalebridge.space import (
    ADI,
    IMEX,
    BackwardEuler,
    CrankNicolson,
    Dirichlet,
    ExplicitEuler,
    Flux,
    Grid,
    Neumann,
    Periodic,
    ReactionDiffusion,
    Robin,
    steady_state,
    step_states,
)

X, Y, Z = sympy.symbols("x y z")
K_DECAY = 1.5
ROBIN_A, ROBIN_B = 2.0, 0.5


def _manufactured(d: int) -> tuple[sympy.Expr, sympy.Expr]:
    u = 2 + sympy.cos(1.3 * X)
    D = 1 + sympy.Rational(3, 10) * sympy.sin(sympy.pi * X + sympy.Rational(1, 2))
    if d >= 2:
        u = u * (sympy.Rational(3, 2) + sympy.Rational(1, 2) * sympy.sin(1.1 * Y + 0.3))
        D = D + sympy.Rational(1, 5) * Y**2
    if d >= 3:
        u = u * (2 + sympy.Rational(1, 2) * sympy.cos(2 * sympy.pi * Z))
        D = D + sympy.Rational(1, 10) * sympy.cos(2 * sympy.pi * Z)
    return u, D


def _steady_error(d: int, n: int) -> float:
    u, D = _manufactured(d)
    syms = (X, Y, Z)[:d]
    div = sum(sympy.diff(D * sympy.diff(u, s), s) for s in syms)
    f = K_DECAY * u - div
    grid = Grid.box((1.0,) * d, (n,) * d)
    fn = {name: sympy.lambdify(syms, e, "numpy") for name, e in
          (("u", u), ("D", D), ("ux", sympy.diff(u, X)), ("uy", sympy.diff(u, Y)))}  # fmt: skip

    def on_side(name: str, axis: int, value: float) -> np.ndarray | float:
        # values at the face centres of one side: its axis fixed, the others at cell centres
        coords = [grid.coordinate(k) for k in range(d)]
        coords[axis] = np.array([value])
        mesh = np.meshgrid(*coords, indexing="ij")
        out = np.broadcast_to(fn[name](*mesh), mesh[0].shape)
        return out.squeeze(axis=axis) if d > 1 else float(out.reshape(-1)[0])

    bc: dict[str, object] = {
        "x-": Dirichlet(on_side("u", 0, 0.0)),
        "x+": Neumann(on_side("ux", 0, 1.0)),
    }
    if d >= 2:
        u_lo = np.asarray(on_side("u", 1, 0.0))
        uy_lo = np.asarray(on_side("uy", 1, 0.0))
        # outward normal at y- is -y: a u + b du/dn = a u - b du/dy
        bc["y-"] = Robin(ROBIN_A, ROBIN_B, ROBIN_A * u_lo - ROBIN_B * uy_lo)
        bc["y+"] = Flux(np.asarray(on_side("D", 1, 1.0)) * np.asarray(on_side("uy", 1, 1.0)))
    if d >= 3:
        bc["z"] = Periodic()
    model = ReactionDiffusion(
        grid,
        {"u": sympy.sstr(D)},
        reactions={"u": f"-k*u + {sympy.sstr(f)}"},
        parameters={"k": K_DECAY},
        boundary=bc,
    )
    ss = steady_state(model, tol=1e-12)
    exact = fn["u"](*grid.centres())
    return float(np.max(np.abs(ss.values("u") - exact)))


def _slope(hs: list[float], errs: list[float]) -> float:
    return float(np.polyfit(np.log(hs), np.log(errs), 1)[0])


@pytest.mark.parametrize(
    ("d", "ns"), [(1, [80, 160, 320, 640]), (2, [24, 48, 96]), (3, [8, 16, 32])]
)
def test_spatial_order_two(d: int, ns: list[int]) -> None:
    errs = [_steady_error(d, n) for n in ns]
    p = _slope([1.0 / n for n in ns], errs)
    print(f"\n{d}-D steady manufactured solution: n={ns} errors={[f'{e:.3e}' for e in errs]} "
          f"order={p:.3f}")  # fmt: skip
    assert 1.9 <= p <= 2.1, (errs, p)


# ---------------------------------------------------------------------------------------------
# Temporal order

D_T, K0, N_T, T_END = 0.005, 1.5, 16, 1.0
DTS = [T_END / 16, T_END / 32, T_END / 64, T_END / 128]

SCHEMES = [
    # (label, method factory, time-dependent decay, declared order)
    ("explicit (forward Euler)", lambda dt: ExplicitEuler(dt=dt), True, 1),
    ("backward-euler, Newton", lambda dt: BackwardEuler(dt=dt), True, 1),
    ("backward-euler, linear", lambda dt: BackwardEuler(dt=dt), False, 1),
    ("crank-nicolson, Newton", lambda dt: CrankNicolson(dt=dt), True, 2),
    ("crank-nicolson, linear", lambda dt: CrankNicolson(dt=dt), False, 2),
    ("imex euler", lambda dt: IMEX(dt=dt, scheme="euler"), True, 1),
    ("imex sbdf2", lambda dt: IMEX(dt=dt, scheme="sbdf2"), True, 2),
    ("imex linearized", lambda dt: IMEX(dt=dt, scheme="linearized"), True, 1),
    ("adi (Douglas), linear decay", lambda dt: ADI(dt=dt), False, 2),
    ("adi (Douglas), explicit reaction", lambda dt: ADI(dt=dt), True, 1),
]


def _temporal_model(time_dependent: bool) -> ReactionDiffusion:
    grid = Grid.box((1.0, 1.0), (N_T, N_T))
    rate = "-k*(1 + sin(t)/2)*u" if time_dependent else "-k*u"
    return ReactionDiffusion(grid, {"u": D_T}, reactions={"u": rate}, parameters={"k": K0})


def _temporal_exact(grid: Grid, t: float, time_dependent: bool) -> np.ndarray:
    x, y = grid.centres()
    h = grid.spacing[0]
    lam = 2 * D_T * (4 / h**2) * np.sin(np.pi * h / 2) ** 2
    K = K0 * (t + (1 - np.cos(t)) / 2) if time_dependent else K0 * t
    return np.exp(-K) * (1 + np.cos(np.pi * x) * np.cos(np.pi * y) * np.exp(-lam * t))


def _temporal_errors(factory, time_dependent: bool) -> list[float]:  # type: ignore[no-untyped-def]
    model = _temporal_model(time_dependent)
    u0 = _temporal_exact(model.grid, 0.0, time_dependent)[None]
    exact = _temporal_exact(model.grid, T_END, time_dependent)
    errs = []
    for dt in DTS:
        states = step_states(model, factory(dt), u0, dt=dt, n_steps=round(T_END / dt))
        errs.append(float(np.max(np.abs(states[-1][0] - exact))))
    return errs


def test_temporal_orders_match_declared() -> None:
    rows = []
    failures = []
    for label, factory, td, declared in SCHEMES:
        errs = _temporal_errors(factory, td)
        p = _slope(DTS, errs)
        rows.append((label, declared, p, errs[-1]))
        if abs(p - declared) > 0.15:
            failures.append((label, declared, p, errs))
    print("\n| scheme | declared order | measured order | error at dt=1/128 |")
    print("|---|---|---|---|")
    for label, declared, p, e in rows:
        print(f"| {label} | {declared} | {p:.2f} | {e:.2e} |")
    assert not failures, failures
