"""`scalebridge analyze`: the LNA JSON layout and values, the reduced SBML, regimes, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import scalebridge as sb
from scalebridge.cli import cli

TWO_STAGE = """model two_stage
  transcription: -> M; km
  mrna_decay: M -> ; gm*M
  translation: M -> M + P; kp*M
  protein_decay: P -> ; gp*P
  km = 10; gm = 1; kp = 5; gp = 0.1
  M = 0; P = 0
end
"""
# f(x, y) = y - y^3/3 - x with x slowly increasing: the stable branch folds at x = 2/3.
FOLD = """model fold
  species x = -1, y = -1.8
  Jx: -> x; eps
  Jy: -> y; (y - y^3/3 - x)/eps_fast
  eps = 0.04; eps_fast = 0.001
end
"""
RECEPTOR = Path(sb.__file__).parent / "data" / "receptor_uptake.ant"


def _runner() -> CliRunner:
    try:  # click < 8.2 mixes stderr into stdout unless told not to
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner()


def invoke(*args: str):
    return _runner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def two_stage(tmp_path: Path) -> Path:
    p = tmp_path / "two_stage.ant"
    p.write_text(TWO_STAGE)
    return p


def test_lna_json_layout_and_exact_moments(two_stage: Path) -> None:
    res = invoke("analyze", two_stage, "--lna", "--json")
    assert res.exit_code == 0, res.stderr
    lna = json.loads(res.stdout)["lna"]
    km, gm, kp, gp = 10.0, 1.0, 5.0, 0.1
    # Linear network: the LNA is exact.  <M> = km/gm, <P> = kp km/(gm gp),
    # Fano(P) = 1 + kp/(gm + gp), Cov(M, P) = kp <M>/(gm + gp).
    assert lna["mean"]["M"] == pytest.approx(km / gm, rel=1e-10)
    assert lna["mean"]["P"] == pytest.approx(kp * km / (gm * gp), rel=1e-10)
    assert lna["fano"]["P"] == pytest.approx(1 + kp / (gm + gp), rel=1e-10)
    assert lna["fano"]["M"] == pytest.approx(1.0, rel=1e-10)
    assert lna["covariance"]["M"]["P"] == pytest.approx(kp * (km / gm) / (gm + gp), rel=1e-10)
    assert lna["covariance"]["P"]["M"] == lna["covariance"]["M"]["P"]


def test_lna_text_names_species(two_stage: Path) -> None:
    res = invoke("analyze", two_stage, "--lna", "--param", "kp=10")
    assert res.exit_code == 0, res.stderr
    assert "Fano" in res.stdout
    row = next(line for line in res.stdout.splitlines() if line.split()[:1] == ["P"])
    assert float(row.split()[1]) == pytest.approx(1000.0, rel=1e-9)


def test_reduce_writes_sbml_with_the_michaelis_menten_law(tmp_path: Path) -> None:
    out = tmp_path / "reduced.xml"
    res = invoke("analyze", RECEPTOR, "--reduce", "R,C", "--t-end", "1200", "--out", out, "--json")
    assert res.exit_code == 0, res.stderr
    assert "reduce" in json.loads(res.stdout)
    red = sb.load(out)
    assert {s.id for s in red.species} >= {"L", "Li"}
    assert len(red.reactions) == 1
    # the reduced model's uptake rate at L = 300 (= K_m) is V_max/2 = 1 molecule/min
    full = sb.simulate(red, "ode", t_end=1, n_points=2, params={"L": 300.0}, vars=["internalize"])
    assert float(full.data["internalize"][0]) == pytest.approx(1.0, rel=1e-9)


def test_fold_is_refused_with_exit_2(tmp_path: Path) -> None:
    p = tmp_path / "fold.ant"
    p.write_text(FOLD)
    res = invoke("analyze", p, "--reduce", "y", "--t-end", "60")
    assert res.exit_code == 2, res.stdout
    assert len(res.stderr.splitlines()) == 1 and "Traceback" not in res.stderr


def test_regimes_json_covers_every_species_and_reaction(two_stage: Path) -> None:
    res = invoke("analyze", two_stage, "--regimes", "--t-end", "50", "--json")
    assert res.exit_code == 0, res.stderr
    advice = json.loads(res.stdout)["regimes"]
    text = json.dumps(advice)
    for name in ("M", "P", "transcription", "mrna_decay", "translation", "protein_decay"):
        assert f'"{name}"' in text


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((), "say what to analyze"),
        (("--regimes",), "--t-end"),
        (("--reduce", "M"), "--t-end"),
        (("--lna", "--out", "x.xml"), "needs --reduce"),
        (("--reduce", "M", "--t-end", "5", "--out", "x.csv"), "SBML"),
        (("--lna", "--t-end", "-1"), "--t-end"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    two_stage: Path, args: tuple[str, ...], needle: str
) -> None:
    res = invoke("analyze", two_stage, *args)
    assert res.exit_code == 2
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and needle in lines[0], res.stderr
