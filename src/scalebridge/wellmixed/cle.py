r"""The chemical Langevin equation (CLE): ``method="cle"``.

The equation and the system size
--------------------------------
On molecule counts ``X`` (Ito; one Wiener process ``W_j`` per reaction, ``nu_j`` its net change,
``a_j`` its propensity as for the SSA -- DESIGN.md)

    dX = sum_j nu_j a_j(X) dt + sum_j nu_j sqrt(a_j(X)) dW_j.

The system size is explicit in the counts: a species in a compartment of size ``V`` has
``X = Omega c`` with ``Omega = counts_per_amount x V`` (``V = 1`` where the model gives no size;
:func:`system_sizes`).  For mass-action kinetics ``a_j(X) = Omega f_j(X / Omega)`` up to the
O(1/X) of the falling factorials, ``f_j`` the macroscopic rate law in concentrations, so the
same equation reads

    dc = S f(c) dt + Omega^(-1/2) S sqrt(f(c)) dW

with stoichiometric matrix ``S``: the noise is O(Omega^(-1/2)) relative to the drift, and the
CLE approaches the rate equations as Omega grows.  Propensities use the SSA's expressions on
real-valued counts: a mass-action falling factorial ``x (x-1) ... (x-n+1)`` is the polynomial
where ``x >= n - 1`` and 0 below (where the polynomial would change sign); other laws are used
as written.

Schemes (``scheme``)
--------------------
* ``"euler-maruyama"``: weak order 1, Gaussian increments.
* ``"weak2"``: Platen's explicit (derivative-free) weak order 2.0 scheme for many Wiener
  processes with three-point increments (Kloeden & Platen 1992, eq. 15.1.5; the formulas are
  in :mod:`scalebridge.wellmixed.cle_kernels`).  About 4 + 2 |dep| / n_r propensity
  evaluations per reaction and step (``|dep|``: the edges of the reaction dependency graph),
  against 1 for Euler-Maruyama; the weak error falls as ``dt^2`` instead of ``dt``.

Every step interval between output times (and event stops) is cut into equal steps of at most
``dt``, so steps land exactly on the output times.

The boundary at zero (``boundary``)
-----------------------------------
``sqrt(a_j)`` is undefined where a propensity is negative, and the CLE's Gaussian noise can
drive a count below zero where copy numbers are low.  Propensities are always evaluated at
``max(X, 0)``, at the state and at every supporting value; the options differ in what happens
to the state after each step:

* ``"clip"`` (default): nothing -- counts may go negative (and are reported so); reactions
  that consume a species with a negative count stop (their propensity is 0) while producing
  reactions continue, which pushes the count back up.  For a network whose propensities are
  linear in the counts, the drift is linear in the *clipped* counts, so in the limit dt -> 0
  the stationary mean of ``max(X, 0)`` satisfies the exact mean equation (exact for linear
  networks); the reported mean of ``X`` is below it by ``E[max(-X, 0)]``, and species
  downstream of a clipped one inherit an exact mean.
* ``"reflect"``: ``X -> |X|`` after each step: counts stay >= 0, but every reflection adds
  ``2 |X|`` -- the mean is biased upwards (and so is that of everything the species produces).
* ``"absorb"``: ``X -> max(X, 0)`` after each step (not truly absorbing: production continues):
  counts stay >= 0 with an upward bias of the mean about half that of ``"reflect"``.

With the high-copy two-stage model (M ~ 1000) none of this matters.  With M ~ 10 (k_m = 10)
a quarter to a half of the paths dip below zero within t = 1000, and the options give
different paths there (``"clip"`` reports negative counts), but M < 0 is a short 3-sigma
excursion: measured on common random numbers (Euler-Maruyama, dt = 0.05), ``"reflect"``
raises the mean of M by 6e-5 (relative) and ``"absorb"`` by 4e-5 over ``"clip"``, and the
protein Fano factor moves by less than 0.1 % (``tests/unit/test_cle.py`` checks this).

SBML events are handled as for tau-leaping (:mod:`scalebridge.wellmixed.tauleap`): stops at
scheduled executions and time-trigger crossings; state triggers are checked after every step,
so their crossings are located to the step.

Statistics: ``steps``, ``boundary_steps`` (steps after which some count was negative, before the
boundary treatment) and ``event_executions``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..codegen.stochastic import StochasticModel
from ..errors import OptionError
from ..problem import TimeCourse
from . import cle_kernels as ck
from .stochastic_base import Prepared, prepare
from .tauleap import check_call, failure, run_with_events

SCHEMES = {"euler-maruyama": ck.EULER_MARUYAMA, "weak2": ck.WEAK2}
BOUNDARIES = {"clip": ck.CLIP, "reflect": ck.REFLECT, "absorb": ck.ABSORB}
# dt=None: the smaller of a tenth of the smallest output interval and 1/1000 of the time span
# (a heuristic that knows nothing of the model's time scales: give dt for accurate work)
AUTO_DT_INTERVAL = 0.1
AUTO_DT_SPAN = 1e-3
_CACHE = "_scalebridge_cle_tables"


@dataclass(frozen=True)
class CLE:
    """The chemical Langevin equation on counts (module docstring).

    ``dt``: largest step (``None``: the smaller of a tenth of the smallest output interval and
    1/1000 of the time span -- a heuristic blind to the model's time scales); ``scheme``:
    ``"euler-maruyama"`` or ``"weak2"``; ``boundary``: ``"clip"``, ``"reflect"`` or
    ``"absorb"``; ``counts_per_amount``: molecules per unit of amount (DESIGN.md).
    """

    dt: float | None = None
    scheme: str = "euler-maruyama"
    boundary: str = "clip"
    counts_per_amount: float | None = None

    name = "cle"
    exact = False
    stochastic = True

    def __post_init__(self) -> None:
        if self.dt is not None and not (
            isinstance(self.dt, int | float) and math.isfinite(self.dt) and self.dt > 0
        ):
            raise OptionError(f"dt must be a positive number, got {self.dt!r}")
        if self.scheme not in SCHEMES:
            raise OptionError(f"scheme must be one of {', '.join(SCHEMES)}, not {self.scheme!r}")
        if self.boundary not in BOUNDARIES:
            raise OptionError(
                f"boundary must be one of {', '.join(BOUNDARIES)}, not {self.boundary!r}"
            )

    @property
    def order(self) -> int:
        """Weak order of the scheme."""
        return 2 if self.scheme == "weak2" else 1

    def options(self) -> dict[str, Any]:
        return asdict(self)

    def prepare(self, problem: TimeCourse) -> Prepared:
        prepared = prepare(problem, self.counts_per_amount)
        cle_tables(prepared.sm)
        return prepared

    def step_size(self, times: np.ndarray) -> float:
        """The largest step used on the output grid ``times``."""
        if self.dt is not None:
            return float(self.dt)
        gaps = np.diff(times)
        if not gaps.size:
            return 1.0
        return min(AUTO_DT_INTERVAL * float(gaps.min()), AUTO_DT_SPAN * float(times[-1] - times[0]))

    def run_runs(
        self, prepared: Prepared, rng_states: np.ndarray, out: np.ndarray
    ) -> dict[str, int]:
        """Simulate ``len(rng_states)`` runs into ``out[r, time, var]`` (stochastic_base)."""
        T, K = prepared.T, prepared.K
        C = cle_tables(prepared.sm)
        W = ck.new_work(T, C, prepared.v0.size, max(T.stack_size, K.stack_size))
        states = check_call(prepared, rng_states, out)
        counters = np.zeros(ck.N_COUNTERS, dtype=np.int64)
        dt = self.step_size(prepared.times)
        scheme, boundary = SCHEMES[self.scheme], BOUNDARIES[self.boundary]
        executed = 0
        if not prepared.has_events:
            info = np.zeros(4)
            ck.cle_runs(T, K, C, W, prepared.x0, prepared.v0, prepared.times, states, out, dt,
                        scheme, boundary, counters, info)  # fmt: skip
            if info[0] != ck.OK:
                raise failure(prepared, int(info[0]), int(info[2]), float(info[3]))
        else:

            def advance(x: np.ndarray, v: np.ndarray, t: float, t_stop: float, i_out: int,
                        out_r: np.ndarray, rng: np.ndarray, trig_slots: np.ndarray,
                        trig_prev: np.ndarray) -> tuple[float, int, int, int]:  # fmt: skip
                return ck.cle_advance(T, K, C, W, x, v, t, t_stop, prepared.times, i_out,
                                      out_r, rng, dt, scheme, boundary, trig_slots, trig_prev,
                                      counters)  # fmt: skip

            executed = run_with_events(prepared, states, out, advance, whole=False)
        return {
            "steps": int(counters[ck.C_STEPS]),
            "boundary_steps": int(counters[ck.C_HITS]),
            "event_executions": executed,
        }


def cle_tables(sm: StochasticModel) -> ck.CleTables:
    """Pairs of reactions linked by the dependency graph (weak-2 scheme), cached on ``sm``."""
    cached = sm.__dict__.get(_CACHE)
    if cached is not None:
        return cached
    T = sm.tables
    pair_of = np.full(T.dep_idx.shape[0], -1, dtype=np.int64)
    pair_sgn = np.zeros(T.dep_idx.shape[0])
    pairs: dict[tuple[int, int], int] = {}
    for r in range(T.n_reactions):
        for q in range(T.dep_ptr[r], T.dep_ptr[r + 1]):
            j = int(T.dep_idx[q])
            if j == r:
                continue
            key = (min(r, j), max(r, j))
            pair_of[q] = pairs.setdefault(key, len(pairs))
            pair_sgn[q] = 1.0 if r < j else -1.0  # V_(r,j) = -V_(j,r)
    C = ck.CleTables(pair_of=pair_of, pair_sgn=pair_sgn, n_pairs=len(pairs))
    sm.__dict__[_CACHE] = C
    return C


def system_sizes(prepared: Prepared) -> dict[str, float]:
    """The system size Omega of every compartment: counts per unit of concentration
    (``counts_per_amount x size``; size 1 where the model gives none), at the initial time."""
    sm = prepared.sm
    out: dict[str, float] = {}
    for c in sm.network.compartments:
        size = float(prepared.v0[sm.cm.slot_of(c.id)])
        out[c.id] = sm.counts_per_amount * size
    return out
