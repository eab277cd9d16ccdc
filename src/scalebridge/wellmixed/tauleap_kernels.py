r"""Compiled kernels of adaptive tau-leaping (Cao, Gillespie & Petzold 2006), a Poisson sampler,
and the event-trigger check shared with the CLE kernels.

Poisson variates
----------------
:func:`poisson` draws from the run's own xoshiro256+ stream: by inversion (sequential search
from 0, one uniform) for means below 10, and by Hoermann's transformed rejection with squeeze
(PTRS; W. Hoermann, "The transformed rejection method for generating Poisson random
variables", Insurance: Mathematics and Economics 12 (1993) 39-45) for larger means, whose cost
does not grow with the mean.

Step-size selection (CGP)
-------------------------
Y. Cao, D. T. Gillespie, L. R. Petzold, "Efficient step size selection for the tau-leaping
simulation method", J. Chem. Phys. 124, 044109 (2006).  With ``nu_ij`` the net change of
species i by reaction j and ``J_ncr`` the non-critical reactions,

    mu_i = sum_(j in J_ncr) nu_ij a_j,     sigma2_i = sum_(j in J_ncr) nu_ij^2 a_j,
    tau' = min_(i in I_rs) { max(eps x_i / g_i, 1) / |mu_i|,  max(eps x_i / g_i, 1)^2 / sigma2_i }

over the reactant species ``I_rs``.  ``g_i`` bounds the relative change of the propensities
through species i: with ``n`` the highest order of a reaction in which i is a reactant and
``m`` the largest number of i molecules such a reaction consumes,

    g_i = (n / m) (m + sum_(k=1)^(m-1) k / (x_i - k)),

which is CGP's table: ``n`` for ``m = 1``; ``2 + 1/(x-1)`` for ``2S -> ...``; ``(3/2)(2 + 1/(x-1))``
for ``2S + T -> ...``; ``3 + 1/(x-1) + 2/(x-2)`` for ``3S -> ...`` -- and its natural extension
(the logarithmic derivative of the falling factorial) to higher orders.  When ``x_i <= m - 1`` the
bound ``max(eps x_i / g_i, 1)`` is 1.  For a kinetic law that is not mass action the order is
the sum of its reactants' stoichiometries, and species the law reads without consuming them
count as first-order participants (a heuristic: CGP's bound is derived for mass action).

A reaction is *critical* when it can fire (``a_j > 0``) and fewer than ``n_c`` firings would
exhaust one of its consumed species: ``L_j = min_(i: nu_ij < 0) floor(x_i / |nu_ij|) < n_c``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..codegen import vm
from ..codegen.jit import kernel
from ..codegen.stochastic import SsaTables
from .propensity import exponential, record, set_amounts, uniform

# status codes returned by the advance kernels (0 = fine)
OK = 0
NEGATIVE_PROPENSITY = 1
BAD_PROPENSITY = 2  # NaN or infinite
NEGATIVE_COUNT = 3  # an SSA step drove a count below zero (a law positive at zero reactant)
NON_FINITE_STATE = 4  # CLE: a count became NaN or infinite

# counters (int64 array) of the tau-leap kernels
C_LEAPS, C_SSA, C_REJECT, C_FIRINGS = 0, 1, 2, 3
N_COUNTERS = 4

INVERSION_LIMIT = 10.0  # Poisson means below this are drawn by inversion
MAX_HALVINGS = 64  # leap rejections in a row before an SSA burst is forced


class LeapTables(NamedTuple):
    """Per-species data of the CGP step-size rule (module docstring)."""

    hor: np.ndarray  # int64[n_s]: highest order of a reaction consuming/reading species i (0: none)
    hmul: np.ndarray  # int64[n_s]: largest multiplicity of i among reactions of that order


class LeapWork(NamedTuple):
    """Work arrays of one thread (the hot kernels never allocate; see below)."""

    x: np.ndarray  # float64[n_s]  counts of the current run
    v: np.ndarray  # float64[n_slots]  its value array
    rng: np.ndarray  # uint64[4]  its generator state
    a: np.ndarray  # float64[n_r]
    crit: np.ndarray  # bool[n_r]
    mu: np.ndarray  # float64[n_s]
    sig: np.ndarray  # float64[n_s]
    x_old: np.ndarray  # float64[n_s]
    stack: np.ndarray  # float64[:]  VM stack
    no_slots: np.ndarray  # int64[0]  (no event triggers)
    no_prev: np.ndarray  # bool[0]


def new_work(n_species: int, n_reactions: int, n_slots: int, stack_size: int) -> LeapWork:
    return LeapWork(
        x=np.zeros(n_species),
        v=np.zeros(n_slots),
        rng=np.zeros(4, dtype=np.uint64),
        a=np.zeros(n_reactions),
        crit=np.zeros(n_reactions, dtype=np.bool_),
        mu=np.zeros(n_species),
        sig=np.zeros(n_species),
        x_old=np.zeros(n_species),
        stack=np.zeros(max(stack_size, 1)),
        no_slots=np.zeros(0, dtype=np.int64),
        no_prev=np.zeros(0, dtype=np.bool_),
    )


# Performance notes (measured on the two-stage model):
# * The hot kernels never allocate, so they run without the runtime's reference counting
#   (``_nrt=False``, as in wellmixed/bdf.py): with it, the atomic count updates on the arrays of
#   the tables handed to every propensity call cost ~350 ns per call, 50x the work.
# * A compiled function loaded from numba's on-disk cache is linked into its callers as machine
#   code, so LLVM cannot inline it; a call then passes the tables flattened (hundreds of
#   machine words) and costs ~100 ns.  Helpers that take the tables and run in the inner loops
#   are therefore inlined by numba itself (``inline="always"``), which does not depend on the
#   cache; :func:`fill_propensities` and :func:`propensity_of` repeat, inlined, what
#   ``propensity.all_propensities`` / ``propensity.propensity`` compute (a test checks that
#   they agree).


# --- propensities (inlined copies of propensity.py; see the notes above) ----------------------
@kernel(_nrt=False, inline="always")
def propensity_of(T: SsaTables, j: int, x: np.ndarray, v: np.ndarray,
                  stack: np.ndarray) -> float:  # fmt: skip
    """a_j(x), as ``propensity.propensity``; a general law needs the amounts in ``v``."""
    if T.is_ma[j]:
        aj = v[T.c_slot[j]]
        for p in range(T.ma_ptr[j], T.ma_ptr[j + 1]):
            xi = x[T.ma_idx[p]]
            n = T.ma_ord[p]
            if n == 1:
                aj *= xi
            else:
                for k in range(n):
                    f = xi - k
                    if f <= 0.0:
                        return 0.0
                    aj *= f
        return aj
    vm.run(T.code, T.consts, v, T.prop_seg[j, 0], T.prop_seg[j, 1], stack)
    return T.scale * v[T.rate_slot[j]]


@kernel(_nrt=False, inline="always")
def fill_propensities(T: SsaTables, x: np.ndarray, v: np.ndarray, a: np.ndarray,
                      stack: np.ndarray) -> float:  # fmt: skip
    """Every a_j into ``a`` (amounts synced into ``v`` first); returns their sum."""
    inv = 1.0 / T.scale
    for i in range(T.n_species):
        v[T.x_slots[i]] = x[i] * inv
    total = 0.0
    for j in range(T.n_reactions):
        aj = propensity_of(T, j, x, v, stack)
        a[j] = aj
        total += aj
    return total


# --- Poisson variates -----------------------------------------------------------------------
@kernel(_nrt=False)
def poisson(s: np.ndarray, lam: float) -> float:
    """A Poisson(lam) variate (as a float) from the xoshiro256+ state ``s``."""
    if lam <= 0.0:
        return 0.0
    if lam < INVERSION_LIMIT:
        u = uniform(s)
        p = math.exp(-lam)
        F = p
        n = 0
        while u > F and n < 1000:  # n < 1000: round-off guard (F may stop short of 1)
            n += 1
            p *= lam / n
            F += p
        return float(n)
    slam = math.sqrt(lam)
    loglam = math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
    v_r = 0.9277 - 3.6224 / (b - 2.0)
    while True:
        U = uniform(s) - 0.5
        V = uniform(s)
        us = 0.5 - abs(U)
        k = float(math.floor((2.0 * a / us + b) * U + lam + 0.43))
        if us >= 0.07 and V <= v_r:
            return k
        if k < 0.0 or (us < 0.013 and V > us):
            continue
        log_target = -lam + k * loglam - math.lgamma(k + 1.0)
        if math.log(V * inv_alpha / (a / (us * us) + b)) <= log_target:
            return k


@kernel
def poisson_samples(s: np.ndarray, lam: float, n: int) -> np.ndarray:
    """``n`` Poisson(lam) variates (for tests of :func:`poisson`)."""
    out = np.empty(n)
    for i in range(n):
        out[i] = poisson(s, lam)
    return out


# --- CGP step size --------------------------------------------------------------------------
@kernel(_nrt=False, inline="always")
def g_factor(n: int, m: int, x: float) -> float:
    """CGP's g for a species of highest reaction order ``n`` consumed ``m`` at a time, at ``x``."""
    if m <= 1:
        return float(n)
    acc = float(m)
    for k in range(1, m):
        d = x - k
        if d <= 0.0:
            return np.inf
        acc += k / d
    return n / m * acc


@kernel(_nrt=False, inline="always")
def leap_bound(T: SsaTables, L: LeapTables, x: np.ndarray, a: np.ndarray, eps: float,
               n_crit: float, crit: np.ndarray, mu: np.ndarray,
               sig: np.ndarray) -> tuple[float, float]:  # fmt: skip
    """Mark critical reactions in ``crit``; return (tau', sum of critical propensities)."""
    for i in range(T.n_species):
        mu[i] = 0.0
        sig[i] = 0.0
    a0c = 0.0
    for j in range(T.n_reactions):
        crit[j] = False
        aj = a[j]
        if aj <= 0.0:
            continue
        Lj = np.inf
        for p in range(T.st_ptr[j], T.st_ptr[j + 1]):
            nu = T.st_val[p]
            if nu < 0.0:
                f = float(math.floor(x[T.st_idx[p]] / -nu))
                if f < Lj:
                    Lj = f
        if Lj < n_crit:
            crit[j] = True
            a0c += aj
            continue
        for p in range(T.st_ptr[j], T.st_ptr[j + 1]):
            i = T.st_idx[p]
            nu = T.st_val[p]
            mu[i] += nu * aj
            sig[i] += nu * nu * aj
    tau = np.inf
    for i in range(T.n_species):
        if L.hor[i] == 0:
            continue
        g = g_factor(L.hor[i], L.hmul[i], x[i])
        bound = max(eps * x[i] / g, 1.0)
        if mu[i] != 0.0:
            tau = min(tau, bound / abs(mu[i]))
        if sig[i] > 0.0:
            tau = min(tau, bound * bound / sig[i])
    return tau, a0c


# --- shared helpers -------------------------------------------------------------------------
@kernel(_nrt=False)
def check_propensities(a: np.ndarray) -> tuple[int, int]:
    """(status, reaction) of the first negative or non-finite propensity, else (OK, -1)."""
    for j in range(a.shape[0]):
        aj = a[j]
        if not (aj >= 0.0):
            return (NEGATIVE_PROPENSITY if aj < 0.0 else BAD_PROPENSITY), j
        if aj == np.inf:
            return BAD_PROPENSITY, j
    return OK, -1


@kernel(_nrt=False)
def triggers_changed(T: SsaTables, K: vm.Kernel, t: float, x: np.ndarray, v: np.ndarray,
                     trig_slots: np.ndarray, trig_prev: np.ndarray,
                     stack: np.ndarray) -> bool:  # fmt: skip
    """Whether an event trigger's truth value at (t, x) differs from ``trig_prev``."""
    if trig_slots.shape[0] == 0:
        return False
    set_amounts(T, x, v)
    v[vm.SLOT_TIME] = t
    vm.run(K.code, K.consts, v, K.seg[vm.SEG_DERIV, 0], K.seg[vm.SEG_DERIV, 1], stack)
    vm.run(K.code, K.consts, v, K.seg[vm.SEG_TRIGGERS, 0], K.seg[vm.SEG_TRIGGERS, 1], stack)
    for e in range(trig_slots.shape[0]):
        val = v[trig_slots[e]]
        now = val != 0.0 and val == val
        if now != trig_prev[e]:
            return True
    return False


@kernel(_nrt=False)
def _copy(src: np.ndarray, dst: np.ndarray) -> None:
    for i in range(src.shape[0]):
        dst[i] = src[i]


# --- SSA steps (the fallback where leaping does not pay) ------------------------------------
@kernel(_nrt=False, inline="always")
def _ssa_burst(T: SsaTables, K: vm.Kernel, x: np.ndarray, v: np.ndarray, t: float,
               t_next: float, a: np.ndarray, a0: float, rng: np.ndarray, n_steps: int,
               trig_slots: np.ndarray, trig_prev: np.ndarray, stack: np.ndarray,
               counters: np.ndarray) -> tuple[float, bool, int, int]:  # fmt: skip
    """Up to ``n_steps`` exact direct-method steps, never past ``t_next`` (a step that would
    pass it is discarded and the clock set to ``t_next``: exact, the waiting time being
    memoryless).  Returns (t, trigger changed, status, reaction)."""
    inv = 1.0 / T.scale
    for _ in range(n_steps):
        if a0 <= 0.0:
            return t_next, False, OK, -1
        t_new = t + exponential(rng) / a0
        if t_new >= t_next:
            return t_next, False, OK, -1
        t = t_new
        r = uniform(rng) * a0
        j = T.n_reactions - 1
        acc = 0.0
        for k in range(T.n_reactions):
            acc += a[k]
            if r < acc:
                j = k
                break
        while a[j] <= 0.0:  # round-off at the top end: take the last reaction that can fire
            j -= 1
        for p in range(T.st_ptr[j], T.st_ptr[j + 1]):
            i = T.st_idx[p]
            x[i] += T.st_val[p]
            if x[i] < 0.0:
                return t, False, NEGATIVE_COUNT, j
            v[T.x_slots[i]] = x[i] * inv
        for q in range(T.dep_ptr[j], T.dep_ptr[j + 1]):
            k = T.dep_idx[q]
            a[k] = propensity_of(T, k, x, v, stack)
        status, bad = check_propensities(a)
        if status != OK:
            return t, False, status, bad
        a0 = 0.0
        for k in range(T.n_reactions):
            a0 += a[k]
        counters[C_SSA] += 1
        counters[C_FIRINGS] += 1
        if trig_slots.shape[0] and triggers_changed(T, K, t, x, v, trig_slots, trig_prev, stack):
            return t, True, OK, -1
    return t, False, OK, -1


# --- one run from t to t_stop -----------------------------------------------------------------
@kernel(_nrt=False)
def leap_advance(T: SsaTables, K: vm.Kernel, L: LeapTables, W: LeapWork, x: np.ndarray,
                 v: np.ndarray,
                 t: float, t_stop: float, times: np.ndarray, i_out: int, out_r: np.ndarray,
                 rng: np.ndarray, eps: float, n_crit: float, ssa_threshold: float,
                 n_ssa: int, trig_slots: np.ndarray, trig_prev: np.ndarray,
                 counters: np.ndarray) -> tuple[float, int, int, int]:  # fmt: skip
    """Advance one run from ``t`` until ``t_stop`` or until an event trigger changes.

    Records every output time before the time it returns at (output times at or after it are
    the caller's, after it has handled events there).  Leaps land exactly on output times and
    on ``t_stop``.  Returns (t, i_out, status, reaction).
    """
    n_s = T.n_species
    n_r = T.n_reactions
    n_t = times.shape[0]
    a, crit, mu, sig, x_old, stack = W.a, W.crit, W.mu, W.sig, W.x_old, W.stack
    while True:
        if t >= t_stop:
            return t, i_out, OK, -1
        while i_out < n_t and times[i_out] <= t:
            record(T, K, times[i_out], x, v, out_r[i_out], stack)
            i_out += 1
        t_next = t_stop
        if i_out < n_t and times[i_out] < t_next:
            t_next = times[i_out]
        a0 = fill_propensities(T, x, v, a, stack)
        status, bad = check_propensities(a)
        if status != OK:
            return t, i_out, status, bad
        if a0 <= 0.0:
            t = t_next  # nothing can fire before the next stop
            continue
        tau1, a0c = leap_bound(T, L, x, a, eps, n_crit, crit, mu, sig)
        halvings = 0
        while True:
            if tau1 < ssa_threshold / a0 or halvings >= MAX_HALVINGS:
                t, changed, status, bad = _ssa_burst(T, K, x, v, t, t_next, a, a0, rng, n_ssa,
                                                     trig_slots, trig_prev, stack,
                                                     counters)  # fmt: skip
                if status != OK:
                    return t, i_out, status, bad
                if changed:
                    return t, i_out, OK, -1
                break
            tau2 = exponential(rng) / a0c if a0c > 0.0 else np.inf
            tau = tau1
            fire_critical = False
            if tau2 < tau:
                tau = tau2
                fire_critical = True
            land = False
            if t_next - t <= tau:
                tau = t_next - t
                fire_critical = False
                land = True
            for i in range(n_s):
                x_old[i] = x[i]
            fired = 0.0
            for j in range(n_r):
                if crit[j] or a[j] <= 0.0:
                    continue
                k = poisson(rng, a[j] * tau)
                if k > 0.0:
                    for p in range(T.st_ptr[j], T.st_ptr[j + 1]):
                        x[T.st_idx[p]] += k * T.st_val[p]
                    fired += k
            if fire_critical:
                r = uniform(rng) * a0c
                jc = -1
                acc = 0.0
                for j in range(n_r):
                    if crit[j]:
                        jc = j
                        acc += a[j]
                        if r < acc:
                            break
                for p in range(T.st_ptr[jc], T.st_ptr[jc + 1]):
                    x[T.st_idx[p]] += T.st_val[p]
                fired += 1.0
            negative = False
            for i in range(n_s):
                if x[i] < 0.0:
                    negative = True
                    break
            if negative:
                for i in range(n_s):
                    x[i] = x_old[i]
                tau1 *= 0.5
                halvings += 1
                counters[C_REJECT] += 1
                continue
            t = t_next if land else t + tau
            counters[C_LEAPS] += 1
            counters[C_FIRINGS] += int(fired)
            break
        if trig_slots.shape[0] and triggers_changed(T, K, t, x, v, trig_slots, trig_prev, stack):
            return t, i_out, OK, -1


@kernel(_nrt=False)
def leap_runs(T: SsaTables, K: vm.Kernel, L: LeapTables, W: LeapWork, x0: np.ndarray,
              v0: np.ndarray,
              times: np.ndarray, states: np.ndarray, out: np.ndarray, eps: float,
              n_crit: float, ssa_threshold: float, n_ssa: int, counters: np.ndarray,
              info: np.ndarray) -> None:  # fmt: skip
    """All runs of a model without events; run r draws only from ``states[r]`` (a copy, in
    ``W.rng``: the caller's states are not advanced).

    On a failure, ``info`` = (status, run, reaction, time) and the call returns.
    """
    x, v, rng, stack = W.x, W.v, W.rng, W.stack
    n_t = times.shape[0]
    t_end = times[n_t - 1]
    for r in range(states.shape[0]):
        _copy(x0, x)
        _copy(v0, v)
        for k in range(4):
            rng[k] = states[r, k]
        t, i_out, status, bad = leap_advance(
            T, K, L, W, x, v, times[0], t_end, times, 0, out[r], rng, eps, n_crit,
            ssa_threshold, n_ssa, W.no_slots, W.no_prev, counters,
        )  # fmt: skip
        if status != OK:
            info[0] = status
            info[1] = r
            info[2] = bad
            info[3] = t
            return
        while i_out < n_t and times[i_out] <= t:
            record(T, K, times[i_out], x, v, out[r, i_out], stack)
            i_out += 1
