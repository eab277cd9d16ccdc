"""PEtab v1 problems: likelihood formulas against their closed forms, and a problem built here
on the conversion model A <=> B (mass action, k1 forward, k2 back; A(0) = a0, B(0) = b0 by
initial assignment) whose solution is known in closed form:

    A(t) = T q + (A0 - T q) exp(-(k1 + k2) t),  B = T - A,  T = A0 + B0,  q = k2 / (k1 + k2).

The problem exercises parameter scales, condition overrides of parameters and species (NaN
keeps the model value), parametric and numeric observable/noise overrides, replicates,
lin/log/log10 observables, normal and Laplace noise, and preequilibration (steady state
A = T q).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from scalebridge.errors import ModelError, UnsupportedFeatureError
from scalebridge.infer.petab_objective import chi2_terms, log_likelihood_terms
from scalebridge.infer.petab_problem import format_llh, load_petab, to_scale, unscale

MODEL = Path(__file__).resolve().parents[1] / "data" / "petab-test-suite" / "v1" / "0001"
MODEL = MODEL / "_model.xml"


# ------------------------------------------------------------------ formulas


def test_normal_lin_is_the_gaussian_log_density():
    m, y, s = np.array([1.3, -0.2]), np.array([1.0, 0.1]), np.array([0.5, 2.0])
    want = -0.5 * np.log(2 * np.pi * s**2) - (m - y) ** 2 / (2 * s**2)
    np.testing.assert_allclose(log_likelihood_terms(m, y, s, "lin", "normal"), want, rtol=1e-14)
    np.testing.assert_allclose(chi2_terms(m, y, s, "lin"), ((m - y) / s) ** 2, rtol=1e-14)


@pytest.mark.parametrize("scale", ["log", "log10"])
def test_log_observables_are_densities_of_the_untransformed_measurement(scale: str):
    # The density of m must integrate to one over m > 0 (the Jacobian term is what makes it).
    from scipy.integrate import quad

    y, s = 2.0, 0.3
    for dist in ("normal", "laplace"):

        def dens(m: float, dist: str = dist) -> float:
            v = log_likelihood_terms(np.array([m]), np.array([y]), np.array([s]), scale, dist)
            return float(np.exp(v[0]))

        total = quad(dens, 0.0, 2.0, limit=200)[0] + quad(dens, 2.0, np.inf, limit=200)[0]
        assert abs(total - 1.0) < 1e-7


def test_laplace_lin_is_the_laplace_log_density():
    m, y, s = np.array([0.4, 3.0]), np.array([1.0, 1.0]), np.array([0.5, 2.0])
    want = -np.log(2 * s) - np.abs(m - y) / s
    np.testing.assert_allclose(log_likelihood_terms(m, y, s, "lin", "laplace"), want, rtol=1e-14)


def test_nonpositive_sigma_and_unknown_distribution_are_refused():
    one = np.array([1.0])
    with pytest.raises(ModelError):
        log_likelihood_terms(one, one, np.array([0.0]), "lin", "normal")
    with pytest.raises(UnsupportedFeatureError):
        log_likelihood_terms(one, one, one, "lin", "cauchy")


@pytest.mark.parametrize("scale", ["lin", "log", "log10"])
def test_parameter_scales_round_trip(scale: str):
    assert math.isclose(unscale(to_scale(0.37, scale), scale), 0.37, rel_tol=1e-14)
    with pytest.raises(UnsupportedFeatureError):
        unscale(1.0, "logit")


# ------------------------------------------------------------------ a problem built here

PARAMS = """parameterId\tparameterScale\tlowerBound\tupperBound\tnominalValue\testimate
a0\tlog10\t0.01\t10\t1.5\t1
b0\tlin\t0\t10\t0.5\t0
k1\tlog\t0.01\t10\t0.8\t1
k2\tlin\t0\t10\t0.6\t1
scale_a\tlin\t0\t10\t2.0\t1
sd_a\tlog10\t0.01\t10\t0.4\t1
k1_c1\tlin\t0\t10\t1.2\t0
"""
CONDITIONS = """conditionId\tk1\tA
c0\tNaN\tNaN
c1\tk1_c1\t3.0
pre\t0.5\tNaN
"""
OBSERVABLES = (
    (
        "observableId\tobservableFormula\tnoiseFormula\tobservableTransformation"
        "\tnoiseDistribution\n"
        "obs_a\tobservableParameter1_obs_a * A + observableParameter2_obs_a"
        "\tnoiseParameter1_obs_a\tlin\tnormal\n"
    )
    + """obs_b\tB\t0.3\tlog\tlaplace
obs_c\tA\tnoiseParameter1_obs_c * 0.5\tlog10\tnormal
"""
)
MEASUREMENTS = (
    (
        "observableId\tpreequilibrationConditionId\tsimulationConditionId\ttime\tmeasurement"
        "\tobservableParameters\tnoiseParameters\n"
    )
    + """obs_a\t\tc0\t0\t3.1\tscale_a;0.1\tsd_a
obs_a\t\tc0\t2\t2.0\tscale_a;0.1\tsd_a
obs_a\t\tc0\t2\t2.3\tscale_a;0.1\tsd_a
obs_b\t\tc0\t1\t0.9\t\t
obs_c\t\tc1\t0.5\t2.2\t\t0.4
obs_c\t\tc1\t4\t1.6\t\t0.4
obs_b\tpre\tc0\t0\t1.1\t\t
obs_b\tpre\tc0\t3\t0.8\t\t
"""
)
YAML = """format_version: 1
parameter_file: parameters.tsv
problems:
- condition_files: [conditions.tsv]
  measurement_files: [measurements.tsv]
  observable_files: [observables.tsv]
  sbml_files: [model.xml]
"""


def _write(tmp: Path, **over: str) -> Path:
    files = {
        "parameters.tsv": PARAMS,
        "conditions.tsv": CONDITIONS,
        "observables.tsv": OBSERVABLES,
        "measurements.tsv": MEASUREMENTS,
        "problem.yaml": YAML,
    }
    files.update({k.replace("_", "."): v for k, v in over.items()})
    for name, text in files.items():
        (tmp / name).write_text(text)
    shutil.copy(MODEL, tmp / "model.xml")
    return tmp / "problem.yaml"


def _a(t: float, a0: float, b0: float, k1: float, k2: float) -> float:
    tot, q = a0 + b0, k2 / (k1 + k2)
    return tot * q + (a0 - tot * q) * math.exp(-(k1 + k2) * t)


def _expected(p: dict[str, float]) -> tuple[float, float]:
    a0, b0, k1, k2 = p["a0"], p["b0"], p["k1"], p["k2"]
    terms: list[tuple[float, float, float, str, str]] = []  # m, y, sigma, scale, dist
    for t, m in ((0.0, 3.1), (2.0, 2.0), (2.0, 2.3)):
        terms.append((m, p["scale_a"] * _a(t, a0, b0, k1, k2) + 0.1, p["sd_a"], "lin", "normal"))
    terms.append((0.9, a0 + b0 - _a(1, a0, b0, k1, k2), 0.3, "log", "laplace"))
    # c1: k1 from k1_c1, A(0) = 3 overrides the initial assignment, B(0) = b0.
    for t, m in ((0.5, 2.2), (4.0, 1.6)):
        terms.append((m, _a(t, 3.0, b0, p["k1_c1"], k2), 0.2, "log10", "normal"))
    # pre: k1 = 0.5 to steady state, then c0 (k1 back to its value) from that state.
    tot = a0 + b0
    a_ss = tot * k2 / (0.5 + k2)
    for t, m in ((0.0, 1.1), (3.0, 0.8)):
        terms.append((m, tot - _a(t, a_ss, tot - a_ss, k1, k2), 0.3, "log", "laplace"))
    llh = chi2 = 0.0
    for m, y, s, scale, dist in terms:
        h = {"lin": lambda x: x, "log": math.log, "log10": math.log10}[scale]
        r = (h(m) - h(y)) / s
        jac = {"lin": 0.0, "log": math.log(m), "log10": math.log(m * math.log(10))}[scale]
        if dist == "normal":
            llh += -0.5 * math.log(2 * math.pi * s * s) - 0.5 * r * r - jac
        else:
            llh += -math.log(2 * s) - abs(r) - jac
        chi2 += r * r
    return llh, chi2


def test_problem_at_nominal_values_matches_the_closed_form(tmp_path: Path):
    prob = load_petab(_write(tmp_path))
    assert prob.estimated_ids == ["a0", "k1", "k2", "scale_a", "sd_a"]
    res = prob.evaluate()
    llh, chi2 = _expected(prob.parameter_values())
    assert math.isclose(res.llh, llh, rel_tol=1e-7)
    assert math.isclose(res.chi2, chi2, rel_tol=1e-7)
    assert res.nllh == -res.llh
    assert list(res.simulations.columns)[:5] == [
        "observableId", "preequilibrationConditionId", "simulationConditionId", "time",
        "simulation",
    ]  # fmt: skip


def test_parameter_vector_is_on_the_parameter_scales(tmp_path: Path):
    prob = load_petab(_write(tmp_path))
    np.testing.assert_allclose(
        prob.x_nominal,
        [math.log10(1.5), math.log(0.8), 0.6, 2.0, math.log10(0.4)],
        rtol=1e-14,
    )
    x = np.array([math.log10(0.7), math.log(1.9), 0.25, 1.5, math.log10(0.8)])
    p = prob.parameter_values(x)
    assert math.isclose(p["a0"], 0.7) and math.isclose(p["k1"], 1.9)
    res = prob.evaluate(x)
    llh, chi2 = _expected(p)
    assert math.isclose(res.llh, llh, rel_tol=1e-7)
    assert math.isclose(res.chi2, chi2, rel_tol=1e-7)
    with pytest.raises(ModelError):
        prob.evaluate(x[:3])


def test_cli_output(tmp_path: Path):
    res = load_petab(_write(tmp_path)).evaluate()
    out = json.loads(format_llh(res, as_json=True))
    assert out == {"llh": res.llh, "chi2": res.chi2}
    assert "chi2" in format_llh(res)


# ------------------------------------------------------------------ unsupported features


def test_priors_are_refused_naming_the_parameter(tmp_path: Path):
    params = PARAMS.replace("estimate\n", "estimate\tpriorType\n", 1).replace(
        "k2\tlin\t0\t10\t0.6\t1\n", "k2\tlin\t0\t10\t0.6\t1\tnormal\n"
    )
    with pytest.raises(UnsupportedFeatureError, match="prior") as info:
        load_petab(_write(tmp_path, parameters_tsv=params))
    assert info.value.element == "k2"
    assert "problem.yaml" in str(info.value)


def test_condition_column_that_is_not_a_model_entity_is_refused(tmp_path: Path):
    cond = "conditionId\tnot_in_model\nc0\t1\nc1\t2\npre\t3\n"
    with pytest.raises(UnsupportedFeatureError) as info:
        load_petab(_write(tmp_path, conditions_tsv=cond))
    assert info.value.element == "not_in_model"


def test_mapping_table_and_steady_state_measurements_are_refused(tmp_path: Path):
    yml = YAML + "  mapping_files: [mapping.tsv]\n"
    (tmp_path / "mapping.tsv").write_text("petabEntityId\tmodelEntityId\nx\tk1\n")
    with pytest.raises(UnsupportedFeatureError, match="mapping"):
        load_petab(_write(tmp_path, problem_yaml=yml))
    meas = MEASUREMENTS.replace("obs_b\t\tc0\t1\t", "obs_b\t\tc0\tinf\t")
    with pytest.raises(UnsupportedFeatureError, match="inf"):
        load_petab(_write(tmp_path, measurements_tsv=meas))


# ---- the `scalebridge petab` command ------------------------------------------------------------
def test_cli_petab_llh_json_matches_the_api_and_refuses_nothing_to_do() -> None:
    from click.testing import CliRunner

    from scalebridge.cli import cli
    from scalebridge.infer import petab_llh

    root = Path(__file__).resolve().parents[1] / "data" / "petab-test-suite" / "v1" / "0001"
    problem = str(root / "_0001.yaml")
    res = CliRunner().invoke(cli, ["petab", problem, "--llh", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    api = petab_llh(problem)
    assert data == {"llh": api.llh, "chi2": api.chi2}
    assert CliRunner().invoke(cli, ["petab", problem]).exit_code == 2
