"""The linear noise approximation (``scalebridge.wellmixed.lna``) against closed forms.

References (all exact for the networks used: for zero- and first-order mass action the LNA's
mean and covariance equations are the exact moment equations of the CME):
* two-stage gene expression (0 -> M at k_m, M -> 0 at g_m M, M -> M + P at k_p M, P -> 0 at
  g_p P): stationary <M> = k_m/g_m, Var M = <M>, Cov(M, P) = k_p <M>/(g_m + g_p),
  Fano(P) = 1 + k_p/(g_m + g_p); its transient moments from the linear moment ODE, solved here
  independently by the matrix exponential of the augmented system;
* immigration-death from x0: X(t) ~ Binomial(x0, e^{-g t}) + Poisson(k/g (1 - e^{-g t}));
* isomerisation A <-> B with A + B = N: stationary A ~ Binomial(N, k2/(k1 + k2)) (a conservation
  law: the Jacobian is singular and the Lyapunov equation is solved on the surface);
* open monomolecular networks started from zero: product-Poisson at every time (Jahnke &
  Huisinga, J. Math. Biol. 54, 1, 2007), so Sigma(t) = diag(mean(t)) exactly -- used at 150
  species;
* a Michaelis-Menten sink (a general law, differentiated symbolically): the stationary LNA
  from the hand linearisation.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.linalg as sla
from scipy.integrate import solve_ivp

import scalebridge as sb
from scalebridge.errors import OptionError, SolverError, UnsupportedFeatureError
from scalebridge.problem import TimeCourse
from scalebridge.wellmixed.lna import LNA, LnaModel, lna_stationary
from scalebridge.wellmixed.stochastic_base import prepare

KM, GM, KP, GP = 10.0, 1.0, 5.0, 0.1


def gene(m0: float = 0, p0: float = 0, compartment: str = "") -> sb.ReactionNetwork:
    where = " in cell" if compartment else ""
    vol = "*cell" if compartment else ""
    return sb.from_antimony(
        f"model m\n{compartment}\n species M{where} = {m0}, P{where} = {p0}\n"
        f" tx: -> M; km{vol}\n md: M -> ; gm*M{vol}\n tl: -> P; kp*M{vol}\n"
        f" pd: P -> ; gp*P{vol}\n km = {KM}; gm = {GM}; kp = {KP}; gp = {GP}\nend"
    )


def solve(net: sb.ReactionNetwork, times, **options):  # type: ignore[no-untyped-def]
    return LNA(**options).solve(TimeCourse(net, np.asarray(times, dtype=float)))


# ---------------------------------------------------------------------- stationary
def test_two_stage_fano_numerically_to_1e_10():
    r = lna_stationary(gene())
    i_m, i_p = r.index("M"), r.index("P")
    m, p = KM / GM, KM * KP / (GM * GP)
    assert r.mean[i_m] == pytest.approx(m, rel=1e-12)
    assert r.mean[i_p] == pytest.approx(p, rel=1e-12)
    assert abs(r.fano[i_p] - (1 + KP / (GM + GP))) < 1e-10
    assert abs(r.fano[i_m] - 1.0) < 1e-10
    assert r.covariance[i_m, i_p] == pytest.approx(KP * m / (GM + GP), rel=1e-10)
    assert r.covariance[i_m, i_p] == r.covariance[i_p, i_m]
    assert r.cv[i_p] == pytest.approx(math.sqrt(r.fano[i_p] / p), rel=1e-10)
    assert r.correlation[i_m, i_m] == pytest.approx(1.0)
    # relaxation times are 1/g_m and 1/g_p
    assert sorted(r.timescales) == pytest.approx(sorted([1 / GM, 1 / GP]), rel=1e-10)
    assert r.conservation_laws == 0


def test_stationary_covariance_is_exact_with_a_system_size():
    """Species as concentrations in a compartment of size V: counts scale with V = Omega and
    the covariance stays exact (here every law carries the compartment size, so the counts
    follow the same linear network with k_m -> k_m V)."""
    V = 7.0
    r = lna_stationary(gene(compartment=f"compartment cell = {V}"))
    m, p = KM * V / GM, KM * V * KP / (GM * GP)
    i_m, i_p = r.index("M"), r.index("P")
    assert r.mean[i_m] == pytest.approx(m, rel=1e-12)
    assert r.covariance[i_p, i_p] == pytest.approx(p * (1 + KP / (GM + GP)), rel=1e-10)
    assert r.covariance[i_m, i_p] == pytest.approx(KP * m / (GM + GP), rel=1e-10)
    assert r.system_size == {"M": V, "P": V}
    assert r.concentration_mean == pytest.approx([KM / GM, KM * KP / (GM * GP)], rel=1e-12)
    assert r.concentration_covariance == pytest.approx(r.covariance / V**2, rel=1e-14)


def test_stationary_with_a_conservation_law_is_the_binomial():
    n, k1, k2 = 100, 1.0, 3.0
    net = sb.from_antimony(
        f"model m\n species A = {n}, B = 0\n f: A -> B; k1*A\n b: B -> A; k2*B\n"
        f" k1 = {k1}; k2 = {k2}\nend"
    )
    r = lna_stationary(net)
    q = k2 / (k1 + k2)  # probability a molecule is A
    var = n * q * (1 - q)
    assert r.conservation_laws == 1
    assert r.mean[r.index("A")] == pytest.approx(n * q, rel=1e-12)
    exact = np.array([[var, -var], [-var, var]])
    assert np.max(np.abs(r.covariance - exact)) < 1e-10 * var
    # the conserved total does not fluctuate
    assert abs(np.ones(2) @ r.covariance @ np.ones(2)) < 1e-10 * var
    assert r.eigenvalues.size == 1
    assert r.eigenvalues[0].real == pytest.approx(-(k1 + k2), rel=1e-12)


def test_general_rate_law_uses_its_analytic_derivative():
    """0 -> X at k; X -> 0 at V x/(K + x) (used as written): x* = k K/(V - k),
    J = -V K/(K + x*)^2, D = 2 k, so Var = k (K + x*)^2 / (V K)."""
    k, vmax, km = 4.0, 10.0, 30.0
    net = sb.from_antimony(
        f"model m\n species X = 5\n p: -> X; k\n d: X -> ; V*X/(K + X)\n"
        f" k = {k}; V = {vmax}; K = {km}\nend"
    )
    r = lna_stationary(net)
    x = k * km / (vmax - k)
    assert r.mean[0] == pytest.approx(x, rel=1e-10)
    assert r.covariance[0, 0] == pytest.approx(k * (km + x) ** 2 / (vmax * km), rel=1e-10)
    # the model's derivative at some point, against the closed form
    model = LnaModel(prepare(TimeCourse(net, np.zeros(1))))
    _, da = model.propensities_and_derivative(np.array([12.0]))
    assert da.toarray()[1, 0] == pytest.approx(vmax * km / (km + 12.0) ** 2, rel=1e-14)


def test_mass_action_derivatives_and_the_macroscopic_convention():
    """2A -> B written k2*cell*A*A in a compartment of size V: the SSA uses c x (x - 1) with
    c = k2 / V; the LNA's macroscopic propensity is c x^2 and its derivative 2 c x."""
    V, k2 = 4.0, 0.3
    net = sb.from_antimony(
        f"model m\n compartment cell = {V}\n species A in cell = 10, B in cell = 0\n"
        f" r: 2A -> B; k2*cell*A*A\n s: A + B -> ; k3*cell*A*B\n k2 = {k2}; k3 = 0.05\nend"
    )
    model = LnaModel(prepare(TimeCourse(net, np.zeros(1))))
    x = np.array([37.0, 11.0])
    a, da = model.propensities_and_derivative(x)
    c2, c3 = k2 / V, 0.05 / V
    assert a == pytest.approx([c2 * 37.0**2, c3 * 37.0 * 11.0], rel=1e-14)
    assert da.toarray() == pytest.approx(
        np.array([[2 * c2 * 37.0, 0.0], [c3 * 11.0, c3 * 37.0]]), rel=1e-14
    )
    assert model.drift(x) == pytest.approx(np.array([[-2, -1], [1, -1]]) @ a, rel=1e-14)


def test_macroscopic_mean_is_the_rate_equations_in_counts():
    """p: -> A (k1 per volume), r: 2A -> B (k2 A^2 per volume), d: B -> (k3 B per volume) in a
    compartment of size V: in counts a = V x / V, dA/dt = k1 V - 2 k2 A^2 / V,
    dB/dt = k2 A^2 / V - k3 B -- the rate equations, not the falling factorials of the SSA."""
    V, k1, k2, k3 = 25.0, 3.0, 0.4, 0.7
    net = sb.from_antimony(
        f"model m\n compartment cell = {V}\n species A in cell = 2, B in cell = 0\n"
        " p: -> A; k1*cell\n r: 2A -> B; k2*cell*A*A\n d: B -> ; k3*cell*B\n"
        f" k1 = {k1}; k2 = {k2}; k3 = {k3}\nend"
    )
    times = np.linspace(0, 5, 11)
    res = solve(net, times, rtol=1e-10, atol=1e-10)

    def rates(_t: float, x: np.ndarray) -> list[float]:
        a, b = x
        return [k1 * V - 2 * k2 * a * a / V, k2 * a * a / V - k3 * b]

    ref = solve_ivp(rates, (0, 5), [2 * V, 0.0], t_eval=times, rtol=1e-12, atol=1e-12).y
    assert res.mean()["A"].values == pytest.approx(ref[0], rel=1e-7)
    assert res.mean()["B"].values == pytest.approx(ref[1], rel=1e-7, abs=1e-9)


# ---------------------------------------------------------------------- time-dependent
@pytest.mark.parametrize("integrator", ["exponential", "joint"])
def test_immigration_death_transient_moments(integrator):
    k, g, x0 = 12.0, 0.8, 40
    net = sb.from_antimony(
        f"model m\n species X = {x0}\n b: -> X; k\n d: X -> ; g*X\n k = {k}; g = {g}\nend"
    )
    t = np.linspace(0, 6, 13)
    res = solve(net, t, rtol=1e-10, atol=1e-10, integrator=integrator)
    e = np.exp(-g * t)
    mean = x0 * e + k / g * (1 - e)
    var = x0 * e * (1 - e) + k / g * (1 - e)
    assert res.mean()["X"].values == pytest.approx(mean, rel=1e-8)
    assert res.sd()["X"].values ** 2 == pytest.approx(var, rel=1e-7, abs=1e-9)
    assert res.data["covariance"].values[:, 0, 0] == pytest.approx(var, rel=1e-7, abs=1e-9)
    assert res.stats["integrator"] == integrator


def exact_gene_moments(t: np.ndarray, m0: float, p0: float) -> np.ndarray:
    """[1, <M>, <P>, Var M, Cov(M, P), Var P] from the exact (linear) moment equations."""
    A = np.zeros((6, 6))
    A[1, 0], A[1, 1] = KM, -GM
    A[2, 1], A[2, 2] = KP, -GP
    A[3, 3], A[3, 0], A[3, 1] = -2 * GM, KM, GM  # Var M' = -2 g_m Var M + k_m + g_m <M>
    A[4, 4], A[4, 3] = -GM - GP, KP  # Cov' = k_p Var M - (g_m + g_p) Cov
    A[5, 5], A[5, 4], A[5, 1], A[5, 2] = -2 * GP, 2 * KP, KP, GP
    z0 = np.array([1.0, m0, p0, 0.0, 0.0, 0.0])
    return np.array([sla.expm(A * s) @ z0 for s in t])


@pytest.mark.parametrize("integrator", ["exponential", "joint"])
def test_two_stage_transient_against_the_exact_moment_equations(integrator):
    t = np.linspace(0, 30, 16)
    ref = exact_gene_moments(t, 3.0, 7.0)
    res = solve(gene(3, 7), t, rtol=1e-9, atol=1e-9, integrator=integrator)
    C = res.data["covariance"].values
    assert res.mean()["M"].values == pytest.approx(ref[:, 1], rel=1e-7)
    assert res.mean()["P"].values == pytest.approx(ref[:, 2], rel=1e-7)
    got = np.stack([C[:, 0, 0], C[:, 0, 1], C[:, 1, 1]], axis=1)
    scale = ref[1:, 3:].max(axis=0)
    assert np.max(np.abs(got - ref[:, 3:]) / scale) < 1e-7
    # the time course reaches the stationary LNA
    st = lna_stationary(gene(3, 7))
    late = solve(gene(3, 7), [0, 200], integrator=integrator).data["covariance"].values[-1]
    assert late == pytest.approx(st.covariance, rel=1e-6)


def open_monomolecular(n: int, seed: int) -> sb.ReactionNetwork:
    rng = np.random.default_rng(seed)
    lines = ["model mono"]
    lines += [f" species X{i} = 0" for i in range(n)]
    for i in range(n):
        lines.append(f" p{i}: -> X{i}; {rng.uniform(0.5, 20):.4f}")
        lines.append(f" d{i}: X{i} -> ; {rng.uniform(0.05, 1):.4f}*X{i}")
        for j in rng.choice(n, size=2, replace=False):
            if j != i:
                lines.append(f" c{i}_{j}: X{i} -> X{j}; {rng.uniform(0.1, 2):.4f}*X{i}")
    return sb.from_antimony("\n".join([*lines, "end"]))


def test_hundreds_of_species_product_poisson():
    """Open monomolecular networks: the stationary covariance equals diag(mean) at 200 species,
    the transient one at every output time at 80 species (exact)."""
    st = lna_stationary(open_monomolecular(200, seed=3))
    assert st.mean.size == 200 and np.all(st.mean > 0)
    assert np.max(np.abs(st.covariance - np.diag(st.mean))) < 1e-10 * st.mean.max()
    n = 80
    res = solve(open_monomolecular(n, seed=4), [0.0, 0.5, 3.0], rtol=1e-5, atol=1e-5)
    C = res.data["covariance"].values
    mean = np.stack([res.data[f"X{i}"].values for i in range(n)], axis=1)
    assert np.all(C[0] == 0)
    for k in (1, 2):
        assert np.max(np.abs(C[k] - np.diag(mean[k]))) < 1e-5 * mean[k].max()


# ---------------------------------------------------------------------- result and API
def test_result_layout_and_api():
    res = sb.simulate(gene(), "lna", t_end=10, n_points=6)
    assert res.stats["method"] == "lna" and res.stats["seed"] is None
    assert res.moment_variables() == {"M": "M-sd", "P": "P-sd"}
    assert res.data["covariance"].dims == ("time", "species-i", "species-j")
    assert list(res.data["species-i"].values) == ["M", "P"]
    table = res.to_dataframe()
    assert list(table.columns) == ["time", "M-mean", "P-mean", "M-sd", "P-sd"]
    sd = res.sd()["P"].values
    assert sd == pytest.approx(np.sqrt(res.data["covariance"].values[:, 1, 1]))
    assert res.stats["system_size"] == {"default_compartment": 1.0}
    st = sb.simulate(gene(), "lna", t_end=1, n_points=2, stationary=True, vars=["P"])
    assert st.time.tolist() == [math.inf]
    assert st.variables == ["P", "P-sd", "covariance"]
    assert st.sd()["P"].values[0] ** 2 == pytest.approx(
        KM * KP / (GM * GP) * (1 + KP / (GM + GP)), rel=1e-10
    )


def test_to_dict_layout_and_summary():
    r = lna_stationary(gene())
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    lna = d["lna"]
    assert set(lna["mean"]) == {"M", "P"}
    assert lna["covariance"]["M"]["P"] == pytest.approx(KP * KM / GM / (GM + GP))
    assert lna["fano"]["P"] == pytest.approx(1 + KP / (GM + GP))
    assert lna["units"] == "molecules"
    text = r.summary()
    assert "Fano" in text and "5.5455" in text


def test_zero_mean_species_has_undefined_fano_in_json():
    """X -> Y from nothing: X + Y = 0 is conserved, everything is 0, Fano undefined."""
    net = sb.from_antimony("model m\n species X = 0, Y = 0\n d: X -> Y; k*X\n k = 1\nend")
    d = json.loads(json.dumps(lna_stationary(net).to_dict(), allow_nan=False))
    assert d["lna"]["fano"]["X"] is None and d["lna"]["mean"]["X"] == 0.0
    assert d["lna"]["covariance"]["Y"]["Y"] == 0.0
    assert d["lna"]["conservation_laws"] == 1


def test_refusals():
    with pytest.raises(UnsupportedFeatureError, match="event"):
        solve(sb.from_antimony("model m\n species X = 1\n d: X -> ; X\n at time > 1: X = 5\nend"),
              [0, 1])  # fmt: skip
    with pytest.raises(OptionError, match="molecule counts"):
        LNA().solve(TimeCourse(gene(), np.array([0.0, 1.0]), units="concentration"))
    with pytest.raises(OptionError, match="not a species"):
        LNA().solve(TimeCourse(gene(), np.array([0.0, 1.0]), vars=("km",)))
    with pytest.raises(OptionError, match="integrator"):
        LNA(integrator="euler")
    with pytest.raises(OptionError, match="rtol"):
        LNA(rtol=0)
    with pytest.raises(OptionError, match="runs"):
        sb.simulate(gene(), "lna", t_end=1, runs=10)


def test_unstable_or_missing_steady_state_is_refused():
    """X' = 2X - X + 1 has its only root at X = -1, unstable; 0 -> X alone has none."""
    net = sb.from_antimony(
        "model m\n species X = 10\n grow: X -> 2X; 2*X\n die: X -> ; X\n p: -> X; 1\nend"
    )
    with pytest.raises(SolverError):
        lna_stationary(net)
    with pytest.raises(SolverError):
        lna_stationary(sb.from_antimony("model m\n species X = 0\n p: -> X; 1\nend"))
