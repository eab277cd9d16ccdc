"""Time stepping of reaction-diffusion models: explicit, implicit, IMEX and ADI.

After discretisation (:mod:`scalebridge.space.stencils`, :mod:`scalebridge.space.reactions`)
the model is the ODE system ``du/dt = F(u, t) = A u + b + N(u, t)``: ``A`` the linear part
(diffusion, boundary faces, linear reactions), ``b`` the constant part (boundary influx
``p/h``, constant sources), ``N`` the terms evaluated cell by cell (nonlinear or time-dependent
reactions, networks).  The methods, with fixed step ``dt`` (each output interval is split into
equal steps no longer than ``dt``):

===================  ======================================================  =====  =========
method               update                                                  order  stability
===================  ======================================================  =====  =========
``explicit``         u1 = u0 + dt F(u0, t0)  (forward Euler)                  1      dt limit
``backward-euler``   u1 = u0 + dt F(u1, t1)  (Newton for N)                   1      L-stable
``crank-nicolson``   u1 = u0 + dt/2 (F(u0, t0) + F(u1, t1))  (Newton for N)   2      A-stable
``imex``             (I - dt A) u1 = u0 + dt (b + N(u0, t0))  (IMEX Euler)    1      A on A
``imex`` sbdf2       (3I - 2dt A) u2 = 4u1 - u0 + 2dt (b + 2N1 - N0)          2      A on A
``imex`` linearized  (I - dt (A + J_N)) du = dt F(u0, t0)  (Rosenbrock-Euler)  1      L-stable
``adi``              Douglas splitting, theta = 1/2, one axis at a time       2 (*)  A on A
===================  ======================================================  =====  =========

(*) ``adi`` treats diffusion and a constant linear decay implicitly, one axis at a time
(tridiagonal solves, O(N) per step), and every other reaction term explicitly (forward Euler):
order 2 when the reactions are linear with constant coefficients, else 1.

The explicit method refuses a step beyond its stability limit and names the limit, e.g.
``dt=0.01 exceeds the explicit diffusion limit h²/(2·d·D_max)=0.0025``.  Linear systems are
solved with SciPy's sparse LU (``splu``, minimum-degree ordering on A^T + A), factorised once
per step size and reused over all steps while the matrix stays the same (no nonlinear terms, or
``imex``); or iteratively
(``linear_solver="bicgstab"``/``"gmres"``/``"cg"``, ILU-preconditioned, warm-started).  Newton
iterations (``backward-euler``/``crank-nicolson`` with nonlinear terms) reuse a factorised
Jacobian while they contract fast, and refactorise otherwise.

Every one-step method is conservative: with zero-flux boundaries the change of the total amount
over a step equals the integral of the reaction terms the scheme uses (e.g. ``dt * sum R(u1)``
for backward Euler) to round-off, or to the Newton tolerance.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..errors import OptionError, SolverError
from ..results import Result
from .problem import Discretization, ReactionDiffusion, Value, discretize
from .stencils import LineFactors, adi_axis_solve, euler_loop, line_factors

__all__ = [
    "ADI",
    "IMEX",
    "METHODS",
    "BackwardEuler",
    "CrankNicolson",
    "ExplicitEuler",
    "SpaceMethod",
    "explicit_limit",
    "get_space_method",
    "solve",
]

LINEAR_SOLVERS = ("direct", "bicgstab", "gmres", "cg")
# minimum degree on the pattern of A^T + A: the matrices are (nearly) structurally symmetric;
# on a 256^2 grid it halves the fill of COLAMD and the time of a solve (measured)
ORDERING = "MMD_AT_PLUS_A"
SHOW_AFTER_S = 2.0


# =============================================================================================
# Methods: stateless strategies


@dataclass(frozen=True)
class SpaceMethod:
    """Base class: options in the constructor, declared ``name``, ``order``, ``implicit``."""

    name: ClassVar[str] = ""
    order: ClassVar[int] = 0
    implicit: ClassVar[bool] = True

    dt: float | None = None

    def __post_init__(self) -> None:
        if self.dt is not None and not (math.isfinite(self.dt) and self.dt > 0):
            raise OptionError(f"{self.name}: dt must be a positive number, got {self.dt!r}")

    def options(self) -> dict[str, Any]:
        return asdict(self)

    def declared_order(self, disc: Discretization) -> int:
        return self.order

    def stepper(self, disc: Discretization) -> _Stepper:
        raise NotImplementedError


@dataclass(frozen=True)
class ExplicitEuler(SpaceMethod):
    """Forward Euler; refuses a ``dt`` beyond the stability limit (default: 0.9 of it)."""

    name: ClassVar[str] = "explicit"
    order: ClassVar[int] = 1
    implicit: ClassVar[bool] = False
    safety: float = 0.9

    def stepper(self, disc: Discretization) -> _Stepper:
        return _Explicit(disc, self)


@dataclass(frozen=True)
class _Implicit(SpaceMethod):
    linear_solver: str = "direct"
    rtol: float = 1e-10
    newton_tol: float = 1e-12
    max_newton: int = 30

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.linear_solver not in LINEAR_SOLVERS:
            raise OptionError(
                f"{self.name}: linear_solver must be one of {', '.join(LINEAR_SOLVERS)}, "
                f"not '{self.linear_solver}'"
            )
        if not (self.rtol > 0 and self.newton_tol > 0 and self.max_newton >= 1):
            raise OptionError(f"{self.name}: rtol, newton_tol and max_newton must be positive")


@dataclass(frozen=True)
class BackwardEuler(_Implicit):
    """Backward (implicit) Euler, theta = 1; Newton for nonlinear terms."""

    name: ClassVar[str] = "backward-euler"
    order: ClassVar[int] = 1

    def stepper(self, disc: Discretization) -> _Stepper:
        return _Theta(disc, self, 1.0)


@dataclass(frozen=True)
class CrankNicolson(_Implicit):
    """Crank-Nicolson, theta = 1/2; Newton for nonlinear terms."""

    name: ClassVar[str] = "crank-nicolson"
    order: ClassVar[int] = 2

    def stepper(self, disc: Discretization) -> _Stepper:
        return _Theta(disc, self, 0.5)


IMEX_SCHEMES = {"euler": 1, "sbdf2": 2, "linearized": 1}


@dataclass(frozen=True)
class IMEX(_Implicit):
    """Linear part implicit, nonlinear part explicit (``scheme="euler"``, order 1, or
    ``"sbdf2"``, order 2) or linearised about the current state (``"linearized"``, order 1)."""

    name: ClassVar[str] = "imex"
    scheme: str = "euler"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.scheme not in IMEX_SCHEMES:
            raise OptionError(
                f"imex: scheme must be one of {', '.join(IMEX_SCHEMES)}, not '{self.scheme}'"
            )

    def declared_order(self, disc: Discretization) -> int:
        return IMEX_SCHEMES[self.scheme]

    def stepper(self, disc: Discretization) -> _Stepper:
        if self.scheme == "linearized":
            return _Linearized(disc, self)
        return _IMEX(disc, self)


@dataclass(frozen=True)
class ADI(SpaceMethod):
    """Douglas alternating-direction implicit scheme (theta = 1/2)."""

    name: ClassVar[str] = "adi"
    order: ClassVar[int] = 2

    def declared_order(self, disc: Discretization) -> int:
        R = disc.reactions
        return 2 if not (R.has_nonlinear or R.has_linear_terms) else 1

    def stepper(self, disc: Discretization) -> _Stepper:
        return _ADI(disc, self)


METHODS: dict[str, type[SpaceMethod]] = {
    m.name: m for m in (ExplicitEuler, BackwardEuler, CrankNicolson, IMEX, ADI)
}
_ALIASES = {"euler": "explicit", "forward-euler": "explicit", "implicit": "backward-euler",
            "be": "backward-euler", "cn": "crank-nicolson"}  # fmt: skip


def get_space_method(name: str | SpaceMethod, **options: Any) -> SpaceMethod:
    """A method from its name (``explicit``, ``backward-euler``, ``crank-nicolson``, ``imex``,
    ``adi``) and options, or the method itself."""
    if isinstance(name, SpaceMethod):
        if options:
            raise OptionError("give options either in the method or as keywords, not both")
        return name
    key = _ALIASES.get(str(name).lower(), str(name).lower())
    cls = METHODS.get(key)
    if cls is None:
        raise OptionError(
            f"unknown reaction-diffusion method '{name}' (one of {', '.join(METHODS)})"
        )
    try:
        return cls(**options)
    except TypeError as exc:
        raise OptionError(f"{key}: {exc}") from None


# =============================================================================================
# Explicit stability


def explicit_limit(disc: Discretization, u0: np.ndarray, t0: float = 0.0) -> dict[str, Any]:
    """The forward-Euler step limits: ``diffusion`` (from the diffusion stencil and boundary
    faces alone) and ``total`` (adding the reaction terms linearised at ``u0``), each
    ``2 / rho`` with rho a Gershgorin bound of the Jacobian; plus a description of the
    diffusion limit.  For constant D on an unmasked grid the diffusion limit is
    ``1 / (2 D_max sum_k 1/h_k^2)`` = h²/(2·d·D_max) for equal spacings."""
    op, R = disc.op, disc.reactions
    zero = np.zeros(op.n_species)
    rho_diff = float(op.stability_bound(zero).max())
    rho_tot = float(op.stability_bound(R.a_diag).max())
    if R.has_nonlinear or R.has_linear_terms:
        rho_tot = max(rho_tot, rho_diff + R.reaction_stiffness(u0.reshape(op.n_species, -1), t0))
    g = disc.model.grid
    D_max = max(float(np.max(D)) for D in disc.model.diffusivities)
    h = g.spacing
    if len(set(h)) == 1:
        formula = "h²/(2·d·D_max)"
        detail = f"h={h[0]:.6g}, d={g.ndim}, D_max={D_max:.6g}"
    else:
        formula = "1/(2·D_max·Σ_k 1/h_k²)"
        detail = f"h={tuple(float(x) for x in h)}, D_max={D_max:.6g}"
    if g.mask is not None or any(np.ndim(D) for D in disc.model.diffusivities):
        formula = "1/max_P Σ_faces T_f"
        detail = f"D_max={D_max:.6g}"
    inf = math.inf
    return {
        "diffusion": 2.0 / rho_diff if rho_diff > 0 else inf,
        "total": 2.0 / rho_tot if rho_tot > 0 else inf,
        "formula": formula,
        "detail": detail,
    }


# =============================================================================================
# Linear solves


class _Factor:
    """A solver for one matrix: sparse LU, or a preconditioned Krylov method."""

    def __init__(self, M: sp.csr_matrix, kind: str, rtol: float):
        self.kind, self.rtol = kind, rtol
        self.n = M.shape[0]
        if kind == "direct":
            try:
                self.lu = spla.splu(M.tocsc(), permc_spec=ORDERING)
            except RuntimeError as exc:
                raise SolverError(f"sparse LU failed: {exc} (singular matrix)") from None
        else:
            self.M = M.tocsr()
            try:
                ilu = spla.spilu(M.tocsc(), drop_tol=1e-5, fill_factor=20)
            except RuntimeError:
                ilu = None
            self.P = (
                spla.LinearOperator(M.shape, ilu.solve) if ilu is not None else None
            )  # fmt: skip

    def solve(self, rhs: np.ndarray, x0: np.ndarray | None = None, atol: float = 0.0) -> np.ndarray:
        """M x = rhs; iterative solves stop at ``|r| <= max(rtol |rhs|, atol)`` (2-norm)."""
        if self.kind == "direct":
            return np.asarray(self.lu.solve(rhs))
        if float(np.linalg.norm(rhs)) <= atol:
            return np.zeros_like(rhs)
        fn: Callable[..., Any] = {"bicgstab": spla.bicgstab, "gmres": spla.gmres,
                                  "cg": spla.cg}[self.kind]  # fmt: skip
        x, info = fn(self.M, rhs, x0=x0, rtol=self.rtol, atol=atol, M=self.P, maxiter=2000)
        if info != 0:
            r = float(np.linalg.norm(self.M @ x - rhs))
            if r > max(atol, self.rtol * float(np.linalg.norm(rhs))) * 10:
                raise SolverError(f"{self.kind} did not converge (info={info}, residual {r:.3g})")
        return np.asarray(x)


# =============================================================================================
# Steppers (one per run)


class _Stepper:
    """Advances one run; ``advance(u, t, h, n)`` makes ``n`` steps of size ``h``."""

    def __init__(self, disc: Discretization, method: SpaceMethod):
        self.disc, self.method = disc, method
        self.op, self.R = disc.op, disc.reactions
        self.ns = self.op.n_species
        self.stats: dict[str, int] = {"steps": 0, "factorizations": 0, "newton_iterations": 0,
                                      "linear_solves": 0}  # fmt: skip

    def check(self, u0: np.ndarray, t0: float, dt: float) -> None:
        pass

    def advance(self, u: np.ndarray, t: float, h: float, n: int) -> np.ndarray:
        raise NotImplementedError

    # explicit right-hand side: out = alpha u + beta F(u, t)
    def rhs(self, u: np.ndarray, t: float, out: np.ndarray, alpha: float, beta: float) -> None:
        self.op.apply(u, out, self.R.a_diag, alpha, beta)
        flat_u = u.reshape(self.ns, -1)
        flat_o = out.reshape(self.ns, -1)
        self.R.add_linear(flat_u, flat_o, beta)
        if self.R.has_nonlinear:
            self.R.add_nonlinear(flat_u, t, flat_o, beta)


class _Explicit(_Stepper):
    def __init__(self, disc: Discretization, method: ExplicitEuler):
        super().__init__(disc, method)
        self.safety = method.safety
        self.work = disc.zeros()
        self.limit: dict[str, Any] | None = None

    def default_dt(self, u0: np.ndarray, t0: float) -> float:
        self.limit = explicit_limit(self.disc, u0, t0)
        lim = self.limit["total"]
        if not math.isfinite(lim):
            raise OptionError("explicit: give dt (the problem has no stability limit)")
        return self.safety * lim

    def check(self, u0: np.ndarray, t0: float, dt: float) -> None:
        lim = self.limit if self.limit is not None else explicit_limit(self.disc, u0, t0)
        self.limit = lim
        tol = 1.0 + 1e-12
        if dt > lim["diffusion"] * tol:
            raise OptionError(
                f"dt={dt:.6g} exceeds the explicit diffusion limit {lim['formula']}="
                f"{lim['diffusion']:.6g} ({lim['detail']}); use dt <= {lim['diffusion']:.6g} "
                "or an implicit method (crank-nicolson, backward-euler, imex, adi)"
            )
        if dt > lim["total"] * tol:
            raise OptionError(
                f"dt={dt:.6g} exceeds the explicit stability limit {lim['total']:.6g} of "
                f"diffusion with the reaction terms (linearised at t={t0:g}); use dt <= "
                f"{lim['total']:.6g} or an implicit method (imex, backward-euler)"
            )

    def advance(self, u: np.ndarray, t: float, h: float, n: int) -> np.ndarray:
        op, R = self.op, self.R
        if not (R.has_nonlinear or R.has_linear_terms):
            src = R.source if R.source is not None else np.zeros((self.ns, 1))
            swapped = euler_loop(
                u, self.work, op.uniform, op.coef, op.F0, op.F1, op.F2, op.periodic, R.a_diag,
                h, n, op.b_species, op.b_index, op.b_p, op.b_q, src, R.source is not None,
            )  # fmt: skip
            self.stats["steps"] += n
            if swapped:
                u, self.work = self.work, u
            return u
        for i in range(n):
            self.rhs(u, t + i * h, self.work, 1.0, h)
            u, self.work = self.work, u
        self.stats["steps"] += n
        return u


class _MatrixStepper(_Stepper):
    """Shared pieces of the matrix-based steppers."""

    method: _Implicit

    def __init__(self, disc: Discretization, method: _Implicit):
        super().__init__(disc, method)
        self.A = (self.op.matrix() + self.R.linear_matrix()).tocsr()
        b = self.op.constant()
        if self.R.source is not None:
            b = b + self.R.source.reshape(-1)
        self.b = b
        self.n = self.A.shape[0]
        self.I = sp.identity(self.n, format="csr")
        self._cache: dict[tuple[str, float], _Factor] = {}

    def factor(self, key: str, h: float, M: Callable[[], sp.csr_matrix]) -> _Factor:
        f = self._cache.get((key, h))
        if f is None:
            if len(self._cache) > 4:
                self._cache.clear()
            f = _Factor(M(), self.method.linear_solver, self.method.rtol)
            self.stats["factorizations"] += 1
            self._cache[(key, h)] = f
        return f

    def F(self, u: np.ndarray, t: float) -> np.ndarray:
        """F(u, t) as a flat vector."""
        out = self.A @ u + self.b
        if self.R.has_nonlinear:
            self.R.add_nonlinear(u.reshape(self.ns, -1), t, out.reshape(self.ns, -1))
        return np.asarray(out)

    def N(self, u: np.ndarray, t: float) -> np.ndarray:
        out = np.zeros(self.n)
        if self.R.has_nonlinear:
            self.R.add_nonlinear(u.reshape(self.ns, -1), t, out.reshape(self.ns, -1))
        return out

    def lin_solve(
        self, f: _Factor, rhs: np.ndarray, x0: np.ndarray | None, atol: float = 0.0
    ) -> np.ndarray:
        self.stats["linear_solves"] += 1
        return f.solve(rhs, x0, atol)


class _Theta(_MatrixStepper):
    """theta-method: u1 - th h F(u1, t1) = u0 + (1 - th) h F(u0, t0)."""

    def __init__(self, disc: Discretization, method: _Implicit, theta: float):
        super().__init__(disc, method)
        self.th = theta
        self._jac_lu: _Factor | None = None
        self._jac_h = -1.0

    def advance(self, u: np.ndarray, t: float, h: float, n: int) -> np.ndarray:
        x = u.reshape(-1).copy()
        th = self.th
        nonlinear = self.R.has_nonlinear
        for i in range(n):
            t0 = t + i * h
            t1 = t + (i + 1) * h
            rhs = x.copy() if th == 1.0 else x + (1.0 - th) * h * self.F(x, t0)
            if not nonlinear:
                f = self.factor("theta", h, lambda: (self.I - (th * h) * self.A).tocsr())
                x = self.lin_solve(f, rhs + th * h * self.b, x)
            else:
                x = self._newton(x, rhs, t1, h)
            self.stats["steps"] += 1
        return x.reshape(u.shape)

    def _newton(self, x0: np.ndarray, rhs: np.ndarray, t1: float, h: float) -> np.ndarray:
        """Solve G(x) = x - th h F(x, t1) - rhs = 0 by (chord) Newton."""
        th, m = self.th, self.method
        x = x0.copy()
        prev = math.inf
        fresh = False
        for it in range(1, 4 * m.max_newton + 1):
            if self._jac_lu is None or self._jac_h != h:
                self._refactor(x, t1, h)
                fresh = True
            G = x - th * h * self.F(x, t1) - rhs
            # a Newton correction needs only a fraction of the Newton tolerance
            atol = 0.1 * m.newton_tol * (1.0 + float(np.max(np.abs(x))))
            dx = self.lin_solve(self._jac_lu, -G, None, atol)  # type: ignore[arg-type]
            x += dx
            self.stats["newton_iterations"] += 1
            size = float(np.max(np.abs(dx))) if dx.size else 0.0
            scale = 1.0 + float(np.max(np.abs(x)))
            if size <= m.newton_tol * scale:
                return x
            if not math.isfinite(size):
                break
            # slow contraction: the Jacobian is stale, refactorise at the current iterate
            if (size > 0.2 * prev and not fresh) or it % m.max_newton == 0:
                self._jac_lu = None
            fresh = False
            prev = size
        raise SolverError(
            f"Newton iteration did not converge at t={t1:g} (step {h:g}); reduce dt",
            time=t1,
        )

    def _refactor(self, x: np.ndarray, t: float, h: float) -> None:
        J = self.A + self.R.nonlinear_jacobian(x.reshape(self.ns, -1), t)
        self._jac_lu = _Factor((self.I - (self.th * h) * J).tocsr(), self.method.linear_solver,
                               self.method.rtol)  # fmt: skip
        self._jac_h = h
        self.stats["factorizations"] += 1


class _IMEX(_MatrixStepper):
    """IMEX Euler / SBDF2: the linear part implicit, N explicit."""

    def __init__(self, disc: Discretization, method: IMEX):
        super().__init__(disc, method)
        self.order = IMEX_SCHEMES[method.scheme]
        self.prev: tuple[np.ndarray, np.ndarray, float] | None = None  # (u_{n-1}, N_{n-1}, h)

    def advance(self, u: np.ndarray, t: float, h: float, n: int) -> np.ndarray:
        x = u.reshape(-1).copy()
        for i in range(n):
            t0 = t + i * h
            Nx = self.N(x, t0)
            if self.order == 2 and self.prev is not None and self.prev[2] == h:
                xm, Nm, _ = self.prev
                f = self.factor("sbdf2", h, lambda: (3.0 * self.I - (2.0 * h) * self.A).tocsr())
                rhs = 4.0 * x - xm + 2.0 * h * (self.b + 2.0 * Nx - Nm)
            else:
                f = self.factor("euler", h, lambda: (self.I - h * self.A).tocsr())
                rhs = x + h * (self.b + Nx)
            if self.order == 2:
                self.prev = (x.copy(), Nx, h)
            x = self.lin_solve(f, rhs, x)
            self.stats["steps"] += 1
        return x.reshape(u.shape)


class _Linearized(_MatrixStepper):
    """Linearly implicit (Rosenbrock) Euler: (I - h J(u0)) du = h F(u0, t0)."""

    def advance(self, u: np.ndarray, t: float, h: float, n: int) -> np.ndarray:
        x = u.reshape(-1).copy()
        for i in range(n):
            t0 = t + i * h
            if self.R.has_nonlinear:
                J = self.A + self.R.nonlinear_jacobian(x.reshape(self.ns, -1), t0)
                f = _Factor((self.I - h * J).tocsr(), self.method.linear_solver, self.method.rtol)
                self.stats["factorizations"] += 1
            else:
                f = self.factor("lin", h, lambda: (self.I - h * self.A).tocsr())
            x = x + self.lin_solve(f, h * self.F(x, t0), None)
            self.stats["steps"] += 1
        return x.reshape(u.shape)


class _ADI(_Stepper):
    """Douglas scheme: Y0 = u + h F(u); (I - h/2 A_k) Y_k = Y_{k-1} - h/2 A_k u, k = 1..d."""

    def __init__(self, disc: Discretization, method: ADI):
        super().__init__(disc, method)
        self.y0 = disc.zeros()
        self.y1 = disc.zeros()
        axes = [k for k in range(3) if self.op.shape3[k] > 1]
        self.axes = axes
        # a constant decay is split evenly over the implicit sweeps (growth stays explicit)
        self.ak = np.minimum(self.R.a_diag, 0.0) / max(len(axes), 1)
        self._factors: dict[tuple[int, int], LineFactors] = {}
        self._h = -1.0

    def _factor(self, h: float) -> None:
        if h != self._h:
            self._factors = {
                (k, s): line_factors(self.op, k, s, 0.5 * h, float(self.ak[s]))
                for k in self.axes
                for s in range(self.ns)
            }
            self._h = h
            self.stats["factorizations"] += 1

    def advance(self, u: np.ndarray, t: float, h: float, n: int) -> np.ndarray:
        self._factor(h)
        th = 0.5 * h
        for i in range(n):
            self.rhs(u, t + i * h, self.y0, 1.0, h)
            y, out = self.y0, self.y1
            for k in self.axes:
                for s in range(self.ns):
                    adi_axis_solve(self.op, k, s, u[s], y[s], th, float(self.ak[s]), out[s],
                                   self._factors[(k, s)])  # fmt: skip
                y, out = out, y
            u, self.y0, self.y1 = y, u, out
            self.stats["steps"] += 1
        return u


# =============================================================================================
# Progress


class _Progress:
    """A rich progress bar over steps, shown once a run is projected to take a while."""

    def __init__(self, mode: bool | None, total: int):
        if mode is None:
            isatty = getattr(sys.stderr, "isatty", None)
            mode = bool(isatty()) if isatty is not None else False
        self.allowed = bool(mode) and total > 0
        self.total = total
        self.t0 = time.perf_counter()
        self.bar: Any = None
        self.task: Any = None

    def update(self, done: int) -> None:
        if not self.allowed:
            return
        el = time.perf_counter() - self.t0
        if self.bar is None:
            if done == 0 or el * self.total / done < SHOW_AFTER_S:
                return
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("steps"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("eta"), TimeRemainingColumn(),
                console=Console(file=sys.stderr, stderr=True), transient=False,
            )  # fmt: skip
            self.bar.start()
            self.task = self.bar.add_task("steps", total=self.total)
        self.bar.update(self.task, completed=done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=self.total)
            self.bar.stop()


# =============================================================================================
# Solve


def _output_times(
    t_end: float | None, n_points: int | None, times: Sequence[float] | None, t0: float
) -> np.ndarray:
    if times is not None:
        if t_end is not None or n_points is not None:
            raise OptionError("give either times or t_end (with n_points), not both")
        ts = np.asarray(times, dtype=np.float64)
    else:
        if t_end is None:
            raise OptionError("give t_end (or times)")
        n = 11 if n_points is None else n_points
        if not (isinstance(n, int | np.integer) and n >= 2):
            raise OptionError(f"n_points must be an integer >= 2, got {n!r}")
        if not (math.isfinite(t_end) and t_end > t0):
            raise OptionError(f"t_end must be a finite time after {t0}, got {t_end!r}")
        ts = np.linspace(t0, t_end, int(n))
    if ts.ndim != 1 or ts.size < 1 or not np.all(np.isfinite(ts)):
        raise OptionError("the output times must be a non-empty 1-D sequence of finite numbers")
    if np.any(np.diff(ts) <= 0):
        raise OptionError("the output times must be strictly increasing")
    if ts[0] < t0:
        raise OptionError(f"the output times must start at or after t0={t0}")
    return ts


def solve(
    model: ReactionDiffusion,
    method: str | SpaceMethod = "crank-nicolson",
    *,
    t_end: float | None = None,
    n_points: int | None = None,
    times: Sequence[float] | None = None,
    initial: Mapping[str, Value] | None = None,
    dt: float | None = None,
    t0: float = 0.0,
    progress: bool | None = None,
    **options: Any,
) -> Result:
    """Simulate ``model`` from ``t0`` and report the fields at the output times.

    ``method`` is a :class:`SpaceMethod` or its name (options as keywords, e.g.
    ``solve(model, "imex", scheme="sbdf2", dt=0.01, ...)``).  ``dt`` is the largest step: each
    output interval is split into equal steps no longer than it (the explicit method defaults to
    0.9 of its stability limit; the others need ``dt``).  ``initial`` maps species to values
    (number, array of the grid's shape, Field, function of the coordinates, or expression text);
    others start at the network's initial concentration, or 0.  ``progress``: a rich bar on
    stderr for long runs (None: only on a terminal).

    Returns a :class:`~scalebridge.results.Result` whose ``data`` has one variable per species
    with dims ``("time", "x"[, "y"[, "z"]])`` (inactive cells NaN) and whose ``stats`` have
    ``steps``, ``dt``, ``order`` (declared), ``factorizations``, ``newton_iterations``,
    ``wall_time_s`` and, for the explicit method, ``dt_limit``.
    """
    wall0 = time.perf_counter()
    if dt is not None:
        options = {**options, "dt": dt}
    m = get_space_method(method, **options)
    disc = discretize(model)
    ts = _output_times(t_end, n_points, times, t0)
    u = disc.initial_state(initial)
    stepper = m.stepper(disc)
    step = m.dt
    if step is None:
        if isinstance(stepper, _Explicit):
            step = stepper.default_dt(u, t0)
        else:
            raise OptionError(f"{m.name}: give dt (the largest time step)")
    plan = []
    t_prev = t0
    for t_out in ts:
        span = float(t_out - t_prev)
        n = 0 if span <= 0 else max(1, math.ceil(span / step * (1.0 - 1e-12)))
        plan.append((t_prev, span / n if n else 0.0, n))
        t_prev = float(t_out)
    h_max = max((h for _, h, n in plan if n), default=step)
    stepper.check(u, t0, h_max)
    total = sum(n for _, _, n in plan)
    bar = _Progress(progress, total)
    states = []
    done = 0
    chunk_steps = max(1, total // 100)
    try:
        for t_start, h, n in plan:
            k = 0
            while k < n:
                c = min(chunk_steps, n - k)
                u = stepper.advance(u, t_start + k * h, h, c)
                k += c
                done += c
                bar.update(done)
            if not np.all(np.isfinite(u)):
                bad = int(np.argmax(~np.all(np.isfinite(u.reshape(disc.op.n_species, -1)),
                                            axis=1)))  # fmt: skip
                raise SolverError(
                    f"species '{model.species[bad]}' is not finite at t={t_start + n * h:g} "
                    f"(unstable or too large a step)",
                    variable=model.species[bad],
                    time=t_start + n * h,
                )
            states.append(u.copy())
    finally:
        bar.close()
    ds = disc.dataset(ts, states)
    stats: dict[str, Any] = {
        "method": m.name,
        "options": m.options(),
        "seed": None,
        "order": m.declared_order(disc),
        "dt": h_max,
        **stepper.stats,
        "wall_time_s": time.perf_counter() - wall0,
    }
    if isinstance(stepper, _Explicit) and stepper.limit is not None:
        stats["dt_limit"] = stepper.limit["total"]
    return Result(ds, stats)


def step_states(
    model: ReactionDiffusion,
    method: str | SpaceMethod,
    u0: np.ndarray,
    *,
    dt: float,
    n_steps: int,
    t0: float = 0.0,
) -> list[np.ndarray]:
    """The states after each of ``n_steps`` steps of size ``dt`` from the grid-shaped state
    ``u0`` (``(n_species, *grid.shape)``): a low-level entry point for convergence and
    mass-balance studies."""
    m = get_space_method(method, dt=dt) if isinstance(method, str) else method
    disc = discretize(model)
    u = np.ascontiguousarray(np.asarray(u0, dtype=np.float64).reshape(disc.shape4)).copy()
    stepper = m.stepper(disc)
    stepper.check(u, t0, dt)
    out = [disc.to_grid(u).copy()]
    for i in range(n_steps):
        u = stepper.advance(u, t0 + i * dt, dt, 1)
        out.append(disc.to_grid(u).copy())
    return out
