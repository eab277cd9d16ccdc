"""Deterministic rate equations: ``method="ode"``.

The model's states (species amounts, rate-rule variables; see :mod:`scalebridge.codegen.build`)
follow dy/dt = f(t, y), integrated by the compiled variable-order BDF of
:mod:`scalebridge.wellmixed.bdf` with the analytic Jacobian.  Integration stops exactly at every
event trigger (root of a trigger's comparison), at discontinuities of the right-hand side
(comparisons inside ``piecewise``) and at scheduled event executions; events follow SBML
semantics (:mod:`scalebridge.wellmixed.events`).  The integrator compares root functions at its
step ends; root functions of time alone (periodic dosing, for example) are also scanned on
``TIME_ROOT_SAMPLES`` sub-intervals of every integration segment, so a trigger that turns true
and false again within one long step is still seen unless it stays true (or false) for less than
1/1000 of the segment.  An output time within 1e-12 (relative to the time span) of an event
shows the values after the event.  Species are reported as SBML defines them
(concentration unless hasOnlySubstanceUnits) unless the problem asks for amounts or
concentrations.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..codegen import vm
from ..codegen.build import CompiledModel
from ..errors import OptionError, SolverError
from ..problem import TimeCourse, check_vars
from ..results import Result
from .compiled import compiled
from .events import EventQueue

MAX_STOPS = 1_000_000
# A compartment whose size the model leaves unset has size 1, as for the stochastic methods
# (DESIGN.md: the system size is the compartment size where one is given, 1 otherwise).
DEFAULT_SIZE = 1.0
# Root functions of time alone are scanned on this many sub-intervals of every integration
# segment before the integrator runs (the integrator only compares roots at its step ends, and a
# periodic trigger can turn true and false again within one long step).
TIME_ROOT_SAMPLES = 1000


@dataclass(frozen=True)
class ODE:
    """Deterministic integration of the rate equations.

    ``rtol`` (scalar) and ``atol`` (absolute, in the states' units) set the local error test
    ``|err_i| <= atol + rtol * |y_i|``; ``max_steps`` bounds the steps of one run; ``hmax``
    the step size; ``linear_solver`` is ``"auto"``, ``"dense"`` or ``"sparse"``;
    ``integrator`` is ``"bdf"`` (compiled, the default) or ``"scipy"`` (a slow reference that
    steps in Python, for cross-checks).
    """

    rtol: float = 1e-6
    atol: float = 1e-12
    max_steps: int = 500_000
    hmax: float = float("inf")
    linear_solver: str = "auto"
    integrator: str = "bdf"

    name = "ode"
    exact = False
    stochastic = False

    def __post_init__(self) -> None:
        if not (0 < self.rtol < 1):
            raise OptionError(f"rtol must be in (0, 1), got {self.rtol}")
        if not (self.atol > 0):
            raise OptionError(f"atol must be positive, got {self.atol}")
        if self.linear_solver not in ("auto", "dense", "sparse"):
            raise OptionError(
                f"linear_solver must be auto, dense or sparse, not {self.linear_solver!r}"
            )
        if self.integrator not in ("bdf", "scipy"):
            raise OptionError(f"integrator must be 'bdf' or 'scipy', not {self.integrator!r}")

    def options(self) -> dict[str, Any]:
        return asdict(self)

    def solve(self, problem: TimeCourse) -> Result:
        t_start = time.perf_counter()
        cm = compiled(problem.network)
        names = problem.output_names()
        check_vars(problem.network, names)
        quantities = {n: problem.quantity_of(n) for n in names}
        K = cm.with_records(cm.slot_of(n, quantities[n]) for n in names)
        y, v = cm.initial(problem.values, problem.t0, default_size=DEFAULT_SIZE)
        out = np.full((problem.times.size, len(names)), np.nan)
        stats = integrate(cm, K, y, v, problem.times, out, self)
        wall = time.perf_counter() - t_start
        stats.update(method=self.name, options=self.options(), seed=None, wall_time_s=wall)
        kinds = {n: problem.network.kind_of(n) or "" for n in names}
        return Result.from_arrays(
            problem.times,
            (names, out),
            runs=False,
            kinds=kinds,
            quantities={n: q for n, q in quantities.items() if q},
            stats=stats,
        )


def _stepper(method: ODE) -> Callable[..., Any]:
    if method.integrator == "scipy":
        from .reference import solve as ref_solve

        return ref_solve
    from .bdf import solve as bdf_solve

    return bdf_solve


def integrate(cm: CompiledModel, K: vm.Kernel, y: np.ndarray, v: np.ndarray,
              times: np.ndarray, out: np.ndarray, method: ODE) -> dict[str, Any]:  # fmt: skip
    """Integrate from ``times[0]`` to ``times[-1]``, filling ``out`` (times x recorded slots).

    Returns run statistics.  Raises :class:`SolverError` naming the variable and the time of a
    failure.
    """
    stack = vm.new_stack(K)
    step = _stepper(method)
    atol = np.full(cm.n_states, method.atol)
    queue = EventQueue(cm, stack)
    t = float(times[0])
    t_end = float(times[-1])
    queue.update(t, y, v)
    vm.record(K, t, y, v, out[0], stack)
    i_out = 1
    totals = {"steps": 0, "rhs_evaluations": 0, "jacobian_evaluations": 0, "lu_factorizations": 0}
    pool_key = f"bdf/{method.linear_solver}"
    workspace = cm.take(pool_key) if method.integrator == "bdf" else None
    stops = 0
    time_roots = cm.time_only_roots if cm.time_only_roots.any() else None
    g = np.zeros(K.root_slots.shape[0])
    span = max(t_end - t, abs(t_end), 1.0)
    snap = 1e-12 * span
    while t < t_end:
        t_stop = min(t_end, queue.next_time())
        if time_roots is not None:
            t_cross = vm.first_crossing(
                K, t, t_stop, TIME_ROOT_SAMPLES, v, time_roots, cm.time_root_slope, g, stack
            )
            t_stop = min(t_stop, t_cross)
        kwargs: dict[str, Any] = dict(rtol=method.rtol, atol=atol, hmax=method.hmax,
                                      max_steps=method.max_steps,
                                      linear_solver=method.linear_solver)  # fmt: skip
        if method.integrator == "bdf":
            kwargs["workspace"] = workspace
        res = step(K, t, y, t_stop, times, i_out, out, v, **kwargs)
        workspace = getattr(res, "workspace", workspace)
        totals["steps"] += res.n_steps
        totals["rhs_evaluations"] += res.n_rhs
        totals["jacobian_evaluations"] += res.n_jac
        totals["lu_factorizations"] += res.n_lu
        if not res.ok:
            raise _failure(cm, res)
        t, y, i_out = float(res.t), np.array(res.y, dtype=np.float64), res.i_out
        executed = queue.n_executed
        queue.update(t, y, v)
        if queue.n_executed != executed:
            # Output times within round-off of the event time show the values after it.
            i = i_out - 1
            while i >= 1 and t - times[i] <= snap:
                vm.record(K, float(times[i]), y, v, out[i], stack)
                i -= 1
        if not np.all(np.isfinite(y)):
            bad = int(np.nonzero(~np.isfinite(y))[0][0])
            raise SolverError(
                f"variable '{cm.state_names[bad]}' became {y[bad]} at t = {t:g}",
                variable=cm.state_names[bad],
                time=t,
            )
        while i_out < times.size and times[i_out] <= t:
            vm.record(K, float(times[i_out]), y, v, out[i_out], stack)
            i_out += 1
        stops += 1
        if stops > MAX_STOPS:
            raise SolverError(f"more than {MAX_STOPS} event or discontinuity stops", time=t)
    if workspace is not None:
        cm.give(pool_key, workspace)
    totals["events"] = queue.n_executed
    totals["stops"] = stops
    return totals


def _failure(cm: CompiledModel, res: Any) -> SolverError:
    comp = int(getattr(res, "component", -1))
    name = cm.state_names[comp] if 0 <= comp < cm.n_states else None
    where = f" in variable '{name}'" if name else ""
    msg = getattr(res, "message", "") or "integration failed"
    return SolverError(f"{msg}{where} at t = {float(res.t):g}", variable=name, time=float(res.t))
