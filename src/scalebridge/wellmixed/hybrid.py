r"""The hybrid partitioned simulator: ``method="hybrid"``.

Low-copy species and the reactions that change them, and reactions too slow to average out,
run as the exact SSA; reactions that only change high-copy species and fire many times on their
time scale run as continuous dynamics -- the chemical Langevin equation (CLE) where counts are
moderate, the rate equations (ODE) where they are high.  The partition follows the regime
advice (:mod:`scalebridge.reduce.regimes`, the same thresholds and rules) and is revised after
every step and every discrete event as counts change; hysteresis keeps it from flapping.

The partition (:mod:`scalebridge.wellmixed.hybrid_kernels` has the details)
----------------------------------------------------------------------------
* Species level from the count ``x``: discrete below ``discrete_below`` copies, Langevin from
  there, deterministic from ``ode_above``; once continuous, a species turns back only below
  ``hysteresis x`` those thresholds (and is then rounded to a whole number, unbiasedly).
  Defaults: 100 copies (Poisson CV 10 %: discreteness matters below), 10^4 copies (Poisson CV
  1 %: fluctuations below a per cent are left out), hysteresis 0.5.
* Reaction class: continuous when every species it changes is continuous and it fires at least
  ``min_firings`` times per relaxation (turnover) time of those species (default 10; it stays
  continuous down to ``hysteresis x min_firings``); Langevin or deterministic by the lowest
  level among the species it changes (``continuous="auto"``), or all deterministic (``"ode"``)
  or all Langevin (``"cle"``).  A reaction that cannot fire (zero propensity) takes the level
  of its species.  Continuous reactions never change a discrete species, so discrete counts
  stay whole numbers.

Exactness of the discrete part
------------------------------
Propensities of discrete reactions vary in time with the continuous species.  Their total
hazard ``Lambda(t) = int a_D dt`` is integrated with the continuous dynamics and the next
discrete reaction fires when it reaches an ``Exp(1)`` threshold (the crossing located inside the
step), reaction ``j`` with probability ``a_j / a_D`` then: the firing times are those of the
hybrid process, up to the integrator's error (ODE: ``rtol`` on the hazard; CLE: O(dt)).

Accuracy and cost
-----------------
With the ODE the continuous species lose their intrinsic (Poisson-scale) noise -- below a per
cent of the count at the default ``ode_above``; with the CLE they keep it to Gaussian order
(stochastic Heun steps: Euler-Maruyama noise, Heun's predictor-corrector for the drift).  The
cost of the continuous part does not grow with the copy numbers, while the SSA's grows linearly
(``benchmarks/hybrid.py``).  Measured on the gene switch (``data/gene_switch.ant``, t = 5):
the Kolmogorov-Smirnov distance of the protein distribution from the exact one (FSP) is at
the sampling-noise floor at 4e4 runs (0.004 at Omega = 1e3 and 1e4), with 10-100 times fewer
steps + events than the SSA's events.

Statistics (additive over runs): ``events`` (discrete reactions fired), ``steps``
(``ode_steps`` + ``cle_steps``, continuous steps), ``rejected_steps``, ``partition_changes``
(revisions that changed the partition), ``clips`` (continuous counts set to zero),
``rounded`` (counts rounded on turning discrete), ``run_time`` (simulated time, all runs), and
for every species and reaction ``X`` ``continuous_time[X]`` and ``deterministic_time[X]``: the
simulated time it spent continuous / deterministic (:func:`partition_fractions` turns them into
fractions of ``run_time``).

Not supported (:class:`~scalebridge.errors.UnsupportedFeatureError`): SBML events; and, as for
every stochastic method, rate rules and time-dependent propensities.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import OptionError, SolverError, UnsupportedFeatureError
from ..problem import TimeCourse
from . import hybrid_kernels as hk
from .stochastic_base import Prepared, prepare
from .tauleap import check_call, failure

# Defaults shared with the regime advice (scalebridge.reduce.regimes).
DISCRETE_BELOW = 100.0  # copies: below, a species needs a discrete description
ODE_ABOVE = 1e4  # copies: from here its relative fluctuation (Poisson CV) is <= 1 %
MIN_FIRINGS = 10.0  # firings per relaxation time of a continuous reaction
HYSTERESIS = 0.5  # a continuous species / reaction turns back below this x its threshold
CONTINUOUS = {"auto": hk.MODE_AUTO, "ode": hk.MODE_ODE, "cle": hk.MODE_CLE}
LEVELS = ("SSA", "CLE", "ODE")  # hk.DISCRETE, hk.LANGEVIN, hk.DETERMINISTIC


def _positive(name: str, value: Any, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        what = "a non-negative" if allow_zero else "a positive"
        raise OptionError(f"{name} must be {what} number, got {value!r}")


@dataclass(frozen=True)
class Hybrid:
    """Hybrid SSA / CLE / ODE simulation with a dynamic partition (module docstring).

    ``discrete_below``, ``ode_above`` (copies), ``min_firings`` (firings per relaxation time)
    and ``hysteresis`` (0 < h <= 1) set the partition; ``continuous``: ``"auto"``, ``"ode"`` or
    ``"cle"``; ``rtol``, ``atol`` (molecules): tolerances of the ODE part (the hazard uses
    ``rtol``); ``dt_factor``: CLE step as a fraction of the shortest turnover time of a
    continuous species, ``dt_max``: its upper bound (None: none); ``counts_per_amount``:
    molecules per unit of amount (DESIGN.md).
    """

    discrete_below: float = DISCRETE_BELOW
    ode_above: float = ODE_ABOVE
    min_firings: float = MIN_FIRINGS
    hysteresis: float = HYSTERESIS
    continuous: str = "auto"
    rtol: float = 1e-4
    atol: float = 1e-2
    dt_factor: float = 0.05
    dt_max: float | None = None
    counts_per_amount: float | None = None

    name = "hybrid"
    exact = False
    stochastic = True

    def __post_init__(self) -> None:
        _positive("discrete_below", self.discrete_below, allow_zero=True)
        _positive("ode_above", self.ode_above)
        _positive("min_firings", self.min_firings, allow_zero=True)
        _positive("rtol", self.rtol)
        _positive("atol", self.atol)
        _positive("dt_factor", self.dt_factor)
        if self.dt_max is not None:
            _positive("dt_max", self.dt_max)
        if self.counts_per_amount is not None:
            _positive("counts_per_amount", self.counts_per_amount)
        if self.ode_above < self.discrete_below:
            raise OptionError(
                f"ode_above ({self.ode_above:g}) must be at least discrete_below "
                f"({self.discrete_below:g})"
            )
        h = self.hysteresis
        if not (isinstance(h, int | float) and 0.0 < h <= 1.0):
            raise OptionError(f"hysteresis must be in (0, 1], got {h!r}")
        if self.continuous not in CONTINUOUS:
            raise OptionError(
                f"continuous must be one of {', '.join(CONTINUOUS)}, not {self.continuous!r}"
            )

    def options(self) -> dict[str, Any]:
        return asdict(self)

    def option_array(self) -> np.ndarray:
        """The options as the kernels read them (slots ``hybrid_kernels.O_*``)."""
        opt = np.zeros(hk.N_OPTIONS)
        opt[hk.O_CLE_UP] = self.discrete_below
        opt[hk.O_CLE_DOWN] = self.hysteresis * self.discrete_below
        opt[hk.O_ODE_UP] = self.ode_above
        opt[hk.O_ODE_DOWN] = self.hysteresis * self.ode_above
        opt[hk.O_F_UP] = self.min_firings
        opt[hk.O_F_DOWN] = self.hysteresis * self.min_firings
        opt[hk.O_MODE] = CONTINUOUS[self.continuous]
        opt[hk.O_RTOL] = self.rtol
        opt[hk.O_ATOL] = self.atol
        opt[hk.O_DT_FACTOR] = self.dt_factor
        opt[hk.O_DT_MAX] = 0.0 if self.dt_max is None else self.dt_max
        return opt

    # -- the stochastic method contract -------------------------------------------------------
    def prepare(self, problem: TimeCourse) -> Prepared:
        """Compile and initialise ``problem``; SBML events are refused."""
        net = problem.network
        if net.events:
            raise UnsupportedFeatureError(
                "event in a hybrid simulation",
                element=net.events[0].id,
                detail="use ssa, tau-leap or cle for models with events",
            )
        return prepare(problem, self.counts_per_amount)

    def run_runs(
        self, prepared: Prepared, rng_states: np.ndarray, out: np.ndarray
    ) -> dict[str, Any]:
        """Simulate ``len(rng_states)`` runs into ``out[r, time, var]`` (stochastic_base)."""
        T, K = prepared.T, prepared.K
        states = check_call(prepared, rng_states, out)
        if not out.flags.c_contiguous:
            raise OptionError("out must be C-contiguous")
        W = hk.new_work(T, prepared.v0.size, max(T.stack_size, K.stack_size))
        counters = np.zeros(hk.N_COUNTERS, dtype=np.int64)
        tacc = np.zeros((2, T.n_species + T.n_reactions))
        info = np.zeros(4)
        hk.hybrid_runs(T, K, W, prepared.x0, prepared.v0, prepared.times, states, out,
                       self.option_array(), counters, tacc, info)  # fmt: skip
        if info[0] != hk.OK:
            raise _failure(prepared, int(info[0]), int(info[2]), float(info[3]))
        sm = prepared.sm
        stats: dict[str, Any] = {
            "events": int(counters[hk.C_EVENTS]),
            "steps": int(counters[hk.C_ODE_STEPS] + counters[hk.C_CLE_STEPS]),
            "ode_steps": int(counters[hk.C_ODE_STEPS]),
            "cle_steps": int(counters[hk.C_CLE_STEPS]),
            "rejected_steps": int(counters[hk.C_REJECTED]),
            "partition_changes": int(counters[hk.C_CHANGES]),
            "clips": int(counters[hk.C_CLIPS]),
            "rounded": int(counters[hk.C_ROUNDED]),
            "run_time": float(states.shape[0] * (prepared.times[-1] - prepared.times[0])),
        }
        for k, ident in enumerate([*sm.species, *sm.reactions]):
            stats[f"continuous_time[{ident}]"] = float(tacc[0, k])
            stats[f"deterministic_time[{ident}]"] = float(tacc[1, k])
        return stats

    # -- inspection ---------------------------------------------------------------------------
    def initial_partition(self, prepared: Prepared) -> dict[str, str]:
        """The partition at the start of every run: ``"SSA"``, ``"CLE"`` or ``"ODE"`` for each
        species (its level) and each reaction (its class)."""
        T, K = prepared.T, prepared.K
        W = hk.new_work(T, prepared.v0.size, max(T.stack_size, K.stack_size))
        W.v[:] = prepared.v0
        x = prepared.x0.copy()
        status = hk.initial_partition(
            T, W, x, self.option_array(), np.zeros(hk.N_COUNTERS, dtype=np.int64)
        )
        if status != hk.OK:
            raise _failure(prepared, int(status), -1, float(prepared.times[0]))
        sm = prepared.sm
        out = {s: LEVELS[int(W.slev[i])] for i, s in enumerate(sm.species)}
        out.update({r: LEVELS[int(W.rlev[j])] for j, r in enumerate(sm.reactions)})
        return out


def _failure(prepared: Prepared, status: int, where: int, t: float) -> SolverError:
    if status == hk.STEP_TOO_SMALL:
        return SolverError(
            f"the hybrid simulator's step size fell below 1e-12 of the time scale at t = {t:g} "
            "(the continuous part is too stiff for its explicit integrator, or a rate law is "
            "positive at a zero count)",
            time=t,
        )
    return failure(prepared, status, where, t)


def partition_fractions(stats: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """From a hybrid run's ``stats``: for every species and reaction, the fraction of the
    simulated time it spent in each description, ``{"SSA": ..., "CLE": ..., "ODE": ...}``."""
    total = float(stats.get("run_time", 0.0))
    if total <= 0.0:
        raise OptionError("these statistics hold no simulated time (not a hybrid run?)")
    out: dict[str, dict[str, float]] = {}
    for key, value in stats.items():
        if key.startswith("continuous_time[") and key.endswith("]"):
            ident = key[len("continuous_time[") : -1]
            cont = min(max(float(value) / total, 0.0), 1.0)
            det = float(stats.get(f"deterministic_time[{ident}]", 0.0)) / total
            det = min(max(det, 0.0), cont)  # (sums of many steps: rounding)
            out[ident] = {"SSA": 1.0 - cont, "CLE": cont - det, "ODE": det}
    return out
