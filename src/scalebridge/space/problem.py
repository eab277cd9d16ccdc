"""The reaction-diffusion model: inert, validated data; and its discretisation.

A :class:`ReactionDiffusion` model says, for fields c_s on a grid::

    dc_s/dt = div(D_s grad c_s) + R_s(c, x, t)        in the active cells,
    boundary conditions per species and side          on the box,
    no flux                                           across the edge of a mask.

It holds the grid, the diffusivities (scalar or one value per cell), the local reaction terms
(source expressions and/or a :class:`~scalebridge.model.network.ReactionNetwork` acting in every
cell), the boundary conditions and the parameter values -- nothing about time spans, initial
values or methods, which belong to a solve (:func:`scalebridge.space.stepping.solve`,
:func:`scalebridge.space.steady.steady_state`).  Construction validates everything and raises
:class:`~scalebridge.errors.ModelError` naming the species, side or symbol at fault.

Names: species and parameters are identifiers; ``x``, ``y``, ``z`` (up to the grid's dimension)
are the cell-centre coordinates and ``t`` / ``time`` the time in expressions, so they cannot be
species or parameter names.  Concentrations are per unit volume of the grid's dimension (length
in 1-D, area in 2-D); the species of a network are fields in concentration (amount / compartment
size).

:func:`discretize` turns a model into its :class:`Discretization` (the finite-volume operator and
the compiled reaction terms), computed once per model and kept with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from ..errors import ModelError, UnsupportedFeatureError
from ..model.expr import Expr, FunCall, symbols, walk
from ..model.network import ReactionNetwork
from ..model.parse import parse_expr
from .boundary import SIDE_ALIASES, BoundaryConditions, sides_of
from .grid import AXES, Field, Grid
from .reactions import (
    LocalReactions,
    compile_reactions,
    evaluate_on_cells,
    network_field_species,
    network_initial,
    uses_time,
)
from .stencils import DiffusionOperator, build_operator

__all__ = ["Discretization", "ReactionDiffusion", "discretize"]

TIME_NAMES = ("t", "time")
Value = float | np.ndarray | Field | str | Callable[..., Any]


@dataclass(frozen=True, eq=False)
class ReactionDiffusion:
    """A reaction-diffusion model on a grid (see the module docstring).

    Parameters
    ----------
    grid:
        The :class:`~scalebridge.space.grid.Grid` (with its mask, if any).
    diffusivity:
        ``{species: D}``; D is a number, an array of the grid's shape, a
        :class:`~scalebridge.space.grid.Field`, a function of the centre coordinates, or an
        expression text in ``x, y, z`` and the parameters.  These keys, then the network's
        species, are the model's species; a network species not listed here does not diffuse.
    reactions:
        ``{species: rate}``, the local rate of change (concentration per time) as text or an
        expression tree, in the species, parameters, coordinates and ``t``.  Added to the
        network's rates where both are given.
    network:
        A reaction network acting in every active cell (its species changed by reactions or
        rate rules become fields).
    boundary:
        Conditions: ``{side: condition}`` for every species and/or ``{species: {side:
        condition}}`` (overriding the common ones).  Sides and conditions as in
        :class:`~scalebridge.space.boundary.BoundaryConditions`; unnamed sides have no flux.
    parameters:
        ``{name: value}``: numbers, or fields (array, Field, function of the coordinates, or
        expression text) for spatially varying parameters.  Values for network parameters
        override the network's.
    """

    grid: Grid
    diffusivity: Mapping[str, Value]
    reactions: Mapping[str, str | Expr] = field(default_factory=dict)
    network: ReactionNetwork | None = None
    boundary: Mapping[str, Any] = field(default_factory=dict)
    parameters: Mapping[str, Value] = field(default_factory=dict)
    id: str = "tissue"
    source: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.grid, Grid):
            raise ModelError("a reaction-diffusion model needs a Grid", source=self.source)
        g = self.grid
        reserved = set(AXES[: g.ndim]) | set(TIME_NAMES)
        net_species = (
            network_field_species(self.network, source=self.source) if self.network else []
        )
        species = list(self.diffusivity)
        for s in net_species:
            if s not in species:
                species.append(s)
        if not species:
            raise ModelError("a reaction-diffusion model needs at least one species",
                             source=self.source)  # fmt: skip
        if self.network is not None:
            for s in self.diffusivity:
                if s in self.network.species_map and s not in net_species:
                    raise ModelError(
                        f"species '{s}' is constant in network '{self.network.id}' (boundary, "
                        "constant or set by a rule), so it cannot be a field",
                        element=s,
                        source=self.source,
                    )
        for name in [*species, *self.parameters]:
            if not isinstance(name, str) or not name.isidentifier():
                raise ModelError(f"'{name}' is not a valid name", element=str(name),
                                 source=self.source)  # fmt: skip
            if name in reserved:
                raise ModelError(
                    f"'{name}' is reserved for a coordinate or the time on a {g.ndim}-D grid",
                    element=name,
                    source=self.source,
                )
        clash = set(species) & set(self.parameters)
        if clash:
            name = sorted(clash)[0]
            raise ModelError(f"'{name}' is both a species and a parameter", element=name,
                             source=self.source)  # fmt: skip
        object.__setattr__(self, "_species", tuple(species))
        # parameters: scalars or fields
        params: dict[str, float | np.ndarray] = {}
        for k, v in self.parameters.items():
            params[k] = self._value(v, k, {}, allow_scalar=True)
        object.__setattr__(self, "_params", params)
        # diffusivities
        diff: list[float | np.ndarray] = []
        for s in species:
            raw = self.diffusivity.get(s, 0.0)
            D = self._value(raw, s, params, allow_scalar=True, what="diffusivity")
            arr = np.asarray(D)
            if not np.all(np.isfinite(arr)) or np.any(arr < 0):
                raise ModelError(
                    f"diffusivity of '{s}' must be finite and >= 0", element=s, source=self.source
                )
            diff.append(D)
        object.__setattr__(self, "_diff", tuple(diff))
        # reaction expressions
        exprs: dict[str, Expr] = {}
        known = set(species) | set(params) | set(AXES[: g.ndim])
        for s, text in self.reactions.items():
            if s not in species:
                raise ModelError(
                    f"reaction term for unknown species '{s}' (give its diffusivity, 0 for an "
                    "immobile species)",
                    element=s,
                    source=self.source,
                )
            e = text if isinstance(text, Expr) else self._parse(text, s)
            self._check_symbols(e, s, known)
            exprs[s] = e
        object.__setattr__(self, "_exprs", exprs)
        # every parameter must be used somewhere
        used: set[str] = set()
        for e in exprs.values():
            used |= symbols(e)
        for raw in self.diffusivity.values():
            if isinstance(raw, str):
                used |= symbols(self._parse(raw, "diffusivity"))
        for k in params:
            in_net = self.network is not None and self.network.kind_of(k) in (
                "parameter", "compartment", "species")  # fmt: skip
            if k not in used and not in_net:
                raise ModelError(
                    f"parameter '{k}' is used by no reaction term, diffusivity or network",
                    element=k,
                    source=self.source,
                )
        # boundary conditions per species
        common: dict[str, Any] = {}
        per: dict[str, Mapping[str, Any]] = {}
        side_keys = set(sides_of(g)) | set(g.axes) | {"*", "all", "default"} | set(SIDE_ALIASES)
        for k, v in dict(self.boundary).items():
            if k in species:
                if not isinstance(v, Mapping):
                    raise ModelError(
                        f"boundary conditions of species '{k}' must map sides to conditions",
                        element=k,
                        source=self.source,
                    )
                per[k] = v
            elif str(k).lower() in side_keys or k in side_keys:
                common[k] = v
            else:
                raise ModelError(
                    f"boundary key '{k}' is neither a species nor a side "
                    f"(sides: {', '.join(sides_of(g))})",
                    element=str(k),
                    source=self.source,
                )
        bcs = []
        for s in species:
            spec = dict(common)
            for k, v in per.get(s, {}).items():
                k2 = SIDE_ALIASES.get(str(k).lower(), k)
                for existing in list(spec):
                    if SIDE_ALIASES.get(str(existing).lower(), existing) == k2:
                        del spec[existing]
                    elif existing in g.axes and k2 in (f"{existing}-", f"{existing}+"):
                        other = f"{existing}+" if k2.endswith("-") else f"{existing}-"
                        spec[other] = spec.pop(existing)
                spec[k2] = v
            bcs.append(BoundaryConditions(g, spec, species=s))
        object.__setattr__(self, "_bcs", tuple(bcs))

    # ------------------------------------------------------------------ helpers
    def _parse(self, text: Any, element: str) -> Expr:
        if not isinstance(text, str):
            raise ModelError(f"expected an expression text, got {text!r}", element=element,
                             source=self.source)  # fmt: skip
        return parse_expr(
            text,
            element=element,
            source=self.source,
            time_names=TIME_NAMES,
            shadow=tuple(self.diffusivity) + tuple(self.parameters),
        )

    def _check_symbols(self, e: Expr, element: str, known: set[str]) -> None:
        for node in walk(e):
            if isinstance(node, FunCall):
                raise ModelError(
                    f"unknown function '{node.name}' in the reaction term of '{element}'",
                    element=element,
                    source=self.source,
                )
        unknown = sorted(symbols(e) - known)
        if unknown:
            raise ModelError(
                f"unknown symbol '{unknown[0]}' in the reaction term of '{element}' (species, "
                f"parameters and {', '.join(AXES[: self.grid.ndim])}, t are known)",
                element=element,
                source=self.source,
            )

    def _value(
        self,
        raw: Any,
        name: str,
        params: Mapping[str, Any],
        *,
        allow_scalar: bool,
        what: str = "value",
    ) -> float | np.ndarray:
        g = self.grid
        if isinstance(raw, Field):
            if raw.grid.shape != g.shape:
                raise ModelError(f"field for '{name}' is on a grid of shape {raw.grid.shape}, "
                                 f"the model's is {g.shape}", element=name,
                                 source=self.source)  # fmt: skip
            return raw.values.copy()
        if isinstance(raw, str):
            e = self._parse(raw, name)
            known = set(params) | set(AXES[: g.ndim])
            unknown = sorted(symbols(e) - known)
            if unknown:
                raise ModelError(
                    f"unknown symbol '{unknown[0]}' in the {what} of '{name}'",
                    element=name,
                    source=self.source,
                )
            if what != "initial value" and uses_time(e):  # evaluated once: it would freeze
                raise UnsupportedFeatureError(
                    f"time dependence in the {what} of '{name}' (only reaction terms may depend "
                    "on time)",
                    element=name,
                    source=self.source,
                )
            return evaluate_field(e, g, params)
        if callable(raw):
            return g.field_from(raw, name=name)
        a = np.asarray(raw, dtype=np.float64)
        if a.ndim == 0:
            if not np.isfinite(a):
                raise ModelError(f"{what} of '{name}' must be finite", element=name,
                                 source=self.source)  # fmt: skip
            return float(a)
        if a.shape != g.shape:
            raise ModelError(
                f"{what} of '{name}' has shape {a.shape}, the grid {g.shape}",
                element=name,
                source=self.source,
            )
        if not np.all(np.isfinite(a)):
            raise ModelError(f"{what} of '{name}' must be finite", element=name,
                             source=self.source)  # fmt: skip
        return a.copy()

    # ------------------------------------------------------------------ views
    @property
    def species(self) -> tuple[str, ...]:
        """Field species: the diffusivity keys, then the network's other field species."""
        return self._species  # type: ignore[attr-defined]

    @property
    def diffusivities(self) -> tuple[float | np.ndarray, ...]:
        """Per species: a number or an array of the grid's shape."""
        return self._diff  # type: ignore[attr-defined]

    @property
    def parameter_values(self) -> dict[str, float | np.ndarray]:
        return dict(self._params)  # type: ignore[attr-defined]

    @property
    def source_terms(self) -> dict[str, Expr]:
        return dict(self._exprs)  # type: ignore[attr-defined]

    def conditions(self, species: str) -> BoundaryConditions:
        """The boundary conditions of one species."""
        try:
            return self._bcs[self.species.index(species)]  # type: ignore[attr-defined]
        except ValueError:
            raise ModelError(f"no species '{species}'", element=species) from None

    def __repr__(self) -> str:
        net = f", network={self.network.id!r}" if self.network is not None else ""
        return f"ReactionDiffusion(id={self.id!r}, species={self.species}, grid={self.grid!r}{net})"


def evaluate_field(e: Expr, grid: Grid, params: Mapping[str, Any], t: float = 0.0) -> np.ndarray:
    """An expression of ``x, y, z``, parameters (and ``t``) at the cell centres of ``grid``."""
    flat = {k: (np.asarray(v).reshape(-1) if np.ndim(v) else v) for k, v in params.items()}
    centres = [c.reshape(-1) for c in grid.centres()]
    vals = evaluate_on_cells([e], (), flat, centres, np.ones(grid.size, dtype=bool), t)
    return vals[0].reshape(grid.shape)


# =============================================================================================
# Discretisation


@dataclass(eq=False)
class Discretization:
    """A model's finite-volume operator and compiled reaction terms (see :func:`discretize`).

    States are arrays ``(n_species, n0, n1, n2)`` in the padded layout of
    :mod:`scalebridge.space.stencils`; :meth:`to_grid` and :meth:`from_grid` convert.
    """

    model: ReactionDiffusion
    op: DiffusionOperator
    reactions: LocalReactions

    @property
    def shape4(self) -> tuple[int, int, int, int]:
        return (self.op.n_species, *self.op.shape3)

    @property
    def n_cells(self) -> int:
        return self.op.n_cells

    def zeros(self) -> np.ndarray:
        return np.zeros(self.shape4)

    def to_grid(self, u: np.ndarray) -> np.ndarray:
        """``(n_species, *grid.shape)`` view of a padded state."""
        return u.reshape((self.op.n_species, *self.model.grid.shape))

    def total(self, u: np.ndarray) -> np.ndarray:
        """Amount of each species in the active domain (sum of c x cell volume)."""
        flat = u.reshape(self.op.n_species, -1)
        return flat[:, self.op.active].sum(axis=1) * self.model.grid.cell_volume

    def initial_state(self, initial: Mapping[str, Value] | None) -> np.ndarray:
        """The state from initial values per species (number, array, Field, function of the
        coordinates or expression text); species not given start at the network's initial
        concentration, or 0."""
        m = self.model
        given = dict(initial or {})
        for k in given:
            if k not in m.species:
                raise ModelError(f"initial value for unknown species '{k}'", element=k,
                                 source=m.source)  # fmt: skip
        net0 = network_initial(m.network, m.parameter_values) if m.network else {}
        u = self.zeros()
        g = self.to_grid(u)
        for i, s in enumerate(m.species):
            if s in given:
                val = m._value(given[s], s, m.parameter_values, allow_scalar=True,
                               what="initial value")  # fmt: skip
            else:
                val = net0.get(s, 0.0)
            g[i] = val
        u.reshape(self.op.n_species, -1)[:, ~self.op.active] = 0.0
        return u

    def dataset(self, times: np.ndarray, states: Sequence[np.ndarray]) -> xr.Dataset:
        """Labelled fields: one variable per species, dims ``("time", "x"[, "y"[, "z"]])``;
        inactive cells NaN; the mask (if any) as the coordinate ``active``."""
        m = self.model
        g = m.grid
        coords: dict[str, Any] = {"time": np.asarray(times, dtype=np.float64)}
        for k, a in enumerate(g.axes):
            coords[a] = xr.Variable((a,), g.coordinate(k), attrs={"long_name": f"cell centre {a}"})
        dims = ("time", *g.axes)
        data = {}
        stack = np.stack([self.to_grid(u) for u in states], axis=1)  # (ns, nt, *shape)
        if g.mask is not None:
            stack[:, :, ~g.mask] = np.nan
            coords["active"] = (g.axes, g.mask.copy())
        for i, s in enumerate(m.species):
            D = m.diffusivities[i]
            attrs: dict[str, Any] = {"kind": "species", "quantity": "concentration"}
            if np.ndim(D) == 0:
                attrs["diffusivity"] = float(D)
            data[s] = xr.Variable(dims, stack[i], attrs=attrs)
        ds = xr.Dataset(data, coords=coords)
        ds.attrs["model"] = m.id
        ds.attrs["grid_spacing"] = list(g.spacing)
        ds.attrs["grid_origin"] = list(g.origin)
        return ds


def discretize(model: ReactionDiffusion) -> Discretization:
    """The :class:`Discretization` of ``model``, built once and kept with the model."""
    cached = model.__dict__.get("_discretization")
    if cached is not None:
        return cached
    g = model.grid
    op = build_operator(g, model.diffusivities, [model.conditions(s) for s in model.species])
    params = {
        k: (np.asarray(v).reshape(-1) if np.ndim(v) else v)
        for k, v in model.parameter_values.items()
    }
    R = compile_reactions(
        model.species,
        model.source_terms,
        model.network,
        params,
        [c.reshape(-1) for c in g.centres()],
        op.active,
        source=model.source,
    )
    d = Discretization(model, op, R)
    object.__setattr__(model, "_discretization", d)
    return d
