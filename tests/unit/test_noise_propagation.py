"""Noise propagation (``scalebridge.noise.propagation``) against closed forms.

* Linear g(P) = a + b P: the delta method is exact, E = a + b m, Var = b^2 s^2.
* g(P) = P^2: E = m^2 + s^2 and Var = E P^4 - (E P^2)^2; for Poisson(l) Var(P^2) =
  4 l^3 + 6 l^2 + l, so the delta method misses -s^2 in the mean and 6 l^2 + l in the variance,
  exactly the second-order terms g'' s^2 / 2 and g' g'' mu_3 + g''^2 (mu_4 - s^4) / 4
  (g''' = 0).
* A Hill function on a negative-binomial count: the predicted second-order error becomes
  exact as the count grows (relative mismatch O(1/m)).
* Tissue averages: s^2 / N, s^2 (1 + (N - 1) rho) / N, and the bounds on rho.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats

import scalebridge as sb
from scalebridge.errors import ModelError, OptionError
from scalebridge.noise import (
    Phenotype,
    ensemble_samples,
    fsp_marginal,
    propagate,
    tissue_average,
    tissue_variance,
)


def poisson(lam: float) -> tuple[np.ndarray, np.ndarray]:
    k = np.arange(0, int(lam + 20 * math.sqrt(lam) + 30))
    return k.astype(float), stats.poisson.pmf(k, lam)


def negbin(mean: float, fano: float) -> tuple[np.ndarray, np.ndarray]:
    p = 1.0 / fano
    r = mean * p / (1 - p)
    k = np.arange(0, int(mean + 25 * math.sqrt(mean * fano) + 30))
    return k.astype(float), stats.nbinom.pmf(k, r, p)


def test_delta_method_is_exact_for_linear_g():
    rep = propagate("3 + 2*P", distribution=negbin(40.0, 5.0))
    assert rep.delta_mean == pytest.approx(3 + 2 * 40.0, rel=1e-10)
    assert abs(rep.mean_error) < 1e-10 * rep.exact_mean
    assert abs(rep.var_error) < 1e-10 * rep.exact_var
    assert rep.exact_var == pytest.approx(4 * 40.0 * 5.0, rel=1e-8)  # b^2 Var P
    rng = np.random.default_rng(4)
    x = rng.poisson(25.0, 5000)
    rep = propagate("a*P - c", samples=x, params={"a": 0.5, "c": 1})
    assert rep.exact_mean == pytest.approx(rep.delta_mean, rel=1e-12)
    assert rep.exact_var == pytest.approx(rep.delta_var, rel=1e-12)


@pytest.mark.parametrize("lam", [3.0, 50.0, 400.0])
def test_square_on_poisson_error_is_the_second_order_term(lam):
    rep = propagate("P^2", distribution=poisson(lam))
    assert rep.exact_mean == pytest.approx(lam * lam + lam, rel=1e-12)
    assert rep.exact_var == pytest.approx(4 * lam**3 + 6 * lam**2 + lam, rel=1e-10)
    assert rep.mean_error == pytest.approx(-lam, rel=1e-9)
    assert rep.var_error == pytest.approx(-(6 * lam**2 + lam), rel=1e-9)
    assert rep.predicted_mean_error == pytest.approx(rep.mean_error, rel=1e-9)
    assert rep.predicted_var_error == pytest.approx(rep.var_error, rel=1e-8)


def test_square_on_negative_binomial_error_is_the_second_order_term():
    rep = propagate("P^2", distribution=negbin(60.0, 8.0))
    assert rep.predicted_mean_error == pytest.approx(rep.mean_error, rel=1e-9)
    assert rep.predicted_var_error == pytest.approx(rep.var_error, rel=1e-8)
    assert rep.mean_error == pytest.approx(-60.0 * 8.0, rel=1e-9)  # -Var P


def test_hill_on_negative_binomial_error_approaches_the_second_order_term():
    """Relative mismatch between the delta method's actual and predicted errors, for counts
    with mean m (Fano 4) through a Hill function with K = 0.8 m: O(1/m) for the mean (falls
    by ~4 per 4x m) and small for the variance at the largest m."""
    mism_mean, mism_var, rel_err = [], [], []
    for m in (100.0, 400.0, 1600.0, 6400.0):
        rep = propagate("P^2/(K^2 + P^2)", distribution=negbin(m, 4.0), params={"K": 0.8 * m})
        mism_mean.append(abs(rep.mean_error / rep.predicted_mean_error - 1))
        mism_var.append(abs(rep.var_error / rep.predicted_var_error - 1))
        rel_err.append(abs(rep.mean_error) / rep.exact_mean)
    # the delta method's own error falls like 1/m (2.2 % at m = 100)
    assert rel_err[0] < 0.03
    for a, b in itertools.pairwise(rel_err):
        assert b == pytest.approx(a / 4, rel=0.15)
    assert mism_mean[0] < 0.06
    for a, b in itertools.pairwise(mism_mean):
        assert b < a / 3
    assert mism_var[-1] < 0.1
    assert mism_var == sorted(mism_var, reverse=True)


def test_samples_and_distribution_side_by_side():
    """Exact E[g(P)] from samples agrees with the distribution within its standard error."""
    g = "P^3/(20^3 + P^3)"
    ref = propagate(g, distribution=poisson(20.0))
    rng = np.random.default_rng(7)
    rep = propagate(g, samples=rng.poisson(20.0, 20_000))
    # 5 standard errors: two-sided false-failure probability 6e-7 for each check
    assert abs(rep.exact_mean - ref.exact_mean) < 5 * rep.exact_mean_se
    assert abs(rep.exact_var - ref.exact_var) < 5 * rep.exact_var_se
    d = json.loads(json.dumps(rep.to_dict(), allow_nan=False))
    assert d["source"] == "samples" and d["n"] == 20_000
    assert d["delta_error"]["mean"] == pytest.approx(rep.delta_mean - rep.exact_mean)
    assert "delta method" in rep.summary() and "exact" in rep.summary()


def test_with_fsp_and_ssa_results():
    net = sb.from_antimony(
        "model m\n species X = 0\n b: -> X; 12\n d: X -> ; 0.4*X\nend"
    )  # stationary Poisson(30)
    fsp = sb.simulate(net, "fsp", times=[0.0, 40.0], tol=1e-10)
    counts, probs = fsp_marginal(fsp, "X")
    rep = propagate("sqrt(P)", distribution=(counts, probs))
    ref = propagate("sqrt(P)", distribution=poisson(30.0 * (1 - math.exp(-16.0))))
    assert rep.exact_mean == pytest.approx(ref.exact_mean, rel=1e-8)
    assert rep.lost_mass < 1e-9
    ens = sb.simulate(net, "ssa", times=[0.0, 40.0], runs=400, seed=5)
    x = ensemble_samples(ens, "X")
    assert x.shape == (400,)
    rep2 = propagate("sqrt(P)", samples=x)
    assert abs(rep2.exact_mean - ref.exact_mean) < 5 * rep2.exact_mean_se
    with pytest.raises(OptionError, match="marginal"):
        fsp_marginal(ens, "X")
    with pytest.raises(OptionError, match="ensemble"):
        ensemble_samples(fsp, "X")


def test_phenotype_parsing_is_safe_and_strict():
    with pytest.raises(ModelError):
        Phenotype.parse("__import__('os').system('true')")
    with pytest.raises(ModelError, match="exactly one free variable"):
        Phenotype.parse("P/(K + P)")
    with pytest.raises(ModelError, match="no value"):
        Phenotype.parse("P/(K + P)", variable="P")
    ph = Phenotype.parse("P/(K + P)", params={"K": 10})
    assert ph.variable == "P"
    assert ph(np.array([10.0, 30.0])) == pytest.approx([0.5, 0.75])
    assert ph.slope(10.0) == pytest.approx(10 / 20**2)
    with pytest.raises(OptionError, match="exactly one"):
        propagate("P", mean=1.0, var=1.0, samples=[1, 2])
    rep = propagate("exp(P/10)", mean=10.0, var=4.0)
    assert rep.exact_mean is None and rep.delta_var == pytest.approx((math.e / 10) ** 2 * 4)


def test_tissue_averaging():
    assert tissue_variance(9.0, 3) == pytest.approx(3.0)
    v = tissue_variance(9.0, [1, 3, 9], rho=0.25)
    assert v == pytest.approx(9.0 * (1 + (np.array([1, 3, 9]) - 1) * 0.25) / np.array([1, 3, 9]))
    t = tissue_average(4.0, [1, 10, 100, 1000], cell_mean=10.0)
    assert t.variance == pytest.approx([4.0, 0.4, 0.04, 0.004])
    assert t.cv == pytest.approx(np.sqrt([4.0, 0.4, 0.04, 0.004]) / 10.0)
    # least N with sd_N / mean <= 0.01: 4 / N <= 0.01 -> N = 400
    assert t.least_cells(0.01) == 400
    corr = tissue_average(4.0, [1, 10, 100], rho=0.1, cell_mean=10.0)
    assert corr.floor == pytest.approx(0.4)
    assert corr.least_cells(0.05) is None  # 0.25 <= rho s^2 = 0.4: unreachable
    # 0.25 > 0.16 = rho s^2 with rho = 0.04: N >= 4 (0.96) / (0.25 - 0.16) = 42.67 -> 43
    assert tissue_average(4.0, 1, rho=0.04, cell_mean=10.0).least_cells(0.05) == 43
    with pytest.raises(OptionError, match="positive semi-definite"):
        tissue_variance(1.0, [2, 5], rho=-0.3)  # needs rho >= -1/4
    assert tissue_variance(1.0, 5, rho=-0.25) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(OptionError):
        tissue_variance(1.0, 3, rho=1.5)
    with pytest.raises(OptionError, match="positive integers"):
        tissue_variance(1.0, [0, 2])
    d = json.loads(json.dumps(corr.to_dict(), allow_nan=False))
    assert d["variance_floor"] == pytest.approx(0.4)
    assert "floor" in corr.summary()


def test_tissue_from_a_phenotype_report():
    rep = propagate("2*P", distribution=poisson(10.0))
    t = tissue_average(rep, [1, 4])
    assert t.cell_var == pytest.approx(40.0, rel=1e-10)
    assert t.variance[1] == pytest.approx(10.0, rel=1e-10)
    assert t.cell_mean == pytest.approx(20.0, rel=1e-10)
