"""Fisher information of PEtab problems against closed forms.

Models (all with one species x, x(0) = 0 unless stated, a compartment of size 1):

* linear:   dx/dt = a, y = x + b          -> y = a t + b; F = X^T X / sigma^2, X = [t, 1];
  with an estimated noise sd: F_sd,sd = 2 N / sd^2 (lin scale) and no coupling;
* product:  dx/dt = a*b (y = x + c)       -> only a*b is seen: in log coordinates the null
  direction is (1, -1)/sqrt(2) and a*b is the identifiable combination;
* power:    dx/dt = a^2*b                  -> null direction (1, -2): a/b^2 moves, a^2*b is seen;
* decay:    dx/dt = -k x, x(0) = 1, y = A x -> F from the analytic sensitivities, and the
  Cramér–Rao standard deviations against the spread of maximum-likelihood estimates over
  noisy replicates (computed here by Gauss-Newton on the closed form).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import scalebridge as sb
from scalebridge.errors import OptionError
from scalebridge.infer.fim import fisher_information, monomial_text
from scalebridge.infer.petab_problem import load_petab
from scalebridge.model.sbml import write_sbml

YAML = """format_version: 1
parameter_file: parameters.tsv
problems:
- condition_files: [conditions.tsv]
  measurement_files: [measurements.tsv]
  observable_files: [observables.tsv]
  sbml_files: [model.xml]
"""


def _problem(
    tmp: Path,
    reactions: str,
    observables: list[tuple[str, str, str]],
    parameters: list[tuple[str, str, float]],
    measurements: list[tuple[str, float, float, str]],
    x0: float = 0.0,
    model_params: dict[str, float] | None = None,
) -> Path:
    """A one-species problem; observables (id, formula, noise formula); parameters (id, scale,
    nominal), all estimated; measurements (observable, time, value, noise override)."""
    decl = "\n".join(f"  {k} = {v};" for k, v in (model_params or {}).items())
    ant = (
        f"model m\n  compartment cell = 1;\n  species x in cell;\n{reactions}\n"
        f"  x = {x0};\n{decl}\nend\n"
    )
    write_sbml(sb.from_antimony(ant), tmp / "model.xml")
    (tmp / "problem.yaml").write_text(YAML)
    (tmp / "conditions.tsv").write_text("conditionId\tconditionName\nc0\tonly\n")
    obs = "observableId\tobservableFormula\tnoiseFormula\tnoiseDistribution\n"
    obs += "".join(f"{o}\t{f}\t{n}\tnormal\n" for o, f, n in observables)
    (tmp / "observables.tsv").write_text(obs)
    par = "parameterId\tparameterScale\tlowerBound\tupperBound\tnominalValue\testimate\n"
    par += "".join(f"{p}\t{s}\t-100\t100\t{v!r}\t1\n" if s == "lin" else
                   f"{p}\t{s}\t1e-6\t1e6\t{v!r}\t1\n" for p, s, v in parameters)  # fmt: skip
    (tmp / "parameters.tsv").write_text(par)
    mea = "observableId\tsimulationConditionId\ttime\tmeasurement\tnoiseParameters\n"
    mea += "".join(f"{o}\tc0\t{t!r}\t{m!r}\t{n}\n" for o, t, m, n in measurements)
    (tmp / "measurements.tsv").write_text(mea)
    return tmp / "problem.yaml"


TIMES = [0.5, 1.0, 2.0, 3.0, 4.5, 6.0]


def _linear(tmp: Path, scale: str, noise: bool) -> Path:
    a, b, sd = 1.7, 0.6, 0.3
    nf = "noiseParameter1_y" if noise else repr(sd)
    params = [("a", scale, a), ("b", scale, b)] + ([("sd", "lin", sd)] if noise else [])
    rng = np.random.default_rng(1)
    meas = [("y", t, a * t + b + 0.1 * rng.standard_normal(), "sd" if noise else "")
            for t in TIMES]  # fmt: skip
    return _problem(
        tmp, "  J0: -> x; a;", [("y", "x + b", nf)], params, meas, model_params={"a": a}
    )


def test_linear_gaussian_fim_is_xtx_over_sigma_squared(tmp_path: Path):
    res = fisher_information(load_petab(_linear(tmp_path, "lin", noise=False)))
    X = np.column_stack([TIMES, np.ones(len(TIMES))])
    want = X.T @ X / 0.3**2
    np.testing.assert_allclose(res.fim, want, rtol=1e-8)
    assert res.rank == 2 and not res.unseen
    lam = np.linalg.eigvalsh(want)
    assert math.isclose(res.condition_number, lam[-1] / lam[0], rel_tol=1e-8)
    # Cramér–Rao: x +/- z sqrt((F^-1)_ii), z = 1.959964 for alpha = 0.95
    cov = np.linalg.inv(want)
    z = 1.959963984540054
    for i, p in enumerate(("a", "b")):
        lo, hi = res.cramer_rao[p]
        v = (1.7, 0.6)[i]
        assert math.isclose(lo, v - z * math.sqrt(cov[i, i]), rel_tol=1e-8)
        assert math.isclose(hi, v + z * math.sqrt(cov[i, i]), rel_tol=1e-8)


def test_noise_parameter_information_and_log10_scale(tmp_path: Path):
    (tmp_path / "lin").mkdir()
    (tmp_path / "log").mkdir()
    res = fisher_information(load_petab(_linear(tmp_path / "lin", "lin", noise=True)))
    X = np.column_stack([TIMES, np.ones(len(TIMES))])
    want = np.zeros((3, 3))
    want[:2, :2] = X.T @ X / 0.3**2
    want[2, 2] = 2 * len(TIMES) / 0.3**2  # a Gaussian scale parameter carries 2/sd^2 each
    np.testing.assert_allclose(res.fim, want, rtol=1e-8, atol=1e-8)
    # On log10 scale dx/dp = p ln 10: F_log10 = D F D with D = diag(p ln 10).
    res10 = fisher_information(load_petab(_linear(tmp_path / "log", "log10", noise=True)))
    d = np.diag([1.7 * math.log(10), 0.6 * math.log(10), 1.0])
    np.testing.assert_allclose(res10.fim, d @ want @ d, rtol=1e-8, atol=1e-8)


def test_product_is_seen_only_as_a_product(tmp_path: Path):
    meas = [("y", t, 0.3 * 2.0 * t + 0.5, "") for t in TIMES]
    path = _problem(
        tmp_path,
        "  J0: -> x; a*b;",
        [("y", "x + c", "0.2")],
        [("a", "log10", 0.3), ("b", "log10", 2.0), ("c", "lin", 0.5)],
        meas,
        model_params={"a": 0.3, "b": 2.0},
    )
    res = fisher_information(load_petab(path))
    assert res.rank == 2 and math.isinf(res.condition_number)
    assert res.eigenvalues[0] <= 1e-12 * res.eigenvalues[-1]
    null = res.eigenvectors[:, 0]
    np.testing.assert_allclose(np.abs(null), [2**-0.5, 2**-0.5, 0.0], atol=1e-8)
    assert null[0] * null[1] < 0  # log10 a up, log10 b down
    (u,) = res.unseen
    assert u.exponents in ({"a": 1, "b": -1}, {"a": -1, "b": 1})
    assert math.isclose(abs(u.vector["a"]), 2**-0.5) and u.vector["a"] * u.vector["b"] < 0
    assert "scaled inversely" in u.text
    assert res.identifiable_combinations == ["a*b"]
    assert res.combination_exponents == [{"a": 1, "b": 1}]
    assert res.unseen_parameters == ["a", "b"]
    assert res.cramer_rao["a"] == (0.0, math.inf) and res.cramer_rao["b"] == (0.0, math.inf)
    # c is seen: its interval is finite, from the pseudo-inverse on the seen subspace.
    # Closed form: y = q t + c with q = a*b, so the (q, c) information is X^T X / sigma^2 and
    # var(c) is its inverse's (2, 2) entry (reparametrising a, b -> q does not change it).
    X = np.column_stack([TIMES, np.ones(len(TIMES))])
    var_c = np.linalg.inv(X.T @ X / 0.04)[1, 1]
    lo, hi = res.cramer_rao["c"]
    assert math.isclose((hi - lo) / 2, 1.959963984540054 * math.sqrt(var_c), rel_tol=1e-7)
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["cramer_rao"]["a"]["upper"] is None and d["condition_number"] is None


def test_non_unit_exponents_and_linear_scale_directions(tmp_path: Path):
    # dx/dt = a^2*b: along (d ln a, d ln b) = (1, -2) the rate a^2*b is unchanged.
    # b on linear scale: the direction must still come out in log coordinates.
    meas = [("y", t, 0.5**2 * 3.0 * t, "") for t in TIMES]
    path = _problem(
        tmp_path,
        "  J0: -> x; a^2*b;",
        [("y", "x", "0.1")],
        [("a", "log", 0.5), ("b", "lin", 3.0)],
        meas,
        model_params={"a": 0.5, "b": 3.0},
    )
    res = fisher_information(load_petab(path))
    assert res.rank == 1
    (u,) = res.unseen
    assert u.exponents in ({"a": 1, "b": -2}, {"a": -1, "b": 2})
    assert res.identifiable_combinations == ["a^2*b"]
    # the eigenvector in x = (ln a, b) coordinates: (1, -2 b) normalised
    v = res.eigenvectors[:, 0]
    want = np.array([1.0, -2 * 3.0]) / math.hypot(1.0, 6.0)
    assert abs(abs(float(v @ want)) - 1.0) < 1e-10


def _decay(tmp: Path, k: float, amp: float, sd: float, data: np.ndarray) -> Path:
    meas = [("y", t, float(m), "") for t, m in zip(TIMES, data, strict=True)]
    return _problem(
        tmp,
        "  J0: x -> ; k*x;",
        [("y", "A*x", repr(sd))],
        [("k", "log10", k), ("A", "log10", amp)],
        meas,
        x0=1.0,
        model_params={"k": k},
    )


def test_cramer_rao_matches_the_spread_of_maximum_likelihood_estimates(tmp_path: Path):
    k, amp, sd = 0.4, 5.0, 0.05
    t = np.array(TIMES)
    mean = amp * np.exp(-k * t)
    res = fisher_information(load_petab(_decay(tmp_path, k, amp, sd, mean)))
    # analytic sensitivities on log10 scale
    ln10 = math.log(10)
    J = np.column_stack([-t * mean * k * ln10, mean * ln10]) / sd
    np.testing.assert_allclose(res.fim, J.T @ J, rtol=1e-7)
    # Maximum-likelihood estimates of (log10 k, log10 A) over noisy replicates: vectorised
    # Gauss-Newton on the closed form y = A exp(-k t).
    rng = np.random.default_rng(7)
    n_rep = 2000
    data = mean + sd * rng.standard_normal((n_rep, len(t)))
    th = np.tile([math.log10(k), math.log10(amp)], (n_rep, 1))
    for _ in range(20):
        kk, aa = 10.0 ** th[:, :1], 10.0 ** th[:, 1:]
        y = aa * np.exp(-kk * t)
        r = data - y
        j = np.stack([-t * y * kk * ln10, y * ln10], axis=2)  # (rep, time, 2)
        jtj = np.einsum("rti,rtj->rij", j, j)
        jtr = np.einsum("rti,rt->ri", j, r)
        th = th + np.linalg.solve(jtj, jtr[..., None])[..., 0]
    emp_sd = th.std(axis=0, ddof=1)
    # sd estimate from 2000 replicates: relative standard error ~ 1/sqrt(2*2000) = 1.6 %
    np.testing.assert_allclose(emp_sd, res.standard_errors, rtol=0.08)
    # coverage of the 95 % intervals
    lo = np.array([math.log10(res.cramer_rao[p][0]) for p in ("k", "A")])
    hi = np.array([math.log10(res.cramer_rao[p][1]) for p in ("k", "A")])
    # the intervals are centred at the truth here; shift them to each estimate
    half = (hi - lo) / 2
    cover = np.mean(np.abs(th - [math.log10(k), math.log10(amp)]) <= half, axis=0)
    assert np.all(np.abs(cover - 0.95) < 0.025)


def test_options_and_table(tmp_path: Path):
    pb = load_petab(_linear(tmp_path, "lin", noise=False))
    with pytest.raises(OptionError):
        fisher_information(pb, alpha=1.5)
    with pytest.raises(OptionError):
        fisher_information(pb, np.zeros(5))
    res = fisher_information(pb, np.array([2.0, 1.0]), alpha=0.9)
    tab = res.table()
    assert list(tab["parameter"]) == ["a", "b"]
    assert np.all(np.isfinite(tab["sd"])) and np.all(tab["unseen_component"] < 1e-8)
    assert "rank 2 of 2" in res.format()
    res.plot(tmp_path / "fim.png")
    assert (tmp_path / "fim.png").stat().st_size > 1000


def test_monomial_text():
    assert monomial_text({"koff": 1, "kon": -1}) == "koff/kon"
    assert monomial_text({"a": 2, "b": 1, "c": -1, "d": -3}) == "a^2*b/(c*d^3)"
    assert monomial_text({"kon": -1}) == "1/kon"
