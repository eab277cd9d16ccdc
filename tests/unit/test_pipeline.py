"""The hierarchical pipeline (scalebridge.couple.pipeline), against mathematics.

The receptor model (``data/receptor_uptake.ant``: L + R <-> C, C -> R + Li, R + C = R_T) with
ligand held at c has the quasi-steady states C* = R_T c/(K_m + c), R* = R_T K_m/(K_m + c) and
the uptake u(c) = k_int C* = V_max c/(K_m + c), V_max = k_int R_T, K_m = (k_off + k_int)/k_on;
the fast block of its Jacobian at fixed c has the eigenvalues 0 (R + C conserved) and
-(k_on c + k_off + k_int).  Every expected number below is computed from these formulas, not
from the code.  The constants are those of ``data/morphogen.yaml`` (µm, min, nM): K_m = 30 nM,
V_max = 200 per min and cell.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy.integrate import solve_bvp

import scalebridge as sb
from scalebridge.couple import HierarchicalPipeline, TimescaleWarning, UptakeLaw
from scalebridge.errors import ModelError, OptionError, UnsupportedFeatureError
from scalebridge.model.expr import evaluate
from scalebridge.space import Dirichlet, Grid, steady_state
from scalebridge.space.homogenize import hashin_shtrikman_bounds, homogenize, inclusion_array

VALUES = {"k_on": 0.01, "k_off": 0.1, "k_int": 0.2, "R_T": 1000.0}
K_M = (VALUES["k_off"] + VALUES["k_int"]) / VALUES["k_on"]  # 30
V_MAX = VALUES["k_int"] * VALUES["R_T"]  # 200
RHO = 0.0016605
C0 = 60.0
LENGTH = 300.0
D = 20.0


def _pipe(n: int = 150, **kw: object) -> HierarchicalPipeline:
    args: dict[str, object] = {
        "cell_density": RHO,
        "boundary": {"x-": Dirichlet(C0)},
        "values": VALUES,
        "diffusivity": D,
    }
    args.update(kw)
    return HierarchicalPipeline(Grid.box(LENGTH, n), **args)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def base() -> HierarchicalPipeline:
    return _pipe().run()


# --------------------------------------------------------------------------- molecular, uptake
def test_qssa_uptake_law_is_the_analytic_michaelis_menten_law(base: HierarchicalPipeline) -> None:
    law = base.uptake
    assert law.origin == "qssa"
    assert law.V_max == pytest.approx(V_MAX, rel=1e-12)
    assert law.K_m == pytest.approx(K_M, rel=1e-12)
    assert law.V_max_expression.replace(" ", "") in ("R_T*k_int", "k_int*R_T")
    c = np.array([0.0, 1.0, 30.0, 100.0, 1e4])
    np.testing.assert_allclose(law(c), V_MAX * c / (K_M + c), rtol=1e-13, atol=0)
    np.testing.assert_allclose(law.slope(c), V_MAX * K_M / (K_M + c) ** 2, rtol=1e-12)
    mol = base.molecular
    assert mol is not None
    states = mol.receptor_states(c)
    RT = VALUES["R_T"]
    np.testing.assert_allclose(states["C"], RT * c / (K_M + c), rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(states["R"], RT * K_M / (K_M + c), rtol=1e-13)


def test_timescales_are_the_analytic_ones(base: HierarchicalPipeline) -> None:
    mol = base.molecular
    assert mol is not None
    kon, koff, kint, RT = (VALUES[k] for k in ("k_on", "k_off", "k_int", "R_T"))
    # t_molecular(c) = 1/(k_on c + k_off + k_int) on 0 <= c <= c0 (the source level)
    assert mol.concentrations[0] == 0.0 and mol.concentrations[-1] == pytest.approx(C0)
    np.testing.assert_allclose(
        mol.relaxation_times, 1.0 / (kon * mol.concentrations + koff + kint), rtol=1e-12
    )
    ts = base.timescales
    assert ts.t_molecular == pytest.approx(1.0 / (koff + kint), rel=1e-12)
    assert ts.t_capture == pytest.approx(1.0 / (RHO * kon * RT), rel=1e-12)
    assert ts.t_cell == pytest.approx(K_M / (RHO * V_MAX), rel=1e-12)
    assert ts.t_diffusion == pytest.approx(LENGTH**2 / D, rel=1e-12)
    assert math.isinf(ts.t_decay)
    assert ts.ratios["cell/molecular"] == pytest.approx(ts.t_capture / ts.t_molecular)  # type: ignore[operator]
    assert ts.separated  # 18.1 and 50.9, both >= 10
    k_deg = 1e-3  # t_decay = 1000 min < t_diffusion = 4500 min, still >= 10 t_cell
    ts2 = base.replace(decay=k_deg).timescales
    assert ts2.t_decay == pytest.approx(1 / k_deg)
    assert ts2.t_tissue == pytest.approx(1 / k_deg)
    assert ts2.separated


def test_general_network_receptor_turnover() -> None:
    """Receptors synthesized (k_s) and degraded (k_d), internalized with their ligand: no
    conservation law; u(c) = k_s c/(K' + c) with K' = k_d (k_off + k_int)/(k_on k_int)."""
    net = sb.from_antimony(
        """
        model turnover
          compartment cell = 1
          species L in cell = 10, R in cell = 50, C in cell = 0, Li in cell = 0
          make: -> R; k_s
          lose: R -> ; k_d*R
          bind: L + R -> C; k_on*L*R
          unbind: C -> L + R; k_off*C
          internalize: C -> Li; k_int*C
          k_s = 5; k_d = 0.1; k_on = 0.01; k_off = 0.1; k_int = 0.2
        end
        """
    )
    pipe = _pipe(network=net, values=None, fast=("C", "R"))
    law = pipe.uptake
    K_prime = 0.1 * (0.1 + 0.2) / (0.01 * 0.2)
    assert law.V_max == pytest.approx(5.0, rel=1e-12)
    assert law.K_m == pytest.approx(K_prime, rel=1e-12)
    # the resolved model keeps R and C (no conservation law); its steady state is the pipeline's
    model = pipe.resolved_model()
    assert model.species == ("L", "R", "C")
    ss = steady_state(model, initial=pipe.resolved_initial(0.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TimescaleWarning)
        grad = pipe.gradient.values
    np.testing.assert_allclose(ss.values("L"), grad, rtol=1e-9)


# --------------------------------------------------------------------------- warnings
def test_warns_with_the_numbers_when_receptors_are_slow(base: HierarchicalPipeline) -> None:
    # same V_max and K_m, receptor cycle 50 times slower: t_molecular = 166.7 min
    slow = dict(VALUES)
    for k in ("k_on", "k_off", "k_int"):
        slow[k] /= 50
    slow["R_T"] *= 50
    pipe = _pipe(values=slow)
    with pytest.warns(TimescaleWarning) as rec:
        ts = pipe.timescales
    msg = str(rec[0].message)
    assert "threshold ratio 10" in msg
    assert "t_molecular = 166.7" in msg and "t_cell = 90.33" in msg
    assert not ts.separated
    # the law is the same, so the steady gradient is too (exact at steady states)
    np.testing.assert_allclose(pipe.gradient.values, base.gradient.values, rtol=1e-11)


def test_warns_when_tissue_and_cell_times_are_close(base: HierarchicalPipeline) -> None:
    short = base.replace(grid=Grid.box(30.0, 30))  # t_diffusion = 45 min < 10 t_cell
    with pytest.warns(TimescaleWarning, match=r"t_tissue = 45 \(diffusion L\^2/D_eff\)"):
        short.timescales  # noqa: B018
    strict = base.replace(threshold=100.0)  # 18.1 < 100
    with pytest.warns(TimescaleWarning, match="threshold ratio 100"):
        strict.timescales  # noqa: B018


def test_silent_when_separated() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ts = _pipe().run().timescales
    assert ts.separated and not ts.problems()


# --------------------------------------------------------------------------- gradients
def _bvp(D_eff: float, k_deg: float) -> object:
    def f(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        q = RHO * V_MAX * y[0] / (K_M + y[0]) + k_deg * y[0]
        return np.vstack([y[1], q / D_eff])

    def bc(ya: np.ndarray, yb: np.ndarray) -> np.ndarray:
        return np.array([ya[0] - C0, yb[1]])

    xs = np.linspace(0.0, LENGTH, 3001)
    lam = 50.0
    guess = np.vstack([C0 * np.exp(-xs / lam), -C0 / lam * np.exp(-xs / lam)])
    sol = solve_bvp(f, bc, xs, guess, tol=1e-10, max_nodes=500_000)
    assert sol.success, sol.message
    return sol


def test_michaelis_menten_gradient_matches_solve_bvp_end_to_end() -> None:
    """Molecular constants -> QSSA law; layered unit cell -> D_eff (the harmonic mean across
    layers, exact); decay k_deg; the steady gradient against scipy's solve_bvp (tol 1e-10).
    Finite volumes are second order: error ~0.3 (h/lambda)^2 ~ 2e-5 at n = 1000."""
    layers = {"microstructure": "layers", "values": [40.0, 10.0], "thickness": [3, 5], "dim": 2}
    harmonic = 1.0 / ((3 / 40.0 + 5 / 10.0) / 8)
    k_deg = 8e-4  # t_decay = 1250 min: a visible term that keeps the scales separated
    errs = []
    for n in (500, 1000):
        pipe = _pipe(n, microstructure=layers, diffusivity=None, decay=k_deg)
        assert pipe.diffusivity.value == pytest.approx(harmonic, rel=1e-10)
        c = pipe.gradient.values
        x = pipe.grid.coordinate(0)
        ref = _bvp(harmonic, k_deg).sol(x)[0]  # type: ignore[attr-defined]
        errs.append(float(np.max(np.abs(c - ref) / ref)))
    print(f"\nMichaelis-Menten pipeline vs solve_bvp: n=500 {errs[0]:.2e}, n=1000 {errs[1]:.2e}")
    assert errs[1] < 1e-4
    assert 3.5 < errs[0] / errs[1] < 4.5  # second order


def test_mass_balance_and_decay_length(base: HierarchicalPipeline) -> None:
    g = base.gradient
    assert g.boundary_influx == pytest.approx(g.total_uptake, rel=1e-10)
    # influx = 2 D/h (c0 - c_1) through the Dirichlet face (finite-volume definition)
    h = LENGTH / 150
    assert g.boundary_influx == pytest.approx(2 * D / h * (C0 - g.values[0]), rel=1e-12)
    # decay length: log-linear interpolation of where c falls to c_1/e
    x = base.grid.coordinate(0)
    assert g.decay_length is not None
    target = g.values[0] / math.e
    xc = x[0] + g.decay_length
    i = int(np.searchsorted(x, xc))
    interp = math.exp(np.interp(xc, x[i - 1 : i + 1], np.log(g.values[i - 1 : i + 1])))
    assert interp == pytest.approx(target, rel=1e-12)


# --------------------------------------------------------------------------- replacement
def test_replace_uptake_by_the_same_law_gives_the_same_gradient(
    base: HierarchicalPipeline,
) -> None:
    given = base.replace(uptake=UptakeLaw.michaelis_menten(V_MAX, K_M))
    assert given.molecular is None
    assert given.diffusivity is base.diffusivity  # the upstream stage is reused
    np.testing.assert_allclose(given.gradient.values, base.gradient.values, rtol=1e-12)
    ts = given.timescales
    assert ts.t_molecular is None and ts.t_capture is None
    assert ts.t_cell == pytest.approx(K_M / (RHO * V_MAX), rel=1e-12)
    with pytest.raises(OptionError, match="no molecular network"):
        given.resolved_model()


def test_replace_uptake_by_a_linear_law_gives_the_cosh_profile(
    base: HierarchicalPipeline,
) -> None:
    """D c'' = rho k c, c = c0 on the face x = 0, c'(L) = 0:
    c = c0 cosh((L - x)/lambda)/cosh(L/lambda), lambda = sqrt(D/(rho k)) = 30 µm."""
    lam = 30.0
    k = D / (lam**2 * RHO)
    x = Grid.box(LENGTH, 1000).coordinate(0)
    exact = C0 * np.cosh((LENGTH - x) / lam) / np.cosh(LENGTH / lam)
    for uptake in (UptakeLaw.linear(k, "L"), f"{k!r}*L"):
        pipe = base.replace(uptake=uptake, grid=Grid.box(LENGTH, 1000))
        rel = float(np.max(np.abs(pipe.gradient.values - exact) / exact))
        assert rel < 1e-4
    assert pipe.uptake.V_max is None  # not Michaelis-Menten


def test_replace_diffusivity_and_cell_density(base: HierarchicalPipeline) -> None:
    p2 = base.replace(diffusivity=1.5 * D, cell_density=1.5 * RHO)
    assert p2.molecular is base.molecular  # reused: nothing molecular changed
    assert float(p2.tissue.model.diffusivities[0]) == 1.5 * D
    ts = p2.timescales
    assert ts.t_diffusion == pytest.approx(LENGTH**2 / (1.5 * D))
    assert ts.t_cell == pytest.approx(K_M / (1.5 * RHO * V_MAX))
    # scaling D and rho together leaves lambda unchanged: D c'' = rho u(c) scales out
    np.testing.assert_allclose(p2.gradient.values, base.gradient.values, rtol=1e-10)
    p3 = base.replace(values={**VALUES, "R_T": 500.0})
    assert p3.molecular is not base.molecular
    assert p3.uptake.V_max == pytest.approx(100.0, rel=1e-12)


# --------------------------------------------------------------------------- diffusivity
def test_homogenized_diffusivity_stage() -> None:
    spec = {
        "microstructure": "inclusions",
        "volume_fraction": 0.5,
        "D_matrix": 60.0,
        "D_inclusion": 0.6,
        "resolution": 32,
    }
    pipe = _pipe(microstructure=spec, diffusivity=None)
    d = pipe.diffusivity
    ref = homogenize(inclusion_array(32, 0.5, 60.0, 0.6)).tensor
    assert d.origin == "homogenized"
    assert d.value == pytest.approx(ref[0, 0], rel=1e-12)
    assert d.homogenization is not None and d.homogenization.volume_fractions is not None
    f = d.homogenization.volume_fractions[0.6]
    lo, hi = hashin_shtrikman_bounds(0.6, 60.0, f)
    assert lo <= d.value <= hi
    # 1-D tissue along x of layers normal to y: D_xx is the arithmetic mean, exactly
    along = {"microstructure": "layers", "values": [40.0, 10.0], "thickness": [3, 5], "axis": 1}
    assert _pipe(microstructure=along, diffusivity=None).diffusivity.value == pytest.approx(
        (3 * 40.0 + 5 * 10.0) / 8, rel=1e-10
    )
    # a 2-D tissue cannot take an anisotropic tensor
    p2 = HierarchicalPipeline(
        Grid.box((LENGTH, LENGTH), (8, 8)),
        cell_density=RHO,
        boundary={"x-": Dirichlet(C0)},
        values=VALUES,
        microstructure=along,
    )
    with pytest.raises(UnsupportedFeatureError, match="anisotropic effective diffusion"):
        p2.diffusivity  # noqa: B018
    # a small symmetric array given as a microstructure is a unit cell, not a tensor
    checker = _pipe(microstructure=np.array([[1.0, 4.0], [4.0, 1.0]]), diffusivity=None)
    assert checker.diffusivity.origin == "homogenized"
    # on 2 x 2 pixels every face joins a 1 and a 4: all face conductances are the harmonic
    # mean 2*1*4/(1 + 4) = 1.6, a uniform discrete medium
    assert checker.diffusivity.value == pytest.approx(1.6, rel=1e-12)
    with pytest.raises(ModelError, match="square tensor"):
        _pipe(diffusivity=np.ones((4, 4))).diffusivity  # noqa: B018
    # a given tensor: 1-D takes D_xx
    assert _pipe(diffusivity=np.diag([3.0, 7.0])).diffusivity.value == 3.0


# --------------------------------------------------------------------------- saving
def test_save_writes_every_stage(base: HierarchicalPipeline, tmp_path: Path) -> None:
    files = base.save(tmp_path)
    names = {p.name for p in files}
    assert names == {"pipeline.json", "molecular_network.xml", "reduced_network.xml", "gradient.nc"}
    data = json.loads((tmp_path / "pipeline.json").read_text())
    assert data["uptake"]["V_max"] == pytest.approx(V_MAX, rel=1e-12)
    assert data["timescales"]["t_cell"] == pytest.approx(K_M / (RHO * V_MAX), rel=1e-12)
    assert data["timescales"]["separated"] is True
    with xr.open_dataset(tmp_path / "gradient.nc", engine="h5netcdf") as ds:
        np.testing.assert_array_equal(ds["L"].values, base.gradient.values)
        np.testing.assert_allclose(
            ds["q"].values, RHO * V_MAX * ds["L"].values / (K_M + ds["L"].values), rtol=1e-12
        )
    # the reduced network read back: its internalization rate is u(c)
    red = sb.load(tmp_path / "reduced_network.xml")
    (rx,) = [r for r in red.reactions if any(p.species == "Li" for p in r.products)]
    env = {p.id: float(p.value) for p in red.parameters if p.value is not None}
    env.update({c.id: float(c.size) for c in red.compartments if c.size is not None})
    for c in (1.0, 30.0, 300.0):
        assert evaluate(rx.rate, {**env, "L": c}) == pytest.approx(  # type: ignore[arg-type]
            V_MAX * c / (K_M + c), rel=1e-12
        )
    net = sb.load(tmp_path / "molecular_network.xml")
    assert net.parameter_map["R_T"].value == VALUES["R_T"]
    # homogenized pipelines add the unit cell
    spec = {"microstructure": "checkerboard", "D1": 1.0, "D2": 4.0, "resolution": 8}
    more = base.replace(microstructure=spec).save(tmp_path / "h")
    with xr.open_dataset(tmp_path / "h" / "microstructure.nc", engine="h5netcdf") as ds:
        assert sorted(np.unique(ds["diffusivity"].values)) == [1.0, 4.0]
    assert any(p.name == "microstructure.nc" for p in more)


def test_summary_and_to_dict(base: HierarchicalPipeline) -> None:
    text = base.summary()
    for part in (
        "1. molecular stage",
        "2. uptake law (qssa)",
        "3. diffusivity (given)",
        "4. sink",
        "5. tissue",
        "6. steady gradient",
        "timescales:",
        "the scales are separated",
    ):
        assert part in text
    json.dumps(base.to_dict(), allow_nan=False, default=str)


# --------------------------------------------------------------------------- the law alone
def test_uptake_law_constructors() -> None:
    law = UptakeLaw.from_text("V*c/(K + c)", parameters={"V": 2.0, "K": 300.0})
    assert (law.V_max, law.K_m) == (pytest.approx(2.0), pytest.approx(300.0))
    assert float(law(300.0)) == pytest.approx(1.0)
    hill = UptakeLaw.from_text("c^2/(1 + c^2)")
    assert hill.V_max is None
    assert float(hill.slope(1.0)) == pytest.approx(0.5)
    assert UptakeLaw.linear(3.0).renamed("L").text == "3 * L"


def test_bad_input_is_refused() -> None:
    with pytest.raises(ModelError, match="exactly one of microstructure"):
        _pipe(diffusivity=None)
    with pytest.raises(ModelError, match="exactly one of microstructure"):
        _pipe(microstructure=np.ones((4, 4)))
    with pytest.raises(ModelError, match="cell_density must be a positive"):
        _pipe(cell_density=-1.0)
    with pytest.raises(ModelError, match="ligand 'X' is not a species"):
        _pipe(ligand="X").uptake  # noqa: B018
    with pytest.raises(ModelError, match="may depend only on 'c'"):
        UptakeLaw.from_text("V*c/(K + c)")
    with pytest.raises(ModelError, match="boundary side 'q-'"):
        _pipe(boundary={"q-": Dirichlet(1.0)})
    with pytest.raises(OptionError, match="unknown input 'speed'"):
        _pipe().replace(speed=1)
