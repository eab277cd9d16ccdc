"""Shared helpers for the side-by-side benchmarks in this folder.

* :func:`time_interleaved` / :func:`time_repeated` -- median (and best) wall time of calls after
  warm-up calls, several calls timed in alternation, with a repeat count that adapts to their
  cost within a time budget.
* :func:`fresh_process` -- run a short Python body in a new interpreter and collect the timings
  of its phases, measured from inside the process, plus the wall time of the whole subprocess.
  The first phase, ``start``, is the time from just before the parent launches the child to the
  first line of the body: process creation, interpreter start-up and ``site`` imports.
* :class:`Target` -- one goal and its measurement, printed in the project's fixed form
  ``target <name>: measured <value> <unit>; goal <op> <value>; met|missed``.
* :func:`table`, :func:`environment`, :func:`save_json`.

Timing conventions: wall-clock time from :func:`time.perf_counter` (inside a process) or
:func:`time.time` (across the launch of a child, the only clock both processes share); the
garbage collector stays enabled (it is part of what a user's call costs) and is run before
each batch of repeats so that earlier batches do not leave garbage to this one.
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "FreshRun",
    "Target",
    "Timing",
    "environment",
    "fmt",
    "fresh_process",
    "save_json",
    "table",
    "time_interleaved",
    "time_repeated",
]

REPO = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------------------------
# Repeated timing


@dataclass(frozen=True)
class Timing:
    """Wall times (s) of ``n`` repeated calls after warm-up: their median and minimum."""

    median: float
    best: float
    n: int
    values: tuple[float, ...] = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"median_s": self.median, "best_s": self.best, "n": self.n}


def time_interleaved(
    fns: Mapping[str, Callable[[], object]],
    *,
    warmup: int = 1,
    min_rounds: int = 5,
    max_rounds: int = 200,
    budget_s: float = 1.0,
) -> dict[str, Timing]:
    """Time several calls side by side: ``warmup`` untimed calls of each, then rounds in which
    each is called once, in turn, at least ``min_rounds`` rounds and more while the total time
    stays under ``budget_s`` (at most ``max_rounds``).

    Interleaving makes a change of machine load during the measurement (other processes on a
    shared machine) affect every call alike, so that their ratios stay meaningful.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    gc.collect()
    values: dict[str, list[float]] = {k: [] for k in fns}
    spent = 0.0
    rounds = 0
    while rounds < max_rounds and (rounds < min_rounds or spent < budget_s):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            values[k].append(dt)
            spent += dt
        rounds += 1
    return {k: Timing(statistics.median(v), min(v), len(v), tuple(v)) for k, v in values.items()}


def time_repeated(
    fn: Callable[[], object],
    *,
    warmup: int = 1,
    min_repeats: int = 5,
    max_repeats: int = 200,
    budget_s: float = 1.0,
) -> Timing:
    """Time one call: :func:`time_interleaved` with a single function."""
    return time_interleaved(
        {"fn": fn},
        warmup=warmup,
        min_rounds=min_repeats,
        max_rounds=max_repeats,
        budget_s=budget_s,
    )["fn"]


# ---------------------------------------------------------------------------------------------
# Fresh processes

_LAUNCH_ENV = "SCALEBRIDGE_BENCH_LAUNCH"
_RESULT_TAG = "SCALEBRIDGE-BENCH-RESULT "

# Runs first in the child.  ``lap(name)`` closes a phase; ``report(**extra)`` prints the phases
# (and any extra JSON-serialisable values) as one tagged line for the parent.
_PRELUDE = f"""\
import json as _json, os as _os, sys as _sys, time as _time
_phases = {{"start": _time.time() - float(_os.environ[{_LAUNCH_ENV!r}])}}
_mark = _time.perf_counter()
def lap(name):
    global _mark
    now = _time.perf_counter()
    _phases[name] = now - _mark
    _mark = now
def report(**extra):
    _sys.stdout.write({_RESULT_TAG!r} + _json.dumps({{"phases": _phases, "extra": extra}}) + "\\n")
    _sys.stdout.flush()
"""


@dataclass(frozen=True)
class FreshRun:
    """Timings of one child process.

    ``phases`` (s, in order) come from inside the child; ``total_s`` is their sum, i.e. the time
    from launch to the end of the last phase; ``wall_s`` is the parent's wall time of the whole
    subprocess (it adds interpreter shutdown and pipe transfer).
    """

    phases: dict[str, float]
    wall_s: float
    extra: dict[str, Any]

    @property
    def total_s(self) -> float:
        return sum(self.phases.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "phases_s": self.phases,
            "total_s": self.total_s,
            "wall_s": self.wall_s,
            "extra": self.extra,
        }


class FreshProcessError(RuntimeError):
    """A child process failed or did not report its timings."""


def fresh_process(
    body: str,
    args: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 600.0,
) -> FreshRun:
    """Run ``body`` (Python source written by the benchmark itself) in a new interpreter, the
    one running this script, with ``args`` as ``sys.argv[1:]``, in the repository root.

    ``body`` calls ``lap(name)`` at the end of each phase and ``report(**extra)`` once.  ``env``
    entries are added to (or, with an empty value, removed from) this process's environment.
    """
    child_env = dict(os.environ)
    for k, v in (env or {}).items():
        if v:
            child_env[k] = v
        else:
            child_env.pop(k, None)
    child_env[_LAUNCH_ENV] = repr(time.time())
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _PRELUDE + body, *args],
        cwd=REPO,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise FreshProcessError(f"child process failed (exit {proc.returncode}):\n{tail}")
    data = json.loads(lines[-1][len(_RESULT_TAG) :])
    return FreshRun({k: float(v) for k, v in data["phases"].items()}, wall, data["extra"])


# ---------------------------------------------------------------------------------------------
# Targets and output

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
}


def fmt(x: float, digits: int = 3) -> str:
    """A number to ``digits`` significant digits (``g`` format, exponent below 1e-4), except
    that values from 1,000 up to 1e7 are shown whole, without an exponent."""
    if math.isfinite(x) and 1e3 <= abs(x) < 1e7:
        return f"{x:.0f}"
    return f"{x:.{digits}g}"


@dataclass(frozen=True)
class Target:
    """A goal ``measured <op> goal``; a measurement that is not finite (failed) is missed."""

    name: str
    measured: float
    unit: str
    op: str
    goal: float

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"unknown comparison {self.op!r}")
        if ":" in self.name or ";" in self.name:
            raise ValueError(f"a target name may not contain ':' or ';': {self.name!r}")

    @property
    def met(self) -> bool:
        return math.isfinite(self.measured) and _OPS[self.op](self.measured, self.goal)

    def line(self) -> str:
        return (
            f"target {self.name}: measured {fmt(self.measured)} {self.unit}; "
            f"goal {self.op} {fmt(self.goal)}; {'met' if self.met else 'missed'}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "measured": self.measured,
            "unit": self.unit,
            "op": self.op,
            "goal": self.goal,
            "met": self.met,
        }


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, indent: int = 2) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def render(r: list[str]) -> str:
        parts = [
            r[0].ljust(widths[0]),
            *(c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)),
        ]
        return " " * indent + "  ".join(parts).rstrip()

    rule = " " * indent + "  ".join("-" * w for w in widths)
    return "\n".join([render(cells[0]), rule, *(render(r) for r in cells[1:])])


def environment(packages: Sequence[str] = ()) -> dict[str, Any]:
    """Machine and software facts that a timing depends on."""
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    try:
        load = list(os.getloadavg())
    except OSError:
        load = []
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": load,
        "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def save_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as JSON atomically (temporary file in the same folder, then rename)."""
    from scalebridge._io import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
