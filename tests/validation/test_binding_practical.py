"""Across scales: the receptor-ligand binding seed example, end to end.

The PEtab problems in ``scalebridge/data/petab/binding/`` (see ``make_data.py`` there) hold

* ``binding_equilibrium``: equilibrium occupancy Ceq(L) = Rtot L / (L + KD), KD = koff/kon,
  at eight ligand levels -- only KD and Rtot are determined;
* ``binding_kinetic``: the same plus time courses C(t) = Ceq(L) (1 - exp(-(kon L + koff) t))
  at three ligand levels -- kon, koff and Rtot are determined;
* ``binding_cross_scale``: a cell-scale readout y1 = s C (time courses) -- only Rtot*s, kon and
  koff are determined -- and a molecular-scale measurement y2 = Rtot, which identifies both.

Checked against mathematics, not against the code's own output: the simulations against the
closed-form C(t) (recomputed here), the noise of the data files against the stated sigma, the
unseen directions against the exact invariances (kon, koff -> c kon, c koff leaves Ceq
unchanged; Rtot, s -> c Rtot, s / c leaves y1 unchanged), intervals against the generating
values, and the structural labels against the answer files of the identifiability set.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scalebridge.infer.petab_problem import load_petab
from scalebridge.infer.practical import practical_identifiability

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "src" / "scalebridge" / "data" / "petab" / "binding"
ANSWERS = ROOT / "tests" / "data" / "identifiability"
TRUE = {"kon": 0.5, "koff": 0.2, "Rtot": 10.0, "s": 3.0}
SIGMA = {"C_obs": 0.2, "y1": 0.5, "y2": 0.5}
LIGAND = {f"eq_{i + 1}": v for i, v in enumerate((0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4))}
LIGAND.update({"kin_1": 0.2, "kin_2": 1.0, "kin_3": 5.0, "assay": 0.0})


def complex_at(t: float, lig: float) -> float:
    k = TRUE["kon"] * lig + TRUE["koff"]
    return TRUE["Rtot"] * TRUE["kon"] * lig / k * (1.0 - math.exp(-k * t))


def analytic(obs: str, cond: str, t: float) -> float:
    c = complex_at(t, LIGAND[cond])
    return {"C_obs": c, "y1": TRUE["s"] * c, "y2": TRUE["Rtot"]}[obs]


def _report(name: str):
    pb = load_petab(DATA / f"binding_{name}.yaml")
    return pb, practical_identifiability(pb, workers=1, progress=False)


@pytest.fixture(scope="module")
def equilibrium():
    return _report("equilibrium")


@pytest.fixture(scope="module")
def kinetic():
    return _report("kinetic")


@pytest.fixture(scope="module")
def cross_scale():
    return _report("cross_scale")


def _answer(name: str) -> dict[str, str]:
    out: dict[str, str] = json.loads((ANSWERS / f"{name}.answer.json").read_text())["parameters"]
    return out


def _identifiable(label: str | None) -> bool:
    return label is not None and label != "non-identifiable"


def _consistent(ci: tuple[float, float], v: float) -> bool:
    """The generating value lies within 4 standard errors of the estimate, the standard error
    read off the 95 % interval (log10 scale: half-width / 1.96).  A 95 % interval misses the
    truth in 1 of 20 cases by design, so the tests do not require that of each of the dozen
    intervals of one fixed dataset; 4 standard errors fail by chance with probability 6e-5."""
    lo, hi = math.log10(ci[0]), math.log10(ci[1])
    return abs(math.log10(v) - (lo + hi) / 2) <= 4 / 1.959964 * (hi - lo) / 2


def _spans_box(pb, report, scope: str, p: str) -> bool:
    """The profile interval reaches (within 0.02 decades) both bounds: flat over the box."""
    lo_b = float(pb.problem.parameter_df.loc[p, "lowerBound"])
    hi_b = float(pb.problem.parameter_df.loc[p, "upperBound"])
    lo, hi = report.scopes[scope].profile_ci(p)
    return lo <= lo_b * 10**0.02 and hi >= hi_b / 10**0.02


# ------------------------------------------------------------------ the data


@pytest.mark.parametrize("name", ["equilibrium", "kinetic", "cross_scale"])
def test_simulations_match_the_closed_form_and_the_noise_its_sigma(name: str):
    pb = load_petab(DATA / f"binding_{name}.yaml")
    res = pb.evaluate()  # nominal = generating values
    sim: pd.DataFrame = res.simulations
    mdf = pb.problem.measurement_df.reset_index(drop=True)
    want = np.array(
        [
            analytic(o, c, t)
            for o, c, t in zip(
                mdf["observableId"], mdf["simulationConditionId"], mdf["time"], strict=True
            )
        ]
    )
    np.testing.assert_allclose(sim["simulation"].to_numpy(), want, rtol=1e-7, atol=1e-9)
    z = (mdf["measurement"].to_numpy() - want) / np.array([SIGMA[o] for o in mdf["observableId"]])
    assert np.all(np.abs(z) < 4.5)
    # chi2 / N of N(0, 1) noise: mean 1, sd sqrt(2/N)
    assert abs(np.mean(z**2) - 1.0) < 4 * math.sqrt(2 / len(z))


# ------------------------------------------------------------------ equilibrium data


def test_equilibrium_sees_only_kd_and_rtot(equilibrium):
    _, rep = equilibrium
    sc = rep.scopes["equilibrium"]
    assert list(rep.scopes) == ["equilibrium"]
    f = sc.fim
    assert f.rank == 2 and len(f.parameter_ids) == 3 and math.isinf(f.condition_number)
    (u,) = f.unseen
    assert u.exponents == {"kon": 1, "koff": 1}  # kon and koff scaled together
    assert f.identifiable_combinations == ["koff/kon"]  # K_D
    assert set(f.unseen_parameters) == {"kon", "koff"}
    assert _consistent(f.cramer_rao["Rtot"], TRUE["Rtot"])
    # profiles: flat (infinite interval) for kon and koff, finite for Rtot
    for p in ("kon", "koff"):
        ci = sc.profile_ci(p)
        assert ci == (0.0, math.inf), (p, ci)
    assert sc.profile.profiles["Rtot"].identifiable
    assert _consistent(sc.profile_ci("Rtot"), TRUE["Rtot"])
    # structural: the answer file of the identifiability set, and agreement with the FIM
    labels = sc.structural.parameters
    for p, lab in _answer("binding_equilibrium").items():
        assert _identifiable(labels[p]) == _identifiable(lab), p
    assert labels["Rtot"] == "globally"
    assert [c.text.replace(" ", "") for c in sc.structural.combinations] == ["koff/kon"]
    assert sc.agrees()


# ------------------------------------------------------------------ kinetic data


def test_kinetic_time_courses_identify_kon_and_koff(kinetic):
    _, rep = kinetic
    assert list(rep.scopes) == ["equilibrium", "kinetic", "combined"]
    assert rep.scopes["equilibrium"].fim.rank == 2
    for scope in ("kinetic", "combined"):
        sc = rep.scopes[scope]
        assert sc.fim.rank == 3 and math.isfinite(sc.fim.condition_number)
        assert not sc.fim.unseen
        for p in ("kon", "koff", "Rtot"):
            ci = sc.profile_ci(p)
            assert all(math.isfinite(v) for v in ci), (scope, p, ci)
            assert _consistent(ci, TRUE[p]), (scope, p, ci)
            assert _identifiable(sc.structural.parameters[p])
        assert sc.agrees()
    # the kinetic answer file
    for p, lab in _answer("binding_kinetic").items():
        assert _identifiable(rep.scopes["kinetic"].structural.parameters[p]) == _identifiable(lab)
    # the suggestion: a time course of C added to the equilibrium data identifies kon and koff
    assert any(
        s["dataset"] == "equilibrium"
        and s["measurement"].startswith("C__")
        and set(s["makes_identifiable"]) == {"kon", "koff"}
        for s in rep.suggestions
    )


# ------------------------------------------------------------------ data from two scales


def test_cell_readout_alone_sees_only_the_product_rtot_s(cross_scale):
    pb, rep = cross_scale
    sc = rep.scopes["cell"]
    f = sc.fim
    assert f.rank == 3 and math.isinf(f.condition_number)
    (u,) = f.unseen
    assert u.exponents is not None and set(u.exponents) == {"Rtot", "s"}
    assert u.exponents["Rtot"] == -u.exponents["s"]  # Rtot up, s down
    assert f.identifiable_combinations == ["Rtot*s"]
    assert set(f.unseen_parameters) == {"Rtot", "s"}
    # profiles of Rtot and s: flat over the whole box (the interval reaches both bounds)
    for p in ("Rtot", "s"):
        assert _spans_box(pb, rep, "cell", p), (p, sc.profile_ci(p))
    for p in ("kon", "koff"):
        assert _consistent(sc.profile_ci(p), TRUE[p])
    labels = sc.structural.parameters
    for p, lab in _answer("binding_cross_scale").items():
        assert _identifiable(labels[p]) == _identifiable(lab), p
    assert sc.agrees()
    # suggested: measuring Rtot (another scale) identifies Rtot and s
    assert any(
        s["dataset"] == "cell" and s["measurement"] == "Rtot"
        and set(s["makes_identifiable"]) == {"Rtot", "s"}
        for s in rep.suggestions
    )  # fmt: skip


def test_molecular_measurement_of_rtot_identifies_both(cross_scale):
    _, rep = cross_scale
    sc = rep.scopes["combined"]
    assert sc.datasets == ("cell", "molecular")
    assert sc.fim.rank == 4 and math.isfinite(sc.fim.condition_number)
    for p in ("kon", "koff", "Rtot", "s"):
        ci = sc.profile_ci(p)
        assert all(math.isfinite(v) for v in ci), (p, ci)
        assert _consistent(ci, TRUE[p]), (p, ci)
        assert _consistent(sc.fim.cramer_rao[p], TRUE[p]), p
        # nearly linear at this noise level: the likelihood-ratio (profile) and the Wald
        # (Cramér–Rao) intervals nearly coincide
        cr = sc.fim.cramer_rao[p]
        w_prof, w_cr = math.log10(ci[1] / ci[0]), math.log10(cr[1] / cr[0])
        assert math.isclose(w_prof, w_cr, rel_tol=0.05), (p, ci, cr)
    for p, lab in _answer("binding_cross_scale_with_receptor_data").items():
        assert _identifiable(sc.structural.parameters[p]) == _identifiable(lab), p
    assert sc.agrees()
    # the molecular assay alone sees Rtot only
    mol = rep.scopes["molecular"]
    assert mol.fim.rank == 1 and mol.fim.unseen_parameters == ["kon", "koff", "s"]
    assert mol.agrees()


def test_report_forms(cross_scale, tmp_path: Path):
    _, rep = cross_scale
    d = rep.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["scopes"]["cell"]["fim"]["identifiable_combinations"] == ["Rtot*s"]
    tab = rep.table()
    assert set(tab["scope"]) == {"cell", "molecular", "combined"} and len(tab) == 12
    text = rep.format()
    assert "Rtot*s" in text and "suggested measurements" in text
    paths = rep.plot(tmp_path)
    assert len(paths) == 6 and all(Path(p).stat().st_size > 1000 for p in paths)
