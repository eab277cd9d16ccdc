"""The hybrid partitioned simulator (``scalebridge.wellmixed.hybrid``) against mathematics.

References:

* exact first-passage law of a discrete reaction whose propensity ``c G_off A`` follows a
  continuous species: ``A`` decays (``A -> 0`` at rate 1 per molecule) from ``N`` molecules, so
  ``P(G_off at t) = E[exp(-c int_0^t A ds)] = (E[exp(-c min(L, t))])^N`` with ``L ~ Exp(1)``
  the molecules' lifetimes, ``E[exp(-c min(L, t))] = (1 - e^(-(1+c)t))/(1+c) + e^(-(1+c)t)``;
  it checks that discrete firing times stay exact while the propensity varies in time, in the
  deterministic (ODE) part, and in the Langevin part while ``A`` turns discrete mid-run;
* immigration-death ``0 -> X`` at ``k``, ``X -> 0`` at ``g X`` from 0: ``X(t) ~ Poisson(k/g (1 -
  e^(-g t)))`` (mean = variance), crossing from the discrete into the continuous regime;
* bit-identical ensembles across worker counts and chunkings.

Seeds are fixed; each statistical check states the probability that a correct implementation
with an arbitrary seed would fail it.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import scalebridge as sb
from scalebridge.errors import OptionError, UnsupportedFeatureError
from scalebridge.methods import get_method
from scalebridge.model import ReactionNetwork
from scalebridge.problem import TimeCourse
from scalebridge.wellmixed import hybrid_kernels as hk
from scalebridge.wellmixed.hybrid import Hybrid, partition_fractions
from scalebridge.wellmixed.propensity import stream_states

Z = 5.0  # two-sided normal band: false-failure probability 5.7e-7 per comparison


def run(net: ReactionNetwork, times: np.ndarray, runs: int, seed: int, method: Hybrid,
        ) -> tuple[np.ndarray, dict, list[str]]:  # fmt: skip
    problem = TimeCourse(net, np.asarray(times, float))
    prepared = method.prepare(problem)
    states = stream_states(np.random.SeedSequence(seed).spawn(runs))
    out = np.full((runs, len(prepared.times), len(prepared.names)), np.nan)
    stats = method.run_runs(prepared, states, out)
    return out, stats, prepared.names


def switch_on_decay(n: int, c: float) -> ReactionNetwork:
    return sb.from_antimony(
        f"""
        model hazard
          A = {n}; G_off = 1; G_on = 0
          decay: A -> ; k*A
          switch: G_off -> G_on; c*G_off*A
          k = 1; c = {c}
        end
        """
    )


def p_off(t: np.ndarray, n: int, c: float) -> np.ndarray:
    """P(no switch by t) for :func:`switch_on_decay` (module docstring)."""
    e = np.exp(-(1.0 + c) * t)
    return ((1.0 - e) / (1.0 + c) + e) ** n


# coarse output grid: the deterministic integrator takes long steps, so the crossing of the
# integrated hazard must be found inside them
HAZARD_TIMES = np.array([0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0])


@pytest.mark.parametrize(
    ("n", "c", "options", "continuous"),
    [
        (10**6, 1e-6, {}, "ODE"),  # A deterministic throughout
        (10**6, 1e-6, {"rtol": 1e-2}, "ODE"),  # loose tolerance: the crossing still exact
        (1000, 1e-3, {}, "CLE"),  # A Langevin, then discrete below 50 copies (t ~ 3)
        (1000, 1e-3, {"continuous": "ode"}, "ODE"),
    ],
)
def test_discrete_firing_times_follow_the_integrated_hazard(
    n: int, c: float, options: dict, continuous: str
) -> None:
    runs = 20_000
    out, stats, names = run(switch_on_decay(n, c), HAZARD_TIMES, runs, 11, Hybrid(**options))
    on = out[:, :, names.index("G_on")]
    assert set(np.unique(on)) <= {0.0, 1.0}  # the discrete species stays whole
    exact = 1.0 - p_off(HAZARD_TIMES, n, c)
    se = np.sqrt(exact * (1.0 - exact) / runs)
    # 7 comparisons: false-failure probability < 4e-6
    assert np.all(np.abs(on.mean(axis=0)[1:] - exact[1:]) <= Z * se[1:])
    fr = partition_fractions(stats)
    assert fr["switch"]["SSA"] == pytest.approx(1.0)  # changes discrete species: discrete
    assert fr["decay"][continuous] > 0.5  # ... while A decays continuously
    switches = on[:, -1].sum()
    if n == 10**6:  # A stays continuous: the switches are the only discrete events
        assert stats["events"] == switches
    else:  # A turns discrete below 50 copies and decays by SSA events
        assert stats["events"] > switches + runs * 40


def test_dynamic_partition_keeps_the_poisson_law() -> None:
    """Immigration-death from 0 at k = 2000: discrete below 100 copies, Langevin above; X(3) is
    Poisson(k (1 - e^-3)) exactly.  With the CLE the variance is kept; with the ODE it is lost
    (only the discrete start contributes) -- so the test also tells the two descriptions apart."""
    k, t = 2000.0, 3.0
    net = sb.from_antimony(f"model id\n X = 0\n R1: -> X; k\n R2: X -> ; g*X\n k = {k}; g = 1\nend")
    lam = k * (1.0 - math.exp(-t))
    runs = 4000
    out, stats, _ = run(net, [0.0, 1.0, t], runs, 3, Hybrid())
    x = out[:, -1, 0]
    assert x.min() >= 0.0
    # mean: z band (5.7e-7); variance: the sample variance of n Poisson draws has relative sd
    # sqrt(2/n + 1/(n lam)) = 2.2 %, a 5-sigma band is 11 % (5.7e-7)
    assert abs(x.mean() - lam) <= Z * math.sqrt(lam / runs)
    assert abs(x.var(ddof=1) / lam - 1.0) <= Z * math.sqrt(2.0 / runs + 1.0 / (runs * lam))
    fr = partition_fractions(stats)["X"]
    assert fr["CLE"] > 0.95 and fr["ODE"] == 0.0  # 100 copies are reached by t ~ 0.05
    assert stats["partition_changes"] >= runs  # each run turned X continuous once
    assert stats["cle_steps"] > 0 and stats["ode_steps"] == 0
    out_ode, stats_ode, _ = run(net, [0.0, 1.0, t], runs, 3, Hybrid(continuous="ode"))
    x_ode = out_ode[:, -1, 0]
    assert abs(x_ode.mean() - lam) <= 0.01 * lam  # the rate equations keep the mean
    assert x_ode.var(ddof=1) < 0.2 * lam  # ... but not the intrinsic noise
    assert stats_ode["ode_steps"] > 0 and stats_ode["cle_steps"] == 0


def test_low_copy_network_runs_as_exact_ssa() -> None:
    """All species below 100 copies: no continuous reaction, no partition change -- the exact
    SSA.  Immigration-death at k = 5: X(t) ~ Poisson(5 (1 - e^-t)); a chi-square test on the
    counts 0..12 (13 cells, df 12; critical value 38.0 at p = 1.4e-4)."""
    net = sb.from_antimony("model id\n X = 0\n R1: -> X; k\n R2: X -> ; g*X\n k = 5; g = 1\nend")
    runs = 20_000
    out, stats, _ = run(net, [0.0, 2.0], runs, 5, Hybrid())
    assert stats["steps"] == 0 and stats["partition_changes"] == 0
    assert partition_fractions(stats)["X"]["SSA"] == 1.0
    x = out[:, -1, 0]
    assert np.array_equal(x, np.round(x))
    lam = 5.0 * (1.0 - math.exp(-2.0))
    ks = np.arange(13)
    p = np.array([math.exp(-lam) * lam**j / math.factorial(j) for j in ks])
    p[-1] = 1.0 - p[:-1].sum()  # the last cell is X >= 12
    counts = np.array([np.sum(x == j) for j in ks[:-1]] + [np.sum(x >= 12)])
    chi2 = float(np.sum((counts - runs * p) ** 2 / (runs * p)))
    assert chi2 < 38.0
    assert stats["events"] > 0.9 * runs * (5.0 * 2.0)  # ~2 k t firings per run, all discrete


def test_gene_switch_partition_and_invariants() -> None:
    net = sb.load(sb_data("gene_switch.ant"))
    out, stats, names = run(net, np.linspace(0, 5, 11), 500, 2, Hybrid())
    g_on, g_off, p = (out[:, :, names.index(s)] for s in ("G_on", "G_off", "P"))
    assert np.all(g_on + g_off == 1.0)  # the promoter is conserved and discrete
    assert set(np.unique(g_on)) <= {0.0, 1.0}
    assert p.min() >= 0.0
    fr = partition_fractions(stats)
    for rid in ("activation", "deactivation", "G_on", "G_off"):
        assert fr[rid]["SSA"] == 1.0
    assert 0.3 < fr["P"]["CLE"] < 0.9  # P turns continuous once it passes 100 copies
    assert fr["production"]["CLE"] == pytest.approx(fr["P"]["CLE"], abs=0.02)
    assert stats["partition_changes"] > 0 and stats["events"] > 0 and stats["cle_steps"] > 0
    for f in fr.values():
        assert sum(f.values()) == pytest.approx(1.0)
        assert all(v >= 0.0 for v in f.values())


def sb_data(name: str) -> str:
    from pathlib import Path

    return str(Path(sb.__file__).parent / "data" / name)


def test_initial_partition_follows_the_rule() -> None:
    net = sb.load(sb_data("gene_switch.ant"))
    h = Hybrid()
    at0 = h.initial_partition(h.prepare(TimeCourse(net, np.array([0.0, 1.0]))))
    assert set(at0.values()) == {"SSA"}  # P = 0 at the start
    prob = TimeCourse(net, np.array([0.0, 1.0]), values={"P": 5000.0, "G_on": 1.0, "G_off": 0.0})
    part = h.initial_partition(h.prepare(prob))
    assert part["P"] == "CLE" and part["production"] == "CLE" and part["degradation"] == "CLE"
    assert part["G_on"] == "SSA" and part["activation"] == "SSA"
    part = h.initial_partition(h.prepare(TimeCourse(net, np.array([0.0, 1.0]),
                                                    values={"P": 5e4})))  # fmt: skip
    assert part["P"] == "ODE" and part["degradation"] == "ODE"
    # production cannot fire (promoter off): it takes the level of P
    assert part["production"] == "ODE"
    part = Hybrid(continuous="cle").initial_partition(
        Hybrid().prepare(TimeCourse(net, np.array([0.0, 1.0]), values={"P": 5e4}))
    )
    assert part["degradation"] == "CLE"
    # fewer than min_firings firings per relaxation time: discrete although P is high
    part = Hybrid(min_firings=1e6).initial_partition(
        Hybrid().prepare(TimeCourse(net, np.array([0.0, 1.0]), values={"P": 5e4}))
    )
    assert part["degradation"] == "SSA"


def test_species_level_hysteresis() -> None:
    opt = Hybrid(discrete_below=100, ode_above=1e4, hysteresis=0.5).option_array()
    lv = hk.species_level
    D, L, O = hk.DISCRETE, hk.LANGEVIN, hk.DETERMINISTIC
    assert [lv(-1, x, opt) for x in (99.0, 100.0, 9999.0, 1e4)] == [D, L, L, O]
    assert [lv(D, x, opt) for x in (99.0, 100.0, 2e4)] == [D, L, O]
    assert [lv(L, x, opt) for x in (51.0, 49.0, 1e4)] == [L, D, O]  # stays continuous to 50
    assert [lv(O, x, opt) for x in (6000.0, 4000.0, 40.0)] == [O, L, D]  # ODE down at 5000


def test_bit_identical_across_workers_and_chunks() -> None:
    net = sb.load(sb_data("gene_switch.ant"))
    kw = dict(t_end=5.0, n_points=6, runs=64, seed=9, params={"Omega": 3000.0})
    a = sb.simulate(net, "hybrid", workers=1, chunk_size=64, **kw)
    b = sb.simulate(net, "hybrid", workers=2, chunk_size=5, **kw)
    for s in ("G_on", "P"):
        assert np.array_equal(a.data[s].values, b.data[s].values)
    for key in ("events", "steps", "partition_changes", "continuous_time[P]"):
        assert a.stats[key] == pytest.approx(b.stats[key], rel=1e-12)
    assert a.stats["method"] == "hybrid" and a.stats["options"] == Hybrid().options()
    json.dumps({k: v for k, v in a.stats.items() if k != "versions"})


def test_options_and_refusals() -> None:
    for bad in (
        {"discrete_below": -1.0}, {"ode_above": 10.0, "discrete_below": 100.0},
        {"hysteresis": 0.0}, {"hysteresis": 1.5}, {"continuous": "tau"}, {"rtol": 0.0},
        {"dt_factor": float("nan")}, {"dt_max": -1.0}, {"counts_per_amount": 0.0},
    ):  # fmt: skip
        with pytest.raises(OptionError):
            Hybrid(**bad)
    with pytest.raises(OptionError, match="no option"):
        get_method("hybrid", variant="direct")
    assert isinstance(get_method("hybrid", continuous="ode"), Hybrid)
    net = sb.from_antimony("model ev\n X = 0\n R1: -> X; 1\n at (time > 1): X = 0\nend")
    with pytest.raises(UnsupportedFeatureError, match="event"):
        sb.simulate(net, "hybrid", t_end=2.0, runs=2, seed=1)
    with pytest.raises(OptionError):
        partition_fractions({"events": 3})
