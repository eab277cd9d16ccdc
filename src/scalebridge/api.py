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
    scheduler: str | None = None,
    vars: Iterable[str] | None = None,
    units: str = "model",
    params: Mapping[str, float] | None = None,
    **options: Any,
) -> Result:
    """Simulate ``model`` with ``method`` and return a :class:`~scalebridge.results.Result`.

    Give either ``t_end`` (with ``n_points`` equally spaced outputs from ``t0``, both ends
    included) or ``times``.  ``params`` overrides parameter values, compartment sizes and
    species initial values.  ``vars`` selects reported variables; ``units`` is ``"model"``,
    ``"amount"`` or ``"concentration"``.  Further keyword arguments are the method's options
    (e.g. ``rtol``, ``atol`` for ``ode``).
    """
    net = model if isinstance(model, ReactionNetwork) else load(model)
    if times is not None:
        grid = np.asarray(list(times), dtype=np.float64)
    elif t_end is not None:
        grid = time_grid(float(t_end), n_points, t0)
    else:
        raise OptionError("give t_end (with n_points) or times")
    m = get_method(method, **options)
    stochastic_only = {"runs": runs, "seed": seed, "workers": workers, "scheduler": scheduler}
    if not m.stochastic:
        given = [
            k for k, v in stochastic_only.items() if v is not None and not (k == "runs" and v == 1)
        ]
        if given:
            raise OptionError(
                f"method '{m.name}' is deterministic: {', '.join(given)} "
                f"{'does' if len(given) == 1 else 'do'} not apply"
            )
    problem = TimeCourse(
        net,
        grid,
        values=dict(params or {}),
        vars=None if vars is None else tuple(vars),
        units=units,
    )
    return solve(problem, m)


def solve(problem: TimeCourse, method: Any) -> Result:
    """Solve a problem with a method object (see :func:`scalebridge.methods.get_method`)."""
    return method.solve(problem)
