r"""Variable-order, variable-step BDF integrator (NDF form) in compiled code, with root-finding.

The method
----------
The stiff integrator is the quasi-constant step-size implementation of the numerical
differentiation formulas (NDF) of orders 1-5 in backward-difference form, as described by
Shampine & Reichelt, "The MATLAB ODE Suite", SIAM J. Sci. Comput. 18 (1997) -- the scheme of
MATLAB's ``ode15s`` and SciPy's ``BDF``.  With ``D^j`` the j-th backward difference of the solution
at the current step size ``h``, ``gamma_k = sum_{j<=k} 1/j``, the NDF coefficients ``kappa_k`` and
``alpha_k = (1 - kappa_k) gamma_k``, a step of order ``k`` from ``t_n`` to ``t_{n+1} = t_n + h``
solves for the correction ``d = y_{n+1} - y^{(0)}`` to the predictor
``y^{(0)} = sum_{j=0}^{k} D^j y_n``:

    d - c f(t_{n+1}, y^{(0)} + d) + psi = 0,    c = h / alpha_k,
    psi = (1/alpha_k) sum_{j=1}^{k} gamma_j D^j y_n,

by a simplified Newton iteration with the matrix ``M = I - c J``.  The local error estimate is
``(kappa_k gamma_k + 1/(k+1)) d``; its weighted RMS norm

    ||e|| = sqrt( mean_i (e_i / (atol_i + rtol |y_{n+1,i}|))^2 )

must be at most 1.  The step size changes only after ``k + 1`` steps of equal size (or after a
failure); the backward differences are then rescaled to the new step, and orders ``k - 1`` and
``k + 1`` are considered using the differences ``D^k`` and ``D^{k+2}``.  Between steps the solution
is the degree-``k`` polynomial through ``y_{n+1}, y_n, ..., y_{n+1-k}`` (Newton backward form),
used for output on a time grid and for locating roots.

Newton iteration and linear algebra
-----------------------------------
The iteration is converged when the predicted remaining error ``rate / (1 - rate) ||delta||``
(weighted norm, ``rate`` the observed contraction) is below ``0.01 / (error constant)``, i.e.
1 % of the error-test bound on ``d``; a single iteration suffices when a contraction rate
measured on earlier steps with the same matrix makes ``rate ||delta||`` that small (CVODE's
test).  It has failed when it diverges (``rate >= 1``, or the error predicted after the
remaining iterations is too large) or has not converged in 4 iterations.  After a failure the
matrix is refactored if ``c`` has changed, else the Jacobian is re-evaluated, else the step is
cut by 4; 20 consecutive failures end the run.

The Jacobian ``J`` (analytic, from :func:`scalebridge.codegen.vm.jac`, in CSR order) is evaluated
only when the iteration fails with the one in hand, or after a step that needed all 4
iterations.  The iteration matrix is refactored when ``c`` has moved more than 30 % from the
value it was factored for (otherwise the Newton correction is scaled by ``2 / (1 + c / c_LU)``,
as in CVODE).  Small systems use a dense LU with partial pivoting
(:mod:`scalebridge.linalg.dense`); large sparse ones the Gilbert-Peierls sparse LU with a
fill-reducing column order and fast numerical refactorization (:mod:`scalebridge.linalg.sparse`);
see :func:`choose_linear_solver` for the rule.

Contract of one call
--------------------
:func:`solve` integrates from ``t0`` towards ``t_stop`` and never steps past ``t_stop`` (the last
step is shortened to land on it exactly).  For every output time ``t_out[i]`` (``i >= i_out``)
strictly before the time the call returns at, it calls ``vm.record`` at the interpolated state
into ``out[i]``; the caller records a grid point equal to the return time itself, after
applying events there.  After each accepted step the root functions are evaluated; when one
has taken the sign opposite to its last non-zero value, the earliest crossing is located on
the interpolant by the Illinois method to a time tolerance of ``1e2 * eps * max(|t|, |h|)``,
and the call returns at the right end of the final bracket -- where the crossing functions
already have their new sign, strictly: zero is no sign, so touching zero is not a crossing and
a trigger such as ``x > c`` is true at the returned time -- with the interpolated state,
flagging the functions that crossed.  A root function that is exactly zero at the call's start
is ignored until it becomes non-zero.  Every call starts afresh at order 1; the caller restarts
after handling events.

Failures are status codes, never exceptions from compiled code (see :class:`Status`); the result
names the most responsible component (largest weighted error, or the first non-finite value)
and the time reached, so that the caller can raise :class:`~scalebridge.errors.SolverError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NamedTuple

import numpy as np

from ..codegen import vm
from ..codegen.jit import kernel
from ..errors import OptionError, SolverError
from ..linalg import dense as dense_lu
from ..linalg import sparse as sparse_lu

__all__ = ["BdfResult", "Status", "Workspace", "choose_linear_solver", "solve"]

EPS = float(np.finfo(np.float64).eps)

# Compiled once per installation.  These functions never allocate arrays, so they run without
# the runtime's reference counting (``_nrt=False``, as numba does for its own non-allocating
# helpers): the atomic count updates on every array handed between compiled functions
# otherwise take most of the time of a step for small models (measured: 3x).

MAX_ORDER = 5
NEWTON_MAXITER = 4
MIN_FACTOR = 0.2  # smallest step-size ratio after an error-test failure
MAX_FACTOR = 10.0  # largest step-size ratio
CONV_FAIL_FACTOR = 0.25  # step-size ratio after a Newton failure with a fresh Jacobian
MAX_CONV_FAILS = 20  # consecutive Newton failures before giving up
LU_REUSE = 0.3  # refactor M when |c / c_LU - 1| exceeds this
HOLD_FACTOR = 1.2  # a step-size increase smaller than this is not made (saves refactorizations)
MAX_ROOT_ITER = 200
NEWTON_COEF = 0.01  # Newton tolerance: NEWTON_COEF / (error constant) in the weighted norm
SPARSE_TOL = sparse_lu.DEFAULT_TOL
SPARSE_REFACTOR_TOL = sparse_lu.DEFAULT_REFACTOR_TOL

# NDF coefficients (Shampine & Reichelt 1997, table 1; kappa_1..kappa_4, kappa_5 = 0 is BDF5)
_KAPPA = np.array([0.0, -0.1850, -1.0 / 9.0, -0.0823, -0.0415, 0.0])
_GAMMA = np.concatenate(([0.0], np.cumsum(1.0 / np.arange(1, MAX_ORDER + 1))))
_ALPHA = (1.0 - _KAPPA) * _GAMMA
_ERROR_CONST = _KAPPA * _GAMMA + 1.0 / np.arange(1, MAX_ORDER + 2)

# status codes (compiled side); see Status
ST_SUCCESS = 0
ST_ROOT = 1
ST_STEP_UNDERFLOW = -1
ST_TOO_MANY_STEPS = -2
ST_NEWTON_FAILURE = -3
ST_NONFINITE = -4
ST_LU_CAPACITY = -100  # internal: the Python layer enlarges the sparse LU storage and retries
ST_BAD_ATOL = -101  # internal: an atol entry is not positive and finite (an OptionError)

# counters in Workspace.stats
S_STEPS, S_RHS, S_JAC, S_LU, S_ERR_FAIL, S_CONV_FAIL = 0, 1, 2, 3, 4, 5
N_STATS = 6


class Status(IntEnum):
    """Outcome of :func:`solve`; negative values are failures."""

    SUCCESS = ST_SUCCESS  # reached t_stop
    ROOT = ST_ROOT  # stopped at a root-function crossing
    STEP_UNDERFLOW = ST_STEP_UNDERFLOW  # step size fell below round-off level of t
    TOO_MANY_STEPS = ST_TOO_MANY_STEPS  # max_steps accepted steps in this call
    NEWTON_FAILURE = ST_NEWTON_FAILURE  # repeated Newton failures (or singular iteration matrix)
    NONFINITE = ST_NONFINITE  # the right-hand side or its Jacobian became NaN or infinite


_MESSAGES = {
    Status.SUCCESS: "",
    Status.ROOT: "",
    Status.STEP_UNDERFLOW: "step size became too small (the solution may blow up or be "
    "discontinuous here)",
    Status.TOO_MANY_STEPS: "too many steps",
    Status.NEWTON_FAILURE: "repeated failure of the Newton iteration",
    Status.NONFINITE: "the right-hand side or its Jacobian became NaN or infinite",
}


class _Core(NamedTuple):
    """Arrays the compiled integrator works in (allocated once per model by :class:`Workspace`)."""

    D: np.ndarray  # float64[MAX_ORDER + 3, n]  backward differences
    Dt: np.ndarray  # float64[MAX_ORDER + 1, n]  scratch for rescaling
    R: np.ndarray  # float64[3, MAX_ORDER + 1, MAX_ORDER + 1]  rescaling matrices
    work: np.ndarray  # float64[8, n]  Newton vectors: y, d, f, b, dy, scale, psi, y_pred
    y: np.ndarray  # float64[n]  state at the time returned
    f0: np.ndarray  # float64[n]  f(t0, y0)
    yi: np.ndarray  # float64[n]  interpolated state
    werr: np.ndarray  # float64[n]  weighted error of the last attempt (names a culprit)
    g: np.ndarray  # float64[n_g]  Jacobian buffer; g[:nnz] = CSR values
    M: np.ndarray  # float64[n, n]  dense iteration matrix / LU (0 x 0 when sparse)
    perm: np.ndarray  # int64[n]
    colmax: np.ndarray  # float64[n]
    Mp: np.ndarray  # int64[n + 1]  CSC pattern of I - c J (sparse; else empty)
    Mi: np.ndarray
    Mx: np.ndarray
    jmap: np.ndarray  # int64[nnz]  CSC position of each CSR Jacobian entry
    dmap: np.ndarray  # int64[n]    CSC position of each diagonal entry
    lu: sparse_lu.LUFactors
    r_ref: np.ndarray  # float64[n_roots]  last non-zero value of each root function (its sign)
    rb: np.ndarray  # float64[3, n_roots]  values at the last step end, the new one, a trial
    armed: np.ndarray  # bool[n_roots]  non-zero since the start (else ignored)
    fired: np.ndarray  # bool[n_roots]
    stack: np.ndarray
    stats: np.ndarray  # int64[N_STATS]


# --- compiled helpers -------------------------------------------------------------------------
# Helpers take the arrays they use rather than the whole workspace: passing a large named tuple
# between compiled functions multiplies compile time.


@kernel(_nrt=False)
def _wrms(x: np.ndarray, scale: np.ndarray) -> float:
    n = x.shape[0]
    if n == 0:
        return 0.0
    s = 0.0
    for i in range(n):
        r = x[i] / scale[i]
        s += r * r
    return math.sqrt(s / n)


@kernel(_nrt=False)
def _rms(x: np.ndarray) -> float:
    n = x.shape[0]
    if n == 0:
        return 0.0
    s = 0.0
    for i in range(n):
        s += x[i] * x[i]
    return math.sqrt(s / n)


@kernel(_nrt=False)
def _first_nonfinite(x: np.ndarray) -> int:
    for i in range(x.shape[0]):
        if not np.isfinite(x[i]):
            return i
    return -1


@kernel(_nrt=False)
def _argmax_abs(x: np.ndarray) -> int:
    """Index of the largest |x_i| (a NaN counts as largest); -1 when empty."""
    best = -1
    vmax = -1.0
    for i in range(x.shape[0]):
        a = abs(x[i])
        if a != a:
            return i
        if a > vmax:
            vmax = a
            best = i
    return best


@kernel(_nrt=False)
def _nonfinite_row(ip: np.ndarray, g: np.ndarray) -> int:
    """Row of the first non-finite Jacobian value (CSR ``ip``, values ``g``), or -1."""
    for i in range(ip.shape[0] - 1):
        for p in range(ip[i], ip[i + 1]):
            if not np.isfinite(g[p]):
                return i
    return -1


@kernel(_nrt=False)
def _rhs(
    K: vm.Kernel,
    t: float,
    y: np.ndarray,
    v: np.ndarray,
    out: np.ndarray,
    stack: np.ndarray,
    stats: np.ndarray,
) -> int:
    """f(t, y) into ``out``; returns -1, or the first component that is not finite."""
    vm.rhs(K, t, y, v, out, stack)
    stats[S_RHS] += 1
    return _first_nonfinite(out)


@kernel(_nrt=False)
def _rescale_matrix(order: int, factor: float, R: np.ndarray) -> None:
    """R[i, j] = prod_{m=1}^{i} (m - 1 - factor j) / m  (R[0, :] = 1, R[i>0, 0] = 0)."""
    for j in range(order + 1):
        R[0, j] = 1.0
    for i in range(1, order + 1):
        R[i, 0] = 0.0
        for j in range(1, order + 1):
            R[i, j] = R[i - 1, j] * (i - 1 - factor * j) / i


@kernel(_nrt=False)
def _change_step(D: np.ndarray, Dt: np.ndarray, R: np.ndarray, order: int, factor: float) -> None:
    """Rescale D^0..D^order from step h to step factor*h: D <- (R(factor) R(1))^T D.

    ``R`` (3 x 6 x 6) and ``Dt`` (6 x n) are scratch.  Shampine & Reichelt (1997), sec. 2.
    """
    n = D.shape[1]
    _rescale_matrix(order, factor, R[0])
    _rescale_matrix(order, 1.0, R[1])
    RU = R[2]
    for i in range(order + 1):
        for j in range(order + 1):
            s = 0.0
            for m in range(order + 1):
                s += R[0, i, m] * R[1, m, j]
            RU[i, j] = s
    for a in range(order + 1):
        for i in range(n):
            Dt[a, i] = 0.0
        for b in range(order + 1):
            w = RU[b, a]
            if w != 0.0:
                for i in range(n):
                    Dt[a, i] += w * D[b, i]
    for a in range(order + 1):
        for i in range(n):
            D[a, i] = Dt[a, i]


@kernel(_nrt=False)
def _interpolate(D: np.ndarray, order: int, t: float, h: float, tq: float, out: np.ndarray) -> None:
    """Solution at ``tq`` from the differences at ``t`` (step ``h``, degree ``order``):

    y(tq) = sum_{j=0}^{order} D^j prod_{m=0}^{j-1} (tq - t + m h) / ((m + 1) h).
    """
    n = out.shape[0]
    for i in range(n):
        out[i] = D[0, i]
    p = 1.0
    for j in range(1, order + 1):
        p *= (tq - (t - (j - 1) * h)) / (j * h)
        for i in range(n):
            out[i] += p * D[j, i]


@kernel(_nrt=False)
def _record(
    K: vm.Kernel,
    D: np.ndarray,
    yi: np.ndarray,
    v: np.ndarray,
    stack: np.ndarray,
    t_out: np.ndarray,
    i_out: int,
    out: np.ndarray,
    t_lim: float,
    order: int,
    t: float,
    h: float,
) -> int:
    """Record outputs at grid times strictly before ``t_lim`` from the step ending at ``t``."""
    while i_out < t_out.shape[0]:
        tq = t_out[i_out]
        if not (tq < t_lim):
            break
        _interpolate(D, order, t, h, tq, yi)
        vm.record(K, tq, yi, v, out[i_out], stack)
        i_out += 1
    return i_out


@kernel(_nrt=False)
def _crossed(ref: float, x: float) -> bool:
    """A root function with reference sign ``sign(ref)`` (non-zero) has the other sign at ``x``.

    Zero is no sign: a function that touches zero has not crossed, so that at the time
    returned it has its new sign strictly.
    """
    if ref == 0.0 or ref != ref or x != x or x == 0.0:
        return False
    return (ref > 0.0) != (x > 0.0)


@kernel(_nrt=False)
def _locate_root(
    K: vm.Kernel,
    D: np.ndarray,
    yi: np.ndarray,
    v: np.ndarray,
    stack: np.ndarray,
    ref: np.ndarray,
    rb: np.ndarray,
    armed: np.ndarray,
    fired: np.ndarray,
    t_old: float,
    t_new: float,
    order: int,
    h: float,
) -> float:
    """Earliest crossing in [t_old, t_new] by the Illinois method on the interpolant.

    ``ref`` holds each function's reference (old) sign; ``rb`` rows are the values at the left
    and right bracket ends (on entry: at ``t_old`` and ``t_new``) and the trial point.  Each
    trial point is the earliest of the secant roots (Illinois-weighted) of the functions that
    cross in the bracket, kept at least half the tolerance inside it; the bracket shrinks to
    the tolerance ``1e2 eps max(|t|, |h|)``.  On return ``yi`` holds the state at the returned
    time (the right end of the final bracket, where the crossing functions already have their
    new sign) and ``fired`` flags them.
    """
    lo, hi, mid = rb[0], rb[1], rb[2]
    nr = lo.shape[0]
    tl = t_old
    tr = t_new
    ttol = 100.0 * EPS * max(abs(t_new), abs(h))
    wl = 1.0
    wr = 1.0
    last = 0  # +1: the left end was kept last time, -1: the right end
    it = 0
    w1 = np.inf  # bracket widths one and two iterations ago
    w2 = np.inf
    while tr - tl > ttol and it < MAX_ROOT_ITER:
        it += 1
        s = 1.0
        for i in range(nr):
            if armed[i] and _crossed(ref[i], hi[i]):
                a = wl * lo[i]  # zero or of the old sign
                b = wr * hi[i]
                si = a / (a - b)
                if si < s:
                    s = si
        width = tr - tl
        if width > 0.5 * w2:  # not halved in two iterations (e.g. a flat zero): bisect
            s = 0.5
        w2 = w1
        w1 = width
        tm = tl + s * (tr - tl)
        half = 0.5 * ttol
        if tm - tl < half:
            tm = tl + half
        if tr - tm < half:
            tm = tr - half
        _interpolate(D, order, t_new, h, tm, yi)
        vm.roots(K, tm, yi, v, mid, stack)
        left = False
        for i in range(nr):
            if armed[i] and _crossed(ref[i], mid[i]):
                left = True
                break
        if left:
            tr = tm
            for i in range(nr):
                hi[i] = mid[i]
            wr = 1.0
            if last == 1:
                wl *= 0.5
            last = 1
        else:
            tl = tm
            for i in range(nr):
                lo[i] = mid[i]
            wl = 1.0
            if last == -1:
                wr *= 0.5
            last = -1
    for i in range(nr):
        fired[i] = armed[i] and _crossed(ref[i], hi[i])
    _interpolate(D, order, t_new, h, tr, yi)
    return tr


@kernel(_nrt=False)
def _factor_sparse(
    ip: np.ndarray,
    g: np.ndarray,
    c: float,
    Mp: np.ndarray,
    Mi: np.ndarray,
    Mx: np.ndarray,
    jmap: np.ndarray,
    dmap: np.ndarray,
    lu: sparse_lu.LUFactors,
) -> int:
    """Factor M = I - c J (sparse).  Returns 0, ``ST_LU_CAPACITY``, or 1 + a singular column."""
    n = ip.shape[0] - 1
    for p in range(Mx.shape[0]):
        Mx[p] = 0.0
    for i in range(n):
        Mx[dmap[i]] += 1.0
    for p in range(jmap.shape[0]):
        Mx[jmap[p]] -= c * g[p]
    code = sparse_lu.factorize(Mp, Mi, Mx, lu, SPARSE_TOL, SPARSE_REFACTOR_TOL)
    if code == sparse_lu.CAPACITY:
        return ST_LU_CAPACITY
    if code > 0:
        return 1 + lu.q[code - 1]
    return 0


@kernel(_nrt=False)
def _factor_dense(
    ip: np.ndarray,
    ix: np.ndarray,
    g: np.ndarray,
    c: float,
    M: np.ndarray,
    perm: np.ndarray,
    colmax: np.ndarray,
) -> int:
    """Factor M = I - c J (dense).  Returns 0, or 1 + the singular step."""
    n = ip.shape[0] - 1
    for i in range(n):
        for j in range(n):
            M[i, j] = 0.0
        M[i, i] = 1.0
        for p in range(ip[i], ip[i + 1]):
            M[i, ix[p]] -= c * g[p]
    return dense_lu.lu_factor(M, perm, colmax)


@kernel(_nrt=False)
def _newton(
    K: vm.Kernel,
    v: np.ndarray,
    stack: np.ndarray,
    stats: np.ndarray,
    t_new: float,
    c: float,
    c_lu: float,
    tol: float,
    crate: float,
    use_sparse: bool,
    lu: sparse_lu.LUFactors,
    M: np.ndarray,
    perm: np.ndarray,
    work: np.ndarray,
    werr: np.ndarray,
) -> tuple[int, int, float, int]:
    """Simplified Newton iteration for d - c f(t_new, y_pred + d) + psi = 0.

    ``work`` rows: 0 y (starts at the predictor), 1 d (starts at 0), 2 f, 3 b, 4 dy, 5 scale,
    6 psi.  Returns (converged 0/1, iterations, convergence-rate estimate, first non-finite
    component or -1); on failure ``werr`` holds the last weighted correction.
    """
    y, d, f, b, dy, scale, psi = work[0], work[1], work[2], work[3], work[4], work[5], work[6]
    n = y.shape[0]
    # Correction for a matrix factored at c_lu != c (exact in the stiff limit; CVODE).
    corr = 2.0 / (1.0 + c / c_lu) if c != c_lu else 1.0
    dy_norm_old = 0.0
    rate = 0.0
    for k in range(NEWTON_MAXITER):
        bad = _rhs(K, t_new, y, v, f, stack, stats)
        if bad >= 0:
            return 0, k + 1, crate, bad
        for i in range(n):
            b[i] = c * f[i] - psi[i] - d[i]
        if use_sparse:
            sparse_lu.solve(lu, b, dy)
        else:
            dense_lu.lu_solve(M, perm, b, dy)
        if corr != 1.0:
            for i in range(n):
                dy[i] *= corr
        for i in range(n):
            werr[i] = dy[i] / scale[i]
        dy_norm = _rms(werr)
        if not np.isfinite(dy_norm):
            return 0, k + 1, crate, max(_first_nonfinite(dy), 0)
        if k > 0:
            rate = dy_norm / dy_norm_old
            crate = max(0.3 * crate, rate)
            if rate >= 1.0 or rate ** (NEWTON_MAXITER - k) / (1.0 - rate) * dy_norm > tol:
                return 0, k + 1, crate, -1
        for i in range(n):
            y[i] += dy[i]
            d[i] += dy[i]
        if dy_norm == 0.0:
            return 1, k + 1, crate, -1
        if k == 0:
            # one iteration suffices only with a measured contraction rate: right after a
            # refactorization (crate reset to 1) a tiny first correction may as well come from
            # a poor matrix as from a good predictor
            if crate < 1.0 and dy_norm * crate < tol:
                return 1, 1, crate, -1
        elif rate / (1.0 - rate) * dy_norm < tol:
            return 1, k + 1, crate, -1
        dy_norm_old = dy_norm
    return 0, NEWTON_MAXITER, crate, -1


@kernel(_nrt=False)
def _initial_step(
    K: vm.Kernel,
    v: np.ndarray,
    stack: np.ndarray,
    stats: np.ndarray,
    t0: float,
    y0: np.ndarray,
    f0: np.ndarray,
    atol: np.ndarray,
    rtol: float,
    interval: float,
    work: np.ndarray,
) -> float:
    """First step for a method of order 1 (Hairer, Norsett & Wanner, sec. II.4).

    ``f0`` = f(t0, y0); ``work`` rows 0, 2, 4, 5 are scratch.
    """
    n = y0.shape[0]
    y1, f1, tmp, scale = work[0], work[2], work[4], work[5]
    for i in range(n):
        scale[i] = atol[i] + rtol * abs(y0[i])
    d0 = _wrms(y0, scale)
    d1 = _wrms(f0, scale)
    h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
    h0 = min(h0, interval)
    for _ in range(12):
        for i in range(n):
            y1[i] = y0[i] + h0 * f0[i]
        if _rhs(K, t0 + h0, y1, v, f1, stack, stats) < 0:
            break
        h0 *= 0.1
    for i in range(n):
        tmp[i] = f1[i] - f0[i]
    d2 = _wrms(tmp, scale) / h0
    if not np.isfinite(d2):
        return h0
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = math.sqrt(0.01 / max(d1, d2))
    return min(100.0 * h0, h1)


@kernel(_nrt=False)
def _integrate(
    K: vm.Kernel,
    W: _Core,
    y0: np.ndarray,
    atol: np.ndarray,
    t0: float,
    t_stop: float,
    t_out: np.ndarray,
    i_out: int,
    out: np.ndarray,
    v: np.ndarray,
    rtol: float,
    h_first: float,
    hmax: float,
    max_steps: int,
    use_sparse: bool,
) -> tuple[int, float, int, int, float]:
    """The stepping loop.  Returns (status, t, i_out, failing component, last step size)."""
    n = y0.shape[0]
    D, Dt, R, work, yi, werr, f0 = W.D, W.Dt, W.R, W.work, W.yi, W.werr, W.f0
    y_new, d, scale, y_pred, psi = work[0], work[1], work[5], work[7], work[6]
    g, stack, stats, lu, M, perm = W.g, W.stack, W.stats, W.lu, W.M, W.perm
    r_ref, rb, armed, fired = W.r_ref, W.rb, W.armed, W.fired
    r_prev, r_new = rb[0], rb[1]
    ip = K.jac_indptr
    nr = r_ref.shape[0]
    for k in range(N_STATS):
        stats[k] = 0
    for i in range(nr):
        fired[i] = False
    for i in range(n):
        W.y[i] = y0[i]
        werr[i] = 0.0
        if not (atol[i] > 0.0 and atol[i] < np.inf):
            return ST_BAD_ATOL, t0, i_out, i, 0.0
    t = t0
    if not (t_stop > t0):
        return ST_SUCCESS, t0, i_out, -1, 0.0

    # start: f(t0, y0), root functions, first step
    bad = _rhs(K, t0, y0, v, f0, stack, stats)
    if bad >= 0:
        return ST_NONFINITE, t0, i_out, bad, 0.0
    if nr > 0:
        vm.roots(K, t0, y0, v, r_prev, stack)
        for i in range(nr):
            r_ref[i] = r_prev[i]
            armed[i] = r_prev[i] != 0.0 and r_prev[i] == r_prev[i]
    interval = t_stop - t0
    if n == 0:
        h = interval
    elif h_first > 0.0:
        h = h_first
    else:
        h = _initial_step(K, v, stack, stats, t0, y0, f0, atol, rtol, interval, work)
    h = min(h, hmax, interval)
    for j in range(MAX_ORDER + 3):
        for i in range(n):
            D[j, i] = 0.0
    for i in range(n):
        D[0, i] = y0[i]
        D[1, i] = h * f0[i]

    order = 1 + 0 * n  # (not a compile-time literal: keeps one specialization of the helpers)
    n_equal = 0
    newton_floor = 10.0 * EPS / rtol
    have_jac = False  # g holds a Jacobian
    fresh_jac = False  # ... evaluated during the current step attempt
    lu_ok = False
    c_lu = 0.0
    crate = 1.0
    conv_fails = 0
    last_bad = -1  # component that was non-finite in the last failure, or -1
    n_steps = 0
    err_norm = 0.0

    while True:
        # --- step size and target time
        min_step = 10.0 * EPS * abs(t)
        if h < min_step or t + h == t:
            for i in range(n):
                W.y[i] = D[0, i]  # the last accepted state
            if last_bad >= 0:
                return ST_NONFINITE, t, i_out, last_bad, h
            return ST_STEP_UNDERFLOW, t, i_out, _argmax_abs(werr), h
        h_new = t_stop - t
        if h_new <= 1.05 * h and h_new <= hmax:  # land on t_stop (stretching by at most 5 %)
            _change_step(D, Dt, R, order, h_new / h)
            h = h_new
            t_new = t_stop
        else:
            t_new = t + h

        # --- predictor
        alpha = _ALPHA[order]
        for i in range(n):
            s = 0.0
            p = 0.0
            for j in range(order + 1):
                s += D[j, i]
            for j in range(1, order + 1):
                p += _GAMMA[j] * D[j, i]
            y_pred[i] = s
            psi[i] = p / alpha
            scale[i] = atol[i] + rtol * abs(s)
        c = h / alpha
        newton_tol = max(newton_floor, NEWTON_COEF / _ERROR_CONST[order])

        # --- corrector
        converged = False
        bad = -1
        n_iter = 0
        while True:
            if not lu_ok or abs(c - c_lu) > LU_REUSE * c_lu:
                if not have_jac:
                    vm.jac(K, t_new, y_pred, v, g, stack)
                    stats[S_JAC] += 1
                    fresh_jac = True
                    bad = _nonfinite_row(ip, g)
                    if bad >= 0:  # a failed attempt; re-evaluated at the next one
                        lu_ok = False
                        break
                    have_jac = True
                stats[S_LU] += 1
                if use_sparse:
                    code = _factor_sparse(ip, g, c, W.Mp, W.Mi, W.Mx, W.jmap, W.dmap, lu)
                else:
                    code = _factor_dense(ip, K.jac_indices, g, c, M, perm, W.colmax)
                if code == ST_LU_CAPACITY:
                    return ST_LU_CAPACITY, t, i_out, -1, h
                if code != 0:
                    lu_ok = False
                    if not fresh_jac:
                        have_jac = False
                        continue
                    for i in range(n):
                        werr[i] = 0.0
                    werr[code - 1] = 1.0
                    break
                lu_ok = True
                c_lu = c
                crate = 1.0
            for i in range(n):
                y_new[i] = y_pred[i]
                d[i] = 0.0
            conv, n_iter, crate, bad = _newton(
                K,
                v,
                stack,
                stats,
                t_new,
                c,
                c_lu,
                newton_tol,
                crate,
                use_sparse,
                lu,
                M,
                perm,
                work,
                werr,
            )
            if conv == 1:
                converged = True
                break
            if c != c_lu:  # first refactor with the current c
                lu_ok = False
            elif not fresh_jac:  # then re-evaluate the Jacobian
                have_jac = False
                lu_ok = False
            else:
                break

        if not converged:
            stats[S_CONV_FAIL] += 1
            conv_fails += 1
            last_bad = bad
            if conv_fails >= MAX_CONV_FAILS:
                for i in range(n):
                    W.y[i] = D[0, i]
                if bad >= 0:
                    return ST_NONFINITE, t, i_out, bad, h
                return ST_NEWTON_FAILURE, t, i_out, _argmax_abs(werr), h
            _change_step(D, Dt, R, order, CONV_FAIL_FACTOR)
            h *= CONV_FAIL_FACTOR
            n_equal = 0
            continue
        conv_fails = 0
        last_bad = -1

        # --- error test
        ec = _ERROR_CONST[order]
        for i in range(n):
            scale[i] = atol[i] + rtol * abs(y_new[i])
            werr[i] = ec * d[i] / scale[i]
        err_norm = _rms(werr)
        safety = 0.9 * (2 * NEWTON_MAXITER + 1) / (2 * NEWTON_MAXITER + n_iter)
        if not (err_norm <= 1.0):
            stats[S_ERR_FAIL] += 1
            if err_norm == err_norm:
                factor = max(MIN_FACTOR, safety * err_norm ** (-1.0 / (order + 1)))
            else:
                factor = MIN_FACTOR
            _change_step(D, Dt, R, order, factor)
            h *= factor
            n_equal = 0
            continue

        # --- accept: update the differences (D^{k+2} = d - D^{k+1}, D^{k+1} = d, ...)
        n_steps += 1
        stats[S_STEPS] = n_steps
        fresh_jac = False
        if n_iter >= NEWTON_MAXITER:  # slow convergence: refactor, or failing that, new J
            if c == c_lu:
                have_jac = False
            lu_ok = False
        for i in range(n):
            D[order + 2, i] = d[i] - D[order + 1, i]
            D[order + 1, i] = d[i]
        for j in range(order, -1, -1):
            for i in range(n):
                D[j, i] += D[j + 1, i]
        t_old = t
        t = t_new
        n_equal += 1

        # --- roots
        if nr > 0:
            vm.roots(K, t, D[0], v, r_new, stack)
            found = False
            for i in range(nr):
                if armed[i] and _crossed(r_ref[i], r_new[i]):
                    found = True
                    break
            if found:
                t_root = _locate_root(
                    K, D, yi, v, stack, r_ref, rb, armed, fired, t_old, t, order, h
                )
                for i in range(n):
                    W.y[i] = yi[i]
                i_out = _record(K, D, yi, v, stack, t_out, i_out, out, t_root, order, t, h)
                return ST_ROOT, t_root, i_out, -1, h
            for i in range(nr):
                x = r_new[i]
                r_prev[i] = x
                if x != 0.0 and x == x:  # (zero carries no sign)
                    armed[i] = True
                    r_ref[i] = x

        # --- outputs
        if t == t_stop:
            i_out = _record(K, D, yi, v, stack, t_out, i_out, out, t, order, t, h)
            for i in range(n):
                W.y[i] = D[0, i]
            return ST_SUCCESS, t, i_out, -1, h
        # grid points up to and including t (the step is not the last one)
        i_out = _record(K, D, yi, v, stack, t_out, i_out, out, np.nextafter(t, np.inf), order, t, h)
        if n_steps >= max_steps:
            for i in range(n):
                W.y[i] = D[0, i]
            return ST_TOO_MANY_STEPS, t, i_out, _argmax_abs(werr), h

        # --- step size and order for the next step (after order + 1 steps of equal size)
        if n_equal < order + 1:
            continue
        f_m = 0.0
        f_p = 0.0
        if order > 1:
            e = _ERROR_CONST[order - 1]
            for i in range(n):
                werr[i] = e * D[order, i] / scale[i]
            e_m = _rms(werr)
            f_m = e_m ** (-1.0 / order) if e_m > 0.0 else np.inf
        if order < MAX_ORDER:
            e = _ERROR_CONST[order + 1]
            for i in range(n):
                werr[i] = e * D[order + 2, i] / scale[i]
            e_p = _rms(werr)
            f_p = e_p ** (-1.0 / (order + 2)) if e_p > 0.0 else np.inf
        f_0 = err_norm ** (-1.0 / (order + 1)) if err_norm > 0.0 else np.inf
        delta = 0
        best = f_0
        if f_m > best:  # ties keep the current order
            best = f_m
            delta = -1
        if f_p > best:
            best = f_p
            delta = 1
        factor = min(MAX_FACTOR, safety * best)
        if h * factor > hmax:
            factor = hmax / h
        if delta == 0 and 1.0 <= factor < HOLD_FACTOR:
            continue  # keep h; reconsider after the next step
        order += delta
        _change_step(D, Dt, R, order, factor)
        h *= factor
        n_equal = 0


# --- Python layer ---------------------------------------------------------------------------

SPARSE_MIN_N = 64  # below this the dense LU is always used
SPARSE_SPEED = sparse_lu.DENSE_SPEEDUP  # dense multiply-adds per sparse one in equal time
SPARSE_GAIN = 2.0  # predicted speed-up the sparse LU must offer


def choose_linear_solver(n: int, sparse_work: float, dense_tail: float = 0.0) -> str:
    """The linear solver ``"auto"`` picks: ``"sparse"`` when ``n >= SPARSE_MIN_N`` and

        SPARSE_GAIN * (SPARSE_SPEED * sparse_work + dense_tail) <= n^3 / 3,

    else ``"dense"``.  ``sparse_work`` and ``dense_tail`` are the multiply-adds of a sparse
    numerical refactorization of ``I - c J`` done column by column and in its dense trailing
    block (:func:`scalebridge.linalg.sparse.refactor_cost`, from a trial factorization with the
    fill-reducing order); ``n^3 / 3`` is the work of a dense LU.  Measured on this project's
    machines, contiguous dense loops run about three times more multiply-adds per second than
    indexed sparse ones, and for small n per-column overheads dominate.  The egfr network
    (n = 356, 8,431 Jacobian non-zeros) needs about 5e4 sparse multiply-adds plus a dense
    150 x 150 tail (1.1e6) against 1.5e7 for a dense LU: sparse.
    """
    cost = SPARSE_GAIN * (SPARSE_SPEED * sparse_work + dense_tail)
    if n >= SPARSE_MIN_N and cost <= n**3 / 3.0:
        return "sparse"
    return "dense"


def _iteration_pattern(
    K: vm.Kernel, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CSC pattern of I - J and the maps from CSR Jacobian entries / the diagonal into it."""
    ip = np.asarray(K.jac_indptr, dtype=np.int64)
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(ip))
    cols = np.asarray(K.jac_indices, dtype=np.int64)[: ip[-1]]
    all_r = np.concatenate((rows, np.arange(n, dtype=np.int64)))
    all_c = np.concatenate((cols, np.arange(n, dtype=np.int64)))
    key = all_c * max(n, 1) + all_r  # column-major order
    uniq, inv = np.unique(key, return_inverse=True)
    Mi = (uniq % max(n, 1)).astype(np.int64)
    Mp = np.searchsorted(uniq // max(n, 1), np.arange(n + 1), side="left").astype(np.int64)
    inv = inv.astype(np.int64).ravel()
    return Mp, Mi, inv[: rows.shape[0]].copy(), inv[rows.shape[0] :].copy()


def _sample_values(Mp: np.ndarray, Mi: np.ndarray, n: int) -> np.ndarray:
    """Diagonally dominant values on the pattern (to size the factors and pick an order)."""
    rng = np.random.default_rng(2024)
    x = rng.uniform(-1.0, 1.0, size=int(Mi.shape[0]))
    cols = np.repeat(np.arange(n), np.diff(Mp))
    diag = Mi == cols
    x[diag] = 0.0
    rowsum = np.bincount(Mi, weights=np.abs(x), minlength=n)
    x[diag] = rowsum[Mi[diag]] + 1.0
    return x


def _sparse_setup(
    Mp: np.ndarray, Mi: np.ndarray, n: int
) -> tuple[sparse_lu.LUFactors, tuple[float, float]]:
    """Column order (the cheaper of COLAMD and minimum degree on A + A^T), factors sized from a
    trial factorization, and the refactorization work (sparse, dense tail)."""
    sample = _sample_values(Mp, Mi, n)
    best: sparse_lu.LUFactors | None = None
    best_cost = (math.inf, math.inf)

    def total(cost: tuple[float, float]) -> float:
        return SPARSE_SPEED * cost[0] + cost[1]

    for method in ("COLAMD", "MMD_AT_PLUS_A"):
        q = sparse_lu.column_order(Mp, Mi, n, method)
        cap = 4 * Mi.shape[0] + 8 * n
        F = sparse_lu.allocate(n, q, cap, cap, n)
        while sparse_lu.factor(Mp, Mi, sample, F, SPARSE_TOL) == sparse_lu.CAPACITY:
            F = sparse_lu.enlarge(F)
        cost = sparse_lu.refactor_cost(F)
        if best is None or total(cost) < total(best_cost):
            best, best_cost = F, cost
    assert best is not None
    lcap = 2 * int(best.info[sparse_lu.INFO_LNZ]) + n
    ucap = 2 * int(best.info[sparse_lu.INFO_UNZ]) + n
    m = n - int(best.info[sparse_lu.INFO_K0])
    dense_cap = min(n, 2 * m + sparse_lu.DENSE_TAIL_MIN) if m > 0 else 0
    return sparse_lu.allocate(n, best.q, lcap, ucap, dense_cap), best_cost


class Workspace:
    """Storage for :func:`solve`, allocated once per model and reused by every call.

    Holds the difference table, the Newton vectors, the Jacobian buffer, the dense or sparse LU
    storage (for the sparse LU also the pattern of I - J, its fill-reducing column order and
    the maps from Jacobian entries into it) and the root-finding buffers.  A workspace serves
    one call at a time: concurrent calls (threads; the compiled core releases the GIL) each
    need their own.
    """

    def __init__(self, K: vm.Kernel, linear_solver: str = "auto") -> None:
        if linear_solver not in ("auto", "dense", "sparse"):
            raise OptionError(
                f"linear_solver must be 'auto', 'dense' or 'sparse', not {linear_solver!r}"
            )
        n = int(K.x_slots.shape[0])
        nnz = int(K.jac_indptr[-1]) if K.jac_indptr.shape[0] else 0
        nr = int(K.root_slots.shape[0])
        if K.jac_indptr.shape[0] != n + 1:
            raise OptionError("kernel Jacobian pattern does not match the number of states")
        self.n, self.nnz, self.n_roots = n, nnz, nr
        self.n_g = int(K.n_g)
        self.requested = linear_solver
        self._jac_indptr = K.jac_indptr
        self._jac_indices = K.jac_indices
        Mp, Mi, jmap, dmap = _iteration_pattern(K, n)
        lu = sparse_lu.allocate(0, np.zeros(0, dtype=np.int64), 0, 0)
        self.sparse_work = (math.nan, math.nan)  # refactorization: sparse, dense-tail work
        if linear_solver == "sparse" or (linear_solver == "auto" and n >= SPARSE_MIN_N):
            lu, self.sparse_work = _sparse_setup(Mp, Mi, n)
        if linear_solver == "auto":
            self.kind = choose_linear_solver(n, *self.sparse_work)
        else:
            self.kind = linear_solver
        self.sparse = self.kind == "sparse"
        f8 = np.float64
        if self.sparse:
            nd = 0
        else:
            z_i = np.zeros(0, dtype=np.int64)
            lu = sparse_lu.allocate(0, z_i, 0, 0)
            Mp, Mi, jmap, dmap = np.zeros(1, dtype=np.int64), z_i, z_i, z_i
            nd = n
        self.core = _Core(
            D=np.zeros((MAX_ORDER + 3, n), dtype=f8),
            Dt=np.zeros((MAX_ORDER + 1, n), dtype=f8),
            R=np.zeros((3, MAX_ORDER + 1, MAX_ORDER + 1), dtype=f8),
            work=np.zeros((8, n), dtype=f8),
            y=np.zeros(n, dtype=f8),
            f0=np.zeros(n, dtype=f8),
            yi=np.zeros(n, dtype=f8),
            werr=np.zeros(n, dtype=f8),
            g=np.zeros(max(self.n_g, 1), dtype=f8),
            M=np.zeros((nd, nd), dtype=f8),
            perm=np.zeros(nd, dtype=np.int64),
            colmax=np.zeros(nd, dtype=f8),
            Mp=Mp,
            Mi=Mi,
            Mx=np.zeros(Mi.shape[0], dtype=f8),
            jmap=jmap,
            dmap=dmap,
            lu=lu,
            r_ref=np.zeros(nr, dtype=f8),
            rb=np.zeros((3, nr), dtype=f8),
            armed=np.zeros(nr, dtype=np.bool_),
            fired=np.zeros(nr, dtype=np.bool_),
            stack=vm.new_stack(K),
            stats=np.zeros(N_STATS, dtype=np.int64),
        )
        self._atol_key: Any = None
        self._atol = np.zeros(n, dtype=f8)

    def matches(self, K: vm.Kernel) -> bool:
        """Whether ``K`` has this workspace's sizes and Jacobian pattern."""
        if (
            K.x_slots.shape[0] != self.n
            or K.root_slots.shape[0] != self.n_roots
            or int(K.n_g) != self.n_g
            or K.stack_size > self.core.stack.shape[0]
        ):
            return False
        if K.jac_indices is self._jac_indices and K.jac_indptr is self._jac_indptr:
            return True
        return np.array_equal(K.jac_indices, self._jac_indices) and np.array_equal(
            K.jac_indptr, self._jac_indptr
        )

    def atol_array(self, atol: Any) -> np.ndarray:
        """``atol`` (scalar or per-component) as a float64 array of ``n`` entries.

        A float64 array of the right shape is passed through (its values are checked in
        compiled code); anything else is converted, checked and cached.
        """
        if (
            type(atol) is np.ndarray
            and atol.dtype == np.float64
            and atol.shape == (self.n,)
            and atol.flags.c_contiguous
        ):
            return atol
        if atol is self._atol_key:
            return self._atol
        a = np.asarray(atol, dtype=np.float64)
        if a.ndim == 0:
            a = np.full(self.n, float(a))
        if a.shape != (self.n,):
            raise OptionError(f"atol must be a scalar or have {self.n} entries, not {a.shape}")
        if not (np.all(np.isfinite(a)) and np.all(a > 0.0)):
            raise OptionError("atol must be positive and finite")
        self._atol[:] = a
        self._atol_key = atol if not isinstance(atol, np.ndarray) else None
        return self._atol

    def _grow_sparse(self) -> None:
        self.core = self.core._replace(lu=sparse_lu.enlarge(self.core.lu))


@dataclass(slots=True)
class BdfResult:
    """Outcome of one :func:`solve` call.

    ``t`` and ``y`` are where the call stopped (``t_stop``, a root, or the last accepted step
    before a failure); ``i_out`` is the next output index; ``roots_fired`` flags the root
    functions that changed sign at ``t``; ``component`` is the state most responsible for a
    failure (-1 if none); counts are for this call.
    """

    status: Status
    t: float
    y: np.ndarray
    i_out: int
    roots_fired: np.ndarray
    n_steps: int
    n_rhs: int
    n_jac: int
    n_lu: int
    n_err_fail: int
    n_conv_fail: int
    component: int
    h_last: float
    message: str
    workspace: Workspace

    @property
    def ok(self) -> bool:
        return self.status >= 0

    def raise_for_status(self, names: Any = None) -> None:
        """Raise :class:`SolverError` on failure, naming ``names[component]`` if given."""
        if self.ok:
            return
        var = None
        if names is not None and 0 <= self.component < len(names):
            var = str(names[self.component])
        where = f" in variable '{var}'" if var else ""
        raise SolverError(f"{self.message}{where} at t = {self.t:g}", variable=var, time=self.t)


def _check_array(name: str, a: Any, ndim: int) -> None:
    if not (
        isinstance(a, np.ndarray)
        and a.dtype == np.float64
        and a.ndim == ndim
        and a.flags.c_contiguous
    ):
        raise OptionError(f"{name} must be a C-contiguous float64 array with {ndim} dimension(s)")


def solve(
    K: vm.Kernel,
    t0: float,
    y0: np.ndarray,
    t_stop: float,
    t_out: np.ndarray,
    i_out: int,
    out: np.ndarray,
    v: np.ndarray,
    *,
    rtol: float,
    atol: Any,
    h0: float = 0.0,
    hmax: float = math.inf,
    max_steps: int = 500_000,
    linear_solver: str = "auto",
    workspace: Workspace | None = None,
) -> BdfResult:
    """Integrate dy/dt = f(t, y) of kernel ``K`` from ``(t0, y0)`` towards ``t_stop``.

    ``t_out`` (increasing) and ``out`` (``len(t_out)`` x ``len(K.rec_slots)``) receive, from
    index ``i_out`` on, the recorded values at grid times strictly before the time returned at.
    ``v`` is the model's value array (fixed values set by the caller).  ``rtol`` is scalar,
    ``atol`` scalar or per state.  ``h0`` (0: automatic) is the first step, ``hmax`` the largest,
    ``max_steps`` bounds accepted steps in this call.  ``linear_solver`` is ``"auto"``,
    ``"dense"`` or ``"sparse"``; pass the ``workspace`` of a previous result on the same
    model to avoid reallocation.  See the module docstring for the contract.
    """
    if workspace is None:
        ws = Workspace(K, linear_solver)
    else:
        ws = workspace
        if linear_solver not in ("auto", ws.kind) or not ws.matches(K):
            raise OptionError("workspace was built for another model or linear solver")
    if not (0.0 < rtol < 1.0) or rtol < 100.0 * EPS:
        raise OptionError(f"rtol must be in [{100 * EPS:.1e}, 1), not {rtol}")
    t0 = float(t0)
    t_stop = float(t_stop)
    if not (math.isfinite(t0) and math.isfinite(t_stop)) or t_stop < t0:
        raise OptionError(f"need finite t0 <= t_stop, got t0={t0}, t_stop={t_stop}")
    if not (hmax > 0.0) or h0 < 0.0 or not math.isfinite(h0):
        raise OptionError("hmax must be positive and h0 non-negative and finite")
    if max_steps < 1:
        raise OptionError(f"max_steps must be positive, not {max_steps}")
    a = ws.atol_array(atol)
    y0 = np.ascontiguousarray(y0, dtype=np.float64)
    if y0.shape != (ws.n,):
        raise OptionError(f"y0 must have {ws.n} entries, not {y0.shape}")
    _check_array("t_out", t_out, 1)
    _check_array("out", out, 2)
    _check_array("v", v, 1)
    if out.shape[0] < t_out.shape[0] or out.shape[1] != K.rec_slots.shape[0]:
        raise OptionError("out must have one row per output time and one column per record")
    if v.shape[0] < K.n_slots:
        raise OptionError(f"v must have {K.n_slots} slots")
    while True:
        status, t, i_next, comp, h_last = _integrate(
            K,
            ws.core,
            y0,
            a,
            t0,
            t_stop,
            t_out,
            int(i_out),
            out,
            v,
            float(rtol),
            float(h0),
            float(hmax),
            int(max_steps),
            ws.sparse,
        )
        if status == ST_BAD_ATOL:
            raise OptionError("atol must be positive and finite")
        if status != ST_LU_CAPACITY:
            break
        ws._grow_sparse()
    st = Status(status)
    core = ws.core
    stats = core.stats
    return BdfResult(
        status=st,
        t=t,
        y=core.y.copy(),
        i_out=i_next,
        roots_fired=core.fired.copy(),
        n_steps=int(stats[S_STEPS]),
        n_rhs=int(stats[S_RHS]),
        n_jac=int(stats[S_JAC]),
        n_lu=int(stats[S_LU]),
        n_err_fail=int(stats[S_ERR_FAIL]),
        n_conv_fail=int(stats[S_CONV_FAIL]),
        component=comp,
        h_last=h_last,
        message=_MESSAGES[st],
        workspace=ws,
    )
