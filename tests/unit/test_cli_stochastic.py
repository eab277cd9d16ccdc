"""The stochastic side of ``scalebridge simulate``: ensembles, seeds, method options, fsp output,
the exit codes of stochastic failures, and Ctrl-C.

Ensembles are checked against exact results: DSMTS case 00001 (a linear birth-death process, whose
mean and sd are in the suite's results file) and the immigration-death process, whose count is
Poisson(lambda(t)), lambda(t) = (k/g)(1 - exp(-g t)) from zero.  Most tests drive the click group
in-process with CliRunner; a few run ``python -m scalebridge`` to check reproducibility across
processes and a real SIGINT.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from scalebridge.cli import cli
from scalebridge.results import Result

from .test_cli import SCALEBRIDGE_WITH_DEFAULT_SIGINT, close_process

DSMTS = Path(__file__).resolve().parents[1] / "data" / "dsmts"
BIRTH_DEATH = DSMTS / "00001" / "00001-sbml-l3v2.xml"
BIRTH_DEATH_REF = DSMTS / "00001" / "00001-results.csv"

K_IN, G = 10.0, 1.0
IMMDEATH = f"""
model immdeath
  compartment C = 1;
  species X in C = 0;
  birth: => X; k;
  death: X => ; g*X;
  k = {K_IN}; g = {G};
end
"""
# Half a molecule per event: no stochastic method can change counts by that.
HALF = """
model half
  compartment C = 1;
  species A in C = 10, B in C = 0;
  split: A => 0.5 B; k*A;
  k = 1;
end
"""
# X decays; the law of 'odd', k*(X - 5), is used as written and turns negative once X < 5.
NEGATIVE = """
model negative
  compartment C = 1;
  species X in C = 10, Y in C = 0;
  decay: X => ; k*X;
  odd: => Y; k*(X - 5);
  k = 1;
end
"""
# Amounts in moles: stochastic methods need to be told how many molecules a mole is.
MOLES = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">
  <model id="moles" substanceUnits="mole" timeUnits="second">
    <listOfCompartments><compartment id="C" size="1" constant="true"/></listOfCompartments>
    <listOfSpecies>
      <species id="X" compartment="C" initialAmount="6e-19" hasOnlySubstanceUnits="true"
               boundaryCondition="false" constant="false"/>
    </listOfSpecies>
    <listOfParameters><parameter id="g" value="1" constant="true"/></listOfParameters>
    <listOfReactions>
      <reaction id="death" reversible="false">
        <listOfReactants>
          <speciesReference species="X" stoichiometry="1" constant="true"/>
        </listOfReactants>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><times/><ci>g</ci><ci>X</ci></apply></math></kineticLaw>
      </reaction>
    </listOfReactions>
  </model>
</sbml>
"""


def _runner() -> CliRunner:
    try:  # click < 8.2 mixes stderr into stdout unless told not to
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner()


def invoke(*args: object):
    return _runner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def one_error_line(stderr: str, *needles: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("scalebridge: error: ") and "Traceback" not in stderr, stderr
    for needle in needles:
        assert needle in lines[0], (needle, stderr)
    return lines[0]


def table(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), float_precision="round_trip")


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.fixture
def immdeath(tmp_path: Path) -> Path:
    return write(tmp_path, "immdeath.ant", IMMDEATH)


# ==================================================================================================
# ensembles
# ==================================================================================================
def test_ssa_ensemble_csv_is_the_dsmts_layout_and_matches_the_exact_moments(tmp_path: Path):
    out = tmp_path / "bd.csv"
    n = 400
    res = invoke("simulate", BIRTH_DEATH, "--method", "ssa", "--t-end", "50", "--n-points", "51",
                 "--runs", n, "--seed", "11", "--out", out)  # fmt: skip
    assert res.exit_code == 0, res.stderr
    got = pd.read_csv(out, float_precision="round_trip")
    ref = pd.read_csv(BIRTH_DEATH_REF)
    assert list(got.columns) == ["time", "X-mean", "X-sd"]
    np.testing.assert_array_equal(got["time"], ref["time"])
    mu, sigma = ref["X-mean"].to_numpy()[1:], ref["X-sd"].to_numpy()[1:]
    mean, sd = got["X-mean"].to_numpy()[1:], got["X-sd"].to_numpy()[1:]
    assert got["X-mean"][0] == 100 and got["X-sd"][0] == 0  # sigma = 0: exact
    # Z = sqrt(n)(mean - mu)/sigma within 5 (false failure < 3e-5 over the 50 points).
    assert np.all(np.abs(np.sqrt(n) * (mean - mu) / sigma) < 5)
    # The sd within 25% (its relative standard error is below 6% here, heavy tails included).
    assert np.all(np.abs(sd / sigma - 1) < 0.25)


def test_same_seed_same_file_whatever_the_workers(immdeath: Path, tmp_path: Path):
    files = []
    for i, extra in enumerate((["--workers", "1"], ["--workers", "2", "--chunk-size", "3"], [])):
        out = tmp_path / f"r{i}.csv"
        res = invoke("simulate", immdeath, "--method", "ssa", "--t-end", "5", "--n-points",
                     "11", "--runs", "60", "--seed", "5", "--out", out, *extra)  # fmt: skip
        assert res.exit_code == 0, res.stderr
        files.append(out.read_bytes())
    assert files[0] == files[1] == files[2]
    other = invoke("simulate", immdeath, "--method", "ssa", "--t-end", "5", "--n-points", "11",
                   "--runs", "60", "--seed", "6")  # fmt: skip
    assert other.stdout.encode() != files[0]


def test_one_run_is_a_trajectory_of_whole_counts(immdeath: Path):
    res = invoke("simulate", immdeath, "--method", "ssa", "--t-end", "5", "--n-points", "11",
                 "--seed", "3")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    t = table(res.stdout)
    assert list(t.columns) == ["time", "X"]
    x = t["X"].to_numpy()
    assert x[0] == 0 and np.all(x == np.round(x)) and np.all(x >= 0)


def test_netcdf_holds_every_run_and_the_seed(immdeath: Path, tmp_path: Path):
    out = tmp_path / "e.nc"
    res = invoke("simulate", immdeath, "--method", "ssa", "--t-end", "5", "--n-points", "6",
                 "--runs", "30", "--seed", "8", "--out", out)  # fmt: skip
    assert res.exit_code == 0, res.stderr
    back = Result.from_netcdf(out)
    assert back["X"].dims == ("run", "time") and back.n_runs == 30
    assert back.stats["seed"] == 8 and back.stats["method"] == "ssa"
    assert back.stats["options"]["variant"] == "direct"


def test_method_options_by_flag_and_by_option(immdeath: Path):
    base = ["simulate", immdeath, "--method", "ssa", "--t-end", "5", "--n-points", "6",
            "--runs", "40", "--seed", "2"]  # fmt: skip
    by_option = invoke(*base, "--option", "variant=composition-rejection")
    by_flag = invoke(*base, "--variant", "composition-rejection")
    assert by_option.exit_code == 0 and by_flag.exit_code == 0, by_option.stderr
    assert by_option.stdout == by_flag.stdout
    for extra, needles in (
        (["--dt", "0.1"], ["method 'ssa' has no option 'dt'", "variant"]),
        (["--option", "variant=gillespie"], ["'gillespie'"]),
        (["--option", "variant"], ["--option variant", "NAME=VALUE"]),
        (["--option", 'x=__import__("os")'], ["is not a number, true/false or a plain word"]),
        (["--option", "variant=direct", "--variant", "direct"], ["given twice"]),
        (["--option", "counts_per_amount=-1"], ["counts_per_amount"]),
        (["--option", "bad name=1"], ["not an option name"]),
    ):
        res = invoke(*base, *extra)
        assert res.exit_code == 2, (extra, res.stdout, res.stderr)
        one_error_line(res.stderr, *needles)
        assert res.stdout == ""


def test_record_events_writes_every_event(immdeath: Path):
    res = invoke("simulate", immdeath, "--method", "ssa", "--t-end", "5", "--seed", "4",
                 "--record-events")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    t = table(res.stdout)
    steps = np.diff(t["X"].to_numpy()[:-1])
    assert len(t) > 20 and np.all(np.abs(steps) == 1)  # one birth or one death per row
    assert np.all(np.diff(t["time"]) >= 0) and t["time"].iloc[-1] == 5.0
    many = invoke("simulate", immdeath, "--method", "ssa", "--t-end", "5", "--runs", "3",
                  "--record-events")  # fmt: skip
    assert many.exit_code == 2
    one_error_line(many.stderr, "one run")


def test_counts_per_amount(tmp_path: Path):
    model = write(tmp_path, "moles.xml", MOLES)
    res = invoke("simulate", model, "--method", "ssa", "--t-end", "1", "--seed", "1")
    assert res.exit_code == 2
    one_error_line(res.stderr, "moles", "--counts-per-amount")
    res = invoke("simulate", model, "--method", "ssa", "--t-end", "1", "--n-points", "3",
                 "--seed", "1", "--counts-per-amount", "1e21")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    x = table(res.stdout)["X"].to_numpy()
    assert x[0] == 600 and np.all(np.diff(x) <= 0)  # 6e-19 units of 1e21 molecules, decaying


def test_ensemble_options_do_not_apply_to_deterministic_methods(immdeath: Path):
    for extra, needle in ((["--runs", "3"], "runs"), (["--workers", "2"], "workers"),
                          (["--chunk-size", "2"], "chunk_size")):  # fmt: skip
        res = invoke("simulate", immdeath, "--t-end", "1", *extra)
        assert res.exit_code == 2
        one_error_line(res.stderr, "deterministic", needle)
    res = invoke("simulate", immdeath, "--method", "fsp", "--t-end", "1", "--runs", "3")
    assert res.exit_code == 2
    one_error_line(res.stderr, "'fsp'", "runs")


# ==================================================================================================
# fsp output
# ==================================================================================================
def test_fsp_writes_moments_to_csv_and_the_distribution_to_netcdf(immdeath: Path, tmp_path: Path):
    from scipy.stats import poisson

    csv, nc = tmp_path / "m.csv", tmp_path / "d.nc"
    for out in (csv, nc):
        res = invoke("simulate", immdeath, "--method", "fsp", "--t-end", "2", "--n-points", "5",
                     "--tol", "1e-9", "--out", out)  # fmt: skip
        assert res.exit_code == 0, res.stderr
    t = pd.read_csv(csv, float_precision="round_trip")
    lam = K_IN / G * (1 - np.exp(-G * t["time"].to_numpy()))
    assert list(t.columns) == ["time", "X-mean", "X-sd"]
    np.testing.assert_allclose(t["X-mean"], lam, atol=1e-6)
    np.testing.assert_allclose(t["X-sd"], np.sqrt(lam), atol=1e-6)
    back = Result.from_netcdf(nc)
    marginal = back.data["X-marginal"]
    counts = marginal["X-count"].to_numpy()
    exact = poisson.pmf(counts[None, :], lam[:, None])
    assert np.abs(marginal.to_numpy() - exact).sum(axis=1).max() < 1e-7


# ==================================================================================================
# failures
# ==================================================================================================
def test_non_integer_stoichiometry_exits_2_naming_the_reaction(tmp_path: Path):
    model = write(tmp_path, "half.ant", HALF)
    for method in ("ssa", "tau-leap"):
        res = invoke("simulate", model, "--method", method, "--t-end", "1", "--runs", "5")
        assert res.exit_code == 2, res.stderr
        one_error_line(res.stderr, "half.ant", "'split'", "stoichiometry")
        assert res.stdout == ""


def test_negative_propensity_exits_3_naming_the_reaction_and_time(tmp_path: Path):
    model = write(tmp_path, "neg.ant", NEGATIVE)
    out = tmp_path / "r.csv"
    res = invoke("simulate", model, "--method", "ssa", "--t-end", "100", "--runs", "4",
                 "--seed", "1", "--out", out)  # fmt: skip
    assert res.exit_code == 3, res.stderr
    line = one_error_line(res.stderr, "neg.ant", "'odd'", "negative")
    t = float(re.search(r"t = ([0-9.eE+-]+)", line).group(1))  # type: ignore[union-attr]
    assert 0 < t < 100
    assert not out.exists()


# ==================================================================================================
# Ctrl-C
# ==================================================================================================
def test_ctrl_c_writes_the_finished_runs_and_exits_130(immdeath: Path, tmp_path, monkeypatch):
    from scalebridge.ensemble import run_states
    from scalebridge.wellmixed.ssa import SSA

    real = SSA.run_runs
    stop_at = run_states(9, 20, 21)[0]

    def interrupted(self, prepared, rng_states, out):
        if any((row == stop_at).all() for row in rng_states):
            raise KeyboardInterrupt  # as if Ctrl-C arrived while run 20 was running
        return real(self, prepared, rng_states, out)

    monkeypatch.setattr(SSA, "run_runs", interrupted)
    out = tmp_path / "r.nc"
    res = invoke("simulate", immdeath, "--method", "ssa", "--t-end", "5", "--n-points", "6",
                 "--runs", "100", "--seed", "9", "--workers", "1", "--chunk-size", "10",
                 "--out", out)  # fmt: skip
    assert res.exit_code == 130
    assert "interrupted: kept 20 finished runs of 100" in res.stderr
    assert f"wrote {out}" in res.stderr
    back = Result.from_netcdf(out)
    assert back.data["run"].values.tolist() == list(range(20))
    assert back.stats["interrupted"] is True and back.stats["runs_completed"] == 20

    monkeypatch.setattr(SSA, "run_runs", real)
    full = invoke("simulate", immdeath, "--method", "ssa", "--t-end", "5", "--n-points", "6",
                  "--runs", "100", "--seed", "9", "--out", tmp_path / "full.nc")  # fmt: skip
    assert full.exit_code == 0
    whole = Result.from_netcdf(tmp_path / "full.nc")
    assert np.array_equal(whole["X"].to_numpy()[:20], back["X"].to_numpy())


def run_module(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scalebridge", *map(str, args)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_subprocess_gives_the_in_process_ensemble(immdeath: Path):
    args = ["simulate", immdeath, "--method", "ssa", "--t-end", "5", "--n-points", "11",
            "--runs", "50", "--seed", "21"]  # fmt: skip
    proc = run_module(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == invoke(*args, "--workers", "1").stdout  # same seed, another process


def _busy_worker_threads(pid: int) -> int:
    """Threads other than the main one that have used more than 0.1 s of CPU (the ensemble's
    workers; idle library threads, such as a BLAS pool, do not count)."""
    tick = os.sysconf("SC_CLK_TCK")
    busy = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        if task.name == str(pid):
            continue
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        if (int(fields[11]) + int(fields[12])) / tick > 0.1:  # utime + stime
            busy += 1
    return busy


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
def test_subprocess_sigint_keeps_the_finished_runs(tmp_path: Path):
    # About 1e6 events per run: the ensemble takes minutes, so the signal lands inside it.
    model = write(tmp_path, "busy.ant", IMMDEATH.replace(f"k = {K_IN}", "k = 1e5"))
    out = tmp_path / "r.csv"
    proc = subprocess.Popen(
        [*SCALEBRIDGE_WITH_DEFAULT_SIGINT, "simulate", str(model), "--method", "ssa",
         "--t-end", "10", "--n-points", "11", "--runs", "100000", "--seed", "1",
         "--workers", "2", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while (
            _busy_worker_threads(proc.pid) == 0
            and time.monotonic() < deadline
            and proc.poll() is None
        ):
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        close_process(proc)
    assert proc.returncode == 130, err
    m = re.search(r"interrupted: kept (\d+) finished runs? of 100000", err)
    assert m is not None, err
    kept = int(m.group(1))
    assert 1 <= kept < 100000
    got = pd.read_csv(out)
    assert list(got.columns) == ["time", "X-mean", "X-sd"] and len(got) == 11
    assert "Traceback" not in err


@pytest.mark.skipif(os.name != "posix", reason="loopback cluster")
def test_scheduler_option_runs_on_a_dask_cluster(immdeath: Path):
    from distributed import LocalCluster

    args = ["simulate", immdeath, "--method", "ssa", "--t-end", "5", "--n-points", "11",
            "--runs", "80", "--seed", "31"]  # fmt: skip
    local = invoke(*args)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, host="127.0.0.1",
                      protocol="tcp", dashboard_address=None) as cluster:  # fmt: skip
        remote = invoke(*args, "--scheduler", cluster.scheduler_address)
    assert remote.exit_code == 0, remote.stderr
    assert remote.stdout == local.stdout
    bad = invoke(*args, "--scheduler", "not an address")
    assert bad.exit_code == 2
    one_error_line(bad.stderr, "scheduler")
