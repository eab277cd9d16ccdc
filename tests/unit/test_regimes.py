"""Regime advice (``scalebridge.reduce.regimes``) against cases with clear answers, against
the exact CME (FSP) and the LNA, and against the partition the hybrid simulator uses.

References: copy numbers whose answer is clear (a handful of molecules: discrete; 10^6 with fast
turnover: deterministic); relaxation times of linear networks, which are the eigenvalues of the
constant Jacobian (two-stage gene model: 1/g_m and 1/g_p; a metabolic chain: the eigenvalues of
its rate matrix); for a nonlinear network at four system sizes, the distance of the exact
stationary distribution (FSP) from the LNA's Gaussian, which must be large where the advice is
discrete and small where it is continuous; and the hybrid simulator's own time fractions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

import scalebridge as sb
from scalebridge.errors import ModelError, OptionError
from scalebridge.reduce.regimes import RegimeReport, RegimeThresholds, advise_regimes
from scalebridge.wellmixed.hybrid import Hybrid, partition_fractions

GENE_SWITCH = Path(sb.__file__).parent / "data" / "gene_switch.ant"


def immigration_death(k: float, g: float, x0: float) -> sb.ReactionNetwork:
    return sb.from_antimony(
        f"model id\n X = {x0}\n birth: -> X; k\n death: X -> ; g*X\n k = {k}; g = {g}\nend"
    )


def two_stage(km: float = 10.0, gm: float = 1.0, kp: float = 5.0, gp: float = 0.05
              ) -> sb.ReactionNetwork:  # fmt: skip
    return sb.from_antimony(
        f"""
        model two_stage
          transcription: -> M; km
          mrna_decay: M -> ; gm*M
          translation: -> P; kp*M
          protein_decay: P -> ; gp*P
          km = {km}; gm = {gm}; kp = {kp}; gp = {gp}
          M = {round(km / gm)}; P = {round(km * kp / (gm * gp))}
        end
        """
    )


METABOLIC = """
model pathway
  compartment cell = 1
  species S in cell = 5e5, I in cell = 5e5, P in cell = 1e6
  inflow: -> S; v_in
  bind: S -> I; kf*S
  unbind: I -> S; kb*I
  convert: I -> P; kc*I
  export: P -> ; ke*P
  v_in = 1e6; kf = 100; kb = 100; kc = 2; ke = 1
end
"""


def test_clear_cases() -> None:
    few = advise_regimes(immigration_death(4.0, 1.0, 4.0), 10.0)
    assert few["X"].regime == "SSA" and few["birth"].regime == "SSA"
    assert few["death"].regime == "SSA" and few["X"].max_copies < 20
    many = advise_regimes(immigration_death(1e7, 10.0, 1e6), 10.0)
    assert many.partition() == {"X": "ODE", "birth": "ODE", "death": "ODE"}
    assert many["X"].min_copies > 9e5 and many["X"].poisson_cv < 1.1e-3
    assert many["death"].firings == pytest.approx(1e7 * 10.0, rel=1e-3)  # g x* W = k W
    # the thresholds are options: 5 copies count as continuous when discrete_below = 2
    th = RegimeThresholds(discrete_below=2.0)
    assert (
        advise_regimes(immigration_death(5.0, 1.0, 5.0), 10.0, thresholds=th)["X"].regime == "CLE"
    )


def test_two_stage_regimes_and_timescales() -> None:
    """M ~ 10 copies: discrete; P ~ 1000: Langevin.  Relaxation times are exactly 1/g_p = 20
    and 1/g_m = 1 (linear network); the gap 20 >= 10 makes mRNA decay fast enough to reduce
    (QSSA of M: the bursty protein model), and nothing else."""
    rep = advise_regimes(two_stage(), 100.0, pilot_runs=8)
    assert rep["M"].regime == "SSA" and rep["P"].regime == "CLE"
    assert rep["transcription"].regime == "SSA" and rep["mrna_decay"].regime == "SSA"
    assert rep["translation"].regime == "CLE" and rep["protein_decay"].regime == "CLE"
    assert rep.relaxation_times == pytest.approx((20.0, 1.0), rel=1e-5)
    assert rep.conservation_laws == 0
    assert rep.gap == pytest.approx(20.0, rel=1e-5) and rep.slow_rate == pytest.approx(0.05)
    assert rep.fast_reactions() == ["mrna_decay"]
    assert rep["mrna_decay"].relaxation_rate == pytest.approx(1.0, rel=1e-5)
    assert rep["translation"].relaxation_rate == 0.0  # production by a modifier
    # at high copy numbers the same network is continuous: M ~ 1e3 (CLE), P ~ 1e5 (ODE)
    hi = advise_regimes(two_stage(km=1000.0), 100.0, pilot_runs=4)
    assert hi["M"].regime == "CLE" and hi["P"].regime == "ODE"
    assert hi["translation"].regime == "ODE" and hi["mrna_decay"].regime == "CLE"


def test_high_copy_metabolic_network() -> None:
    rep = advise_regimes(sb.from_antimony(METABOLIC), 10.0)
    assert set(rep.partition().values()) == {"ODE"}
    # linear network: the modes are the eigenvalues of the rate matrix
    kf, kb, kc, ke = 100.0, 100.0, 2.0, 1.0
    J = np.array([[-kf, kb, 0.0], [kf, -kb - kc, 0.0], [0.0, kc, -ke]])
    exact = sorted(1.0 / abs(x) for x in np.linalg.eigvals(J).real)[::-1]
    assert rep.relaxation_times == pytest.approx(exact, rel=1e-5)
    assert rep.fast_reactions() == ["bind", "unbind"]  # the fast exchange, ~200x the rest
    assert rep.gap is not None and rep.gap > 100
    assert rep["bind"].ratio_to_window == pytest.approx(kf * 10.0, rel=1e-5)


def test_gene_switch_regimes() -> None:
    net = sb.load(GENE_SWITCH)
    low = advise_regimes(net, 20.0, params={"Omega": 1e3}, pilot_runs=32)
    assert {a.id: a.regime for a in low.species} == {"G_off": "SSA", "G_on": "SSA", "P": "CLE"}
    assert low["P"].dynamic  # P starts at 0 and falls back below 100 copies when off
    assert low["activation"].regime == "SSA" and low["deactivation"].regime == "SSA"
    assert low.conservation_laws == 1  # G_on + G_off
    assert low.fast_reactions() == []  # switching at 2-6 per time vs decay at 1: no gap
    high = advise_regimes(net, 20.0, params={"Omega": 1e5}, pilot_runs=32)
    assert high["P"].regime == "ODE" and high["degradation"].regime == "ODE"
    assert high["G_on"].regime == "SSA"


@pytest.mark.parametrize(
    ("model", "params", "window", "runs"),
    [
        ("gene_switch", {"Omega": 1e3}, 20.0, 2000),
        ("gene_switch", {"Omega": 1e5}, 20.0, 1000),
        ("two_stage", {}, 100.0, 200),
        ("metabolic", {}, 2.0, 8),
    ],
)
def test_advice_matches_the_hybrid_partition(
    model: str, params: dict, window: float, runs: int
) -> None:
    """The advised description of every species and reaction is the one the hybrid simulator
    uses for most of the window, and the time fractions agree.  The advice's fractions come
    from 64 tau-leaping pilot runs: for the gene switch (the least stable case, P continuous
    ~80 % of the time) their standard error is about 0.03, so a 0.1 tolerance is >3 sigma on
    each side."""
    net = {"gene_switch": lambda: sb.load(GENE_SWITCH), "two_stage": two_stage,
           "metabolic": lambda: sb.from_antimony(METABOLIC)}[model]()  # fmt: skip
    rep = advise_regimes(net, window, params=params, pilot_runs=64, seed=4)
    res = sb.simulate(net, "hybrid", t_end=window, n_points=2, runs=runs, seed=5, params=params,
                      **_hybrid_options(rep))  # fmt: skip
    used = partition_fractions(res.stats)
    for a in (*rep.species, *rep.reactions):
        cont = used[a.id]["CLE"] + used[a.id]["ODE"]
        majority = "SSA" if used[a.id]["SSA"] >= cont else max(
            ("CLE", "ODE"), key=lambda k: (used[a.id][k], k == "CLE"))  # fmt: skip
        assert a.regime == majority, (a.id, a.fractions, used[a.id])
        for k in ("SSA", "CLE", "ODE"):
            assert a.fractions[k] == pytest.approx(used[a.id][k], abs=0.1), (a.id, k)


def _hybrid_options(rep: RegimeReport) -> dict:
    h = rep.thresholds.hybrid()
    return {k: getattr(h, k) for k in ("discrete_below", "ode_above", "min_firings")}


def test_thresholds_match_the_hybrid_defaults() -> None:
    th = RegimeThresholds()
    h = Hybrid()
    assert (th.discrete_below, th.ode_above, th.min_firings) == (
        h.discrete_below, h.ode_above, h.min_firings)  # fmt: skip
    assert th.hybrid(continuous="ode").continuous == "ode"
    with pytest.raises(OptionError):
        RegimeThresholds(discrete_below=10.0, ode_above=5.0)
    with pytest.raises(OptionError):
        RegimeThresholds(dynamic_fraction=0.7)


# ---------------------------------------------------------------------------------------------
C_STAR = (-0.5 + math.sqrt(0.25 + 8.0)) / 4.0  # steady concentration: 2 c^2 + c/2 = 1


def dimer_decay(omega: float) -> sb.ReactionNetwork:
    """A nonlinear one-species network (production, dimerisation-decay 2A -> 0, decay) in a
    compartment of size omega, started at its macroscopic steady state (~0.593 omega copies)."""
    return sb.from_antimony(
        f"""
        model dimer_decay
          compartment cell = {omega}
          species A in cell = {round(C_STAR * omega) / omega}
          prod: -> A; cell*k1
          dim: 2A -> ; cell*k2*A^2
          deg: A -> ; cell*g*A
          k1 = 1; k2 = 1; g = 0.5
        end
        """
    )


def _gaussian_tv(pmf: np.ndarray, k: np.ndarray, mu: float, sd: float) -> float:
    """Total variation between a distribution on integers k and N(mu, sd^2) binned on them."""
    q = norm.cdf((k + 0.5 - mu) / sd) - norm.cdf((k - 0.5 - mu) / sd)
    return 0.5 * (float(np.abs(pmf - q).sum()) + max(0.0, 1.0 - float(q.sum())))


def _lna_stationary(net: sb.ReactionNetwork) -> tuple[float, float]:
    """The stationary LNA mean and sd of A (counts); where method "lna" is not in this
    installation, the stationary rate equation and the LNA variance of this one-species
    network, sigma^2 = D / (2 |J|) with D = sum nu^2 a_j, J = d(drift)/dA."""
    try:
        res = sb.simulate(net, "lna", times=[0.0, 1.0], stationary=True)
        return float(res.data["A"].values[-1]), float(res.data["A-sd"].values[-1])
    except OptionError:
        omega = float(net.compartments[0].size or 1.0)
        x = C_STAR * omega
        drift_d = -(4.0 * x / omega + 0.5)
        diff = omega * 1.0 + 4.0 * (x * x / omega) + 0.5 * x
        return x, math.sqrt(diff / (2.0 * abs(drift_d)))


@pytest.mark.parametrize(("omega", "regime"), [(5.0, "SSA"), (30.0, "SSA"), (2000.0, "CLE"),
                                               (5e4, "ODE")])  # fmt: skip
def test_lna_and_fsp_confirm_the_advice(omega: float, regime: str) -> None:
    """Where both the exact CME (stationary FSP) and the LNA run, their comparison agrees with
    the advice: a discrete description is advised exactly where the LNA's Gaussian misses the
    exact distribution by more than 1 % in total variation (measured 0.043 at 3 copies and
    0.018 at 18; 0.002 at 1200); the ODE exactly where, in addition, the exact CV is below 1 %
    and the rate equation's steady state is within 1 % of the exact mean."""
    net = dimer_decay(omega)
    rep = advise_regimes(net, 10.0, pilot_runs=8)
    assert rep["A"].regime == regime
    assert {r.regime for r in rep.reactions} == {regime}
    fsp = sb.simulate(net, "fsp", times=[0.0, 1.0], stationary=True, tol=1e-9)
    pmf = np.asarray(fsp.data["A-marginal"].isel(time=-1).values)
    k = np.asarray(fsp.data["A-count"].values)
    mean = float(fsp.data["A"].values[-1])
    sd = float(fsp.data["A-sd"].values[-1])
    mu, s = _lna_stationary(net)
    tv = _gaussian_tv(pmf, k, mu, s)
    assert (tv > 0.01) == (regime == "SSA"), tv
    ode_fits = sd / mean < 0.01 and abs(rep["A"].ode_end - mean) / mean < 0.01
    assert ode_fits == (regime == "ODE"), (sd / mean, rep["A"].ode_end, mean)


# ---------------------------------------------------------------------------------------------
def test_report_is_json_safe_and_says_why() -> None:
    rep = advise_regimes(sb.load(GENE_SWITCH), 5.0, params={"Omega": 1e3}, pilot_runs=4)
    d = json.loads(json.dumps(rep.to_dict()))
    assert set(d["species"]) == {"G_off", "G_on", "P"}
    assert d["partition"]["activation"] == "SSA"
    assert d["thresholds"]["discrete_below"] == 100.0
    text = rep.summary()
    assert str(rep) == text
    assert "copies" in rep["P"].reason and "%" in rep["P"].reason
    assert "firings in the window" in rep["production"].reason
    for a in (*rep.species, *rep.reactions):
        assert a.id in text and a.reason.startswith(a.id + ":")
    with pytest.raises(KeyError):
        rep["nothing"]


def test_refusals() -> None:
    net = immigration_death(5.0, 1.0, 0.0)
    with pytest.raises(OptionError):
        advise_regimes(net)
    with pytest.raises(OptionError):
        advise_regimes(net, 1.0, pilot_runs=-1)
    ev = sb.from_antimony("model ev\n X = 0\n R1: -> X; 1\n at (time > 1): X = 0\nend")
    with pytest.raises(ModelError, match="event"):
        advise_regimes(ev, 2.0)
    # the deterministic pilot alone says so
    rep = advise_regimes(net, 5.0, pilot_runs=0)
    assert any("rate equations alone" in n for n in rep.notes)
