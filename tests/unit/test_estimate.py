"""Multi-start estimation (scalebridge.infer.estimate) against closed forms.

Problems written here (PEtab v1, one species X):

* linear: ``0 -> X`` at rate 1 with X(0) = 0, so X(t) = t, and the observable ``a*X + b``
  with known normal noise: the maximum-likelihood estimate is ordinary least squares,
  ``theta = (T'T)^-1 T'm``, with covariance ``sigma^2 (T'T)^-1``; with sigma estimated too,
  ``sigma_hat^2 = RSS / n``;
* decay: ``X -> 0`` at rate ``k X`` with X(0) = A0 (an estimated initial value through the
  condition table), observable X: X(t) = A0 exp(-k t).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from scalebridge.errors import ModelError, OptionError
from scalebridge.infer.estimate import fit, latin_hypercube
from scalebridge.infer.petab_gradient import PetabGradient
from scalebridge.infer.petab_problem import PetabProblem, load_petab

BOEHM = (
    Path(__file__).resolve().parents[1]
    / "data/petab-benchmark/Boehm_JProteomeRes2014/Boehm_JProteomeRes2014.yaml"
)

_SBML = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version1/core" level="3" version="1">
  <model id="m">
    <listOfCompartments><compartment id="c" size="1" constant="true"/></listOfCompartments>
    <listOfSpecies>
      <species id="X" compartment="c" initialConcentration="{x0}" hasOnlySubstanceUnits="false"
               boundaryCondition="false" constant="false"/>
    </listOfSpecies>
    <listOfParameters><parameter id="{p}" value="1" constant="true"/></listOfParameters>
    <listOfReactions>
      <reaction id="r" reversible="false" fast="false">
        <{role}><speciesReference species="X" stoichiometry="1" constant="true"/></{role}>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">{law}</math></kineticLaw>
      </reaction>
    </listOfReactions>
  </model>
</sbml>
"""
_YAML = """format_version: 1
parameter_file: parameters.tsv
problems:
- condition_files: [conditions.tsv]
  measurement_files: [measurements.tsv]
  observable_files: [observables.tsv]
  sbml_files: [model.xml]
"""
PAR_HEADER = "parameterId\tparameterScale\tlowerBound\tupperBound\tnominalValue\testimate\n"
TIMES = np.array([0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0])


def write_problem(
    tmp: Path,
    *,
    model: str,
    parameters: str,
    observable: str,
    noise: str,
    data: np.ndarray,
    times: np.ndarray = TIMES,
    conditions: str = "conditionId\nc0\n",
    distribution: str = "normal",
) -> PetabProblem:
    """A one-observable PEtab problem in ``tmp``: ``model`` "linear" (X = t) or "decay"."""
    if model == "linear":
        sbml = _SBML.format(x0=0.0, p="v", role="listOfProducts", law="<ci>v</ci>")
    else:
        law = "<apply><times/><ci>k</ci><ci>X</ci></apply>"
        sbml = _SBML.format(x0=1.0, p="k", role="listOfReactants", law=law)
    meas = "observableId\tsimulationConditionId\ttime\tmeasurement\n" + "".join(
        f"y\tc0\t{float(t)!r}\t{float(m)!r}\n" for t, m in zip(times, data, strict=True)
    )
    files = {
        "model.xml": sbml,
        "parameters.tsv": PAR_HEADER + parameters,
        "observables.tsv": "observableId\tobservableFormula\tnoiseFormula\tnoiseDistribution\n"
        f"y\t{observable}\t{noise}\t{distribution}\n",
        "measurements.tsv": meas,
        "conditions.tsv": conditions,
        "problem.yaml": _YAML,
    }
    for name, text in files.items():
        (tmp / name).write_text(text)
    return load_petab(tmp / "problem.yaml")


def linear_data(seed: int = 1, sigma: float = 0.2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 0.7 * TIMES + 1.3 + sigma * rng.standard_normal(TIMES.size)


def linear_problem(tmp: Path, data: np.ndarray, *, sigma: str = "0.2", extra: str = ""):
    pars = "a\tlin\t-10\t10\t1\t1\nb\tlin\t-10\t10\t0\t1\n" + extra
    return write_problem(tmp, model="linear", parameters=pars, observable="a*X + b",
                         noise=sigma, data=data)  # fmt: skip


def ols(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares estimate of (a, b) and (T'T)^-1."""
    design = np.c_[TIMES, np.ones_like(TIMES)]
    inv = np.linalg.inv(design.T @ design)
    return inv @ design.T @ data, inv


def decay_problem(tmp: Path, data: np.ndarray, *, noise: str = "0.05", extra: str = ""):
    pars = "k\tlog10\t0.001\t100\t1\t1\nA0\tlog10\t0.001\t100\t1\t1\n" + extra
    return write_problem(tmp, model="decay", parameters=pars, observable="X", noise=noise,
                         data=data, conditions="conditionId\tX\nc0\tA0\n")  # fmt: skip


def decay_truth() -> np.ndarray:
    return 2.0 * np.exp(-0.4 * TIMES)


# ------------------------------------------------------------------ linear-Gaussian


def test_linear_gaussian_fit_is_ordinary_least_squares(tmp_path: Path):
    data = linear_data()
    pb = linear_problem(tmp_path, data)
    res = fit(pb, starts=4, seed=3, workers=1)
    hat, _ = ols(data)
    assert res.optimizer == "least-squares" and not res.notes
    np.testing.assert_allclose(res.x_best, hat, rtol=1e-8, atol=1e-10)
    rss = float(np.sum((data - TIMES * hat[0] - hat[1]) ** 2))
    nllh = 0.5 * TIMES.size * math.log(2 * math.pi * 0.04) + rss / (2 * 0.04)
    assert math.isclose(res.nllh_best, nllh, rel_tol=1e-10)
    assert res.n_converged_to_best() == 4  # convex: every start finds it
    assert all(s.converged for s in res.starts)


def test_estimated_sigma_switches_to_trust_region_and_finds_rss_over_n(tmp_path: Path):
    data = linear_data(seed=5)
    pb = linear_problem(tmp_path, data, sigma="s", extra="s\tlog10\t0.001\t10\t0.5\t1\n")
    res = fit(pb, starts=3, seed=0, workers=1)
    assert res.optimizer == "trust-region"
    assert any("trust-region" in n for n in res.notes)
    hat, _ = ols(data)
    s_hat = math.sqrt(float(np.sum((data - TIMES * hat[0] - hat[1]) ** 2)) / TIMES.size)
    np.testing.assert_allclose(res.x_best, [hat[0], hat[1], math.log10(s_hat)], atol=1e-5)


def test_failed_starts_are_recorded_not_raised(tmp_path: Path):
    # sigma = s on a linear scale that may be negative: those starts cannot be evaluated.
    data = linear_data()
    pb = linear_problem(tmp_path, data, sigma="s", extra="s\tlin\t-1\t1\t0.2\t1\n")
    res = fit(pb, starts=8, seed=1, workers=1)
    failed = [s for s in res.starts if not s.success]
    assert failed and all("failed at the start" in s.message for s in failed)
    assert all(s.x0[2] <= 0 for s in failed)
    assert all(s.x0[2] > 0 for s in res.starts if s.success)
    assert np.isfinite(res.nllh_best)
    table = res.table()
    assert list(table["success"]) == sorted(table["success"], reverse=True)  # failed last
    json.dumps(res.to_dict(), allow_nan=False)


# ------------------------------------------------------------------ exponential decay


def test_decay_noise_free_recovers_the_generating_parameters(tmp_path: Path):
    pb = decay_problem(tmp_path, decay_truth())
    res = fit(pb, starts=3, seed=2, workers=1)
    np.testing.assert_allclose(res.x_best, [math.log10(0.4), math.log10(2.0)], atol=1e-7)
    assert res.nllh_best == pytest.approx(
        -TIMES.size * math.log(1 / math.sqrt(2 * math.pi * 0.05**2))
    )


def test_decay_noisy_estimate_within_standard_errors(tmp_path: Path):
    rng = np.random.default_rng(11)
    pb = decay_problem(tmp_path, decay_truth() + 0.05 * rng.standard_normal(TIMES.size))
    res = fit(pb, starts=3, seed=2, workers=1)
    truth = np.array([math.log10(0.4), math.log10(2.0)])
    fim = PetabGradient(pb).measurement_sensitivities(res.x_best).fim()
    se = np.sqrt(np.diag(np.linalg.inv(fim)))
    assert np.all(np.abs(res.x_best - truth) < 4 * se)
    assert np.all(se < 0.1)  # the data determine both parameters (not a vacuous check)


def test_table_waterfall_and_json(tmp_path: Path):
    pb = decay_problem(tmp_path, decay_truth())
    res = fit(pb, starts=4, seed=0, workers=1, x0=pb.x_nominal)
    table = res.table()
    assert len(table) == 4
    assert list(table.columns[:9]) == ["start", "nllh", "delta", "chi2", "success", "converged",
                                       "evaluations", "seconds", "message"]  # fmt: skip
    assert list(table.columns[9:]) == ["k", "A0"]
    assert np.all(np.diff(table["nllh"].to_numpy()) >= 0)
    assert table["delta"].iloc[0] == 0.0
    np.testing.assert_array_equal(res.starts[0].x0, pb.x_nominal)  # x0 is start 0
    out = tmp_path / "waterfall.png"
    res.waterfall(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert d["n_starts"] == 4 and d["parameter_ids"] == ["k", "A0"]
    assert d["parameters_best"]["k"] == pytest.approx(0.4, rel=1e-6)


def test_same_seed_same_numbers_for_any_worker_count(tmp_path: Path):
    rng = np.random.default_rng(4)
    pb = decay_problem(tmp_path, decay_truth() + 0.05 * rng.standard_normal(TIMES.size))
    one = fit(pb, starts=4, seed=7, workers=1)
    two = fit(pb, starts=4, seed=7, workers=2)
    assert two.stats["backend"] == "processes" and one.stats["backend"] == "serial"
    for s1, s2 in zip(one.starts, two.starts, strict=True):
        assert s1.index == s2.index
        np.testing.assert_array_equal(s1.x0, s2.x0)
        np.testing.assert_array_equal(s1.x, s2.x)
        assert s1.nllh == s2.nllh
    other = fit(pb, starts=2, seed=8, workers=1)
    assert not np.array_equal(other.starts[0].x0, one.starts[0].x0)


def test_dask_cluster_gives_the_serial_result(tmp_path: Path):
    from distributed import LocalCluster

    rng = np.random.default_rng(4)
    pb = decay_problem(tmp_path, decay_truth() + 0.05 * rng.standard_normal(TIMES.size))
    one = fit(pb, starts=3, seed=7, workers=1)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, host="127.0.0.1", protocol="tcp",
        dashboard_address=None,
    ) as cluster:  # fmt: skip
        dask = fit(pb, starts=3, seed=7, scheduler=cluster.scheduler_address)
    assert dask.stats["backend"] == "dask"
    for s1, s2 in zip(one.starts, dask.starts, strict=True):
        np.testing.assert_array_equal(s1.x, s2.x)
        assert s1.nllh == s2.nllh


def test_latin_hypercube_has_one_point_per_stratum():
    lo, hi = np.array([-1.0, 0.0]), np.array([1.0, 10.0])
    pts = latin_hypercube(lo, hi, 8, seed=3)
    for j in range(2):
        strata = np.floor((pts[:, j] - lo[j]) / (hi[j] - lo[j]) * 8).astype(int)
        assert sorted(strata) == list(range(8))
    np.testing.assert_array_equal(pts, latin_hypercube(lo, hi, 8, seed=3))


def test_options_are_checked(tmp_path: Path):
    pb = decay_problem(tmp_path, decay_truth())
    with pytest.raises(OptionError):
        fit(pb, starts=0)
    with pytest.raises(OptionError):
        fit(pb, optimizer="nelder-mead", workers=1)
    with pytest.raises(OptionError):
        fit(pb, x0=[1.0], workers=1)


def test_infinite_bound_on_the_parameter_scale_is_refused(tmp_path: Path):
    pb = decay_problem(tmp_path, decay_truth(), extra="")
    pb.problem.parameter_df.loc["k", "lowerBound"] = 0.0  # log10(0) = -inf
    with pytest.raises(ModelError, match="k"):
        fit(pb, workers=1)


# ------------------------------------------------------------------ benchmark


def test_boehm_fit_from_nominal_does_not_worsen_the_objective(tmp_path: Path):
    if not BOEHM.exists():
        pytest.skip("Boehm benchmark data not vendored")
    pb = load_petab(BOEHM)
    nominal = -PetabGradient(pb).measurement_sensitivities(pb.x_nominal).llh
    res = fit(pb, starts=2, seed=0, x0=pb.x_nominal, workers=1, max_nfev=8)
    assert res.optimizer == "trust-region"  # sigma is estimated
    assert res.starts[0].nllh <= nominal + 1e-9
    assert res.nllh_best <= nominal + 1e-9
    shutil.rmtree(tmp_path, ignore_errors=True)
