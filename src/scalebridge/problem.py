"""Problems: a model plus the conditions of one experiment (time grid, values, outputs).

Experiment settings never live on models.  A :class:`TimeCourse` is what every well-mixed
method solves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .errors import OptionError
from .model.network import ReactionNetwork

UNITS = ("model", "amount", "concentration")


@dataclass(frozen=True)
class TimeCourse:
    """Simulate ``network`` from ``times[0]`` and report at ``times``.

    ``values`` overrides parameters, compartment sizes and species initial values (species in
    their own units: amount when they have only substance units, else concentration).
    ``vars`` names the reported variables (species, compartments, parameters, reaction rates);
    by default every species.  ``units``: ``"model"`` reports species as SBML defines their
    symbols (concentration unless hasOnlySubstanceUnits), ``"amount"`` / ``"concentration"``
    override that for every species.
    """

    network: ReactionNetwork
    times: np.ndarray
    values: Mapping[str, float] = field(default_factory=dict)
    vars: tuple[str, ...] | None = None
    units: str = "model"

    def __post_init__(self) -> None:
        t = np.asarray(self.times, dtype=np.float64)
        if t.ndim != 1 or t.size < 1:
            raise OptionError("the output times must be a non-empty 1-D sequence")
        if not np.all(np.isfinite(t)):
            raise OptionError("the output times must be finite")
        if np.any(np.diff(t) <= 0):
            raise OptionError("the output times must be strictly increasing")
        object.__setattr__(self, "times", t)
        if self.units not in UNITS:
            raise OptionError(f"units must be one of {', '.join(UNITS)}, not '{self.units}'")
        if self.vars is not None:
            object.__setattr__(self, "vars", tuple(self.vars))
        for k, v in dict(self.values).items():
            if not isinstance(v, int | float) or not math.isfinite(float(v)):
                raise OptionError(f"value of '{k}' must be a finite number, got {v!r}")

    @property
    def t0(self) -> float:
        return float(self.times[0])

    @property
    def t_end(self) -> float:
        return float(self.times[-1])

    def output_names(self) -> list[str]:
        if self.vars is not None:
            return list(self.vars)
        return [s.id for s in self.network.species]

    def quantity_of(self, name: str) -> str | None:
        """'amount' / 'concentration' for a species, None for other variables."""
        s = self.network.species_map.get(name)
        if s is None:
            return None
        if self.units == "model":
            return "amount" if s.has_only_substance_units else "concentration"
        return self.units


def time_grid(t_end: float, n_points: int, t0: float = 0.0) -> np.ndarray:
    """``n_points`` equally spaced times from ``t0`` to ``t_end`` inclusive."""
    if not (isinstance(n_points, int | np.integer) and n_points >= 2):
        raise OptionError(f"n_points must be an integer >= 2, got {n_points!r}")
    if not (math.isfinite(t_end) and t_end > t0):
        raise OptionError(f"t_end must be a finite time after {t0}, got {t_end!r}")
    return np.linspace(t0, t_end, int(n_points))


def check_vars(network: ReactionNetwork, names: Iterable[str]) -> None:
    for n in names:
        if network.kind_of(n) in (None, "function", "event"):
            raise OptionError(f"no species, compartment, parameter or reaction named '{n}'")
