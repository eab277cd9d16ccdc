"""Linear algebra of the finite state projection (for :mod:`.fsp`).

Generators
----------
On a projection ``S`` (:class:`~.fsp_space.StateSpace`) with ``n`` states and ``D = 2 n_s``
growth directions, the *absorbing* generator is the ``(n + D) x (n + D)`` matrix

    A[y, x] = sum_j a_j(x) [x + nu_j = y],   A[n + d, x] = sum_j a_j(x) [x + nu_j leaves in d],
    A[x, x] = -sum_j a_j(x)  (over reactions that change x),

whose last ``D`` columns are zero: sink ``d`` absorbs the probability that leaves the box in
direction ``d``.  Columns sum to zero, so total probability is conserved, and by the FSP theorem
(Munsky & Khammash, J. Chem. Phys. 124, 044104, 2006) the projected solution ``p_S(t)`` is
entrywise below the CME solution restricted to ``S``, with

    || p(t) - p_S(t) ||_1 = 1 - sum_S p_S(t) = sum_d sink_d(t)

exactly: the sink mass is the 1-norm error of the (unnormalised) truncated solution.

The *reflecting* generator keeps only transitions inside ``S`` (the diagonal loses the exit
rates).  For a reversible chain its stationary distribution is the true one conditioned on
``S``; in general it is the standard truncation for stationary problems.

Transient solutions
-------------------
``p(t_{k+1}) = exp((t_{k+1} - t_k) A) p(t_k)`` by uniformization (Jensen's method, the default;
:class:`Propagator`) or by :func:`scipy.sparse.linalg.expm_multiply`.  Both are exponential
integrators, exact for this linear, autonomous system up to rounding and a series truncation
far below any useful ``tol``: unlike a stiff ODE solver they add no time-stepping error that
would have to be folded into the truncation bound.  Uniformization is the default because it
uses the structure of a generator: ``I + A / Lambda`` is a non-negative, column-stochastic
matrix, so the series has no cancellation, conserves probability to rounding, and needs about
``Lambda t`` matrix-vector products, where ``expm_multiply`` bounds its Taylor series by
``||A||_1 ~ 2 Lambda`` and scales.  Measured on the two-stage gene model (k_m = 10, gamma_m = 1,
k_p = 5, gamma_p = 0.1; 27,935 states, ``Lambda t = 5,600``): 6,300 products and 1.6 s against
24,900 products and 7.4 s for ``expm_multiply``, which also lost 6e-14 of probability.  Both costs
grow like ``Lambda t``, which is what limits very stiff networks.

Stationary solutions
--------------------
The null vector of the reflecting generator, normalised, by a sparse LU factorisation (SuperLU,
COLAMD ordering) with one balance equation replaced by ``sum pi = 1``.  Error estimate: in the
stationary state the probability flux out of ``S`` balances the flux back in, and the mass
outside is the exit flux times the mean time an excursion spends outside.  An excursion that
starts at ``y``, ``u`` beyond the bound it crossed, returns in about ``u / -g1`` where ``g1`` is
the drift of that species at ``y`` (:func:`~.fsp_space._return_times`; a second-order version
when the drift still points outward).  The drift is evaluated where the excursion starts and
grows more negative further out for degradation-dominated networks, so this overestimates the
time (for the immigration-death chain it is an upper bound).  The estimated 1-norm error is
twice the estimated mass outside (exact for a reversible chain, whose truncation is the
conditioned distribution).  It is an estimate, not a bound: it is infinite when no direction
drifts back, and the box grows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..codegen.jit import kernel
from ..errors import SolverError
from .fsp_space import StateSpace

# Uniformization leaves out Poisson weights below this fraction of the largest one.
POISSON_CUT = 1e-20


# --- generators ---------------------------------------------------------------------------------
def absorbing_generator(space: StateSpace) -> Any:
    """The absorbing generator (module docstring) as a CSR array, and the transitions used."""
    from scipy import sparse

    n, D = space.n, space.n_directions
    src, dst, _, rate = space.transitions()
    rows = np.where(dst >= 0, dst, n + (-1 - dst))
    diag = -np.bincount(src, weights=rate, minlength=n)
    r = np.concatenate([rows, np.arange(n)])
    c = np.concatenate([src, np.arange(n)])
    vals = np.concatenate([rate, diag])
    return sparse.csr_array((vals, (r, c)), shape=(n + D, n + D))


def _equally_spaced(times: np.ndarray) -> bool:
    if times.size < 3:
        return True
    dt = np.diff(times)
    return bool(np.all(np.abs(dt - dt.mean()) <= 1e-12 * max(abs(times[-1]), abs(times[0]), 1.0)))


@kernel
def _poisson_weights(q: float, cut: float) -> tuple[int, np.ndarray]:
    """Poisson(q) weights ``w[k]`` for ``k = left .. len(w) - 1``, normalised to sum 1; the
    terms dropped on either side are below ``cut`` times the largest.  Computed outwards from
    the mode by the ratios ``w[k+1] / w[k] = q / (k + 1)`` (as in Fox & Glynn, Commun. ACM 31,
    1988), which neither underflows nor accumulates error where the weights matter."""
    mode = math.floor(q)
    size = mode + int(12.0 * math.sqrt(q + 1.0)) + 64
    w = np.zeros(size)
    w[mode] = 1.0
    right = mode
    while w[right] >= cut:
        if right + 1 == size:
            bigger = np.zeros(2 * size)
            bigger[:size] = w
            w = bigger
            size = 2 * size
        w[right + 1] = w[right] * q / (right + 1.0)
        right += 1
    left = mode
    while left > 0 and w[left] >= cut:
        w[left - 1] = w[left] * left / q
        left -= 1
    total = 0.0
    for k in range(left, right + 1):
        total += w[k]
    for k in range(left, right + 1):
        w[k] /= total
    return left, w[: right + 1]


@kernel
def _uniformize(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    q: float,
    x: np.ndarray,
    out: np.ndarray,
    v: np.ndarray,
    w: np.ndarray,
) -> int:
    """``out = sum_k Pois(k; q) P^k x`` for the column-stochastic CSR matrix ``P`` (weights
    below :data:`POISSON_CUT` of the largest left out); returns the number of products."""
    n = x.shape[0]
    if q <= 0.0:
        out[:] = x
        return 0
    left, weights = _poisson_weights(q, POISSON_CUT)
    last = weights.shape[0] - 1
    v[:] = x
    out[:] = 0.0
    for k in range(last + 1):
        if k >= left:
            c = weights[k]
            for i in range(n):
                out[i] += c * v[i]
        if k == last:
            return k
        for i in range(n):
            s = 0.0
            for p in range(indptr[i], indptr[i + 1]):
                s += data[p] * v[indices[p]]
            w[i] = s
        v, w = w, v
    return last


class Propagator:
    """``p(t) = exp(t A) p(0)`` for an absorbing generator ``A`` (module docstring).

    ``method="uniformization"`` (Jensen's method): with ``Lambda = max_x |A[x, x]|``,
    ``P = I + A / Lambda`` is column-stochastic and entrywise non-negative, and
    ``exp(t A) = sum_k Pois(k; Lambda t) P^k``.  Every term is non-negative, so the series has
    no cancellation and conserves probability; the weights are normalised over the terms kept
    (:func:`_poisson_weights`), which changes them by less than 1e-18.  It needs about
    ``Lambda t + 10 sqrt(Lambda t)`` products with ``P``.  ``method="expm"``:
    :func:`scipy.sparse.linalg.expm_multiply` (Al-Mohy & Higham), which does not use the
    structure: it needed four times as many products on the gene model (module docstring), and
    its parameter selection draws from NumPy's global random generator.
    ``products`` counts the matrix-vector products of uniformization.
    """

    def __init__(self, A: Any, method: str = "uniformization"):
        from scipy import sparse

        self.A = A
        self.method = method
        self.products = 0
        if method == "uniformization":
            self.rate = float(max(-A.diagonal().min(), 0.0))
            eye = sparse.eye_array(A.shape[0], format="csr")
            P = sparse.csr_array(A / self.rate + eye if self.rate > 0 else eye)
            P.sort_indices()
            self.P = P

    def __call__(self, p0: np.ndarray, times: np.ndarray) -> Iterator[np.ndarray]:
        """Yield ``p(t_k)`` for every time of ``times`` (``p(times[0]) = p0``)."""
        if self.method == "expm":
            yield from _expm_path(self.A, p0, times)
            return
        P = self.P
        indices = P.indices.astype(np.int64, copy=False)
        indptr = P.indptr.astype(np.int64, copy=False)
        p = np.asarray(p0, dtype=np.float64)
        v, w = np.empty_like(p), np.empty_like(p)
        yield p
        for k in range(times.size - 1):
            out = np.empty_like(p)
            q = self.rate * float(times[k + 1] - times[k])
            self.products += _uniformize(indptr, indices, P.data, q, p, out, v, w)
            p = out
            yield p


def _expm_path(A: Any, p0: np.ndarray, times: np.ndarray, block_bytes: int = 1 << 27
               ) -> Iterator[np.ndarray]:  # fmt: skip
    """``expm_multiply`` on ``times``: an equally spaced grid in blocks of time points (one call
    per block, holding at most ``block_bytes`` of results), any other grid interval by
    interval."""
    from scipy.sparse.linalg import expm_multiply

    trace = float(A.diagonal().sum())
    p = np.asarray(p0, dtype=np.float64)
    yield p
    if times.size == 1:
        return
    if _equally_spaced(times):
        h = (times[-1] - times[0]) / (times.size - 1)
        per_block = max(1, min(times.size - 1, block_bytes // max(8 * p.size, 1)))
        k = 0
        while k < times.size - 1:
            m = min(per_block, times.size - 1 - k)
            if m == 1:
                p = expm_multiply(A * h, p, traceA=trace * h)
                yield p
            else:
                block = expm_multiply(A, p, start=0.0, stop=m * h, num=m + 1, endpoint=True,
                                      traceA=trace)  # fmt: skip
                yield from block[1:]
                p = block[-1]
            k += m
        return
    for k in range(times.size - 1):
        dt = float(times[k + 1] - times[k])
        p = expm_multiply(A * dt, p, traceA=trace * dt)
        yield p


# --- stationary ---------------------------------------------------------------------------------
def stationary(space: StateSpace) -> tuple[np.ndarray, dict[str, Any]]:
    """The stationary distribution of the reflecting generator on ``space`` (normalised), and
    the exits with their error-estimate data (``src``, ``rxn``, ``rate``, ``direction``)."""
    from scipy import sparse
    from scipy.sparse.linalg import splu

    n = space.n
    src, dst, rxn, rate = space.transitions()
    inside = dst >= 0
    s_in, d_in, r_in = src[inside], dst[inside], rate[inside]
    diag = -np.bincount(s_in, weights=r_in, minlength=n)
    rows = np.concatenate([d_in, np.arange(n)])
    cols = np.concatenate([s_in, np.arange(n)])
    vals = np.concatenate([r_in, diag])
    # Replace the balance equation of x0 (state 0) by the normalisation sum(pi) = 1: the
    # balance equations are linearly dependent (columns of the generator sum to zero).
    keep = rows != 0
    rows = np.concatenate([rows[keep], np.zeros(n, dtype=np.int64)])
    cols = np.concatenate([cols[keep], np.arange(n)])
    vals = np.concatenate([vals[keep], np.ones(n)])
    M = sparse.csc_array((vals, (rows, cols)), shape=(n, n))
    rhs = np.zeros(n)
    rhs[0] = 1.0
    try:
        pi = splu(M, permc_spec="COLAMD").solve(rhs)
    except RuntimeError as exc:
        raise SolverError(
            f"the stationary distribution on the projection ({space.describe_box()}) is not "
            f"unique ({exc}): the chain has more than one closed class there"
        ) from None
    scale = max(1.0, float(np.abs(pi).max()))
    if not np.all(np.isfinite(pi)) or pi.min() < -1e-8 * scale:
        raise SolverError(
            "the stationary distribution on the projection could not be computed accurately "
            f"(smallest entry {pi.min():.3g}); the chain may have more than one closed class"
        )
    pi = np.clip(pi, 0.0, None)
    pi /= pi.sum()
    exits = ~inside
    info = {
        "src": src[exits],
        "rxn": rxn[exits],
        "rate": rate[exits],
        "direction": -1 - dst[exits],
    }
    return pi, info


def stationary_error(
    space: StateSpace, pi: np.ndarray, exits: dict[str, Any]
) -> tuple[float, np.ndarray]:
    """Estimated 1-norm error of ``pi`` (module docstring), total and per growth direction:
    twice the sum over exits of flux x estimated time outside."""
    per = np.zeros(space.n_directions)
    if exits["src"].size == 0:
        return 0.0, per
    flux = pi[exits["src"]] * exits["rate"]
    direction = exits["direction"]
    tau = space.return_times(exits["src"], exits["rxn"], direction)
    live = flux > 0.0  # 0 x inf: an exit that carries no probability adds nothing
    np.add.at(per, direction[live], 2.0 * flux[live] * tau[live])
    return float(per.sum()), per


# --- growth -------------------------------------------------------------------------------------
class Growth:
    """Chooses new box bounds from the error charged to each growth direction.

    A direction is grown when its error exceeds ``tol / (2 D)``, aiming at ``tol / (4 g)`` for
    the ``g`` directions grown.  ``reach`` (optional) gives, per species, how far the current
    solution suggests the distribution extends: ``mean +- z sd`` with ``z = sqrt(2 ln(1 /
    target))``, a Gaussian tail at the target level (the extremes over the output times).

    * While the error is large (at least 0.1: the bound still cuts into the bulk), grow by the
      largest of half the box width, ``sqrt(bound)`` (a Poisson-like spread around a large
      count), 4, and the distance to ``reach``.
    * In the tail, grow by the secant extrapolation of log(error) against the bound from the
      direction's last two tail values -- exact for a geometric tail, an overshoot for the
      faster-decaying tails of most networks -- or, with one tail value so far, to ``reach``;
      kept between a tenth of the width and the width (a wrong extrapolation costs one more
      growth step, not a projection many times too large).
    """

    TAIL = 0.1

    def __init__(self, tol: float):
        self.tol = tol
        self.history: dict[int, tuple[float, float]] = {}

    def z(self, n_grow: int) -> float:
        """The Gaussian quantile at the target level, for ``reach``."""
        return math.sqrt(2.0 * math.log(4.0 * n_grow / max(self.tol, 1e-300)))

    def next_box(
        self,
        space: StateSpace,
        errors: np.ndarray,
        reach: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = space.lo.copy(), space.hi.copy()
        D = errors.size
        grow = [d for d in range(D) if errors[d] > self.tol / (2 * D)]
        if not grow:  # the total exceeds tol although no direction does: grow the largest
            grow = [int(np.argmax(errors))]
        target = self.tol / (4 * len(grow))
        for d in grow:
            i, lower = divmod(d, 2)
            width = hi[i] - lo[i] + 1
            bound = lo[i] if lower else hi[i]
            to_reach = 0.0
            if reach is not None:
                r = reach[1][i] if lower else reach[0][i]
                to_reach = float(np.ceil(bound - r if lower else r - bound))
            e = float(errors[d])
            prev = self.history.get(d)
            if e >= self.TAIL or not math.isfinite(e):
                k = float(max(4, math.ceil(0.5 * width), math.ceil(math.sqrt(max(bound, 0.0))),
                              to_reach))  # fmt: skip
            else:
                k = to_reach
                if prev is not None:
                    b0, e0 = prev
                    if e0 < self.TAIL and 0 < e < e0 and b0 != bound:
                        per_count = math.log(e0 / e) / abs(bound - b0)
                        k = math.ceil(math.log(e / target) / per_count) + 1
                k = float(min(max(k, math.ceil(0.1 * width), 1), width))
            self.history[d] = (bound, e)
            if lower:
                lo[i] = max(0.0, lo[i] - k)
            else:
                hi[i] = hi[i] + k
        return lo, hi


def reach(X: np.ndarray, distributions: list[np.ndarray], z: float
          ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``(max_t (mean + z sd), min_t (mean - z sd))`` per species over the given distributions
    on the states ``X`` (for :class:`Growth`)."""
    up = np.full(X.shape[1], -np.inf)
    down = np.full(X.shape[1], np.inf)
    for p in distributions:
        q = np.clip(p, 0.0, None)
        mass = q.sum()
        if mass <= 0.0:
            continue
        m = (q @ X) / mass
        sd = np.sqrt(np.clip((q @ (X - m) ** 2) / mass, 0.0, None))
        up = np.maximum(up, m + z * sd)
        down = np.minimum(down, m - z * sd)
    return up, down
