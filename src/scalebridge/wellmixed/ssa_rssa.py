"""Rejection-based SSA (RSSA; Thanh, Priami & Zunino, J. Chem. Phys. 141, 134116, 2014) with
composition-rejection selection (RSSA-CR; Thanh & Zunino 2014): exact, and nearly free of
propensity updates on large networks.

Every species count ``x_i`` gets a fluctuation interval ``[xl_i, xh_i]`` around it; a mass-action
propensity (non-decreasing in every count, rate constant >= 0) is then bounded on the box:
``a_lo_j = a_j(xl) <= a_j(x) <= a_j(xh) = a_hi_j``.  Candidates are drawn from the dominating
process with rates ``a_hi`` (a Poisson process of rate ``A_hi = sum_j a_hi_j``; the reaction by
composition-rejection over powers of two, as in :mod:`scalebridge.wellmixed.ssa_kernels`) and
accepted with probability ``a_j(x) / a_hi_j`` -- by the squeeze ``u a_hi_j <= a_lo_j`` without
computing ``a_j`` most of the time.  Thinning a Poisson process this way gives exactly the
Markov jump process of the SSA: the waiting time to an accepted candidate is the sum of the
exponential gaps ``-ln(u) / A_hi`` of all candidates before it.  Bounds change only when a count
leaves its interval (the interval is then re-centred and the bounds of the reactions reading
that species recomputed), so most reactions update nothing but the counts.

Intervals (as JumpProcesses' RSSA): ``[max(x - 4, 0), x + 4]`` below 25 molecules, else
``[floor(0.9 x), ceil(1.1 x)]``.  Reactions without such bounds -- general kinetic laws, and mass
action with a negative or NaN constant (so a negative propensity is reported exactly when it
occurs) -- are tracked exactly: ``a_lo = a_hi = a``, recomputed through the dependency graph
after every reaction that changes what they read.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..codegen import vm
from ..codegen.jit import kernel
from ..codegen.stochastic import SsaTables
from .propensity import record, uniform
from .ssa_kernels import (
    BAD_PROPENSITY,
    C_EVENTS,
    C_THINNED,
    C_UPDATES,
    DRIFT_GUARD,
    FULL,
    OK,
    REFRESH,
    TRIGGER,
    CrState,
    _bad,
    _copy,
    _cr_exact_sums,
    _cr_group,
    _cr_member,
    _cr_reset,
    _cr_set,
    _infinite,
    _prop,
    _prop_ma,
    triggers_changed,
)

SMALL = 25.0  # below this many molecules the interval is x -/+ SMALL_HALF_WIDTH
SMALL_HALF_WIDTH = 4.0
FLUCTUATION = 0.1  # relative half-width above SMALL


class RsState(NamedTuple):
    """RSSA state of one run in progress (see :func:`rs_workspace`)."""

    xl: np.ndarray  # float64[n_s + 1]: interval ends (the padded slot holds 1.0)
    xh: np.ndarray  # float64[n_s + 1]
    alo: np.ndarray  # float64[n_r]: lower bounds (upper bounds are the ``a`` array)
    bounded: np.ndarray  # bool[n_r]: mass action with c >= 0 (else tracked exactly)
    sp_ptr: np.ndarray  # int64[n_s + 1]: bounded reactions reading species i (CSR)
    sp_idx: np.ndarray  # int64[len(ma_idx)]
    dx_ptr: np.ndarray  # int64[n_r + 1]: dependency graph restricted to exactly tracked
    dx_idx: np.ndarray  # int64[len(dep_idx)]  reactions


def rs_workspace(T: SsaTables, used: bool = True) -> RsState:
    """RSSA arrays for the network of ``T`` (reset by the kernels); tiny ones when not ``used``
    (other variants pass them unused)."""
    n_s, n_r = (T.n_species, T.n_reactions) if used else (0, 0)
    return RsState(
        xl=np.ones(n_s + 1),
        xh=np.ones(n_s + 1),
        alo=np.zeros(n_r),
        bounded=np.zeros(n_r, dtype=np.bool_),
        sp_ptr=np.zeros(n_s + 1, dtype=np.int64),
        sp_idx=np.zeros(max(T.ma_idx.shape[0] if used else 0, 1), dtype=np.int64),
        dx_ptr=np.zeros(n_r + 1, dtype=np.int64),
        dx_idx=np.zeros(max(T.dep_idx.shape[0] if used else 0, 1), dtype=np.int64),
    )


@kernel(inline="always")
def _box(R: RsState, q: int, xq: float) -> None:
    if xq < SMALL:
        R.xl[q] = max(xq - SMALL_HALF_WIDTH, 0.0)
        R.xh[q] = xq + SMALL_HALF_WIDTH
    else:
        R.xl[q] = math.floor((1.0 - FLUCTUATION) * xq)
        R.xh[q] = math.ceil((1.0 + FLUCTUATION) * xq)


@kernel(_nrt=False)
def _rs_tables(T: SsaTables, c: np.ndarray, R: RsState) -> None:
    """Which reactions are bounded, and the two dependency lists (for the current ``c``)."""
    n_s, n_r = T.n_species, T.n_reactions
    for j in range(n_r):
        R.bounded[j] = T.is_ma[j] and c[j] >= 0.0 and c[j] < np.inf
    # species -> bounded reactions reading it: count, running sums (block ends), then fill each
    # block from its end (j descending, so blocks list reactions in ascending order)
    for q in range(n_s + 1):
        R.sp_ptr[q] = 0
    for j in range(n_r):
        if R.bounded[j]:
            for p in range(T.ma_ptr[j], T.ma_ptr[j + 1]):
                R.sp_ptr[T.ma_idx[p]] += 1
    for q in range(1, n_s):
        R.sp_ptr[q] += R.sp_ptr[q - 1]
    if n_s > 0:
        R.sp_ptr[n_s] = R.sp_ptr[n_s - 1]
    for j in range(n_r - 1, -1, -1):
        if R.bounded[j]:
            for p in range(T.ma_ptr[j], T.ma_ptr[j + 1]):
                q = T.ma_idx[p]
                R.sp_ptr[q] -= 1
                R.sp_idx[R.sp_ptr[q]] = j
    n = 0
    R.dx_ptr[0] = 0
    for j in range(n_r):
        for p in range(T.dep_ptr[j], T.dep_ptr[j + 1]):
            k = T.dep_idx[p]
            if not R.bounded[k]:
                R.dx_idx[n] = k
                n += 1
        R.dx_ptr[j + 1] = n


@kernel(_nrt=False)
def rssa_core(
    T: SsaTables,
    K: vm.Kernel,
    mt: np.ndarray,
    c: np.ndarray,
    fresh: bool,
    x: np.ndarray,
    v: np.ndarray,
    a: np.ndarray,
    fs: np.ndarray,
    s: np.ndarray,
    t: float,
    t_stop: float,
    times: np.ndarray,
    i_out: int,
    out: np.ndarray,
    trig_slots: np.ndarray,
    trig: np.ndarray,
    fall_ok: np.ndarray,
    check_trig: bool,
    sync_v: bool,
    W: CrState,
    R: RsState,
    ev_t: np.ndarray,
    ev_x: np.ndarray,
    n_ev: int,
    stack: np.ndarray,
    counters: np.ndarray,
    info: np.ndarray,
) -> tuple[float, int, int, int]:
    """One stretch of one run by RSSA-CR; the same contract as
    :func:`~scalebridge.wellmixed.ssa_kernels.ssa_core` (``a`` holds the upper bounds, ``R`` the
    intervals and lower bounds)."""
    n_r = T.n_reactions
    n_t = times.shape[0]
    st_ptr, st_idx, st_val = T.st_ptr, T.st_idx, T.st_val
    x_slots = T.x_slots
    inv_scale = 1.0 / T.scale
    rec_events = ev_t.shape[0] > 0
    every = max(REFRESH, n_r)
    if fresh:
        if sync_v:
            for q in range(T.n_species):
                v[x_slots[q]] = x[q] * inv_scale
        for j in range(n_r):
            if T.is_ma[j]:
                c[j] = v[T.c_slot[j]]
        _rs_tables(T, c, R)
        for q in range(T.n_species):
            _box(R, q, x[q])
        _cr_reset(W)
        total = 0.0
        for j in range(n_r):
            if R.bounded[j]:
                lo = _prop_ma(T, mt, c, j, R.xl)
                hi = _prop_ma(T, mt, c, j, R.xh)
            else:
                lo = hi = _prop(T, mt, c, j, x, v, stack)
                if _bad(hi):
                    info[1], info[2], info[3] = j, t, hi
                    return t, i_out, BAD_PROPENSITY, n_ev
            R.alo[j] = lo
            a[j] = 0.0
            _cr_set(W, j, hi, a)
            total += hi
        if total == np.inf:
            j = _infinite(a)
            info[1], info[2], info[3] = j, t, _prop(T, mt, c, j, x, v, stack)
            return t, i_out, BAD_PROPENSITY, n_ev
        big = total
        since = 0
    else:
        total, big, since = fs[0], fs[1], int(fs[2])
    while True:
        if rec_events and n_ev == ev_t.shape[0]:
            fs[0], fs[1], fs[2] = total, big, since
            return t, i_out, FULL, n_ev
        # next candidate of the dominating process
        if total > 0.0:
            t_new = t - math.log(uniform(s)) / total
        else:
            t_new = np.inf
        if t_new >= t_stop:
            t_new = t_stop
        while i_out < n_t and times[i_out] < t_new:
            record(T, K, times[i_out], x, v, out[i_out], stack)
            i_out += 1
        if t_new == t_stop:
            fs[0], fs[1], fs[2] = total, big, since
            return t_stop, i_out, OK, n_ev
        t = t_new
        g = _cr_group(W, uniform(s) * total)
        while g < 0:
            total = _cr_exact_sums(W, a)
            big = total
            since = 0
            if total <= 0.0:
                break
            g = _cr_group(W, uniform(s) * total)
        if g < 0:
            continue
        j = _cr_member(W, g, s, a, counters)
        # accept with probability a_j / a_hi_j (the squeeze a_lo_j first)
        w = uniform(s) * a[j]
        if w > R.alo[j]:
            if w > _prop_ma(T, mt, c, j, x):  # only bounded reactions get here (lo < hi)
                counters[C_THINNED] += 1
                continue
        # fire
        for p in range(st_ptr[j], st_ptr[j + 1]):
            q = st_idx[p]
            xq = x[q] + st_val[p]
            x[q] = xq
            if sync_v:
                v[x_slots[q]] = xq * inv_scale
            if xq < R.xl[q] or xq > R.xh[q]:  # left its interval: re-centre, new bounds
                _box(R, q, xq)
                for pp in range(R.sp_ptr[q], R.sp_ptr[q + 1]):
                    k = R.sp_idx[pp]
                    R.alo[k] = _prop_ma(T, mt, c, k, R.xl)
                    hi = _prop_ma(T, mt, c, k, R.xh)
                    total += hi - a[k]
                    _cr_set(W, k, hi, a)
                counters[C_UPDATES] += R.sp_ptr[q + 1] - R.sp_ptr[q]
        for p in range(R.dx_ptr[j], R.dx_ptr[j + 1]):
            k = R.dx_idx[p]
            ak = _prop(T, mt, c, k, x, v, stack)
            if _bad(ak):
                counters[C_EVENTS] += 1
                info[1], info[2], info[3] = k, t, ak
                return t, i_out, BAD_PROPENSITY, n_ev
            R.alo[k] = ak
            total += ak - a[k]
            _cr_set(W, k, ak, a)
        counters[C_UPDATES] += R.dx_ptr[j + 1] - R.dx_ptr[j]
        counters[C_EVENTS] += 1
        if total == np.inf:
            k = _infinite(a)
            info[1], info[2], info[3] = k, t, _prop(T, mt, c, k, x, v, stack)
            return t, i_out, BAD_PROPENSITY, n_ev
        since += 1
        if total > big:
            big = total
        if since >= every or total < DRIFT_GUARD * big:
            total = _cr_exact_sums(W, a)
            big = total
            since = 0
        if rec_events:
            ev_t[n_ev] = t
            record(T, K, t, x, v, ev_x[n_ev], stack)
            n_ev += 1
        if check_trig and triggers_changed(K, v, t, trig_slots, trig, fall_ok, stack):
            fs[0], fs[1], fs[2] = total, big, since
            return t, i_out, TRIGGER, n_ev


@kernel(_nrt=False)
def rssa_general_runs(
    T: SsaTables,
    K: vm.Kernel,
    mt: np.ndarray,
    c: np.ndarray,
    x0: np.ndarray,
    v0: np.ndarray,
    times: np.ndarray,
    rng: np.ndarray,
    out: np.ndarray,
    sync_v: bool,
    x: np.ndarray,
    v: np.ndarray,
    a: np.ndarray,
    fs: np.ndarray,
    W: CrState,
    R: RsState,
    stack: np.ndarray,
    counters: np.ndarray,
    info: np.ndarray,
    no_slots: np.ndarray,
    no_flags: np.ndarray,
    no_t: np.ndarray,
    no_x: np.ndarray,
) -> int:
    """All runs of a model without events by :func:`rssa_core` (as
    :func:`~scalebridge.wellmixed.ssa_kernels.ssa_general_runs`)."""
    n_t = times.shape[0]
    t_end = times[n_t - 1]
    yes = n_t > 0  # plain bool/int, not literals: one compiled signature of rssa_core
    zero = n_t - n_t
    for r in range(rng.shape[0]):
        _copy(x0, x)
        _copy(v0, v)
        _, i_out, status, _ = rssa_core(
            T, K, mt, c, yes, x, v, a, fs, rng[r], times[0], t_end, times, zero, out[r],
            no_slots, no_flags, no_flags, not yes, sync_v, W, R, no_t, no_x, zero, stack,
            counters, info,
        )  # fmt: skip
        if status != OK:
            info[0] = r
            return status
        while i_out < n_t:
            record(T, K, times[i_out], x, v, out[r, i_out], stack)
            i_out += 1
    return OK
