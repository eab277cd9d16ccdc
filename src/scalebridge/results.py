"""The result type: labelled trajectories with run statistics and provenance.

Every simulation method returns a :class:`Result`, whatever its options (a flag never changes the
return type).  A result holds

* ``data``: an :class:`xarray.Dataset` with one data variable per reported id (species,
  compartment, parameter, ...).  Every variable has the dimension ``"time"`` (a 1-D float
  coordinate of the output times); ensembles add a leading ``"run"`` dimension (an integer
  coordinate ``0 .. R-1``), so a time series has dims ``("time",)`` or ``("run", "time")``.
  Variable attrs: ``units`` where known, ``kind`` (``"species"``, ``"parameter"``,
  ``"compartment"``, ...), and ``quantity`` (``"amount"`` or ``"concentration"``) where it
  applies.  Dataset attrs: ``method`` and ``seed``.
* ``stats``: a dict that always has ``method``, ``options`` (the method's options), ``seed``
  (``None`` for deterministic methods), ``versions``
  (:func:`scalebridge.provenance.package_versions`) and ``wall_time_s``, plus whatever the
  method reports (``steps``, ``events``, ``rhs_evaluations``, ...).

A result may instead carry the moments of a distribution (``method="fsp"``): a variable ``X``
with attrs ``statistic="mean"`` and a variable ``X-sd`` with attrs ``statistic="sd"`` and
``of="X"``, both on ``("time",)``, beside variables with further dimensions (marginal and
joint distributions).  For such a result :meth:`Result.mean` and :meth:`Result.sd` return those
moments and :meth:`Result.to_csv` writes ``X-mean`` and ``X-sd`` columns.

Run statistics, for R runs x_1(t) .. x_R(t) of a variable:
mean m(t) = (1/R) sum_r x_r(t); sd s(t) = sqrt( sum_r (x_r(t) - m(t))^2 / (R - 1) ), the sample
standard deviation (ddof = 1, as in the DSMTS reference files).  NaN in any run propagates.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from ._io import atomic_path
from .errors import InputError, OptionError
from .provenance import package_versions

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["RUN", "TIME", "Result"]

TIME = "time"
RUN = "run"
QUANTITIES = frozenset({"amount", "concentration"})

# NetCDF attrs hold only strings and numbers: stats and the in-memory dataset attrs are stored as
# JSON text under these names.
_STATS_ATTR = "scalebridge_stats"
_ATTRS_ATTR = "scalebridge_attrs"
_FORMAT_ATTR = "scalebridge_format"
_NDARRAY_TAG = "__ndarray__"


class Result:
    """Trajectories of one simulation or ensemble, with statistics and provenance.

    ``Result(data, stats)`` checks that ``data`` has a 1-D ``"time"`` coordinate and that every
    data variable has the ``"time"`` dimension, and fills the required ``stats`` keys that are
    missing (``method`` and ``seed`` from ``data.attrs`` or ``None``, ``options`` ``{}``,
    ``versions`` from this process, ``wall_time_s`` ``None``).  ``data.attrs["method"]`` and
    ``["seed"]`` are set from ``stats``; a conflicting value raises
    :class:`~scalebridge.errors.OptionError`.  ``data`` is copied shallowly (the arrays are
    shared).

    Mapping-like access: ``res["S1"]`` is the :class:`xarray.DataArray` of ``S1``; ``len(res)``,
    ``iter(res)`` and ``in`` refer to the variable ids.
    """

    __slots__ = ("data", "stats")

    data: xr.Dataset
    stats: dict[str, Any]

    def __init__(self, data: xr.Dataset, stats: Mapping[str, Any] | None = None):
        if not isinstance(data, xr.Dataset):
            raise OptionError(f"result data must be an xarray.Dataset, not {type(data).__name__}")
        if TIME not in data.coords or data[TIME].dims != (TIME,):
            raise OptionError("result data need a 1-D 'time' coordinate")
        for name in data.data_vars:
            # data.variables, not data[name]: building a DataArray per variable is quadratic
            if TIME not in data.variables[name].dims:
                raise OptionError(f"variable '{name}' has no 'time' dimension")
        st = dict(stats) if stats is not None else {}
        st.setdefault("method", data.attrs.get("method"))
        st.setdefault("options", {})
        st.setdefault("seed", data.attrs.get("seed"))
        st.setdefault("versions", package_versions())
        st.setdefault("wall_time_s", None)
        data = data.copy(deep=False)
        for key in ("method", "seed"):
            if key in data.attrs and not _same(data.attrs[key], st[key]):
                raise OptionError(
                    f"{key} differs between data attrs ({data.attrs[key]!r}) and stats "
                    f"({st[key]!r})"
                )
            data.attrs[key] = st[key]
        self.data = data
        self.stats = st

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        time: Any,
        values: Mapping[str, Any] | tuple[Sequence[str], Any],
        *,
        runs: bool,
        units: Mapping[str, str | None] | None = None,
        kinds: Mapping[str, str] | None = None,
        quantities: Mapping[str, str] | None = None,
        stats: Mapping[str, Any] | None = None,
    ) -> Result:
        """Build a result from NumPy arrays.

        ``time`` is 1-D, finite and non-decreasing (stored as float64).  ``values`` is either a
        dict ``{id: array}`` with arrays of shape (time,), or (run, time) when ``runs`` is true;
        or a pair ``(ids, array)`` with an array of shape (time, var), or (run, time, var) when
        ``runs`` is true.  The arrays are copied.  ``units``, ``kinds`` and ``quantities`` map
        ids to the variable attrs of the same name (``quantity`` is ``"amount"`` or
        ``"concentration"``); a ``None`` unit means unknown and is left out.
        """
        t = np.asarray(time, dtype=np.float64)
        if t.ndim != 1:
            raise OptionError(f"time must be 1-D, got shape {t.shape}")
        if not np.all(np.isfinite(t)):
            raise OptionError("time contains non-finite values")
        if np.any(np.diff(t) < 0):
            raise OptionError("time must be non-decreasing")
        arrays = _split_values(values, runs=runs, n_time=t.size)
        for name in arrays:
            if not isinstance(name, str) or not name:
                raise OptionError(f"variable ids must be non-empty strings, got {name!r}")
            if name in (TIME, RUN):
                raise OptionError(
                    f"'{name}' is reserved for a dimension and cannot be a variable id"
                )
        n_runs = {a.shape[0] for a in arrays.values()} if runs else set()
        if len(n_runs) > 1:
            raise OptionError(f"variables have different numbers of runs: {sorted(n_runs)}")
        if 0 in n_runs:
            raise OptionError("an ensemble needs at least one run")
        attrs: dict[str, dict[str, str]] = {name: {} for name in arrays}
        for attr, given in (("units", units), ("kind", kinds), ("quantity", quantities)):
            for name, value in (given or {}).items():
                if name not in attrs:
                    raise OptionError(f"{attr} given for unknown variable '{name}'")
                if value is None:
                    continue
                if not isinstance(value, str):
                    raise OptionError(f"{attr} of '{name}' must be a string, got {value!r}")
                if attr == "quantity" and value not in QUANTITIES:
                    raise OptionError(
                        f"quantity of '{name}' must be 'amount' or 'concentration', got {value!r}"
                    )
                attrs[name][attr] = value
        dims = (RUN, TIME) if runs else (TIME,)
        coords: dict[str, Any] = {TIME: t}
        if n_runs:
            coords[RUN] = np.arange(n_runs.pop())
        data = xr.Dataset(
            {name: (dims, a, attrs[name]) for name, a in arrays.items()}, coords=coords
        )
        return cls(data, stats)

    # ------------------------------------------------------------------ access
    @property
    def time(self) -> np.ndarray:
        """The output times (1-D float array)."""
        return self.data[TIME].to_numpy()

    @property
    def variables(self) -> list[str]:
        """Ids of the data variables, in order."""
        return [str(name) for name in self.data.data_vars]

    @property
    def n_runs(self) -> int | None:
        """Number of runs R, or ``None`` when the data have no ``"run"`` dimension."""
        size = self.data.sizes.get(RUN)
        return None if size is None else int(size)

    def __getitem__(self, name: str) -> xr.DataArray:
        if name not in self.data.data_vars:
            raise OptionError(f"unknown variable '{name}'; the result has {_listing(self)}")
        return self.data[name]

    def __contains__(self, name: object) -> bool:
        return name in self.data.data_vars

    def __iter__(self) -> Iterator[str]:
        return iter(self.variables)

    def __len__(self) -> int:
        return len(self.data.data_vars)

    def __repr__(self) -> str:
        runs = "" if self.n_runs is None else f", runs={self.n_runs}"
        return (
            f"<Result method={self.stats.get('method')!r}, {len(self)} variables, "
            f"{self.data.sizes[TIME]} time points{runs}>"
        )

    def sel_vars(self, names: str | Iterable[str]) -> Result:
        """A new result with only the variables ``names`` (in that order); stats are copied.

        Raises :class:`~scalebridge.errors.OptionError` naming the first unknown id.
        """
        wanted = [names] if isinstance(names, str) else list(names)
        for name in wanted:
            if name not in self.data.data_vars:
                raise OptionError(f"unknown variable '{name}'; the result has {_listing(self)}")
        return Result(self.data[wanted], copy.deepcopy(self.stats))

    # ------------------------------------------------------------------ statistics
    def moment_variables(self) -> dict[str, str]:
        """``{mean variable: its sd variable}`` of a result that carries the moments of a
        distribution (see the module docstring); empty for trajectories and ensembles."""
        out: dict[str, str] = {}
        for name, var in self.data.data_vars.items():
            of = var.attrs.get("of")
            if var.attrs.get("statistic") == "sd" and of in self.data.data_vars:
                out[str(of)] = str(name)
        return {m: out[m] for m in self.variables if m in out}

    def mean(self) -> xr.Dataset:
        """Mean over runs, m(t) = (1/R) sum_r x_r(t); dims without ``"run"``.

        For a single trajectory (no ``"run"`` dimension, or one run) this is the trajectory.
        Variables without a ``"run"`` dimension are returned unchanged.  Attrs are kept.
        For a result carrying moments (:meth:`moment_variables`), the mean variables.
        """
        moments = self.moment_variables()
        if moments:
            return self.data[list(moments)]
        n = self.n_runs
        if n is None:
            return self.data.copy(deep=False)
        if n == 1:
            return self.data.isel({RUN: 0}, drop=True)
        return self.data.mean(RUN, skipna=False, keep_attrs=True)

    def sd(self) -> xr.Dataset:
        """Sample standard deviation over runs (ddof = 1), sqrt(sum_r (x_r - m)^2 / (R - 1)).

        The sample sd is undefined for one run; a single trajectory (no ``"run"`` dimension, or
        one run), and variables without a ``"run"`` dimension, get zeros.  The result is float;
        attrs (including ``units``, which sd shares with the variable) are kept.  For a result
        carrying moments (:meth:`moment_variables`), the sd variables under the mean's id.
        """
        moments = self.moment_variables()
        if moments:
            return xr.Dataset(
                {m: self.data[s] for m, s in moments.items()},
                coords={TIME: self.data[TIME]},
                attrs=dict(self.data.attrs),
            )
        n = self.n_runs
        base = self.data.isel({RUN: 0}, drop=True) if n == 1 else self.data
        out: dict[str, xr.DataArray] = {}
        for name, var in base.data_vars.items():
            if n is not None and n > 1 and RUN in var.dims:
                out[str(name)] = var.std(RUN, ddof=1, skipna=False, keep_attrs=True)
            else:
                out[str(name)] = xr.zeros_like(var, dtype=np.float64)
        return xr.Dataset(out, coords={TIME: self.data[TIME]}, attrs=dict(self.data.attrs))

    # ------------------------------------------------------------------ tables and files
    def to_dataframe(self) -> pd.DataFrame:
        """The table written by :meth:`to_csv`.

        Column ``time``, then for an ensemble (more than one run) ``X-mean`` for every variable
        followed by ``X-sd`` for every variable (the DSMTS layout; sd as in :meth:`sd`); for a
        single trajectory (no ``"run"`` dimension, or one run) one column per variable.  Only
        time-series variables (dims ``("time",)`` or ``("run", "time")``) can be tabulated;
        others raise :class:`~scalebridge.errors.OptionError`.  A result carrying moments
        (:meth:`moment_variables`) gives ``X-mean`` and ``X-sd`` columns for its moments, the
        same layout as an ensemble.
        """
        moments = self.moment_variables()
        if moments:
            mean, sd = self.mean(), self.sd()
            table = {TIME: self.time}
            table.update({f"{m}-mean": mean[m].to_numpy() for m in moments})
            table.update({f"{m}-sd": sd[m].to_numpy() for m in moments})
            return pd.DataFrame(table)
        for name, var in self.data.data_vars.items():
            if not set(var.dims) <= {RUN, TIME}:
                raise OptionError(
                    f"variable '{name}' has dims {var.dims}; a table holds only time series "
                    "(use to_netcdf)"
                )
        columns: dict[str, np.ndarray] = {TIME: self.time}
        mean = self.mean()
        if self.n_runs is not None and self.n_runs > 1:
            sd = self.sd()
            for name in self.variables:
                columns[f"{name}-mean"] = mean[name].to_numpy()
            for name in self.variables:
                columns[f"{name}-sd"] = sd[name].to_numpy()
        else:
            for name in self.variables:
                columns[name] = mean[name].to_numpy()
        return pd.DataFrame(columns)

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_dataframe` as CSV, atomically.

        Floats are written as their shortest repr, which reads back to the same double;
        NaN as ``NaN``, infinities as ``inf``/``-inf``; newlines are ``\\n``.
        """
        table = self.to_dataframe()
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False, lineterminator="\n", na_rep="NaN")

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str]) -> Result:
        """Read a CSV whose first column is ``time`` and every other column one variable.

        Meant for deterministic results written by :meth:`to_csv`; the columns of an ensemble
        file (``X-mean``, ``X-sd``) come back as variables of those names.  Values are parsed
        to the exact double; stats hold ``method``/``seed`` ``None``, empty ``versions`` and
        ``options``, and ``source`` (the path).  Raises :class:`~scalebridge.errors.InputError`
        naming the file when it is missing or not such a table.
        """
        p = Path(path)
        try:
            table = pd.read_csv(p, float_precision="round_trip")
        except FileNotFoundError:
            raise InputError(f"'{p}': no such file") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise InputError(f"'{p}': not a CSV table ({exc})") from None
        if len(table.columns) == 0 or table.columns[0] != TIME:
            raise InputError(f"'{p}': the first column must be '{TIME}'")
        for column in table.columns:
            if not pd.api.types.is_numeric_dtype(table[column]):
                raise InputError(f"'{p}': column '{column}' is not numeric")
        values = {str(c): table[c].to_numpy() for c in table.columns[1:]}
        stats: dict[str, Any] = {
            "method": None,
            "options": {},
            "seed": None,
            "versions": {},
            "wall_time_s": None,
            "source": str(p),
        }
        return cls.from_arrays(table[TIME].to_numpy(), values, runs=False, stats=stats)

    def to_netcdf(self, path: str | os.PathLike[str]) -> None:
        """Write the dataset and stats to a NetCDF-4 file (h5netcdf engine), atomically.

        ``stats`` and the dataset attrs are stored as JSON text in the attrs
        ``scalebridge_stats`` and ``scalebridge_attrs`` (plus plain ``method`` and ``seed`` for
        other readers).  NumPy scalars become Python numbers and arrays are tagged with dtype
        and shape, so :meth:`from_netcdf` restores them; tuples come back as lists, non-string
        dict keys as strings, and objects JSON cannot represent as their ``repr``.
        """
        ds = self.data.copy(deep=False)
        ds.attrs = {
            "method": "" if self.stats["method"] is None else str(self.stats["method"]),
            "seed": _dumps(self.stats["seed"]),
            _FORMAT_ATTR: 1,
            _ATTRS_ATTR: _dumps(self.data.attrs),
            _STATS_ATTR: _dumps(self.stats),
        }
        with atomic_path(path) as tmp:
            ds.to_netcdf(tmp, engine="h5netcdf")

    @classmethod
    def from_netcdf(cls, path: str | os.PathLike[str]) -> Result:
        """Read a file written by :meth:`to_netcdf`, restoring data, attrs and stats.

        A NetCDF file from elsewhere is accepted if it has a 1-D ``time`` coordinate; its attrs
        are kept as they are and stats get defaults.
        """
        p = Path(path)
        if not p.is_file():
            raise InputError(f"'{p}': no such file")
        try:
            ds = xr.load_dataset(p, engine="h5netcdf", decode_times=False, decode_timedelta=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"'{p}': not a readable NetCDF file ({exc})") from None
        attrs = dict(ds.attrs)
        stats_text = attrs.pop(_STATS_ATTR, None)
        attrs_text = attrs.pop(_ATTRS_ATTR, None)
        ds.attrs = _loads(attrs_text) if attrs_text is not None else attrs
        stats = _loads(stats_text) if stats_text is not None else {"versions": {}}
        for var in ds.variables.values():
            var.encoding = {}
        ds.encoding = {}
        try:
            return cls(ds, stats)
        except OptionError as exc:
            raise InputError(f"'{p}': {exc}") from None

    def plot(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        vars: str | Iterable[str] | None = None,
        ax: Axes | None = None,
        title: str | None = None,
    ) -> Figure:
        """Plot the trajectories (the means of a result carrying moments); see
        :func:`scalebridge.plot.plot_result`."""
        from .plot import plot_result

        if vars is None and self.moment_variables():
            vars = list(self.moment_variables())
        return plot_result(self, path, vars=vars, ax=ax, title=title)


# ---------------------------------------------------------------------- helpers
def _listing(res: Result, limit: int = 10) -> str:
    names = res.variables
    shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
    return f"{len(names)} variables ({shown})" if names else "no variables"


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(np.all(a == b)) if a is not None and b is not None else a is b
    except (TypeError, ValueError):
        return False


def _split_values(
    values: Mapping[str, Any] | tuple[Sequence[str], Any], *, runs: bool, n_time: int
) -> dict[str, np.ndarray]:
    """Split ``values`` into one C-contiguous copy per variable, checking shapes."""
    shape_text = "(run, time" if runs else "(time"
    if isinstance(values, Mapping):
        out: dict[str, np.ndarray] = {}
        for name, given in values.items():
            a = np.array(given)
            if a.ndim != (2 if runs else 1) or a.shape[-1] != n_time:
                raise OptionError(
                    f"variable '{name}': expected shape {shape_text}={n_time}), got {a.shape}"
                )
            out[name] = a
        return out
    if not isinstance(values, tuple) or len(values) != 2:
        raise OptionError("values must be a dict {id: array} or a pair (ids, array)")
    names, given = values
    names = [names] if isinstance(names, str) else list(names)
    a = np.asarray(given)
    if a.ndim != (3 if runs else 2) or a.shape[-2:] != (n_time, len(names)):
        raise OptionError(
            f"values: expected shape {shape_text}={n_time}, var={len(names)}), got {a.shape}"
        )
    if len(set(names)) != len(names):
        raise OptionError(f"duplicate variable ids in {names}")
    return {name: np.ascontiguousarray(a[..., i]) for i, name in enumerate(names)}


def _jsonable(obj: Any) -> Any:
    """Convert ``obj`` to JSON-representable data (see :meth:`Result.to_netcdf`)."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "biuf":
            return {_NDARRAY_TAG: obj.tolist(), "dtype": obj.dtype.str, "shape": list(obj.shape)}
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, set | frozenset):
        return [_jsonable(v) for v in sorted(obj, key=repr)]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return repr(obj)


def _restore(obj: dict[str, Any]) -> Any:
    if set(obj) == {_NDARRAY_TAG, "dtype", "shape"}:
        return np.array(obj[_NDARRAY_TAG], dtype=np.dtype(obj["dtype"])).reshape(obj["shape"])
    return obj


def _dumps(obj: Any) -> str:
    # allow_nan: NaN and infinities are written as NaN/Infinity, which json.loads reads back.
    return json.dumps(_jsonable(obj), allow_nan=True)


def _loads(text: Any) -> Any:
    return json.loads(str(text), object_hook=_restore)
