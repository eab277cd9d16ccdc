"""`scalebridge steady-state` against closed forms, and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from scalebridge.cli import cli

BIRTH_DEATH = "model m\n species X = 3\n J1: -> X; k\n J2: X -> ; g*X\n k = 7; g = 0.35\nend\n"


def _write(tmp_path: Path, text: str, name: str = "m.ant") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_json_output_matches_k_over_gamma(tmp_path: Path) -> None:
    model = _write(tmp_path, BIRTH_DEATH)
    res = CliRunner().invoke(cli, ["steady-state", model, "--param", "k=14", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert abs(data["values"]["X"] - 14 / 0.35) <= 1e-9 * 40
    assert data["stable"] is True
    assert data["eigenvalues_real"] == [-0.35]


def test_text_output_names_stability(tmp_path: Path) -> None:
    model = _write(tmp_path, BIRTH_DEATH)
    res = CliRunner().invoke(cli, ["steady-state", model])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0].split()[0] == "X"
    assert float(res.output.splitlines()[0].split()[1]) == 20.0
    assert "stable: yes" in res.output


def test_models_with_events_exit_2_with_one_line(tmp_path: Path) -> None:
    model = _write(
        tmp_path, "model m\n species x = 1\n J: x -> ; x\n E: at (time > 1): x = 2\nend\n"
    )
    res = CliRunner().invoke(cli, ["steady-state", model])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "events" in lines[0] and "m.ant" in lines[0]


def test_unknown_variable_exits_2(tmp_path: Path) -> None:
    model = _write(tmp_path, BIRTH_DEATH)
    res = CliRunner().invoke(cli, ["steady-state", model, "--vars", "Y"])
    assert res.exit_code == 2
    assert "'Y'" in res.output
