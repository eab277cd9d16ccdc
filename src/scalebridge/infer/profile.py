"""Profile likelihoods of PEtab problems, with confidence intervals and a quality check.

The profile of parameter ``i`` (on its parameter scale) is

    PL_i(v) = min { nllh(x) : x_i = v, lower <= x <= upper },

and the likelihood-ratio confidence interval at level ``alpha`` is the set where
``PL_i(v) <= nllh_opt + chi2.ppf(alpha, 1) / 2`` (1.92 for alpha = 0.95), since
``2 (PL_i(v) - nllh_opt)`` is asymptotically chi-squared with one degree of freedom.  For a
linear-Gaussian model the profile is exactly ``(v - v_hat)^2 / (2 var_i)`` and the interval is
``v_hat +/- 1.96 sd_i``, the Wald interval.

Tracing (:func:`profile_likelihood`): from ``x_opt`` each parameter is stepped down and up
(two independent branches, run in parallel through
:func:`~scalebridge.ensemble.tasks.map_tasks`).  The first step comes from the Fisher
information (``h = sqrt(2 * target * var_i)``, the step after which a quadratic profile rises
by ``target``); afterwards the step is scaled by ``sqrt(target / |change|)`` (at most halved or
doubled), and a step whose objective changes by more than :data:`MAX_FRACTION` of the threshold
is retried with half the step.  ``target`` is :data:`TARGET_FRACTION` of the threshold.  At
every point the other parameters are re-optimised (:mod:`._optimize`), warm-started from the
previous point extrapolated linearly along the path.  A branch ends when the profile crosses
the threshold (the crossing is then refined by Illinois regula falsi on re-optimised points,
to ``|PL - threshold| <`` :data:`CROSSING_TOL`), when it reaches the parameter's bound, or
after ``max_steps`` accepted steps.  A branch that ends below the threshold gives an infinite
end of the interval (``-inf`` / ``+inf``).

Quality flags (:attr:`Profile.flags`; a profile is ``reliable`` when it has none):

* ``"non-smooth"``: a jump (a change above :data:`MAX_FRACTION` of the threshold between
  points closer than the minimum step) or a sawtooth (the slope changes sign more than once
  with changes above 5 % of the threshold: a smooth profile falls, then rises);
* ``"optimizer-failures"``: an inner optimisation failed or stopped before converging;
* ``"hits-lower-bound"`` / ``"hits-upper-bound"``: the profile reaches a bound below the
  threshold (the interval is open on that side);
* ``"better-optimum-found"``: a profile point lies more than :data:`BETTER_TOL` below
  ``nllh_opt``: ``x_opt`` was not the optimum, and the intervals are relative to a wrong
  reference;
* ``"max-steps"``: a branch stopped after ``max_steps`` steps below the threshold.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .._io import atomic_path, json_safe
from ..errors import ModelError, OptionError
from ._optimize import CachedObjective, choose_optimizer, local_fit, scaled_bounds
from .petab_gradient import PetabGradient
from .petab_problem import PetabProblem, unscale

__all__ = ["FLAGS", "Profile", "ProfileResult", "profile_likelihood"]

FLAGS = (
    "non-smooth",
    "optimizer-failures",
    "hits-lower-bound",
    "hits-upper-bound",
    "better-optimum-found",
    "max-steps",
)
TARGET_FRACTION = 0.2  # aimed change of the objective per step, as a fraction of the threshold
MAX_FRACTION = 0.6  # a larger change is retried with half the step
MIN_STEP_FRACTION = 1e-6  # of the bound range: the smallest step
BETTER_TOL = 0.01
CROSSING_TOL = 1e-5
SAWTOOTH_FRACTION = 0.05
MAX_CONSECUTIVE_FAILURES = 6


@dataclass
class Profile:
    """The profile of one parameter: ``values`` (ascending, parameter scale), ``nllh`` (the
    profile), ``x`` (the re-optimised parameter vectors, one row per value)."""

    parameter: str
    scale: str
    value_opt: float
    nllh_opt: float
    threshold: float
    values: np.ndarray
    nllh: np.ndarray
    x: np.ndarray
    ci: tuple[float, float]
    flags: list[str]
    n_failures: int = 0

    @property
    def identifiable(self) -> bool:
        """Both ends of the confidence interval finite."""
        return bool(np.isfinite(self.ci[0]) and np.isfinite(self.ci[1]))

    @property
    def reliable(self) -> bool:
        return not self.flags

    @property
    def ci_linear(self) -> tuple[float, float]:
        """The interval as linear values (``0`` for ``-inf`` on a log scale)."""

        def lin(v: float) -> float:
            if math.isinf(v):
                return 0.0 if (v < 0 and self.scale != "lin") else v
            return unscale(v, self.scale)

        return lin(self.ci[0]), lin(self.ci[1])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = json_safe({
            "parameter": self.parameter, "scale": self.scale, "value_opt": self.value_opt,
            "nllh_opt": self.nllh_opt, "threshold": self.threshold,
            "ci": list(self.ci), "ci_linear": list(self.ci_linear),
            "ci_unbounded": [bool(np.isinf(self.ci[0])), bool(np.isinf(self.ci[1]))],
            "identifiable": self.identifiable, "reliable": self.reliable, "flags": self.flags,
            "n_failures": self.n_failures, "values": self.values, "nllh": self.nllh,
        })  # fmt: skip
        return out


@dataclass
class ProfileResult:
    """Profiles of several parameters about ``x_opt`` (parameter scales)."""

    parameter_ids: list[str]
    profiles: dict[str, Profile]
    x_opt: np.ndarray
    nllh_opt: float
    alpha: float
    optimizer: str
    notes: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def delta(self) -> float:
        """``chi2.ppf(alpha, 1) / 2``: the rise of the threshold above ``nllh_opt``."""
        from scipy.stats import chi2

        return float(chi2.ppf(self.alpha, 1) / 2.0)

    def table(self) -> pd.DataFrame:
        """One row per profiled parameter: scale, optimum, interval on the parameter scale and
        linear, identifiable, reliable, flags, points."""
        rows = []
        for p in self.profiles.values():
            lo, hi = p.ci_linear
            rows.append({
                "parameter": p.parameter, "scale": p.scale, "value_opt": p.value_opt,
                "ci_lower": p.ci[0], "ci_upper": p.ci[1], "ci_lower_linear": lo,
                "ci_upper_linear": hi, "identifiable": p.identifiable, "reliable": p.reliable,
                "flags": ",".join(p.flags), "points": int(p.values.size),
            })  # fmt: skip
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (infinite interval ends become null; ``ci_unbounded`` says which)."""
        out: dict[str, Any] = json_safe({
            "alpha": self.alpha, "nllh_opt": self.nllh_opt,
            "threshold": self.nllh_opt + self.delta, "optimizer": self.optimizer,
            "notes": self.notes, "x_opt": self.x_opt, "parameter_ids": self.parameter_ids,
            "profiles": {k: p.to_dict() for k, p in self.profiles.items()},
            "stats": self.stats,
        })  # fmt: skip
        return out

    def plot(self, path: str | os.PathLike[str]) -> None:
        """One panel per parameter: ``PL - nllh_opt`` against the parameter (its scale), the
        threshold, the interval (dashed) and the flags of unreliable profiles (in red).
        Written atomically; the format follows the suffix."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure

        profs = list(self.profiles.values())
        n = max(1, len(profs))
        cols = min(3, n)
        rows = math.ceil(n / cols)
        fig = Figure(figsize=(3.6 * cols, 2.9 * rows))
        for k, p in enumerate(profs):
            ax = fig.add_subplot(rows, cols, k + 1)
            ax.plot(p.values, p.nllh - self.nllh_opt, ".-", color="tab:blue", ms=4)
            ax.axhline(self.delta, color="0.4", ls=":", lw=1)
            for end in p.ci:
                if np.isfinite(end):
                    ax.axvline(end, color="tab:green", ls="--", lw=1)
            ax.axvline(p.value_opt, color="0.7", lw=0.8)
            label = p.parameter if p.scale == "lin" else f"{p.scale}({p.parameter})"
            ax.set_xlabel(label)
            if k % cols == 0:
                ax.set_ylabel("nllh - optimum")
            if p.flags:
                ax.text(0.02, 0.97, "\n".join(p.flags), transform=ax.transAxes, va="top",
                        fontsize=7, color="tab:red")  # fmt: skip
        fig.suptitle(f"profile likelihoods ({self.alpha:.0%} threshold dotted)", fontsize=10)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp)


# ------------------------------------------------------------------ one branch


@dataclass(frozen=True)
class _Branch:
    index: int
    direction: int  # -1 down, +1 up
    x_opt: np.ndarray
    nllh_opt: float
    delta: float
    h0: float
    max_steps: int


def _branch(state: tuple[PetabGradient, Any], task: _Branch) -> dict[str, Any]:
    """Trace one half of a profile (module docstring); returns its points and how it ended."""
    grad, ctx = state
    obj = CachedObjective(grad)  # per task: tasks on threads share the prepared state
    lower, upper, optimizer = ctx.lower, ctx.upper, ctx.optimizer
    i, d = task.index, task.direction
    free = np.ones(task.x_opt.size, dtype=bool)
    free[i] = False
    bound = upper[i] if d > 0 else lower[i]
    h_min = MIN_STEP_FRACTION * (upper[i] - lower[i])
    target, max_change = TARGET_FRACTION * task.delta, MAX_FRACTION * task.delta
    thr = task.nllh_opt + task.delta
    v, f, x = float(task.x_opt[i]), task.nllh_opt, task.x_opt.copy()
    prev: tuple[float, np.ndarray] | None = None
    h = task.h0
    pts: list[tuple[float, float, np.ndarray]] = []
    out: dict[str, Any] = {"end": "max-steps", "failures": 0, "jumps": 0, "crossing": None}
    consecutive = 0
    steps = 0
    while steps < task.max_steps:
        if (bound - v) * d <= 0.0:
            out["end"] = "bound"
            break
        v_new = v + d * h
        if (bound - v_new) * d < 0.0:
            v_new = bound
        guess = x.copy()
        if prev is not None and v != prev[0]:
            guess += (x - prev[1]) * (v_new - v) / (v - prev[0])
        guess[i] = v_new
        r = local_fit(obj, np.clip(guess, lower, upper), lower, upper, optimizer=optimizer,
                      free=free)  # fmt: skip
        if not r.success:
            out["failures"] += 1
            consecutive += 1
            if consecutive >= MAX_CONSECUTIVE_FAILURES or h <= h_min:
                out["end"] = "failures"
                break
            h = max(h / 2.0, h_min)
            continue
        consecutive = 0
        change = r.nllh - f
        if abs(change) > max_change and h > h_min:
            h = max(h / 2.0, h_min)
            continue
        if abs(change) > max_change:
            out["jumps"] += 1
        if not r.converged:
            out["failures"] += 1
        steps += 1
        below = (v, f, x)
        prev = (v, x)
        v, f, x = float(v_new), r.nllh, r.x
        pts.append((v, f, x))
        if f > thr:
            out["end"] = "crossed"
            out["crossing"] = _refine(obj, ctx, task, below, (v, f, x), thr, free, pts, out)
            break
        h = h * float(np.clip(math.sqrt(target / max(abs(change), 1e-12)), 0.5, 2.0))
    out["points"] = pts
    return out


def _refine(obj: CachedObjective, ctx: Any, task: _Branch, a: tuple[float, float, np.ndarray],
            b: tuple[float, float, np.ndarray], thr: float, free: np.ndarray,
            pts: list[tuple[float, float, np.ndarray]], out: dict[str, Any]) -> float:  # fmt: skip
    """Where the profile crosses ``thr`` between ``a`` (below) and ``b`` (above): Illinois
    regula falsi on re-optimised points (added to ``pts``)."""
    i = task.index
    va, fa, xa = a
    vb, fb, _ = b
    ga, gb = fa - thr, fb - thr
    side = 0
    for _ in range(12):
        if abs(gb - ga) <= 0.0:
            break
        vc = vb - gb * (vb - va) / (gb - ga)
        guess = xa.copy()
        guess[i] = vc
        r = local_fit(obj, np.clip(guess, ctx.lower, ctx.upper), ctx.lower, ctx.upper,
                      optimizer=ctx.optimizer, free=free)  # fmt: skip
        if not r.success:
            out["failures"] += 1
            break
        if not r.converged:
            out["failures"] += 1
        pts.append((float(vc), r.nllh, r.x))
        gc = r.nllh - thr
        if abs(gc) < CROSSING_TOL:
            return float(vc)
        if gc < 0.0:
            va, ga, xa = vc, gc, r.x
            if side == -1:
                gb /= 2.0
            side = -1
        else:
            vb, gb = vc, gc
            if side == 1:
                ga /= 2.0
            side = 1
    return float(va - ga * (vb - va) / (gb - ga)) if gb != ga else float(vb)


def _assemble(pid: str, scale: str, i: int, x_opt: np.ndarray, nllh_opt: float, delta: float,
              down: dict[str, Any], up: dict[str, Any]) -> Profile:  # fmt: skip
    pts = [(float(x_opt[i]), nllh_opt, x_opt)] + down["points"] + up["points"]
    pts.sort(key=lambda p: p[0])
    values = np.array([p[0] for p in pts])
    nllh = np.array([p[1] for p in pts])
    xs = np.array([p[2] for p in pts])
    ends = []
    flags: list[str] = []
    for br, name, inf in ((down, "lower", -np.inf), (up, "upper", np.inf)):
        if br["end"] == "crossed" and br["crossing"] is not None:
            ends.append(br["crossing"])
        else:
            ends.append(inf)
            if br["end"] == "bound":
                flags.append(f"hits-{name}-bound")
            elif br["end"] == "max-steps":
                flags.append("max-steps")
    failures = int(down["failures"] + up["failures"])
    if failures or "failures" in (down["end"], up["end"]):
        flags.append("optimizer-failures")
    if down["jumps"] or up["jumps"] or _sawtooth(nllh, delta):
        flags.append("non-smooth")
    if np.nanmin(nllh) < nllh_opt - BETTER_TOL:
        flags.append("better-optimum-found")
    order = [f for f in FLAGS if f in flags]
    return Profile(parameter=pid, scale=scale, value_opt=float(x_opt[i]), nllh_opt=nllh_opt,
                   threshold=nllh_opt + delta, values=values, nllh=nllh, x=xs,
                   ci=(float(ends[0]), float(ends[1])), flags=order,
                   n_failures=failures)  # fmt: skip


def _sawtooth(nllh: np.ndarray, delta: float) -> bool:
    """More than one sign change among the significant changes along the profile."""
    steps = np.diff(nllh)
    signs = np.sign(steps[np.abs(steps) > SAWTOOTH_FRACTION * delta])
    return bool(np.count_nonzero(np.diff(signs) != 0) > 1)


def _first_steps(ms: Any, idx: Sequence[int], lower: np.ndarray, upper: np.ndarray,
                 delta: float) -> np.ndarray:  # fmt: skip
    """Initial step per parameter: ``sqrt(2 * target * var_i)`` from the inverse Fisher
    information (pseudo-inverse: an unseen direction gets a large variance), within
    ``[min step, 10 % of the bound range]``."""
    rng = upper - lower
    if ms is None:
        return 0.05 * rng
    fim = ms.fim()
    var = np.diag(np.linalg.pinv(fim, rcond=1e-10, hermitian=True))
    var = np.where(var > 0, var, np.inf)
    h = np.sqrt(2.0 * TARGET_FRACTION * delta * var)
    h = np.where(np.isfinite(h), h, 0.1 * rng)
    return np.clip(h, MIN_STEP_FRACTION * rng * 10, 0.1 * rng)[list(idx)]


def profile_likelihood(
    problem: PetabProblem,
    x_opt: np.ndarray | Sequence[float] | None = None,
    *,
    parameters: Sequence[str] | None = None,
    alpha: float = 0.95,
    objective: PetabGradient | None = None,
    workers: int | None = None,
    scheduler: Any = None,
    max_steps: int = 60,
    progress: bool | None = None,
) -> ProfileResult:
    """Profile likelihoods of ``parameters`` (default: every estimated parameter) about
    ``x_opt`` (parameter scales; default: a local fit from the nominal values).

    ``alpha``: confidence level of the intervals (threshold ``nllh_opt + chi2.ppf(alpha, 1)/2``);
    ``max_steps``: accepted steps per direction; ``workers``/``scheduler``/``progress``: see
    :func:`scalebridge.ensemble.tasks.map_tasks` (two tasks per parameter, down and up);
    ``objective``: a :class:`PetabGradient` of ``problem`` to reuse.  The method and the
    quality flags are described in the module docstring.
    """
    from scipy.stats import chi2

    from ..ensemble.tasks import map_tasks
    from .estimate import _Context, _prepare, _transport

    if not (isinstance(alpha, float | int) and 0.0 < float(alpha) < 1.0):
        raise OptionError(f"alpha must be in (0, 1), got {alpha!r}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise OptionError(f"max_steps must be a positive integer, got {max_steps!r}")
    ids = list(problem.estimated_ids)
    if not ids:
        raise ModelError("no estimated parameters (estimate = 1) in the parameter table",
                         source=problem.source)  # fmt: skip
    names = list(parameters) if parameters is not None else ids
    for p in names:
        if p not in ids:
            raise ModelError(f"not an estimated parameter (estimated: {', '.join(ids)})",
                             element=p, source=problem._pfile)  # fmt: skip
    lower, upper = scaled_bounds(problem)
    grad = objective if objective is not None else PetabGradient(problem)
    obj = CachedObjective(grad)
    notes: list[str] = []
    ms0 = obj.at(np.clip(problem.x_nominal, lower, upper))
    if ms0 is None:
        raise ModelError(f"cannot evaluate the problem at its nominal values: {obj.last_error}",
                         source=problem.source)  # fmt: skip
    used, note = choose_optimizer(ms0, "least-squares")
    if note:
        notes.append(note)
    if x_opt is None:
        r = local_fit(obj, problem.x_nominal, lower, upper, optimizer=used)
        xo = r.x
        notes.append(f"x_opt: a local fit from the nominal values ({r.message})")
    else:
        xo = np.asarray(x_opt, dtype=np.float64)
        if xo.shape != (len(ids),):
            raise OptionError(f"x_opt must have {len(ids)} values, got shape {xo.shape}")
    ms = obj.at(xo)
    if ms is None:
        raise ModelError(f"cannot evaluate the problem at x_opt: {obj.last_error}",
                         source=problem.source)  # fmt: skip
    nllh_opt = -ms.llh
    delta = float(chi2.ppf(float(alpha), 1) / 2.0)
    idx = [ids.index(p) for p in names]
    h0 = _first_steps(ms, idx, lower, upper, delta)
    tasks = [_Branch(i, d, xo, nllh_opt, delta, float(h), max_steps)
             for i, h in zip(idx, h0, strict=True) for d in (-1, 1)]  # fmt: skip
    local_serial = scheduler is None and (workers == 1 or len(tasks) == 1)
    remote = not local_serial and scheduler != "threads"
    pb_t, obj_t, how = _transport(problem, objective, remote)
    if local_serial:
        obj_t = grad
    ctx = _Context(problem=pb_t, source=problem.source, rtol=problem.rtol, atol=problem.atol,
                   objective=obj_t, lower=lower, upper=upper, optimizer=used,
                   max_nfev=None)  # fmt: skip
    run = map_tasks(_branch, tasks, prepare=_prepare, context=ctx, workers=workers,
                    scheduler=scheduler, progress=progress,
                    label="profile branches")  # fmt: skip
    profiles: dict[str, Profile] = {}
    for k, (p, i) in enumerate(zip(names, idx, strict=True)):
        down, up = run.results[2 * k], run.results[2 * k + 1]
        if down is None or up is None:  # interrupted
            continue
        profiles[p] = _assemble(p, problem.parameter_scales[p], i, xo, nllh_opt, delta, down,
                                up)  # fmt: skip
    stats = dict(run.stats)
    stats.update({"problem_transport": how, "max_steps": max_steps,
                  "evaluations_setup": obj.n_evaluations})  # fmt: skip
    return ProfileResult(parameter_ids=names, profiles=profiles, x_opt=xo, nllh_opt=nllh_opt,
                         alpha=float(alpha), optimizer=used, notes=notes,
                         stats=stats)  # fmt: skip
