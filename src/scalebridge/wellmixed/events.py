"""SBML event semantics for the deterministic path, independent of the integrator.

An event *fires* when its trigger goes from false to true (at the initial time too when its
``initialValue`` is false).  Firing schedules an *execution* after the event's delay (now when it
has none); with ``useValuesFromTriggerTime`` the assigned values are computed at firing.  At a
given time, due executions run one at a time in descending priority (ties: firing order, then
document order), and after each one every trigger is evaluated again: a trigger that went
false -> true fires, and a non-persistent event whose trigger is now false loses its pending
executions.  Assigning a species that is not in "substance units only" assigns its
concentration, stored as amount = value x (compartment size after the event's other
assignments).
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

import numpy as np

from ..codegen import vm
from ..codegen.build import CompiledModel, EventInfo
from ..errors import SolverError


@dataclass(order=True)
class _Pending:
    time: float
    seq: int
    event: int = field(compare=False)
    values: np.ndarray | None = field(compare=False, default=None)


class EventQueue:
    """Pending event executions and trigger states for one simulation."""

    def __init__(self, cm: CompiledModel, stack: np.ndarray):
        self.cm = cm
        self.K = cm.kernel
        self.stack = stack
        self.events: list[EventInfo] = cm.events
        self.trig = np.array([ev.initial_value for ev in self.events], dtype=bool)
        self.pending: list[_Pending] = []
        self._seq = itertools.count()
        self.n_executed = 0

    # -- evaluation -------------------------------------------------------------------------
    def _refresh(self, t: float, y: np.ndarray, v: np.ndarray) -> None:
        vm.evaluate_all(self.K, t, y, v, self.stack)

    def _triggers(self, v: np.ndarray) -> np.ndarray:
        vm.run_segment(self.K, v, vm.SEG_TRIGGERS, self.stack)
        vals = v[[ev.trigger_slot for ev in self.events]]
        return (vals != 0.0) & ~np.isnan(vals)

    def _values(self, i: int, v: np.ndarray) -> np.ndarray:
        vm.run_segment(self.K, v, vm.SEG_EVENT0 + i, self.stack)
        return v[list(self.events[i].value_slots)].copy()

    def next_time(self) -> float:
        return self.pending[0].time if self.pending else np.inf

    # -- transitions ------------------------------------------------------------------------
    def update(self, t: float, y: np.ndarray, v: np.ndarray) -> None:
        """Look at the triggers at (t, y): fire rising ones, cancel non-persistent falling ones,
        then execute everything due at ``t``.  Modifies ``y`` and ``v`` in place."""
        if not self.events:
            return
        self._refresh(t, y, v)
        self._transitions(t, v)
        guard = 0
        while self.pending and self.pending[0].time <= t:
            guard += 1
            if guard > 100_000:
                raise SolverError("events keep firing at the same time", time=t)
            self._execute_one(t, y, v)
            self._refresh(t, y, v)
            self._transitions(t, v)

    def _transitions(self, t: float, v: np.ndarray) -> None:
        now = self._triggers(v)
        rising = np.nonzero(now & ~self.trig)[0]
        falling = np.nonzero(~now & self.trig)[0]
        self.trig = now
        if falling.size:
            gone = {int(i) for i in falling if not self.events[i].persistent}
            if gone:
                self.pending = [p for p in self.pending if p.event not in gone]
                heapq.heapify(self.pending)
        if rising.size:
            vm.run_segment(self.K, v, vm.SEG_DELAYS, self.stack)
            for i in rising:
                self._fire(int(i), t, v)

    def _fire(self, i: int, t: float, v: np.ndarray) -> None:
        ev = self.events[i]
        delay = 0.0
        if ev.delay_slot >= 0:
            delay = float(v[ev.delay_slot])
            if not delay >= 0.0:
                raise SolverError(f"event '{ev.id}' has negative delay {delay}", time=t)
        values = self._values(i, v) if ev.use_values_from_trigger_time else None
        heapq.heappush(self.pending, _Pending(t + delay, next(self._seq), i, values))

    def _execute_one(self, t: float, y: np.ndarray, v: np.ndarray) -> None:
        due = [p for p in self.pending if p.time <= t]
        if len(due) > 1:
            vm.run_segment(self.K, v, vm.SEG_PRIORITIES, self.stack)

            def prio(p: _Pending) -> float:
                s = self.events[p.event].priority_slot
                val = float(v[s]) if s >= 0 else -np.inf
                return val if val == val else -np.inf

            best = max(due, key=lambda p: (prio(p), -p.seq))
        else:
            best = due[0]
        self.pending.remove(best)
        heapq.heapify(self.pending)
        values = best.values if best.values is not None else self._values(best.event, v)
        self._assign(self.events[best.event], values, t, y, v)
        self.n_executed += 1

    def _assign(self, ev: EventInfo, values: np.ndarray, t: float, y: np.ndarray,
                v: np.ndarray) -> None:  # fmt: skip
        scaled = []
        assigned = {t.name for t in ev.targets}
        old_size = {
            t.name: (y[t.index] if t.is_state else v[t.index]) for t in ev.targets if t.rescale
        }
        for target, val in zip(ev.targets, values, strict=True):
            if target.scale_slot >= 0:
                scaled.append((target, val))
            elif target.is_state:
                y[target.index] = val
            else:
                v[target.index] = val
        for target in ev.targets:
            if target.rescale:
                new = y[target.index] if target.is_state else v[target.index]
                factor = old_size[target.name] / new
                for k in target.rescale:
                    if self.cm.state_names[k] not in assigned:
                        y[k] *= factor
        if scaled:
            self._refresh(t, y, v)  # compartment sizes after this event's assignments
            for target, val in scaled:
                amount = val * v[target.scale_slot]
                if target.is_state:
                    y[target.index] = amount
                else:
                    v[target.index] = amount
