"""The ``scalebridge`` command line: results against analytic solutions, exit codes, one-line
errors.

Most tests drive the click group in-process with :class:`click.testing.CliRunner` (it goes through
the same ``main`` as the console script, which owns the error handling); a few run the real entry
point, ``python -m scalebridge``, in a subprocess to check exit codes and stderr as a shell sees
them.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import scalebridge
from scalebridge import methods
from scalebridge.api import load
from scalebridge.cli import cli
from scalebridge.model.describe import SECTIONS, describe
from scalebridge.results import Result

# A first-order decay A -> (nothing) at rate k*A: A(t) = A0 exp(-k t).
A0, K_DECAY = 2.0, 0.5
DECAY = f"""
model decay
  compartment C = 1;
  species A in C = {A0};
  J: A => ; k*A;
  k = {K_DECAY};
end
"""
# The same decay in a compartment of volume 2, written per volume (mass action in concentration):
# the concentration is c(t) = c0 exp(-k t), the amount V c(t).
V2, C0 = 2.0, 3.0
DECAY_V2 = f"""
model decay_v2
  compartment C = {V2};
  species A in C = {C0};
  J: A => ; k*A*C;
  k = {K_DECAY};
end
"""
# Reversible binding with a rule and an event: two conservation laws, A + C and B + C.
RICH = """
model rich
  compartment cell = 1;
  species A in cell = 5, B in cell = 3, C in cell = 0;
  bind: A + B => C; kf*A*B;
  unbind: C => A + B; kr*C;
  kf = 0.1; kr = 0.01;
  total := A + C;
  at (time > 10): kf = 0.2;
end
"""
# dx/dt = x^2, x(0) = 1 has the solution x = 1/(1 - t), which blows up at t = 1.
BLOWUP = """# blows up in finite time
initial: x = 1
dx/dt = x^2
"""


# The command as a user starts it from a shell: SIGINT handled by Python's default handler and
# not blocked.  A test process may hand its children an inherited signal state (a blocked or
# ignored SIGINT, e.g. from a library's threads) that a terminal never would.
SCALEBRIDGE_WITH_DEFAULT_SIGINT = (
    sys.executable,
    "-c",
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}); "
    "runpy.run_module('scalebridge', run_name='__main__', alter_sys=True)",
)


def close_process(proc: subprocess.Popen[str]) -> None:
    """Kill ``proc`` if it still runs, reap it and close its pipes."""
    proc.kill()
    proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _runner() -> CliRunner:
    try:  # click < 8.2 mixes stderr into stdout unless told not to
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner()


def invoke(*args: str):
    return _runner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(stderr: str, *needles: str) -> str:
    """stderr is exactly one line, `scalebridge: error: ...`, with no traceback."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("scalebridge: error: "), stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], (needle, stderr)
    return lines[0]


@pytest.fixture
def decay(tmp_path: Path) -> Path:
    p = tmp_path / "decay.ant"
    p.write_text(DECAY)
    return p


@pytest.fixture
def decay_v2(tmp_path: Path) -> Path:
    p = tmp_path / "decay_v2.ant"
    p.write_text(DECAY_V2)
    return p


@pytest.fixture
def rich(tmp_path: Path) -> Path:
    p = tmp_path / "rich.ant"
    p.write_text(RICH)
    return p


@pytest.fixture
def blowup(tmp_path: Path) -> Path:
    p = tmp_path / "blowup.ode"
    p.write_text(BLOWUP)
    return p


def read_csv_text(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), float_precision="round_trip")


# ==================================================================================================
# help and version
# ==================================================================================================
def test_top_level_help_lists_commands_and_methods():
    res = invoke("--help")
    assert res.exit_code == 0
    for command in ("simulate", "info", "convert", "demo"):
        assert re.search(rf"^\s+{command}\s", res.stdout, re.M), command
    for name in methods.METHOD_NAMES:
        assert name in res.stdout
    assert "Examples" in res.stdout and "--debug" in res.stdout


@pytest.mark.parametrize("command", ["simulate", "info", "convert", "demo"])
def test_command_help_has_examples_and_defaults(command: str):
    res = invoke(command, "--help")
    assert res.exit_code == 0
    assert res.stdout.startswith(f"Usage: scalebridge {command} ")
    text = " ".join(res.stdout.split())  # help is wrapped to the terminal width
    assert "Examples:" in text
    assert f"scalebridge {command} " in text.split("Examples:")[1]
    if command == "simulate":
        assert "[default: ode]" in text and "[default: 101" in text
    if command == "demo":
        assert "gene-feedback" in text and "[default: out]" in text


def test_version_and_bare_command():
    res = invoke("--version")
    assert res.exit_code == 0 and res.stdout.strip() == f"scalebridge {scalebridge.__version__}"
    res = invoke()
    assert res.exit_code == 0 and "Commands:" in res.stdout


# ==================================================================================================
# simulate: results against analytic solutions
# ==================================================================================================
def test_simulate_csv_to_stdout_matches_exponential_decay(decay: Path):
    res = invoke("simulate", decay, "--t-end", "4", "--n-points", "9")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.splitlines()[0] == "time,A"
    table = read_csv_text(res.stdout)
    np.testing.assert_array_equal(table["time"], np.linspace(0, 4, 9))
    np.testing.assert_allclose(table["A"], A0 * np.exp(-K_DECAY * table["time"]), rtol=2e-5)
    assert res.stderr == ""


def test_simulate_out_csv_and_tolerances_reach_the_integrator(decay: Path, tmp_path: Path):
    errors = {}
    for rtol in ("1e-3", "1e-10"):
        out = tmp_path / f"run{rtol}.csv"
        res = invoke("simulate", decay, "--t-end", "6", "--n-points", "7", "--out", out,
                     "--rtol", rtol, "--atol", "1e-14")  # fmt: skip
        assert res.exit_code == 0, res.stderr
        assert res.stdout == ""
        assert f"wrote {out}" in res.stderr
        table = pd.read_csv(out, float_precision="round_trip")
        assert list(table.columns) == ["time", "A"]
        exact = A0 * np.exp(-K_DECAY * table["time"].to_numpy())
        errors[rtol] = np.max(np.abs(table["A"].to_numpy() / exact - 1))
    assert errors["1e-10"] < 1e-8
    assert errors["1e-10"] < errors["1e-3"] / 100  # the option changed the run
    assert not list(tmp_path.glob(".*.tmp*"))  # atomic writes leave no temporary files


def test_simulate_netcdf(decay: Path, tmp_path: Path):
    out = tmp_path / "run.nc"
    res = invoke("simulate", decay, "--t-end", "3", "--n-points", "4", "--out", out)
    assert res.exit_code == 0, res.stderr
    back = Result.from_netcdf(out)
    assert back.variables == ["A"]
    assert back.stats["method"] == "ode" and back.stats["steps"] > 0
    np.testing.assert_allclose(back["A"].to_numpy(), A0 * np.exp(-K_DECAY * back.time), rtol=2e-5)


def test_simulate_vars_reports_species_parameters_compartments_and_rates(decay: Path):
    res = invoke("simulate", decay, "--t-end", "2", "--n-points", "5", "--vars", "J, k,C,A")
    assert res.exit_code == 0, res.stderr
    table = read_csv_text(res.stdout)
    assert list(table.columns) == ["time", "J", "k", "C", "A"]
    a = A0 * np.exp(-K_DECAY * table["time"])
    np.testing.assert_allclose(table["A"], a, rtol=2e-5)
    np.testing.assert_allclose(table["J"], K_DECAY * a, rtol=2e-5)  # rate of J = k*A
    assert (table["k"] == K_DECAY).all() and (table["C"] == 1.0).all()


@pytest.mark.parametrize(
    ("units", "scale"), [("model", 1.0), ("concentration", 1.0), ("amount", V2)]
)
def test_simulate_units(decay_v2: Path, units: str, scale: float):
    res = invoke("simulate", decay_v2, "--t-end", "2", "--n-points", "5", "--units", units)
    assert res.exit_code == 0, res.stderr
    table = read_csv_text(res.stdout)
    expected = scale * C0 * np.exp(-K_DECAY * table["time"])
    np.testing.assert_allclose(table["A"], expected, rtol=2e-5)


def test_simulate_param_overrides_parameter_and_initial_value(decay: Path):
    res = invoke("simulate", decay, "--t-end", "2", "--n-points", "5",
                 "--param", "k=0.25", "--param", "A=4")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    table = read_csv_text(res.stdout)
    np.testing.assert_allclose(table["A"], 4.0 * np.exp(-0.25 * table["time"]), rtol=2e-5)


def test_simulate_plot_writes_png_and_csv_still_goes_to_stdout(decay: Path, tmp_path: Path):
    png = tmp_path / "run.png"
    res = invoke("simulate", decay, "--t-end", "2", "--n-points", "5", "--plot", png)
    assert res.exit_code == 0, res.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert res.stdout.startswith("time,A\n")


# ==================================================================================================
# info and convert
# ==================================================================================================
def test_info_text_shows_every_section(rich: Path):
    res = invoke("info", rich)
    assert res.exit_code == 0, res.stderr
    text = res.stdout
    for needle in (
        "Compartments (1)", "cell", "Species (3)", "Parameters (3)", "kf = 0.1", "Reactions (2)",
        "bind: A + B -> C", "Assignment rules (1)", "total = A + C", "Events (1)",
        "time > 10", "kf = 0.2",
    ):  # fmt: skip
        assert needle in text, needle
    # The conservation laws of A + B <-> C with A0 = 5, B0 = 3, C0 = 0.
    assert "A + C = 5" in text and "B + C = 3" in text


def test_info_json(rich: Path):
    res = invoke("info", rich, "--json")
    assert res.exit_code == 0, res.stderr
    d = json.loads(res.stdout)
    assert [k for k in SECTIONS if k in d] == [k for k in d if k != "stochastic_methods"]
    assert d["stochastic_methods"]["available"] is True
    assert [s["id"] for s in d["species"]] == ["A", "B", "C"]
    laws = {(tuple(sorted(c["coefficients"].items())), c["total"]) for c in d["conservation_laws"]}
    assert laws == {((("A", 1), ("C", 1)), 5.0), ((("B", 1), ("C", 1)), 3.0)}
    assert d["events"][0]["assignments"] == [{"variable": "kf", "math": "0.2"}]


def _same_model(a: Path, b: Path) -> None:
    """Same description apart from the source file and the order of elements."""

    def normal(path: Path) -> dict:
        d = describe(load(path))
        d["model"].pop("source")
        for key, items in d.items():
            if isinstance(items, list) and all(isinstance(x, dict) and "id" in x for x in items):
                d[key] = sorted(items, key=lambda x: x["id"])
        return d

    assert normal(a) == normal(b)


def test_convert_both_ways_and_round_trip(rich: Path, tmp_path: Path):
    xml = tmp_path / "rich.xml"
    res = invoke("convert", rich, "--out", xml)  # format from the suffix
    assert res.exit_code == 0, res.stderr
    assert xml.read_text().lstrip().startswith("<?xml")
    _same_model(rich, xml)

    ant = tmp_path / "back.antimony"
    res = invoke("convert", xml, "--to", "antimony", "--out", ant)
    assert res.exit_code == 0, res.stderr
    assert "model" in ant.read_text() and "<sbml" not in ant.read_text()
    _same_model(xml, ant)

    xml2 = tmp_path / "again.sbml"
    assert invoke("convert", ant, "--out", xml2).exit_code == 0
    _same_model(rich, xml2)
    # --to with a suffix that names no model format
    other = tmp_path / "rich.model"
    assert invoke("convert", rich, "--to", "sbml", "--out", other).exit_code == 0
    assert other.read_text() == xml.read_text()
    assert not list(tmp_path.glob(".*.tmp*"))


def test_convert_ode_text_to_sbml(blowup: Path, tmp_path: Path):
    xml = tmp_path / "blowup.xml"
    assert invoke("convert", blowup, "--out", xml).exit_code == 0
    d = describe(load(xml))
    assert [r["variable"] for r in d["rate_rules"]] == ["x"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--out", "{tmp}/m.foo"), "--to sbml|antimony"),
        (("--to", "sbml", "--out", "{tmp}/m.ant"), "means antimony"),
        (("--to", "antimony", "--out", "{tmp}/m.xml"), "means sbml"),
        (("--out", "{tmp}/no/such/dir/m.xml"), "does not exist"),
        (("--to", "cellml", "--out", "{tmp}/m.xml"), "Invalid value for '--to'"),
    ],
)
def test_convert_bad_options_exit_2(rich: Path, tmp_path: Path, args: tuple[str, ...], needle: str):
    res = invoke("convert", rich, *(a.format(tmp=tmp_path) for a in args))
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rich.ant"]  # nothing written


# ==================================================================================================
# exit codes and the one-line rule
# ==================================================================================================
MALFORMED_XML = '<?xml version="1.0"?>\n<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core"'


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("simulate", "{tmp}/missing.xml", "--t-end", "1"), ["missing.xml"]),
        (("simulate", "{malformed}", "--t-end", "1"), ["bad.xml"]),
        (("simulate", "{tmp}/model.json", "--t-end", "1"), ["unknown model format"]),
        (("simulate", "{decay}", "--t-end", "1", "--method", "euler"), ["unknown method 'euler'"]),
        (("simulate", "{decay}", "--t-end", "1", "--vars", "A,Q"), ["decay.ant", "--vars", "'Q'"]),
        (("simulate", "{decay}", "--t-end", "1", "--vars", "A,,"), ["--vars"]),
        (("simulate", "{decay}", "--t-end", "1", "--param", "k=abc"), ["--param k=abc", "'abc'"]),
        (("simulate", "{decay}", "--t-end", "1", "--param", "zz=1"), ["decay.ant", "'zz'"]),
        (("simulate", "{decay}", "--t-end", "1", "--param", "k"), ["--param k", "NAME=VALUE"]),
        (("simulate", "{decay}", "--t-end", "1", "--param", "k=1+1"), ["'1+1' is not a number"]),
        (("simulate", "{decay}", "--t-end", "1", "--param", "k=nan"), ["--param k=nan"]),
        (("simulate", "{decay}", "--t-end", "1", "--param", "k=inf"), ["finite"]),
        (("simulate", "{decay}", "--t-end", "1", "--out", "{tmp}/r.txt"), ["--out", "'.txt'"]),
        (("simulate", "{decay}", "--t-end", "1", "--out", "{tmp}/no/r.csv"), ["does not exist"]),
        (("simulate", "{decay}", "--t-end", "1", "--plot", "{tmp}/r.gif"), ["--plot"]),
        (("simulate", "{decay}", "--t-end", "-1"), ["--t-end"]),
        (("simulate", "{decay}", "--t-end", "1", "--rtol", "2"), ["--method ode", "rtol"]),
        (("simulate", "{decay}", "--t-end", "1", "--seed", "3"), ["deterministic", "seed"]),
        (("simulate", "{decay}"), ["Missing option '--t-end'"]),
        (("simulate", "{decay}", "--t-end", "x"), ["'--t-end'", "'x'"]),
        (("simulate", "{decay}", "--t-end", "1", "--units", "moles"), ["'--units'"]),
        (("simulate", "{decay}", "--t-end", "1", "--n-points", "1"), ["'--n-points'"]),
        (("simulate", "{decay}", "--t-end", "1", "--frobnicate"), ["--frobnicate"]),
        (("simulate",), ["Missing argument 'MODEL'"]),
        (("frobnicate",), ["No such command 'frobnicate'"]),
        (("info", "{malformed}"), ["bad.xml"]),
        (("demo", "no-such-demo"), ["unknown demo 'no-such-demo'", "gene-feedback"]),
        (("demo", "--out", "{decay}"), ["not a directory"]),
    ],
)
def test_bad_input_exits_2_with_one_line(
    decay: Path, tmp_path: Path, args: tuple[str, ...], needles: list[str]
):
    malformed = tmp_path / "bad.xml"
    malformed.write_text(MALFORMED_XML)
    (tmp_path / "model.json").write_text("{}")
    before = sorted(tmp_path.iterdir())
    filled = [a.format(tmp=tmp_path, decay=decay, malformed=malformed) for a in args]
    res = invoke(*filled)
    assert res.exit_code == 2, (res.stdout, res.stderr)
    assert_one_line_error(res.stderr, *needles)
    assert res.stdout == ""
    assert sorted(tmp_path.iterdir()) == before  # nothing simulated, nothing written


def test_unavailable_method_is_passed_through(decay: Path, monkeypatch: pytest.MonkeyPatch):
    # a method whose module is missing from an installation is reported by name
    monkeypatch.setitem(methods._CLASSES, "hybrid", ("scalebridge.wellmixed.not_here", "Hybrid"))
    res = invoke("simulate", decay, "--t-end", "1", "--method", "hybrid")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "'hybrid'", "not available")


def test_blowup_exits_3_naming_variable_and_time(blowup: Path, tmp_path: Path):
    out = tmp_path / "r.csv"
    res = invoke("simulate", blowup, "--t-end", "2", "--out", out)
    assert res.exit_code == 3
    line = assert_one_line_error(res.stderr, "blowup.ode", "'x'")
    t = float(re.search(r"t = ([0-9.eE+-]+)", line).group(1))  # type: ignore[union-attr]
    assert abs(t - 1.0) < 1e-2  # x = 1/(1 - t) blows up at t = 1
    assert not out.exists()


def test_keyboard_interrupt_exits_130(monkeypatch: pytest.MonkeyPatch, decay: Path):
    def interrupted(path: str):
        raise KeyboardInterrupt

    monkeypatch.setattr("scalebridge.cli._load", interrupted)
    res = invoke("info", decay)
    assert res.exit_code == 130
    assert res.stderr.splitlines() == ["scalebridge: interrupted"]


def test_internal_error_is_one_line_unless_debug(monkeypatch: pytest.MonkeyPatch, decay: Path):
    def broken(path: str):
        raise RuntimeError("boom")

    monkeypatch.setattr("scalebridge.cli._load", broken)
    res = invoke("info", decay)
    assert res.exit_code == 1
    line = res.stderr.splitlines()
    assert len(line) == 1 and "internal error: RuntimeError: boom" in line[0]
    assert "--debug" in line[0]
    res = invoke("--debug", "info", decay)
    assert res.exit_code == 1
    assert "Traceback" in res.stderr and "RuntimeError: boom" in res.stderr


def test_debug_shows_traceback_for_input_errors(tmp_path: Path):
    res = invoke("--debug", "info", tmp_path / "missing.ant")
    assert res.exit_code == 2
    assert "Traceback" in res.stderr
    assert res.stderr.splitlines()[-1].startswith("scalebridge: error: ")


def test_demo_through_the_cli(tmp_path: Path):
    out = tmp_path / "demo"
    res = invoke("demo", "--out", out)
    assert res.exit_code == 0, res.stderr
    assert (out / "summary.md").is_file()
    assert str(out / "summary.md") in res.stdout


# ==================================================================================================
# the real entry point
# ==================================================================================================
def run_module(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scalebridge", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_subprocess_usage_and_input_errors(tmp_path: Path):
    malformed = tmp_path / "bad.xml"
    malformed.write_text(MALFORMED_XML)
    for args, needle in (
        (("simulate", tmp_path / "missing.xml", "--t-end", "1"), "missing.xml"),
        (("simulate", malformed, "--t-end", "1"), "bad.xml"),
        (("simulate", malformed, "--t-end", "1", "--no-such-option"), "--no-such-option"),
    ):
        proc = run_module(*args)
        assert proc.returncode == 2, proc.stderr
        assert_one_line_error(proc.stderr, needle)
        assert proc.stdout == ""


def test_subprocess_success_and_solver_failure(decay: Path, blowup: Path):
    proc = run_module("simulate", decay, "--t-end", "1", "--n-points", "3")
    assert proc.returncode == 0, proc.stderr
    table = read_csv_text(proc.stdout)
    np.testing.assert_allclose(table["A"], A0 * np.exp(-K_DECAY * table["time"]), rtol=2e-5)

    proc = run_module("simulate", blowup, "--t-end", "2")
    assert proc.returncode == 3
    assert_one_line_error(proc.stderr, "'x'", "t = ")

    proc = run_module("--debug", "simulate", blowup, "--t-end", "2")
    assert proc.returncode == 3
    assert proc.stderr.startswith("Traceback")
    assert "SolverError" in proc.stderr
    last = proc.stderr.splitlines()[-1]
    assert last.startswith("scalebridge: error: ") and "'x'" in last


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
def test_subprocess_ctrl_c_exits_130_with_one_line(decay: Path):
    # A long CSV on stdout: once its first line arrives, the command is inside the run, and the
    # rest (two million rows) takes far longer to write than the signal takes to arrive.
    proc = subprocess.Popen(
        [*SCALEBRIDGE_WITH_DEFAULT_SIGINT, "simulate", str(decay), "--t-end", "10",
         "--n-points", "2000000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "time,A\n"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        close_process(proc)
    assert proc.returncode == 130, err
    assert err.splitlines() == ["scalebridge: interrupted"]
