"""Adaptive tau-leaping (``scalebridge.wellmixed.tauleap``) against mathematics.

References: scipy.stats distributions (the Poisson sampler; immigration-death is Poisson at every
time from zero; first-order decay is binomial), the formulas of Cao, Gillespie & Petzold (J. Chem.
Phys. 124, 044109, 2006) for the step size, conservation laws, and the exact stationary moments
of the two-stage gene model (mean k_m k_p / (g_m g_p), protein Fano factor 1 + k_p / (g_m + g_p),
exact for this linear network).  Seeds are fixed, so every test is deterministic; each
statistical check states the probability that a correct implementation with an arbitrary seed
would fail it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from scipy import stats

import scalebridge as sb
from scalebridge.errors import OptionError, SolverError
from scalebridge.model import ReactionNetwork
from scalebridge.problem import TimeCourse
from scalebridge.wellmixed import tauleap_kernels as tk
from scalebridge.wellmixed.propensity import all_propensities, stream_states
from scalebridge.wellmixed.tauleap import TauLeap, leap_tables

P_MIN = 1e-6  # chi-square tests fail a correct implementation with this probability
SIGMA = 5.0  # z bands: two-sided 5.7e-7


def simulate(
    net: ReactionNetwork,
    times: Sequence[float] | np.ndarray,
    runs: int,
    seed: int,
    method: TauLeap | None = None,
    vars: Sequence[str] | None = None,
    chunks: Sequence[int] | None = None,
) -> tuple[np.ndarray, dict[str, int]]:
    """``out[run, time, var]`` of ``runs`` runs, streams from SeedSequence(seed).spawn(runs)."""
    method = method or TauLeap()
    problem = TimeCourse(net, np.asarray(times, float), vars=None if vars is None else tuple(vars))
    prepared = method.prepare(problem)
    rng = stream_states(np.random.SeedSequence(seed).spawn(runs))
    out = np.full((runs, len(prepared.times), len(prepared.names)), np.nan)
    total: dict[str, int] = {}
    start = 0
    for n in chunks or [runs]:
        st = method.run_runs(prepared, rng[start : start + n], out[start : start + n])
        for k, v in st.items():
            total[k] = total.get(k, 0) + v
        start += n
    assert start == runs
    return out, total


def chi2_pvalue(samples: np.ndarray, pmf: Callable[[np.ndarray], np.ndarray]) -> float:
    """Chi-square goodness of fit of integer ``samples``; bins pooled to expected counts >= 5
    (both tails pooled into the end bins)."""
    samples = np.asarray(samples).astype(np.int64)
    n = samples.size
    lo, hi = int(samples.min()), int(samples.max())
    k = np.arange(lo, hi + 1)
    p = pmf(k)
    obs = np.bincount(samples - lo, minlength=k.size).astype(float)
    exp = n * p
    exp[0] += n * (1.0 - p.sum())  # the mass outside [lo, hi], lumped into an end bin
    bins_o, bins_e, acc_o, acc_e = [], [], 0.0, 0.0
    for o, e in zip(obs, exp, strict=True):
        acc_o += o
        acc_e += e
        if acc_e >= 5.0:
            bins_o.append(acc_o)
            bins_e.append(acc_e)
            acc_o = acc_e = 0.0
    if acc_e > 0.0:
        bins_o[-1] += acc_o
        bins_e[-1] += acc_e
    o_arr, e_arr = np.asarray(bins_o), np.asarray(bins_e)
    e_arr *= o_arr.sum() / e_arr.sum()
    if o_arr.size < 2:
        return 1.0
    return float(stats.chisquare(o_arr, e_arr).pvalue)


IMMIGRATION_DEATH = """
model id
  X = 0
  R1: -> X; k
  R2: X -> ; g*X
  k = 1; g = 0.1
end
"""

TWO_STAGE_HIGH = """
model two_stage
  M = 1000; P = 50000
  R1: -> M; km
  R2: M -> ; gm*M
  R3: -> P; kp*M
  R4: P -> ; gp*P
  km = 1000; gm = 1; kp = 5; gp = 0.1
end
"""


# --- the Poisson sampler -------------------------------------------------------------------------
@pytest.mark.parametrize("lam", [0.05, 1.0, 4.5, 9.99, 10.0, 37.2, 1000.0, 2.5e6])
def test_poisson_sampler_matches_scipy(lam: float) -> None:
    # Inversion below 10, PTRS from 10 on: both sides of the switch and large means.
    # Chi-square over all pooled bins (false failure 1e-6 per mean) plus the mean and
    # variance in 5-sigma bands.
    s = stream_states([np.random.SeedSequence(int(lam * 1000) + 7)])[0]
    n = 200_000
    x = tk.poisson_samples(s, lam, n)
    assert np.all(x == np.floor(x)) and np.all(x >= 0)
    assert chi2_pvalue(x, lambda k: stats.poisson.pmf(k, lam)) > P_MIN
    assert abs(x.mean() - lam) < SIGMA * math.sqrt(lam / n)
    # var of the sample variance of a Poisson: (mu_4 - sigma^4 (n-3)/(n-1)) / n ~ (lam + 2 lam^2)/n
    assert abs(x.var() - lam) < SIGMA * math.sqrt((lam + 2 * lam * lam) / n)


def test_poisson_of_zero_mean_is_zero() -> None:
    s = stream_states([np.random.SeedSequence(1)])[0]
    assert np.all(tk.poisson_samples(s, 0.0, 100) == 0)


# --- the CGP step size ---------------------------------------------------------------------------
@pytest.mark.parametrize("x", [2.5, 3.0, 17.0, 1e4])
def test_g_factor_is_the_cgp_table(x: float) -> None:
    # CGP 2006, eq. (27): g_i by the highest order of reaction (HOR) of species i.
    assert tk.g_factor(1, 1, x) == 1.0
    assert tk.g_factor(2, 1, x) == 2.0
    assert tk.g_factor(2, 2, x) == pytest.approx(2.0 + 1.0 / (x - 1.0), rel=1e-15)
    assert tk.g_factor(3, 1, x) == 3.0
    assert tk.g_factor(3, 2, x) == pytest.approx(1.5 * (2.0 + 1.0 / (x - 1.0)), rel=1e-15)
    assert tk.g_factor(3, 3, x) == pytest.approx(3.0 + 1.0 / (x - 1.0) + 2.0 / (x - 2.0), rel=1e-15)


def test_g_factor_is_infinite_where_the_factorial_vanishes() -> None:
    assert tk.g_factor(2, 2, 1.0) == np.inf
    assert tk.g_factor(3, 3, 2.0) == np.inf


ORDERS = """
model orders
  A = 40; B = 25; C = 30; D = 0; E = 0
  R1: A -> ; k1*A
  R2: A + B -> C; k2*A*B
  R3: 2 A -> D; k3*A*A
  R4: A + 2 B -> E; k4*A*B*B
  R5: C -> A; k5*C
  k1 = 1; k2 = 0.01; k3 = 0.002; k4 = 0.0001; k5 = 0.3
end
"""


def test_highest_order_tables() -> None:
    net = sb.from_antimony(ORDERS)
    prepared = TauLeap().prepare(TimeCourse(net, np.array([0.0, 1.0])))
    L = leap_tables(prepared.sm)
    order = dict(zip(prepared.sm.species, zip(L.hor.tolist(), L.hmul.tolist(), strict=True),
                     strict=True))  # fmt: skip
    # A: orders 1, 2, 2 (twice A), 3 (once A) -> HOR 3, one A.  B: 2 (once), 3 (twice) -> 3, 2.
    # C: order 1 (R5).  D, E: never reactants.
    assert order == {"A": (3, 1), "B": (3, 2), "C": (1, 1), "D": (0, 0), "E": (0, 0)}


def test_leap_bound_is_the_cgp_formula() -> None:
    # tau' = min_i { max(eps x_i/g_i, 1)/|mu_i|, max(eps x_i/g_i, 1)^2/sigma_i^2 } over reactant
    # species, mu and sigma^2 over non-critical reactions (CGP 2006, eqs. 32-33); computed
    # here by hand from the network's definition.
    net = sb.from_antimony(ORDERS)
    prepared = TauLeap().prepare(TimeCourse(net, np.array([0.0, 1.0])))
    T, L = prepared.T, leap_tables(prepared.sm)
    assert prepared.sm.species == ["A", "B", "C", "D", "E"]
    x = np.array([40.0, 25.0, 30.0, 0.0, 0.0])
    v = prepared.v0.copy()
    a = np.zeros(5)
    all_propensities(T, x, v, a, np.zeros(16))
    A, B, C = 40.0, 25.0, 30.0
    expected_a = [1 * A, 0.01 * A * B, 0.002 * A * (A - 1), 1e-4 * A * B * (B - 1), 0.3 * C]
    np.testing.assert_allclose(a, expected_a, rtol=1e-14)
    nu = {  # net changes per reaction (species A, B, C, D, E)
        0: [-1, 0, 0, 0, 0], 1: [-1, -1, 1, 0, 0], 2: [-2, 0, 0, 1, 0],
        3: [-1, -2, 0, 0, 1], 4: [1, 0, -1, 0, 0],
    }  # fmt: skip
    eps, n_c = 0.03, 10.0
    # critical: L_j = min over consumed species of floor(x_i / |nu_ij|) < n_c -> R4 (25/2 = 12
    # firings of B: not critical); with n_c = 13 R4 becomes critical.
    for n_c in (10.0, 13.0):
        crit_expected = [
            a[j] > 0 and min(math.floor(x[i] / -nu[j][i]) for i in range(5) if nu[j][i] < 0) < n_c
            for j in range(5)
        ]
        mu, sig = np.zeros(5), np.zeros(5)
        for j in range(5):
            if not crit_expected[j]:
                mu += np.array(nu[j]) * a[j]
                sig += np.array(nu[j]) ** 2 * a[j]
        g = {0: 3.0, 1: 1.5 * (2.0 + 1.0 / (B - 1.0)), 2: 1.0}  # A: HOR 3; B: HOR 3, two B; C
        tau = min(
            min(max(eps * x[i] / g[i], 1.0) / abs(mu[i]), max(eps * x[i] / g[i], 1.0) ** 2 / sig[i])
            for i in g
        )
        crit = np.zeros(5, dtype=np.bool_)
        got, a0c = tk.leap_bound(T, L, x, a, eps, n_c, crit, np.zeros(5), np.zeros(5))
        assert crit.tolist() == crit_expected
        assert got == pytest.approx(tau, rel=1e-13)
        assert a0c == pytest.approx(sum(a[j] for j in range(5) if crit_expected[j]), rel=1e-14)
    assert crit.tolist() == [False, False, False, True, False]


def test_inlined_propensities_agree_with_the_shared_ones() -> None:
    # fill_propensities repeats propensity.all_propensities inline (for speed): same numbers
    # on mass-action (orders 1-3) and general laws at random states.
    net = sb.from_antimony(ORDERS.replace("R5: C -> A; k5*C", "R5: C -> A; k5*C/(1 + C/50)"))
    prepared = TauLeap().prepare(TimeCourse(net, np.array([0.0, 1.0])))
    T = prepared.T
    assert not T.is_ma.all()
    rng = np.random.default_rng(3)
    for _ in range(50):
        x = rng.integers(0, 60, size=5).astype(float)
        a1, a2 = np.zeros(5), np.zeros(5)
        s1 = all_propensities(T, x, prepared.v0.copy(), a1, np.zeros(16))
        s2 = tk.fill_propensities(T, x, prepared.v0.copy(), a2, np.zeros(16))
        assert np.array_equal(a1, a2) and s1 == s2


# --- behaviour ----------------------------------------------------------------------------------
LOW_COUNT = """
model low
  A = 40; B = 0; C = 0
  R1: 2 A -> B; k1*A*A
  R2: B -> 2 A; k2*B
  R3: A + B -> C; k3*A*B
  R4: C -> A + B; k4*C
  k1 = 0.5; k2 = 2; k3 = 1; k4 = 3
end
"""


def test_never_negative_under_stress() -> None:
    # Leaping forced at low counts (no critical reactions, no SSA fallback, a coarse epsilon):
    # many leaps would overshoot.  They must be rejected, never clipped: counts stay >= 0 and
    # whole, and A + 2B + 3C = 40 holds exactly (a silent fix would break it).
    method = TauLeap(epsilon=0.5, n_critical=0, ssa_threshold=0.0)
    out, st = simulate(sb.from_antimony(LOW_COUNT), np.linspace(0, 5, 51), 500, 11, method)
    assert st["rejections"] > 100 and st["leaps"] > 1000 and st["ssa_steps"] == 0
    assert np.all(out >= 0) and np.all(out == np.round(out))
    A, B, C = out[..., 0], out[..., 1], out[..., 2]
    assert np.all(A + 2 * B + 3 * C == 40)


def test_critical_reactions_are_exact() -> None:
    # X -> 0 from X = 5 is critical throughout (X < n_critical); a high-copy bystander Y makes
    # leaps long (tau ~ 1, far above 1/a_X).  The critical reaction fires at exact exponential
    # times, so X(t) ~ Binomial(5, exp(-c t)) exactly -- with leaped Poisson firings of X it
    # would not be.  Chi-square per time, false failure 1e-6 each.
    net = sb.from_antimony(
        """
        model crit
          X = 5; Y = 10000
          R1: X -> ; c*X
          R2: -> Y; ky
          R3: Y -> ; gy*Y
          c = 0.5; ky = 10000; gy = 1
        end
        """
    )
    out, st = simulate(net, [0.0, 0.5, 1.0, 2.0, 4.0], 20_000, 5, TauLeap())
    assert st["ssa_steps"] == 0
    assert st["leaps"] < 20_000 * 12  # long leaps: about 4 leaps + at most 5 critical firings
    for i, t in enumerate([0.5, 1.0, 2.0, 4.0], start=1):
        pmf = functools.partial(stats.binom.pmf, n=5, p=math.exp(-0.5 * t))
        assert chi2_pvalue(out[:, i, 0], pmf) > P_MIN


def test_falls_back_to_ssa_at_low_propensities() -> None:
    # a_0 ~ 2: a leap would replace fewer than ssa_threshold = 10 SSA steps, so every step is
    # an exact SSA step and X(t) ~ Poisson(k/g (1 - exp(-g t))) exactly (chi-square, 1e-6 each).
    out, st = simulate(sb.from_antimony(IMMIGRATION_DEATH), [0.0, 5.0, 20.0, 60.0], 20_000, 3)
    assert st["leaps"] == 0 and st["ssa_steps"] > 20_000 * 10 and st["rejections"] == 0
    for i, t in enumerate([5.0, 20.0, 60.0], start=1):
        pmf = functools.partial(stats.poisson.pmf, mu=10.0 * (1.0 - math.exp(-0.1 * t)))
        assert chi2_pvalue(out[:, i, 0], pmf) > P_MIN


def test_reproducible_and_independent_of_chunking() -> None:
    net = sb.from_antimony(TWO_STAGE_HIGH)
    times = np.linspace(0, 20, 21)
    a, sa = simulate(net, times, 9, 42)
    b, sb_ = simulate(net, times, 9, 42, chunks=[1, 3, 5])
    c, _ = simulate(net, times, 9, 43)
    assert np.array_equal(a, b) and sa == sb_
    assert not np.array_equal(a, c)
    # A model with events takes the Python path: the same guarantee.
    ev = sb.from_antimony(TWO_STAGE_HIGH.replace("end", "E1: at M > 1030: km = 900\nend"))
    d, sd = simulate(ev, times, 6, 7)
    e, se = simulate(ev, times, 6, 7, chunks=[4, 2])
    assert np.array_equal(d, e) and sd == se and sd["event_executions"] > 0


def test_two_stage_high_copy_mean_and_fano() -> None:
    # Stationary protein mean k_m k_p/(g_m g_p) = 5e4 and Fano 1 + k_p/(g_m + g_p) = 5.545
    # (exact for this linear network), within 2 %.
    #
    # The bias of explicit tau-leaping in the variance: for leaps of fixed length tau the
    # stationary moments follow in closed form from the linear recursion; the protein Fano
    # factor is high by 4.5 % at tau = 0.45 (what CGP gives here with the default eps = 0.03:
    # (eps M)^2 / (k_m + g_m M)), 0.86 % at 0.1 and 0.42 % at 0.05 (eps = 0.01).  This test
    # uses eps = 0.01.  Estimator: the time average over 16 runs x 93,750 time units after a
    # burn-in of 50 (the variance relaxes at rate 2 g_p = 0.2); its relative standard error for
    # the Fano factor is sqrt(25 / total time) = 0.41 % (measured over independent runs; the
    # protein correlation time is 1/g_p = 10), so |error| < 2 % fails a correct implementation
    # with probability ~ P(Z > (2 - 0.42) / 0.41 = 3.9) = 5e-5.  The mean's relative standard
    # error is 4e-5 (|error| < 2 % cannot fail by chance).  Measured here: Fano +0.72 %, mean
    # +1e-5; the mRNA Fano factor +2.7 % (theory for tau = 0.05: +2.6 %).
    net = sb.from_antimony(TWO_STAGE_HIGH)
    times = np.arange(0.0, 50.0 + 93_750.0 + 1.0, 2.0)
    out, st = simulate(net, times, 16, 2024, TauLeap(epsilon=0.01))
    assert st["rejections"] == 0 and st["ssa_steps"] == 0
    P = out[:, times >= 50.0, 1]
    M = out[:, times >= 50.0, 0]
    fano_exact = 1.0 + 5.0 / 1.1
    mean_err = P.mean() / 5e4 - 1.0
    fano_err = P.var() / P.mean() / fano_exact - 1.0
    assert abs(mean_err) < 0.02 and abs(fano_err) < 0.02
    assert abs(M.mean() / 1000.0 - 1.0) < 0.02
    # and the statement about the bias: within 4 standard errors of the theory for tau = 0.05
    assert abs(fano_err - 0.0042) < 4 * 0.0041


def test_time_and_state_triggered_events() -> None:
    # E1 resets X at t = 5 and doubles the immigration (a time trigger: the run stops there
    # exactly; the output at 5 shows the values after the event, as for ode/ssa).  E2 stops the
    # immigration once X > 1500 (a state trigger, located to the leap; unreachable before t = 5,
    # where X ~ 1000 +- 32).  X(6) has the exact mean 2000 (1 - e^-1) = 1264 (sd ~ 36: E2 has
    # not fired yet); tau-leaping's mean follows the explicit Euler recursion
    # m += tau (k - g m), which relaxes faster than exp(-g t): with CGP's leaps here it is high
    # by ~0.5 %, so the band is 1 %.  By t = 20, X has decayed from ~1500 for ~13.6 time units.
    # The recorded parameter k shows both events.
    net = sb.from_antimony(
        """
        model ev
          X = 0
          R1: -> X; k
          R2: X -> ; g*X
          k = 1000; g = 1
          E1: at time > 5: X = 0, k = 2000
          E2: at X > 1500: k = 0
        end
        """
    )
    runs = 1000
    out, st = simulate(net, [0.0, 4.0, 5.0, 6.0, 20.0], runs, 9, vars=["X", "k"])
    X, k = out[..., 0], out[..., 1]
    assert np.all(X[:, 2] == 0)  # the output at the event time shows the reset
    m6 = 2000 * (1 - math.exp(-1.0))
    assert abs(X[:, 3].mean() / m6 - 1.0) < 0.01
    assert np.all(k[:, :2] == 1000) and np.all(k[:, 2:4] == 2000) and np.all(k[:, 4] == 0)
    assert st["event_executions"] == 2 * runs
    assert np.all(X[:, 4] < 5)


def test_event_that_sets_a_fraction_is_refused() -> None:
    net = sb.from_antimony(IMMIGRATION_DEATH.replace("end", "E1: at time > 1: X = 2.5\nend"))
    with pytest.raises(SolverError, match=r"'X'.*2\.5.*whole"):
        simulate(net, [0.0, 2.0], 2, 1)


def test_negative_propensity_names_the_reaction_and_time() -> None:
    # k (5 - X) turns negative once R2 pushes X above 5.
    net = sb.from_antimony(
        """
        model neg
          X = 0
          R1: -> X; k*(5 - X)
          R2: -> X; 1
          k = 1
        end
        """
    )
    with pytest.raises(SolverError, match=r"reaction 'R1' became negative at t = ") as err:
        simulate(net, [0.0, 100.0], 1, 1)
    assert err.value.variable == "R1" and err.value.time is not None and err.value.time > 0


def test_options_are_checked() -> None:
    with pytest.raises(OptionError, match="epsilon"):
        TauLeap(epsilon=1.5)
    with pytest.raises(OptionError, match="n_critical"):
        TauLeap(n_critical=-1)
    with pytest.raises(OptionError, match="ssa_threshold"):
        TauLeap(ssa_threshold=float("nan"))
    assert TauLeap().options() == {
        "epsilon": 0.03, "n_critical": 10, "ssa_threshold": 10.0, "counts_per_amount": None,
    }  # fmt: skip
    assert TauLeap.name == "tau-leap" and not TauLeap.exact and TauLeap.stochastic
