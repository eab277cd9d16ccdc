"""Timescales along a trajectory: eigenvalue gaps, the ratio epsilon, and the fast variables.

Setting
-------
The states ``z`` are those of the compiled model (:mod:`scalebridge.codegen.build`): the amount
of every species that reactions change and every variable with a rate rule; ``dz/dt = F(t, z)``
and ``J = dF/dz`` is the analytic Jacobian.  Exact conservation laws ``C z = T``
(:mod:`scalebridge.model.conservation`) confine the motion to the affine surface
``{z : C z = T}``, whose tangent space ``null(C)`` contains the range of ``J``.  With ``Q`` an
orthonormal basis of ``null(C)`` the dynamic eigenvalues are those of ``Q^T J Q`` (``d`` of them,
``d = n - rank C``); the ``n - d`` zero eigenvalues that conservation adds to ``J`` are left out.

Gap and epsilon
---------------
At each sampled time the ``d`` eigenvalues are sorted by decreasing modulus,
``|lambda_1| >= ... >= |lambda_d|``.  Splitting after the ``m``-th gives ``m`` fast and ``d - m``
slow modes and the ratio

    eps_m(t) = max(|lambda_(m+1)(t)|, 1/T_w) / |lambda_m(t)|,

with ``T_w`` the length of the time window: a mode slower than the window is treated as
changing on the window's scale (so a slow mode with eigenvalue 0, e.g. a constant drift, does
not make a fast mode that slows towards the window's scale look separated).  Without a declared
fast set, ``m`` is the split whose worst ratio over the trajectory, ``max_t eps_m(t)``, is the
smallest.

Which variables are fast: participation (CSP pointers)
------------------------------------------------------
The spectral projector onto the ``m`` fast modes of ``J`` is ``P = R_f L_f`` with right and left
bases of the fast invariant subspace (``L_f R_f = I``); its diagonal ``p_k = P_kk`` is the
participation of state ``k`` in the fast modes (Perez-Arriaga, Verghese & Schweppe, IEEE Trans.
PAS 101, 1982; the "CSP pointer" of Lam & Goussis, Int. J. Chem. Kinet. 26, 1994).  It is
invariant under rescaling the states (amounts or concentrations, any units), sums to ``m`` over
the states, and needs no choice of independent species: the zero modes of conservation lie in
the slow block and take no part.  It is computed from the real Schur form of ``J`` ordered with
the fast block first and one Sylvester equation (stable also for repeated and complex
eigenvalues).  A variable whose largest participation over the trajectory reaches
``participation_min`` is called fast.

The initial layer
-----------------
The layer is taken to end at the first sampled time ``t_i`` with
``t_i - t_0 >= n_layer / min_(j <= i) |lambda_m(t_j)|``: ``n_layer`` time constants of the slowest
fast mode seen so far (by then a fast deviation has decayed by about ``exp(-n_layer)``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg as sla

from ..codegen import vm
from ..codegen.build import AMOUNT, CLOCK, CompiledModel
from ..errors import InputError, ModelError, OptionError, UnsupportedFeatureError
from ..model.conservation import ConservationLaw, conservation_laws
from ..model.network import ReactionNetwork

__all__ = [
    "ReductionRefused",
    "TimescaleReport",
    "Trajectory",
    "analyze_timescales",
    "fast_participation",
    "sample_trajectory",
    "surface_eigenvalues",
]

DEFAULT_PARTICIPATION_MIN = 0.1
DEFAULT_LAYER_TIME_CONSTANTS = 10.0


class ReductionRefused(InputError):
    """A timescale reduction was asked for where it does not hold.

    ``reason`` is one of ``"no_separation"`` (the eigenvalue gap is too small), ``"split"``
    (the chosen fast variables do not carry the fast modes), ``"unstable"`` (the critical
    manifold is not attracting), ``"fold"`` / ``"no_manifold"`` (the fast subsystem has no
    equilibrium branch along the trajectory).  ``details`` holds the numbers (JSON-safe).
    """

    def __init__(self, message: str, *, reason: str, details: Mapping[str, Any] | None = None):
        self.reason = reason
        self.details = dict(details or {})
        super().__init__(message)


# ---------------------------------------------------------------------------------------------
# Sampling the full model
# ---------------------------------------------------------------------------------------------
@dataclass
class Trajectory:
    """The full model's states at sampled times, with what is needed to evaluate ``F`` and ``J``.

    ``states[i]`` is the state vector ``z(times[i])`` (species amounts, rate-rule variables), named
    by ``names`` (model element ids).  ``laws`` are the exact conservation laws, ``C`` their
    matrix over the states and ``totals = C z(t0)``.
    """

    network: ReactionNetwork
    cm: CompiledModel
    v: np.ndarray
    times: np.ndarray
    states: np.ndarray
    names: list[str]
    laws: list[ConservationLaw]
    C: np.ndarray

    @property
    def n(self) -> int:
        return len(self.names)

    @property
    def window(self) -> float:
        return float(self.times[-1] - self.times[0])

    @property
    def totals(self) -> np.ndarray:
        return self.C @ self.states[0]

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise ModelError(
                f"'{name}' is not a dynamic variable of model '{self.network.id}' (a species "
                "that reactions change, or a variable with a rate rule)",
                element=name,
                source=self.network.source,
            ) from None

    def rhs(self, t: float, z: np.ndarray) -> np.ndarray:
        K = self.cm.kernel
        out = np.zeros(self.n)
        vm.rhs(K, float(t), np.asarray(z, dtype=np.float64), self.v, out, vm.new_stack(K))
        return out

    def jacobian(self, t: float, z: np.ndarray) -> np.ndarray:
        K = self.cm.kernel
        J = np.zeros((self.n, self.n))
        g = np.zeros(K.n_g)
        vm.jac_dense(K, float(t), np.asarray(z, dtype=np.float64), self.v, g, J, vm.new_stack(K))
        return J

    def symbol_values(self, t: float, z: np.ndarray) -> dict[str, float]:
        """Values of every model symbol (species as their symbols, parameters, compartments,
        rule variables) at ``(t, z)``."""
        cm = self.cm
        K = cm.kernel
        vm.evaluate_all(K, float(t), np.asarray(z, dtype=np.float64), self.v, vm.new_stack(K))
        out = {}
        net = self.network
        for name in [*net.species_map, *net.parameter_map, *net.compartment_map]:
            slot = cm.slots.get(name)
            if slot is not None:
                out[name] = float(self.v[slot])
        return out


def sample_trajectory(
    net: ReactionNetwork,
    times: Sequence[float] | np.ndarray,
    *,
    rtol: float = 1e-10,
    atol: float = 1e-14,
) -> Trajectory:
    """Integrate ``net`` (compiled BDF) and record its states at ``times``.

    Models with events are refused (:class:`UnsupportedFeatureError`): an event that changes a
    parameter would make the Jacobian at earlier samples wrong.
    """
    from ..codegen.build import compile_network
    from ..wellmixed.ode import ODE, integrate

    if net.events:
        raise UnsupportedFeatureError(
            "timescale analysis of a model with events",
            element=net.events[0].id or None,
            source=net.source,
            detail="events change the state or the parameters discontinuously",
        )
    grid = np.asarray(times, dtype=np.float64)
    if grid.ndim != 1 or grid.size < 3 or np.any(np.diff(grid) <= 0):
        raise OptionError("the sample times must be at least 3 strictly increasing values")
    cm = compile_network(net)
    if cm.state_keys == [CLOCK]:
        raise ModelError(
            f"model '{net.id}' has no dynamic variables: nothing to analyse", source=net.source
        )
    K = cm.with_records([cm.slots[k] for k in cm.state_keys])
    y, v = cm.initial({}, float(grid[0]), default_size=1.0)
    out = np.full((grid.size, cm.n_states), np.nan)
    integrate(cm, K, y, v, grid, out, ODE(rtol=rtol, atol=atol))
    laws, C = _law_matrix(net, cm)
    return Trajectory(net, cm, v, grid, out, list(cm.state_names), laws, C)


def _law_matrix(
    net: ReactionNetwork, cm: CompiledModel
) -> tuple[list[ConservationLaw], np.ndarray]:
    index = {k: i for i, k in enumerate(cm.state_keys)}
    laws = conservation_laws(net)
    rows = []
    for law in laws:
        row = np.zeros(cm.n_states)
        for sid, c in law.coefficients.items():
            row[index[AMOUNT + sid]] = c
        rows.append(row)
    C = np.array(rows) if rows else np.zeros((0, cm.n_states))
    return laws, C


# ---------------------------------------------------------------------------------------------
# Linear algebra
# ---------------------------------------------------------------------------------------------
def surface_basis(C: np.ndarray, n: int) -> np.ndarray:
    """Orthonormal basis of ``null(C)`` (the identity when there are no laws)."""
    return sla.null_space(C) if C.shape[0] else np.eye(n)


def surface_eigenvalues(J: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Eigenvalues of ``J`` on the conservation surface, by decreasing modulus."""
    lam = np.linalg.eigvals(Q.T @ J @ Q) if Q.shape[1] else np.zeros(0, dtype=complex)
    return lam[np.argsort(-np.abs(lam), kind="stable")]


def fast_participation(J: np.ndarray, threshold: float) -> tuple[np.ndarray, int]:
    """Diagonal of the spectral projector of ``J`` onto its modes with ``|lambda| > threshold``,
    and their number (see the module docstring)."""
    n = J.shape[0]
    T, Z, m = sla.schur(J, output="real", sort=lambda re, im: math.hypot(re, im) > threshold)
    m = int(m)
    if m == 0:
        return np.zeros(n), 0
    if m == n:
        return np.ones(n), n
    Z1, Z2 = Z[:, :m], Z[:, m:]
    # T11 X - X T22 = -T12 block-diagonalises T; then P = Z1 (Z1^T - X Z2^T).
    X = sla.solve_sylvester(T[:m, :m], -T[m:, m:], -T[:m, m:])
    P_diag = np.einsum("ij,ij->i", Z1, Z1 - Z2 @ X.T)
    return P_diag, m


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------
@dataclass
class TimescaleReport:
    """Eigenvalue gaps and fast variables along a trajectory (see the module docstring).

    ``eigenvalues[i]`` are the dynamic eigenvalues at ``times[i]`` by decreasing modulus;
    ``n_fast`` the number ``m`` of fast modes; ``eps[i]`` the ratio at ``times[i]``;
    ``participation`` the largest participation of each dynamic variable over the samples;
    ``fast`` the fast variables (declared, or those reaching ``participation_min``);
    ``leakage[i]`` the participation in the fast modes of the variables outside ``fast``.
    ``fast_laws`` are the conservation laws among the fast variables alone and ``consistent``
    says whether ``len(fast) - len(fast_laws) == n_fast`` (the fast variables span exactly
    the fast directions); ``problem`` says why not.
    """

    times: np.ndarray
    names: list[str]
    eigenvalues: list[np.ndarray]
    n_fast: int
    eps: np.ndarray
    participation: dict[str, float]
    fast: list[str]
    declared: bool
    leakage: np.ndarray
    fast_laws: list[dict[str, int]]
    layer_time_constants: float
    participation_min: float
    window: float
    consistent: bool = True
    problem: str = ""
    all_eps_max: dict[int, float] = field(default_factory=dict)

    @property
    def slow(self) -> list[str]:
        return [n for n in self.names if n not in self.fast]

    @property
    def lambda_fast(self) -> np.ndarray:
        """The slowest fast eigenvalue (``lambda_m``) at each sample."""
        return np.array([lam[self.n_fast - 1] for lam in self.eigenvalues])

    @property
    def lambda_slow(self) -> np.ndarray:
        """The fastest slow eigenvalue (``lambda_(m+1)``) at each sample (0 when there is none)."""
        m = self.n_fast
        return np.array([lam[m] if lam.size > m else 0.0 for lam in self.eigenvalues])

    @property
    def eps_max(self) -> float:
        return float(np.max(self.eps))

    @property
    def eps_argmax(self) -> int:
        return int(np.argmax(self.eps))

    @property
    def layer_end(self) -> float:
        """End of the initial layer (see the module docstring)."""
        t0 = float(self.times[0])
        rate = math.inf
        for t, lam in zip(self.times, self.lambda_fast, strict=True):
            rate = min(rate, abs(lam))
            if rate > 0 and t - t0 >= self.layer_time_constants / rate:
                return float(t)
        return float(self.times[-1])

    def eps_after(self, t: float) -> float:
        """The largest ratio at samples from ``t`` on."""
        sel = self.times >= t
        return float(np.max(self.eps[sel])) if sel.any() else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "times": [float(t) for t in self.times],
            "n_fast": self.n_fast,
            "fast": list(self.fast),
            "slow": self.slow,
            "declared": self.declared,
            "eps": [float(e) for e in self.eps],
            "eps_max": self.eps_max,
            "eps_max_time": float(self.times[self.eps_argmax]),
            "lambda_fast": [_cplx(x) for x in self.lambda_fast],
            "lambda_slow": [_cplx(x) for x in self.lambda_slow],
            "participation": {k: float(v) for k, v in self.participation.items()},
            "participation_min": self.participation_min,
            "leakage_max": float(np.max(self.leakage)) if self.leakage.size else 0.0,
            "fast_laws": [dict(c) for c in self.fast_laws],
            "layer_end": self.layer_end,
            "layer_time_constants": self.layer_time_constants,
            "window": self.window,
            "consistent": self.consistent,
            "problem": self.problem,
            "eps_max_by_split": {str(k): float(v) for k, v in self.all_eps_max.items()},
        }

    def summary(self) -> str:
        i = self.eps_argmax
        lines = [
            f"timescales: {len(self.names)} dynamic variables, {self.eigenvalues[0].size} "
            f"dynamic modes, {self.n_fast} fast",
            f"  eps = |lambda_slow|/|lambda_fast|: max {self.eps_max:.3g} at t = "
            f"{self.times[i]:g} (lambda_fast {_fmt_c(self.lambda_fast[i])}, lambda_slow "
            f"{_fmt_c(self.lambda_slow[i])})",
            f"  initial layer ends at t = {self.layer_end:g} ({self.layer_time_constants:g} fast "
            "time constants)",
            "  participation in the fast modes: "
            + ", ".join(
                f"{k} {v:.3g}" for k, v in sorted(self.participation.items(), key=lambda kv: -kv[1])
            ),
            f"  fast variables ({'declared' if self.declared else 'detected'}): "
            + (", ".join(self.fast) or "none"),
        ]
        if not self.consistent:
            lines.append(f"  not a clean split: {self.problem}")
        return "\n".join(lines)

    __str__ = summary


def _cplx(x: complex) -> list[float]:
    x = complex(x)
    return [float(x.real), float(x.imag)]


def _fmt_c(x: complex) -> str:
    x = complex(x)
    if x.imag == 0:
        return f"{x.real:.4g}"
    return f"{x.real:.4g}{x.imag:+.4g}i"


def analyze_timescales(
    net: ReactionNetwork | Trajectory,
    *,
    t_end: float | None = None,
    n_samples: int = 201,
    t0: float = 0.0,
    fast: Iterable[str] | None = None,
    params: Mapping[str, float] | None = None,
    participation_min: float = DEFAULT_PARTICIPATION_MIN,
    layer_time_constants: float = DEFAULT_LAYER_TIME_CONSTANTS,
    rtol: float = 1e-10,
    atol: float = 1e-14,
) -> TimescaleReport:
    """Eigenvalue gaps, epsilon and fast variables along the trajectory of ``net``.

    ``net`` is simulated from ``t0`` to ``t_end`` and sampled at ``n_samples`` equally spaced
    times (or pass a :class:`Trajectory`).  ``fast`` declares the fast variables (ids of
    species that reactions change or of rate-rule variables); otherwise they are detected (see
    the module docstring).  ``params`` overrides parameter values and initial values.
    """
    if participation_min <= 0 or participation_min >= 1:
        raise OptionError(f"participation_min must be in (0, 1), got {participation_min}")
    if layer_time_constants <= 0:
        raise OptionError(f"layer_time_constants must be positive, got {layer_time_constants}")
    if isinstance(net, Trajectory):
        if params:
            raise OptionError("params apply to a model, not to a sampled trajectory")
        traj = net
    else:
        if t_end is None or not t_end > t0:
            raise OptionError("give t_end > t0 for the timescale analysis")
        if n_samples < 3:
            raise OptionError(f"n_samples must be at least 3, got {n_samples}")
        model = net.with_values(params) if params else net
        traj = sample_trajectory(
            model, np.linspace(t0, float(t_end), n_samples), rtol=rtol, atol=atol
        )
    declared = None if fast is None else list(dict.fromkeys(fast))
    Q = surface_basis(traj.C, traj.n)
    d = Q.shape[1]
    if d < 2:
        raise ReductionRefused(
            f"model '{traj.network.id}' has {d} dynamic mode(s) on its conservation surface: "
            "there is nothing to separate",
            reason="no_separation",
            details={"dynamic_modes": d},
        )
    jacs = [traj.jacobian(t, z) for t, z in zip(traj.times, traj.states, strict=True)]
    eigs = [surface_eigenvalues(J, Q) for J in jacs]
    floor = 1.0 / traj.window
    mods = np.array([np.abs(lam) for lam in eigs])  # (samples, d)

    def eps_of(m: int) -> np.ndarray:
        fast_mod = mods[:, m - 1]
        slow_mod = np.maximum(mods[:, m], floor)
        with np.errstate(divide="ignore"):
            return np.where(fast_mod > 0, slow_mod / np.where(fast_mod > 0, fast_mod, 1), np.inf)

    all_eps = {m: float(np.max(eps_of(m))) for m in range(1, d)}
    if declared is not None:
        idx = [traj.index(name) for name in declared]
        fast_laws = _laws_within(traj, idx)
        m = len(idx) - len(fast_laws)
        if m < 1 or m >= d:
            raise ReductionRefused(
                f"the declared fast variables {', '.join(declared)} span {m} of the model's "
                f"{d} dynamic directions (after {len(fast_laws)} conservation law(s) among "
                "them): a reduction needs at least one fast and one slow direction",
                reason="split",
                details={"declared": declared, "fast_directions": m, "dynamic_modes": d},
            )
    else:
        m = min(all_eps, key=lambda k: (all_eps[k], k))
    eps = eps_of(m)

    pointers = np.zeros((len(jacs), traj.n))
    for i, (J, lam) in enumerate(zip(jacs, eigs, strict=True)):
        hi, lo = abs(lam[m - 1]), abs(lam[m])
        thr = math.sqrt(hi * max(lo, 1e-300)) if lo > 0 else 0.5 * hi
        p, got = fast_participation(J, thr)
        if got == m:
            pointers[i] = p
        else:  # the gap is not clean at this sample: use the eigenvectors nearest to it
            pointers[i] = np.nan
    with np.errstate(all="ignore"):
        ptr_max = np.nanmax(np.where(np.isnan(pointers), -np.inf, pointers), axis=0)
    ptr_max = np.where(np.isfinite(ptr_max), ptr_max, 0.0)
    participation = {name: float(max(p, 0.0)) for name, p in zip(traj.names, ptr_max, strict=True)}

    consistent, problem = True, ""
    if declared is not None:
        fast_names = declared
    else:
        fast_names = [n for n in traj.names if participation[n] >= participation_min]
        idx = [traj.index(n) for n in fast_names]
        fast_laws = _laws_within(traj, idx)
        span = len(idx) - len(fast_laws)
        if span != m:
            consistent = False
            problem = (
                f"{m} fast mode(s), but the variables with participation >= "
                f"{participation_min:g} ({', '.join(fast_names) or 'none'}) span {span} "
                "direction(s): the fast modes are not carried by a set of variables"
            )
    outside = [i for i, n in enumerate(traj.names) if n not in fast_names]
    leak = np.nan_to_num(np.abs(pointers[:, outside]).sum(axis=1)) if outside else np.zeros(0)
    law_dicts = [{traj.names[i]: int(c) for i, c in law.items()} for law in fast_laws]
    return TimescaleReport(
        times=traj.times,
        names=list(traj.names),
        eigenvalues=eigs,
        n_fast=m,
        eps=eps,
        participation=participation,
        fast=list(fast_names),
        declared=declared is not None,
        leakage=leak,
        fast_laws=law_dicts,
        layer_time_constants=layer_time_constants,
        participation_min=participation_min,
        window=traj.window,
        consistent=consistent,
        problem=problem,
        all_eps_max=all_eps,
    )


def _laws_within(traj: Trajectory, idx: Sequence[int]) -> list[dict[int, int]]:
    """Conservation laws (integer vectors over states) supported on the states ``idx``.

    These are the vectors ``c`` with ``c^T N = 0`` that vanish outside ``idx``: the left null
    space of the stoichiometric rows of ``idx`` (rate-rule variables take part in no law).
    """
    from ..model.conservation import left_null_space, stoichiometry_matrix

    net = traj.network
    species, _, N = stoichiometry_matrix(net)
    row = {s: i for i, s in enumerate(species)}
    rows, keep = [], []
    for i in idx:
        key = traj.cm.state_keys[i]
        if key.startswith(AMOUNT) and key[len(AMOUNT) :] in row:
            rows.append(row[key[len(AMOUNT) :]])
            keep.append(i)
    if not rows:
        return []
    sub = N[rows, :]
    cf = _conversion_factors(net, [traj.names[i] for i in keep])
    if cf is not None:
        sub = sub.multiply(np.asarray(cf)[:, None]).tocsr()
    return [{keep[k]: c for k, c in vec.items()} for vec in left_null_space(sub)]


def _conversion_factors(net: ReactionNetwork, species: Sequence[str]) -> list[float] | None:
    if net.conversion_factor is None and not any(
        net.species_map[s].conversion_factor for s in species
    ):
        return None
    out = []
    for s in species:
        name = net.species_map[s].conversion_factor or net.conversion_factor
        p = net.parameter_map.get(name) if name else None
        out.append(1.0 if p is None or p.value is None else float(p.value))
    return out
