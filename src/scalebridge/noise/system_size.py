r"""System size and the continuum limit: N*, the least number of cells for a deterministic
description.

Definition
----------
Take ``N`` cells, each running the network from the same initial state (molecule counts), and
their average ``xbar_N(t) = (1/N) sum_k X_k(t)``.  Its relative fluctuation about its mean is

    r_N(t) = sd(xbar_N(t)) / |E xbar_N(t)|.

``N*(eps, window)`` is the least ``N`` with ``r_N(t) <= eps`` for every monitored species and
every output time ``t`` of the window ``[t_start, t_end]`` (the sup over the output grid; the
initial time, where a deterministic start has ``r = 0``, is left out by default).  For
independent cells ``sd(xbar_N) = sd_1 / sqrt(N)`` exactly, so

    N* = ceil( max_(i, t) ( sd_1,i(t) / m_i(t) )^2 / eps^2 ).

The LNA value takes ``sd_1`` and ``m`` from the time-dependent LNA started from the initial
state (:mod:`scalebridge.wellmixed.lna`: ``m`` is the solution of the rate equations, ``sd_1^2``
the diagonal of ``Sigma(t)``).  A species whose mean vanishes somewhere in the window has no
finite relative fluctuation there and cannot be monitored (it is left out, with a note).  Note
that a species starting from zero copies has a large relative fluctuation shortly after the
start: choose ``t_start`` for the part of the time course that matters.

The CLE for N cells and the check with ensembles
------------------------------------------------
Scaling the counts per unit amount by ``N`` (``counts_per_amount = N x`` the model's) turns the
stochastic model of one cell into that of a system ``N`` times larger: a mass-action propensity
becomes ``a_j^(N)(x) = N a_j(x / N)`` (its constant carries ``counts_per_amount^(1 - order)``),
and any other law ``N s rate(x / (N s))`` likewise.  In concentrations ``c = x / (N Omega)`` its
CLE is exactly

    dc/dt = S f(c) + N^(-1/2) Omega^(-1/2) S diag(sqrt(f(c))) xi(t),

the CLE for N cells of the issue (``f`` the rate laws).  Its per-cell count ``X^(N) / N`` has
the LNA mean ``m`` and covariance ``Sigma / N`` -- the same as the average of ``N`` independent
cells (a sum of independent processes with linear-noise mean ``m`` and covariance ``Sigma`` has
mean ``N m`` and covariance ``N Sigma``), so both share ``r_N = r_1 / sqrt(N)`` to linear-noise
order; they differ only in the O(1/(N Omega)) versus O(1/Omega) corrections to the mean.  The
check runs a CLE ensemble (:mod:`scalebridge.wellmixed.cle`, ``runs`` paths, ``seed``) of the
N-cell system at ``N_ref = N*_LNA``, estimates ``r_(N_ref)(t)`` from the sample sd and mean,
and converts it to ``N*_CLE = ceil(N_ref max r_(N_ref)^2 / eps^2)``; the report gives both and
their relative difference.  The sample variance of ``R`` Gaussian values has relative standard
error ``sqrt(2 / (R - 1))``; the sup over the window adds a small upward bias.

How far the mean is from the rate equations
-------------------------------------------
For nonlinear propensities the mean of the stochastic process is not the ODE solution.  The
report measures it on a single cell (``N = 1``, where the gap is largest) with an ensemble of
``mean_method`` (exact ``"ssa"`` by default, or ``"cle"``): per species the largest
``|mean(t) - m(t)|`` over the window, relative to ``m(t)``, with the 95 % sampling half-width
``1.96 sd / sqrt(R)`` of the ensemble mean, so a gap larger than its half-width is real.  The
same single-cell ensemble gives the independent-cells estimate
``N*_cells = ceil(max (sd_1 / mean_1)^2 / eps^2)`` -- exact up to sampling, without the LNA.
The gap of the N-cell CLE at ``N_ref`` is also reported: it shrinks like ``1 / N``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._io import json_safe
from ..errors import OptionError
from ..model.network import ReactionNetwork
from ..problem import TimeCourse, time_grid
from ..wellmixed.cle import CLE
from ..wellmixed.lna import LNA

__all__ = ["SystemSizeReport", "cells_cle", "least_cells"]

Z95 = 1.959963984540054


def cells_cle(n_cells: int, counts_per_amount: float | None = None, **options: Any) -> CLE:
    """The CLE method for ``n_cells`` cells (module docstring): ``counts_per_amount`` scaled by
    ``n_cells``.  Its counts are those of the whole N-cell system; divide by ``n_cells`` for the
    per-cell average."""
    if not (isinstance(n_cells, int | np.integer) and n_cells >= 1):
        raise OptionError(f"the number of cells must be a positive integer, got {n_cells!r}")
    base = 1.0 if counts_per_amount is None else float(counts_per_amount)
    return CLE(counts_per_amount=base * int(n_cells), **options)


@dataclass(frozen=True)
class SystemSizeReport:
    """N* from the LNA and its check with ensembles (module docstring).

    ``ratio_lna[s]``: ``sd_1(t) / m(t)`` of species ``s`` at ``times`` (NaN outside the window).
    ``cle``: the N-cell CLE check (``None`` when not run); ``single_cell``: the single-cell
    ensemble (mean gap and ``N*_cells``; ``None`` when not run).
    """

    epsilon: float
    t_start: float
    t_end: float
    times: np.ndarray
    species: tuple[str, ...]
    n_star_lna: int
    worst_species: str
    worst_time: float
    r1_max: float
    ratio_lna: dict[str, np.ndarray]
    skipped: dict[str, str] = field(default_factory=dict)
    cle: dict[str, Any] | None = None
    single_cell: dict[str, Any] | None = None

    @property
    def n_star_cle(self) -> int | None:
        return None if self.cle is None else int(self.cle["n_star"])

    @property
    def relative_difference(self) -> float | None:
        """``|N*_CLE - N*_LNA| / N*_LNA``."""
        if self.cle is None:
            return None
        return abs(self.cle["n_star"] - self.n_star_lna) / self.n_star_lna

    def to_dict(self) -> dict[str, Any]:
        return json_safe({
            "epsilon": self.epsilon,
            "window": [self.t_start, self.t_end],
            "species": list(self.species),
            "n_star_lna": self.n_star_lna,
            "worst": {"species": self.worst_species, "time": self.worst_time,
                      "relative_sd_one_cell": self.r1_max},
            "n_star_cle": self.n_star_cle,
            "relative_difference": self.relative_difference,
            "cle": self.cle,
            "single_cell": self.single_cell,
            "skipped": dict(self.skipped),
            "times": [float(t) for t in self.times],
            "relative_sd_one_cell": {s: [float(v) for v in r] for s, r in self.ratio_lna.items()},
        })  # fmt: skip

    def summary(self) -> str:
        lines = [
            f"least number of cells N* for relative fluctuation <= {self.epsilon:g} over "
            f"t in [{self.t_start:g}, {self.t_end:g}] (species: {', '.join(self.species)})",
            f"  LNA: N* = {self.n_star_lna}  (worst: {self.worst_species} at t = "
            f"{self.worst_time:g}, one-cell sd/mean = {self.r1_max:.4g})",
        ]
        if self.cle is not None:
            c = self.cle
            lines.append(
                f"  CLE for N = {c['n_cells']} cells ({c['runs']} paths, seed {c['seed']}, "
                f"{c['scheme']}, dt = {c['dt']:g}): max sd/mean = {c['r_max']:.4g} -> "
                f"N* = {c['n_star']}  (relative difference to the LNA "
                f"{100 * (self.relative_difference or 0.0):.2f} %, sampling s.e. of N* about "
                f"{100 * c['n_star_relative_se']:.1f} %)"
            )
            for s, gap in c["mean_gap"].items():
                lines.append(
                    f"    per-cell mean of {s} vs rate equations: max relative gap "
                    f"{gap['max_relative']:.3g} (95 % half-width {gap['half_width_relative']:.2g})"
                )
        if self.single_cell is not None:
            c = self.single_cell
            lines.append(
                f"  one cell, {c['method']} ({c['runs']} runs): independent-cells N* = "
                f"{c['n_star']}"
            )
            for s, gap in c["mean_gap"].items():
                lines.append(
                    f"    mean of {s} vs rate equations: max gap {gap['max_abs']:.4g} molecules "
                    f"({100 * gap['max_relative']:.3g} %) at t = {gap['time']:g}; 95 % "
                    f"half-width {gap['half_width']:.3g}"
                )
        for s, why in self.skipped.items():
            lines.append(f"  not monitored: {s} ({why})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def least_cells(
    net: ReactionNetwork,
    epsilon: float,
    t_end: float,
    *,
    t_start: float | None = None,
    n_points: int = 51,
    times: Iterable[float] | None = None,
    species: Iterable[str] | None = None,
    params: Mapping[str, float] | None = None,
    counts_per_amount: float | None = None,
    confirm: bool = True,
    runs: int = 2000,
    seed: int = 1,
    dt: float | None = None,
    scheme: str = "weak2",
    mean_method: str | None = "ssa",
    workers: int | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-8,
) -> SystemSizeReport:
    """N* for ``net`` (module docstring): relative fluctuation ``<= epsilon`` over the output
    times in ``[t_start, t_end]``.

    The output grid is ``times`` or ``n_points`` equally spaced times from 0 to ``t_end``;
    ``t_start`` defaults to the first output time after the start.  ``species``: those to
    monitor (default: every species the reactions change).  ``confirm``: run the N-cell CLE
    check (``runs`` paths, ``seed``, step ``dt`` -- default a hundredth of the output interval --
    and ``scheme``); ``mean_method``: ``"ssa"`` or ``"cle"`` for the single-cell ensemble (mean
    gap and independent-cells N*), or None to skip it.
    """
    from ..api import simulate

    if not (isinstance(epsilon, int | float) and math.isfinite(epsilon) and epsilon > 0):
        raise OptionError(f"epsilon must be a positive number, got {epsilon!r}")
    grid = (np.asarray(list(times), dtype=np.float64) if times is not None
            else time_grid(float(t_end), n_points))  # fmt: skip
    problem = TimeCourse(net, grid, values=dict(params or {}))
    res = LNA(rtol=rtol, atol=atol, counts_per_amount=counts_per_amount).solve(problem)
    names = [str(n) for n in res.data["species-i"].values]
    mean = np.stack([res.data[n].values for n in names], axis=1)
    sd = np.stack([res.data[f"{n}-sd"].values for n in names], axis=1)
    t_lo = float(grid[1]) if t_start is None and grid.size > 1 else float(t_start or grid[0])
    t_hi = float(grid[-1]) if t_end is None else float(t_end)
    window = (grid >= t_lo - 1e-12 * abs(t_lo)) & (grid <= t_hi + 1e-12 * abs(t_hi))
    if not window.any():
        raise OptionError(f"no output time in the window [{t_lo:g}, {t_hi:g}]")
    changed = {s.id for s in net.species if net.reaction_changes(s.id)}
    wanted = list(species) if species is not None else [n for n in names if n in changed]
    skipped: dict[str, str] = {}
    monitored: list[int] = []
    for s in wanted:
        if s not in names:
            raise OptionError(f"no species '{s}' in the model")
        i = names.index(s)
        if s not in changed:
            skipped[s] = "no reaction changes it"
        elif np.any(np.abs(mean[window, i]) <= 0):
            skipped[s] = "its mean is zero somewhere in the window"
        else:
            monitored.append(i)
    if not monitored:
        raise OptionError("no species to monitor (every candidate has a zero mean or is constant)")
    ratio = np.full_like(mean, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio[window] = sd[window] / np.abs(mean[window])
    sub = ratio[:, monitored]
    k_t, k_s = np.unravel_index(int(np.nanargmax(sub)), sub.shape)
    r1 = float(sub[k_t, k_s])
    n_lna = _n_star(r1, epsilon)
    report: dict[str, Any] = {
        "epsilon": float(epsilon),
        "t_start": t_lo,
        "t_end": t_hi,
        "times": grid,
        "species": tuple(names[i] for i in monitored),
        "n_star_lna": n_lna,
        "worst_species": names[monitored[k_s]],
        "worst_time": float(grid[k_t]),
        "r1_max": r1,
        "ratio_lna": {names[i]: ratio[:, i] for i in monitored},
        "skipped": skipped,
    }
    mon_names = [names[i] for i in monitored]
    if confirm:
        method = cells_cle(n_lna, counts_per_amount, dt=dt or float(np.min(np.diff(grid))) / 100,
                           scheme=scheme)  # fmt: skip
        ens = simulate(net, method.name, times=grid, runs=runs, seed=seed, workers=workers,
                       vars=mon_names, params=params, **method.options())  # fmt: skip
        X = np.stack([ens.data[s].transpose("run", "time").values for s in mon_names], axis=2)
        per_cell = X / n_lna
        m_hat = per_cell.mean(axis=0)
        s_hat = per_cell.std(axis=0, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            r_hat = np.where(window[:, None], s_hat / np.abs(m_hat), np.nan)
        r_max = float(np.nanmax(r_hat))
        report["cle"] = {
            "n_cells": n_lna,
            "runs": runs,
            "seed": seed,
            "scheme": scheme,
            "dt": method.step_size(grid),
            "r_max": r_max,
            "n_star": _n_star(r_max * math.sqrt(n_lna), epsilon),
            "n_star_relative_se": math.sqrt(2.0 / (runs - 1)),
            "mean_gap": _mean_gap(per_cell, mean[:, monitored], window, grid, mon_names),
        }
    if mean_method is not None:
        if mean_method not in ("ssa", "cle"):
            raise OptionError(f"mean_method must be 'ssa', 'cle' or None, not {mean_method!r}")
        opts: dict[str, Any] = {"counts_per_amount": counts_per_amount}
        if mean_method == "cle":
            opts.update(dt=dt or float(np.min(np.diff(grid))) / 100, scheme=scheme)
        one = simulate(net, mean_method, times=grid, runs=runs, seed=seed + 1, workers=workers,
                       vars=mon_names, params=params, **opts)  # fmt: skip
        X1 = np.stack([one.data[s].transpose("run", "time").values for s in mon_names], axis=2)
        m1 = X1.mean(axis=0)
        s1 = X1.std(axis=0, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            r1_hat = np.where(window[:, None], s1 / np.abs(m1), np.nan)
        report["single_cell"] = {
            "method": mean_method,
            "runs": runs,
            "seed": seed + 1,
            "r_max": float(np.nanmax(r1_hat)),
            "n_star": _n_star(float(np.nanmax(r1_hat)), epsilon),
            "mean_gap": _mean_gap(X1, mean[:, monitored], window, grid, mon_names),
        }
    return SystemSizeReport(**report)


def _n_star(r1: float, epsilon: float) -> int:
    """The least N with r1 / sqrt(N) <= epsilon."""
    if not math.isfinite(r1):
        raise OptionError("the relative fluctuation is not finite in the window")
    q = (r1 / epsilon) ** 2
    n = max(1, math.ceil(q * (1 - 1e-12)))
    return n


def _mean_gap(X: np.ndarray, ode: np.ndarray, window: np.ndarray, grid: np.ndarray,
              names: list[str]) -> dict[str, dict[str, float]]:  # fmt: skip
    """Per species: the largest |ensemble mean - ODE| over the window (absolute, relative to
    the ODE value), where, and the 95 % half-width of the ensemble mean there."""
    R = X.shape[0]
    m = X.mean(axis=0)
    half = Z95 * X.std(axis=0, ddof=1) / math.sqrt(R)
    out: dict[str, dict[str, float]] = {}
    for c, s in enumerate(names):
        gap = np.where(window, np.abs(m[:, c] - ode[:, c]), -1.0)
        k = int(np.argmax(gap))
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(window, np.abs(m[:, c] - ode[:, c]) / np.abs(ode[:, c]), -1.0)
        kr = int(np.argmax(rel))
        out[s] = {
            "max_abs": float(gap[k]),
            "time": float(grid[k]),
            "half_width": float(half[k, c]),
            "max_relative": float(rel[kr]),
            "half_width_relative": float(half[kr, c] / abs(ode[kr, c])),
            "time_relative": float(grid[kr]),
        }
    return out
