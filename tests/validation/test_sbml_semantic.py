"""SBML Test Suite semantic cases: every output point within the suite's tolerance.

Each case runs in-process through ``scalebridge.simulate`` -- the code path of
``scalebridge simulate`` -- with species reported in the units the case's settings file asks for.
A case that scalebridge refuses must be refused with UnsupportedFeatureError naming the
construct; such cases are listed in ``REFUSED`` with the reason, and the test checks that they
are refused and not silently wrong.  A few cases also run through the real command line.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import scalebridge as sb
from scalebridge.errors import UnsupportedFeatureError

from .sbml_suite import ATOL, RTOL, case_names, load_case, mismatches

# case -> the construct it needs that scalebridge refuses (none at present).
REFUSED: dict[str, str] = {}


def _simulate(case_name: str) -> tuple[object, dict[str, np.ndarray]]:
    case = load_case(case_name)
    net = sb.load(case.model)
    out: dict[str, np.ndarray] = {}
    by_units: dict[str, list[str]] = {"amount": [], "concentration": [], "model": []}
    for v in case.variables:
        if v in case.amount:
            by_units["amount"].append(v)
        elif v in case.concentration:
            by_units["concentration"].append(v)
        else:
            by_units["model"].append(v)
    for units, names in by_units.items():
        if not names:
            continue
        res = sb.simulate(
            net, "ode", times=case.times, vars=names, units=units, rtol=RTOL, atol=ATOL
        )
        for n in names:
            out[n] = res[n].values
    return case, out


@pytest.mark.parametrize("name", case_names())
def test_semantic_case(name: str) -> None:
    if name in REFUSED:
        with pytest.raises(UnsupportedFeatureError):
            _simulate(name)
        return
    case, out = _simulate(name)
    bad = mismatches(case, out)  # type: ignore[arg-type]
    assert not bad, f"case {name}: " + "; ".join(bad)


@pytest.mark.parametrize("name", ["00001", "00352", "01012"])
def test_semantic_case_through_cli(name: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    case = load_case(name)
    units = "amount" if set(case.variables) <= case.amount else "model"
    if case.concentration and set(case.variables) <= case.concentration:
        units = "concentration"
    if units == "model" and (case.amount or case.concentration):
        pytest.skip("case mixes amounts and concentrations")
    out = tmp_path / "out.csv"
    t = case.times
    cmd = [
        sys.executable, "-m", "scalebridge", "simulate", str(case.model), "--method", "ode",
        "--t-end", repr(float(t[-1])), "--n-points", str(t.size),
        "--vars", ",".join(case.variables),
        "--units", units, "--rtol", str(RTOL), "--atol", str(ATOL), "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = pd.read_csv(out)
    assert np.allclose(got["time"].to_numpy(), t, rtol=0, atol=1e-12)
    bad = mismatches(case, {v: got[v].to_numpy() for v in case.variables})
    assert not bad, "; ".join(bad)
