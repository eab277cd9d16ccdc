"""Reaction-diffusion solvers: the compiled finite-volume operator against a plain NumPy
reference and its assembled matrix, conservation, the exact layered-medium flux, reaction terms
and their Jacobians, mass balance of every scheme step by step, the explicit stability limit,
and labelled results.

Mass balance: for a one-step scheme the change of the total amount M = V sum_P c_P over a step
equals what the scheme integrates of the sources and sinks (backward Euler dt sum R(u1),
Crank-Nicolson dt/2 (sum R(u0) + sum R(u1)), forward Euler dt sum R(u0)) plus the boundary
influx.  The reaction terms are recomputed here from the output fields with their formulas, not
taken from the solver; the only errors are round-off and the Newton tolerance (1e-12), so the
balance must hold to 1e-10 relative to the gross source or sink of the step.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import scalebridge as sb
from scalebridge.errors import ModelError, OptionError, SolverError
from scalebridge.results import Result
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
    discretize,
    explicit_limit,
    solve,
    steady_state,
    step_states,
)
from scalebridge.space.stencils import _apply_general, apply_reference

RNG = np.random.default_rng(7)


def _mixed_model(d: int, masked: bool) -> ReactionDiffusion:
    shape = {1: (9,), 2: (7, 6), 3: (5, 4, 6)}[d]
    grid = Grid.box(tuple(1.0 + 0.3 * k for k in range(d)), shape)
    if masked:
        c = grid.centres()
        grid = grid.with_mask(sum((x - 0.5) ** 2 for x in c) < 0.5)
    D = 0.2 + RNG.random(shape)
    bc: dict[str, object] = {"x-": Dirichlet(1.5), "x+": Robin(1.0, 0.4, 0.3)}
    if d >= 2:
        bc["y-"] = Flux(RNG.random(shape[:1] + shape[2:]))
        bc["y+"] = Neumann(-0.2)
    if d >= 3:
        bc["z"] = Periodic()
    return ReactionDiffusion(grid, {"a": D, "b": 0.7}, boundary={"a": bc, "b": {"x": Periodic()}})


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("masked", [False, True])
def test_operator_matches_reference_and_matrix(d: int, masked: bool) -> None:
    disc = discretize(_mixed_model(d, masked))
    op = disc.op
    u = RNG.random(disc.shape4)
    u.reshape(op.n_species, -1)[:, ~op.active] = 0.0
    out = np.zeros_like(u)
    op.apply(u, out, np.zeros(op.n_species))
    ref = apply_reference(op, u)
    np.testing.assert_allclose(out, ref, rtol=1e-13, atol=1e-12)
    mat = (op.matrix() @ u.reshape(-1) + op.constant()).reshape(u.shape)
    np.testing.assert_allclose(out, mat, rtol=1e-13, atol=1e-12)
    # alpha/beta form and the general kernel on the same data
    out2 = np.zeros_like(u)
    a = np.array([-0.3, 0.2])
    _apply_general(u, op.F0, op.F1, op.F2, op.periodic, a, 2.0, 0.5, out2)
    lin = np.zeros_like(u)
    op.apply(u, lin, np.zeros(op.n_species), boundary=False)
    # general kernel has no boundary part: compare with the boundary-free operator
    expect = 2.0 * u + 0.5 * (lin - _boundary_linear(op, u) + a[:, None, None, None] * u)
    np.testing.assert_allclose(out2, expect, rtol=1e-12, atol=1e-12)


def _boundary_linear(op, u):  # type: ignore[no-untyped-def]
    out = np.zeros_like(u)
    flat = out.reshape(op.n_species, -1)
    uf = u.reshape(op.n_species, -1)
    np.add.at(flat, (op.b_species, op.b_index), -op.b_q * uf[op.b_species, op.b_index])
    return out


def test_uniform_kernel_equals_general_kernel() -> None:
    grid = Grid.box((1.0, 2.0, 1.5), (6, 5, 7))
    model = ReactionDiffusion(grid, {"u": 0.3, "v": 1.1},
                              boundary={"u": {"y": Periodic()}, "z+": Dirichlet(0.5)})  # fmt: skip
    disc = discretize(model)
    op = disc.op
    assert op.uniform
    u = RNG.random(disc.shape4)
    a = np.array([-0.5, 0.0])
    uni = np.zeros_like(u)
    op.apply(u, uni, a, 1.0, 0.01)
    gen = np.zeros_like(u)
    _apply_general(u, op.F0, op.F1, op.F2, op.periodic, a, 1.0, 0.01, gen)
    flat = gen.reshape(2, -1)
    np.add.at(flat, (op.b_species, op.b_index),
              0.01 * (op.b_p - op.b_q * u.reshape(2, -1)[op.b_species, op.b_index]))  # fmt: skip
    np.testing.assert_allclose(uni, gen, rtol=1e-13, atol=1e-14)


def test_zero_flux_operator_conserves_and_is_symmetric() -> None:
    grid = Grid.box((1.0, 1.0), (12, 9), mask=lambda x, y: (x - 0.5) ** 2 + (y - 0.5) ** 2 < 0.2)
    D = 0.1 + RNG.random(grid.shape)
    disc = discretize(ReactionDiffusion(grid, {"u": D}, boundary={"x": Periodic()}))
    A = disc.op.matrix()
    assert abs(A - A.T).max() < 1e-14
    # column sums vanish: no mass is created by diffusion
    assert np.max(np.abs(np.asarray(A.sum(axis=0)))) < 1e-12 * abs(A).max()


def test_layered_medium_is_exact() -> None:
    # two layers in series, interface on a cell face: the steady profile is piecewise linear
    # with flux J = (c_left - c_right) / (L1/D1 + L2/D2); finite volumes with harmonic face
    # means reproduce it exactly.
    n, L = 40, 1.0
    D = np.where(np.arange(n) < 15, 0.3, 2.0)
    grid = Grid.box(L, n)
    model = ReactionDiffusion(grid, {"c": D}, boundary={"x-": Dirichlet(1.0), "x+": Dirichlet(0.2)})
    c = steady_state(model).values("c")
    x = grid.coordinate(0)
    L1 = 15 * L / n
    J = (1.0 - 0.2) / (L1 / 0.3 + (L - L1) / 2.0)
    exact = np.where(x < L1, 1.0 - J * x / 0.3, 1.0 - J * L1 / 0.3 - J * (x - L1) / 2.0)
    np.testing.assert_allclose(c, exact, rtol=0, atol=1e-13)


# ---------------------------------------------------------------------------------------------
# Reaction terms


def test_linear_terms_are_sorted_out_of_the_interpreter() -> None:
    grid = Grid.box(1.0, 10)
    model = ReactionDiffusion(
        grid, {"a": 1.0, "b": 1.0},
        reactions={"a": "-k*a + 2*b + s", "b": "x*a - b"},
        parameters={"k": 3.0, "s": 0.5},
    )  # fmt: skip
    R = discretize(model).reactions
    assert R.program is None
    np.testing.assert_array_equal(R.a_diag, [-3.0, -1.0])
    u = RNG.random((2, 10))
    x = grid.coordinate(0)
    np.testing.assert_allclose(R.rates(u), [-3 * u[0] + 2 * u[1] + 0.5, x * u[0] - u[1]],
                               rtol=1e-14)  # fmt: skip


def test_nonlinear_jacobian_matches_finite_differences() -> None:
    grid = Grid.box((1.0, 1.0), (4, 3))
    net = sb.from_antimony("""
        model m
          compartment c = 2
          species A in c = 1, B in c = 0.5
          J1: A + B -> 2 B; k1*A*B
          J2: B -> ; V*B/(K + B)
          k1 = 1.3; V = 0.8; K = 0.3
        end""")
    model = ReactionDiffusion(grid, {"A": 1.0, "u": 0.5}, network=net,
                              reactions={"u": "-u^2*A + sin(x)*B"})  # fmt: skip
    R = discretize(model).reactions
    ns, N = 3, grid.size
    u = 0.2 + RNG.random((ns, N))
    J = R.nonlinear_jacobian(u).toarray()

    def N_(v: np.ndarray) -> np.ndarray:
        out = np.zeros((ns, N))
        R.add_nonlinear(v.reshape(ns, N), 0.0, out)
        return out.reshape(-1)

    eps = 1e-7
    fd = np.zeros_like(J)
    for i in range(ns * N):
        e = np.zeros(ns * N)
        e[i] = eps
        fd[:, i] = (N_(u.reshape(-1) + e) - N_(u.reshape(-1) - e)) / (2 * eps)
    np.testing.assert_allclose(J, fd, rtol=1e-6, atol=1e-8)
    # SBML kinetic laws are amounts per time: d[A]/dt = -k1 [A][B] / size (size 2)
    out = np.zeros((ns, N))
    R.add_nonlinear(u, 0.0, out)
    A, _, B = u
    np.testing.assert_allclose(out[0], -1.3 * A * B / 2.0, rtol=1e-14)
    np.testing.assert_allclose(out[2], (1.3 * A * B - 0.8 * B / (0.3 + B)) / 2.0, rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# Mass balance

MM_NET = """
model uptake
  compartment tissue = 1
  species c in tissue = 0
  J: c -> ; V*c/(K + c)
  V = 2; K = 0.3
end
"""


def _balance_model(flux: bool) -> ReactionDiffusion:
    grid = Grid.box((1.0, 0.8), (24, 20))
    if not flux:
        grid = grid.with_mask(lambda x, y: (x - 0.5) ** 2 / 0.2 + (y - 0.4) ** 2 / 0.12 < 1)
    x, y = grid.centres()
    D = 0.05 + 0.04 * np.sin(3 * x) * np.cos(2 * y)
    bc = {"x-": Flux(0.3), "y+": Flux(-0.1)} if flux else {}
    return ReactionDiffusion(
        grid, {"c": D},
        reactions={"c": "s0*exp(-((x - 0.5)^2 + (y - 0.4)^2)/0.02)"},
        network=sb.from_antimony(MM_NET), parameters={"s0": 3.0}, boundary=bc,
    )  # fmt: skip


def _source_and_sink(grid: Grid, c: np.ndarray) -> tuple[float, float]:
    x, y = grid.centres()
    s = 3.0 * np.exp(-((x - 0.5) ** 2 + (y - 0.4) ** 2) / 0.02)
    u = 2.0 * c / (0.3 + c)
    return grid.integrate(s), grid.integrate(u)


@pytest.mark.parametrize("scheme", ["backward-euler", "crank-nicolson", "explicit"])
@pytest.mark.parametrize("flux", [False, True])
def test_mass_balance_every_step(scheme: str, flux: bool) -> None:
    model = _balance_model(flux)
    grid = model.grid
    dt = 0.02 if scheme != "explicit" else 0.9 * explicit_limit(
        discretize(model), discretize(model).zeros())["total"]  # fmt: skip
    c0 = 0.5 + 0.5 * np.cos(3 * grid.centres()[0])
    states = step_states(model, scheme, c0[None], dt=dt, n_steps=8)
    inflow = (0.3 * 0.8 - 0.1 * 1.0) if flux else 0.0  # influx x length of the side
    for k in range(1, len(states)):
        c_old, c_new = states[k - 1][0], states[k][0]
        dM = grid.integrate(c_new) - grid.integrate(c_old)
        s0, u0 = _source_and_sink(grid, c_old)
        s1, u1 = _source_and_sink(grid, c_new)
        if scheme == "backward-euler":
            src, sink = dt * s1, dt * u1
        elif scheme == "crank-nicolson":
            src, sink = dt * (s0 + s1) / 2, dt * (u0 + u1) / 2
        else:
            src, sink = dt * s0, dt * u0
        src += dt * max(inflow, 0.0)
        sink += dt * max(-inflow, 0.0)
        assert abs(dM - (src - sink)) <= 1e-10 * max(src, sink), (k, dM, src - sink)


@pytest.mark.parametrize(
    "method",
    [
        ExplicitEuler(dt=0.002),
        BackwardEuler(dt=0.05),
        CrankNicolson(dt=0.05),
        IMEX(dt=0.05),
        IMEX(dt=0.05, scheme="sbdf2"),
        IMEX(dt=0.05, scheme="linearized"),
        ADI(dt=0.05),
    ],
    ids=lambda m: f"{m.name}-{getattr(m, 'scheme', '')}",
)
def test_no_mass_created_with_zero_flux(method) -> None:  # type: ignore[no-untyped-def]
    grid = Grid.box((1.0, 1.0, 0.5), (10, 8, 6))
    D = 0.1 + 0.05 * RNG.random(grid.shape)
    model = ReactionDiffusion(grid, {"u": D, "v": 0.2}, boundary={"v": {"z": Periodic()}})
    u0 = RNG.random((2, *grid.shape))
    states = step_states(model, method, u0, dt=method.dt, n_steps=6)
    for s in range(2):
        M0 = grid.integrate(states[0][s])
        for st in states[1:]:
            assert abs(grid.integrate(st[s]) - M0) <= 1e-13 * M0


# ---------------------------------------------------------------------------------------------
# Explicit stability


def test_explicit_refuses_unstable_dt_and_names_the_limit() -> None:
    D, h = 0.5, 0.05
    grid = Grid.box((1.0, 1.0), (20, 20))
    model = ReactionDiffusion(grid, {"u": D})
    limit = h**2 / (2 * 2 * D)  # h^2 / (2 d D_max) = 0.00125
    with pytest.raises(OptionError) as info:
        solve(model, "explicit", t_end=0.1, dt=0.01, initial={"u": 1.0})
    msg = str(info.value)
    assert "dt=0.01 exceeds the explicit diffusion limit h²/(2·d·D_max)=0.00125" in msg
    assert abs(explicit_limit(discretize(model), discretize(model).zeros())["diffusion"]
               - limit) < 1e-15  # fmt: skip
    # just inside the limit it runs, and stays bounded
    res = solve(model, "explicit", t_end=0.05, dt=limit, initial={"u": "x*y"})
    assert np.all(np.isfinite(res.data["u"].values))
    # a stiff reaction adds its own limit
    stiff = ReactionDiffusion(grid, {"u": D}, reactions={"u": "-k*u"}, parameters={"k": 1e4})
    with pytest.raises(OptionError, match=r"stability limit .* with the reaction terms"):
        solve(stiff, "explicit", t_end=0.01, dt=0.001, initial={"u": 1.0})


def test_explicit_default_step_is_stable_and_accurate() -> None:
    grid = Grid.box(1.0, 50)
    model = ReactionDiffusion(grid, {"u": 0.1})
    res = solve(model, "explicit", t_end=0.5, n_points=2, initial={"u": "cos(pi*x)"})
    assert res.stats["dt"] <= 0.9 * res.stats["dt_limit"] * (1 + 1e-12)
    h = grid.spacing[0]
    lam = 0.1 * 4 / h**2 * np.sin(np.pi * h / 2) ** 2
    exact = np.cos(np.pi * grid.coordinate(0)) * np.exp(-lam * 0.5)
    assert np.max(np.abs(res.data["u"].values[-1] - exact)) < 1e-3


# ---------------------------------------------------------------------------------------------
# Results, steady states, errors


def test_result_dataset_and_netcdf_roundtrip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    grid = Grid.box((2.0, 1.0), (8, 5), mask=lambda x, y: x < 1.5)
    model = ReactionDiffusion(grid, {"u": 0.1, "w": 0.0}, reactions={"w": "u - w"})
    res = solve(model, "crank-nicolson", t_end=1.0, n_points=5, dt=0.1,
                initial={"u": "1 + x", "w": 0.0})  # fmt: skip
    assert isinstance(res, Result)
    da = res.data["u"]
    assert da.dims == ("time", "x", "y")
    assert da.shape == (5, 8, 5)
    np.testing.assert_allclose(res.data["x"].values, grid.coordinate(0))
    assert np.all(np.isnan(da.values[:, ~grid.mask]))
    assert np.all(np.isfinite(da.values[:, grid.mask]))
    assert res.stats["method"] == "crank-nicolson" and res.stats["order"] == 2
    path = tmp_path / "fields.nc"
    res.to_netcdf(path)
    back = Result.from_netcdf(path)
    xr.testing.assert_allclose(back.data["u"], res.data["u"])
    assert back.stats["steps"] == res.stats["steps"]
    two_sided = {"x-": Dirichlet(2.0), "x+": Dirichlet(2.0)}
    ss = steady_state(ReactionDiffusion(Grid.box(1.0, 5), {"u": 1.0}, boundary=two_sided))
    np.testing.assert_allclose(ss.values("u"), 2.0, rtol=1e-14)
    ss.to_netcdf(tmp_path / "steady.nc")
    assert xr.load_dataset(tmp_path / "steady.nc", engine="h5netcdf")["u"].shape == (5,)


def test_steady_state_refuses_singular_problem() -> None:
    model = ReactionDiffusion(Grid.box(1.0, 10), {"u": 1.0})
    with pytest.raises(SolverError, match="no unique steady state"):
        steady_state(model)


def test_solve_option_errors() -> None:
    model = ReactionDiffusion(Grid.box(1.0, 10), {"u": 1.0})
    with pytest.raises(OptionError, match="unknown reaction-diffusion method"):
        solve(model, "leapfrog", t_end=1.0, dt=0.1)
    with pytest.raises(OptionError, match="give dt"):
        solve(model, "crank-nicolson", t_end=1.0)
    with pytest.raises(OptionError, match="scheme must be one of"):
        IMEX(dt=0.1, scheme="rk4")
    with pytest.raises(OptionError, match="strictly increasing"):
        solve(model, "adi", times=[0.0, 1.0, 0.5], dt=0.1)
    with pytest.raises(ModelError, match="unknown species 'v'"):
        solve(model, "adi", t_end=1.0, dt=0.1, initial={"v": 1.0})


def test_iterative_linear_solver_matches_direct() -> None:
    grid = Grid.box((1.0, 1.0), (16, 16))
    model = ReactionDiffusion(grid, {"u": 0.2}, reactions={"u": "-u/(1 + u)"},
                              boundary={"x-": Dirichlet(1.0)})  # fmt: skip
    a = solve(model, CrankNicolson(dt=0.05), t_end=0.5, n_points=2)
    b = solve(model, CrankNicolson(dt=0.05, linear_solver="bicgstab", rtol=1e-12),
              t_end=0.5, n_points=2)  # fmt: skip
    np.testing.assert_allclose(b.data["u"].values, a.data["u"].values, rtol=1e-9, atol=1e-11)


def test_field_parameters_reach_network_and_expressions() -> None:
    # uptake capacity V(x) varying in space, given to a network parameter and to an expression
    grid = Grid.box(1.0, 60)
    V = 0.5 + grid.coordinate(0)
    bc = {"x-": Dirichlet(1.0)}
    net = sb.from_antimony(MM_NET)
    a = steady_state(ReactionDiffusion(grid, {"c": 0.05}, network=net, parameters={"V": V},
                                       boundary=bc))  # fmt: skip
    b = steady_state(ReactionDiffusion(grid, {"c": 0.05}, reactions={"c": "-V*c/(K + c)"},
                                       parameters={"V": V, "K": 0.3}, boundary=bc))  # fmt: skip
    np.testing.assert_allclose(a.values("c"), b.values("c"), rtol=1e-12)
    # and it matters: a uniform V gives a different field
    c = steady_state(ReactionDiffusion(grid, {"c": 0.05}, network=net, boundary=bc))
    assert np.max(np.abs(c.values("c") - a.values("c"))) > 1e-3


def test_progress_bar_on_long_runs(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from scalebridge.space import stepping

    monkeypatch.setattr(stepping, "SHOW_AFTER_S", 0.0)
    model = ReactionDiffusion(Grid.box(1.0, 20), {"u": 0.1})
    solve(model, "backward-euler", t_end=1.0, dt=0.01, initial={"u": 1.0}, progress=True)
    assert "steps" in capsys.readouterr().err
    solve(model, "backward-euler", t_end=1.0, dt=0.01, initial={"u": 1.0}, progress=False)
    assert capsys.readouterr().err == ""


def test_adi_with_periodic_and_mixed_boundaries_converges_to_crank_nicolson() -> None:
    # both are second order in time on the same spatial operator: their difference (the ADI
    # splitting error) falls by 4 when dt halves
    grid = Grid.box((1.0, 1.0), (32, 24))
    D = 0.05 + 0.04 * np.random.default_rng(1).random(grid.shape)
    bc = {"x": Periodic(), "y-": Dirichlet(1.0), "y+": Robin(1.0, 0.2, 0.3)}
    model = ReactionDiffusion(grid, {"u": D}, reactions={"u": "-0.5*u"}, boundary=bc)
    x, y = grid.centres()
    init = {"u": np.sin(2 * np.pi * x) ** 2 + y}
    ref = solve(model, "crank-nicolson", t_end=1.0, n_points=2, dt=0.001, initial=init)
    diffs = []
    for dt in (0.008, 0.004):
        r = solve(model, "adi", t_end=1.0, n_points=2, dt=dt, initial=init)
        diffs.append(float(np.max(np.abs(r.data["u"].values[-1] - ref.data["u"].values[-1]))))
    assert diffs[1] < 1e-5
    assert 3.0 < diffs[0] / diffs[1] < 5.0
