"""The gene-noise demo, checked against the exact moments of the two-stage model."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from scalebridge.demo import DemoReport, run_demo
from scalebridge.scenarios import gene_noise as gn


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> DemoReport:
    return run_demo("gene-noise", tmp_path_factory.mktemp("gene_noise") / "out")


def test_files_are_written(report: DemoReport) -> None:
    names = {p.name for p in report.files}
    assert {"descriptions.png", "tissue.png", "summary.md", "ssa.nc", "fsp.nc"} <= names
    for p in report.files:
        assert Path(p).stat().st_size > 0


def test_every_description_matches_the_exact_moments(report: DemoReport) -> None:
    v = report.values
    km, gm, kp, gp = 10.0, 1.0, 5.0, 0.1  # data/two_stage.ant
    assert v["exact_mean_P"] == km * kp / (gm * gp)
    assert v["exact_fano_P"] == 1 + kp / (gm + gp)
    # exact methods: FSP to its error estimate, LNA exact for a linear network
    assert v["fsp_mean_P"] == pytest.approx(v["exact_mean_P"], rel=1e-6)
    assert v["fsp_fano_P"] == pytest.approx(v["exact_fano_P"], rel=1e-6)
    assert v["lna_mean_P"] == pytest.approx(v["exact_mean_P"], rel=1e-10)
    assert v["lna_fano_P"] == pytest.approx(v["exact_fano_P"], rel=1e-10)
    # the ODE at T = 100 is e^-10-close to stationary (plus the mRNA's e^-100 transient)
    ode_exact = v["exact_mean_P"] * (1 - (gm * math.exp(-gp * 100) - gp * math.exp(-gm * 100))
                                     / (gm - gp))  # fmt: skip
    assert v["ode_mean_P"] == pytest.approx(ode_exact, rel=1e-7)
    # ensembles: 5 standard errors (false failure ~6e-7 each); sd(P) = sqrt(Fano * mean)
    se_mean = math.sqrt(v["exact_fano_P"] * v["exact_mean_P"] / gn.RUNS)
    se_fano = v["exact_fano_P"] * math.sqrt(2 / (gn.RUNS - 1))
    for key in ("ssa", "cle"):
        assert abs(v[f"{key}_mean_P"] - v["exact_mean_P"]) < 5 * se_mean
        assert abs(v[f"{key}_fano_P"] - v["exact_fano_P"]) < 5 * se_fano


def test_phenotype_and_tissue_numbers(report: DemoReport) -> None:
    v = report.values
    # delta method: Var Y ~ g'(m)^2 Var P with g = P^2/(K^2 + P^2), K = 2 m
    m, var = v["exact_mean_P"], v["exact_fano_P"] * v["exact_mean_P"]
    K = 2 * m
    slope = 2 * m * K**2 / (K**2 + m**2) ** 2
    assert v["delta_var_Y"] == pytest.approx(slope**2 * var, rel=1e-6)  # FSP moments
    assert abs(v["delta_var_Y"] / v["exact_var_Y"] - 1) < 0.05  # P has CV 10 %: a small error
    # N*: at least the stationary CV^2/eps^2 (the window starts before stationarity)
    stationary = math.ceil(var / m**2 / gn.EPSILON**2)
    assert stationary <= v["n_star_lna"] <= 1.05 * stationary
    # 2000 CLE paths: the variance has a relative standard error of 3.2 %, and the sup over the
    # window biases the CLE figure upwards by a few per cent
    assert abs(v["n_star_cle"] / v["n_star_lna"] - 1) < 0.15
