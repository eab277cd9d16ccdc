"""The gene-feedback demo, checked against the mathematics of the model.

    dM/dt = k_m / (1 + (P/K)^n) - g_m M,    dP/dt = k_p M - g_p P,    M(0) = P(0) = 0.

* Without feedback (K -> infinity) the system is linear: M* = k_m/g_m, P* = k_p M*/g_p, and from
  zero M(t) = M*(1 - e^{-g_m t}),
  P(t) = P*(1 - e^{-g_p t}) - k_p M* (e^{-g_m t} - e^{-g_p t}) / (g_p - g_m).
* With feedback the steady state solves P = (k_p/g_p)(k_m/g_m) / (1 + (P/K)^n), M* = g_p P*/k_p;
  the left side minus the right is increasing in P, so brentq finds the single root.
* The Jacobian at the steady state [[-g_m, -k_m h'(P*)], [k_p, -g_p]] (h' the slope of the
  repression) has complex eigenvalues when (g_m - g_p)^2 < 4 k_p k_m |h'|: then P overshoots.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq

from scalebridge.api import load
from scalebridge.demo import (
    DEFAULT_DEMO,
    DEMO_DESCRIPTIONS,
    DEMOS,
    GENE_FEEDBACK_MODEL,
    DemoReport,
    data_file,
    run_demo,
)
from scalebridge.errors import OptionError
from scalebridge.results import Result

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoReport:
    return run_demo(DEFAULT_DEMO, tmp_path_factory.mktemp("demo") / "out")


@pytest.fixture(scope="module")
def par() -> dict[str, float]:
    with data_file(GENE_FEEDBACK_MODEL) as path:
        net = load(path)
    return {p.id: float(p.value) for p in net.parameters if p.value is not None}


def fixed_point(par: dict[str, float], K: float) -> float:
    gain = (par["k_p"] / par["g_p"]) * (par["k_m"] / par["g_m"])
    return brentq(
        lambda P: P - gain / (1.0 + (P / K) ** par["n"]), 0.0, gain, xtol=1e-14, rtol=1e-14
    )


def no_feedback_solution(par: dict[str, float], t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k_m, g_m, k_p, g_p = par["k_m"], par["g_m"], par["k_p"], par["g_p"]
    M_star = k_m / g_m
    M = M_star * (1 - np.exp(-g_m * t))
    P = (k_p * M_star / g_p) * (1 - np.exp(-g_p * t)) - k_p * M_star * (
        np.exp(-g_m * t) - np.exp(-g_p * t)
    ) / (g_p - g_m)
    return M, P


def test_registry():
    assert DEFAULT_DEMO == "gene-feedback"
    assert set(DEMOS) == set(DEMO_DESCRIPTIONS)
    with pytest.raises(OptionError, match="unknown demo 'nope'"):
        run_demo("nope", "unused")


def test_writes_the_files_it_reports(demo: DemoReport):
    names = sorted(p.name for p in demo.files)
    assert names == sorted(
        ["model.ant", "feedback.csv", "feedback.nc", "no_feedback.csv", "no_feedback.nc",
         "sweep.csv", "trajectories.png", "sweep.png", "summary.md"]
    )  # fmt: skip
    assert sorted(p.name for p in demo.directory.iterdir()) == names  # and nothing else
    for p in demo.files:
        assert p.parent == demo.directory and p.stat().st_size > 0
    for png in ("trajectories.png", "sweep.png"):
        head = (demo.directory / png).read_bytes()[:24]
        assert head[:8] == PNG_MAGIC
        width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        assert width >= 400 and height >= 300


def test_model_file_is_the_shipped_one(demo: DemoReport, par: dict[str, float]):
    with data_file(GENE_FEEDBACK_MODEL) as path:
        assert (demo.directory / "model.ant").read_text() == path.read_text()
    copy = {p.id: p.value for p in load(demo.directory / "model.ant").parameters}
    assert copy == par
    assert set(par) == {"k_m", "g_m", "k_p", "g_p", "K", "n"}


def test_no_feedback_steady_state_is_exact(demo: DemoReport, par: dict[str, float]):
    M_star = par["k_m"] / par["g_m"]
    P_star = par["k_p"] * M_star / par["g_p"]
    assert demo.values["M_star_no_feedback"] == pytest.approx(M_star, rel=1e-9)
    assert demo.values["P_star_no_feedback"] == pytest.approx(P_star, rel=1e-9)


def test_feedback_steady_state_solves_the_fixed_point_equation(
    demo: DemoReport, par: dict[str, float]
):
    P_star = fixed_point(par, par["K"])
    assert demo.values["P_star_feedback"] == pytest.approx(P_star, rel=1e-8)
    M_star = par["g_p"] * P_star / par["k_p"]
    assert demo.values["M_star_feedback"] == pytest.approx(M_star, rel=1e-8)
    # the feedback visibly matters: several-fold lower protein
    assert demo.values["reduction"] == pytest.approx(
        demo.values["P_star_no_feedback"] / P_star, rel=1e-8
    )
    assert demo.values["reduction"] > 3


def test_sweep_steady_states_solve_the_fixed_point_equation(
    demo: DemoReport, par: dict[str, float]
):
    sweep = pd.read_csv(demo.directory / "sweep.csv", float_precision="round_trip")
    assert list(sweep.columns) == ["strength", "K", "M_star", "P_star", "drift"]
    assert len(sweep) >= 5
    P0 = demo.values["P_star_no_feedback"]
    np.testing.assert_allclose(sweep["K"], P0 / sweep["strength"], rtol=1e-12)
    for row in sweep.itertuples():
        P_star = fixed_point(par, row.K)
        assert row.P_star == pytest.approx(P_star, rel=1e-8), row
        assert row.M_star == pytest.approx(par["g_p"] * P_star / par["k_p"], rel=1e-8), row
    # stronger feedback (smaller K) means less protein
    assert np.all(np.diff(sweep["P_star"].to_numpy()) < 0)


def test_no_feedback_trajectory_matches_the_linear_solution(
    demo: DemoReport, par: dict[str, float]
):
    table = pd.read_csv(demo.directory / "no_feedback.csv", float_precision="round_trip")
    assert list(table.columns) == ["time", "M", "P"]
    t = table["time"].to_numpy()
    M, P = no_feedback_solution(par, t)
    M0, P0 = demo.values["M_star_no_feedback"], demo.values["P_star_no_feedback"]
    assert np.max(np.abs(table["M"] - M)) < 2e-5 * M0
    assert np.max(np.abs(table["P"] - P)) < 2e-5 * P0
    # the response time of the unregulated gene, against the exact crossing of P*/2
    t_half = brentq(lambda s: no_feedback_solution(par, np.array([s]))[1][0] - P0 / 2, 0, t[-1])
    assert demo.values["t_half_no_feedback"] == pytest.approx(t_half, rel=1e-3)


def test_overshoot_and_faster_response(demo: DemoReport, par: dict[str, float]):
    P_star = fixed_point(par, par["K"])
    k_m, g_m, k_p, g_p, K, n = (par[k] for k in ("k_m", "g_m", "k_p", "g_p", "K", "n"))
    slope = -n * (P_star / K) ** (n - 1) / K / (1 + (P_star / K) ** n) ** 2
    jac = np.array([[-g_m, k_m * slope], [k_p, -g_p]])
    eig = np.linalg.eigvals(jac)
    assert np.all(eig.real < 0) and np.all(np.abs(eig.imag) > 0)  # a damped oscillation

    table = pd.read_csv(demo.directory / "feedback.csv", float_precision="round_trip")
    P = table["P"].to_numpy()
    assert demo.values["overshoot"] == pytest.approx(P.max() / P_star - 1, rel=1e-6)
    assert demo.values["overshoot"] > 0.05
    assert demo.values["t_peak"] == table["time"].to_numpy()[P.argmax()]
    assert demo.values["undershoot"] > 0  # it swings below the steady state after the peak
    assert demo.values["monotone_no_feedback"] == 1.0
    assert demo.values["speedup"] == pytest.approx(
        demo.values["t_half_no_feedback"] / demo.values["t_half_feedback"]
    )
    assert demo.values["speedup"] > 2


def test_netcdf_holds_the_same_trajectories_and_run_statistics(demo: DemoReport):
    for stem in ("feedback", "no_feedback"):
        nc = Result.from_netcdf(demo.directory / f"{stem}.nc")
        csv = pd.read_csv(demo.directory / f"{stem}.csv", float_precision="round_trip")
        np.testing.assert_array_equal(nc.time, csv["time"])
        for name in ("M", "P"):
            np.testing.assert_array_equal(nc[name].to_numpy(), csv[name])
        assert nc.stats["method"] == "ode" and nc.stats["steps"] > 0


def test_summary_reports_the_numbers_of_this_run(demo: DemoReport):
    text = (demo.directory / "summary.md").read_text()
    v = demo.values
    for needle in (
        f"P* = {v['P_star_feedback']:.4g} instead of {v['P_star_no_feedback']:.4g}",
        f"{v['reduction']:.3g} times less",
        f"{100 * v['overshoot']:.1f}% above its steady state",
        f"t½ = {v['t_half_feedback']:.3g} min with feedback",
        f"{v['speedup']:.3g} times faster",
        f"took {v['wall_time_s']:.2f} s",
    ):
        assert needle in text, needle
    for heading in ("## Steady states", "## The feedback effect", "## Run statistics"):
        assert heading in text
    # run statistics: one row per run with its step count
    rows = re.findall(r"^\| (trajectory|steady state), [^|]+\| (\d+) \|", text, re.M)
    assert len(rows) == 4 and all(int(steps) > 0 for _, steps in rows)
    assert "k_m / (1 + (P / K)^n)" in text  # the model as read


def test_rerun_into_the_same_directory_replaces_files(demo: DemoReport, tmp_path: Path):
    out = tmp_path / "again"
    out.mkdir()
    (out / "summary.md").write_text("old")
    report = run_demo(DEFAULT_DEMO, out)
    assert (out / "summary.md").read_text() != "old"
    sweep_a = pd.read_csv(demo.directory / "sweep.csv")
    sweep_b = pd.read_csv(report.directory / "sweep.csv")
    pd.testing.assert_frame_equal(sweep_a, sweep_b)  # deterministic


def test_newton_steady_state_and_its_eigenvalues(demo: DemoReport, par: dict[str, float]):
    P = fixed_point(par, par["K"])
    v = demo.values
    assert v["newton_P_star"] == pytest.approx(P, rel=1e-10)
    # Jacobian [[-g_m, -k_m h'(P)], [k_p, -g_p]] with h(P) = 1 / (1 + (P/K)^n)
    n, K = par["n"], par["K"]
    x = (P / K) ** n
    dh = -n * x / (P * (1 + x) ** 2)
    J = np.array([[-par["g_m"], par["k_m"] * dh], [par["k_p"], -par["g_p"]]])
    lead = max(np.linalg.eigvals(J), key=lambda z: z.real)
    assert v["eig_real"] == pytest.approx(lead.real, rel=1e-8)
    assert v["eig_imag"] == pytest.approx(abs(lead.imag), rel=1e-8)
    assert v["stable"] == 1.0
