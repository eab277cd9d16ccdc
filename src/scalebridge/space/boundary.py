"""Boundary conditions, one per side of the box, validated against a grid.

Sides are named ``x-``, ``x+``, ``y-``, ``y+``, ``z-``, ``z+`` (low and high end of each axis).
``n`` is the outward unit normal of a side and ``dc/dn`` the derivative along it.

=================  ==================================  =========================================
condition          meaning                             influx through a face (finite volumes)
=================  ==================================  =========================================
``Dirichlet(g)``   c = g on the side (on the face)     (2D/h) (g - c_P)
``Neumann(g)``     dc/dn = g  (``Neumann()``: no flux)  D g
``Flux(j)``        j enters per unit area and time     j
``Robin(a, b, g)`` a c + b dc/dn = g  (a, b >= 0)      (2D/h) (g - a c_P) / (a + 2b/h)
``Periodic()``     the two sides of an axis are joined interior face between the end cells
=================  ==================================  =========================================

``c_P`` is the value at the centre of the adjacent cell, at distance h/2 from the face, and D its
diffusivity.  The face value follows from the condition with the one-sided difference
``dc/dn = (c_face - c_P) / (h/2)``; every non-periodic condition is thus a face influx
``(p - q c_P)`` per unit area with the constants ``p``, ``q`` of :func:`face_coefficients` (the
Robin row covers the others: Dirichlet is a=1, b=0, Neumann a=0, b=1).  Values may be scalars or
arrays with one entry per face of the side (the grid's shape without the side's axis).

A :class:`BoundaryConditions` maps every side of a grid to one condition (default: no flux), and
raises :class:`~scalebridge.errors.ModelError` naming the side for unknown sides, unpaired
periodic sides, wrong value shapes, or Robin coefficients without a well-posed problem.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelError
from .grid import AXES, Grid

__all__ = [
    "SIDE_ALIASES",
    "BoundaryConditions",
    "Condition",
    "Dirichlet",
    "Flux",
    "Neumann",
    "Periodic",
    "Robin",
    "condition_from_spec",
    "face_coefficients",
    "sides_of",
]

SIDE_ALIASES = {
    "left": "x-", "right": "x+", "bottom": "y-", "top": "y+", "back": "z-", "front": "z+",
    "xmin": "x-", "xmax": "x+", "ymin": "y-", "ymax": "y+", "zmin": "z-", "zmax": "z+",
}  # fmt: skip


def sides_of(grid: Grid) -> tuple[str, ...]:
    return tuple(f"{a}{s}" for a in grid.axes for s in "-+")


class Condition:
    """Base class of the boundary conditions (see the module docstring)."""

    kind = "condition"

    def values(self) -> dict[str, Any]:
        return {}


def _value(v: Any, what: str) -> float | np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ModelError(f"boundary {what} must be finite")
    return float(a) if a.ndim == 0 else a


@dataclass(frozen=True, eq=False)
class Dirichlet(Condition):
    """c = ``value`` on the side."""

    value: float | np.ndarray = 0.0
    kind = "dirichlet"

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _value(self.value, "value"))

    def values(self) -> dict[str, Any]:
        return {"value": self.value}


@dataclass(frozen=True, eq=False)
class Neumann(Condition):
    """dc/dn = ``gradient`` (outward normal derivative); ``Neumann()`` is no flux."""

    gradient: float | np.ndarray = 0.0
    kind = "neumann"

    def __post_init__(self) -> None:
        object.__setattr__(self, "gradient", _value(self.gradient, "gradient"))

    def values(self) -> dict[str, Any]:
        return {"gradient": self.gradient}


@dataclass(frozen=True, eq=False)
class Flux(Condition):
    """``influx`` enters the domain through the side, per unit area and time."""

    influx: float | np.ndarray = 0.0
    kind = "flux"

    def __post_init__(self) -> None:
        object.__setattr__(self, "influx", _value(self.influx, "influx"))

    def values(self) -> dict[str, Any]:
        return {"influx": self.influx}


@dataclass(frozen=True, eq=False)
class Robin(Condition):
    """a c + b dc/dn = g on the side (a, b >= 0, a + b > 0).

    Mass transfer to an outside concentration c_out with coefficient kappa,
    -D dc/dn = kappa (c - c_out), is ``Robin(kappa, D, kappa * c_out)``.
    """

    a: float | np.ndarray
    b: float | np.ndarray
    g: float | np.ndarray = 0.0
    kind = "robin"

    def __post_init__(self) -> None:
        for name in ("a", "b", "g"):
            object.__setattr__(self, name, _value(getattr(self, name), f"Robin {name}"))

    def values(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "g": self.g}


@dataclass(frozen=True, eq=False)
class Periodic(Condition):
    """The side is joined to the opposite side of the same axis."""

    kind = "periodic"


NO_FLUX = Neumann(0.0)


def condition_from_spec(spec: Any, *, side: str = "") -> Condition:
    """A condition from plain data (scenario files): a :class:`Condition`; ``"periodic"``,
    ``"no-flux"``/``"neumann"``; ``{"dirichlet": 1.0}``, ``{"flux": j}``, ``{"neumann": g}``,
    ``{"robin": {"a": .., "b": .., "g": ..}}``, or ``{"type": "robin", "a": .., ...}``."""
    where = f"side '{side}': " if side else ""
    if isinstance(spec, Condition):
        return spec
    if isinstance(spec, str):
        s = spec.strip().lower().replace("_", "-")
        if s == "periodic":
            return Periodic()
        if s in ("no-flux", "noflux", "neumann", "zero-flux", "insulated"):
            return NO_FLUX
        raise ModelError(
            f"{where}unknown boundary condition '{spec}' (periodic, no-flux, or a mapping "
            "such as {{dirichlet: 1.0}})"
        )
    if isinstance(spec, Mapping):
        d = dict(spec)
        if "type" in d:
            kind = str(d.pop("type")).lower()
            args = d
        elif len(d) == 1:
            kind, args = next(iter(d.items()))
            kind = str(kind).lower()
        else:
            raise ModelError(f"{where}a boundary condition needs one type, got keys {sorted(d)}")
        kind = kind.replace("_", "-")
        try:
            if kind == "dirichlet":
                return Dirichlet(args["value"] if isinstance(args, Mapping) else args)
            if kind == "neumann":
                return Neumann(args["gradient"] if isinstance(args, Mapping) else args)
            if kind == "flux":
                return Flux(args["influx"] if isinstance(args, Mapping) else args)
            if kind in ("no-flux", "noflux"):
                return NO_FLUX
            if kind == "periodic":
                return Periodic()
            if kind == "robin":
                if not isinstance(args, Mapping):
                    raise ModelError(f"{where}Robin needs a, b and g")
                unknown = set(args) - {"a", "b", "g"}
                if unknown:
                    raise ModelError(f"{where}Robin takes a, b, g, not {sorted(unknown)}")
                return Robin(args["a"], args["b"], args.get("g", 0.0))
        except KeyError as exc:
            raise ModelError(f"{where}{kind} condition needs '{exc.args[0]}'") from None
        except ModelError as exc:
            raise ModelError(f"{where}{exc}") from None
        raise ModelError(f"{where}unknown boundary condition type '{kind}'")
    raise ModelError(f"{where}cannot read a boundary condition from {spec!r}")


class BoundaryConditions(Mapping[str, Condition]):
    """One condition per side of ``grid`` (default no flux), validated.

    ``spec`` maps sides to conditions (or to plain data, see :func:`condition_from_spec`).  Keys
    are sides (``x-``, ``x+``, ...; aliases ``left``/``right``, ``bottom``/``top``,
    ``back``/``front``, ``xmin``/``xmax``, ...), an axis name for both of its sides, or ``"*"``
    for every side not named otherwise.  ``species`` is quoted in errors.
    """

    def __init__(
        self, grid: Grid, spec: Mapping[str, Any] | None = None, *, species: str | None = None
    ):
        self.grid = grid
        who = f"species '{species}', " if species else ""
        sides = sides_of(grid)
        default: Condition = NO_FLUX
        chosen: dict[str, Condition] = {}
        explicit: dict[str, str] = {}
        for key, value in dict(spec or {}).items():
            k = str(key).strip()
            k = SIDE_ALIASES.get(k.lower(), k)
            if k in ("*", "all", "default"):
                default = condition_from_spec(value, side="*")
                continue
            if k in grid.axes:
                targets = [f"{k}-", f"{k}+"]
            elif k in sides:
                targets = [k]
            else:
                raise ModelError(
                    f"{who}boundary side '{key}' does not exist on a {grid.ndim}-D grid "
                    f"(sides: {', '.join(sides)})",
                    element=species,
                )
            for t in targets:
                if t in explicit:
                    raise ModelError(
                        f"{who}boundary side '{t}' is given twice ('{explicit[t]}' and '{key}')",
                        element=species,
                    )
                explicit[t] = str(key)
                try:
                    chosen[t] = condition_from_spec(value, side=t)
                except ModelError as exc:
                    raise ModelError(f"{who}{exc}", element=species) from None
        self._c = {s: chosen.get(s, default) for s in sides}
        self._check(who, species)

    def _check(self, who: str, species: str | None) -> None:
        g = self.grid
        for k, a in enumerate(g.axes):
            lo, hi = self._c[f"{a}-"], self._c[f"{a}+"]
            if isinstance(lo, Periodic) != isinstance(hi, Periodic):
                p, o = (f"{a}-", f"{a}+") if isinstance(lo, Periodic) else (f"{a}+", f"{a}-")
                raise ModelError(
                    f"{who}side '{p}' is periodic but side '{o}' is "
                    f"{self._c[o].kind}: periodic conditions come in pairs",
                    element=species,
                )
            if isinstance(lo, Periodic) and g.shape[k] < 3:
                raise ModelError(
                    f"{who}periodic axis '{a}' needs at least 3 cells, has {g.shape[k]}",
                    element=species,
                )
        for side, c in self._c.items():
            k = AXES.index(side[0])
            face_shape = g.shape[:k] + g.shape[k + 1 :]
            for name, v in c.values().items():
                if isinstance(v, np.ndarray) and v.shape != face_shape:
                    raise ModelError(
                        f"{who}side '{side}': {c.kind} {name} has shape {v.shape}, the side "
                        f"has {face_shape} faces",
                        element=species,
                    )
            if isinstance(c, Robin):
                ra, rb = np.asarray(c.a), np.asarray(c.b)
                if np.any(ra < 0) or np.any(rb < 0) or np.any(ra + rb <= 0):
                    raise ModelError(
                        f"{who}side '{side}': Robin a c + b dc/dn = g needs a >= 0, b >= 0 and "
                        "a + b > 0",
                        element=species,
                    )

    def __getitem__(self, side: str) -> Condition:
        return self._c[SIDE_ALIASES.get(side, side)]

    def __iter__(self) -> Any:
        return iter(self._c)

    def __len__(self) -> int:
        return len(self._c)

    def periodic(self, axis: int) -> bool:
        return isinstance(self._c[f"{self.grid.axes[axis]}-"], Periodic)

    def __repr__(self) -> str:
        return "BoundaryConditions(" + ", ".join(f"{s}: {c.kind}" for s, c in self._c.items()) + ")"


def face_coefficients(cond: Condition, D: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Influx per unit area through the faces of one side, written ``p - q * c_P``.

    ``D`` holds the diffusivity of the cells next to the side (one per face).  Returns ``(p, q)``
    arrays of the same shape; see the module docstring for the formulas.
    """
    D = np.asarray(D, dtype=np.float64)
    zero = np.zeros_like(D)
    if isinstance(cond, Periodic):
        return zero, zero
    if isinstance(cond, Dirichlet):
        k = 2.0 * D / h
        return k * cond.value, k
    if isinstance(cond, Neumann):
        return D * cond.gradient + zero, zero
    if isinstance(cond, Flux):
        return zero + cond.influx, zero
    if isinstance(cond, Robin):
        a, b, g = (np.asarray(x, dtype=np.float64) for x in (cond.a, cond.b, cond.g))
        denom = a + 2.0 * b / h
        k = 2.0 * D / h / denom
        return k * g + zero, k * a + zero
    raise ModelError(f"unknown boundary condition {cond!r}")


def is_no_flux(cond: Condition) -> bool:
    if isinstance(cond, Neumann):
        return bool(np.all(np.asarray(cond.gradient) == 0.0))
    if isinstance(cond, Flux):
        return bool(np.all(np.asarray(cond.influx) == 0.0))
    return False


def _finite(x: float) -> bool:
    return math.isfinite(x)
