"""The public entry points: :func:`load`, :func:`simulate`, :func:`solve`.

``simulate(model, method, ...)`` builds a problem (model + conditions) and solves it with a
method; keyword arguments mirror the command-line options.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError, OptionError
from .methods import get_method
from .model.network import ReactionNetwork
from .problem import TimeCourse, time_grid
from .results import Result

SBML_SUFFIXES = (".xml", ".sbml")
ANTIMONY_SUFFIXES = (".ant", ".antimony")
ODE_TEXT_SUFFIXES = (".ode", ".txt")


def load(
    path: str | os.PathLike[str], *, values: Mapping[str, float] | None = None
) -> ReactionNetwork:
    """Read a model file: SBML (``.xml``, ``.sbml``), Antimony (``.ant``, ``.antimony``) or the
    ODE text format (``.ode``, ``.txt``), chosen by suffix."""
    p = Path(path)
    if not p.exists():
        raise ModelError("no such file", source=str(p))
    if p.is_dir():
        raise ModelError("is a directory, not a model file", source=str(p))
    suffix = p.suffix.lower()
    if suffix in SBML_SUFFIXES:
        from .model.sbml import read_sbml

        net = read_sbml(p)
    elif suffix in ANTIMONY_SUFFIXES:
        from .model.antimony import read_antimony

        net = read_antimony(p)
    elif suffix in ODE_TEXT_SUFFIXES:
        from .model.odetext import read_ode_text

        net = read_ode_text(p).to_network()
    else:
        raise ModelError(
            f"unknown model format '{suffix or p.name}': use SBML (.xml, .sbml), "
            "Antimony (.ant, .antimony) or ODE text (.ode, .txt)",
            source=str(p),
        )
    return net.with_values(values) if values else net


def from_antimony(text: str) -> ReactionNetwork:
    """A network from Antimony text."""
    from .model.antimony import from_antimony as _from

    return _from(text)


def simulate(
    model: ReactionNetwork | str | os.PathLike[str],
    method: str = "ode",
    *,
    t_end: float | None = None,
    n_points: int = 101,
    times: Iterable[float] | None = None,
    t0: float = 0.0,
    runs: int | None = None,
    seed: int | None = None,
    workers: int | None = None,
    scheduler: Any = None,
    vars: Iterable[str] | None = None,
    units: str = "model",
    params: Mapping[str, float] | None = None,
    chunk_size: int | None = None,
    progress: bool | None = None,
    **options: Any,
) -> Result:
    """Simulate ``model`` with ``method`` and return a :class:`~scalebridge.results.Result`.

    Give either ``t_end`` (with ``n_points`` equally spaced outputs from ``t0``, both ends
    included) or ``times``.  ``params`` overrides parameter values, compartment sizes and
    species initial values.  ``vars`` selects reported variables; ``units`` is ``"model"``,
    ``"amount"`` or ``"concentration"``.  Further keyword arguments are the method's options
    (e.g. ``rtol``, ``atol`` for ``ode``; ``variant`` for ``ssa``; ``counts_per_amount`` for the
    stochastic methods).

    Sampling methods (``ssa``, ``tau-leap``, ``cle``) run ``runs`` trajectories with
    :func:`scalebridge.ensemble.run_ensemble`: ``seed`` fixes every random stream, ``workers``
    the local threads (default: all cores), ``scheduler`` a Dask cluster to run on,
    ``chunk_size`` the runs per chunk (default: adaptive) and ``progress`` the progress bar
    (default: for long runs on a terminal).  One run (``runs`` None or 1) is reported as the
    trajectory itself, dims ``("time",)``; more as dims ``("run", "time")``.
    ``record_events=True`` (``ssa``, one run) records every reaction event
    (``SSA.solve_events``).  ``fsp`` computes the distribution, not samples: ``runs``, ``seed``,
    ``workers`` and ``scheduler`` do not apply to it, as to the deterministic methods.
    """
    net = model if isinstance(model, ReactionNetwork) else load(model)
    if times is not None:
        grid = np.asarray(list(times), dtype=np.float64)
    elif t_end is not None:
        grid = time_grid(float(t_end), n_points, t0)
    else:
        raise OptionError("give t_end (with n_points) or times")
    m = get_method(method, **options)
    record_events = bool(getattr(m, "record_events", False))  # an ssa option
    ensemble = callable(getattr(m, "run_runs", None))
    stochastic_only = {
        "runs": runs, "seed": seed, "workers": workers, "scheduler": scheduler,
        "chunk_size": chunk_size,
    }  # fmt: skip
    if not ensemble and not record_events:
        given = [
            k for k, v in stochastic_only.items() if v is not None and not (k == "runs" and v == 1)
        ]
        if given:
            what = "is deterministic" if not m.stochastic else "does not sample runs"
            raise OptionError(
                f"method '{m.name}' {what}: {', '.join(given)} "
                f"{'does' if len(given) == 1 else 'do'} not apply"
            )
    problem = TimeCourse(
        net,
        grid,
        values=dict(params or {}),
        vars=None if vars is None else tuple(vars),
        units=units,
    )
    if record_events:
        return _solve_events(m, problem, runs=runs, seed=seed, scheduler=scheduler)
    if ensemble:
        from .ensemble import run_ensemble

        return run_ensemble(
            m, problem, runs=runs, seed=seed, workers=workers, scheduler=scheduler,
            chunk_size=chunk_size, progress=progress,
        )  # fmt: skip
    return solve(problem, m)


def _solve_events(
    m: Any, problem: TimeCourse, *, runs: int | None, seed: int | None, scheduler: Any
) -> Result:
    """One run that records every event (the method's ``solve_events(problem, seed)``)."""
    from .ensemble import root_seed

    if not callable(getattr(m, "solve_events", None)):
        raise OptionError(f"method '{m.name}' cannot record events (record_events applies to ssa)")
    if runs not in (None, 1):
        raise OptionError(f"record_events records one run, not runs={runs}")
    if scheduler is not None:
        raise OptionError("record_events runs one trajectory locally: scheduler does not apply")
    if problem.units == "concentration":
        raise OptionError(
            f"method '{m.name}' reports species as molecule counts: units 'concentration' does "
            "not apply (use 'model' or 'amount')"
        )
    result: Result = m.solve_events(problem, root_seed(seed))
    return result


def solve(problem: TimeCourse, method: Any) -> Result:
    """Solve a problem with a method object (see :func:`scalebridge.methods.get_method`)."""
    return method.solve(problem)
