"""A reference integrator built on SciPy, for tests only.

It integrates the same compiled kernels as the production integrator
(:mod:`scalebridge.wellmixed.bdf`) but steps in Python with ``scipy.integrate.solve_ivp``
(Radau by default), so tests can compare the two independently implemented steppers.  It follows
the same contract as :func:`scalebridge.wellmixed.bdf.solve`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.integrate import solve_ivp

from ..codegen import vm


@dataclass
class ReferenceResult:
    status: int
    t: float
    y: np.ndarray
    i_out: int
    roots_fired: np.ndarray
    n_steps: int = 0
    n_rhs: int = 0
    n_jac: int = 0
    n_lu: int = 0
    component: int = -1
    message: str = ""
    ok: bool = field(init=False)

    def __post_init__(self) -> None:
        self.ok = self.status == 0


def solve(K: vm.Kernel, t0: float, y0: np.ndarray, t_stop: float, t_out: np.ndarray,
          i_out: int, out: np.ndarray, v: np.ndarray, *, rtol: float, atol: np.ndarray,
          method: str = "Radau", **_: object) -> ReferenceResult:  # fmt: skip
    stack = vm.new_stack(K)
    n = y0.shape[0]
    g = np.zeros(K.n_g)
    J = np.zeros((n, n))

    def f(t: float, y: np.ndarray) -> np.ndarray:
        d = np.zeros(n)
        vm.rhs(K, t, y, v, d, stack)
        return d

    def jac(t: float, y: np.ndarray) -> np.ndarray:
        vm.jac_dense(K, t, y, v, g, J, stack)
        return J.copy()

    n_roots = K.root_slots.shape[0]
    g0 = np.zeros(n_roots)
    vm.roots(K, t0, y0, v, g0, stack)

    def make_event(k: int) -> Any:
        def ev(t: float, y: np.ndarray) -> float:
            if g0[k] == 0.0 or t <= t0:
                return 1.0
            r = np.zeros(n_roots)
            vm.roots(K, t, y, v, r, stack)
            return float(r[k])

        ev.terminal = True  # type: ignore[attr-defined]
        return ev

    events = [make_event(k) for k in range(n_roots)]
    if n == 0:
        t_reached = t_stop
        y = y0.copy()
        fired = np.zeros(n_roots, dtype=bool)
        sol = None
    else:
        sol = solve_ivp(f, (t0, t_stop), y0, method=method, rtol=rtol, atol=atol,
                        jac=jac if method in ("Radau", "BDF", "LSODA") else None,
                        dense_output=True, events=events or None)  # fmt: skip
        if sol.status < 0:
            return ReferenceResult(1, float(sol.t[-1]), sol.y[:, -1], i_out,
                                   np.zeros(n_roots, bool), message=sol.message)  # fmt: skip
        t_reached = float(sol.t[-1])
        y = sol.y[:, -1].copy()
        fired = (
            np.array([len(te) > 0 for te in sol.t_events], dtype=bool)
            if events
            else (np.zeros(0, dtype=bool))
        )
        if sol.status == 1:  # nudge past the root so its sign has changed
            t_hi = t_reached + 1e-12 * max(1.0, abs(t_reached))
            t_hi = min(t_hi, t_stop)
            y = sol.sol(t_hi)
            t_reached = t_hi
    while i_out < t_out.shape[0] and t_out[i_out] < t_reached:
        yi = sol.sol(t_out[i_out]) if sol is not None else y0
        vm.record(K, float(t_out[i_out]), yi, v, out[i_out], stack)
        i_out += 1
    return ReferenceResult(0, t_reached, y, i_out, fired,
                           n_steps=0 if sol is None else sol.t.size,
                           n_rhs=0 if sol is None else sol.nfev)  # fmt: skip
