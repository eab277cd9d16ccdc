r"""Adaptive tau-leaping: ``method="tau-leap"``.

The algorithm is that of Cao, Gillespie & Petzold (J. Chem. Phys. 124, 044109, 2006; the
formulas are in :mod:`scalebridge.wellmixed.tauleap_kernels`).  In state ``x`` at time ``t``:

1. compute the propensities ``a_j`` and ``a_0 = sum_j a_j``; mark reactions *critical* when
   fewer than ``n_critical`` firings would exhaust one of their consumed species;
2. choose the leap ``tau'`` by the CGP rule over the non-critical reactions: the expected
   change (mean and standard deviation) of every reactant species must stay below
   ``max(epsilon x_i / g_i, 1)``, which bounds the relative change of every propensity by
   about ``epsilon``;
3. if ``tau' < ssa_threshold / a_0`` leaping does not pay: run up to 100 exact SSA steps
   (direct method) and start again;
4. otherwise draw ``tau''`` ~ Exp(sum of critical propensities); the step is
   ``tau = min(tau', tau'', time to the next output or stop)``.  Every non-critical reaction
   fires Poisson(a_j tau) times; a critical one fires once, chosen with probability
   ``a_j / a_0c``, exactly when ``tau = tau''`` -- so critical reactions are simulated exactly
   and at most one of them fires per leap;
5. a leap that would make any count negative is rejected: ``tau'`` is halved and the step
   retried from 3 (with a fresh ``tau''``).  Counts are never negative.

Leaps land exactly on the output times (a shorter leap is always allowed; cutting ``tau''`` at
an output time is exact since the waiting time is memoryless), and the state at an output time
is the state there.

SBML events (slower path, in Python between compiled stretches): runs stop exactly at
scheduled executions and at crossings of triggers that depend on time alone (found by
:func:`scalebridge.codegen.vm.first_crossing`); triggers on species are checked after every
leap or SSA step, so *a crossing of a state trigger is located only to the step* that caused
it (exactly, for SSA steps).  Events then follow SBML semantics
(:class:`~scalebridge.wellmixed.events.EventQueue`); an event that sets a count to a number
that is not whole stops the run with :class:`~scalebridge.errors.SolverError`.

Statistics: ``leaps``, ``ssa_steps``, ``rejections`` (leaps rejected for a negative count),
``firings`` (reaction firings, leaped or exact) and ``event_executions`` (SBML events).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..codegen import vm
from ..codegen.stochastic import StochasticModel, _species_deps, refresh_constants
from ..errors import OptionError, SolverError
from ..problem import TimeCourse
from . import tauleap_kernels as tk
from .events import EventQueue
from .propensity import record
from .stochastic_base import Prepared, prepare

SSA_BURST = 100  # exact steps per fallback burst (CGP 2006)
# Root functions of time alone are scanned on this many sub-intervals of every stretch between
# stops (as in the deterministic driver, wellmixed/ode.py).
TIME_ROOT_SAMPLES = 1000
_CACHE = "_scalebridge_leap_tables"

# advance(x, v, t, t_stop, i_out, out_r, rng, trig_slots, trig_prev)
#     -> (t, i_out, status, where)
Advance = Callable[..., tuple[float, int, int, int]]


@dataclass(frozen=True)
class TauLeap:
    """Adaptive tau-leaping with CGP step selection (module docstring).

    ``epsilon``: bound on the relative change of the propensities in one leap (0 < eps < 1);
    ``n_critical``: reactions that fewer firings would exhaust a reactant are run exactly;
    ``ssa_threshold``: leap only when ``tau' >= ssa_threshold / a_0``, i.e. when a leap
    replaces at least about that many SSA steps; ``counts_per_amount``: molecules per unit of
    amount (DESIGN.md; needed for models in moles).
    """

    epsilon: float = 0.03
    n_critical: int = 10
    ssa_threshold: float = 10.0
    counts_per_amount: float | None = None

    name = "tau-leap"
    exact = False
    stochastic = True

    def __post_init__(self) -> None:
        if not (0.0 < self.epsilon < 1.0):
            raise OptionError(f"epsilon must be in (0, 1), got {self.epsilon!r}")
        if not (isinstance(self.n_critical, int | np.integer) and self.n_critical >= 0):
            raise OptionError(f"n_critical must be a non-negative integer, got {self.n_critical!r}")
        if not (math.isfinite(self.ssa_threshold) and self.ssa_threshold >= 0.0):
            raise OptionError(f"ssa_threshold must be >= 0, got {self.ssa_threshold!r}")

    def options(self) -> dict[str, Any]:
        return asdict(self)

    def prepare(self, problem: TimeCourse) -> Prepared:
        prepared = prepare(problem, self.counts_per_amount)
        leap_tables(prepared.sm)
        return prepared

    def run_runs(
        self, prepared: Prepared, rng_states: np.ndarray, out: np.ndarray
    ) -> dict[str, int]:
        """Simulate ``len(rng_states)`` runs into ``out[r, time, var]`` (stochastic_base)."""
        T, K = prepared.T, prepared.K
        L = leap_tables(prepared.sm)
        states = check_call(prepared, rng_states, out)
        counters = np.zeros(tk.N_COUNTERS, dtype=np.int64)
        eps, n_crit, thr = float(self.epsilon), float(self.n_critical), float(self.ssa_threshold)
        executed = 0
        W = tk.new_work(T.n_species, T.n_reactions, prepared.v0.size,
                        max(T.stack_size, K.stack_size))  # fmt: skip
        if not prepared.has_events:
            info = np.zeros(4)
            tk.leap_runs(T, K, L, W, prepared.x0, prepared.v0, prepared.times, states, out,
                         eps, n_crit, thr, SSA_BURST, counters, info)  # fmt: skip
            if info[0] != tk.OK:
                raise failure(prepared, int(info[0]), int(info[2]), float(info[3]))
        else:

            def advance(x: np.ndarray, v: np.ndarray, t: float, t_stop: float, i_out: int,
                        out_r: np.ndarray, rng: np.ndarray, trig_slots: np.ndarray,
                        trig_prev: np.ndarray) -> tuple[float, int, int, int]:  # fmt: skip
                return tk.leap_advance(T, K, L, W, x, v, t, t_stop, prepared.times, i_out, out_r,
                                       rng, eps, n_crit, thr, SSA_BURST, trig_slots, trig_prev,
                                       counters)  # fmt: skip

            executed = run_with_events(prepared, states, out, advance, whole=True)
        return {
            "leaps": int(counters[tk.C_LEAPS]),
            "ssa_steps": int(counters[tk.C_SSA]),
            "rejections": int(counters[tk.C_REJECT]),
            "firings": int(counters[tk.C_FIRINGS]),
            "event_executions": executed,
        }


def leap_tables(sm: StochasticModel) -> tk.LeapTables:
    """The CGP per-species data (highest reaction order, multiplicity), cached on ``sm``."""
    cached = sm.__dict__.get(_CACHE)
    if cached is not None:
        return cached
    T = sm.tables
    net = sm.network
    index = {s: i for i, s in enumerate(sm.species)}
    hor = np.zeros(T.n_species, dtype=np.int64)
    hmul = np.zeros(T.n_species, dtype=np.int64)
    for j, r in enumerate(net.reactions):
        parts: dict[int, int] = {}
        if T.is_ma[j]:
            for p in range(T.ma_ptr[j], T.ma_ptr[j + 1]):
                parts[int(T.ma_idx[p])] = int(T.ma_ord[p])
        else:
            for ref in r.reactants:
                if ref.species in index:
                    st = 1 if ref.stoichiometry is None else int(ref.stoichiometry)
                    parts[index[ref.species]] = parts.get(index[ref.species], 0) + st
            for i in _species_deps(sm.cm, r.id, index):
                parts.setdefault(i, 1)  # read by the law, not consumed: first order
        n = sum(parts.values())
        for i, m in parts.items():
            if n > hor[i]:
                hor[i], hmul[i] = n, m
            elif n == hor[i]:
                hmul[i] = max(hmul[i], m)
    L = tk.LeapTables(hor=hor, hmul=hmul)
    sm.__dict__[_CACHE] = L
    return L


def check_call(prepared: Prepared, rng_states: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The generator states as a private C-contiguous uint64 copy (the caller's are never
    advanced); checks the shape of ``out``."""
    states = np.array(rng_states, dtype=np.uint64, order="C", copy=True).reshape(-1, 4)
    want = (states.shape[0], prepared.times.size, len(prepared.names))
    if out.shape != want or out.dtype != np.float64:
        raise OptionError(
            f"out must be a float64 array of shape {want}, got {out.dtype} {out.shape}"
        )
    return states


def failure(prepared: Prepared, status: int, where: int, t: float) -> SolverError:
    """The error for a status code of the compiled kernels."""
    sm = prepared.sm
    if status == tk.NEGATIVE_PROPENSITY:
        rid = sm.reactions[where]
        return SolverError(
            f"the propensity of reaction '{rid}' became negative at t = {t:g}",
            variable=rid,
            time=t,
        )
    if status == tk.BAD_PROPENSITY:
        rid = sm.reactions[where]
        return SolverError(
            f"the propensity of reaction '{rid}' is not finite at t = {t:g}", variable=rid, time=t
        )
    if status == tk.NEGATIVE_COUNT:
        rid = sm.reactions[where]
        return SolverError(
            f"reaction '{rid}' fired at t = {t:g} although a species it consumes is exhausted "
            "(its kinetic law is positive at a zero count)",
            variable=rid,
            time=t,
        )
    if status == tk.NON_FINITE_STATE:
        sid = sm.species[where]
        return SolverError(f"species '{sid}' became non-finite at t = {t:g}", variable=sid, time=t)
    return SolverError(f"stochastic run failed (status {status}) at t = {t:g}", time=t)


def run_with_events(prepared: Prepared, states: np.ndarray, out: np.ndarray, advance: Advance,
                    *, whole: bool) -> int:  # fmt: skip
    """Runs of a model with SBML events: compiled stretches between stops, events in Python.

    Mirrors the deterministic driver (:func:`scalebridge.wellmixed.ode.integrate`): a stretch
    ends at the end time, at the next scheduled execution, at the next crossing of a trigger of
    time alone, or right after a step that changed a state trigger.  Output times within
    1e-12 (relative to the span) before an event show the values after it.  ``whole``: counts
    must stay whole numbers (events that set a fraction are an error).  Returns the number of
    event executions.
    """
    sm, T, K = prepared.sm, prepared.T, prepared.K
    cm = sm.cm
    times = prepared.times
    n_t = times.size
    t0, t_end = float(times[0]), float(times[-1])
    stack = np.empty(max(K.stack_size, T.stack_size, 1))
    trig_slots = np.asarray([ev.trigger_slot for ev in cm.events], dtype=np.int64)
    time_roots = cm.time_only_roots if cm.time_only_roots.any() else None
    g = np.zeros(K.root_slots.shape[0])
    snap = 1e-12 * max(t_end - t0, abs(t_end), 1.0)
    executed = 0
    for r in range(states.shape[0]):
        x = prepared.x0.copy()
        v = prepared.v0.copy()
        y = prepared.y0.copy()
        rng = states[r].copy()
        queue = EventQueue(cm, stack)
        t = t0
        _sync(prepared, queue, t, x, y, v, whole)
        i_out = 0
        while True:
            t_stop = min(t_end, queue.next_time())
            if time_roots is not None:
                t_cross = vm.first_crossing(K, t, t_stop, TIME_ROOT_SAMPLES, v, time_roots,
                                            cm.time_root_slope, g, stack)  # fmt: skip
                t_stop = min(t_stop, t_cross)
            t, i_out, status, where = advance(x, v, t, t_stop, i_out, out[r], rng, trig_slots,
                                              queue.trig)  # fmt: skip
            if status != tk.OK:
                raise failure(prepared, status, where, t)
            before = queue.n_executed
            _sync(prepared, queue, t, x, y, v, whole)
            if queue.n_executed != before:
                i = i_out - 1
                while i >= 0 and t - times[i] <= snap:
                    record(T, K, float(times[i]), x, v, out[r, i], stack)
                    i -= 1
            while i_out < n_t and times[i_out] <= t:
                record(T, K, float(times[i_out]), x, v, out[r, i_out], stack)
                i_out += 1
            if t >= t_end:
                break
        executed += queue.n_executed
    return executed


def _sync(prepared: Prepared, queue: EventQueue, t: float, x: np.ndarray, y: np.ndarray,
          v: np.ndarray, whole: bool) -> None:  # fmt: skip
    """Let the event queue act at (t, x); copy what events assigned back into the counts."""
    T = prepared.T
    if T.n_species:
        y[T.x_state] = x / T.scale
    before = y.copy()
    queue.update(t, y, v)
    if T.n_species:
        changed = np.nonzero(y[T.x_state] != before[T.x_state])[0]
        for i in changed:
            c = float(y[T.x_state[i]] * T.scale)
            if whole:
                rc = round(c)
                if not (math.isfinite(c) and abs(c - rc) <= 1e-9 * max(1.0, abs(c))):
                    sid = prepared.sm.species[i]
                    raise SolverError(
                        f"an event set species '{sid}' to {c:g} molecules at t = {t:g}, "
                        "not a whole number",
                        variable=sid,
                        time=t,
                    )
                c = float(rc)
            if c < 0.0 and whole:
                sid = prepared.sm.species[i]
                raise SolverError(
                    f"an event set species '{sid}' to {c:g} molecules at t = {t:g}",
                    variable=sid,
                    time=t,
                )
            x[i] = c
    refresh_constants(T, v)
