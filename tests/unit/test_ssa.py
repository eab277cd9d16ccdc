"""Exact SSA (``scalebridge.wellmixed.ssa``) against mathematics.

Reference answers are closed forms (immigration-death is Poisson at every time from zero;
birth-death moments; a closed monomolecular network is multinomial), exact CME distributions
computed here by ``scipy.linalg.expm`` of generators built by hand (not by scalebridge's FSP),
and exact statements about events.  Every statistical check states its false-failure
probability; seeds are fixed, so each test is deterministic (the probabilities say how likely a
correct simulator with an arbitrary seed would be to fail).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from scipy import stats
from scipy.linalg import expm

import scalebridge as sb
from scalebridge.errors import ModelError, OptionError, SolverError
from scalebridge.model import ReactionNetwork
from scalebridge.problem import TimeCourse
from scalebridge.wellmixed.propensity import stream_states
from scalebridge.wellmixed.ssa import SSA

VARIANTS = ("direct", "composition-rejection", "rssa")
P_MIN = 1e-6  # chi-square tests fail a correct simulator with this probability
SIGMA = 5.0  # z bands: two-sided 5.7e-7 per comparison


def model(text: str) -> ReactionNetwork:
    return sb.from_antimony(text)


def simulate(
    net: ReactionNetwork,
    times: Sequence[float],
    runs: int,
    seed: int,
    variant: str = "direct",
    vars: Sequence[str] | None = None,
    chunks: Sequence[int] | None = None,
) -> tuple[np.ndarray, dict[str, int]]:
    """``out[run, time, var]`` of ``runs`` runs (streams from SeedSequence(seed).spawn)."""
    problem = TimeCourse(net, np.asarray(times, float), vars=None if vars is None else tuple(vars))
    method = SSA(variant=variant)
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


def chi2_pvalue(samples: np.ndarray, pmf: Callable[[np.ndarray], np.ndarray], kmax: int) -> float:
    """Pearson chi-square p-value of integer ``samples`` against ``pmf`` on 0..kmax (the tail
    above kmax pooled into one bin; bins with expectation < 5 merged into their neighbours)."""
    n = samples.size
    k = np.arange(kmax + 1)
    p = np.append(pmf(k), 0.0)
    p[-1] = max(0.0, 1.0 - p[:-1].sum())
    obs = np.bincount(np.minimum(samples.astype(np.int64), kmax + 1), minlength=kmax + 2)
    return _pooled_pvalue(obs.astype(float), n * p)


def _pooled_pvalue(obs: np.ndarray, exp: np.ndarray) -> float:
    o_bins, e_bins = [], []
    o_acc = e_acc = 0.0
    for o, e in zip(obs, exp, strict=True):
        o_acc += o
        e_acc += e
        if e_acc >= 5.0:
            o_bins.append(o_acc)
            e_bins.append(e_acc)
            o_acc = e_acc = 0.0
    if e_acc > 0 or o_acc > 0:
        if e_bins:
            o_bins[-1] += o_acc
            e_bins[-1] += e_acc
        else:
            o_bins.append(o_acc)
            e_bins.append(e_acc)
    o_arr, e_arr = np.array(o_bins), np.array(e_bins)
    if np.any((e_arr == 0) & (o_arr > 0)):
        return 0.0  # an impossible value was observed
    stat = float(np.sum((o_arr - e_arr) ** 2 / e_arr))
    return float(stats.chi2.sf(stat, max(len(e_arr) - 1, 1)))


def mean_z(x: np.ndarray, mu: float, var: float) -> float:
    return float((x.mean() - mu) / math.sqrt(var / x.size))


def variance_z(x: np.ndarray, var: float) -> float:
    """z of the sample variance against ``var`` (its sd from the sample's 4th central moment)."""
    n = x.size
    d = x - x.mean()
    m4 = float(np.mean(d**4))
    sd = math.sqrt(max(m4 - var**2 * (n - 3) / (n - 1), 1e-300) / n)
    return float((x.var(ddof=1) - var) / sd)


# --- immigration-death and birth-death -------------------------------------------------------
IMMIGRATION_DEATH = """
J1: -> X; alpha
J2: X -> ; mu*X
X = 0; alpha = 10; mu = 1
"""


@pytest.mark.parametrize("variant", VARIANTS)
def test_immigration_death_is_poisson_at_every_time(variant: str) -> None:
    # From X(0) = 0, X(t) ~ Poisson(alpha/mu (1 - e^(-mu t))) exactly, stationary Poisson(10).
    net = model(IMMIGRATION_DEATH)
    times = [0.0, 0.3, 1.0, 2.5, 20.0]
    out, st = simulate(net, times, 10_000, seed=11, variant=variant)
    assert np.all(out[:, 0, 0] == 0)
    assert st["events"] > 0
    for i, t in enumerate(times[1:], start=1):
        lam = 10.0 * (1 - math.exp(-t))
        x = out[:, i, 0]
        # chi-square at p = 1e-6; mean and variance in 5-sigma bands (5.7e-7 each)
        assert chi2_pvalue(x, lambda k, lam=lam: stats.poisson.pmf(k, lam), 40) > P_MIN, t
        assert abs(mean_z(x, lam, lam)) < SIGMA, t
        assert abs(variance_z(x, lam)) < SIGMA, t


@pytest.mark.parametrize("variant", VARIANTS)
def test_birth_death_transient_mean_and_variance(variant: str) -> None:
    # X -> 2X (lam), X -> 0 (mu) from x0: E = x0 e^(rt), Var = x0 (lam+mu)/r e^(rt) (e^(rt) - 1)
    # with r = lam - mu (a linear birth-death process; Bailey 1964).
    lam, mu, x0 = 0.3, 0.2, 20
    net = model(f"J1: X -> 2X; lam*X\nJ2: X -> ; mu*X\nX = {x0}; lam = {lam}; mu = {mu}")
    times = [0.0, 2.0, 5.0]
    out, _ = simulate(net, times, 10_000, seed=12, variant=variant)
    r = lam - mu
    for i, t in enumerate(times[1:], start=1):
        g = math.exp(r * t)
        mean, var = x0 * g, x0 * (lam + mu) / r * g * (g - 1)
        x = out[:, i, 0]
        assert abs(mean_z(x, mean, var)) < SIGMA  # 5.7e-7
        assert abs(variance_z(x, var)) < SIGMA  # 5.7e-7


# --- exact CME by expm -----------------------------------------------------------------------
def cme_distribution(
    x0: tuple[int, ...],
    reactions: list[tuple[Callable[[tuple[int, ...]], float], tuple[int, ...]]],
    t: float,
) -> dict[tuple[int, ...], float]:
    """p(x, t) of the chemical master equation by expm of the generator over the states
    reachable from ``x0`` (finite for the networks used here); ``reactions`` are
    (propensity function, state change) pairs written by hand."""
    index = {x0: 0}
    states = [x0]
    edges = []
    q = 0
    while q < len(states):
        x = states[q]
        for prop, change in reactions:
            a = prop(x)
            if a > 0:
                y = tuple(xi + d for xi, d in zip(x, change, strict=True))
                assert min(y) >= 0
                if y not in index:
                    index[y] = len(states)
                    states.append(y)
                edges.append((q, index[y], a))
        q += 1
        assert len(states) < 2000
    n = len(states)
    Q = np.zeros((n, n))
    for i, j, a in edges:
        Q[i, j] += a
        Q[i, i] -= a
    p0 = np.zeros(n)
    p0[0] = 1.0
    p = p0 @ expm(Q * t)
    return {s: float(p[i]) for i, s in enumerate(states)}


def joint_pvalue(samples: np.ndarray, exact: dict[tuple[int, ...], float]) -> float:
    """Chi-square p-value of sampled states (rows) against an exact distribution."""
    keys = sorted(exact, key=lambda s: -exact[s])
    pos = {s: i for i, s in enumerate(keys)}
    obs = np.zeros(len(keys) + 1)
    for row in samples:
        obs[pos.get(tuple(int(v) for v in row), len(keys))] += 1
    exp = np.append([exact[s] for s in keys], 0.0) * samples.shape[0]
    # pool from the least likely states upwards; an unreachable state observed fails outright
    if obs[-1] > 0:
        return 0.0
    order = np.argsort(exp[:-1])
    return _pooled_pvalue(obs[:-1][order], exp[:-1][order])


DIMER = [
    # state (P, P2); 2P -> P2 at k1 P (P - 1) / 2, P2 -> 2P at k2 P2
    (lambda x: 0.02 * x[0] * (x[0] - 1) / 2, (-2, 1)),
    (lambda x: 0.5 * x[1], (2, -1)),
]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    "law",
    [
        "k1*P*P/2",  # recognised as mass action: combinatorial form
        "k1*P*(P - 1)/2",  # used as written (a general law, run by the compiled program)
    ],
)
def test_dimerisation_matches_the_exact_cme(law: str, variant: str) -> None:
    net = model(f"J1: 2P -> P2; {law}\nJ2: P2 -> 2P; k2*P2\nP = 30; P2 = 0; k1 = 0.02; k2 = 0.5")
    t = 0.7
    exact = cme_distribution((30, 0), DIMER, t)
    out, _ = simulate(net, [0.0, t], 10_000, seed=13, variant=variant, vars=["P", "P2"])
    assert np.all(out[:, 1, 0] + 2 * out[:, 1, 1] == 30)  # conservation, exactly
    assert joint_pvalue(out[:, 1, :], exact) > P_MIN  # chi-square at p = 1e-6


@pytest.mark.parametrize("variant", VARIANTS)
def test_bimolecular_network_matches_the_exact_cme(variant: str) -> None:
    # A + B -> C (k1 A B), C -> A + B (k2 C), C -> A (k3 C), B + B -> D (k4 B (B-1)/2)
    k1, k2, k3, k4 = 0.1, 0.3, 0.2, 0.05
    net = model(
        f"""
        J1: A + B -> C; k1*A*B
        J2: C -> A + B; k2*C
        J3: C -> A; k3*C
        J4: 2B -> D; k4*B^2/2
        A = 6; B = 8; C = 0; D = 0; k1 = {k1}; k2 = {k2}; k3 = {k3}; k4 = {k4}
        """
    )
    reactions = [
        (lambda x: k1 * x[0] * x[1], (-1, -1, 1, 0)),
        (lambda x: k2 * x[2], (1, 1, -1, 0)),
        (lambda x: k3 * x[2], (1, 0, -1, 0)),
        (lambda x: k4 * x[1] * (x[1] - 1) / 2, (0, -2, 0, 1)),
    ]
    t = 1.5
    exact = cme_distribution((6, 8, 0, 0), reactions, t)
    out, _ = simulate(net, [0.0, t], 10_000, seed=14, variant=variant, vars=["A", "B", "C", "D"])
    assert joint_pvalue(out[:, 1, :], exact) > P_MIN  # chi-square at p = 1e-6


@pytest.mark.parametrize("variant", VARIANTS)
def test_third_order_reactions_match_the_exact_cme(variant: str) -> None:
    # 3X -> Y at k1 X (X-1) (X-2) / 6 (the law k1 X^3/6 gets the combinatorial form), Y -> 3X,
    # A + B + X -> C at k3 A B X: the kernels' general mass-action product (order > 2).
    k1, k2, k3 = 0.01, 0.4, 0.02
    net = model(
        f"""
        J1: 3X -> Y; k1*X^3/6
        J2: Y -> 3X; k2*Y
        J3: A + B + X -> C; k3*A*B*X
        X = 9; Y = 0; A = 4; B = 3; C = 0; k1 = {k1}; k2 = {k2}; k3 = {k3}
        """
    )
    reactions = [
        (lambda x: k1 * x[0] * (x[0] - 1) * (x[0] - 2) / 6, (-3, 1, 0, 0, 0)),
        (lambda x: k2 * x[1], (3, -1, 0, 0, 0)),
        (lambda x: k3 * x[2] * x[3] * x[0], (-1, 0, -1, -1, 1)),
    ]
    t = 2.0
    exact = cme_distribution((9, 0, 4, 3, 0), reactions, t)
    names = ["X", "Y", "A", "B", "C"]
    out, _ = simulate(net, [0.0, t], 10_000, seed=21, variant=variant, vars=names)
    assert joint_pvalue(out[:, 1, :], exact) > P_MIN  # chi-square at p = 1e-6


# --- a larger monomolecular network: multinomial ---------------------------------------------
def ring_network(n: int, rng: np.random.Generator) -> tuple[ReactionNetwork, np.ndarray]:
    """S0 .. S(n-1), each S_i -> S_(i+1) and S_i -> S_(i+3) (mod n) with rates spanning 1e-2 to
    1e2 (propensities over fifteen binary orders of magnitude: many composition-rejection
    groups and moves between them); all 100 molecules start in S0.  Returns the network and the
    one-molecule generator."""
    lines, Q = [], np.zeros((n, n))
    for i in range(n):
        for step in (1, 3):
            j = (i + step) % n
            k = float(10 ** rng.uniform(-2, 2))
            lines.append(f"R{i}_{j}: S{i} -> S{j}; k{i}_{j}*S{i}\nk{i}_{j} = {k!r}")
            Q[i, j] += k
            Q[i, i] -= k
    lines.append("; ".join(f"S{i} = {100 if i == 0 else 0}" for i in range(n)))
    return model("\n".join(lines)), Q


@pytest.mark.parametrize("variant", VARIANTS)
def test_monomolecular_network_is_multinomial(variant: str) -> None:
    # Molecules move independently, so counts at t are Multinomial(100, e_0 expm(Q t)).
    n = 24
    net, Q = ring_network(n, np.random.default_rng(3))
    t = 0.8
    p = expm(Q * t)[0]
    names = [f"S{i}" for i in range(n)]
    out, st = simulate(net, [0.0, t], 4000, seed=15, variant=variant, vars=names)
    x = out[:, 1, :]
    assert np.all(x.sum(axis=1) == 100)
    if variant == "composition-rejection":
        assert st["rejections"] > 0
    # 24 species x 5-sigma bands: false failure <= 24 x 5.7e-7
    for i in range(n):
        mean, var = 100 * p[i], 100 * p[i] * (1 - p[i])
        if var > 1e-9:
            assert abs(mean_z(x[:, i], mean, var)) < SIGMA, i


# --- variants, reproducibility, chunking -----------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS[1:])
def test_variants_agree_with_the_direct_method(variant: str) -> None:
    net = model(
        """
        J1: -> M; 10
        J2: M -> ; 1*M
        J3: M -> M + P; 5*M
        J4: P -> ; 0.1*P
        M = 0; P = 0
        """
    )
    a, _ = simulate(net, [0.0, 3.0, 10.0], 5000, seed=16, variant="direct")
    b, _ = simulate(net, [0.0, 3.0, 10.0], 5000, seed=17, variant=variant)
    for i in (1, 2):
        for k in (0, 1):
            # two-sample Kolmogorov-Smirnov on integer data (conservative), p = 1e-6
            assert stats.ks_2samp(a[:, i, k], b[:, i, k]).pvalue > P_MIN


@pytest.mark.parametrize("variant", VARIANTS)
def test_runs_are_reproducible_and_independent_of_chunking(variant: str) -> None:
    net = model(IMMIGRATION_DEATH + "\nJ3: 2X -> Y; 0.01*X*X/2\nY = 0")
    times = np.linspace(0, 5, 11)
    a, sa = simulate(net, times, 12, seed=5, variant=variant)
    b, sb_ = simulate(net, times, 12, seed=5, variant=variant, chunks=[1, 4, 7])
    c, _ = simulate(net, times, 12, seed=6, variant=variant)
    np.testing.assert_array_equal(a, b)
    assert sa == sb_
    assert not np.array_equal(a, c)
    # an output array in another memory layout gets the same values
    problem = TimeCourse(net, times)
    method = SSA(variant=variant)
    fortran = np.asfortranarray(np.zeros_like(a))
    method.run_runs(method.prepare(problem), stream_states(np.random.SeedSequence(5).spawn(12)),
                    fortran)  # fmt: skip
    np.testing.assert_array_equal(fortran, a)


def test_value_outputs_and_the_general_path() -> None:
    # y = 2X is recorded by value.  Asking for a value output takes the general kernel instead of
    # the mass-action fast path: the species columns must not change (same draws, same sums).
    net = model(IMMIGRATION_DEATH + "\ny := 2*X")
    times = np.linspace(0, 5, 21)
    fast, _ = simulate(net, times, 50, seed=7, vars=["X"])
    general, _ = simulate(net, times, 50, seed=7, vars=["X", "y", "alpha"])
    np.testing.assert_array_equal(general[:, :, 0], fast[:, :, 0])
    np.testing.assert_array_equal(general[:, :, 1], 2 * general[:, :, 0])
    assert np.all(general[:, :, 2] == 10.0)


def test_zero_propensity_everywhere_stops_cleanly() -> None:
    net = model("J1: X -> ; 2*X\nX = 5")
    out, st = simulate(net, np.linspace(0, 100, 11), 100, seed=8)
    assert np.all(out[:, -1, 0] == 0)
    assert st["events"] == 500  # every molecule dies exactly once


# --- events ----------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_time_triggered_event(variant: str) -> None:
    # DSMTS 00028: immigration-death from 0, X = 50 at t >= 25.  After the reset the 50
    # molecules survive independently (Binomial(50, q), q = e^(-mu s)) and immigrants are
    # Poisson(alpha/mu (1 - q)).
    net = model(IMMIGRATION_DEATH + "\nalpha = 1; mu = 0.1\nE1: at time >= 25: X = 50")
    times = np.arange(0.0, 51.0)
    out, st = simulate(net, times, 4000, seed=18, variant=variant)
    assert st["event_executions"] == 4000
    x = out[:, :, 0]
    assert np.all(x[:, 25] == 50)  # an output time at the event shows the post-event value
    for t in (10, 24, 26, 30, 50):
        if t < 25:
            mean = var = 10 * (1 - math.exp(-0.1 * t))
        else:
            q = math.exp(-0.1 * (t - 25))
            mean = 50 * q + 10 * (1 - q)
            var = 50 * q * (1 - q) + 10 * (1 - q)
        assert abs(mean_z(x[:, t], mean, var)) < SIGMA, t  # 5.7e-7 each


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_triggered_event(variant: str) -> None:
    # A Poisson process N(t) (rate 2) with X reset to 0 whenever it reaches 10 and a counter of
    # resets: X = N mod 10 and X + 10 resets = N ~ Poisson(2 t) exactly; X never shows 10.
    net = model(
        """
        J1: -> X; k
        X = 0; k = 2; resets = 0
        E1: at X >= 10: X = 0, resets = resets + 1
        """
    )
    times = [0.0, 4.0, 12.0]
    out, st = simulate(net, times, 4000, seed=19, variant=variant, vars=["X", "resets"])
    x, resets = out[:, :, 0], out[:, :, 1]
    assert x.max() <= 9
    n = x[:, -1] + 10 * resets[:, -1]
    assert st["event_executions"] == int(resets[:, -1].sum())
    assert chi2_pvalue(n, lambda k: stats.poisson.pmf(k, 24.0), 60) > P_MIN  # p = 1e-6

    def mod10(k: np.ndarray) -> np.ndarray:
        return np.array([stats.poisson.pmf(np.arange(r, 200, 10), 8.0).sum() for r in k])

    assert chi2_pvalue(x[:, 1], mod10, 9) > P_MIN  # p = 1e-6


def test_delayed_event() -> None:
    # Y jumps to 1 one time unit after X first reaches 3 (birth at rate 1 from 0); the delay is
    # scheduled when the trigger rises, so Y = 1 exactly from T3 + 1, where T3 ~ Gamma(3, 1).
    net = model(
        """
        J1: -> X; 1
        X = 0; Y = 0
        E1: at 1 after X >= 3: Y = 1
        """
    )
    t, n = 4.0, 5000
    out, _ = simulate(net, [0.0, t], n, seed=20, vars=["X", "Y"])
    frac = out[:, 1, 1].mean()
    p = stats.gamma.cdf(t - 1.0, 3)  # 0.58; without the delay it would be 0.76
    assert abs(frac - p) < SIGMA * math.sqrt(p * (1 - p) / n)  # 5.7e-7


def test_non_integer_event_assignment_is_refused() -> None:
    net = model(IMMIGRATION_DEATH + "\nE1: at time >= 1.5: X = 2.5")
    with pytest.raises(SolverError, match=r"'X'.*2\.5.*t = 1\.5") as err:
        simulate(net, [0.0, 3.0], 2, seed=1)
    assert err.value.variable == "X"
    assert err.value.time == pytest.approx(1.5)


# --- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_negative_propensity_names_the_reaction_and_time(variant: str) -> None:
    # Y counts up at rate 1; J2's law 10 - Y turns negative once Y reaches 11.
    net = model("J1: -> Y; 1\nJ2: X -> ; 10 - Y\nX = 1000; Y = 0")
    with pytest.raises(SolverError, match=r"reaction 'J2'.*negative.*t = ") as err:
        simulate(net, [0.0, 100.0], 3, seed=2, variant=variant)
    assert err.value.variable == "J2"
    assert err.value.time is not None and 0 < err.value.time < 100


@pytest.mark.parametrize("variant", VARIANTS)
def test_negative_rate_constant_fails_at_the_start(variant: str) -> None:
    net = model("J1: -> X; k\nJ2: X -> ; 0.1*X\nk = -1; X = 0")
    with pytest.raises(SolverError, match=r"reaction 'J1'.*t = 0"):
        simulate(net, [0.0, 1.0], 2, seed=3, variant=variant)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("J1: -> X; 1 + sqrt(5 - X)\nX = 0", r"reaction 'J1'.*NaN"),  # sqrt of -1 at X = 6
        ("J1: -> X; 1\nJ2: -> Y; 1/(3 - X)\nX = 0; Y = 0", r"reaction 'J2'.*infinite"),
    ],
)
def test_nan_and_infinite_propensities_are_refused(variant: str, text: str, what: str) -> None:
    with pytest.raises(SolverError, match=what):
        simulate(model(text), [0.0, 1000.0], 1, seed=3, variant=variant)


def test_non_integer_stoichiometry_is_refused_at_prepare() -> None:
    net = model("J1: 2.5 A -> B; k*A\nA = 10; B = 0; k = 1")
    with pytest.raises(ModelError, match=r"J1.*non-integer stoichiometry"):
        SSA().prepare(TimeCourse(net, np.array([0.0, 1.0])))


def test_options_are_checked() -> None:
    with pytest.raises(OptionError, match="variant"):
        SSA(variant="next-reaction")
    with pytest.raises(OptionError, match="counts_per_amount"):
        SSA(counts_per_amount=-1.0)
    m = SSA(variant="composition-rejection")
    assert m.options() == {
        "variant": "composition-rejection",
        "record_events": False,
        "counts_per_amount": None,
    }
    assert (m.name, m.exact, m.stochastic) == ("ssa", True, True)


# --- every event recorded --------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_record_events(variant: str) -> None:
    net = model(
        """
        J1: -> X; 3
        J2: X -> ; 0.5*X
        X = 2; resets = 0
        E1: at X >= 8: X = 1, resets = resets + 1
        """
    )
    times = np.linspace(0.0, 20.0, 41)
    problem = TimeCourse(net, times, vars=("X", "resets"))
    method = SSA(variant=variant, record_events=True)
    res = method.solve_events(problem, seed=9)
    t = res.time
    x = res["X"].to_numpy()
    resets = res["resets"].to_numpy()
    n_exec = res.stats["event_executions"]
    assert res.stats["events"] + n_exec + 2 == t.size
    assert t[0] == 0.0 and t[-1] == 20.0 and np.all(np.diff(t) >= 0)
    assert x[0] == 2 and n_exec == resets[-1] > 0
    steps = np.diff(x)
    is_event = np.diff(resets) == 1
    assert set(steps[~is_event][:-1]) <= {-1.0, 1.0}  # one reaction per row
    assert np.all(x[1:][is_event] == 1)
    # The same seed on the time grid (run 0 of an ensemble) follows the same path.
    grid, _ = simulate(net, times, 1, seed=9, variant=variant, vars=["X", "resets"])
    row = np.searchsorted(t, times, side="right") - 1
    np.testing.assert_array_equal(grid[0, :, 0], x[row])
    np.testing.assert_array_equal(grid[0, :, 1], resets[row])
    with pytest.raises(OptionError, match="solve_events"):
        method.run_runs(method.prepare(problem), stream_states([np.random.SeedSequence(1)]),
                        np.zeros((1, times.size, 2)))  # fmt: skip
