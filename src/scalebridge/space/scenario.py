"""Tissue scenarios written in YAML: ``scalebridge run SCENARIO.yaml [--out DIR]``.

A scenario is a reaction-diffusion problem as plain data: the grid, the species with their
diffusivities, initial values and boundary conditions, parameters, local reactions (expressions
or a network file), how long to run, with which method, and what to write.  Example::

    name: decay
    description: a source at x = 0 and linear uptake
    grid:
      lengths: 1.0            # box side(s); a list for 2-D/3-D
      cells: 200              # cells per axis (a list for 2-D/3-D)
      # origin: 0.0           # optional
      # mask: "x < 0.8"       # optional: active where the expression is true
    species:
      c:
        diffusivity: 0.01     # number >= 0 | expression in x, y, z and parameters |
                              # {homogenize: {microstructure: inclusions, ...}}
        initial: 0            # number | expression (default 0, or the network's value)
        boundary:             # per side: x-, x+, y-, ... (left/right/... accepted)
          x-: {dirichlet: 1.0}
          x+: no-flux         # periodic | no-flux | {neumann: g} | {flux: j} |
                              # {robin: {a: .., b: .., g: ..}}
    parameters:
      k: 1.0                  # number | expression in x, y, z (a field)
    reactions:
      c: "-k*c"               # local rate of change, parsed by scalebridge's own parser
    # network: uptake.ant     # optional: a network acting in every cell (SBML/Antimony)
    # boundary: {...}         # optional: conditions for every species
    duration: 10.0
    solver:
      method: crank-nicolson  # explicit | backward-euler | crank-nicolson | imex | adi
      dt: 0.01                # largest step (the explicit method may omit it)
      # options: {scheme: sbdf2}
    outputs:
      times: 11               # equally spaced over [0, duration], or a list of times
                              # (the duration is added as the last output)
      fields: [c]             # species written to NetCDF (default: all)
      file: fields.nc
      steady_state: true      # also solve for the steady state (steady.nc)
      figures: true           # PNG per species (true, false, or a list of species)

Loading (:func:`load_scenario`) validates everything before anything runs: every error is a
:class:`~scalebridge.errors.ModelError` naming the file and the key path, e.g.
``scenario.yaml: species.A.diffusivity: must be a number >= 0, got -1 (line 7)``.  Unknown keys
are errors; YAML is read with ``yaml.safe_load`` only (duplicate keys, which PyYAML would
silently collapse, are found on the node tree from ``yaml.compose`` and refused).  Numbers
written like ``1e-3``, which YAML 1.1 reads as text, are taken as numbers.

``homogenize:`` diffusivities
-----------------------------
The effective diffusivity of a periodic unit-cell microstructure
(:func:`scalebridge.space.homogenize.homogenize`): ``microstructure: inclusions``
(``volume_fraction``, ``D_matrix``, ``D_inclusion``, ``resolution`` = 64, ``dim`` = 2: a disc or
ball per cell), ``checkerboard`` (``D1``, ``D2``, ``resolution``) or ``layers`` (``values``,
``thickness`` in pixels, ``axis`` = 0, ``dim`` = 2).  A 1-D tissue takes ``D_xx``; 2-D/3-D
tissues need an isotropic tensor.

:func:`run_scenario` runs a scenario and writes into a directory: the fields at the output
times as NetCDF (:meth:`scalebridge.results.Result.to_netcdf`), the steady state
(``steady.nc``), one PNG per species, ``summary.md`` and ``scenario_used.yaml`` (the normalised
scenario).  Every file is written atomically; a long run shows a progress bar (rich) on a
terminal.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._io import atomic_path, atomic_write_text
from ..errors import InputError, ModelError, OptionError, UnsupportedFeatureError
from ..model.expr import Call, Expr, FunCall, symbols, walk
from ..model.parse import parse_expr
from .boundary import SIDE_ALIASES, condition_from_spec, sides_of
from .grid import AXES, Grid
from .homogenize import HomogenizationResult, homogenize

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..model.network import ReactionNetwork
    from ..results import Result
    from .problem import ReactionDiffusion
    from .steady import SteadyField
    from .stepping import SpaceMethod

__all__ = [
    "MICROSTRUCTURES",
    "Scenario",
    "ScenarioReport",
    "dump_scenario",
    "field_figure",
    "load_scenario",
    "microstructure_from_spec",
    "run_scenario",
    "scenario_from_dict",
    "tissue_diffusivity",
]

TOP_KEYS = (
    "name",
    "description",
    "grid",
    "species",
    "parameters",
    "reactions",
    "network",
    "boundary",
    "duration",
    "solver",
    "outputs",
)
GRID_KEYS = ("lengths", "cells", "origin", "mask")
SPECIES_KEYS = ("diffusivity", "initial", "boundary", "units", "description")
SOLVER_KEYS = ("method", "dt", "options")
OUTPUT_KEYS = ("times", "fields", "file", "steady_state", "figures")
MICROSTRUCTURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # kind: (required keys, optional keys)
    "inclusions": (("volume_fraction", "D_matrix", "D_inclusion"), ("resolution", "dim")),
    "checkerboard": (("D1", "D2"), ("resolution",)),
    "layers": (("values", "thickness"), ("axis", "dim")),
}
RESERVED = ("x", "y", "z", "t", "time")
DEFAULT_TIMES = 11
DEFAULT_RESOLUTION = 64
FIELDS_FILE = "fields.nc"
STEADY_FILE = "steady.nc"
USED_FILE = "scenario_used.yaml"
SUMMARY_FILE = "summary.md"
# a tensor is isotropic when its deviation from s*I is below this fraction of s
ISOTROPY_TOL = 1e-6
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_MAX_PROFILES = 12

Path_ = tuple[str | int, ...]


# =============================================================================================
# Validation context


def _path_text(path: Path_) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out or "(top level)"


class _Ctx:
    """Makes errors that name the file, the key path and (when known) the line."""

    def __init__(self, source: str, lines: Mapping[Path_, int] | None = None):
        self.source = source
        self.lines = dict(lines or {})

    def err(self, path: Path_, msg: str) -> ModelError:
        line = self.lines.get(tuple(path))
        where = f" (line {line})" if line else ""
        return ModelError(f"{_path_text(path)}: {msg}{where}", source=self.source)

    # ------------------------------------------------------------------ types
    def mapping(self, v: Any, path: Path_) -> dict[str, Any]:
        if not isinstance(v, Mapping):
            raise self.err(path, f"must be a mapping (key: value), got {_show(v)}")
        for k in v:
            if not isinstance(k, str):
                raise self.err(path, f"keys must be text, got {k!r}")
        return dict(v)

    def keys(self, v: Mapping[str, Any], allowed: Sequence[str], path: Path_) -> None:
        for k in v:
            if k not in allowed:
                raise self.err((*path, k), f"unknown key '{k}' (allowed: {', '.join(allowed)})")

    def number(
        self, v: Any, path: Path_, *, minimum: float | None = None, strict: bool = False
    ) -> float:
        x = _as_number(v)
        if x is None or not math.isfinite(x):
            raise self.err(path, f"must be a number, got {_show(v)}")
        if minimum is not None and (x < minimum or (strict and x == minimum)):
            rel = ">" if strict else ">="
            word = (
                "a positive number" if (strict and minimum == 0) else f"a number {rel} {minimum:g}"
            )
            raise self.err(path, f"must be {word}, got {_show(v)}")
        return x

    def integer(self, v: Any, path: Path_, *, minimum: int = 1) -> int:
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            x = _as_number(v)
            if x is None or not float(x).is_integer():
                raise self.err(path, f"must be an integer, got {_show(v)}")
            v = int(x)
        if int(v) < minimum:
            raise self.err(path, f"must be an integer >= {minimum}, got {_show(v)}")
        return int(v)

    def text(self, v: Any, path: Path_) -> str:
        if not isinstance(v, str):
            raise self.err(path, f"must be text, got {_show(v)}")
        return v

    def boolean(self, v: Any, path: Path_) -> bool:
        if not isinstance(v, bool):
            raise self.err(path, f"must be true or false, got {_show(v)}")
        return v

    def name(self, v: str, path: Path_, what: str) -> str:
        if not v.isidentifier():
            raise self.err(path, f"'{v}' is not a valid {what} name (letters, digits, _)")
        if v in RESERVED:
            raise self.err(
                path, f"'{v}' is reserved (x, y, z are coordinates, t and time the time)"
            )
        return v

    def expression(
        self, v: str, path: Path_, known: set[str], what: str, *, time: bool = False
    ) -> Expr:
        try:
            e = parse_expr(v, time_names=("t", "time"), shadow=tuple(known))
        except ModelError as exc:
            raise self.err(path, exc.args[0]) from None
        for node in walk(e):
            if isinstance(node, FunCall):
                raise self.err(path, f"unknown function '{node.name}' in the {what}")
            if not time and isinstance(node, Call) and node.op == "time":
                raise self.err(path, f"the {what} cannot depend on the time")
        unknown = sorted(symbols(e) - known)
        if unknown:
            raise self.err(
                path,
                f"unknown symbol '{unknown[0]}' in the {what} (known: "
                f"{', '.join(sorted(known)) or 'none'})",
            )
        return e


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float | np.integer | np.floating):
        return float(v)
    if isinstance(v, str) and _NUMBER.match(v.strip()):
        # YAML 1.1 (PyYAML) reads 1e-3 as text
        return float(v)
    return None


def _show(v: Any) -> str:
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "nothing (null)"
    if isinstance(v, Mapping):
        return "a mapping"
    if isinstance(v, list | tuple):
        return "a list"
    return str(v)


# =============================================================================================
# Homogenization specs


def microstructure_from_spec(
    spec: Mapping[str, Any],
    *,
    where: str = "homogenize",
    source: str | None = None,
    lines: Mapping[Path_, int] | None = None,
    path: Path_ = (),
) -> np.ndarray:
    """A unit-cell microstructure (array of local diffusivities) from a spec (see the module
    docstring): ``{microstructure: inclusions, volume_fraction: .., D_matrix: .., D_inclusion:
    .., resolution: 64, dim: 2}``, ``{microstructure: checkerboard, D1: .., D2: ..}`` or
    ``{microstructure: layers, values: [..], thickness: [..], axis: 0, dim: 2}``."""
    from .homogenize import checkerboard, inclusion_array, layered

    ctx = _Ctx(source or "<microstructure>", lines)
    base: Path_ = path or (where,)
    spec = ctx.mapping(spec, base)
    kind = spec.get("microstructure")
    if kind is None:
        raise ctx.err(base, f"needs 'microstructure' (one of {', '.join(MICROSTRUCTURES)})")
    if kind not in MICROSTRUCTURES:
        raise ctx.err(
            (*base, "microstructure"),
            f"unknown microstructure {_show(kind)} (one of {', '.join(MICROSTRUCTURES)})",
        )
    req, opt = MICROSTRUCTURES[kind]
    ctx.keys(spec, ("microstructure", *req, *opt), base)
    for k in req:
        if k not in spec:
            raise ctx.err(base, f"microstructure '{kind}' needs '{k}'")

    def pos(k: str) -> float:
        return ctx.number(spec[k], (*base, k), minimum=0.0, strict=True)

    try:
        if kind == "inclusions":
            dim = ctx.integer(spec.get("dim", 2), (*base, "dim"), minimum=2)
            if dim not in (2, 3):
                raise ctx.err((*base, "dim"), f"must be 2 or 3, got {dim}")
            f = ctx.number(spec["volume_fraction"], (*base, "volume_fraction"))
            limit = math.pi / 4 if dim == 2 else math.pi / 6
            if not 0 < f < limit:
                raise ctx.err(
                    (*base, "volume_fraction"),
                    f"must be in (0, {limit:.4f}) for non-touching inclusions in "
                    f"{dim}-D, got {f:g}",
                )
            n = ctx.integer(
                spec.get("resolution", DEFAULT_RESOLUTION), (*base, "resolution"), minimum=4
            )
            return inclusion_array(n, f, pos("D_matrix"), pos("D_inclusion"), dim=dim)
        if kind == "checkerboard":
            n = ctx.integer(
                spec.get("resolution", DEFAULT_RESOLUTION), (*base, "resolution"), minimum=2
            )
            if n % 2:
                raise ctx.err((*base, "resolution"), f"must be even for a checkerboard, got {n}")
            return checkerboard(n, pos("D1"), pos("D2"))
        # layers
        vals = spec["values"]
        thick = spec["thickness"]
        if not isinstance(vals, list) or not vals:
            raise ctx.err((*base, "values"), f"must be a non-empty list, got {_show(vals)}")
        if not isinstance(thick, list) or len(thick) != len(vals):
            raise ctx.err((*base, "thickness"), "must be a list with one pixel count per value")
        v = [
            ctx.number(x, (*base, "values", i), minimum=0.0, strict=True)
            for i, x in enumerate(vals)
        ]
        t = [ctx.integer(x, (*base, "thickness", i)) for i, x in enumerate(thick)]
        dim = ctx.integer(spec.get("dim", 2), (*base, "dim"))
        if dim not in (1, 2, 3):
            raise ctx.err((*base, "dim"), f"must be 1, 2 or 3, got {dim}")
        axis = ctx.integer(spec.get("axis", 0), (*base, "axis"), minimum=0)
        if axis >= dim:
            raise ctx.err((*base, "axis"), f"must be below dim = {dim}, got {axis}")
        shape = [2] * dim
        shape[axis] = sum(t)
        return layered(v, t, shape, axis=axis)
    except OptionError as exc:
        raise ctx.err(base, str(exc)) from None


def tissue_diffusivity(tensor: Any, ndim: int, *, source: str | None = None) -> float:
    """The scalar diffusivity a ``ndim``-D tissue takes from an effective ``tensor``: ``D_xx``
    in 1-D (a gradient along x in a medium uniform across it feels only ``e_x . D . e_x``);
    in 2-D/3-D the tensor must be isotropic, since the tissue solver takes a scalar."""
    T = np.atleast_2d(np.asarray(tensor, dtype=np.float64))
    if T.shape[0] < ndim:
        raise ModelError(
            f"a {T.shape[0]}-D effective tensor cannot describe a {ndim}-D tissue", source=source
        )
    if ndim == 1:
        return float(T[0, 0])
    sub = T[:ndim, :ndim]
    s = float(np.trace(sub)) / ndim
    dev = float(np.max(np.abs(sub - s * np.eye(ndim))))
    if dev > ISOTROPY_TOL * s:
        eig = ", ".join(f"{v:.6g}" for v in np.linalg.eigvalsh(sub))
        raise UnsupportedFeatureError(
            f"anisotropic effective diffusion in a {ndim}-D tissue",
            source=source,
            detail=(
                f"D_eff has eigenvalues {eig}; the tissue solver takes a scalar "
                "diffusivity (use a microstructure with the grid's symmetry, or a 1-D tissue "
                "along a principal axis)"
            ),
        )
    return s


# =============================================================================================
# The scenario


@dataclass(frozen=True, eq=False)
class Scenario:
    """A validated scenario (see the module docstring).

    ``spec`` is the normalised plain data (:meth:`to_dict`, :meth:`to_yaml`); ``model`` the
    :class:`~scalebridge.space.problem.ReactionDiffusion`; ``initial`` the initial values per
    species; ``times`` the output times (None: steady state only); ``method`` the
    :class:`~scalebridge.space.stepping.SpaceMethod`; ``homogenization`` the cell-problem
    results of ``homogenize:`` diffusivities, by species.
    """

    name: str
    spec: dict[str, Any]
    model: ReactionDiffusion
    initial: dict[str, Any]
    times: np.ndarray | None
    method: SpaceMethod
    fields: tuple[str, ...]
    file: str
    steady_state: bool
    figures: tuple[str, ...]
    homogenization: dict[str, HomogenizationResult] = field(default_factory=dict)
    source: str | None = None
    network: ReactionNetwork | None = None
    network_path: Path | None = None

    @property
    def description(self) -> str:
        return str(self.spec.get("description", ""))

    @property
    def duration(self) -> float | None:
        d = self.spec.get("duration")
        return None if d is None else float(d)

    def to_dict(self) -> dict[str, Any]:
        """The normalised scenario as plain data (loads back to an equal scenario)."""
        import copy

        return copy.deepcopy(self.spec)

    def to_yaml(self, directory: str | os.PathLike[str] | None = None) -> str:
        """The normalised scenario as YAML text; with ``directory``, the network path is
        rewritten relative to it (for a copy written there)."""
        import yaml

        data = self.to_dict()
        if directory is not None and self.network_path is not None:
            data["network"] = os.path.relpath(self.network_path, Path(directory).resolve())
        head = f"# scalebridge tissue scenario '{self.name}'\n"
        return head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)

    def run(self, *, progress: bool | None = None) -> tuple[Result | None, SteadyField | None]:
        """Simulate: the fields at the output times (None without a duration) and the steady
        state (None unless ``outputs.steady_state``)."""
        from .steady import steady_state
        from .stepping import solve

        res = None
        if self.times is not None:
            res = solve(
                self.model,
                self.method,
                times=list(self.times),
                initial=self.initial,
                progress=progress,
            )
        ss = steady_state(self.model, initial=self.initial) if self.steady_state else None
        return res, ss


def _compose_lines(text: str, ctx: _Ctx) -> dict[Path_, int]:
    """Line numbers of every key path, from the YAML node tree; refuses duplicate keys."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, ctx) from None
    lines: dict[Path_, int] = {}

    def walk_node(node: Any, path: Path_) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for k, v in node.value:
                key = k.value if isinstance(k, yaml.ScalarNode) else str(k)
                line = k.start_mark.line + 1
                if key in seen:
                    raise ModelError(
                        f"{_path_text((*path, key))}: duplicate key '{key}' (lines {seen[key]} "
                        f"and {line})",
                        source=ctx.source,
                    )
                seen[key] = line
                lines[(*path, key)] = line
                walk_node(v, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                lines[(*path, i)] = v.start_mark.line + 1
                walk_node(v, (*path, i))

    if root is not None:
        walk_node(root, ())
    return lines


def _yaml_error(exc: Any, ctx: _Ctx) -> ModelError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    what = f"{problem} ({context})" if context else str(problem)
    return ModelError(f"{where}not valid YAML: {what}", source=ctx.source)


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Read and validate a scenario file (see the module docstring)."""
    import yaml

    p = Path(path)
    source = str(path)
    if not p.exists():
        raise InputError(f"{source}: no such file")
    if p.is_dir():
        raise InputError(f"{source}: is a directory, not a scenario file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ModelError("not a text file (UTF-8)", source=source) from None
    ctx = _Ctx(source)
    lines = _compose_lines(text, ctx)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, ctx) from None
    return scenario_from_dict(data, source=source, base_dir=p.parent, lines=lines)


def scenario_from_dict(
    data: Any,
    *,
    source: str = "<scenario>",
    base_dir: str | os.PathLike[str] | None = None,
    lines: Mapping[Path_, int] | None = None,
) -> Scenario:
    """Validate a scenario given as plain data (``base_dir`` resolves a relative ``network``
    path)."""
    return _Builder(
        data, source, Path(base_dir) if base_dir is not None else Path.cwd(), lines
    ).build()


def dump_scenario(scenario: Scenario, path: str | os.PathLike[str]) -> None:
    """Write ``scenario`` as YAML (atomically); a network path is written relative to the
    new file's directory."""
    atomic_write_text(path, scenario.to_yaml(Path(path).parent))


class _Builder:
    def __init__(self, data: Any, source: str, base: Path, lines: Mapping[Path_, int] | None):
        self.ctx = _Ctx(source, lines)
        self.data = data
        self.source = source
        self.base = base

    def build(self) -> Scenario:
        from .problem import ReactionDiffusion

        ctx = self.ctx
        if self.data is None:
            raise ModelError("the scenario is empty", source=self.source)
        d = ctx.mapping(self.data, ())
        ctx.keys(d, TOP_KEYS, ())
        for k in ("grid", "species"):
            if k not in d:
                raise ctx.err((), f"missing required key '{k}'")
        spec: dict[str, Any] = {}
        name = ctx.text(d.get("name", Path(self.source).stem or "scenario"), ("name",))
        if not name.strip() or any(ch in name for ch in "/\\"):
            raise ctx.err(("name",), f"must be a plain name without slashes, got {name!r}")
        spec["name"] = name
        if "description" in d:
            spec["description"] = ctx.text(d["description"], ("description",))
        grid, spec["grid"] = self.grid(d["grid"])
        ndim = grid.ndim
        coords = set(AXES[:ndim])
        net = None
        net_path = None
        if d.get("network") is not None:
            rel = ctx.text(d["network"], ("network",))
            net_path = (self.base / rel).resolve()
            net = self.network(net_path)
            spec["network"] = rel
        net_species: list[str] = []
        if net is not None:
            from .reactions import network_field_species

            try:
                net_species = network_field_species(net, source=self.source)
            except ModelError as exc:
                raise ctx.err(("network",), exc.args[0]) from None
        species_in = ctx.mapping(d["species"], ("species",))
        if not species_in and not net_species:
            raise ctx.err(("species",), "needs at least one species")
        # parameters first: diffusivities and initial values may use them
        params_in = ctx.mapping(d.get("parameters") or {}, ("parameters",))
        species_names = list(species_in)
        for s in net_species:
            if s not in species_names:
                species_names.append(s)
        params: dict[str, Any] = {}
        pspec: dict[str, Any] = {}
        for k, v in params_in.items():
            path: Path_ = ("parameters", k)
            ctx.name(k, path, "parameter")
            if k in species_names:
                raise ctx.err(path, f"'{k}' is both a species and a parameter")
            x = _as_number(v)
            if x is not None:
                if not math.isfinite(x):
                    raise ctx.err(path, f"must be finite, got {_show(v)}")
                params[k] = pspec[k] = x
            elif isinstance(v, str):
                ctx.expression(v, path, coords, "parameter field")
                params[k] = pspec[k] = v
            else:
                raise ctx.err(
                    path,
                    f"must be a number or an expression in "
                    f"{', '.join(sorted(coords))}, got {_show(v)}",
                )
        if net is not None:
            for k in params:
                if k in net.species_map:
                    raise ctx.err(
                        ("parameters", k), f"'{k}' is a species of the network, not a parameter"
                    )
        known_values = set(params) | coords
        diffusivity: dict[str, Any] = {}
        initial: dict[str, Any] = {}
        per_species_bc: dict[str, dict[str, Any]] = {}
        sspec: dict[str, Any] = {}
        homs: dict[str, HomogenizationResult] = {}
        for s, raw in species_in.items():
            path = ("species", s)
            ctx.name(s, path, "species")
            if raw is None:
                raw = {}
            if _as_number(raw) is not None or isinstance(raw, str):
                raw = {"diffusivity": raw}  # shorthand: the diffusivity alone
            entry = ctx.mapping(raw, path)
            ctx.keys(entry, SPECIES_KEYS, path)
            out: dict[str, Any] = {}
            if "diffusivity" not in entry and s not in net_species:
                raise ctx.err(path, "needs 'diffusivity' (0 for an immobile species)")
            if "diffusivity" in entry:
                dpath = (*path, "diffusivity")
                D, out["diffusivity"], hom = self.diffusivity(
                    entry["diffusivity"], dpath, known_values, ndim
                )
                diffusivity[s] = D
                if hom is not None:
                    homs[s] = hom
            else:
                diffusivity[s] = 0.0
            if "initial" in entry:
                ipath = (*path, "initial")
                v = entry["initial"]
                x = _as_number(v)
                if x is not None:
                    if not math.isfinite(x):
                        raise ctx.err(ipath, f"must be finite, got {_show(v)}")
                    initial[s] = out["initial"] = x
                elif isinstance(v, str):
                    ctx.expression(v, ipath, known_values, "initial value")
                    initial[s] = out["initial"] = v
                else:
                    raise ctx.err(ipath, f"must be a number or an expression, got {_show(v)}")
            if "boundary" in entry:
                bc = self.boundary(entry["boundary"], (*path, "boundary"), grid)
                per_species_bc[s] = bc
                out["boundary"] = bc
            for k in ("units", "description"):
                if k in entry:
                    out[k] = ctx.text(entry[k], (*path, k))
            sspec[s] = out
        spec["species"] = sspec
        if pspec:
            spec["parameters"] = pspec
        # reactions
        reactions: dict[str, str] = {}
        rin = ctx.mapping(d.get("reactions") or {}, ("reactions",))
        known_rates = set(species_names) | set(params) | coords
        for s, text in rin.items():
            path = ("reactions", s)
            if s not in species_names:
                raise ctx.err(path, f"no species '{s}' (species: {', '.join(species_names)})")
            x = _as_number(text)
            if x is not None:
                text = repr(x)
            text = ctx.text(text, path)
            ctx.expression(text, path, known_rates, "reaction term", time=True)
            reactions[s] = text
        if reactions:
            spec["reactions"] = reactions
        # common boundary conditions
        common: dict[str, Any] = {}
        if d.get("boundary") is not None:
            common = self.boundary(d["boundary"], ("boundary",), grid)
            spec["boundary"] = common
        # run settings
        duration = None
        if d.get("duration") is not None:
            duration = ctx.number(d["duration"], ("duration",), minimum=0.0, strict=True)
            spec["duration"] = duration
        solver = ctx.mapping(d.get("solver") or {}, ("solver",))
        ctx.keys(solver, SOLVER_KEYS, ("solver",))
        method, spec["solver"] = self.solver(solver, duration is not None)
        outputs = ctx.mapping(d.get("outputs") or {}, ("outputs",))
        ctx.keys(outputs, OUTPUT_KEYS, ("outputs",))
        ospec, times, fields, file, steady, figures = self.outputs(outputs, duration, species_names)
        spec["outputs"] = ospec
        if times is None and not steady:
            raise ctx.err(
                (),
                "missing required key 'duration' (or set outputs.steady_state: "
                "true for the steady state alone)",
            )
        # the model
        boundary: dict[str, Any] = dict(common)
        boundary.update(per_species_bc)
        try:
            model = ReactionDiffusion(
                grid,
                diffusivity,
                reactions=reactions,
                network=net,
                boundary=boundary,
                parameters=params,
                id=name,
                source=self.source,
            )
        except ModelError as exc:
            raise self.model_error(exc, species_names, params) from None
        return Scenario(
            name=name,
            spec=spec,
            model=model,
            initial=initial,
            times=times,
            method=method,
            fields=fields,
            file=file,
            steady_state=steady,
            figures=figures,
            homogenization=homs,
            source=self.source,
            network=net,
            network_path=net_path,
        )

    def model_error(
        self, exc: ModelError, species: Sequence[str], params: Mapping[str, Any]
    ) -> ModelError:
        el = exc.element
        msg = exc.args[0]
        if el is not None and el in params:
            return self.ctx.err(("parameters", el), msg)
        if el is not None and el in species:
            return self.ctx.err(("species", el), msg)
        return ModelError(msg, source=self.source)

    # ------------------------------------------------------------------ parts
    def grid(self, raw: Any) -> tuple[Grid, dict[str, Any]]:
        ctx = self.ctx
        g = ctx.mapping(raw, ("grid",))
        ctx.keys(g, GRID_KEYS, ("grid",))
        for k in ("lengths", "cells"):
            if k not in g:
                raise ctx.err(("grid",), f"missing required key '{k}'")

        def listed(v: Any, key: str) -> list[Any]:
            items = v if isinstance(v, list) else [v]
            if not 1 <= len(items) <= 3:
                raise ctx.err(
                    ("grid", key), f"needs 1, 2 or 3 entries (one per axis), got {len(items)}"
                )
            return items

        cells_raw = listed(g["cells"], "cells")
        n = [
            ctx.integer(
                c, ("grid", "cells", i) if isinstance(g["cells"], list) else ("grid", "cells")
            )
            for i, c in enumerate(cells_raw)
        ]
        d = len(n)

        def per_axis(key: str, minimum: float | None, strict: bool) -> list[float]:
            v = g[key]
            items = listed(v, key)
            vals = [
                ctx.number(
                    x,
                    ("grid", key, i) if isinstance(v, list) else ("grid", key),
                    minimum=minimum,
                    strict=strict,
                )
                for i, x in enumerate(items)
            ]
            if len(vals) == 1 and d > 1:
                vals = vals * d
            if len(vals) != d:
                raise ctx.err(
                    ("grid", key),
                    f"needs {d} entries (one per axis of cells: {n}), got {len(vals)}",
                )
            return vals

        lengths = per_axis("lengths", 0.0, True)
        origin = per_axis("origin", None, False) if "origin" in g else [0.0] * d
        grid = Grid.box(lengths, n, origin)
        out: dict[str, Any] = {"lengths": lengths, "cells": n, "origin": origin}
        if g.get("mask") is not None:
            text = ctx.text(g["mask"], ("grid", "mask"))
            e = ctx.expression(text, ("grid", "mask"), set(AXES[:d]), "mask")
            from .problem import evaluate_field

            m = evaluate_field(e, grid, {}) != 0.0
            if not m.any():
                raise ctx.err(("grid", "mask"), "selects no cell of the grid")
            grid = grid.with_mask(m)
            out["mask"] = text
        return grid, out

    def network(self, p: Path) -> ReactionNetwork:
        from ..api import load

        try:
            return load(p)
        except ModelError as exc:
            raise self.ctx.err(("network",), str(exc)) from None
        except OSError as exc:
            raise self.ctx.err(("network",), f"cannot read '{p}': {exc.strerror}") from None

    def diffusivity(
        self, v: Any, path: Path_, known: set[str], ndim: int
    ) -> tuple[Any, Any, HomogenizationResult | None]:
        ctx = self.ctx
        x = _as_number(v)
        if x is not None:
            if not math.isfinite(x) or x < 0:
                raise ctx.err(
                    path, f"must be a number >= 0 (0 for an immobile species), got {_show(v)}"
                )
            return x, x, None
        if isinstance(v, str):
            ctx.expression(v, path, known, "diffusivity")
            return v, v, None
        if isinstance(v, Mapping):
            m = ctx.mapping(v, path)
            ctx.keys(m, ("homogenize",), path)
            if "homogenize" not in m:
                raise ctx.err(path, "a mapping here must be {homogenize: {...}}")
            hpath = (*path, "homogenize")
            micro = microstructure_from_spec(
                m["homogenize"], source=self.source, lines=ctx.lines, path=hpath
            )
            try:
                hom = homogenize(micro, source=self.source)
                D = tissue_diffusivity(hom.tensor, ndim, source=self.source)
            except ModelError as exc:
                raise ctx.err(hpath, exc.args[0]) from None
            hspec = _plain(dict(m["homogenize"]))
            return D, {"homogenize": hspec}, hom
        raise ctx.err(
            path, f"must be a number >= 0, an expression or {{homogenize: ...}}, got {_show(v)}"
        )

    def boundary(self, raw: Any, path: Path_, grid: Grid) -> dict[str, Any]:
        ctx = self.ctx
        b = ctx.mapping(raw, path)
        sides = sides_of(grid)
        allowed = set(sides) | set(grid.axes) | {"*", "all", "default"}
        allowed |= {k for k, v in SIDE_ALIASES.items() if v in sides}
        out: dict[str, Any] = {}
        for side, cond in b.items():
            spath = (*path, side)
            if side not in allowed and side.lower() not in allowed:
                raise ctx.err(
                    spath, f"no side '{side}' on a {grid.ndim}-D grid (sides: {', '.join(sides)})"
                )
            try:
                condition_from_spec(cond, side=side)
            except ModelError as exc:
                msg = exc.args[0].removeprefix(f"side '{side}': ")
                raise ctx.err(spath, msg) from None
            except (TypeError, ValueError) as exc:
                raise ctx.err(spath, f"bad boundary condition: {exc}") from None
            out[side] = _plain(cond)
        try:
            from .boundary import BoundaryConditions

            BoundaryConditions(grid, out)
        except ModelError as exc:
            raise ctx.err(path, exc.args[0]) from None
        return out

    def solver(self, s: Mapping[str, Any], transient: bool) -> tuple[SpaceMethod, dict[str, Any]]:
        from .stepping import get_space_method

        ctx = self.ctx
        method = ctx.text(s.get("method", "crank-nicolson"), ("solver", "method"))
        opts = ctx.mapping(s.get("options") or {}, ("solver", "options"))
        out: dict[str, Any] = {"method": method}
        dt = None
        if s.get("dt") is not None:
            dt = ctx.number(s["dt"], ("solver", "dt"), minimum=0.0, strict=True)
            out["dt"] = dt
        for k, v in opts.items():
            x = _as_number(v)
            if x is not None and not isinstance(v, int | float):
                opts[k] = x
        if opts:
            out["options"] = _plain(opts)
        try:
            m = get_space_method(method, **({"dt": dt} if dt is not None else {}), **opts)
        except OptionError as exc:
            msg = str(exc)
            bad = next((k for k in opts if re.search(rf"\b{re.escape(k)}\b", msg)), None)
            where: Path_ = ("solver", "options", bad) if bad else ("solver", "method")
            raise ctx.err(where, msg) from None
        if transient and m.dt is None and m.implicit:
            raise ctx.err(
                ("solver",),
                f"missing required key 'dt' (the largest time step) for method {m.name}",
            )
        return m, out

    def outputs(
        self, o: Mapping[str, Any], duration: float | None, species: Sequence[str]
    ) -> tuple[dict[str, Any], np.ndarray | None, tuple[str, ...], str, bool, tuple[str, ...]]:
        ctx = self.ctx
        out: dict[str, Any] = {}
        times = None
        if "times" in o and duration is None:
            raise ctx.err(("outputs", "times"), "needs 'duration'")
        if duration is not None:
            t = o.get("times", DEFAULT_TIMES)
            if isinstance(t, list):
                ts = [ctx.number(x, ("outputs", "times", i), minimum=0.0) for i, x in enumerate(t)]
                if not ts:
                    raise ctx.err(("outputs", "times"), "must not be empty")
                if np.any(np.diff(ts) <= 0):
                    raise ctx.err(("outputs", "times"), "must be strictly increasing")
                if ts[-1] > duration * (1 + 1e-12):
                    raise ctx.err(
                        ("outputs", "times"), f"{ts[-1]:g} is after the duration {duration:g}"
                    )
                out["times"] = list(ts)
                if ts[-1] < duration:
                    ts.append(duration)  # the run lasts the whole duration
                times = np.asarray(ts, dtype=np.float64)
            else:
                n = ctx.integer(t, ("outputs", "times"), minimum=2)
                times = np.linspace(0.0, duration, n)
                out["times"] = n
        fields = tuple(species)
        if o.get("fields") is not None:
            f = o["fields"]
            if not isinstance(f, list) or not f:
                raise ctx.err(
                    ("outputs", "fields"), f"must be a non-empty list of species, got {_show(f)}"
                )
            for i, s in enumerate(f):
                if s not in species:
                    raise ctx.err(
                        ("outputs", "fields", i),
                        f"no species {_show(s)} (species: {', '.join(species)})",
                    )
            fields = tuple(f)
            out["fields"] = list(f)
        file = ctx.text(o.get("file", FIELDS_FILE), ("outputs", "file"))
        if Path(file).name != file or not file.endswith(".nc") or file in (STEADY_FILE,):
            raise ctx.err(
                ("outputs", "file"),
                f"must be a file name ending in .nc (no "
                f"directory; not {STEADY_FILE}), got {file!r}",
            )
        out["file"] = file
        steady = ctx.boolean(o.get("steady_state", False), ("outputs", "steady_state"))
        out["steady_state"] = steady
        fig = o.get("figures", True)
        if isinstance(fig, bool):
            figures = tuple(species) if fig else ()
            out["figures"] = fig
        elif isinstance(fig, list):
            for i, s in enumerate(fig):
                if s not in species:
                    raise ctx.err(("outputs", "figures", i), f"no species {_show(s)}")
            figures = tuple(fig)
            out["figures"] = list(fig)
        else:
            raise ctx.err(
                ("outputs", "figures"),
                f"must be true, false or a list of species, got {_show(fig)}",
            )
        return out, times, fields, file, steady, figures


def _plain(v: Any) -> Any:
    """Plain YAML-safe data (numbers as floats, numeric text as numbers)."""
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, bool) or v is None:
        return v
    x = _as_number(v)
    if x is not None:
        return int(x) if isinstance(v, int | np.integer) else x
    return v


# =============================================================================================
# Running


@dataclass(frozen=True)
class ScenarioReport:
    """What :func:`run_scenario` did: the ``directory`` and the ``files`` it wrote, the headline
    numbers ``values``, the transient ``result`` and the ``steady`` state (None when not asked
    for) and the ``scenario``."""

    name: str
    directory: Path
    files: tuple[Path, ...]
    values: Mapping[str, float]
    result: Result | None
    steady: SteadyField | None
    scenario: Scenario


def run_scenario(
    path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] = "out",
    *,
    progress: bool | None = None,
) -> ScenarioReport:
    """Load, validate and run the scenario file ``path``; write into ``out_dir`` (created if
    missing): the fields (NetCDF, ``outputs.file``), ``steady.nc``, ``<species>.png``,
    ``scenario_used.yaml`` and ``summary.md``.  Input errors are raised before anything runs;
    an output that would replace the scenario file itself is refused.  ``progress``: a rich
    progress bar on stderr for long runs (None: only on a terminal)."""
    wall0 = time.perf_counter()
    sc = load_scenario(path)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OptionError(f"--out {out}: exists and is not a directory")
    planned = [out / sc.file, out / STEADY_FILE, out / USED_FILE, out / SUMMARY_FILE]
    planned += [out / f"{s}.png" for s in sc.figures]
    src = Path(path).resolve()
    for p in planned:
        if p.resolve() == src:
            raise OptionError(f"--out {out}: writing '{p.name}' would replace the scenario file")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OptionError(f"--out {out}: cannot create the directory ({e.strerror})") from None
    res, ss = sc.run(progress=progress)
    files: list[Path] = []
    values: dict[str, float] = {}
    if res is not None:
        sel = res.sel_vars(list(sc.fields))
        target = out / sc.file
        sel.to_netcdf(target)
        files.append(target)
        values["steps"] = float(res.stats.get("steps", 0))
        g = sc.model.grid
        for s in sc.model.species:
            last = np.asarray(res.data[s].isel(time=-1).values)
            values[f"{s}_total_final"] = g.integrate(np.nan_to_num(last))
            values[f"{s}_max_final"] = float(np.nanmax(last))
            values[f"{s}_min_final"] = float(np.nanmin(last))
    if ss is not None:
        target = out / STEADY_FILE
        ss.to_netcdf(target)
        files.append(target)
        values["steady_residual"] = ss.residual
        for s in sc.model.species:
            values[f"{s}_max_steady"] = float(np.nanmax(ss.values(s)))
    for s in sc.figures:
        target = out / f"{s}.png"
        fig = field_figure(sc, s, res, ss)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        files.append(target)
    used = out / USED_FILE
    atomic_write_text(used, sc.to_yaml(out))
    files.append(used)
    values["wall_time_s"] = time.perf_counter() - wall0
    summary = out / SUMMARY_FILE
    atomic_write_text(summary, _summary(sc, res, ss, values, [*files, summary]))
    files.append(summary)
    return ScenarioReport(sc.name, out, tuple(files), values, res, ss, sc)


def field_figure(sc: Scenario, species: str, res: Result | None, ss: SteadyField | None) -> Figure:
    """The figure of one species: profiles at the output times (1-D), or maps of the last
    output and the steady state (2-D; 3-D: the mid-plane in z)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    g = sc.model.grid
    n_panels = (res is not None) + (ss is not None)
    fig = Figure(
        layout="constrained", figsize=(7.0, 4.2) if g.ndim == 1 else (4.8 * n_panels + 0.4, 4.2)
    )
    FigureCanvasAgg(fig)
    if g.ndim == 1:
        ax = fig.subplots()
        x = g.coordinate(0)
        if res is not None:
            import matplotlib as mpl

            t = res.time
            idx = np.unique(
                np.linspace(0, t.size - 1, min(t.size, _MAX_PROFILES)).round().astype(int)
            )
            cmap = mpl.colormaps["viridis"]
            for j, i in enumerate(idx):
                ax.plot(
                    x,
                    res.data[species].isel(time=int(i)).values,
                    color=cmap(j / max(len(idx) - 1, 1)),
                    label=f"t = {t[i]:.4g}",
                )
        if ss is not None:
            ax.plot(x, ss.values(species), "k--", linewidth=1.2, label="steady state")
        ax.set_xlabel("x")
        ax.set_ylabel(species)
        ax.legend(fontsize="x-small", ncol=2)
        ax.set_title(f"{sc.name}: {species}")
        return fig
    panels = []
    if res is not None:
        panels.append((f"t = {res.time[-1]:.4g}", np.asarray(res.data[species].isel(time=-1))))
    if ss is not None:
        panels.append(("steady state", ss.values(species)))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, arr) in zip(axes, panels, strict=True):
        if g.ndim == 3:
            arr = arr[:, :, g.shape[2] // 2]
            title += f", z = {g.coordinate(2)[g.shape[2] // 2]:.4g}"
        xf, yf = g.faces(0), g.faces(1)
        im = ax.pcolormesh(xf, yf, np.asarray(arr).T, shading="flat", cmap="viridis")
        ax.set_aspect("equal")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_title(title)
        fig.colorbar(im, ax=ax, label=species)
    fig.suptitle(f"{sc.name}: {species}")
    return fig


def _summary(
    sc: Scenario,
    res: Result | None,
    ss: SteadyField | None,
    values: Mapping[str, float],
    files: Sequence[Path],
) -> str:
    g = sc.model.grid
    lines = [f"# Scenario: {sc.name}", ""]
    if sc.description:
        lines += [sc.description, ""]
    lines += [
        f"Grid: {' x '.join(str(n) for n in g.shape)} cells on a box of "
        f"{' x '.join(f'{v:g}' for v in g.lengths)}"
        + (f" ({g.n_active} active)" if g.mask is not None else "")
        + ".",
        "",
        "| species | diffusivity |",
        "|---|---|",
    ]
    for s, D in zip(sc.model.species, sc.model.diffusivities, strict=True):
        hom = sc.homogenization.get(s)
        text = f"{float(D):.6g}" if np.ndim(D) == 0 else "field"
        if hom is not None:
            text += f" (homogenized: {' x '.join(map(str, hom.shape))} unit cell)"
        lines.append(f"| {s} | {text} |")
    lines.append("")
    if res is not None:
        st = res.stats
        lines += [
            f"Method {st.get('method')}, dt = {float(st.get('dt', math.nan)):.4g}, "
            f"{st.get('steps')} steps to t = {res.time[-1]:g}, "
            f"{float(st.get('wall_time_s') or 0.0):.3g} s.",
            "",
            "| species | min (final) | max (final) | total (final) |",
            "|---|---|---|---|",
        ]
        for s in sc.model.species:
            lines.append(
                f"| {s} | {values[f'{s}_min_final']:.6g} | {values[f'{s}_max_final']:.6g}"
                f" | {values[f'{s}_total_final']:.6g} |"
            )
        lines.append("")
    if ss is not None:
        lines += [
            f"Steady state by {ss.method}: {ss.iterations} iterations, residual {ss.residual:.2e}.",
            "",
        ]
    lines += [f"Total wall time {values['wall_time_s']:.3g} s.", "", "Files:", ""]
    lines += [f"- `{p.name}`" for p in files]
    return "\n".join(lines) + "\n"
