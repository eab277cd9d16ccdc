"""`scalebridge petab` with --fit, --fim, --profile and --datasets, and the ``binding`` demo.

Checks against mathematics rather than stored output: the fitted point is a stationary point of
the likelihood (the sensitivity gradient, computed here independently of the fit, vanishes at
interior optima), the Fisher information the command prints equals the one computed here from
the sensitivities at the printed point, the profile interval contains the estimate and its ends
lie on the chi2(1) threshold, and the ranks follow from the model's structure: equilibrium
occupancy R_T L/(L + koff/kon) sees only koff/kon and R_T (rank 2 of 3), a scaled readout s C
sees only s R_T, not s and R_T apart (rank 3 of 4).
"""

from __future__ import annotations

import json
import math
from importlib.resources import as_file, files
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import chi2

from scalebridge.cli import cli
from scalebridge.infer import PetabGradient, load_petab


@pytest.fixture(scope="module")
def binding_dir() -> Path:
    with as_file(files("scalebridge") / "data" / "petab" / "binding") as p:
        return Path(p)


def _invoke(args: list[str]) -> tuple[int, str]:
    res = CliRunner().invoke(cli, args)
    return res.exit_code, res.output


def test_fit_fim_profile_json_and_files(binding_dir: Path, tmp_path: Path) -> None:
    problem = str(binding_dir / "binding_cross_scale.yaml")
    out = tmp_path / "fit"
    code, text = _invoke(
        ["petab", problem, "--llh", "--fit", "--starts", "3", "--workers", "1", "--fim",
         "--profile", "--out", str(out), "--json", "--no-progress"]
    )  # fmt: skip
    assert code == 0, text
    rep = json.loads(text)
    pb = load_petab(problem)
    x = np.array(rep["fit"]["x_best"])
    # stationary point: |grad| small against the gradient at the nominal point
    nllh, g = PetabGradient(pb).gradient(x)
    _, g0 = PetabGradient(pb).gradient(pb.x_nominal)
    assert np.max(np.abs(g)) < 1e-3 * max(1.0, np.max(np.abs(g0)))
    assert rep["fit"]["nllh_best"] == pytest.approx(nllh, rel=1e-10)
    # llh comes from the plain simulation, nllh from the sensitivity system: two integrations
    # at rtol 1e-10 on the states
    assert rep["llh"] == pytest.approx(-nllh, rel=1e-7)
    # Fisher information at the printed point
    fim = PetabGradient(pb).measurement_sensitivities(x).fim()
    assert np.allclose(np.array(rep["fim"]["fim"]), fim, rtol=1e-8, atol=1e-10)
    assert rep["fim"]["rank"] == 4
    # profile intervals bracket the estimate; their ends sit on the chi2 threshold
    delta = chi2.ppf(0.95, 1) / 2.0
    for i, p in enumerate(pb.estimated_ids):
        prof = rep["profile"]["profiles"][p]
        lo, hi = prof["ci"]
        assert lo < x[i] < hi
        assert prof["threshold"] == pytest.approx(nllh + delta, abs=1e-6)
    for name in ("fit_starts.csv", "waterfall.png", "fim.csv", "fim.png", "profiles.csv",
                 "profiles.png", "report.json"):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "report.json").read_text())["fit"]["nllh_best"] == pytest.approx(
        nllh, rel=1e-10
    )
    assert not list(out.glob("*.tmp*"))


def test_datasets_text_names_ranks_and_unseen_combinations(binding_dir: Path) -> None:
    code, text = _invoke(
        ["petab", str(binding_dir / "binding_kinetic.yaml"), "--datasets", "--workers", "1",
         "--no-progress", "--json"]
    )  # fmt: skip
    assert code == 0, text
    scopes = json.loads(text)["datasets"]["scopes"]
    assert scopes["equilibrium"]["fim"]["rank"] == 2
    assert scopes["kinetic"]["fim"]["rank"] == 3
    assert scopes["combined"]["fim"]["rank"] == 3
    combos = [c.replace(" ", "") for c in scopes["equilibrium"]["fim"]["identifiable_combinations"]]
    assert any(c in ("koff/kon", "kon/koff") for c in combos)


def test_bad_options_exit_2(binding_dir: Path) -> None:
    problem = str(binding_dir / "binding_kinetic.yaml")
    assert _invoke(["petab", problem])[0] == 2
    assert _invoke(["petab", problem, "--fit", "--starts", "0"])[0] == 2
    assert _invoke(["petab", problem, "--fim", "--alpha", "1.5"])[0] == 2


def test_binding_demo(tmp_path: Path) -> None:
    from scalebridge.demo import run_demo

    rep = run_demo("binding", tmp_path)
    v = rep.values
    assert v["binding_kinetic.equilibrium.fim_rank"] == 2
    assert v["binding_kinetic.combined.fim_rank"] == 3
    assert v["binding_cross_scale.cell.fim_rank"] == 3
    assert v["binding_cross_scale.molecular.fim_rank"] == 1
    assert v["binding_cross_scale.combined.fim_rank"] == 4
    # kon unbounded from equilibrium data; bounded once kinetics are added
    assert math.isinf(v["binding_kinetic.equilibrium.kon.profile_upper"]) or (
        v["binding_kinetic.equilibrium.kon.profile_lower"] == 0.0
    )
    assert math.isfinite(v["binding_kinetic.combined.kon.profile_upper"])
    assert v["binding_kinetic.combined.kon.profile_lower"] > 0.0
    assert (tmp_path / "summary.md").read_text().count("FIM rank") >= 6
    assert all(p.exists() for p in rep.files)
