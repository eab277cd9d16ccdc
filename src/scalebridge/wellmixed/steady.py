"""Steady states of the rate equations: f(y*) = 0 on the conservation-law surface.

With conservation laws C y = T (C from :func:`scalebridge.model.conservation.conservation_laws`,
T from the initial state) the Jacobian of f is singular, so one equation per law is replaced by
its law: rows ``p_k`` (pivot states of C) of f are replaced by ``C_k y - T_k``.  The square system
F(y) = 0 is solved by damped Newton with the analytic Jacobian (dense LU, or SciPy's sparse LU
for large systems).  When Newton from the initial state fails, the model is first integrated
forward (compiled BDF) over growing horizons until the rates nearly vanish, and Newton polishes
from there.

Stability: with Q an orthonormal basis of {x : C x = 0} (the space the dynamics move in), the
eigenvalues of Q^T J Q decide; the steady state is stable when every real part is negative.
Models with events or with rates that depend on time have no steady state in this sense and are
refused.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..codegen import vm
from ..codegen.build import AMOUNT, CompiledModel
from ..errors import ModelError, SolverError, UnsupportedFeatureError
from ..model.conservation import conservation_laws
from ..model.expr import Call, walk
from ..model.network import ReactionNetwork
from ..problem import UNITS, check_vars
from .compiled import compiled

SPARSE_ABOVE = 200  # states; above this the Newton solves use a sparse LU


@dataclass
class SteadyState:
    """A steady state and how it was found.

    ``values`` are the requested variables (species as SBML defines them unless ``units``
    says otherwise); ``states`` the integrator states (species amounts, rate-rule variables)
    named by ``state_names``.  ``residual`` is max_i |f_i(y*)| / (atol + rtol |y*_i|) in the
    states' units per unit time.  ``eigenvalues`` are those of the Jacobian on the
    conservation-law surface; ``stable`` says whether all have negative real parts.
    """

    values: dict[str, float]
    states: np.ndarray
    state_names: list[str]
    residual: float
    method: str
    iterations: int
    simulated_time: float
    eigenvalues: np.ndarray
    stable: bool
    conservation_laws: list[str] = field(default_factory=list)
    wall_time_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "values": dict(self.values),
            "states": dict(zip(self.state_names, map(float, self.states), strict=True)),
            "residual": self.residual,
            "method": self.method,
            "iterations": self.iterations,
            "simulated_time": self.simulated_time,
            "eigenvalues_real": [float(x) for x in self.eigenvalues.real],
            "eigenvalues_imag": [float(x) for x in self.eigenvalues.imag],
            "stable": self.stable,
            "conservation_laws": list(self.conservation_laws),
            "wall_time_s": self.wall_time_s,
        }


def steady_state(
    model: ReactionNetwork,
    *,
    params: Mapping[str, float] | None = None,
    vars: Iterable[str] | None = None,
    units: str = "model",
    rtol: float = 1e-10,
    atol: float = 1e-12,
    max_iterations: int = 100,
    t_max: float = 1e10,
) -> SteadyState:
    """A steady state near the model's initial state (see the module docstring).

    Newton starts from the initial state; when it cannot converge, the model is integrated
    forward first.  The root found is returned with its stability, stable or not.

    ``rtol``/``atol`` define convergence: every Newton update and every scaled rate
    |f_i| / (atol + rtol |y_i|) below 1.  ``t_max`` bounds the forward integration used when
    Newton alone does not converge.
    """
    t_start = time.perf_counter()
    if units not in UNITS:
        raise ModelError(f"units must be one of {', '.join(UNITS)}, not '{units}'")
    net = model
    if net.events:
        raise UnsupportedFeatureError(
            "steady state of a model with events", element=net.events[0].id or None
        )
    cm = compiled(net)
    _refuse_time_dependence(cm)
    y0, v = cm.initial(params or {}, 0.0, default_size=1.0)
    n = cm.n_states
    C, laws = _law_matrix(net, cm)
    T = C @ y0
    pivots = _pivots(C)
    solver = _Newton(cm, v, C, T, pivots, rtol, atol)
    y, iters, ok = solver.solve(y0, max_iterations)
    method, t_sim = "newton", 0.0
    if not ok:
        y_sim, t_sim = _relax(cm, v, y0, rtol, atol, t_max, solver)
        y, more, ok = solver.solve(y_sim, max_iterations)
        iters += more
        method = "simulation+newton"
        if not ok:
            y = y_sim
            ok = solver.converged_rates(y)
    if not ok:
        worst = int(np.argmax(solver.scaled_rates(y))) if n else 0
        raise SolverError(
            f"no steady state found: '{cm.state_names[worst]}' still changes after Newton "
            f"and {t_sim:g} time units of simulation",
            variable=cm.state_names[worst],
            time=t_sim,
        )
    eig = _surface_eigenvalues(cm, v, y, C)
    names = list(vars) if vars is not None else [s.id for s in net.species]
    check_vars(net, names)
    values = _report(cm, v, y, names, units)
    return SteadyState(
        values=values,
        states=y,
        state_names=list(cm.state_names),
        residual=float(np.max(solver.scaled_rates(y))) if n else 0.0,
        method=method,
        iterations=iters,
        simulated_time=t_sim,
        eigenvalues=eig,
        stable=bool(eig.size == 0 or np.all(eig.real < 0)),
        conservation_laws=laws,
        wall_time_s=time.perf_counter() - t_start,
    )


def _refuse_time_dependence(cm: CompiledModel) -> None:
    for key, e in cm.derived_exprs.items():
        if any(isinstance(node, Call) and node.op == "time" for node in walk(e)):
            if key.startswith(("TRIG#", "DELAY#", "PRIO#", "EA#", "ROOT#")):
                continue
            raise UnsupportedFeatureError(
                "steady state of a model whose rates or rules depend on time", element=key
            )


def _law_matrix(net: ReactionNetwork, cm: CompiledModel) -> tuple[np.ndarray, list[str]]:
    index = {k: i for i, k in enumerate(cm.state_keys)}
    try:
        laws = conservation_laws(net)
    except ModelError:
        return np.zeros((0, cm.n_states)), []
    rows = []
    for law in laws:
        row = np.zeros(cm.n_states)
        for sid, c in law.coefficients.items():
            row[index[AMOUNT + sid]] = c
        rows.append(row)
    C = np.array(rows) if rows else np.zeros((0, cm.n_states))
    return C, [law.lhs_text() for law in laws]


def _pivots(C: np.ndarray) -> list[int]:
    """One state per law whose equation the law replaces (pivots of QR with column pivoting)."""
    if C.shape[0] == 0:
        return []
    _, _, perm = sla.qr(C, pivoting=True, mode="economic")
    return [int(p) for p in perm[: C.shape[0]]]


class _Newton:
    def __init__(self, cm: CompiledModel, v: np.ndarray, C: np.ndarray, T: np.ndarray,
                 pivots: list[int], rtol: float, atol: float):  # fmt: skip
        self.cm, self.K, self.v = cm, cm.kernel, v
        self.C, self.T, self.pivots = C, T, pivots
        self.rtol, self.atol = rtol, atol
        self.n = cm.n_states
        self.stack = vm.new_stack(self.K)
        self.g = np.zeros(self.K.n_g)
        self.f = np.zeros(self.n)

    def rates(self, y: np.ndarray) -> np.ndarray:
        vm.rhs(self.K, 0.0, y, self.v, self.f, self.stack)
        return self.f.copy()

    def scaled_rates(self, y: np.ndarray) -> np.ndarray:
        f = self.rates(y)
        f[self.pivots] = 0.0  # those directions are fixed by the laws
        return np.abs(f) / (self.atol + self.rtol * np.abs(y))

    def converged_rates(self, y: np.ndarray) -> bool:
        return bool(np.all(np.isfinite(y)) and np.max(self.scaled_rates(y), initial=0.0) <= 1.0)

    def residual(self, y: np.ndarray) -> np.ndarray:
        F = self.rates(y)
        if self.pivots:
            F[self.pivots] = self.C @ y - self.T
        return F

    def jacobian(self, y: np.ndarray) -> Any:
        vm.jac(self.K, 0.0, y, self.v, self.g, self.stack)
        K = self.K
        nnz = K.jac_indices.shape[0]
        J = sp.csr_matrix(
            (self.g[:nnz].copy(), K.jac_indices, K.jac_indptr), shape=(self.n, self.n)
        )
        if self.pivots:
            J = J.tolil()
            for k, p in enumerate(self.pivots):
                J.rows[p] = []
                J.data[p] = []
                for col in np.nonzero(self.C[k])[0]:
                    J[p, col] = self.C[k, col]
            J = J.tocsr()
        return J

    def step(self, y: np.ndarray) -> np.ndarray | None:
        F = self.residual(y)
        J = self.jacobian(y)
        try:
            if self.n > SPARSE_ABOVE:
                dy = spla.splu(J.tocsc()).solve(-F)
            else:
                dy = np.linalg.solve(J.toarray(), -F)
        except (np.linalg.LinAlgError, RuntimeError):
            return None
        return dy if np.all(np.isfinite(dy)) else None

    def solve(self, y0: np.ndarray, max_iterations: int) -> tuple[np.ndarray, int, bool]:
        """Damped Newton from ``y0``: (y, iterations, converged)."""
        y = y0.copy()
        if self.n == 0:
            return y, 0, True
        norm = float(np.linalg.norm(self.residual(y)))
        for it in range(1, max_iterations + 1):
            dy = self.step(y)
            if dy is None:
                return y, it, False
            lam = 1.0
            while True:
                trial = y + lam * dy
                tnorm = float(np.linalg.norm(self.residual(trial)))
                if (math.isfinite(tnorm) and tnorm < (1.0 - 1e-4 * lam) * norm) or lam < 1e-4:
                    break
                lam *= 0.5
            if not math.isfinite(tnorm):
                return y, it, False
            y, norm = trial, tnorm
            small_step = np.all(np.abs(lam * dy) <= self.atol + self.rtol * np.abs(y))
            if small_step and self.converged_rates(y) and self._on_surface(y):
                return y, it, True
        return y, max_iterations, False

    def _on_surface(self, y: np.ndarray) -> bool:
        if not self.pivots:
            return True
        scale = self.atol + self.rtol * (np.abs(self.C) @ np.abs(y))
        return bool(np.all(np.abs(self.C @ y - self.T) <= 10 * scale))


def _relax(cm: CompiledModel, v: np.ndarray, y0: np.ndarray, rtol: float, atol: float,
           t_max: float, newton: _Newton) -> tuple[np.ndarray, float]:  # fmt: skip
    """Integrate forward over horizons 1, 10, 100, ... until the rates nearly vanish."""
    from .bdf import solve as bdf_solve

    K = cm.with_records([])
    y, t, horizon = y0.copy(), 0.0, 1.0
    atol_arr = np.full(cm.n_states, max(atol, 1e-12))
    empty = np.zeros((0, 0))
    ws = None
    while t < t_max:
        t_next = min(t + horizon, t_max)
        res = bdf_solve(K, t, y, t_next, np.zeros(0), 0, empty, v, rtol=max(rtol, 1e-8),
                        atol=atol_arr, workspace=ws)  # fmt: skip
        if not res.ok:
            break
        ws = res.workspace
        t, y = float(res.t), np.array(res.y)
        if np.max(newton.scaled_rates(y), initial=0.0) <= 1e3:
            break
        horizon *= 10.0
    return y, t


def _surface_eigenvalues(
    cm: CompiledModel, v: np.ndarray, y: np.ndarray, C: np.ndarray
) -> np.ndarray:
    n = cm.n_states
    if n == 0:
        return np.zeros(0, dtype=complex)
    K = cm.kernel
    g = np.zeros(K.n_g)
    J = np.zeros((n, n))
    vm.jac_dense(K, 0.0, y, v, g, J, vm.new_stack(K))
    if C.shape[0]:
        Q = sla.null_space(C)
        J = Q.T @ J @ Q
    return np.linalg.eigvals(J)


def _report(
    cm: CompiledModel, v: np.ndarray, y: np.ndarray, names: list[str], units: str
) -> dict[str, float]:
    net = cm.network
    slots = []
    for name in names:
        s = net.species_map.get(name)
        q = None
        if s is not None:
            q = (
                units
                if units != "model"
                else ("amount" if s.has_only_substance_units else "concentration")
            )
        slots.append(cm.slot_of(name, q))
    K = cm.with_records(slots)
    row = np.zeros(len(slots))
    vm.record(K, 0.0, y, v, row, vm.new_stack(K))
    return dict(zip(names, map(float, row), strict=True))
