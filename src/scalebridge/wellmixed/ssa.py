"""Exact stochastic simulation (Gillespie's SSA): ``method="ssa"``.

The state is the vector of molecule counts ``x``; reaction ``j`` fires in ``[t, t + dt)`` with
probability ``a_j(x) dt``, and changes ``x`` by its integer net stoichiometry.  Propensities follow
:mod:`scalebridge.codegen.stochastic` (counts, combinatorial mass action, other laws as
written).  Three variants, all exact -- they sample the same process and differ only in cost:

* ``"direct"`` (default) -- Gillespie's direct method with a dependency graph
  (:mod:`~scalebridge.wellmixed.ssa_kernels`): fastest for small networks; the cost per event
  grows with the number of reactions (linear search);
* ``"composition-rejection"`` (Slepoy, Thompson & Plimpton 2008) -- propensities grouped by
  powers of two, a group by linear search over the non-empty groups, a member by rejection: the
  cost per event stays nearly flat as networks grow to 10^4 reactions (it grows only with the
  number of propensities a reaction changes);
* ``"rssa"`` -- rejection-based SSA with composition-rejection selection (Thanh et al. 2014;
  :mod:`~scalebridge.wellmixed.ssa_rssa`): candidates from upper bounds of the propensities on
  intervals around the counts, so most reactions recompute no propensity at all -- the fastest
  variant for large networks with many propensities per species.

Runs are sampled on the problem's time grid without storing events: the value at a grid time is
the state after every reaction at or before it.  With ``record_events=True`` one run records every
reaction instead (:meth:`SSA.solve_events`).  Models with only mass-action laws, no events and
only species outputs run the direct method on a dedicated kernel (same draws, same results).

Runs are sampled on the problem's time grid without storing events: the value at a grid time is
the state after every reaction at or before it.  With ``record_events=True`` one run records every
reaction instead (:meth:`SSA.solve_events`).

SBML events and rules
---------------------
Assignment rules and other derived values are computed by the compiled model (propensities with
general laws, value outputs such as a rule ``y = 2 X``).  Propensities cannot depend on time (the
model layer refuses that), so between reactions nothing changes.  Events are handled as the ODE
driver does (:mod:`scalebridge.wellmixed.ode`, :class:`~scalebridge.wellmixed.events.EventQueue`
on the amounts ``y = x / counts_per_amount``):

* triggers of time alone: before each compiled stretch the next crossing is found
  (:func:`scalebridge.codegen.vm.first_crossing`) and used, with the next scheduled execution,
  as the stretch's stop time.  A reaction drawn after the stop is discarded and its waiting time
  redrawn from the stop -- exact, because waiting times are memoryless;
* triggers that read the state are evaluated after every reaction; the compiled stretch returns
  to Python when one turns true (or turns false where that cancels a pending execution).

After event assignments the state must again be whole, non-negative counts (a
:class:`~scalebridge.errors.SolverError` names the species and time otherwise); rate constants and
all propensities are then recomputed.  An output time equal to an event time (within 1e-12 of the
time span) shows the values after the event, as for ``ode``.

A propensity that becomes negative, NaN or infinite stops the run with a
:class:`~scalebridge.errors.SolverError` naming the reaction and the time.

Statistics returned by :meth:`SSA.run_runs` (additive over calls): ``events`` (reactions fired),
``propensity_updates`` (for ``rssa``: propensity bounds recomputed), ``event_executions`` (SBML
events executed); for composition-rejection and ``rssa`` ``rejections`` (member draws rejected
within a group), for ``rssa`` ``thinned`` (candidates rejected against their bound).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..codegen import vm
from ..codegen.stochastic import StochasticModel, refresh_constants
from ..errors import OptionError, SolverError
from ..model.expr import Call, expand_functions, symbols, walk
from ..problem import TimeCourse
from ..results import Result
from . import ssa_kernels as K_
from . import ssa_rssa
from .events import EventQueue
from .propensity import record, stream_states
from .stochastic_base import Prepared, prepare

VARIANTS = ("direct", "composition-rejection", "rssa")
# Root functions of time alone are scanned on this many sub-intervals of every stretch (as for
# the ODE driver): a crossing and its return within 1/1000 of a stretch can be missed.
TIME_ROOT_SAMPLES = 1000
# An output time within SNAP x (time span) before an event shows the values after the event.
SNAP = 1e-12
# Event assignments may leave counts this far (relative) from a whole number.
INTEGER_TOLERANCE = 1e-9


@dataclass(frozen=True)
class SSA:
    """Exact stochastic simulation (module docstring).

    ``variant``: ``"direct"``, ``"composition-rejection"`` or ``"rssa"``.  ``record_events``: one
    run that records every reaction (:meth:`solve_events`); :meth:`run_runs` refuses it.
    ``counts_per_amount``: molecules per unit of amount (needed for models in moles).
    """

    variant: str = "direct"
    record_events: bool = False
    counts_per_amount: float | None = None

    name = "ssa"
    exact = True
    stochastic = True

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise OptionError(
                f"ssa variant must be one of {', '.join(VARIANTS)}, not {self.variant!r}"
            )
        if not isinstance(self.record_events, bool):
            raise OptionError(f"record_events must be true or false, not {self.record_events!r}")
        if self.counts_per_amount is not None:
            c = self.counts_per_amount
            if not (isinstance(c, int | float) and math.isfinite(c) and c > 0):
                raise OptionError(f"counts_per_amount must be a positive number, got {c!r}")

    def options(self) -> dict[str, Any]:
        return asdict(self)

    # -- the stochastic method contract -----------------------------------------------------
    def prepare(self, problem: TimeCourse) -> Prepared:
        """Compile and initialise ``problem`` (see :mod:`scalebridge.wellmixed.stochastic_base`).

        Raises :class:`~scalebridge.errors.ModelError` for what the stochastic model layer
        refuses (non-integer stoichiometry, rate rules, time-dependent propensities, ...).
        """
        return prepare(problem, self.counts_per_amount)

    def run_runs(
        self, prepared: Prepared, rng_states: np.ndarray, out: np.ndarray
    ) -> dict[str, int]:
        """Simulate ``len(rng_states)`` runs; run ``r`` draws only from ``rng_states[r]`` (not
        modified) and writes ``out[r, i, k]`` = output ``prepared.names[k]`` at
        ``prepared.times[i]``.  Returns additive statistics (module docstring)."""
        if self.record_events:
            raise OptionError(
                "ssa with record_events records one run event by event: use solve_events "
                "(runs = 1), not a run on the time grid"
            )
        rng = np.array(rng_states, dtype=np.uint64, order="C", copy=True).reshape(-1, 4)
        n_runs = rng.shape[0]
        want = (n_runs, prepared.times.size, len(prepared.names))
        if out.shape != want:
            raise OptionError(f"out has shape {out.shape}, expected {want}")
        if out.dtype == np.float64 and out.flags.c_contiguous and out.flags.writeable:
            stats = self._run_runs(prepared, rng, out)
        else:  # the kernels write C-contiguous float64 arrays
            buf = np.empty(want)
            stats = self._run_runs(prepared, rng, buf)
            out[...] = buf
        return stats

    def _run_runs(self, prepared: Prepared, rng: np.ndarray, out: np.ndarray) -> dict[str, int]:
        n_runs = rng.shape[0]
        plan = _Plan(prepared, self.variant)
        counters = np.zeros(K_.N_COUNTERS, dtype=np.int64)
        info = np.zeros(4)
        T = prepared.T
        executions = 0
        x0 = K_.padded(prepared.x0)
        x = np.empty_like(x0)
        a = np.empty(T.n_reactions)
        c = np.zeros(T.n_reactions)
        if plan.fast:
            c[:] = prepared.v0[T.c_slot]
            cols = np.ascontiguousarray(T.rec_ref)
            status = K_.ssa_ma_direct_runs(T, plan.mt, c, x0, prepared.times, rng, out, cols,
                                           x, a, counters, info)  # fmt: skip
            _check(status, info, prepared)
        elif plan.rs and not prepared.has_events:
            status = ssa_rssa.rssa_general_runs(
                T, prepared.K, plan.mt, c, x0, prepared.v0, prepared.times, rng, out,
                plan.sync_v, x, np.empty_like(prepared.v0), a, np.zeros(3),
                K_.cr_workspace(T.n_reactions), ssa_rssa.rs_workspace(T), plan.new_stack(),
                counters, info, np.empty(0, dtype=np.int64), np.empty(0, dtype=np.bool_),
                np.empty(0), np.empty((0, 0)),
            )  # fmt: skip
            _check(status, info, prepared)
        elif not prepared.has_events:
            W = K_.cr_workspace(T.n_reactions if plan.cr else 0)
            status = K_.ssa_general_runs(
                T, prepared.K, plan.mt, c, plan.cr, x0, prepared.v0, prepared.times, rng, out,
                plan.sync_v, x, np.empty_like(prepared.v0), a, np.zeros(3), W,
                plan.new_stack(), counters, info, np.empty(0, dtype=np.int64),
                np.empty(0, dtype=np.bool_), np.empty(0), np.empty((0, 0)),
            )  # fmt: skip
            _check(status, info, prepared)
        else:
            work = plan.workspaces()
            for r in range(n_runs):
                run = _EventRun(prepared, plan, rng[r], out[r], counters, work)
                run.simulate()
                executions += run.queue.n_executed
        stats = {
            "events": int(counters[K_.C_EVENTS]),
            "propensity_updates": int(counters[K_.C_UPDATES]),
            "event_executions": executions,
        }
        _variant_stats(plan, counters, stats)
        return stats

    def solve_events(
        self, problem: TimeCourse, seed: int | np.random.SeedSequence | None = None
    ) -> Result:
        """One run recording every reaction: a :class:`~scalebridge.results.Result` without a
        ``run`` dimension whose time coordinate holds the initial time (state after any events
        there), the time of every reaction and of every later SBML event execution (each with
        the state just after it; a reaction that triggers an event gives two rows at one time),
        and the end time ``problem.times[-1]`` (``problem.times`` is otherwise unused).

        The path is piecewise constant: each row holds from its time until the next row's.  The
        run draws from the stream ``SeedSequence(seed).spawn(1)[0]`` -- the stream of run 0 of
        an ensemble with that seed -- so with the same variant it is the same path as that run
        sampled on a grid.
        """
        t_start = time.perf_counter()
        ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        prepared = self.prepare(problem)
        plan = _Plan(prepared, self.variant)
        rng = stream_states(ss.spawn(1))
        counters = np.zeros(K_.N_COUNTERS, dtype=np.int64)
        grid = np.empty((0, len(prepared.names)))
        run = _EventRun(prepared, plan, rng[0], grid, counters, plan.workspaces(),
                        record_events=True)  # fmt: skip
        run.simulate()
        ev_t, ev_x = run.events()
        stats: dict[str, Any] = {
            "events": int(counters[K_.C_EVENTS]),
            "propensity_updates": int(counters[K_.C_UPDATES]),
            "event_executions": run.queue.n_executed,
        }
        _variant_stats(plan, counters, stats)
        stats.update(
            method=self.name,
            options=self.options(),
            seed=seed if not isinstance(seed, np.random.SeedSequence) else None,
            wall_time_s=time.perf_counter() - t_start,
        )
        net = problem.network
        names = prepared.names
        kinds = {n: net.kind_of(n) or "" for n in names}
        quantities = {n: "amount" for n in names if n in net.species_map}
        return Result.from_arrays(
            ev_t, (names, ev_x), runs=False, kinds=kinds, quantities=quantities, stats=stats
        )


# ---------------------------------------------------------------------------------------------
class _Plan:
    """Which kernel path a prepared problem takes, and what it needs."""

    def __init__(self, p: Prepared, variant: str):
        T = p.T
        self.T = T
        cm = p.sm.cm
        self.rs = variant == "rssa"
        self.cr = variant == "composition-rejection" or self.rs  # RSSA selects by CR too
        all_ma = bool(T.is_ma.all())
        species_only = bool((T.rec_kind == 0).all())
        self.fast = not self.cr and all_ma and species_only and not p.has_events
        self.check_trig = p.has_events and _state_triggers(p.sm)
        self.sync_v = (not all_ma) or self.check_trig
        self.mt = K_.ma_table(T)
        self.trig_slots = np.asarray([ev.trigger_slot for ev in cm.events], dtype=np.int64)
        self.time_roots = cm.time_only_roots if cm.time_only_roots.any() else None
        self.stack_size = max(p.K.stack_size, T.stack_size, 1)

    def new_stack(self) -> np.ndarray:
        return np.empty(self.stack_size)

    def workspaces(self) -> tuple[K_.CrState, ssa_rssa.RsState]:
        """Selection workspaces for runs done one after another (the kernels reset them)."""
        n_r = self.T.n_reactions
        W = K_.cr_workspace(n_r if self.cr else 0)
        R = ssa_rssa.rs_workspace(self.T, used=self.rs)
        return W, R


def _state_triggers(sm: StochasticModel) -> bool:
    """Whether some event trigger reads a species that reactions change (directly, through
    rules or through reaction rates): such triggers are evaluated after every reaction."""
    net = sm.network
    changing = set(sm.species)
    rules = net.assignment_rule_map
    seen: set[str] = set()

    def reads_state(name: str) -> bool:
        if name in seen:
            return False
        seen.add(name)
        if name in changing or name in net.reaction_map:
            return True
        rule = rules.get(name)
        if rule is None:
            return False
        e = expand_functions(rule.math, net.functions_table) if net.functions else rule.math
        return any(reads_state(s) for s in symbols(e))

    for ev in net.events:
        e = expand_functions(ev.trigger, net.functions_table) if net.functions else ev.trigger
        if any(isinstance(n, Call) and n.op == "rateOf" for n in walk(e)):
            return True
        if any(reads_state(s) for s in symbols(e)):
            return True
    return False


def _variant_stats(plan: _Plan, counters: np.ndarray, stats: dict[str, Any]) -> None:
    if plan.cr:
        stats["rejections"] = int(counters[K_.C_REJECTIONS])
    if plan.rs:
        stats["thinned"] = int(counters[K_.C_THINNED])


def _check(status: int, info: np.ndarray, p: Prepared) -> None:
    if status == K_.BAD_PROPENSITY:
        raise _bad_propensity(p, int(info[1]), float(info[2]), float(info[3]), int(info[0]))


def _bad_propensity(p: Prepared, j: int, t: float, value: float, run: int | None) -> SolverError:
    rid = p.sm.reactions[j]
    if value != value:
        what = "NaN"
    elif value < 0:
        what = f"negative ({value:g})"
    elif value == np.inf:
        what = "infinite"
    else:  # rssa: a propensity bound overflowed
        what = f"too large to bound ({value:g})"
    where = f" in run {run}" if run is not None else ""
    return SolverError(
        f"the propensity of reaction '{rid}' became {what} at t = {t:g}{where}",
        variable=rid,
        time=t,
    )


class _EventRun:
    """One run of a model with SBML events (or one run recording every reaction): compiled
    stretches between event times, the event queue in Python."""

    def __init__(self, p: Prepared, plan: _Plan, s: np.ndarray, out: np.ndarray,
                 counters: np.ndarray, work: tuple[K_.CrState, ssa_rssa.RsState], *,
                 record_events: bool = False):  # fmt: skip
        self.p, self.plan, self.s, self.out, self.counters = p, plan, s, out, counters
        self.record_events = record_events
        self.stack = plan.new_stack()
        self.x = K_.padded(p.x0)
        self.v = p.v0.copy()
        self.c = np.zeros(p.T.n_reactions)
        self.y = p.y0.copy()
        self.a = np.zeros(p.T.n_reactions)
        self.queue = EventQueue(p.sm.cm, self.stack)
        self.W, self.R = work
        self.info = np.zeros(4)
        self.fs = np.zeros(3)
        self.ev_t = np.empty(1024 if record_events else 0)
        self.ev_x = np.empty((self.ev_t.size, len(p.names)))
        self.n_ev = 0

    def events(self) -> tuple[np.ndarray, np.ndarray]:
        return self.ev_t[: self.n_ev].copy(), self.ev_x[: self.n_ev].copy()

    def _grow(self) -> None:
        n = self.ev_t.size
        ev_t, ev_x = np.empty(2 * n), np.empty((2 * n, self.ev_x.shape[1]))
        ev_t[:n], ev_x[:n] = self.ev_t, self.ev_x
        self.ev_t, self.ev_x = ev_t, ev_x

    def _row(self, t: float) -> None:
        """Append the current state at ``t`` to the event record."""
        if self.n_ev == self.ev_t.size:
            self._grow()
        self.ev_t[self.n_ev] = t
        record(self.p.T, self.p.K, t, self.x, self.v, self.ev_x[self.n_ev], self.stack)
        self.n_ev += 1

    def _events_at(self, t: float) -> bool:
        """Run the event queue at ``t``; True when an event executed."""
        p, T = self.p, self.p.T
        if not p.has_events:
            return False
        n_s = T.n_species
        self.y[T.x_state] = self.x[:n_s] / T.scale
        before = self.queue.n_executed
        self.queue.update(t, self.y, self.v)
        if self.queue.n_executed == before:
            return False
        counts = self.y[T.x_state] * T.scale
        for i, c in enumerate(counts):
            if not (
                math.isfinite(c)
                and c >= 0
                and abs(c - round(c)) <= INTEGER_TOLERANCE * max(1.0, abs(c))
            ):
                sid = p.sm.species[i]
                raise SolverError(
                    f"an event set species '{sid}' to {c:g} molecules at t = {t:g}: "
                    "stochastic methods need whole, non-negative counts",
                    variable=sid,
                    time=t,
                )
        self.x[:n_s] = np.round(counts)
        refresh_constants(T, self.v)
        return True

    def simulate(self) -> None:
        p, plan, T = self.p, self.plan, self.p.T
        t = float(p.times[0])
        t_end = float(p.times[-1])
        times = p.times[:0] if self.record_events else p.times  # no grid when recording events
        n_t = times.size
        snap = SNAP * max(t_end - t, abs(t_end), 1.0)
        cm = p.sm.cm
        g = np.zeros(p.K.root_slots.shape[0])
        self._events_at(t)
        if self.record_events:
            self._row(t)
        i_out = 0
        fresh = True  # propensities must be computed (first stretch, or after an event)
        while True:
            t_stop = min(t_end, self.queue.next_time())
            if plan.time_roots is not None:
                t_cross = vm.first_crossing(
                    p.K, t, t_stop, TIME_ROOT_SAMPLES, self.v, plan.time_roots,
                    cm.time_root_slope, g, self.stack,
                )  # fmt: skip
                t_stop = min(t_stop, t_cross)
            pending = {q.event for q in self.queue.pending}
            fall_ok = np.array(
                [ev.persistent or i not in pending for i, ev in enumerate(cm.events)],
                dtype=np.bool_,
            )
            trig = np.ascontiguousarray(self.queue.trig, dtype=np.bool_)
            status = K_.FULL
            while status == K_.FULL:
                if plan.rs:
                    t, i_out, status, self.n_ev = ssa_rssa.rssa_core(
                        T, p.K, plan.mt, self.c, fresh, self.x, self.v, self.a, self.fs,
                        self.s, t, t_stop, times, i_out, self.out, plan.trig_slots, trig,
                        fall_ok, plan.check_trig, plan.sync_v, self.W, self.R, self.ev_t,
                        self.ev_x, self.n_ev, self.stack, self.counters, self.info,
                    )  # fmt: skip
                else:
                    t, i_out, status, self.n_ev = K_.ssa_core(
                        T, p.K, plan.mt, self.c, plan.cr, fresh, self.x, self.v, self.a,
                        self.fs, self.s, t, t_stop, times, i_out, self.out, plan.trig_slots,
                        trig, fall_ok, plan.check_trig, plan.sync_v, self.W, self.ev_t,
                        self.ev_x, self.n_ev, self.stack, self.counters, self.info,
                    )  # fmt: skip
                fresh = False
                if status == K_.FULL:
                    self._grow()
            if status == K_.BAD_PROPENSITY:
                raise _bad_propensity(p, int(self.info[1]), t, float(self.info[3]), None)
            if p.has_events:
                self.queue.trig = trig  # falling edges the kernel settled itself
            if self._events_at(t):
                fresh = True
                if self.record_events:
                    self._row(t)
                # Output times within round-off before the event show the values after it.
                i = i_out - 1
                while i >= 1 and t - times[i] <= snap:
                    record(T, p.K, float(times[i]), self.x, self.v, self.out[i], self.stack)
                    i -= 1
            while i_out < n_t and times[i_out] <= t:
                record(T, p.K, float(times[i_out]), self.x, self.v, self.out[i_out], self.stack)
                i_out += 1
            if t >= t_end:
                break
        if self.record_events:
            self._row(t_end)
