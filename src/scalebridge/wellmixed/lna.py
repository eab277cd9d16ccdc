r"""The linear noise approximation (LNA): ``method="lna"`` and :func:`lna_stationary`.

The model and its units
-----------------------
The LNA is built on the stochastic model of :mod:`scalebridge.codegen.stochastic` -- the one the
SSA, CLE and FSP simulate -- in molecule counts ``x``: stoichiometric matrix ``S`` (species x
reactions, integer net changes) and propensities ``a_j(x)`` in counts per unit time.  Its
*macroscopic* propensities are the leading order of the system-size expansion: a law recognised
as mass action has ``a_j = c_j prod_i ff(x_i, nu_ij)`` for the SSA (falling factorials) and
``a_j(x) = c_j prod_i x_i^nu_ij`` here, which is ``Omega f_j(x / Omega)`` with ``f_j`` the rate
law in concentrations -- the SBML rate law times ``counts_per_amount``; other laws are used as
written (``a_j = counts_per_amount x rate_j``, as the SSA does).  The system size of a species
is ``Omega = counts_per_amount x`` the size of its compartment (size 1 where the model gives
none; DESIGN.md), so ``x = Omega c``.  Everything below is in counts: the mean in molecules, the
covariance in molecules^2; the LNA in concentrations is the same with ``Sigma / (Omega_i
Omega_j)``.

Equations (van Kampen; Elf & Ehrenberg, Genome Res. 13, 2475, 2003)
------------------------------------------------------------------
    dx/dt     = S a(x)                                   (macroscopic rate equations)
    dSigma/dt = J Sigma + Sigma J^T + D,   J = S da/dx,  D = S diag(a(x)) S^T

with ``Sigma(t0) = 0`` (a deterministic initial state).  ``x`` is the ODE solution (in counts);
for networks whose propensities are linear in the counts (zero- and first-order mass action)
these are the exact equations of the mean and covariance of the chemical master equation, and
the LNA is exact in its first two moments.  For nonlinear networks the true mean differs from
``x`` by O(1) molecules and the covariance by a relative O(1/Omega) (the system-size
expansion's next order; ``tests/validation/test_lna_vs_fsp.py`` measures it against FSP).

The Jacobian ``da/dx`` is analytic: mass-action laws are differentiated in closed form (vectorised
over the reactions), and any other law is expanded into the model's symbols and differentiated
symbolically (:func:`scalebridge.model.expr.diff`), compiled to the bytecode of
:mod:`scalebridge.codegen.vm`.  No finite differences.

Time-dependent solution (``integrator``)
----------------------------------------
* ``"exponential"`` (the default): the mean by SciPy's BDF (stiff-safe, sparse analytic
  Jacobian) with dense output; then the covariance by fourth-order Magnus steps on the
  linearised Lyapunov equation (:func:`_solve_exponential`): ``J`` and ``D`` at the two Gauss
  points of each step, and the step's linear flow solved exactly by matrix exponentials summed
  with scaling and squaring (:func:`_exp_integral`; Van Loan's block exponential,
  C. Van Loan, IEEE TAC 23, 395, 1978, overflows for stiff steps), so stiffness does not
  limit the step; two half steps against one full step give the error estimate, and their
  Richardson extrapolation (the Magnus step is symmetric, so the extrapolation gains two
  orders) is kept.  A step costs O(n^3) dense work: 200 species over 60 steps took about 2 s
  on one core (a multi-threaded BLAS on busy cores can be many times slower).
* ``"joint"`` (a reference, for small networks): the mean and the upper triangle of ``Sigma``
  (n(n+1)/2 unknowns) integrated together by SciPy's BDF with a sparse analytic Jacobian: the
  block of the mean (``J``), the linear Lyapunov operator ``Sigma -> J Sigma + Sigma J^T`` and
  the exact coupling ``dD/dx``; only the second derivatives of the propensities (``dJ/dx``,
  zero for linear networks) are left out of the Newton matrix, which slows the Newton
  iteration but not the accuracy.  Its cost grows steeply with n (the LU of the Kronecker-sum
  Jacobian): about 12 s at 60 species.

Stationary solution (``stationary=True``, :func:`lna_stationary`)
-----------------------------------------------------------------
The steady state of the rate equations (:func:`scalebridge.wellmixed.steady.steady_state`,
Newton on the conservation-law surface through the initial state), polished by Newton on the
drift ``S a(x)``, then the Lyapunov equation ``J Sigma + Sigma J^T + D = 0``
(:func:`scipy.linalg.solve_continuous_lyapunov`, Bartels-Stewart, O(n^3)).  With conservation
laws ``C S = 0`` the Jacobian ``J`` is singular and the equation has no unique solution, so it is
solved in reduced coordinates on the conservation surface: with ``Q`` an orthonormal basis of
the stoichiometric subspace ``range(S)`` (the orthogonal complement of the conservation laws'
span; from the SVD of ``S``), ``J_r = Q^T J Q``, ``D_r = Q^T D Q``, solve
``J_r X + X J_r^T + D_r = 0`` and ``Sigma = Q X Q^T``.  Fluctuations never leave ``range(S)``
(both ``J`` and ``D`` map into it), so this is the unique stationary covariance on the
surface, and ``C Sigma = 0``: conserved totals do not fluctuate.  The eigenvalues of ``J_r``
decide stability (all real parts negative, else :class:`~scalebridge.errors.SolverError`) and
give the relaxation times ``1 / |Re lambda|``.

Result layout (:class:`~scalebridge.results.Result`, no ``"run"`` dimension; counts)
-----------------------------------------------------------------------------------
``X`` the mean of each reported species (attrs ``statistic="mean"``), ``X-sd`` its standard
deviation (``statistic="sd"``, ``of="X"``), so :meth:`Result.mean` / :meth:`Result.sd` and
:meth:`Result.to_csv` work as for ``fsp``; ``covariance`` the covariance of the reported species,
dims ``("time", "species-i", "species-j")`` with the species ids as coordinates.  The stationary
result has one time point, ``+inf``.  Reported variables must be species (a species no reaction
changes has variance 0).  Models with events are refused (the LNA is that of the reaction
network), as are, through the stochastic model, rate rules and time-dependent propensities.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import xarray as xr
from scipy.integrate import solve_ivp

from ..codegen import vm
from ..codegen.build import AMOUNT
from ..codegen.program import Assembler
from ..codegen.stochastic import StochasticModel
from ..errors import OptionError, SolverError, UnsupportedFeatureError
from ..model.expr import Expr, diff, fold, substitute, symbols
from ..model.network import ReactionNetwork
from ..problem import TimeCourse, check_vars
from ..results import TIME, Result
from .stochastic_base import Prepared, prepare

__all__ = [
    "LNA",
    "LnaModel",
    "LnaResult",
    "lna_stationary",
]

INTEGRATORS = ("exponential", "joint")
ROW, COL = "species-i", "species-j"
COVARIANCE = "covariance"
# Relative rank threshold of the SVD of S (the stoichiometric subspace).
RANK_RTOL = 1e-10
# The steady state is accepted as stable when every eigenvalue on the surface has real part
# below -STABILITY_MARGIN x (largest |eigenvalue|).
STABILITY_MARGIN = 1e-12
MAX_EXP_STEPS = 100_000


# =============================================================================================
# The macroscopic model: propensities, their Jacobian, drift and diffusion
# =============================================================================================
class LnaModel:
    """Macroscopic propensities ``a(x)`` of a stochastic model, ``da/dx``, the drift
    ``S a(x)``, its Jacobian ``J = S da/dx`` and the diffusion matrix ``S diag(a) S^T``, in
    counts (module docstring).

    Built from a :class:`~scalebridge.wellmixed.stochastic_base.Prepared` problem (its value
    array holds the parameter values, compartment sizes and mass-action constants).
    """

    def __init__(self, prepared: Prepared):
        sm: StochasticModel = prepared.sm
        T = sm.tables
        self.sm = sm
        self.species: list[str] = list(sm.species)
        self.reactions: list[str] = list(sm.reactions)
        self.n, self.n_r = T.n_species, T.n_reactions
        self.scale = float(T.scale)
        self.x0 = np.asarray(prepared.x0, dtype=np.float64).copy()
        cols = np.repeat(np.arange(self.n_r), np.diff(T.st_ptr))
        self.S = sp.csr_matrix((T.st_val, (T.st_idx, cols)), shape=(self.n, self.n_r))
        self._S_dense = self.S.toarray() if self.n * self.n_r <= 4_000_000 else None
        v0 = np.asarray(prepared.v0, dtype=np.float64)
        self._mass_action(T, v0)
        self._general(sm, v0)
        self.system_size = self._system_sizes(prepared)

    # ----------------------------------------------------------------------- construction
    def _mass_action(self, T: Any, v0: np.ndarray) -> None:
        """Padded reactant table of the mass-action reactions: row r = reaction ``ma_j[r]``,
        column k = its k-th reactant species (``-1`` padding) and order."""
        ma = np.nonzero(T.is_ma)[0]
        width = int(max((T.ma_ptr[j + 1] - T.ma_ptr[j] for j in ma), default=0))
        idx = np.full((ma.size, max(width, 1)), -1, dtype=np.int64)
        order = np.zeros((ma.size, max(width, 1)), dtype=np.int64)
        for r, j in enumerate(ma):
            lo, hi = int(T.ma_ptr[j]), int(T.ma_ptr[j + 1])
            idx[r, : hi - lo] = T.ma_idx[lo:hi]
            order[r, : hi - lo] = T.ma_ord[lo:hi]
        self._ma = ma
        self._ma_idx, self._ma_ord = idx, order
        self._ma_pad = idx < 0
        self._ma_c = v0[T.c_slot[ma]] if ma.size else np.zeros(0)
        if np.any(~np.isfinite(self._ma_c)):
            bad = self.reactions[int(ma[np.argmax(~np.isfinite(self._ma_c))])]
            raise OptionError(f"reaction {bad!r} has a non-finite rate constant")
        # Sparse pattern of da/dx over the mass-action part: one entry per (reaction, reactant).
        keep = ~self._ma_pad
        self._ma_rows = np.broadcast_to(ma[:, None], idx.shape)[keep]
        self._ma_cols = idx[keep]

    def _general(self, sm: StochasticModel, v0: np.ndarray) -> None:
        """Bytecode computing every general law and its derivatives by the species' amounts."""
        cm, T = sm.cm, sm.tables
        general = [j for j in range(self.n_r) if not T.is_ma[j]]
        self._gen = np.asarray(general, dtype=np.int64)
        state_key = {AMOUNT + s: i for i, s in enumerate(self.species)}
        laws = expanded_laws(sm, general)
        asm = Assembler()
        n_slots = v0.size
        rate_slot = np.zeros(len(general), dtype=np.int64)
        d_rows: list[int] = []
        d_cols: list[int] = []
        d_slots: list[int] = []
        slots = dict(cm.slots)

        def slot_of(name: str) -> int:
            try:
                return slots[name]
            except KeyError:
                raise UnsupportedFeatureError(
                    "symbol without a value in the linear noise approximation", element=name
                ) from None

        for r, j in enumerate(general):
            law = laws[r]
            rate_slot[r] = n_slots
            asm.assign(law, n_slots, slot_of)
            n_slots += 1
            for key in sorted(symbols(law)):
                i = state_key.get(key)
                if i is None:
                    continue
                d = diff(law, key)
                d_rows.append(j)
                d_cols.append(i)
                d_slots.append(n_slots)
                asm.assign(d, n_slots, slot_of)
                n_slots += 1
        self._code, self._consts = asm.arrays()
        self._stack = np.empty(max(asm.max_depth, 1))
        self._v = np.zeros(n_slots)
        self._v[: v0.size] = v0
        self._x_slots = np.asarray(T.x_slots, dtype=np.int64)
        self._rate_slot = rate_slot
        self._d_rows = np.asarray(d_rows, dtype=np.int64)
        self._d_cols = np.asarray(d_cols, dtype=np.int64)
        self._d_slots = np.asarray(d_slots, dtype=np.int64)
        self.da_rows = np.concatenate([self._ma_rows, self._d_rows]).astype(np.int64)
        self.da_cols = np.concatenate([self._ma_cols, self._d_cols]).astype(np.int64)

    def _system_sizes(self, prepared: Prepared) -> dict[str, float]:
        net, cm = self.sm.network, self.sm.cm
        out: dict[str, float] = {}
        for s in net.species:
            size = float(prepared.v0[cm.slot_of(s.compartment)]) if s.compartment else 1.0
            out[s.id] = self.scale * size
        return out

    # ----------------------------------------------------------------------- evaluation
    def _run_general(self, x: np.ndarray) -> None:
        if self._gen.size:
            self._v[self._x_slots] = x / self.scale
            vm.run(self._code, self._consts, self._v, 0, self._code.size, self._stack)

    def _ma_powers(self, x: np.ndarray) -> np.ndarray:
        xs = x[np.where(self._ma_pad, 0, self._ma_idx)]
        pw = xs**self._ma_ord
        pw[self._ma_pad] = 1.0
        return pw

    def propensities(self, x: np.ndarray) -> np.ndarray:
        """Macroscopic propensities ``a(x)`` (counts per unit time)."""
        x = np.asarray(x, dtype=np.float64)
        a = np.empty(self.n_r)
        if self._ma.size:
            a[self._ma] = self._ma_c * np.prod(self._ma_powers(x), axis=1)
        if self._gen.size:
            self._run_general(x)
            a[self._gen] = self.scale * self._v[self._rate_slot]
        return a

    def propensities_and_derivative(self, x: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix]:
        """``a(x)`` and ``da/dx`` (sparse, reactions x species)."""
        x = np.asarray(x, dtype=np.float64)
        a = np.empty(self.n_r)
        data = []
        if self._ma.size:
            pw = self._ma_powers(x)
            a[self._ma] = self._ma_c * np.prod(pw, axis=1)
            K = pw.shape[1]
            d = np.zeros_like(pw)
            xs = x[np.where(self._ma_pad, 0, self._ma_idx)]
            for k in range(K):
                others = np.prod(np.delete(pw, k, axis=1), axis=1) if K > 1 else 1.0
                o = self._ma_ord[:, k]
                d[:, k] = self._ma_c * o * xs[:, k] ** np.maximum(o - 1, 0) * others
            data.append(d[~self._ma_pad])
        if self._gen.size:
            self._run_general(x)
            a[self._gen] = self.scale * self._v[self._rate_slot]
            # d(scale * rate)/dx = d rate / d amount, since amount = x / scale
            data.append(self._v[self._d_slots])
        values = np.concatenate(data) if data else np.zeros(0)
        da = sp.csr_matrix((values, (self.da_rows, self.da_cols)), shape=(self.n_r, self.n))
        return a, da

    def drift(self, x: np.ndarray) -> np.ndarray:
        """``S a(x)``: the macroscopic rate of change of the counts."""
        return np.asarray(self.S @ self.propensities(x))

    def jacobian(self, x: np.ndarray) -> sp.csr_matrix:
        """``J = S da/dx`` (sparse)."""
        _, da = self.propensities_and_derivative(x)
        return sp.csr_matrix(self.S @ da)

    def diffusion(self, a: np.ndarray) -> np.ndarray:
        """``D = S diag(a) S^T`` (dense) for propensities ``a``."""
        return np.asarray((self.S @ sp.diags(a) @ self.S.T).toarray())

    def stoichiometric_basis(self) -> np.ndarray:
        """Orthonormal basis ``Q`` (n x r) of ``range(S)``; ``n - r`` conservation laws."""
        if self.n == 0:
            return np.zeros((0, 0))
        S = self._S_dense if self._S_dense is not None else self.S.toarray()
        if S.shape[1] == 0:
            return np.zeros((self.n, 0))
        U, s, _ = np.linalg.svd(S, full_matrices=False)
        rank = int(np.sum(s > RANK_RTOL * max(float(s[0]) if s.size else 0.0, 1e-300)))
        return U[:, :rank]


def expanded_laws(sm: StochasticModel, which: list[int] | None = None) -> list[Expr]:
    """The rate law of each reaction (all, or those in ``which``) with every derived value
    (concentrations, assignment rules) substituted, so that it reads in the amounts of the state
    species (symbols ``A#<species>``), fixed values (parameters, compartment sizes, ...) and
    constants -- ready for :func:`~scalebridge.model.expr.diff`."""
    cm = sm.cm
    memo: dict[str, Expr] = {}

    def expand(key: str, trail: tuple[str, ...]) -> Expr:
        if key in memo:
            return memo[key]
        e = cm.derived_exprs[key]
        inner = {s: expand(s, (*trail, key)) for s in symbols(e)
                 if s in cm.derived_exprs and s not in trail and s != key}  # fmt: skip
        out = fold(substitute(e, inner)) if inner else e
        memo[key] = out
        return out

    idx = range(len(sm.reactions)) if which is None else which
    return [expand(sm.reactions[j], ()) for j in idx]


# =============================================================================================
# Stationary LNA
# =============================================================================================
@dataclass(frozen=True)
class LnaResult:
    """The stationary LNA in molecule counts.

    ``mean`` (counts) and ``covariance`` (counts^2) over ``species`` (the species the reactions
    change, in state order);
    ``system_size``: Omega of each species (counts per unit concentration);
    ``eigenvalues``: of the Jacobian on the conservation surface (per unit time);
    ``conservation_laws``: how many (``n - rank S``); ``residual``: the largest
    ``|(S a)_i| / (|S| a)_i`` at the steady state (relative drift left).
    Derived: ``sd``, ``fano`` (variance / mean), ``cv`` (sd / mean), ``correlation``,
    ``timescales`` (relaxation times ``1/|Re lambda|``, slowest first).
    """

    species: tuple[str, ...]
    mean: np.ndarray
    covariance: np.ndarray
    system_size: dict[str, float]
    eigenvalues: np.ndarray
    conservation_laws: int
    residual: float
    model: str = ""
    wall_time_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sd(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.covariance), 0.0, None))

    @property
    def fano(self) -> np.ndarray:
        """Variance / mean (NaN where the mean is 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.mean != 0, np.diag(self.covariance) / self.mean, np.nan)

    @property
    def cv(self) -> np.ndarray:
        """sd / mean (NaN where the mean is 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.mean != 0, self.sd / np.abs(self.mean), np.nan)

    @property
    def correlation(self) -> np.ndarray:
        """Pearson correlation matrix (NaN rows/columns for species with variance 0)."""
        sd = self.sd
        with np.errstate(divide="ignore", invalid="ignore"):
            r = self.covariance / np.outer(sd, sd)
        r[np.outer(sd, sd) == 0] = np.nan
        return r

    @property
    def timescales(self) -> np.ndarray:
        """Relaxation times ``1/|Re lambda|``, slowest first."""
        re = np.abs(self.eigenvalues.real)
        with np.errstate(divide="ignore"):
            return np.sort(np.where(re > 0, 1.0 / re, np.inf))[::-1]

    @property
    def concentration_mean(self) -> np.ndarray:
        """``mean / Omega`` (per unit volume of each species' compartment)."""
        return self.mean / self._omega()

    @property
    def concentration_covariance(self) -> np.ndarray:
        """``Sigma_ij / (Omega_i Omega_j)``."""
        om = self._omega()
        return self.covariance / np.outer(om, om)

    def _omega(self) -> np.ndarray:
        return np.array([self.system_size.get(s, 1.0) for s in self.species])

    def index(self, species: str) -> int:
        try:
            return self.species.index(species)
        except ValueError:
            raise OptionError(
                f"no species '{species}' in the LNA; it has {', '.join(self.species)}"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: ``{"lna": {"mean": {X: ..}, "covariance": {X: {Y: ..}}, "fano": {X: ..},
        ...}}`` (counts; undefined values as ``None``)."""
        sp_ = list(self.species)
        fano, cv, sd, corr = self.fano, self.cv, self.sd, self.correlation
        body: dict[str, Any] = {
            "mean": {s: _num(self.mean[i]) for i, s in enumerate(sp_)},
            "covariance": {
                s: {t: _num(self.covariance[i, j]) for j, t in enumerate(sp_)}
                for i, s in enumerate(sp_)
            },
            "fano": {s: _num(fano[i]) for i, s in enumerate(sp_)},
            "sd": {s: _num(sd[i]) for i, s in enumerate(sp_)},
            "cv": {s: _num(cv[i]) for i, s in enumerate(sp_)},
            "correlation": {
                s: {t: _num(corr[i, j]) for j, t in enumerate(sp_)} for i, s in enumerate(sp_)
            },
            "timescales": [_num(t) for t in self.timescales],
            "eigenvalues": {
                "real": [_num(e) for e in self.eigenvalues.real],
                "imag": [_num(e) for e in self.eigenvalues.imag],
            },
            "system_size": {s: _num(self.system_size.get(s, math.nan)) for s in sp_},
            "units": "molecules",
            "conservation_laws": int(self.conservation_laws),
            "steady_state_residual": _num(self.residual),
        }
        return {"lna": body}

    def summary(self) -> str:
        sp_ = list(self.species)
        w = max([len(s) for s in sp_] + [7])
        lines = [
            f"stationary linear noise approximation{f' of {self.model!r}' if self.model else ''}"
            " (molecule counts)",
            f"{'species':<{w}}  {'mean':>12}  {'sd':>12}  {'Fano':>10}  {'CV':>10}  {'Omega':>10}",
        ]
        fano, cv, sd = self.fano, self.cv, self.sd
        for i, s in enumerate(sp_):
            lines.append(
                f"{s:<{w}}  {self.mean[i]:>12.6g}  {sd[i]:>12.6g}  {fano[i]:>10.5g}  "
                f"{cv[i]:>10.4g}  {self.system_size.get(s, math.nan):>10.4g}"
            )
        ts = self.timescales
        if ts.size:
            shown = ", ".join(f"{t:.4g}" for t in ts[:6]) + (", ..." if ts.size > 6 else "")
            lines.append(f"relaxation times (1/|Re lambda|, slowest first): {shown}")
        if self.conservation_laws:
            lines.append(
                f"{self.conservation_laws} conservation law(s): solved on the conservation "
                "surface (conserved totals do not fluctuate)"
            )
        n = len(sp_)
        if 1 < n <= 8:
            corr = self.correlation
            lines.append("correlation:")
            lines.append(" " * (w + 2) + "  ".join(f"{s:>8.8}" for s in sp_))
            for i, s in enumerate(sp_):
                lines.append(f"{s:<{w}}  " + "  ".join(f"{corr[i, j]:>8.4f}" for j in range(n)))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _num(x: float) -> float | None:
    v = float(x)
    return v if math.isfinite(v) else None


def lna_stationary(
    net: ReactionNetwork,
    *,
    params: Mapping[str, float] | None = None,
    counts_per_amount: float | None = None,
    rtol: float = 1e-10,
    atol: float = 1e-12,
) -> LnaResult:
    """The stationary LNA of ``net`` (module docstring), in molecule counts.

    ``params`` overrides parameters, compartment sizes and initial values (the initial state
    picks the conservation surface); ``counts_per_amount`` scales amounts to counts (DESIGN.md);
    ``rtol``/``atol`` are the steady-state tolerances (:func:`~scalebridge.wellmixed.steady.
    steady_state`, amounts).  Raises :class:`~scalebridge.errors.SolverError` when no steady
    state is found or it is not asymptotically stable on the conservation surface.
    """
    problem = TimeCourse(net, np.zeros(1), values=dict(params or {}))
    prepared = _prepare(problem, counts_per_amount)
    return _stationary(LnaModel(prepared), net, problem.values, rtol, atol)


def _stationary(
    model: LnaModel, net: ReactionNetwork, values: Mapping[str, float], rtol: float, atol: float
) -> LnaResult:
    from .steady import steady_state

    t_start = time.perf_counter()
    n = model.n
    if n == 0:
        return LnaResult((), np.zeros(0), np.zeros((0, 0)), {}, np.zeros(0, complex), 0, 0.0,
                         net.id, 0.0)  # fmt: skip
    ss = steady_state(net, params=dict(values), rtol=rtol, atol=atol)
    pos = {name: i for i, name in enumerate(ss.state_names)}
    missing = [s for s in model.species if s not in pos]
    if missing:
        raise UnsupportedFeatureError(
            "species without a state of the rate equations", element=missing[0]
        )
    x = np.array([ss.states[pos[s]] for s in model.species]) * model.scale
    Q = model.stoichiometric_basis()
    x, residual = _polish(model, x, Q)
    a, da = model.propensities_and_derivative(x)
    J = np.asarray((model.S @ da).toarray())
    D = model.diffusion(a)
    Jr, Dr = Q.T @ J @ Q, Q.T @ D @ Q
    eig = np.linalg.eigvals(Jr) if Jr.size else np.zeros(0, dtype=complex)
    if eig.size:
        worst = float(np.max(eig.real))
        if not worst < -STABILITY_MARGIN * max(float(np.max(np.abs(eig))), 1e-300):
            raise SolverError(
                "no stationary LNA: the steady state is not asymptotically stable on the "
                f"conservation surface (eigenvalue with real part {worst:.3g}); the "
                "fluctuations have no stationary covariance"
            )
    X = sla.solve_continuous_lyapunov(Jr, -Dr) if Jr.size else np.zeros((0, 0))
    cov = Q @ X @ Q.T
    cov = 0.5 * (cov + cov.T)
    return LnaResult(
        species=tuple(model.species),
        mean=x,
        covariance=cov,
        system_size={s: model.system_size[s] for s in model.species},
        eigenvalues=eig,
        conservation_laws=n - Q.shape[1],
        residual=residual,
        model=net.id,
        wall_time_s=time.perf_counter() - t_start,
        extra={"steady_state_method": ss.method, "steady_state_iterations": ss.iterations},
    )


def _relative_drift(model: LnaModel, x: np.ndarray) -> float:
    a = model.propensities(x)
    f = model.S @ a
    scale = abs(model.S) @ np.abs(a)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(scale > 0, np.abs(f) / scale, np.abs(f))
    return float(np.max(r, initial=0.0))


def _polish(model: LnaModel, x: np.ndarray, Q: np.ndarray) -> tuple[np.ndarray, float]:
    """Newton on the drift within ``x + range(S)`` (the conservation surface), so that the
    LNA is linearised at a root of exactly its own drift; returns (x, relative drift)."""
    best, best_r = x, _relative_drift(model, x)
    for _ in range(8):
        if best_r < 1e-14 or Q.shape[1] == 0:
            break
        a, da = model.propensities_and_derivative(best)
        f = model.S @ a
        Jr = Q.T @ np.asarray((model.S @ da).toarray()) @ Q
        try:
            step = Q @ np.linalg.solve(Jr, -(Q.T @ f))
        except np.linalg.LinAlgError:
            break
        trial = best + step
        r = _relative_drift(model, trial)
        if not (r < best_r):
            break
        best, best_r = trial, r
    if not best_r < 1e-6:
        raise SolverError(
            f"the steady state of the rate equations leaves a relative drift {best_r:.3g} in "
            "the stochastic model (are conversion factors or non-reaction dynamics involved?)"
        )
    return best, best_r


# =============================================================================================
# Time-dependent LNA
# =============================================================================================
@dataclass
class _Trajectory:
    times: np.ndarray
    mean: np.ndarray  # (time, n)
    cov: np.ndarray  # (time, n, n)
    stats: dict[str, Any]


def _vech_tables(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper-triangle (row-major) indices and the full n x n map to them."""
    iu, ju = np.triu_indices(n)
    pos = np.zeros((n, n), dtype=np.int64)
    pos[iu, ju] = np.arange(iu.size)
    pos[ju, iu] = np.arange(iu.size)
    return iu, ju, pos


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


class _Joint:
    """``z = [x, vech(Sigma)]`` for SciPy's BDF, with the sparse Jacobian (module docstring)."""

    def __init__(self, model: LnaModel):
        self.model = model
        n = model.n
        self.n = n
        self.iu, self.ju, self.pos = _vech_tables(n)
        self.m = self.iu.size
        self.nfev = 0
        self.njev = 0
        # Pattern of J = S da/dx: fixed, from the patterns of S and da/dx.
        ones_da = sp.csr_matrix((np.ones(model.da_rows.size), (model.da_rows, model.da_cols)),
                                shape=(model.n_r, n))  # fmt: skip
        pat = (abs(model.S) @ ones_da).tocoo()
        self.jr, self.jc = pat.row.astype(np.int64), pat.col.astype(np.int64)
        # Lyapunov operator in vech coordinates: rows (p, b), b >= p, coefficient J[p, q] on
        # Sigma[q, b]; rows (a, p), a <= p, coefficient J[p, q] on Sigma[a, q].
        rows, cols, which = [], [], []
        ar = np.arange(n)
        for e, (p, q) in enumerate(zip(self.jr, self.jc, strict=True)):
            b = ar[ar >= p]
            rows.append(self.pos[p, b])
            cols.append(self.pos[q, b])
            which.append(np.full(b.size, e))
            a = ar[ar <= p]
            rows.append(self.pos[a, p])
            cols.append(self.pos[a, q])
            which.append(np.full(a.size, e))
        self.l_rows, self.l_cols, self.l_which = _cat(rows), _cat(cols), _cat(which)
        # dD/dx in vech coordinates: P[(a, b), j] = S_aj S_bj, times da/dx.
        S = model.S.tocsc()
        pr, pc, pv = [], [], []
        for j in range(model.n_r):
            idx = S.indices[S.indptr[j] : S.indptr[j + 1]]
            val = S.data[S.indptr[j] : S.indptr[j + 1]]
            for u in range(idx.size):
                for w in range(idx.size):
                    if idx[u] <= idx[w]:
                        pr.append(self.pos[idx[u], idx[w]])
                        pc.append(j)
                        pv.append(val[u] * val[w])
        self.P = sp.csr_matrix((pv, (pr, pc)), shape=(self.m, model.n_r))

    def unpack(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = self.n
        sig = z[n:][self.pos]
        return z[:n], sig

    def rhs(self, _t: float, z: np.ndarray) -> np.ndarray:
        self.nfev += 1
        x, sig = self.unpack(z)
        model = self.model
        a, da = model.propensities_and_derivative(x)
        J = (model.S @ da).toarray()
        JS = J @ sig
        dsig = JS + JS.T + model.diffusion(a)
        return np.concatenate([model.S @ a, dsig[self.iu, self.ju]])

    def jac(self, _t: float, z: np.ndarray) -> sp.csc_matrix:
        self.njev += 1
        n, m = self.n, self.m
        x = z[:n]
        model = self.model
        _, da = model.propensities_and_derivative(x)
        J = (model.S @ da).toarray()
        Jv = J[self.jr, self.jc]
        L = sp.coo_matrix((Jv[self.l_which], (self.l_rows, self.l_cols)), shape=(m, m))
        Jx = sp.coo_matrix(J)
        dD = (self.P @ da).tocoo()
        rows = np.concatenate([Jx.row, L.row + n, dD.row + n])
        cols = np.concatenate([Jx.col, L.col + n, dD.col])
        vals = np.concatenate([Jx.data, L.data, dD.data])
        return sp.csc_matrix((vals, (rows, cols)), shape=(n + m, n + m))


def _solve_joint(model: LnaModel, times: np.ndarray, rtol: float, atol: float) -> _Trajectory:
    sys = _Joint(model)
    n = model.n
    z0 = np.concatenate([model.x0, np.zeros(sys.m)])
    if times.size == 1:
        cov = np.zeros((1, n, n))
        return _Trajectory(times, model.x0[None, :].copy(), cov, {"integrator": "joint"})
    with np.errstate(over="ignore", invalid="ignore"):
        sol = solve_ivp(sys.rhs, (times[0], times[-1]), z0, method="BDF", t_eval=times,
                        jac=sys.jac, rtol=rtol, atol=atol)  # fmt: skip
    if not sol.success:
        raise SolverError(f"the LNA integration failed: {sol.message}", time=float(sol.t[-1]))
    mean = sol.y[:n].T.copy()
    cov = np.stack([sys.unpack(sol.y[:, k])[1] for k in range(times.size)])
    return _Trajectory(times, mean, cov, {"integrator": "joint", "rhs_evaluations": sys.nfev,
                                          "jacobian_evaluations": sys.njev})  # fmt: skip


def _solve_mean(model: LnaModel, times: np.ndarray, rtol: float, atol: float) -> Any:
    def rhs(_t: float, x: np.ndarray) -> np.ndarray:
        return model.drift(x)

    def jac(_t: float, x: np.ndarray) -> sp.csc_matrix:
        return model.jacobian(x).tocsc()

    with np.errstate(over="ignore", invalid="ignore"):
        sol = solve_ivp(rhs, (times[0], times[-1]), model.x0, method="BDF", jac=jac,
                        rtol=rtol, atol=atol, dense_output=True)  # fmt: skip
    if not sol.success:
        raise SolverError(f"the rate equations failed: {sol.message}", time=float(sol.t[-1]))
    return sol


def _exp_integral(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(Phi, Q)`` with ``Phi = e^A`` and ``Q = int_0^1 e^{A u} B e^{A^T u} du`` for a
    symmetric ``B``, stable for stiff ``A``.

    Scaling and squaring: with ``s = 2^-k`` such that ``||s A||_1 <= 1/4``, ``Phi(s)`` and
    ``Q(s) = sum_j L^j(s B) / (j+1)!`` (``L(X) = s A X + X s A^T``, ``||L|| <= 1/2``) are summed
    as Taylor series to rounding, then doubled up: ``Q(2s) = Q(s) + Phi(s) Q(s) Phi(s)^T``,
    ``Phi(2s) = Phi(s)^2``.  Every quantity stays bounded however stiff ``A`` is (Van Loan's
    block exponential ``expm([[-A, B], [0, A^T]])`` would hold ``e^{-A}``, which overflows).
    One matrix product per series term and three per doubling.
    """
    n = A.shape[0]
    norm = float(np.linalg.norm(A, 1))
    k = max(0, math.ceil(math.log2(norm / 0.25))) if norm > 0.25 else 0
    s = 2.0**-k
    A0 = s * A
    Phi = np.eye(n) + A0
    term = A0
    for j in range(2, 40):
        term = (term @ A0) / j
        Phi += term
        if np.max(np.abs(term), initial=0.0) <= 1e-17 * np.max(np.abs(Phi)):
            break
    T = s * B
    Q = T.copy()
    for j in range(1, 40):
        AT = A0 @ T
        T = (AT + AT.T) / (j + 1)
        Q += T
        if np.max(np.abs(T), initial=0.0) <= 1e-17 * max(np.max(np.abs(Q), initial=0.0), 1e-300):
            break
    for _ in range(k):
        Q = Q + (Phi @ Q) @ Phi.T
        Phi = Phi @ Phi
    return Phi, 0.5 * (Q + Q.T)


_GAUSS = math.sqrt(3.0) / 6.0


def _solve_exponential(model: LnaModel, times: np.ndarray, rtol: float, atol: float) -> _Trajectory:
    """Mean by BDF with dense output; covariance by fourth-order Magnus steps on the
    linearised Lyapunov equation, with step doubling and Richardson extrapolation.

    ``Sigma' = J Sigma + Sigma J^T + D`` is the linear system ``W' = H W``,
    ``H = [[J, D], [0, -J^T]]``, ``Sigma = X Y^-1`` for ``W = [X; Y]`` (the linearisation of a
    Riccati equation with no quadratic term).  The Magnus step with the two Gauss points
    ``H_1, H_2`` has ``Omega = h/2 (H_1 + H_2) + sqrt(3)/12 h^2 [H_2, H_1]``, again of the form
    ``[[A, B], [0, -A^T]]``, and advancing ``[Sigma; I]`` by ``e^Omega`` gives
    ``Sigma_new = e^A Sigma e^{A^T} + int_0^1 e^{A u} B e^{A^T u} du`` (:func:`_exp_integral`).
    """
    n = model.n
    T = times.size
    cov = np.zeros((T, n, n))
    if T == 1:
        return _Trajectory(times, model.x0[None, :].copy(), cov, {"integrator": "exponential"})
    sol = _solve_mean(model, times, rtol, atol)
    mean = sol.sol(times).T.copy()
    mean[0] = model.x0
    evals = [0]

    def coefficients(t: float) -> tuple[sp.csr_matrix, np.ndarray]:
        evals[0] += 1
        a, da = model.propensities_and_derivative(sol.sol(t))
        return sp.csr_matrix(model.S @ da), model.diffusion(a)

    def step(sig: np.ndarray, t: float, h: float) -> np.ndarray:
        J1, D1 = coefficients(t + (0.5 - _GAUSS) * h)
        J2, D2 = coefficients(t + (0.5 + _GAUSS) * h)
        kappa = math.sqrt(3.0) / 12.0 * h * h
        A = (0.5 * h * (J1 + J2) + kappa * (J2 @ J1 - J1 @ J2)).toarray()
        C = np.asarray(J2 @ D1 - J1 @ D2)
        B = 0.5 * h * (D1 + D2) + kappa * (C + C.T)
        Phi, Q = _exp_integral(A, B)
        out = Phi @ sig @ Phi.T + Q
        return 0.5 * (out + out.T)

    sig = np.zeros((n, n))
    t = float(times[0])
    span = float(times[-1] - times[0])
    h = span / 20.0
    steps = rejected = 0
    for k in range(1, T):
        t_out = float(times[k])
        while t < t_out:
            if steps + rejected > MAX_EXP_STEPS:
                raise SolverError("the LNA covariance needed too many steps", time=t)
            h_try = min(h, t_out - t)
            full = step(sig, t, h_try)
            half = step(step(sig, t, 0.5 * h_try), t + 0.5 * h_try, 0.5 * h_try)
            d = np.sqrt(np.clip(np.diag(half), 0.0, None))
            scale = atol + rtol * np.outer(d, d)
            with np.errstate(invalid="ignore"):
                err = float(np.max(np.abs(half - full) / scale, initial=0.0)) / 15.0
            if not math.isfinite(err):
                err = 1e10
            if err <= 1.0:
                sig = half + (half - full) / 15.0
                sig = 0.5 * (sig + sig.T)
                t = t_out if t_out - (t + h_try) <= 1e-12 * span else t + h_try
                steps += 1
            else:
                rejected += 1
            h = h_try * min(4.0, max(0.2, 0.9 * (1.0 / max(err, 1e-10)) ** 0.2))
        cov[k] = sig
    return _Trajectory(times, mean, cov, {"integrator": "exponential", "steps": steps,
                                          "rejected_steps": rejected,
                                          "rhs_evaluations": int(sol.nfev) + evals[0]})  # fmt: skip


def _prepare(problem: TimeCourse, counts_per_amount: float | None) -> Prepared:
    for ev in problem.network.events:
        raise UnsupportedFeatureError(
            "event in the linear noise approximation",
            element=ev.id or None,
            detail="the LNA is that of the reaction network alone; use method 'ssa'",
        )
    if problem.units == "concentration":
        raise OptionError(
            "method 'lna' reports molecule counts: units 'concentration' does not apply (use "
            "'model' or 'amount'; divide by the system size for concentrations)"
        )
    names = problem.output_names()
    check_vars(problem.network, names)
    for name in names:
        if name not in problem.network.species_map:
            raise OptionError(f"method 'lna' reports species moments; '{name}' is not a species")
    return prepare(problem, counts_per_amount)


# =============================================================================================
# The method
# =============================================================================================
@dataclass(frozen=True)
class LNA:
    """Linear noise approximation in molecule counts (module docstring).

    ``stationary``: the stationary LNA (steady state + Lyapunov equation; one time point
    ``+inf``) instead of the time course from the initial state.  ``rtol``/``atol``: the
    integration tolerances (``atol`` in counts for the mean, counts^2 for the covariance); with
    ``stationary`` the steady state is solved to ``rtol = min(rtol, 1e-10)`` and
    ``atol = min(atol, 1e-12)`` (amounts), then polished by Newton on the drift.
    ``integrator``: ``"exponential"`` or ``"joint"`` (module docstring).
    ``counts_per_amount``: molecules per unit of amount (DESIGN.md).
    """

    rtol: float = 1e-8
    atol: float = 1e-8
    stationary: bool = False
    integrator: str = "exponential"
    counts_per_amount: float | None = None

    name = "lna"
    exact = False  # exact in mean and covariance for linear propensities
    stochastic = True  # the moments of the stochastic model; no runs, no seed

    def __post_init__(self) -> None:
        for key in ("rtol", "atol"):
            v = getattr(self, key)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise OptionError(f"{key} must be a positive number, got {v!r}")
        if not self.rtol < 1:
            raise OptionError(f"rtol must be below 1, got {self.rtol!r}")
        if self.integrator not in INTEGRATORS:
            raise OptionError(
                f"integrator must be one of {', '.join(INTEGRATORS)}, not {self.integrator!r}"
            )
        if self.counts_per_amount is not None and not (
            isinstance(self.counts_per_amount, int | float)
            and math.isfinite(self.counts_per_amount)
            and self.counts_per_amount > 0
        ):
            raise OptionError(
                f"counts_per_amount must be a positive number, got {self.counts_per_amount!r}"
            )

    def options(self) -> dict[str, Any]:
        return asdict(self)

    def solve(self, problem: TimeCourse) -> Result:
        t_start = time.perf_counter()
        prepared = _prepare(problem, self.counts_per_amount)
        model = LnaModel(prepared)
        stats: dict[str, Any] = {"method": self.name, "options": self.options(), "seed": None}
        if self.stationary:
            st = _stationary(model, problem.network, problem.values, min(self.rtol, 1e-10),
                             min(self.atol, 1e-12))  # fmt: skip
            traj = _Trajectory(np.array([math.inf]), st.mean[None, :], st.covariance[None],
                               {"integrator": "lyapunov"})  # fmt: skip
            stats.update({
                "stationary": True,
                "eigenvalues_real": [float(e) for e in st.eigenvalues.real],
                "eigenvalues_imag": [float(e) for e in st.eigenvalues.imag],
                "conservation_laws": st.conservation_laws,
                "steady_state_residual": st.residual,
            })  # fmt: skip
        else:
            traj = self.trajectory(model, problem.times)
            stats["stationary"] = False
        stats.update(traj.stats)
        stats["system_size"] = _compartment_sizes(prepared, model.scale)
        data = _dataset(problem, prepared, model, traj)
        stats["wall_time_s"] = time.perf_counter() - t_start
        return Result(data, stats)

    def trajectory(self, model: LnaModel, times: np.ndarray) -> _Trajectory:
        """Mean and covariance of all state species at ``times`` from ``model.x0``."""
        times = np.asarray(times, dtype=np.float64)
        if model.n == 0:  # nothing changes: no state, no fluctuations
            return _Trajectory(times, np.zeros((times.size, 0)), np.zeros((times.size, 0, 0)),
                               {"integrator": self.integrator})  # fmt: skip
        joint = self.integrator == "joint"
        solver: Callable[..., _Trajectory] = _solve_joint if joint else _solve_exponential
        return solver(model, np.asarray(times, dtype=np.float64), self.rtol, self.atol)


def _compartment_sizes(prepared: Prepared, scale: float) -> dict[str, float]:
    sm = prepared.sm
    return {c.id: scale * float(prepared.v0[sm.cm.slot_of(c.id)])
            for c in sm.network.compartments}  # fmt: skip


def _dataset(problem: TimeCourse, prepared: Prepared, model: LnaModel,
             traj: _Trajectory) -> xr.Dataset:  # fmt: skip
    names = problem.output_names()
    net = problem.network
    index = {s: i for i, s in enumerate(model.species)}
    T = traj.times.size
    k = len(names)
    mean = np.zeros((T, k))
    cov = np.zeros((T, k, k))
    for c, name in enumerate(names):
        if name in index:
            mean[:, c] = traj.mean[:, index[name]]
        else:  # a species no reaction changes: a constant count
            slot = prepared.sm.cm.slot_of(name, "amount")
            mean[:, c] = prepared.v0[slot] * model.scale
    in_state = [c for c, nm in enumerate(names) if nm in index]
    if in_state:
        src = [index[names[c]] for c in in_state]
        cov[np.ix_(range(T), in_state, in_state)] = traj.cov[np.ix_(range(T), src, src)]
    sd = np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0.0, None))
    data: dict[str, Any] = {}
    for c, name in enumerate(names):
        data[name] = ((TIME,), mean[:, c], {"kind": net.kind_of(name) or "", "statistic": "mean",
                                            "quantity": "amount"})  # fmt: skip
    for c, name in enumerate(names):
        data[f"{name}-sd"] = ((TIME,), sd[:, c], {"statistic": "sd", "of": name})
    data[COVARIANCE] = ((TIME, ROW, COL), cov, {"statistic": "covariance",
                                               "units": "molecules^2"})  # fmt: skip
    coords = {TIME: traj.times, ROW: list(names), COL: list(names)}
    return xr.Dataset(data, coords=coords)
