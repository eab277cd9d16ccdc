"""Steady states of reaction-diffusion models: F(u) = A u + b + N(u) = 0 by Newton's method.

The Jacobian ``A + dN/du`` is the sparse finite-volume diffusion matrix plus one block of the
local reaction Jacobian per cell (analytic: :mod:`scalebridge.space.reactions`); each Newton step
solves with SciPy's sparse LU, with a backtracking line search on ``||F||``.  When damped Newton
stalls (a poor initial guess for strongly nonlinear kinetics), pseudo-transient continuation takes
over: implicit-Euler steps ``(I/tau - J) du = F(u)`` whose pseudo time step ``tau`` grows as the
residual falls (switched evolution relaxation), which converges to the steady state the dynamics
approach and ends in Newton's quadratic convergence.  Inactive cells (masks) are pinned at 0.

A problem without a unique steady state -- only zero-flux boundaries and no uptake -- has a
singular Jacobian and is refused with that explanation.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import xarray as xr

from .._io import atomic_path
from ..errors import ModelError, OptionError, SolverError
from .problem import ReactionDiffusion, Value, discretize
from .stepping import ORDERING

__all__ = ["SteadyField", "steady_state"]


@dataclass
class SteadyField:
    """A steady state: ``data`` holds one variable per species with dims ``("x"[, "y"[, "z"]])``
    (inactive cells NaN).  ``residual`` is max |F(u)| (concentration per time) over active cells;
    ``iterations`` counts Newton (and continuation) steps."""

    data: xr.Dataset
    residual: float
    iterations: int
    method: str
    stats: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, species: str) -> xr.DataArray:
        return self.data[species]

    def values(self, species: str) -> np.ndarray:
        """The field of one species as an array of the grid's shape."""
        if species not in self.data:
            raise ModelError(f"no species '{species}'", element=species)
        return np.asarray(self.data[species].values)

    def to_netcdf(self, path: str | os.PathLike[str]) -> None:
        """Write the fields to NetCDF-4 (h5netcdf), atomically."""
        ds = self.data.copy()
        ds.attrs.update({"residual": self.residual, "iterations": self.iterations,
                         "method": self.method})  # fmt: skip
        with atomic_path(path) as tmp:
            ds.to_netcdf(tmp, engine="h5netcdf")


def steady_state(
    model: ReactionDiffusion,
    *,
    initial: Mapping[str, Value] | None = None,
    tol: float = 1e-10,
    max_iterations: int = 100,
    t: float = 0.0,
) -> SteadyField:
    """The steady state of ``model`` (see the module docstring), from the initial values
    ``initial`` (as in :func:`scalebridge.space.stepping.solve`).

    Converged when the Newton update is below ``tol * (1 + max |u|)`` (max norm) after the
    residual has stopped decreasing by more than round-off.  ``t`` is the time at which
    time-dependent reaction terms are evaluated.  Raises
    :class:`~scalebridge.errors.SolverError` when no steady state is found.
    """
    if not (tol > 0 and max_iterations >= 1):
        raise OptionError("tol must be positive and max_iterations >= 1")
    wall0 = time.perf_counter()
    disc = discretize(model)
    op, R = disc.op, disc.reactions
    ns = op.n_species
    A = (op.matrix() + R.linear_matrix()).tocsr()
    b = op.constant()
    if R.source is not None:
        b = b + R.source.reshape(-1)
    inactive = np.tile(~op.active, ns)
    pin = sp.diags(inactive.astype(np.float64)).tocsr()

    def F(x: np.ndarray) -> np.ndarray:
        out = A @ x + b
        if R.has_nonlinear:
            R.add_nonlinear(x.reshape(ns, -1), t, out.reshape(ns, -1))
        out[inactive] = x[inactive]
        return np.asarray(out)

    def J(x: np.ndarray) -> sp.csc_matrix:
        M = A + pin
        if R.has_nonlinear:
            M = M + R.nonlinear_jacobian(x.reshape(ns, -1), t)
        return M.tocsc()

    def lu(M: sp.csc_matrix) -> Any:
        try:
            return spla.splu(M, permc_spec=ORDERING)
        except RuntimeError:
            raise SolverError(
                "the steady-state Jacobian is singular: with zero-flux boundaries and no uptake "
                "there is no unique steady state (add a Dirichlet or Robin boundary, or a "
                "sink)"
            ) from None

    _refuse_singular(disc)
    x = disc.initial_state(initial).reshape(-1).copy()
    counter = [0]

    def scale(v: np.ndarray) -> float:
        return 1.0 + float(np.max(np.abs(v))) if v.size else 1.0

    def newton(x: np.ndarray, budget: int) -> tuple[np.ndarray, bool]:
        """Damped Newton; full steps once the update is small (the residual is then at its
        round-off floor and a line search could only stall)."""
        f = F(x)
        prev_res = math.inf
        for _ in range(budget):
            counter[0] += 1
            dx = -lu(J(x)).solve(f)
            if not np.all(np.isfinite(dx)):
                return x, False
            step = float(np.max(np.abs(dx))) if dx.size else 0.0
            lam = 1.0
            if step > math.sqrt(tol) * scale(x):
                nf = float(np.linalg.norm(f))
                while lam > 1e-4:
                    fn = F(x + lam * dx)
                    if np.all(np.isfinite(fn)) and np.linalg.norm(fn) <= (1 - 1e-4 * lam) * nf:
                        break
                    lam *= 0.5
                else:
                    return x, False
            x = x + lam * dx
            f = F(x)
            res = float(np.max(np.abs(f))) if f.size else 0.0
            if lam == 1.0 and step <= tol * scale(x):
                return x, True
            if lam == 1.0 and res >= 0.5 * prev_res and step <= math.sqrt(tol) * scale(x):
                return x, True  # stagnation at the round-off floor
            prev_res = res
        return x, False

    method = "newton"
    if not R.has_nonlinear:
        # linear: one factorisation, one solve and one step of iterative refinement
        fac = lu(J(x))
        for _ in range(2):
            counter[0] += 1
            x = x - fac.solve(F(x))
        converged = True
    else:
        x_new, converged = newton(x, max_iterations)
        if converged:
            x = x_new
    if not converged:
        # pseudo-transient continuation from the initial state, then Newton again
        method = "newton+continuation"
        tau = 1e-3 / max(1.0, float(np.max(np.abs(A.diagonal()))))
        f = F(x)
        f_first = f0 = float(np.linalg.norm(f))
        Id = sp.identity(x.size, format="csc")
        for _ in range(20 * max_iterations):
            counter[0] += 1
            x = x - lu((Id / tau - J(x)).tocsc()).solve(f)
            f = F(x)
            nf = float(np.linalg.norm(f))
            if not math.isfinite(nf):
                raise SolverError("pseudo-transient continuation diverged")
            tau = min(tau * max(0.5, min(f0 / max(nf, 1e-300), 10.0)), 1e300)
            f0 = nf
            if nf <= 1e-6 * f_first or tau > 1e8:
                x, converged = newton(x, max_iterations)
                break
        if not converged:
            raise SolverError(
                f"no steady state found in {counter[0]} iterations (residual {f0:.3g})"
            )
    iterations = counter[0]
    res = float(np.max(np.abs(F(x)))) if x.size else 0.0
    ds = disc.dataset(np.zeros(1), [x.reshape(disc.shape4)]).isel(time=0, drop=True)
    stats = {"wall_time_s": time.perf_counter() - wall0, "unknowns": int(x.size)}
    return SteadyField(ds, res, iterations, method, stats)


def _refuse_singular(disc: Any) -> None:
    """A species with only zero-flux boundaries and no reaction term at all has the constants
    as a null space: its steady state is not unique."""
    op, R = disc.op, disc.reactions
    touched = set(np.unique(op.b_species[op.b_q != 0.0]).tolist())
    touched |= {s for s in range(op.n_species) if R.a_diag[s] != 0.0}
    touched |= set(R.lin_rows.tolist())
    if R.program is not None:
        touched |= set(R.program.part_rows.tolist())
    if R.network is not None:
        touched |= set(R.network.rows.tolist())
    for s, name in enumerate(disc.model.species):
        if s not in touched:
            raise SolverError(
                f"species '{name}' has only flux boundaries and no reaction term: there is no "
                "unique steady state (add a Dirichlet or Robin boundary, or a sink)",
                variable=name,
            )
