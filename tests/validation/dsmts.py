"""The Discrete Stochastic Models Test Suite (Evans, Gillespie & Wilkinson, Bioinformatics 2008):
reading the vendored cases and applying the suite's criterion.

Each case folder ``tests/data/dsmts/NNNNN`` holds an SBML model, ``NNNNN-settings.txt``
(``duration``, ``steps``, ``variables``, which are ``amount``) and ``NNNNN-results.csv`` with the
analytic mean ``mu`` and sd ``sigma`` of every variable at ``steps + 1`` equally spaced times.

Criterion (the validation README; the suite's own ranges are in each settings file): from ``n``
runs with sample mean ``m`` and sample variance ``s^2`` (ddof = 1) at a time point where
``sigma > 0``,

    Z = sqrt(n) (m - mu) / sigma        must lie in (-3, 3),
    Y = sqrt(n/2) (s^2 / sigma^2 - 1)   must lie in (-5, 5);

where ``sigma = 0`` the mean must equal ``mu`` exactly.  A point (variable, time) fails when any
of these fails.  For a correct simulator and n = 10,000, Z fails with probability about 0.0027
per point (Y more rarely), and failures cluster in time because the points of one trajectory are
correlated: no case may have more than 3 failing points, and all cases together at most 15.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import scalebridge as sb

DSMTS_DIR = Path(__file__).resolve().parents[1] / "data" / "dsmts"
Z_BOUND = 3.0
Y_BOUND = 5.0
MAX_FAILURES_PER_CASE = 3
MAX_FAILURES_TOTAL = 15


def case_ids() -> list[str]:
    return sorted(p.name for p in DSMTS_DIR.iterdir() if p.is_dir() and p.name.isdigit())


@dataclass(frozen=True)
class Case:
    """One DSMTS case: model file, settings and the analytic moments."""

    id: str
    model: Path
    duration: float
    steps: int
    variables: tuple[str, ...]
    amounts: tuple[str, ...]
    reference: pd.DataFrame = field(repr=False)

    @property
    def times(self) -> np.ndarray:
        return np.linspace(0.0, self.duration, self.steps + 1)


def _listing(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def load_case(case_id: str) -> Case:
    folder = DSMTS_DIR / case_id
    settings: dict[str, str] = {}
    for line in (folder / f"{case_id}-settings.txt").read_text().splitlines():
        key, sep, value = line.partition(":")
        if sep:
            settings[key.strip()] = value.strip()
    ref = pd.read_csv(folder / f"{case_id}-results.csv", float_precision="round_trip")
    case = Case(
        id=case_id,
        model=folder / f"{case_id}-sbml-l3v2.xml",
        duration=float(settings["duration"]),
        steps=int(settings["steps"]),
        variables=_listing(settings["variables"]),
        amounts=_listing(settings.get("amount", "")),
        reference=ref,
    )
    if float(settings.get("start", "0")) != 0.0:
        raise ValueError(f"DSMTS case {case_id}: start times other than 0 are not handled")
    if set(case.variables) - set(case.amounts):
        raise ValueError(f"DSMTS case {case_id}: every variable is expected as an amount")
    if not np.allclose(ref["time"].to_numpy(), case.times, rtol=0, atol=1e-12):
        raise ValueError(f"DSMTS case {case_id}: results times differ from the settings")
    return case


@dataclass
class Failure:
    variable: str
    time: float
    z: float
    y: float
    reason: str


@dataclass
class Outcome:
    case: str
    runs: int
    failures: list[Failure]
    seconds: float
    stats: dict[str, Any]

    @property
    def n_failures(self) -> int:
        return len(self.failures)


def simulate_case(
    case: Case, *, method: str = "ssa", runs: int, seed: int, **kwargs: Any
) -> tuple[np.ndarray, np.ndarray, sb.Result, float]:
    """Sample means and variances (variables x times) of ``runs`` runs at the case's settings."""
    t0 = time.perf_counter()
    res = sb.simulate(
        sb.load(case.model), method, t_end=case.duration, n_points=case.steps + 1,
        runs=runs, seed=seed, vars=list(case.variables), units="amount", progress=False,
        **kwargs,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    means = np.array([res[v].mean("run").to_numpy() for v in case.variables])
    variances = np.array([res[v].var("run", ddof=1).to_numpy() for v in case.variables])
    return means, variances, res, seconds


def failing_points(
    case: Case,
    means: np.ndarray,
    variances: np.ndarray,
    n: int,
    *,
    z_bound: float = Z_BOUND,
    y_bound: float = Y_BOUND,
) -> list[Failure]:
    """The points that fail the criterion (module docstring) with the given bounds."""
    out: list[Failure] = []
    ref = case.reference
    for k, var in enumerate(case.variables):
        mu = ref[f"{var}-mean"].to_numpy()
        sigma = ref[f"{var}-sd"].to_numpy()
        for i, t in enumerate(case.times):
            m, s2 = means[k, i], variances[k, i]
            if sigma[i] == 0.0:
                if m != mu[i]:
                    out.append(Failure(var, t, np.inf, np.nan, f"mean {m} != {mu[i]} (sd 0)"))
                continue
            z = np.sqrt(n) * (m - mu[i]) / sigma[i]
            y = np.sqrt(n / 2) * (s2 / sigma[i] ** 2 - 1.0)
            bad = [w for w, ok in (("Z", abs(z) < z_bound), ("Y", abs(y) < y_bound)) if not ok]
            if bad:
                out.append(Failure(var, t, float(z), float(y), "+".join(bad)))
    return out


# Seed of case NNNNN: SEED_BASE + NNNNN (see test_dsmts.py for how the base was chosen).
SEED_BASE = 0


def run_case(
    case_id: str,
    *,
    method: str = "ssa",
    runs: int = 10_000,
    seed: int | None = None,
    z_bound: float = Z_BOUND,
    y_bound: float = Y_BOUND,
    **kwargs: Any,
) -> Outcome:
    case = load_case(case_id)
    seed = SEED_BASE + int(case_id) if seed is None else seed
    means, variances, res, seconds = simulate_case(
        case, method=method, runs=runs, seed=seed, **kwargs
    )
    fails = failing_points(case, means, variances, runs, z_bound=z_bound, y_bound=y_bound)
    return Outcome(case_id, runs, fails, seconds, res.stats)


def report(outcomes: list[Outcome]) -> str:
    lines = []
    for o in outcomes:
        where = ", ".join(
            f"{f.variable}@t={f.time:g} ({f.reason}: Z={f.z:.2f}, Y={f.y:.2f})" for f in o.failures
        )
        events = o.stats.get("events", o.stats.get("firings", ""))
        lines.append(
            f"{o.case}: {o.n_failures} failing points; {o.seconds:.2f} s; events {events}"
            + (f"; {where}" if where else "")
        )
    total = sum(o.n_failures for o in outcomes)
    lines.append(f"total: {total} failing points over {len(outcomes)} cases")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m tests.validation.dsmts [method] [runs] [seed base]
    import sys

    method = sys.argv[1] if len(sys.argv) > 1 else "ssa"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    base = int(sys.argv[3]) if len(sys.argv) > 3 else SEED_BASE
    t0 = time.perf_counter()
    outcomes = [run_case(c, method=method, runs=runs, seed=base + int(c)) for c in case_ids()]
    print(report(outcomes))
    print(f"method {method}, {runs} runs per case, {time.perf_counter() - t0:.1f} s in all")
