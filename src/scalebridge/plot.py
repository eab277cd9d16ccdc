"""Figures of results.

Figures are built as :class:`matplotlib.figure.Figure` objects on the Agg canvas, without pyplot,
so plotting never touches global state or needs a display; a returned figure still shows in a
notebook.  Files are written atomically (:func:`scalebridge._io.atomic_path`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure, SubFigure

from ._io import atomic_path
from .errors import OptionError
from .results import RUN, TIME

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from .results import Result

__all__ = ["plot_result"]

_MAX_LEGEND = 20  # beyond this many variables a legend hides the plot


def plot_result(
    res: Result,
    path: str | os.PathLike[str] | None = None,
    *,
    vars: str | Iterable[str] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    runs: int = 0,
) -> Figure:
    """Plot the time series of ``res`` against time and return the figure.

    A single trajectory (no ``"run"`` dimension, or one run) is drawn as one line per variable.
    An ensemble (R > 1 runs) is drawn as the mean over runs with a shaded band mean +- sd (the
    sample sd, ddof = 1; see :meth:`Result.sd`); ``runs`` > 0 adds the first ``runs``
    trajectories as thin lines in the variable's colour.

    ``vars`` selects variables (default all; an unknown id raises
    :class:`~scalebridge.errors.OptionError`).  With ``ax`` the plot is drawn into that axes and
    its figure is returned; otherwise a new figure is made.  With ``path`` the figure is saved
    atomically in the format given by the suffix (``.png`` when there is none).
    """
    sel = res if vars is None else res.sel_vars(vars)
    for name in sel.variables:
        if not set(sel[name].dims) <= {RUN, TIME}:
            raise OptionError(f"variable '{name}' has dims {sel[name].dims}; only time series plot")
    if runs < 0:
        raise OptionError(f"runs must be >= 0, got {runs}")
    if ax is None:
        fig = Figure(figsize=(7.0, 4.5), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
    else:
        fig = _root_figure(ax)

    t = sel.time
    n_runs = sel.n_runs
    ensemble = n_runs is not None and n_runs > 1
    mean = sel.mean()
    sd = sel.sd() if ensemble else None
    for name in sel.variables:
        m = mean[name].to_numpy()
        (line,) = ax.plot(t, m, label=name, linewidth=1.5)
        colour = line.get_color()
        if sd is not None and n_runs is not None and RUN in sel[name].dims:
            s = sd[name].to_numpy()
            ax.fill_between(t, m - s, m + s, color=colour, alpha=0.2, linewidth=0)
            for r in range(min(runs, n_runs)):
                traj = sel[name].isel({RUN: r}).to_numpy()
                ax.plot(t, traj, color=colour, linewidth=0.5, alpha=0.5)

    ax.set_xlabel(TIME)
    units = {sel[name].attrs.get("units") for name in sel.variables}
    ax.set_ylabel(f"value [{units.pop()}]" if len(units) == 1 and None not in units else "value")
    if title is None:
        method = sel.stats.get("method")
        title = f"{method}" if method else ""
        if ensemble:
            title += f" ({n_runs} runs, mean \u00b1 sd)"
    ax.set_title(title.strip())
    if 0 < len(sel.variables) <= _MAX_LEGEND:
        ax.legend(loc="best", fontsize="small")

    if path is not None:
        _save(fig, path)
    return fig


def _root_figure(ax: Axes) -> Figure:
    fig = ax.get_figure()
    while isinstance(fig, SubFigure):
        fig = fig.figure
    if not isinstance(fig, Figure):
        raise OptionError("the axes given to plot belong to no figure")
    return fig


def _save(fig: Figure, path: str | os.PathLike[str]) -> None:
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise OptionError(
            f"cannot write '{path}': unknown figure format '{fmt}' "
            f"(use one of {', '.join(sorted(supported))})"
        )
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt)
