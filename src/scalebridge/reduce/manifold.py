"""The critical manifold y = h(x) of a fast subsystem: numerically, symbolically, and its stability.

Notation
--------
The dynamic variables (states ``z``: species amounts and rate-rule variables, see
:mod:`scalebridge.reduce.timescales`) split into fast ``y`` and slow ``x``; ``f = F_y`` are the
fast rows of the right-hand side.  Conservation laws supported on the fast variables alone
(``c^T y = T_c``, e.g. free plus bound receptor) make those rows linearly dependent, so on each
such law one row of ``f`` (its pivot) is replaced by the law.  The critical manifold is the
solution set of

    G(x, y) = [ f(x, y) without the pivot rows ;  C_Y y - T_Y ] = 0,

a graph ``y = h(x)`` where ``G_y`` is invertible.  Laws that mix fast and slow variables (e.g.
free + bound + internalised ligand) are not imposed: in the reduced model they hold up to the
fast variables' O(eps) share.

Numerically (always)
--------------------
Newton's method on ``G(x, .) = 0`` at the slow states ``x(t_i)`` the full trajectory visits,
started after the initial layer from the trajectory's own fast values and continued forward and
backward through the samples with a tangent predictor (``dh/dx = -G_y^{-1} G_x``).  A step is
accepted when Newton converges and the corrector stays within a tenth of the variables' scale;
otherwise it is halved.  When the step falls below ``1e-6`` of a sample interval the branch has
ended (a fold) and the reduction is refused.

Symbolically (when sympy can)
-----------------------------
The same equations, with species in the units of their symbols (concentration unless
hasOnlySubstanceUnits: amount = compartment size x concentration), the rate laws as expression
trees converted node by node (:mod:`scalebridge.model.symbolic`), and the totals ``T_c`` from the
initial values (symbolic where initial assignments give them, e.g. ``R = R_T``), are solved with
``sympy.solve``.  Of its solutions the branch that matches the numerical manifold at every
sample is kept; when none does (or sympy fails) the manifold is numerical only.

Stability
---------
At each manifold point the eigenvalues of ``f_y`` restricted to the fast laws' surface
(``Q_Y^T f_y Q_Y``) must have negative real parts; the largest real part and where it occurs
are reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import scipy.linalg as sla
import sympy

from ..errors import UnsupportedFeatureError
from ..model.expr import (
    Expr,
    Num,
    evaluate,
    expand_functions,
    substitute,
    symbols,
    uses_op,
)
from ..model.network import ReactionNetwork
from ..model.rates import amount_rate_expr
from ..model.symbolic import from_sympy, sym, to_sympy
from .timescales import ReductionRefused, Trajectory

__all__ = [
    "CriticalManifold",
    "FastSubsystem",
    "ManifoldSamples",
    "StabilityReport",
    "continue_manifold",
    "fast_equations",
    "fast_kernel",
    "manifold_value",
    "stability_along",
    "symbolic_manifold",
]

_MIN_STEP = 1e-6  # of a sample interval: smaller continuation steps mean the branch has ended
_CORRECTOR_MAX = 0.1  # of the variables' scale
_SCALE_FLOOR = 1e-2  # a fast variable's scale is at least this fraction of the largest one


# ---------------------------------------------------------------------------------------------
# The fast subsystem in state coordinates
# ---------------------------------------------------------------------------------------------
@dataclass
class FastSubsystem:
    """Fast and slow states of a trajectory's model and the fast laws (see module docstring)."""

    traj: Trajectory
    fast: list[str]
    fast_idx: np.ndarray
    slow_idx: np.ndarray
    laws: list[dict[int, int]]  # state index -> coefficient, support within fast_idx
    C_Y: np.ndarray  # (laws, fast) over the fast positions
    pivots: list[int]  # positions in fast_idx whose rows the laws replace
    totals: np.ndarray
    scale: np.ndarray  # per fast variable: largest magnitude along the trajectory

    @classmethod
    def build(
        cls, traj: Trajectory, fast: Sequence[str], laws: Sequence[Mapping[int, int]]
    ) -> FastSubsystem:
        fast_idx = np.array([traj.index(n) for n in fast], dtype=np.int64)
        pos = {int(i): k for k, i in enumerate(fast_idx)}
        slow_idx = np.array([i for i in range(traj.n) if i not in pos], dtype=np.int64)
        C_Y = np.zeros((len(laws), len(fast_idx)))
        for r, law in enumerate(laws):
            for i, c in law.items():
                C_Y[r, pos[int(i)]] = c
        pivots = _pivots(C_Y)
        totals = C_Y @ traj.states[0, fast_idx]
        mags = np.abs(traj.states[:, fast_idx]).max(axis=0)
        # A fast variable that stays near 0 is measured against the others' scale.
        scale = np.maximum(mags, _SCALE_FLOOR * max(float(mags.max(initial=0.0)), 1e-300))
        return cls(
            traj, list(fast), fast_idx, slow_idx, [dict(x) for x in laws], C_Y, pivots,
            totals, scale,
        )  # fmt: skip

    @property
    def slow(self) -> list[str]:
        return [self.traj.names[i] for i in self.slow_idx]

    def G(self, t: float, z: np.ndarray) -> np.ndarray:
        g = self.traj.rhs(t, z)[self.fast_idx]
        if self.pivots:
            g[self.pivots] = self.C_Y @ z[self.fast_idx] - self.totals
        return g

    def G_derivatives(self, t: float, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(G_y, G_x, J)`` at ``(t, z)``; ``J`` is the full Jacobian."""
        J = self.traj.jacobian(t, z)
        Gy = J[np.ix_(self.fast_idx, self.fast_idx)].copy()
        Gx = J[np.ix_(self.fast_idx, self.slow_idx)].copy()
        if self.pivots:
            Gy[self.pivots, :] = self.C_Y[: len(self.pivots)]
            Gx[self.pivots, :] = 0.0
        return Gy, Gx, J

    def newton(
        self, t: float, z: np.ndarray, y0: np.ndarray, max_iter: int = 30
    ) -> tuple[np.ndarray, bool]:
        """Solve ``G(x, y) = 0`` for ``y`` with ``x`` from ``z``; returns ``(y, converged)``."""
        z = np.array(z, dtype=np.float64)
        y = np.array(y0, dtype=np.float64)
        tol = 1e-13 * self.scale
        for _ in range(max_iter):
            z[self.fast_idx] = y
            g = self.G(t, z)
            Gy, _, _ = self.G_derivatives(t, z)
            try:
                dy = np.linalg.solve(Gy, -g)
            except np.linalg.LinAlgError:
                return y, False
            if not np.all(np.isfinite(dy)):
                return y, False
            y = y + dy
            if np.all(np.abs(dy) <= tol + 1e-11 * np.abs(y)):
                return y, True
        return y, False

    def with_fast(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = np.array(z, dtype=np.float64)
        out[self.fast_idx] = y
        return out


def _pivots(C: np.ndarray) -> list[int]:
    """One fast variable per law whose rate row the law replaces.

    The columns picked by QR with column pivoting make ``C[:, pivots]`` invertible, so the
    replaced rows are combinations of the kept ones (``c^T f = 0`` for every law ``c``) and
    no information is lost; law ``r`` goes into row ``pivots[r]``.
    """
    if C.shape[0] == 0:
        return []
    _, _, perm = sla.qr(C, pivoting=True, mode="economic")
    return [int(p) for p in perm[: C.shape[0]]]


# ---------------------------------------------------------------------------------------------
# Numerical continuation along the trajectory
# ---------------------------------------------------------------------------------------------
@dataclass
class ManifoldSamples:
    """The numerical manifold at the sampled slow states: ``y[i] = h(x(times[i]))``."""

    times: np.ndarray
    z: np.ndarray  # full states with the fast part replaced by h (samples x states)
    y: np.ndarray  # samples x fast variables


def continue_manifold(fs: FastSubsystem, start: int) -> ManifoldSamples:
    """``h(x(t_i))`` at every sample, continued from sample ``start`` (see module docstring).

    Raises :class:`ReductionRefused` (``"no_manifold"`` or ``"fold"``) with the numbers.
    """
    traj = fs.traj
    n_s = traj.times.size
    Y = np.full((n_s, len(fs.fast_idx)), np.nan)
    t_s, z_s = float(traj.times[start]), traj.states[start]
    y, ok = fs.newton(t_s, z_s, z_s[fs.fast_idx])
    if not ok or not _near(fs, y, z_s[fs.fast_idx], 0.5):
        raise ReductionRefused(
            f"no critical manifold point near the trajectory at t = {t_s:g}: the fast "
            f"subsystem ({', '.join(fs.fast)}) has no equilibrium close to the state "
            f"{_state_text(fs, z_s)}",
            reason="no_manifold",
            details={"time": t_s, "state": _state_dict(fs, z_s)},
        )
    Y[start] = y
    for direction in (1, -1):
        y_cur = Y[start]
        i = start
        while 0 <= i + direction < n_s:
            j = i + direction
            y_cur = _march(fs, i, j, y_cur)
            Y[j] = y_cur
            i = j
    Z = np.array([fs.with_fast(z, y) for z, y in zip(traj.states, Y, strict=True)])
    return ManifoldSamples(traj.times, Z, Y)


def _near(fs: FastSubsystem, a: np.ndarray, b: np.ndarray, frac: float) -> bool:
    return bool(np.all(np.abs(a - b) <= frac * fs.scale + 1e-12))


def _march(fs: FastSubsystem, i: int, j: int, y_i: np.ndarray) -> np.ndarray:
    traj = fs.traj
    t_i, t_j = float(traj.times[i]), float(traj.times[j])
    z_i, z_j = traj.states[i], traj.states[j]
    s, ds, y = 0.0, 1.0, y_i.copy()

    def at(u: float) -> tuple[float, np.ndarray]:
        return t_i + u * (t_j - t_i), (1 - u) * z_i + u * z_j

    while s < 1.0:
        s_new = min(1.0, s + ds)
        t0, z0 = at(s)
        t1, z1 = at(s_new)
        Gy, Gx, _ = fs.G_derivatives(t0, fs.with_fast(z0, y))
        dx = (z1 - z0)[fs.slow_idx]
        try:
            y_pred = y - np.linalg.solve(Gy, Gx @ dx)
        except np.linalg.LinAlgError:
            y_pred = y.copy()
        if not np.all(np.isfinite(y_pred)):
            y_pred = y.copy()
        y_new, ok = fs.newton(t1, fs.with_fast(z1, y_pred), y_pred, max_iter=12)
        if ok and _near(fs, y_new, y_pred, _CORRECTOR_MAX) and _near(fs, y_new, y, 0.5):
            s, y = s_new, y_new
            ds = min(1.0, 2.0 * ds)
            continue
        ds *= 0.5
        if ds < _MIN_STEP:
            z_at = fs.with_fast(z0, y)
            Gy, _, J = fs.G_derivatives(t0, z_at)
            lam = _fast_eigenvalues(fs, J)
            worst = lam[np.argmax(lam.real)] if lam.size else complex("nan")
            raise ReductionRefused(
                f"the critical manifold folds (ends) near t = {t0:g}, where "
                f"{_state_text(fs, z_at)}: the fast subsystem's least stable eigenvalue is "
                f"{_c(worst)}, tending to 0, and the fast variables ({', '.join(fs.fast)}) "
                "leave the manifold (a jump); no reduction holds across a fold",
                reason="fold",
                details={
                    "time": t0,
                    "state": _state_dict(fs, z_at),
                    "eigenvalue": [float(worst.real), float(worst.imag)],
                },
            )
    return y


def _state_dict(fs: FastSubsystem, z: np.ndarray) -> dict[str, float]:
    return {name: float(v) for name, v in zip(fs.traj.names, z, strict=True)}


def _state_text(fs: FastSubsystem, z: np.ndarray) -> str:
    return ", ".join(f"{k} = {v:.6g}" for k, v in _state_dict(fs, z).items())


def _c(x: complex) -> str:
    x = complex(x)
    return f"{x.real:.4g}" if x.imag == 0 else f"{x.real:.4g}{x.imag:+.4g}i"


# ---------------------------------------------------------------------------------------------
# Stability and the split check
# ---------------------------------------------------------------------------------------------
def _fast_eigenvalues(fs: FastSubsystem, J: np.ndarray) -> np.ndarray:
    """Eigenvalues of f_y on the surface of the fast laws."""
    A = J[np.ix_(fs.fast_idx, fs.fast_idx)]
    if fs.C_Y.shape[0]:
        Q = sla.null_space(fs.C_Y)
        A = Q.T @ A @ Q
    return np.linalg.eigvals(A) if A.size else np.zeros(0, dtype=complex)


@dataclass
class StabilityReport:
    """Eigenvalues of ``f_y`` (on the fast laws' surface) along the manifold, and the split check.

    ``worst[i]`` is the largest real part at ``times[i]``, ``fastest_slow`` / ``slowest_fast``
    the moduli that bound the gap on the manifold.  ``split_error[i]`` is the largest relative
    change of a slow eigenvalue made by the reduction: the eigenvalues of the reduced model's
    Jacobian ``g_x + g_y dh/dx`` against the slow eigenvalues of the full Jacobian at the same
    point, each relative to ``max(|lambda|, 1/T_window)`` -- the linearised relative error of
    the slow rates.
    """

    times: np.ndarray
    worst: np.ndarray
    worst_eigenvalue: complex
    worst_index: int
    split_error: np.ndarray
    states: np.ndarray
    names: list[str]

    @property
    def stable(self) -> bool:
        return bool(np.all(self.worst < 0))

    @property
    def first_unstable(self) -> int | None:
        """Index of the first sample where the manifold is not attracting (None: none)."""
        bad = np.nonzero(self.worst >= 0)[0]
        return int(bad[0]) if bad.size else None

    @property
    def split_error_max(self) -> float:
        return float(np.max(self.split_error)) if self.split_error.size else 0.0

    def where(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.names, self.states[self.worst_index], strict=True)}

    def to_dict(self) -> dict[str, Any]:
        w = complex(self.worst_eigenvalue)
        i = int(np.argmax(self.split_error)) if self.split_error.size else 0
        return {
            "stable": self.stable,
            "worst_eigenvalue": [float(w.real), float(w.imag)],
            "worst_time": float(self.times[self.worst_index]),
            "worst_state": self.where(),
            "split_error_max": self.split_error_max,
            "split_error_time": float(self.times[i]),
        }

    def summary(self) -> str:
        i = int(np.argmax(self.split_error)) if self.split_error.size else 0
        return (
            f"stability of the critical manifold: {'stable' if self.stable else 'UNSTABLE'}; "
            f"least stable eigenvalue of df/dy {_c(self.worst_eigenvalue)} at t = "
            f"{self.times[self.worst_index]:g}\n"
            f"  slow eigenvalues changed by the reduction: at most {self.split_error_max:.3g} "
            f"(relative, at t = {self.times[i]:g})"
        )

    __str__ = summary


def stability_along(
    fs: FastSubsystem, ms: ManifoldSamples, reduced_space: np.ndarray, n_fast_modes: int
) -> StabilityReport:
    """Stability of the manifold and the split error at every sample (see the classes).

    ``reduced_space`` is an orthonormal basis (slow states x k) of the space the reduced
    model moves in (its conservation surface); ``n_fast_modes`` the number ``m`` of fast modes.
    """
    from .timescales import surface_basis, surface_eigenvalues

    traj = fs.traj
    Q = surface_basis(traj.C, traj.n)
    floor = 1.0 / traj.window
    worst = np.zeros(ms.times.size)
    worst_eig = np.zeros(ms.times.size, dtype=complex)
    split = np.zeros(ms.times.size)
    for i, (t, z) in enumerate(zip(ms.times, ms.z, strict=True)):
        Gy, Gx, J = fs.G_derivatives(float(t), z)
        lam = _fast_eigenvalues(fs, J)
        k = int(np.argmax(lam.real))
        worst[i], worst_eig[i] = lam[k].real, lam[k]
        full = surface_eigenvalues(J, Q)[n_fast_modes:]
        dh = -np.linalg.solve(Gy, Gx)
        Js = J[np.ix_(fs.slow_idx, fs.slow_idx)] + J[np.ix_(fs.slow_idx, fs.fast_idx)] @ dh
        P = reduced_space
        red = np.linalg.eigvals(P.T @ Js @ P) if P.shape[1] else np.zeros(0, dtype=complex)
        red = red[np.argsort(-np.abs(red), kind="stable")]
        k_cmp = min(red.size, full.size)
        if red.size != full.size:
            split[i] = math.inf
            continue
        if k_cmp:
            den = np.maximum(np.abs(full[:k_cmp]), floor)
            split[i] = float(np.max(np.abs(red[:k_cmp] - full[:k_cmp]) / den))
    k = int(np.argmax(worst))
    return StabilityReport(ms.times, worst, complex(worst_eig[k]), k, split, ms.z, list(traj.names))


# ---------------------------------------------------------------------------------------------
# Exact stoichiometry of the fast species: net reactions
# ---------------------------------------------------------------------------------------------
def fast_kernel(
    N_fast: Sequence[Sequence[Fraction]], order: Sequence[int]
) -> tuple[list[int], list[int], list[list[Fraction]]]:
    """Reaction combinations that leave the fast species unchanged.

    ``N_fast`` is the exact (fast species x reactions) stoichiometry; columns are eliminated in
    ``order`` (most active reactions first), so the pivots are the most active reactions and the
    free ones the least active.  Returns ``(pivots, free, B)`` with ``B`` (reactions x free) a
    basis of ``ker N_fast`` that is the identity on the free reactions: on the manifold the
    rates satisfy ``v = B v_free``.
    """
    rows = [list(r) for r in N_fast]
    n_r = len(order)
    pivots: list[int] = []
    pivot_row: dict[int, int] = {}
    r = 0
    for col in order:
        p = next((i for i in range(r, len(rows)) if rows[i][col] != 0), None)
        if p is None:
            continue
        rows[r], rows[p] = rows[p], rows[r]
        piv = rows[r][col]
        rows[r] = [x / piv for x in rows[r]]
        for i in range(len(rows)):
            if i != r and rows[i][col] != 0:
                factor = rows[i][col]
                rows[i] = [a - factor * b for a, b in zip(rows[i], rows[r], strict=True)]
        pivots.append(col)
        pivot_row[col] = r
        r += 1
        if r == len(rows):
            break
    free = [c for c in range(n_r) if c not in pivot_row]
    B = [[Fraction(0)] * len(free) for _ in range(n_r)]
    for k, f in enumerate(free):
        B[f][k] = Fraction(1)
        for p in pivots:
            B[p][k] = -rows[pivot_row[p]][f]
    return pivots, free, B


# ---------------------------------------------------------------------------------------------
# Symbolic manifold
# ---------------------------------------------------------------------------------------------
def fast_equations(net: ReactionNetwork, fast: Sequence[str]) -> dict[str, Expr]:
    """``f`` of each fast variable as an expression of model symbols.

    A species that reactions change: its amount rate ``cf * sum_j s_j * rate_j`` with the
    kinetic laws inlined (local parameters by value, user functions expanded); a rate-rule
    variable: its rule.  Variables set by assignment rules are inlined.
    """
    out: dict[str, Expr] = {}
    laws: dict[str, Expr] = {}
    for r in net.reactions:
        if r.rate is None:
            laws[r.id] = Num(0.0)
            continue
        local: dict[str, Expr] = {lp.id: Num(lp.value or 0.0) for lp in r.local_parameters}
        laws[r.id] = substitute(_expand(net, r.rate), local)
    for name in fast:
        if name in net.rate_rule_map:
            e = _expand(net, net.rate_rule_map[name].math)
        else:
            e = substitute(amount_rate_expr(net, name), laws)
        out[name] = _inline_rules(net, e, name)
    return out


def _expand(net: ReactionNetwork, e: Expr) -> Expr:
    return expand_functions(e, net.functions_table) if net.functions else e


def _inline_rules(net: ReactionNetwork, e: Expr, element: str) -> Expr:
    rules = {k: _expand(net, r.math) for k, r in net.assignment_rule_map.items()}
    for _ in range(len(rules) + 1):
        names = symbols(e) & set(rules)
        if not names:
            break
        e = substitute(e, {n: rules[n] for n in names})
    if uses_op(e, "rateOf"):
        raise UnsupportedFeatureError(
            "rateOf in the equations of a fast variable", element=element, source=net.source
        )
    return e


@dataclass
class CriticalManifold:
    """``y = h(x)`` for the fast variables.

    ``expressions`` maps each fast variable to ``h`` as an expression tree in the units of its
    symbol (concentration unless hasOnlySubstanceUnits), or is None when the manifold is
    numerical only; ``sympy_exprs`` the sympy forms when sympy solved the system (possibly with
    functions that have no tree form, e.g. complex radicals).  ``totals`` maps the names of new
    parameters that stand for conserved totals to their values; ``laws_text`` states the fast
    laws used; ``why_numeric`` says why there is no closed form.
    """

    fast: list[str]
    slow: list[str]
    expressions: dict[str, Expr] | None
    sympy_exprs: dict[str, Any] | None
    totals: dict[str, float]
    laws_text: list[str]
    method: str
    why_numeric: str = ""

    @property
    def symbolic(self) -> bool:
        return self.expressions is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "fast": list(self.fast),
            "slow": list(self.slow),
            "method": self.method,
            "h": {k: str(v) for k, v in (self.expressions or {}).items()},
            "totals": dict(self.totals),
            "fast_laws": list(self.laws_text),
            "why_numeric": self.why_numeric,
        }

    def summary(self) -> str:
        lines = [f"critical manifold ({self.method}):"]
        if self.expressions is not None:
            lines += [f"  {k} = {v}" for k, v in self.expressions.items()]
        else:
            lines.append(f"  numerical only: {self.why_numeric}")
        lines += [f"  with {t}" for t in self.laws_text]
        lines += [f"  {k} = {v:g} (conserved total)" for k, v in self.totals.items()]
        return "\n".join(lines)

    __str__ = summary


def symbolic_manifold(
    net: ReactionNetwork,
    fs: FastSubsystem,
    ms: ManifoldSamples,
    *,
    max_unknowns: int = 6,
) -> CriticalManifold:
    """The closed form of ``h`` where sympy finds one matching the numerical manifold."""
    fast, slow = fs.fast, fs.slow
    traj = fs.traj
    laws_text, totals_sym, new_totals = _law_equations(net, fs)
    try:
        cands = _solve(net, fs, totals_sym, max_unknowns) if len(fast) <= max_unknowns else []
        why = "" if cands else _why_no_solution(len(fast), max_unknowns)
    except _NoClosedForm as exc:
        cands, why = [], str(exc)
    new_vals = dict(new_totals)
    picked: dict[str, Any] | None = None
    for cand in cands:
        if _matches(cand, fs, ms, traj, new_vals):
            picked = cand
            break
    if picked is None:
        if cands:
            why = (
                "no solution sympy found matches the numerical manifold along the trajectory "
                "(the branch changes, or the solutions are not real there)"
            )
        return CriticalManifold(fast, slow, None, None, {}, laws_text, "numeric", why)
    exprs: dict[str, Expr] = {}
    try:
        for name in fast:
            exprs[name] = from_sympy(picked[name])
    except UnsupportedFeatureError as exc:
        return CriticalManifold(
            fast, slow, None, picked, {}, laws_text, "numeric",
            f"sympy's solution has no expression-tree form ({exc})",
        )  # fmt: skip
    used = set().union(*(symbols(e) for e in exprs.values())) if exprs else set()
    totals = {k: v for k, v in new_vals.items() if k in used}
    return CriticalManifold(fast, slow, exprs, picked, totals, laws_text, "symbolic")


class _NoClosedForm(Exception):
    pass


def _why_no_solution(n: int, max_unknowns: int) -> str:
    if n > max_unknowns:
        return f"{n} fast variables: more than the {max_unknowns} tried symbolically"
    return "sympy found no closed-form solution"


def _symbol_units_amount(net: ReactionNetwork, name: str) -> Any:
    """The amount of species ``name`` in terms of its symbol (sympy)."""
    s = net.species_map[name]
    if s.has_only_substance_units:
        return sym(name)
    comp = net.compartment_map[s.compartment]
    if not comp.constant or comp.id in net.rate_rule_map or comp.id in net.assignment_rule_map:
        raise _NoClosedForm(f"compartment '{comp.id}' of '{name}' changes in time")
    return sym(comp.id) * sym(name)


def _law_equations(
    net: ReactionNetwork, fs: FastSubsystem
) -> tuple[list[str], list[Any], dict[str, float]]:
    """Text of the fast laws, their totals as sympy expressions, and new total parameters."""
    names = fs.traj.names
    texts: list[str] = []
    totals: list[Any] = []
    new: dict[str, float] = {}
    taken = {
        *net.species_map, *net.parameter_map, *net.compartment_map, *net.reaction_map,
        *net.function_map,
    }  # fmt: skip
    for r, law in enumerate(fs.laws):
        species = [names[i] for i in law]
        try:
            total = sum(
                (c * _initial_amount(net, names[i]) for i, c in law.items()), sympy.Integer(0)
            )
            total = sympy.nsimplify(sympy.simplify(total), rational=True)
        except _NoClosedForm:
            total = None
        if total is None or not total.free_symbols:
            base = "_".join(species) + "_total"
            pid, k = base, 1
            while pid in taken:
                k += 1
                pid = f"{base}{k}"
            taken.add(pid)
            new[pid] = float(fs.totals[r])
            total = sym(pid)
        lhs = " + ".join(
            (f"{c}*{names[i]}" if c != 1 else names[i]) for i, c in law.items()
        ).replace("+ -", "- ")
        texts.append(f"{lhs} = {total} (amounts, conserved by the fast reactions)")
        totals.append(total)
    return texts, totals, new


def _initial_amount(net: ReactionNetwork, name: str, depth: int = 0) -> Any:
    s = net.species_map[name]
    value = _initial_symbol(net, name, depth)
    if s.has_only_substance_units:
        return value
    return sym(s.compartment) * value


def _initial_symbol(net: ReactionNetwork, name: str, depth: int = 0) -> Any:
    """The initial value of symbol ``name`` (sympy), with species resolved to initial values."""
    if depth > 50:
        raise _NoClosedForm(f"initial value of '{name}' nests too deeply")
    if name in net.initial_assignment_map:
        e = net.initial_assignment_map[name].math
        return _initial_of_expr(net, e, depth)
    if name in net.assignment_rule_map:
        return _initial_of_expr(net, net.assignment_rule_map[name].math, depth)
    s = net.species_map.get(name)
    if s is None:
        return sym(name)  # parameters and compartments keep their names
    given = s.initial_amount if s.initial_amount is not None else s.initial_concentration
    if given is None:
        raise _NoClosedForm(f"species '{name}' has no initial value")
    v = sympy.nsimplify(given, rational=True)
    if s.initial_amount is not None:
        return v if s.has_only_substance_units else v / sym(s.compartment)
    return v * sym(s.compartment) if s.has_only_substance_units else v


def _initial_of_expr(net: ReactionNetwork, e: Expr, depth: int) -> Any:
    e = _expand(net, e)
    mapping = {n: _initial_symbol(net, n, depth + 1) for n in symbols(e) if n in net.species_map}
    for n in symbols(e):
        if n in net.assignment_rule_map or n in net.initial_assignment_map:
            mapping.setdefault(n, _initial_symbol(net, n, depth + 1))
    return to_sympy(e, mapping)


def _solve(
    net: ReactionNetwork, fs: FastSubsystem, totals: Sequence[Any], max_unknowns: int
) -> list[dict[str, Any]]:
    fast = fs.fast
    eqs_expr = fast_equations(net, fast)
    drop = {fast[p] for p in fs.pivots}
    eqs: list[Any] = []
    for name in fast:
        if name in drop:
            continue
        try:
            e = to_sympy(eqs_expr[name])
        except UnsupportedFeatureError as exc:
            raise _NoClosedForm(f"the equation of '{name}' has no symbolic form ({exc})") from None
        eqs.append(e)
    for r, law in enumerate(fs.laws):
        lhs = sum(
            (c * _symbol_units_amount(net, fs.traj.names[i]) for i, c in law.items()),
            sympy.Integer(0),
        )
        eqs.append(lhs - totals[r])
    eqs = [sympy.nsimplify(sympy.together(e), rational=True) for e in eqs]
    eqs = [sympy.numer(sympy.together(e)) for e in eqs]
    unknowns = [sym(n) for n in fast]
    try:
        sols = sympy.solve(eqs, unknowns, dict=True)
    except (NotImplementedError, ValueError, TypeError, ZeroDivisionError) as exc:
        raise _NoClosedForm(f"sympy cannot solve the fast equations ({exc})") from None
    out = []
    unknown_set = set(unknowns)
    for sol in sols:
        if set(sol) != unknown_set:
            continue
        if any(v.free_symbols & unknown_set for v in sol.values()):
            continue
        cand = {}
        for name, u in zip(fast, unknowns, strict=True):
            v = sol[u]
            if sympy.count_ops(v) <= 200:
                v = sympy.simplify(v)
            cand[name] = v
        out.append(cand)
    return out


def _matches(
    cand: Mapping[str, Any],
    fs: FastSubsystem,
    ms: ManifoldSamples,
    traj: Trajectory,
    extra: Mapping[str, float],
) -> bool:
    """Whether a symbolic branch equals the numerical manifold at the samples."""
    net = traj.network
    trees: dict[str, Expr] | None
    try:
        trees = {k: from_sympy(v) for k, v in cand.items()}
    except UnsupportedFeatureError:
        trees = None
    n = ms.times.size
    # evaluating sympy numerically is slow: fall back to a subset of the samples
    sample = range(n) if trees is not None else sorted({*range(0, n, max(1, n // 12)), n - 1})
    for i in sample:
        t = float(ms.times[i])
        env = dict(traj.symbol_values(t, ms.z[i]))
        env.update(extra)
        for name in fs.fast:
            y_sym = env[name]
            scale = _symbol_scale(net, name, fs, env)
            if trees is not None:
                try:
                    h = evaluate(trees[name], env, time=t)
                except (ValueError, OverflowError, ZeroDivisionError):
                    return False
                if not math.isfinite(h):
                    return False
            else:
                val = complex(sympy.N(cand[name].subs({sym(k): v for k, v in env.items()}), 17))
                if abs(val.imag) > 1e-9 * (abs(val.real) + scale):
                    return False
                h = val.real
            if abs(h - y_sym) > 1e-6 * (abs(y_sym) + scale):
                return False
    return True


def _symbol_scale(
    net: ReactionNetwork, name: str, fs: FastSubsystem, env: Mapping[str, float]
) -> float:
    k = fs.fast.index(name)
    s = net.species_map.get(name)
    scale = float(fs.scale[k])
    if s is not None and not s.has_only_substance_units and name not in net.rate_rule_map:
        scale /= env.get(s.compartment, 1.0) or 1.0
    return scale


def manifold_value(
    cm: CriticalManifold, env: Mapping[str, float], time: float = 0.0
) -> dict[str, float]:
    """``h`` evaluated with symbol values ``env`` (closed form only)."""
    if cm.expressions is None:
        raise UnsupportedFeatureError("evaluating a numerical manifold by expression")
    full = dict(env)
    full.update(cm.totals)
    return {k: evaluate(e, full, time=time) for k, e in cm.expressions.items()}
