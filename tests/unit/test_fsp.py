"""Finite state projection of the CME (``method="fsp"``) against closed forms, independent
dense solutions and the DSMTS analytic reference files.

References used here:
* immigration-death (0 -> X at alpha, X -> 0 at mu X) from X(0) = 0: X(t) is Poisson with mean
  (alpha / mu)(1 - e^{-mu t}); the stationary law is Poisson(alpha / mu);
* two-stage gene expression (0 -> M, M -> 0, M -> M + P, P -> 0; linear propensities): the
  moment equations close, and the stationary protein Fano factor is 1 + k_p / (gamma_m + gamma_p);
* dimerisation 2P <-> P2 conserves P + 2 P2, so the CME is a finite linear system that a dense
  matrix exponential solves exactly;
* DSMTS cases 00001 (birth-death), 00019 (with an assignment rule), 00030 (dimerisation) and
  00037 (burst immigration): means and sds from their analytic solutions, to 5e-6 or better.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
from scipy import stats
from scipy.integrate import solve_ivp

import scalebridge as sb
from scalebridge.errors import OptionError, SolverError, UnsupportedFeatureError
from scalebridge.problem import TimeCourse
from scalebridge.results import Result
from scalebridge.wellmixed.fsp import FSP

DSMTS = Path(__file__).resolve().parents[1] / "data" / "dsmts"


def model(text: str) -> sb.ReactionNetwork:
    return sb.from_antimony(f"model m\n{text}\nend")


def solve(net: sb.ReactionNetwork, times, **options) -> Result:  # type: ignore[no-untyped-def]
    return FSP(**options).solve(TimeCourse(net, np.asarray(times, dtype=float)))


ALPHA, MU = 12.0, 0.8  # immigration-death, stationary mean 15
IMMIGRATION_DEATH = (
    f" species X = 0\n birth: -> X; alpha\n death: X -> ; mu*X\n alpha = {ALPHA}; mu = {MU}"
)
KM, GM, KP, GP = 2.0, 1.0, 2.0, 0.2
GENE = (
    " species M = 0, P = 0\n tx: -> M; km\n md: M -> ; gm*M\n tl: -> P; kp*M\n pd: P -> ; gp*P\n"
    f" km = {KM}; gm = {GM}; kp = {KP}; gp = {GP}"
)


def poisson_l1(p: np.ndarray, counts: np.ndarray, lam: float) -> float:
    """|| p - Poisson(lam) ||_1 over all counts, ``p`` given on ``counts`` (zero elsewhere)."""
    ref = stats.poisson.pmf(counts, lam) if lam > 0 else (counts == 0).astype(float)
    return float(np.abs(p - ref).sum() + max(0.0, 1.0 - ref.sum()))


# ---------------------------------------------------------------------- immigration-death
def test_immigration_death_stationary_is_poisson_to_1e_8_in_total_variation():
    res = solve(model(IMMIGRATION_DEATH), [0.0, 1.0], tol=1e-10, stationary=True)
    assert res.time.tolist() == [math.inf]
    p = res["X-marginal"].values[0]
    tv = 0.5 * poisson_l1(p, res.data["X-count"].values, ALPHA / MU)
    assert tv < 1e-8  # measured: 2.6e-13
    assert res.mean()["X"].values[0] == pytest.approx(ALPHA / MU, rel=1e-9)
    assert res.sd()["X"].values[0] == pytest.approx(math.sqrt(ALPHA / MU), rel=1e-9)
    assert res.stats["truncation_error_kind"] == "estimate"


@pytest.mark.parametrize("tol", [1e-3, 1e-6, 1e-10])
def test_stationary_error_estimate_against_the_exact_poisson_error(tol):
    """The estimate is the exit flux times the time an excursion spends outside; for this
    reversible chain the truncation is the conditioned Poisson law, whose 1-norm error is
    twice the Poisson mass outside.  The estimate must cover it without being loose."""
    res = solve(model(IMMIGRATION_DEATH), [0.0], tol=tol, stationary=True)
    (estimate,) = res.stats["truncation_error"]
    true = poisson_l1(res["X-marginal"].values[0], res.data["X-count"].values, ALPHA / MU)
    assert estimate <= tol
    assert true <= estimate <= 1.5 * true  # measured ratios 1.009 .. 1.046


@pytest.mark.parametrize("tol", [1e-3, 1e-6, 1e-9])
def test_immigration_death_transient_is_poisson_within_the_reported_error(tol):
    """From X(0) = 0 on an unequally spaced grid: the reported sink mass eps(t) equals the
    1-norm error of the (unnormalised) projected solution, up to rounding."""
    times = np.array([0.0, 0.4, 1.0, 2.5, 4.0, 9.0])
    res = solve(model(IMMIGRATION_DEATH), times, tol=tol)
    errors = np.array(res.stats["truncation_error"])
    assert res.stats["truncation_error_kind"] == "bound"
    assert errors[-1] <= tol and np.all(np.diff(errors) >= -1e-15)
    counts = res.data["X-count"].values
    for k, t in enumerate(times):
        lam = ALPHA / MU * (1.0 - math.exp(-MU * t))
        l1 = poisson_l1(res["X-marginal"].values[k], counts, lam)
        assert l1 <= errors[k] + 1e-13, (t, l1, errors[k])
        assert l1 >= errors[k] - 1e-12, (t, l1, errors[k])  # exact: the bound is tight
        assert res.mean()["X"].values[k] == pytest.approx(lam, rel=tol, abs=1e-12)


# ---------------------------------------------------------------------- two-stage gene model
def test_gene_model_stationary_fano_factor_matches_the_exact_value():
    res = solve(model(GENE), [0.0], tol=1e-8, stationary=True)
    mean, sd = res.mean(), res.sd()
    m_p = KP * KM / (GM * GP)
    assert mean["M"].values[0] == pytest.approx(KM / GM, rel=1e-7)
    assert mean["P"].values[0] == pytest.approx(m_p, rel=1e-7)
    fano = sd["P"].values[0] ** 2 / mean["P"].values[0]
    exact = 1.0 + KP / (GM + GP)
    assert abs(fano / exact - 1.0) < 0.005  # the required accuracy
    assert abs(fano / exact - 1.0) < 1e-6  # achieved: about 1e-9
    assert sd["M"].values[0] ** 2 == pytest.approx(KM / GM, rel=1e-6)  # M is Poisson


def gene_moments(times: np.ndarray) -> np.ndarray:
    """Exact means and variances (M, P, var M, var P) of the linear gene network from zero:
    d mu / dt = J mu + b and d C / dt = J C + C J^T + Q(mu), closed for linear propensities."""
    J = np.array([[-GM, 0.0], [KP, -GP]])

    def rhs(_t: float, y: np.ndarray) -> np.ndarray:
        mu, C = y[:2], y[2:].reshape(2, 2)
        dmu = J @ mu + np.array([KM, 0.0])
        Q = np.diag([KM + GM * mu[0], KP * mu[0] + GP * mu[1]])
        return np.concatenate([dmu, (J @ C + C @ J.T + Q).ravel()])

    sol = solve_ivp(rhs, (times[0], times[-1]), np.zeros(6), t_eval=times, method="DOP853",
                    rtol=1e-12, atol=1e-13)  # fmt: skip
    return np.stack([sol.y[0], sol.y[1], sol.y[2], sol.y[5]], axis=1)


def test_gene_model_transient_moments_match_the_exact_moment_equations():
    times = np.linspace(0.0, 15.0, 16)
    res = solve(model(GENE), times, tol=1e-9)
    exact = gene_moments(times)
    mean, sd = res.mean(), res.sd()
    np.testing.assert_allclose(mean["M"].values, exact[:, 0], rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(mean["P"].values, exact[:, 1], rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(sd["M"].values ** 2, exact[:, 2], rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(sd["P"].values ** 2, exact[:, 3], rtol=1e-6, atol=1e-10)


def joint_by_state(res: Result, k: int) -> dict[tuple[int, ...], float]:
    names = [c for c in res.data.coords if str(c).endswith("-state")]
    keys = zip(*(res.data[c].values.tolist() for c in names), strict=True)
    return dict(zip(keys, res["probability"].values[k].tolist(), strict=True))


def test_reported_error_bounds_the_true_error_against_a_much_larger_projection():
    """For several tolerances, ||p_ref - p_tol||_1 with a reference at tol 1e-12 brackets the
    true error: err_true is within l1 +- err_ref, and the report must cover it (tightly)."""
    times = np.linspace(0.0, 12.0, 5)
    ref = solve(model(GENE), times, tol=1e-12)
    err_ref = ref.stats["truncation_error"]
    for tol in (1e-2, 1e-4, 1e-6):
        res = solve(model(GENE), times, tol=tol)
        err = res.stats["truncation_error"]
        assert err[-1] <= tol
        for k in range(times.size):
            a, b = joint_by_state(ref, k), joint_by_state(res, k)
            l1 = sum(abs(a.get(s, 0.0) - b.get(s, 0.0)) for s in a.keys() | b.keys())
            assert l1 - err_ref[k] <= err[k] + 1e-12, (tol, k)
            assert err[k] <= l1 + err_ref[k] + 1e-12, (tol, k)


def test_uniformization_and_expm_multiply_agree():
    """The two exponential integrators on the same problem (an unequally spaced grid and an
    equally spaced one): the same projection, distributions equal to rounding."""
    for times in (np.array([0.0, 0.3, 1.0, 4.0, 6.5]), np.linspace(0.0, 6.0, 13)):
        a = solve(model(GENE), times, tol=1e-7)
        b = solve(model(GENE), times, tol=1e-7, propagator="expm")
        assert a.stats["n_states"] == b.stats["n_states"]
        assert a.stats["products"] > 0 and b.stats["products"] == 0
        pa, pb = a["probability"].values, b["probability"].values
        assert np.abs(pa - pb).sum(axis=1).max() < 1e-12
        np.testing.assert_allclose(a.stats["truncation_error"], b.stats["truncation_error"],
                                   rtol=1e-6, atol=1e-14)  # fmt: skip


# ---------------------------------------------------------------------- bimolecular, conserved
def test_dimerisation_matches_a_dense_matrix_exponential_of_the_full_space():
    """2P -> P2 with the mass-action law k1*P^2/2, which gets the combinatorial propensity
    k1 P (P - 1) / 2; P2 -> 2P at k2 P2.  P + 2 P2 = N: the states are P2 = 0 .. N/2."""
    N, k1, k2 = 24, 0.05, 0.4
    net = model(
        f" species P = {N}, P2 = 0\n dim: 2 P -> P2; k1*P^2/2\n dis: P2 -> 2 P; k2*P2\n"
        f" k1 = {k1}; k2 = {k2}"
    )
    times = np.array([0.0, 0.1, 0.5, 2.0, 10.0])
    res = solve(net, times, tol=1e-14)
    # independent dense generator on d = P2 = 0 .. N/2
    n = N // 2 + 1
    G = np.zeros((n, n))
    for d in range(n):
        p = N - 2 * d
        up = k1 * p * (p - 1) / 2  # dimerisation: d -> d + 1
        down = k2 * d  # dissociation: d -> d - 1
        if d + 1 < n:
            G[d + 1, d] += up
        if d > 0:
            G[d - 1, d] += down
        G[d, d] -= up + down
    p0 = np.zeros(n)
    p0[0] = 1.0
    assert res.stats["n_states"] == n  # the whole conserved space, nothing more
    assert max(res.stats["truncation_error"]) < 1e-14  # nothing can leave it: rounding only
    for k, t in enumerate(times):
        exact = scipy.linalg.expm(G * t) @ p0
        got = joint_by_state(res, k)
        fsp = np.array([got[(N - 2 * d, d)] for d in range(n)])
        assert np.abs(fsp - exact).sum() < 1e-12, t
    # the marginal of P2 is the joint summed over states with that count
    P2 = res.data["P2-state"].values
    marg = res["P2-marginal"].values
    joint = res["probability"].values
    for c_idx, c in enumerate(res.data["P2-count"].values):
        np.testing.assert_allclose(marg[:, c_idx], joint[:, P2 == c].sum(axis=1), atol=1e-15)


# ---------------------------------------------------------------------- DSMTS analytic cases
@pytest.mark.parametrize("case", ["00001", "00019", "00030", "00037"])
def test_dsmts_means_and_sds_match_the_analytic_reference(case):
    ref = pd.read_csv(DSMTS / case / f"{case}-results.csv")
    net = sb.load(DSMTS / case / f"{case}-sbml-l3v2.xml")
    res = solve(net, ref["time"].to_numpy(dtype=float), tol=1e-9)
    table = res.to_dataframe()
    for column in ref.columns[1:]:
        # the files give 5 to 9 significant decimals
        np.testing.assert_allclose(table[column], ref[column], rtol=1e-7, atol=2e-5,
                                   err_msg=column)  # fmt: skip


# ---------------------------------------------------------------------- result layout
def test_result_layout_files_and_statistics(tmp_path):
    times = np.linspace(0.0, 4.0, 5)
    res = solve(model(GENE), times, tol=1e-6)
    assert res.n_runs is None and res.stats["seed"] is None and res.stats["method"] == "fsp"
    assert res.moment_variables() == {"M": "M-sd", "P": "P-sd"}
    assert res["M"].dims == ("time",) and res["M"].attrs["statistic"] == "mean"
    assert res["P-sd"].attrs == {"statistic": "sd", "of": "P"}
    assert res["P-marginal"].dims == ("time", "P-count")
    assert res["probability"].dims == ("time", "state")
    n = res.stats["n_states"]
    assert res.data.sizes["state"] == n and res.data["M-state"].dims == ("state",)
    # the distribution is the projected solution: it sums to 1 - eps(t)
    err = np.array(res.stats["truncation_error"])
    np.testing.assert_allclose(res["probability"].values.sum(axis=1), 1.0 - err, atol=1e-14)
    np.testing.assert_allclose(res["M-marginal"].values.sum(axis=1), 1.0 - err, atol=1e-14)
    # states are distinct and in lexicographic order
    states = np.stack([res.data["M-state"].values, res.data["P-state"].values], axis=1)
    assert len({tuple(s) for s in states.tolist()}) == n
    assert np.all(np.lexsort(states.T[::-1]) == np.arange(n))
    # moments agree with the marginals (normalised: conditioned on the projection)
    marg, counts = res["P-marginal"].values, res.data["P-count"].values
    mean_from_marginal = (marg @ counts) / marg.sum(axis=1)
    np.testing.assert_allclose(res.mean()["P"].values, mean_from_marginal, rtol=1e-12)
    assert set(res.stats) >= {"n_states", "truncation_error", "wall_time_s", "projection"}

    res.to_csv(tmp_path / "m.csv")
    table = pd.read_csv(tmp_path / "m.csv", float_precision="round_trip")
    assert list(table.columns) == ["time", "M-mean", "P-mean", "M-sd", "P-sd"]
    np.testing.assert_array_equal(table["P-sd"], res.sd()["P"].values)
    res.to_netcdf(tmp_path / "m.nc")
    back = Result.from_netcdf(tmp_path / "m.nc")
    assert back.data.identical(res.data) and back.stats == res.stats
    assert back.mean().identical(res.mean())

    lean = solve(model(GENE), times, tol=1e-6, joint=False)
    assert "probability" not in lean and "state" not in lean.data.dims
    np.testing.assert_array_equal(lean["P-marginal"].values, res["P-marginal"].values)


def test_assignment_rule_outputs_and_parameters_are_reported_state_by_state():
    net = model(IMMIGRATION_DEATH + "\n y := 3*X + 1\n species Z = 7")
    res = FSP(tol=1e-9).solve(TimeCourse(net, np.array([0.0, 2.0]), vars=("X", "y", "mu", "Z")))
    mx, sx = res.mean()["X"].values, res.sd()["X"].values
    np.testing.assert_allclose(res.mean()["y"].values, 3 * mx + 1, rtol=1e-12)
    np.testing.assert_allclose(res.sd()["y"].values, 3 * sx, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.mean()["mu"].values, MU, rtol=1e-14)
    np.testing.assert_allclose(res.sd()["mu"].values, 0.0, atol=1e-12)
    assert res.mean()["Z"].values.tolist() == [7.0, 7.0]  # no reaction changes Z
    assert "y-marginal" not in res and "X-marginal" in res


# ---------------------------------------------------------------------- limits and refusals
def test_state_space_limit_says_how_large_and_how_to_change_it():
    net = model(
        " species X = 0, Y = 0\n bx: -> X; 100\n by: -> Y; 100\n dx: X -> ; X\n dy: Y -> ; Y"
    )
    times = [0.0, 0.2]
    with pytest.raises(OptionError) as info:
        solve(net, times, tol=1e-6, max_states=500)
    msg = str(info.value)
    assert "max_states=500" in msg and "FSP(max_states=" in msg
    # how large it would be: the estimate against the projection actually needed
    estimate = float(
        msg.split("whole projection is about ")[1].split(" states")[0].replace(",", "")
    )
    needed = solve(net, times, tol=1e-6).stats["n_states"]
    assert needed > 500
    assert needed / 2 <= estimate <= 2 * needed  # measured: 2,116 estimated, 2,116 needed


def test_no_stationary_distribution_hits_the_limit_with_a_hint():
    with pytest.raises(OptionError, match="no stationary distribution"):
        solve(model(" species X = 0\n b: -> X; 1"), [0.0], stationary=True, max_states=200)


def test_events_are_refused_naming_the_event():
    net = sb.load(DSMTS / "00028" / "00028-sbml-l3v2.xml")
    with pytest.raises(UnsupportedFeatureError, match="'reset'"):
        solve(net, [0.0, 1.0])


def test_a_law_that_would_make_counts_negative_names_the_reaction():
    with pytest.raises(SolverError, match=r"'leak'.*negative"):
        solve(model(" species X = 3\n leak: X -> ; k\n k = 1"), [0.0, 1.0])
    with pytest.raises(SolverError, match=r"'grow'.*propensity -"):
        solve(model(" species X = 0\n grow: -> X; 4.5 - X"), [0.0, 10.0])


def test_time_dependent_output_is_refused_for_a_stationary_distribution():
    net = model(IMMIGRATION_DEATH + "\n z := X*time")
    with pytest.raises(UnsupportedFeatureError, match="'z'"):
        FSP(stationary=True).solve(TimeCourse(net, np.array([0.0]), vars=("z",)))
    res = FSP(tol=1e-8).solve(TimeCourse(net, np.array([0.0, 1.0, 2.0]), vars=("X", "z")))
    np.testing.assert_allclose(res.mean()["z"].values, res.mean()["X"].values * [0, 1, 2])


@pytest.mark.parametrize(
    "options",
    [
        {"tol": 0.0},
        {"tol": 1.5},
        {"max_states": 0},
        {"counts_per_amount": -1.0},
        {"propagator": "krylov"},
    ],
)
def test_bad_options(options):
    with pytest.raises(OptionError):
        FSP(**options)
