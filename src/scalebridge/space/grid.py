"""Uniform Cartesian grids in 1, 2 and 3 dimensions, masks for irregular domains, named fields.

Conventions
-----------
A :class:`Grid` is a box ``[o_0, o_0 + n_0 h_0] x ...`` split into ``n_0 x n_1 x ...`` equal cells
(cell-centred finite volumes).  Axis ``k`` is called ``x``, ``y``, ``z`` in that order; cell
``(i, j, l)`` has its centre at ``o + (i + 1/2, j + 1/2, l + 1/2) * h``.  Arrays on a grid have
the grid's ``shape`` in C order (``x`` first), so ``u[i, j]`` is the cell at ``x_i, y_j``.

A *mask* (boolean array of the grid's shape, ``True`` = active) selects a tissue region inside the
box.  Inactive cells carry no unknowns: the faces between an active and an inactive cell are
impermeable (no flux), and the box's boundary conditions act only on the faces of active cells
that lie on the box.  Outputs show inactive cells as NaN.

A :class:`Field` is a named array of values at the cell centres of a grid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ModelError

__all__ = ["AXES", "Field", "Grid"]

AXES = ("x", "y", "z")


def _tuple_of(value: Any, n: int, what: str, kind: type) -> tuple[Any, ...]:
    if np.isscalar(value):
        return (kind(value),) * n
    items = tuple(value)
    if len(items) != n:
        raise ModelError(f"grid {what} needs {n} entries, got {len(items)}")
    return tuple(kind(v) for v in items)


@dataclass(frozen=True, eq=False)
class Grid:
    """A uniform Cartesian grid of ``shape`` cells of size ``spacing``, from ``origin``.

    ``mask`` (optional) marks the active cells of an irregular domain (see the module docstring).
    Use :meth:`box` to give the box's lengths instead of the spacing.
    """

    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...] = ()
    mask: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        shape = tuple(self.shape) if not np.isscalar(self.shape) else (self.shape,)
        if not 1 <= len(shape) <= 3:
            raise ModelError(f"a grid has 1, 2 or 3 axes, got shape {shape}")
        for n in shape:
            if not isinstance(n, int | np.integer) or n < 1:
                raise ModelError(f"grid shape entries must be positive integers, got {shape}")
        d = len(shape)
        spacing = _tuple_of(self.spacing, d, "spacing", float)
        if not all(np.isfinite(h) and h > 0 for h in spacing):
            raise ModelError(f"grid spacing must be positive and finite, got {spacing}")
        origin = _tuple_of(self.origin, d, "origin", float) if self.origin != () else (0.0,) * d
        if not all(np.isfinite(o) for o in origin):
            raise ModelError(f"grid origin must be finite, got {origin}")
        object.__setattr__(self, "shape", tuple(int(n) for n in shape))  # type: ignore[arg-type]
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", origin)
        if self.mask is not None:
            m = np.asarray(self.mask)
            if m.shape != self.shape:
                raise ModelError(f"grid mask has shape {m.shape}, the grid {self.shape}")
            if m.dtype != np.bool_:
                if not np.all((m == 0) | (m == 1)):
                    raise ModelError("grid mask must be boolean (True = active cell)")
                m = m.astype(bool)
            if not m.any():
                raise ModelError("grid mask has no active cell")
            m = m.copy()
            m.setflags(write=False)
            object.__setattr__(self, "mask", None if m.all() else m)

    # ------------------------------------------------------------------ construction
    @classmethod
    def box(
        cls,
        lengths: float | Sequence[float],
        cells: int | Sequence[int],
        origin: float | Sequence[float] = 0.0,
        mask: np.ndarray | Callable[..., Any] | None = None,
    ) -> Grid:
        """A grid of ``cells`` cells on a box of side ``lengths`` starting at ``origin``.

        ``mask`` is a boolean array, or a function of the cell-centre coordinate arrays
        (``mask(x)``, ``mask(x, y)``, ``mask(x, y, z)``) returning one.
        """
        n = (int(cells),) if isinstance(cells, int | np.integer) else tuple(int(c) for c in cells)
        d = len(n)
        L = _tuple_of(lengths, d, "lengths", float)
        if not all(np.isfinite(v) and v > 0 for v in L):
            raise ModelError(f"box lengths must be positive and finite, got {L}")
        g = cls(
            n,
            tuple(a / b for a, b in zip(L, n, strict=True)),
            _tuple_of(origin, d, "origin", float),
        )
        if mask is None:
            return g
        return g.with_mask(mask)

    def with_mask(self, mask: np.ndarray | Callable[..., Any] | None) -> Grid:
        """This grid with ``mask``: an array, or a function of the centre coordinates (see
        :meth:`box`)."""
        if callable(mask):
            m = np.asarray(mask(*self.centres()), dtype=bool)
            m = np.broadcast_to(m, self.shape)
        else:
            m = mask  # type: ignore[assignment]
        return Grid(self.shape, self.spacing, self.origin, m)

    # ------------------------------------------------------------------ geometry
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def axes(self) -> tuple[str, ...]:
        """Axis names: ``("x",)``, ``("x", "y")`` or ``("x", "y", "z")``."""
        return AXES[: self.ndim]

    @property
    def size(self) -> int:
        """Number of cells in the box (active or not)."""
        return int(np.prod(self.shape))

    @property
    def n_active(self) -> int:
        return self.size if self.mask is None else int(self.mask.sum())

    @property
    def lengths(self) -> tuple[float, ...]:
        return tuple(n * h for n, h in zip(self.shape, self.spacing, strict=True))

    @property
    def cell_volume(self) -> float:
        """Volume (length in 1-D, area in 2-D) of one cell."""
        return float(np.prod(self.spacing))

    @property
    def volume(self) -> float:
        """Volume of the active domain."""
        return self.cell_volume * self.n_active

    def coordinate(self, axis: int | str) -> np.ndarray:
        """Cell-centre coordinates along one axis (1-D array)."""
        k = self.axis_index(axis)
        return self.origin[k] + (np.arange(self.shape[k]) + 0.5) * self.spacing[k]

    def faces(self, axis: int | str) -> np.ndarray:
        """Face coordinates along one axis (``n + 1`` values, from the box's low side)."""
        k = self.axis_index(axis)
        return self.origin[k] + np.arange(self.shape[k] + 1) * self.spacing[k]

    def centres(self) -> tuple[np.ndarray, ...]:
        """Cell-centre coordinate arrays, each of the grid's shape (``indexing="ij"``)."""
        return tuple(np.meshgrid(*(self.coordinate(k) for k in range(self.ndim)), indexing="ij"))

    def axis_index(self, axis: int | str) -> int:
        if isinstance(axis, str):
            if axis not in self.axes:
                raise ModelError(f"no axis '{axis}' on a {self.ndim}-D grid (axes {self.axes})")
            return self.axes.index(axis)
        if not 0 <= int(axis) < self.ndim:
            raise ModelError(f"no axis {axis} on a {self.ndim}-D grid")
        return int(axis)

    @property
    def active(self) -> np.ndarray:
        """Boolean array of the grid's shape: True for active cells."""
        if self.mask is None:
            return np.ones(self.shape, dtype=bool)
        return self.mask

    def integrate(self, values: np.ndarray) -> float:
        """Sum of ``values * cell volume`` over the active cells."""
        v = np.asarray(values, dtype=np.float64)
        if v.shape != self.shape:
            raise ModelError(f"values have shape {v.shape}, the grid {self.shape}")
        if self.mask is None:
            return float(v.sum() * self.cell_volume)
        return float(v[self.mask].sum() * self.cell_volume)

    def field_from(self, value: Any, *, name: str = "value") -> np.ndarray:
        """A float array of the grid's shape from a scalar, an array, or a function of the
        centre coordinates; raises :class:`~scalebridge.errors.ModelError` naming ``name``."""
        if callable(value):
            value = value(*self.centres())
        a = np.asarray(value, dtype=np.float64)
        if a.ndim == 0:
            return np.full(self.shape, float(a))
        if a.shape != self.shape:
            raise ModelError(f"'{name}' has shape {a.shape}, the grid {self.shape}", element=name)
        return a.copy()

    def __repr__(self) -> str:
        extra = "" if self.mask is None else f", {self.n_active} of {self.size} cells active"
        return (
            f"Grid(shape={self.shape}, spacing={tuple(float(h) for h in self.spacing)}, "
            f"origin={self.origin}{extra})"
        )


@dataclass(frozen=True, eq=False)
class Field:
    """Named values at the cell centres of ``grid`` (an array of ``grid.shape``)."""

    name: str
    grid: Grid
    values: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ModelError("a field needs a name")
        object.__setattr__(self, "values", self.grid.field_from(self.values, name=self.name))

    @classmethod
    def from_function(cls, name: str, grid: Grid, fn: Callable[..., Any]) -> Field:
        """``fn(x[, y[, z]])`` evaluated at the cell centres."""
        return cls(name, grid, grid.field_from(fn, name=name))

    def total(self) -> float:
        """Integral over the active domain (sum of value x cell volume)."""
        return self.grid.integrate(self.values)

    def to_xarray(self) -> Any:
        import xarray as xr

        data = self.values.astype(np.float64, copy=True)
        if self.grid.mask is not None:
            data[~self.grid.mask] = np.nan
        coords = {a: self.grid.coordinate(k) for k, a in enumerate(self.grid.axes)}
        return xr.DataArray(data, dims=self.grid.axes, coords=coords, name=self.name)
