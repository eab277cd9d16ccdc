r"""Compiled kernels of the chemical Langevin equation (see :mod:`scalebridge.wellmixed.cle`).

The SDE on counts ``X`` (Ito), one Wiener process per reaction:

    dX = sum_j nu_j a_j(X) dt + sum_j nu_j sqrt(a_j(X)) dW_j,

i.e. drift ``a(X) = S a(X)`` and diffusion columns ``b^j(X) = nu_j sqrt(a_j(X))``.  Propensities
are always evaluated at ``max(X, 0)`` (component-wise), at the state and at every supporting
value of a scheme.

Euler-Maruyama (weak order 1), Gaussian increments ``xi_j ~ N(0, 1)``:

    X_{n+1} = X_n + h sum_j nu_j a_j + sum_j nu_j sqrt(a_j h) xi_j.

Platen's explicit weak order 2.0 scheme for Ito SDEs with several Wiener processes (Kloeden &
Platen, *Numerical Solution of Stochastic Differential Equations*, 1992, eq. 15.1.5), with
supporting values ``Ybar = Y + a h + sum_j b^j dW_j``, ``R^j_+- = Y + a h +- b^j sqrt(h)``,
``U^r_+- = Y +- b^r sqrt(h)``:

    Y_{n+1} = Y + (a(Ybar) + a) h / 2
      + 1/4 sum_j [ (b^j(R^j_+) + b^j(R^j_-) + 2 b^j) dW_j
                    + sum_(r != j) (b^j(U^r_+) + b^j(U^r_-) - 2 b^j) dW_j ]
      + 1/4 sum_j [ (b^j(R^j_+) - b^j(R^j_-)) (dW_j^2 - h)
                    + sum_(r != j) (b^j(U^r_+) - b^j(U^r_-)) (dW_j dW_r + V_(r,j)) ] / sqrt(h),

with three-point increments ``P(dW_j = +-sqrt(3h)) = 1/6``, ``P(dW_j = 0) = 2/3`` and two-point
``V_(r,j) = -V_(j,r)``, ``P(V_(r,j) = +-h) = 1/2`` (for r < j, independent).  Expanding the
supporting values reproduces the simplified weak order 2.0 Taylor scheme term by term.  The
scheme needs the propensities at 2 full points plus single propensities at ``2 n_r`` points
``R`` and, because ``b^j(U^r) = b^j`` unless reaction j's propensity reads a species that
reaction r changes, at ``2 |dep|`` points ``U`` (``dep``: the dependency graph of the SSA
tables) -- so its cost grows with the edges of that graph, not with ``n_r^2``.  The signs
of ``V`` are drawn only for the pairs ``{r, j}`` linked in the dependency graph (the others
multiply a zero).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..codegen import vm
from ..codegen.jit import kernel
from ..codegen.stochastic import SsaTables
from .propensity import next_u64, normal, record, uniform
from .tauleap_kernels import (
    BAD_PROPENSITY,
    NEGATIVE_PROPENSITY,
    NON_FINITE_STATE,
    OK,
    check_propensities,
    fill_propensities,
    propensity_of,
    triggers_changed,
)

EULER_MARUYAMA, WEAK2 = 0, 1
CLIP, REFLECT, ABSORB = 0, 1, 2
C_STEPS, C_HITS = 0, 1  # counters: steps; steps that left some count negative
N_COUNTERS = 2


class CleTables(NamedTuple):
    """Pairs of Wiener processes linked by the dependency graph (for the weak-2 scheme)."""

    pair_of: np.ndarray  # int64[len(dep_idx)]: pair index of (r, dep_idx[q]); -1 when equal
    pair_sgn: np.ndarray  # float64[len(dep_idx)]: V_(r,j) = pair_sgn * V_pair
    n_pairs: int


class CleWork(NamedTuple):
    """Work arrays of one thread (the kernels never allocate)."""

    x: np.ndarray  # float64[n_s]  counts of the current run
    v: np.ndarray  # float64[n_slots]
    rng: np.ndarray  # uint64[4]
    w: np.ndarray  # float64[n_s]  clipped evaluation point
    z: np.ndarray  # float64[n_s]
    yb: np.ndarray  # float64[n_s]
    D: np.ndarray  # float64[n_s]  drift at Y
    Db: np.ndarray  # float64[n_s]  drift at Ybar
    xnew: np.ndarray  # float64[n_s]
    a: np.ndarray  # float64[n_r]
    ab: np.ndarray  # float64[n_r]
    s: np.ndarray  # float64[n_r]  sqrt(a)
    dW: np.ndarray  # float64[n_r]
    sp: np.ndarray  # float64[n_r]  sqrt(a_j(R^j_+))
    sm: np.ndarray  # float64[n_r]
    c: np.ndarray  # float64[n_r]  noise coefficient of nu_j
    up: np.ndarray  # float64[len(dep_idx)]  sqrt(a_j(U^r_+)) for j = dep_idx[q]
    um: np.ndarray  # float64[len(dep_idx)]
    vp: np.ndarray  # float64[n_pairs]  V of each linked pair
    stack: np.ndarray
    no_slots: np.ndarray  # int64[0]
    no_prev: np.ndarray  # bool[0]


def new_work(T: SsaTables, C: CleTables, n_slots: int, stack_size: int) -> CleWork:
    n_s, n_r, n_d = T.n_species, T.n_reactions, T.dep_idx.shape[0]
    return CleWork(
        x=np.zeros(n_s), v=np.zeros(n_slots), rng=np.zeros(4, dtype=np.uint64),
        w=np.zeros(n_s), z=np.zeros(n_s), yb=np.zeros(n_s), D=np.zeros(n_s), Db=np.zeros(n_s),
        xnew=np.zeros(n_s), a=np.zeros(n_r), ab=np.zeros(n_r), s=np.zeros(n_r),
        dW=np.zeros(n_r), sp=np.zeros(n_r), sm=np.zeros(n_r), c=np.zeros(n_r),
        up=np.zeros(n_d), um=np.zeros(n_d), vp=np.zeros(max(C.n_pairs, 1)),
        stack=np.zeros(max(stack_size, 1)), no_slots=np.zeros(0, dtype=np.int64),
        no_prev=np.zeros(0, dtype=np.bool_),
    )  # fmt: skip


# Non-allocating kernels without reference counting; helpers that take the tables are inlined
# by numba (see the performance notes in tauleap_kernels.py).
@kernel(_nrt=False, inline="always")
def _single(T: SsaTables, j: int, w: np.ndarray, v: np.ndarray,
            stack: np.ndarray) -> tuple[float, int]:  # fmt: skip
    """sqrt(a_j(w)) and a status."""
    aj = propensity_of(T, j, w, v, stack)
    if not (aj >= 0.0):
        return 0.0, (NEGATIVE_PROPENSITY if aj < 0.0 else BAD_PROPENSITY)
    if aj == np.inf:
        return 0.0, BAD_PROPENSITY
    return math.sqrt(aj), OK


@kernel(_nrt=False, inline="always")
def _sync(T: SsaTables, w: np.ndarray, v: np.ndarray) -> None:
    inv = 1.0 / T.scale
    for i in range(T.n_species):
        v[T.x_slots[i]] = w[i] * inv


@kernel(_nrt=False, inline="always")
def _put(T: SsaTables, i: int, val: float, w: np.ndarray, v: np.ndarray) -> None:
    """w[i] = max(val, 0), and its amount into v."""
    wi = val if val > 0.0 else 0.0
    w[i] = wi
    v[T.x_slots[i]] = wi / T.scale


@kernel(_nrt=False, inline="always")
def _em_step(T: SsaTables, W: CleWork, x: np.ndarray, v: np.ndarray, h: float,
             rng: np.ndarray) -> tuple[int, int]:  # fmt: skip
    w, a, xnew = W.w, W.a, W.xnew
    for i in range(T.n_species):
        w[i] = x[i] if x[i] > 0.0 else 0.0
        xnew[i] = x[i]
    fill_propensities(T, w, v, a, W.stack)
    status, bad = check_propensities(a)
    if status != OK:
        return status, bad
    for j in range(T.n_reactions):
        # one variate per reaction and step, used or not: runs that differ only in their
        # state (another boundary option, say) stay on common random numbers
        xi = normal(rng)
        aj = a[j]
        if aj <= 0.0:
            continue
        inc = aj * h + math.sqrt(aj * h) * xi
        for p in range(T.st_ptr[j], T.st_ptr[j + 1]):
            xnew[T.st_idx[p]] += T.st_val[p] * inc
    return OK, -1


@kernel(_nrt=False, inline="always")
def _weak2_step(T: SsaTables, C: CleTables, W: CleWork, x: np.ndarray, v: np.ndarray,
                h: float, rng: np.ndarray) -> tuple[int, int]:  # fmt: skip
    n_s, n_r = T.n_species, T.n_reactions
    w, z, yb, D, Db, xnew = W.w, W.z, W.yb, W.D, W.Db, W.xnew
    a, ab, s, dW, sp, sm, c = W.a, W.ab, W.s, W.dW, W.sp, W.sm, W.c
    up, um, vp, stack = W.up, W.um, W.vp, W.stack
    st_ptr, st_idx, st_val = T.st_ptr, T.st_idx, T.st_val
    dep_ptr, dep_idx = T.dep_ptr, T.dep_idx
    sqh = math.sqrt(h)
    s3h = math.sqrt(3.0 * h)
    # the state Y
    for i in range(n_s):
        w[i] = x[i] if x[i] > 0.0 else 0.0
        D[i] = 0.0
        Db[i] = 0.0
    fill_propensities(T, w, v, a, stack)
    status, bad = check_propensities(a)
    if status != OK:
        return status, bad
    for j in range(n_r):
        s[j] = math.sqrt(a[j])
        for p in range(st_ptr[j], st_ptr[j + 1]):
            D[st_idx[p]] += st_val[p] * a[j]
    # random variables: three-point dW, two-point V
    for j in range(n_r):
        u = uniform(rng)
        dW[j] = s3h if u < 1.0 / 6.0 else (-s3h if u < 1.0 / 3.0 else 0.0)
    q = 0
    while q < C.n_pairs:
        bits = next_u64(rng)
        for b in range(64):
            if q >= C.n_pairs:
                break
            vp[q] = h if (bits >> np.uint64(b)) & np.uint64(1) else -h
            q += 1
    # Ybar = Y + a h + sum_j b^j dW_j, and the drift there
    for i in range(n_s):
        yb[i] = x[i] + D[i] * h
    for j in range(n_r):
        f = s[j] * dW[j]
        if f != 0.0:
            for p in range(st_ptr[j], st_ptr[j + 1]):
                yb[st_idx[p]] += st_val[p] * f
    for i in range(n_s):
        w[i] = yb[i] if yb[i] > 0.0 else 0.0
    fill_propensities(T, w, v, ab, stack)
    status, bad = check_propensities(ab)
    if status != OK:
        return status, bad
    for j in range(n_r):
        for p in range(st_ptr[j], st_ptr[j + 1]):
            Db[st_idx[p]] += st_val[p] * ab[j]
    # R^j_+- = Y + a h +- b^j sqrt(h): only a_j is needed there
    for i in range(n_s):
        z[i] = x[i] + D[i] * h
        w[i] = z[i] if z[i] > 0.0 else 0.0
    _sync(T, w, v)
    for j in range(n_r):
        f = s[j] * sqh
        for p in range(st_ptr[j], st_ptr[j + 1]):
            _put(T, st_idx[p], z[st_idx[p]] + st_val[p] * f, w, v)
        sp[j], status = _single(T, j, w, v, stack)
        if status != OK:
            return status, j
        for p in range(st_ptr[j], st_ptr[j + 1]):
            _put(T, st_idx[p], z[st_idx[p]] - st_val[p] * f, w, v)
        sm[j], status = _single(T, j, w, v, stack)
        if status != OK:
            return status, j
        for p in range(st_ptr[j], st_ptr[j + 1]):
            _put(T, st_idx[p], z[st_idx[p]], w, v)
    # U^r_+- = Y +- b^r sqrt(h): a_j changes only for j in dep[r]
    for i in range(n_s):
        w[i] = x[i] if x[i] > 0.0 else 0.0
    _sync(T, w, v)
    for r in range(n_r):
        f = s[r] * sqh
        if f == 0.0:
            for q in range(dep_ptr[r], dep_ptr[r + 1]):
                up[q] = s[dep_idx[q]]
                um[q] = s[dep_idx[q]]
            continue
        for p in range(st_ptr[r], st_ptr[r + 1]):
            _put(T, st_idx[p], x[st_idx[p]] + st_val[p] * f, w, v)
        for q in range(dep_ptr[r], dep_ptr[r + 1]):
            j = dep_idx[q]
            if j != r:
                up[q], status = _single(T, j, w, v, stack)
                if status != OK:
                    return status, j
        for p in range(st_ptr[r], st_ptr[r + 1]):
            _put(T, st_idx[p], x[st_idx[p]] - st_val[p] * f, w, v)
        for q in range(dep_ptr[r], dep_ptr[r + 1]):
            j = dep_idx[q]
            if j != r:
                um[q], status = _single(T, j, w, v, stack)
                if status != OK:
                    return status, j
        for p in range(st_ptr[r], st_ptr[r + 1]):
            _put(T, st_idx[p], x[st_idx[p]], w, v)
    # assemble: the noise of reaction j enters as nu_j * c_j
    inv_sqh = 1.0 / sqh
    for j in range(n_r):
        c[j] = 0.25 * ((sp[j] + sm[j] + 2.0 * s[j]) * dW[j]
                       + (sp[j] - sm[j]) * (dW[j] * dW[j] - h) * inv_sqh)  # fmt: skip
    for r in range(n_r):
        for q in range(dep_ptr[r], dep_ptr[r + 1]):
            j = dep_idx[q]
            if j == r:
                continue
            V = C.pair_sgn[q] * vp[C.pair_of[q]]
            c[j] += 0.25 * ((up[q] + um[q] - 2.0 * s[j]) * dW[j]
                            + (up[q] - um[q]) * (dW[j] * dW[r] + V) * inv_sqh)  # fmt: skip
    for i in range(n_s):
        xnew[i] = x[i] + 0.5 * (D[i] + Db[i]) * h
    for j in range(n_r):
        cj = c[j]
        if cj != 0.0:
            for p in range(st_ptr[j], st_ptr[j + 1]):
                xnew[st_idx[p]] += st_val[p] * cj
    return OK, -1


@kernel(_nrt=False)
def cle_advance(T: SsaTables, K: vm.Kernel, C: CleTables, W: CleWork, x: np.ndarray,
                v: np.ndarray, t: float, t_stop: float, times: np.ndarray, i_out: int,
                out_r: np.ndarray, rng: np.ndarray, dt: float, scheme: int, boundary: int,
                trig_slots: np.ndarray, trig_prev: np.ndarray,
                counters: np.ndarray) -> tuple[float, int, int, int]:  # fmt: skip
    """Advance one run from ``t`` until ``t_stop`` or until an event trigger changes.

    Each stretch to the next output time or stop is cut into ``n = ceil(length / dt)`` equal
    steps, so steps land exactly on output times.  Records every output time before the time
    it returns at.  Returns (t, i_out, status, index).
    """
    n_t = times.shape[0]
    xnew = W.xnew
    while True:
        if t >= t_stop:
            return t, i_out, OK, -1
        while i_out < n_t and times[i_out] <= t:
            record(T, K, times[i_out], x, v, out_r[i_out], W.stack)
            i_out += 1
        t_next = t_stop
        if i_out < n_t and times[i_out] < t_next:
            t_next = times[i_out]
        span = t_next - t
        n = math.ceil(span / dt * (1.0 - 1e-12))
        if n < 1:
            n = 1
        h = span / n
        if scheme == WEAK2:
            status, bad = _weak2_step(T, C, W, x, v, h, rng)
        else:
            status, bad = _em_step(T, W, x, v, h, rng)
        if status != OK:
            return t, i_out, status, bad
        hit = False
        for i in range(T.n_species):
            xi = xnew[i]
            if not (abs(xi) < np.inf):
                return t, i_out, NON_FINITE_STATE, i
            if xi < 0.0:
                hit = True
                if boundary == REFLECT:
                    xi = -xi
                elif boundary == ABSORB:
                    xi = 0.0
            x[i] = xi
        t = t_next if n == 1 else t + h
        counters[C_STEPS] += 1
        if hit:
            counters[C_HITS] += 1
        if trig_slots.shape[0] and triggers_changed(T, K, t, x, v, trig_slots, trig_prev,
                                                    W.stack):  # fmt: skip
            return t, i_out, OK, -1


@kernel(_nrt=False)
def cle_runs(T: SsaTables, K: vm.Kernel, C: CleTables, W: CleWork, x0: np.ndarray,
             v0: np.ndarray, times: np.ndarray, states: np.ndarray, out: np.ndarray, dt: float,
             scheme: int, boundary: int, counters: np.ndarray,
             info: np.ndarray) -> None:  # fmt: skip
    """All runs of a model without events; run r draws only from ``states[r]`` (a copy).

    On a failure, ``info`` = (status, run, index, time) and the call returns.
    """
    x, v, rng = W.x, W.v, W.rng
    n_t = times.shape[0]
    t_end = times[n_t - 1]
    for r in range(states.shape[0]):
        for i in range(x0.shape[0]):
            x[i] = x0[i]
        for i in range(v0.shape[0]):
            v[i] = v0[i]
        for k in range(4):
            rng[k] = states[r, k]
        t, i_out, status, bad = cle_advance(
            T, K, C, W, x, v, times[0], t_end, times, 0, out[r], rng, dt, scheme, boundary,
            W.no_slots, W.no_prev, counters,
        )  # fmt: skip
        if status != OK:
            info[0] = status
            info[1] = r
            info[2] = bad
            info[3] = t
            return
        while i_out < n_t and times[i_out] <= t:
            record(T, K, times[i_out], x, v, out[r, i_out], W.stack)
            i_out += 1
