"""Profile likelihoods (scalebridge.infer.profile) against closed forms.

* Linear-Gaussian (observable a*t + b, known sigma): profiling out b leaves exactly
  ``PL(a) - min = (a - a_hat)^2 / (2 var_a)`` with ``var = sigma^2 (T'T)^-1``, and the 95 %
  interval is ``a_hat +/- z_0.975 sd_a``.
* Non-identifiable (observable a*b*t): only the product is determined, the profile of a is flat
  (b compensates), and the interval is the whole bound range.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from scalebridge.errors import ModelError, OptionError
from scalebridge.infer.estimate import fit
from scalebridge.infer.profile import profile_likelihood

from .test_estimate import (
    TIMES,
    decay_problem,
    decay_truth,
    linear_data,
    linear_problem,
    ols,
    write_problem,
)

SIGMA = 0.2


def test_linear_gaussian_profile_is_the_closed_form_parabola(tmp_path: Path):
    data = linear_data(seed=2)
    pb = linear_problem(tmp_path, data)
    hat, inv = ols(data)
    cov = SIGMA**2 * inv
    res = profile_likelihood(pb, hat, workers=1)
    z = norm.ppf(0.975)
    assert res.profiles.keys() == {"a", "b"}
    for k, p in enumerate(res.profiles.values()):
        sd = math.sqrt(cov[k, k])
        assert p.threshold == pytest.approx(res.nllh_opt + 1.920729, abs=1e-6)
        np.testing.assert_allclose(
            p.nllh - res.nllh_opt, (p.values - hat[k]) ** 2 / (2 * cov[k, k]), atol=1e-9
        )
        assert abs(p.ci[0] - (hat[k] - z * sd)) < 1e-3 * sd
        assert abs(p.ci[1] - (hat[k] + z * sd)) < 1e-3 * sd
        assert p.identifiable and p.reliable and p.flags == []
        assert np.all(np.diff(p.values) > 0)
        assert p.values[0] < p.ci[0] and p.values[-1] > p.ci[1]  # traced past both ends
        assert p.x.shape == (p.values.size, 2)
        np.testing.assert_array_equal(p.x[:, k], p.values)
    # the other parameter follows its conditional optimum b(a) = b_hat + cov_ab/var_a (a - a_hat)
    pa = res.profiles["a"]
    want_b = hat[1] + cov[0, 1] / cov[0, 0] * (pa.values - hat[0])
    np.testing.assert_allclose(pa.x[:, 1], want_b, atol=1e-8)
    table = res.table()
    assert list(table["parameter"]) == ["a", "b"]
    assert table["identifiable"].all()


def test_alpha_sets_the_threshold(tmp_path: Path):
    data = linear_data(seed=2)
    pb = linear_problem(tmp_path, data)
    hat, inv = ols(data)
    res = profile_likelihood(pb, hat, parameters=["a"], alpha=0.68, workers=1)
    sd = SIGMA * math.sqrt(inv[0, 0])
    z = norm.ppf(0.84)
    lo, hi = res.profiles["a"].ci
    assert abs(lo - (hat[0] - z * sd)) < 1e-3 * sd and abs(hi - (hat[0] + z * sd)) < 1e-3 * sd


def test_product_only_gives_a_flat_profile_and_an_infinite_interval(tmp_path: Path):
    # b's range is wide enough to compensate any a within a's bounds
    pars = "a\tlog10\t0.01\t100\t1\t1\nb\tlog10\t0.0001\t10000\t1\t1\n"
    data = 0.5 * TIMES + 0.05 * np.random.default_rng(3).standard_normal(TIMES.size)
    pb = write_problem(tmp_path, model="linear", parameters=pars, observable="a*b*X",
                       noise="0.05", data=data)  # fmt: skip
    best = fit(pb, starts=2, seed=0, workers=1)
    res = profile_likelihood(pb, best.x_best, parameters=["a"], workers=1)
    for p in res.profiles.values():
        assert p.ci == (-math.inf, math.inf)
        assert not p.identifiable
        assert "hits-lower-bound" in p.flags and "hits-upper-bound" in p.flags
        assert np.ptp(p.nllh) < 1e-6  # flat
        assert p.values[0] == pytest.approx(-2.0) and p.values[-1] == pytest.approx(2.0)
        # the product a*b stays at its estimate along the profile
        np.testing.assert_allclose(p.x.sum(axis=1), best.x_best.sum(), atol=1e-6)
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert d["profiles"]["a"]["ci"] == [None, None]
    assert d["profiles"]["a"]["ci_unbounded"] == [True, True]


def test_starting_off_the_optimum_is_flagged(tmp_path: Path):
    data = linear_data(seed=2)
    pb = linear_problem(tmp_path, data)
    hat, _ = ols(data)
    res = profile_likelihood(pb, hat + np.array([0.0, 0.3]), parameters=["a"], workers=1)
    p = res.profiles["a"]
    assert "better-optimum-found" in p.flags and not p.reliable


def test_decay_profiles_parallel_equal_serial_and_plot(tmp_path: Path):
    rng = np.random.default_rng(5)
    pb = decay_problem(tmp_path, decay_truth() + 0.05 * rng.standard_normal(TIMES.size))
    best = fit(pb, starts=2, seed=1, workers=1)
    one = profile_likelihood(pb, best.x_best, workers=1)
    two = profile_likelihood(pb, best.x_best, workers=2)
    assert two.stats["backend"] == "processes"
    for name in ("k", "A0"):
        p1, p2 = one.profiles[name], two.profiles[name]
        np.testing.assert_array_equal(p1.values, p2.values)
        np.testing.assert_array_equal(p1.nllh, p2.nllh)
        assert p1.ci == p2.ci
        assert p1.identifiable and p1.reliable
        # the interval ends lie on the threshold: re-check independently with a 1-D fit
        assert p1.ci[0] < best.x_best[list(one.profiles).index(name)] < p1.ci[1]
        assert np.interp(p1.ci[0], p1.values, p1.nllh) == pytest.approx(p1.threshold, abs=0.02)
        assert np.interp(p1.ci[1], p1.values, p1.nllh) == pytest.approx(p1.threshold, abs=0.02)
    out = tmp_path / "profiles.png"
    one.plot(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_profile_options_are_checked(tmp_path: Path):
    pb = decay_problem(tmp_path, decay_truth())
    with pytest.raises(ModelError, match="zz"):
        profile_likelihood(pb, pb.x_nominal, parameters=["zz"], workers=1)
    with pytest.raises(OptionError):
        profile_likelihood(pb, pb.x_nominal, alpha=1.5, workers=1)
    with pytest.raises(OptionError):
        profile_likelihood(pb, [1.0], workers=1)
