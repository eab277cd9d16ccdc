"""Helpers for the SBML Test Suite semantic cases vendored in tests/data/sbml-semantic."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1] / "data" / "sbml-semantic"

# Integrator tolerances for the suite: tight enough that the suite's own rule
# |sim - expected| <= absolute + relative * |expected| is decided by the model semantics, not by
# integration error.
RTOL = 1e-10
ATOL = 1e-14


@dataclass
class Case:
    name: str
    directory: Path
    variables: list[str]
    amount: set[str]
    concentration: set[str]
    absolute: float
    relative: float
    expected: pd.DataFrame

    @property
    def model(self) -> Path:
        """The highest SBML level/version the case provides (L3V2, else L3V1)."""
        for lv in ("l3v2", "l3v1"):
            p = self.directory / f"{self.name}-sbml-{lv}.xml"
            if p.exists():
                return p
        raise FileNotFoundError(f"case {self.name} has no SBML Level 3 file")

    @property
    def times(self) -> np.ndarray:
        return self.expected["time"].to_numpy(dtype=float)


def case_names() -> list[str]:
    return sorted(p.name for p in ROOT.iterdir() if p.is_dir() and p.name.isdigit())


def _list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def load_case(name: str) -> Case:
    d = ROOT / name
    settings: dict[str, str] = {}
    for line in (d / f"{name}-settings.txt").read_text().splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            settings[k.strip()] = v.strip()
    expected = pd.read_csv(d / f"{name}-results.csv")
    # The first column is the time (headed "time" or "Time").
    expected.columns = ["time", *(c.strip() for c in expected.columns[1:])]
    return Case(
        name=name,
        directory=d,
        variables=_list(settings["variables"]),
        amount=set(_list(settings.get("amount", ""))),
        concentration=set(_list(settings.get("concentration", ""))),
        absolute=float(settings["absolute"]),
        relative=float(settings["relative"]),
        expected=expected,
    )


def mismatches(case: Case, simulated: dict[str, np.ndarray]) -> list[str]:
    """Output points that break the suite's rule, as readable lines (empty when all pass)."""
    bad: list[str] = []
    t = case.times
    for v in case.variables:
        sim = np.asarray(simulated[v], dtype=float)
        exp = case.expected[v].to_numpy(dtype=float)
        both_nan = np.isnan(sim) & np.isnan(exp)
        same_inf = np.isinf(sim) & np.isinf(exp) & (np.sign(sim) == np.sign(exp))
        ok = (
            (np.abs(sim - exp) <= case.absolute + case.relative * np.abs(exp)) | both_nan | same_inf
        )
        for i in np.nonzero(~ok)[0][:3]:
            bad.append(f"{v} at t={t[i]:g}: simulated {sim[i]!r}, expected {exp[i]!r}")
    return bad
