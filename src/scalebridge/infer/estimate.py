"""Multi-start maximum-likelihood estimation of PEtab problems.

:func:`fit` minimises the PEtab objective ``nllh(x) = -log L(x)`` over the estimated
parameters ``x`` on their parameter scales (``lin``, ``log``, ``log10`` of the parameter
table), within the table's bounds transformed to those scales.  Local optimisations
(:mod:`._optimize`: scipy's trust-region reflective least squares on the residuals, or
``trust-constr`` on ``nllh`` with the Fisher information as Gauss-Newton Hessian) start from

* ``x0`` when given (start 0), then
* Latin-hypercube samples of the scaled bounds (one stratum per start in every coordinate),
  drawn in the calling process from ``numpy.random.SeedSequence(seed)``,

so the same seed gives the same starts -- and, since every start is an independent,
deterministic task and the results are kept in start order (:func:`~scalebridge.ensemble.tasks
.map_tasks`), the same results, whatever the number of workers or the backend.

Starts run in parallel on local worker processes (default: every core), a local Dask cluster
(``scheduler="processes"``) or an existing Dask cluster (an address).  The problem is pickled to
the workers; a problem that does not pickle is rebuilt in each worker from its yaml file
(``problem.source``), which the result's ``stats["problem_transport"]`` says.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .._io import atomic_path, json_safe
from ..errors import ModelError, OptionError
from ._optimize import OPTIMIZERS, CachedObjective, choose_optimizer, local_fit, scaled_bounds
from .petab_gradient import PetabGradient
from .petab_problem import PetabProblem

__all__ = ["FitResult", "StartResult", "fit"]

WATERFALL_OFFSET = 1.0  # the waterfall shows nllh - best + 1 (the best start at 1 on a log axis)


@dataclass
class StartResult:
    """One local optimisation: start ``index`` from ``x0`` to ``x`` (parameter scales)."""

    index: int
    x0: np.ndarray
    x: np.ndarray
    nllh: float
    chi2: float
    success: bool
    converged: bool
    n_evaluations: int
    seconds: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = json_safe(self.__dict__)
        return out


@dataclass
class FitResult:
    """Result of :func:`fit`. ``starts`` in start order; ``x_best``/``nllh_best`` from the start
    with the lowest objective (NaN when every start failed)."""

    parameter_ids: list[str]
    parameter_scales: list[str]
    lower: np.ndarray
    upper: np.ndarray
    starts: list[StartResult]
    optimizer: str
    notes: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def _best(self) -> StartResult | None:
        ok = [s for s in self.starts if s.success and math.isfinite(s.nllh)]
        return min(ok, key=lambda s: (s.nllh, s.index)) if ok else None

    @property
    def x_best(self) -> np.ndarray:
        b = self._best
        return b.x.copy() if b is not None else np.full(len(self.parameter_ids), np.nan)

    @property
    def nllh_best(self) -> float:
        b = self._best
        return b.nllh if b is not None else float("nan")

    @property
    def parameters_best(self) -> dict[str, float]:
        """Best parameters as linear values."""
        from .petab_problem import unscale

        return {p: unscale(float(v), s)
                for p, v, s in zip(self.parameter_ids, self.x_best, self.parameter_scales,
                                   strict=True)}  # fmt: skip

    def n_converged_to_best(self, tol: float = 0.1) -> int:
        """Starts that ended within ``tol`` of the best objective."""
        best = self.nllh_best
        return sum(1 for s in self.starts if s.success and s.nllh - best <= tol)

    def table(self) -> pd.DataFrame:
        """One row per start, sorted by ``nllh`` (failed starts last): start, nllh, delta
        (nllh - best), chi2, success, converged, evaluations, seconds, message, then the final
        parameters (parameter scales)."""
        best = self.nllh_best
        rows = []
        for s in self.starts:
            row: dict[str, Any] = {
                "start": s.index, "nllh": s.nllh, "delta": s.nllh - best, "chi2": s.chi2,
                "success": s.success, "converged": s.converged,
                "evaluations": s.n_evaluations, "seconds": s.seconds, "message": s.message,
            }  # fmt: skip
            row.update({p: float(v) for p, v in zip(self.parameter_ids, s.x, strict=True)})
            rows.append(row)
        df = pd.DataFrame(rows)
        if df.empty:
            return df
        df["_failed"] = ~df["success"]
        df = df.sort_values(["_failed", "nllh", "start"], na_position="last", kind="stable")
        return df.drop(columns="_failed").reset_index(drop=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (non-finite numbers become null)."""
        out: dict[str, Any] = json_safe({
            "parameter_ids": self.parameter_ids,
            "parameter_scales": self.parameter_scales,
            "lower": self.lower, "upper": self.upper,
            "optimizer": self.optimizer,
            "notes": self.notes,
            "x_best": self.x_best,
            "parameters_best": self.parameters_best,
            "nllh_best": self.nllh_best,
            "n_starts": len(self.starts),
            "n_converged_to_best": self.n_converged_to_best(),
            "starts": [s.to_dict() for s in self.starts],
            "stats": self.stats,
        })  # fmt: skip
        return out

    def waterfall(self, path: str | os.PathLike[str], *, tol: float = 0.1) -> None:
        """Waterfall plot (PNG, PDF, SVG by suffix, written atomically): the starts sorted by
        objective, ``nllh - best + 1`` on a log axis; starts within ``tol`` of the best
        marked; failed starts counted in the title."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure

        ok = sorted((s for s in self.starts if s.success and math.isfinite(s.nllh)),
                    key=lambda s: (s.nllh, s.index))  # fmt: skip
        best = self.nllh_best
        fig = Figure(figsize=(6.0, 4.0))
        ax = fig.add_subplot(1, 1, 1)
        if ok:
            y = np.array([s.nllh - best + WATERFALL_OFFSET for s in ok])
            rank = np.arange(1, len(ok) + 1)
            near = np.array([s.nllh - best <= tol for s in ok])
            ax.plot(rank, y, "-", color="0.6", lw=1)
            ax.plot(rank[~near], y[~near], "o", color="tab:blue", label="other local optimum")
            ax.plot(rank[near], y[near], "o", color="tab:red",
                    label=f"within {tol:g} of best ({int(near.sum())})")  # fmt: skip
            ax.set_yscale("log")
            ax.legend(loc="upper left", fontsize=8)
        failed = len(self.starts) - len(ok)
        ax.set_xlabel("start (sorted by objective)")
        ax.set_ylabel(f"nllh - best + {WATERFALL_OFFSET:g}")
        title = f"{len(self.starts)} starts, best nllh {best:.6g}"
        ax.set_title(title + (f", {failed} failed" if failed else ""), fontsize=10)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp)


# ------------------------------------------------------------------ workers


@dataclass(frozen=True)
class _Context:
    """What every worker needs: the problem (or how to rebuild it) and the settings."""

    problem: PetabProblem | None
    source: str | None
    rtol: float
    atol: float
    objective: PetabGradient | None
    lower: np.ndarray
    upper: np.ndarray
    optimizer: str
    max_nfev: int | None


def _prepare(ctx: _Context) -> tuple[PetabGradient, _Context]:
    """Per worker: the objective (shared by every task the worker runs, possibly at the same
    time on threads); each task wraps it in its own :class:`CachedObjective`, whose cache and
    best-point record are per task."""
    if ctx.objective is not None:
        grad = ctx.objective
    else:
        pb = ctx.problem
        if pb is None:
            from .petab_problem import load_petab

            assert ctx.source is not None
            pb = load_petab(ctx.source, rtol=ctx.rtol, atol=ctx.atol)
        grad = PetabGradient(pb)
    return grad, ctx


def _run_start(state: tuple[PetabGradient, _Context], task: tuple[int, np.ndarray]) -> StartResult:
    grad, ctx = state
    obj = CachedObjective(grad)
    index, x0 = task
    r = local_fit(obj, x0, ctx.lower, ctx.upper, optimizer=ctx.optimizer, max_nfev=ctx.max_nfev)
    return StartResult(index=index, x0=np.asarray(x0, dtype=np.float64), x=r.x, nllh=r.nllh,
                       chi2=r.chi2, success=r.success, converged=r.converged,
                       n_evaluations=r.n_evaluations, seconds=r.seconds,
                       message=r.message)  # fmt: skip


def _transport(problem: PetabProblem, objective: PetabGradient | None, remote: bool) -> tuple[
    PetabProblem | None, PetabGradient | None, str]:  # fmt: skip
    """How the problem reaches the workers: as itself (in-process or pickled) or rebuilt from
    its yaml file when it does not pickle."""
    if not remote:
        return problem, objective, "in-process"
    try:
        pickle.dumps(problem)
        if objective is not None:
            pickle.dumps(objective)
        return problem, objective, "pickled"
    except (pickle.PicklingError, TypeError, AttributeError) as e:
        if problem.source is None:
            raise OptionError(
                f"the PEtab problem does not pickle ({e}) and has no yaml file to rebuild it "
                "from in worker processes: use workers=1"
            ) from None
        return None, None, f"rebuilt from {problem.source} in each worker (does not pickle: {e})"


def latin_hypercube(lower: np.ndarray, upper: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` Latin-hypercube points in ``[lower, upper]`` (finite bounds) from
    ``numpy.random.SeedSequence(seed)``: each coordinate has exactly one point in each of
    its ``n`` equal strata, at a uniform position within the stratum."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    d = lower.size
    u = np.empty((n, d))
    for j in range(d):
        u[:, j] = (rng.permutation(n) + rng.random(n)) / n
    out: np.ndarray = lower + u * (upper - lower)
    return out


def fit(
    problem: PetabProblem,
    *,
    starts: int = 10,
    seed: int = 0,
    x0: np.ndarray | Sequence[float] | None = None,
    optimizer: str = "least-squares",
    workers: int | None = None,
    scheduler: Any = None,
    progress: bool | None = None,
    max_nfev: int | None = None,
    objective: PetabGradient | None = None,
) -> FitResult:
    """Multi-start local optimisation of ``problem`` (module docstring).

    ``starts``: the number of local optimisations, ``x0`` (parameter scales, clipped into the
    bounds) being the first when given; ``seed``: the Latin-hypercube starts;
    ``optimizer``: ``"least-squares"`` (switched to ``"trust-region"`` automatically, with a note,
    when the noise is Laplace or a noise parameter depends on ``x``) or ``"trust-region"``;
    ``max_nfev``: per start, the objective evaluations of least squares / the iterations of
    trust-region (default: scipy's); ``workers``/``scheduler``/``progress``: see
    :func:`scalebridge.ensemble.tasks.map_tasks`; ``objective``: a :class:`PetabGradient` of
    ``problem`` to reuse.

    A start whose simulation fails is recorded as failed (its message), not raised.
    """
    from ..ensemble.seeding import root_seed
    from ..ensemble.tasks import map_tasks

    if isinstance(starts, bool) or not isinstance(starts, int) or starts < 1:
        raise OptionError(f"starts must be a positive integer, got {starts!r}")
    seed = root_seed(seed)
    if max_nfev is not None and (isinstance(max_nfev, bool) or int(max_nfev) < 1):
        raise OptionError(f"max_nfev must be a positive integer, got {max_nfev!r}")
    ids = list(problem.estimated_ids)
    if not ids:
        raise ModelError("no estimated parameters (estimate = 1) in the parameter table",
                         source=problem.source)  # fmt: skip
    lower, upper = scaled_bounds(problem)
    for pid, lo, hi in zip(ids, lower, upper, strict=True):
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ModelError(
                f"estimated parameter needs finite bounds with lowerBound < upperBound on its "
                f"parameter scale (got [{lo}, {hi}])", element=pid, source=problem._pfile,
            )  # fmt: skip
    grad = objective if objective is not None else PetabGradient(problem)
    # Decide the optimizer once, from the structure seen at the nominal point.
    x_ref = problem.x_nominal if x0 is None else np.asarray(x0, dtype=np.float64)
    if x_ref.shape != (len(ids),):
        raise OptionError(f"x0 must have {len(ids)} values (parameter scales), got {x_ref.shape}")
    obj = CachedObjective(grad)
    ms = obj.at(np.clip(x_ref, lower, upper))
    if ms is None:
        ms = obj.at(np.clip(problem.x_nominal, lower, upper))
    notes: list[str] = []
    if ms is None:
        if optimizer not in OPTIMIZERS:
            raise OptionError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {optimizer!r}"
            )
        used = "trust-region"  # the likelihood itself: right for every noise model
        notes.append(f"could not evaluate the problem at x0 or the nominal point to check the "
                     f"noise model ({obj.last_error}): used trust-region")  # fmt: skip
    else:
        used, note = choose_optimizer(ms, optimizer)
        if note:
            notes.append(note)
    n_lhs = starts - (1 if x0 is not None else 0)
    points = [np.clip(x_ref, lower, upper)] if x0 is not None else []
    if n_lhs > 0:
        points += list(latin_hypercube(lower, upper, n_lhs, seed))
    tasks = list(enumerate(points))
    n_workers = workers
    local_serial = scheduler is None and (n_workers == 1 or len(tasks) == 1)
    remote = not local_serial and scheduler != "threads"
    pb_t, obj_t, how = _transport(problem, objective, remote)
    if local_serial:
        obj_t = grad  # reuse the objective built above in this process
    ctx = _Context(problem=pb_t, source=problem.source, rtol=problem.rtol, atol=problem.atol,
                   objective=obj_t, lower=lower, upper=upper, optimizer=used,
                   max_nfev=max_nfev)  # fmt: skip
    run = map_tasks(_run_start, tasks, prepare=_prepare, context=ctx, workers=workers,
                    scheduler=scheduler, progress=progress, label="starts")  # fmt: skip
    results = [r for r in run.results if r is not None]
    stats = dict(run.stats)
    stats.update({"seed": seed, "starts": starts, "x0_given": x0 is not None,
                  "sampling": "latin-hypercube of the scaled bounds, SeedSequence(seed)",
                  "max_nfev": max_nfev, "problem_transport": how,
                  "requested_optimizer": optimizer})  # fmt: skip
    return FitResult(parameter_ids=ids,
                     parameter_scales=[problem.parameter_scales[p] for p in ids],
                     lower=lower, upper=upper, starts=results, optimizer=used, notes=notes,
                     stats=stats)  # fmt: skip
