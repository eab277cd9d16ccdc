"""Compiled kernels of the exact SSA: Gillespie's direct method and composition-rejection.

Both variants draw the waiting time to the next reaction as ``tau = -ln(u) / a0`` with
``a0 = sum_j a_j`` and pick reaction ``j`` with probability ``a_j / a0``; they differ in how
they pick it and how they keep ``a0`` up to date.

* **Direct** (Gillespie 1977, with the dependency graph of Gibson & Bruck 2000): a linear
  search ``min { j : sum_(k <= j) a_k > u a0 }``.  After reaction ``j`` fires, only the
  propensities in ``dep[j]`` are recomputed and the running total ``a0`` is updated by their
  differences.
* **Composition-rejection** (Slepoy, Thompson & Plimpton 2008): propensities are grouped by
  binary exponent -- group ``e`` holds the reactions with ``2^(e-1) <= a_j < 2^e`` -- and each
  group keeps its members in an array and their sum.  A group is chosen by a linear search over
  the (few) non-empty groups, weighted by the group sums; a member is chosen uniformly and
  accepted with probability ``a_j / 2^e`` (>= 1/2), otherwise redrawn.  Updating a propensity is
  O(1): when its exponent changes it moves between groups by swap-remove; a zero propensity
  leaves all groups.  The cost per event therefore does not grow with the number of reactions
  (only with the number of occupied groups, about log2 of the range of propensities, and with
  the size of ``dep[j]``).

Running sums drift by rounding, so they are recomputed exactly every max(:data:`REFRESH`, number
of reactions) events (O(1) per event on average) and whenever the total falls below
:data:`DRIFT_GUARD` times its largest value since the last recomputation: each update adds an
error of at most ~2 eps times that maximum, so the relative error of the total stays below
~1e-8 even in the worst case (random rounding errors make it far smaller); a search that runs
off the end because of rounding recomputes the sums and draws again.  Group sums of
composition-rejection cannot cancel (members differ by less than a factor 2).

Mass-action propensities of total order <= 2 are evaluated without branches as
``c_j x[r1] (x[r2] - d)`` (:func:`ma_table`; the state array ``x`` carries one extra slot
holding 1.0), the others through :func:`~scalebridge.wellmixed.propensity.propensity`.  The
fast path for pure mass-action models (:func:`ssa_ma_direct_runs`) uses the same draws and the
same arithmetic as the general kernel (:func:`ssa_core`), so both give identical runs.

Output is sampled on the time grid: the state just before a jump at time ``t_new`` is written at
every grid time ``< t_new`` not written yet (the path is right-continuous; a grid time equal to a
jump time shows the state after it).  The xoshiro256+ generator of
:mod:`scalebridge.wellmixed.propensity` runs inside the kernels; run ``r`` draws only from its own
stream.

Status codes returned by the kernels: :data:`OK`, :data:`TRIGGER` (an event trigger changed value
after the last reaction: the caller must run the event queue), :data:`BAD_PROPENSITY`
(a reaction got a negative, NaN or infinite propensity), :data:`FULL` (the event record is
full: the caller grows it and resumes).

The kernels never allocate: they are compiled without the runtime's reference counting
(``_nrt=False``, as in :mod:`scalebridge.wellmixed.bdf`), which otherwise costs an atomic
update of every array of the model tables each time they are handed to a helper -- measured
here, that made the general path ten times slower.  Workspace arrays come from the caller.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..codegen import vm
from ..codegen.jit import kernel
from ..codegen.stochastic import SsaTables
from .propensity import ma_propensity, propensity, record, uniform

OK = 0
TRIGGER = 1
BAD_PROPENSITY = 2
FULL = 3

REFRESH = 1024  # exact recomputation of running sums every max(REFRESH, n_r) events
DRIFT_GUARD = 1e-3  # ... and when the total falls below this fraction of its recent maximum

# Binary exponents of doubles (math.frexp: a = m 2^e, 0.5 <= m < 1) lie in [-1073, 1024].
EXP_OFFSET = 1100
N_EXP = 2200

# counters[k]
C_EVENTS = 0  # reactions fired
C_REJECTIONS = 1  # composition-rejection: rejected draws
C_UPDATES = 2  # propensities (or, for RSSA, propensity bounds) recomputed
C_THINNED = 3  # RSSA: candidates rejected against their propensity bound
N_COUNTERS = 4


# --- propensities -----------------------------------------------------------------------------
@kernel(inline="always")
def _copy(src: np.ndarray, dst: np.ndarray) -> None:
    for i in range(src.shape[0]):
        dst[i] = src[i]


@kernel(inline="always")
def _bad(a: float) -> bool:
    """Negative or NaN (an infinite propensity shows in the total: :func:`_infinite`).  One
    comparison: this runs for every propensity update (two cost 30% on ``multistate``)."""
    return not a >= 0.0


@kernel(_nrt=False)
def _infinite(a: np.ndarray) -> int:
    """The reaction that made the total infinite: the first infinite a_j, else the largest."""
    best = 0
    for j in range(a.shape[0]):
        if a[j] == np.inf:
            return j
        if a[j] > a[best]:
            best = j
    return best


@kernel(inline="always")
def _prop_ma(T: SsaTables, mt: np.ndarray, c: np.ndarray, j: int, x: np.ndarray) -> float:
    """a_j(x) for a mass-action reaction (see :func:`_prop`)."""
    r1 = mt[j, 0]
    if r1 >= 0:
        return c[j] * x[r1] * (x[mt[j, 1]] - mt[j, 2])
    return ma_propensity(T, j, c[j], x)


@kernel(inline="always")
def _prop(
    T: SsaTables, mt: np.ndarray, c: np.ndarray, j: int, x: np.ndarray, v: np.ndarray,
    stack: np.ndarray,
) -> float:  # fmt: skip
    """a_j(x).  Mass action of total order <= 2 without branches (see :func:`ma_table`);
    ``x`` has one slot more than there are species, holding 1.0."""
    r1 = mt[j, 0]
    if r1 >= 0:
        return c[j] * x[r1] * (x[mt[j, 1]] - mt[j, 2])
    if T.is_ma[j]:
        return ma_propensity(T, j, c[j], x)
    return propensity(T, j, x, v, stack)


def ma_table(T: SsaTables) -> np.ndarray:
    """``mt[j] = (r1, r2, d)`` with ``a_j = c_j x[r1] (x[r2] - d)`` for mass-action reactions
    of total order <= 2 (``x[n_species]`` = 1.0 stands for a missing factor); ``r1 = -1`` for
    the others (general laws, higher orders).  The same products, in the same order, as
    :func:`~scalebridge.wellmixed.propensity.propensity`."""
    one = T.n_species
    mt = np.full((T.n_reactions, 3), -1, dtype=np.int32)
    for j in range(T.n_reactions):
        if not T.is_ma[j]:
            continue
        lo, hi = int(T.ma_ptr[j]), int(T.ma_ptr[j + 1])
        idx = [int(i) for i in T.ma_idx[lo:hi]]
        order = [int(o) for o in T.ma_ord[lo:hi]]
        if not idx:
            mt[j] = (one, one, 0)
        elif order == [1]:
            mt[j] = (idx[0], one, 0)
        elif order == [2]:
            mt[j] = (idx[0], idx[0], 1)
        elif order == [1, 1]:
            mt[j] = (idx[0], idx[1], 0)
    return mt


def padded(x: np.ndarray) -> np.ndarray:
    """Counts with the extra slot (1.0) the kernels expect."""
    out = np.empty(x.shape[0] + 1)
    out[:-1] = x
    out[-1] = 1.0
    return out


# --- direct method ----------------------------------------------------------------------------
@kernel(inline="always")
def _search(a: np.ndarray, target: float) -> int:
    """Smallest j with a_0 + ... + a_j > target, or -1 when the sum never exceeds it."""
    acc = 0.0
    for j in range(a.shape[0]):
        acc += a[j]
        if acc > target:
            return j
    return -1


@kernel(inline="always")
def _exact_sum(a: np.ndarray) -> float:
    s = 0.0
    for j in range(a.shape[0]):
        s += a[j]
    return s


@kernel(_nrt=False)
def ssa_ma_direct_runs(
    T: SsaTables,
    mt: np.ndarray,
    c: np.ndarray,
    x0: np.ndarray,
    times: np.ndarray,
    rng: np.ndarray,
    out: np.ndarray,
    cols: np.ndarray,
    x: np.ndarray,
    a: np.ndarray,
    counters: np.ndarray,
    info: np.ndarray,
) -> int:
    """Direct method for all runs of a model with only mass-action laws, no events and only
    species outputs (the fast path; the same arithmetic and draws as :func:`ssa_core`).

    ``mt`` is :func:`ma_table`, ``c[j]`` the rate constant of reaction j, ``cols[k]`` the
    species of output column k; run r uses ``rng[r]`` and writes ``out[r]``; ``x0`` and the
    workspace ``x`` are padded (:func:`padded`), ``a`` is workspace.  Returns
    :data:`OK`, or :data:`BAD_PROPENSITY` with ``info = (run, reaction, time, value)``.
    """
    n_r = T.n_reactions
    n_t = times.shape[0]
    n_c = cols.shape[0]
    st_ptr, st_idx, st_val = T.st_ptr, T.st_idx, T.st_val
    dep_ptr, dep_idx = T.dep_ptr, T.dep_idx
    every = max(REFRESH, n_r)
    events = 0
    updates = 0
    for r in range(rng.shape[0]):
        s = rng[r]
        _copy(x0, x)
        t = times[0]
        total = 0.0
        for j in range(n_r):
            a[j] = _prop_ma(T, mt, c, j, x)
            if _bad(a[j]):
                info[0], info[1], info[2], info[3] = r, j, t, a[j]
                counters[C_EVENTS] += events
                return BAD_PROPENSITY
            total += a[j]
        big = total
        since = 0
        i = 0
        if total == np.inf:
            j = _infinite(a)
            info[0], info[1], info[2], info[3] = r, j, t, a[j]
            counters[C_EVENTS] += events
            return BAD_PROPENSITY
        while total > 0.0:
            t += -math.log(uniform(s)) / total
            while i < n_t and times[i] < t:
                for k in range(n_c):
                    out[r, i, k] = x[cols[k]]
                i += 1
            if i == n_t:
                break
            j = _search(a, uniform(s) * total)
            while j < 0:  # rounding: the running total exceeds the exact sum
                total = _exact_sum(a)
                big = total
                since = 0
                if total <= 0.0:
                    break
                j = _search(a, uniform(s) * total)
            if j < 0:
                break  # every propensity is zero: the state stays as it is
            for p in range(st_ptr[j], st_ptr[j + 1]):
                x[st_idx[p]] += st_val[p]
            for p in range(dep_ptr[j], dep_ptr[j + 1]):
                k = dep_idx[p]
                ak = _prop_ma(T, mt, c, k, x)
                if _bad(ak):
                    info[0], info[1], info[2], info[3] = r, k, t, ak
                    counters[C_EVENTS] += events
                    counters[C_UPDATES] += updates
                    return BAD_PROPENSITY
                total += ak - a[k]
                a[k] = ak
            updates += dep_ptr[j + 1] - dep_ptr[j]
            events += 1
            if total == np.inf:
                k = _infinite(a)
                info[0], info[1], info[2], info[3] = r, k, t, a[k]
                counters[C_EVENTS] += events
                counters[C_UPDATES] += updates
                return BAD_PROPENSITY
            since += 1
            if total > big:
                big = total
            if since >= every or total < DRIFT_GUARD * big:
                total = _exact_sum(a)
                big = total
                since = 0
        while i < n_t:
            for k in range(n_c):
                out[r, i, k] = x[cols[k]]
            i += 1
    counters[C_EVENTS] += events
    counters[C_UPDATES] += updates
    return OK


# --- composition-rejection --------------------------------------------------------------------
class CrState(NamedTuple):
    """Composition-rejection groups (one per run in progress; see :func:`cr_workspace`).

    Group slot g: binary exponent ``gexp[g]``, bound ``gbound[g] = 2^gexp[g]``, members
    ``gmem[g, :gsize[g]]`` and their propensity sum ``gsum[g]``.  ``order[:nact[0]]`` lists the
    occupied slots (the search order), ``order[nact[0]:]`` the free ones; ``where[g]`` is the
    position of slot g in ``order``; ``slot_of_exp[e + EXP_OFFSET]`` is the slot of exponent e,
    or -1.  Reaction j is member ``pos[j]`` of slot ``grp[j]`` (-1: zero propensity, in no
    group).  A slot is always taken from ``order[nact[0]]``, so the occupied slots are the
    lowest rows of ``gmem``: it is allocated with min(n_r, N_EXP) rows, but only the rows in use
    are ever touched, so the memory actually used stays small.
    """

    grp: np.ndarray  # int32[n_r]
    pos: np.ndarray  # int32[n_r]
    gexp: np.ndarray  # int64[N_EXP]
    gsize: np.ndarray  # int64[N_EXP]
    order: np.ndarray  # int64[N_EXP]
    where: np.ndarray  # int64[N_EXP]
    slot_of_exp: np.ndarray  # int64[N_EXP]
    nact: np.ndarray  # int64[1]
    gsum: np.ndarray  # float64[N_EXP]
    gbound: np.ndarray  # float64[N_EXP]
    gmem: np.ndarray  # int32[rows, n_r]


def cr_workspace(n_reactions: int) -> CrState:
    """Composition-rejection arrays for a network of ``n_reactions`` (reset by the kernels)."""
    n = max(n_reactions, 1)

    def ints(k: int) -> np.ndarray:
        return np.zeros(k, dtype=np.int64)

    return CrState(
        grp=np.zeros(n, dtype=np.int32),
        pos=np.zeros(n, dtype=np.int32),
        gexp=ints(N_EXP),
        gsize=ints(N_EXP),
        order=ints(N_EXP),
        where=ints(N_EXP),
        slot_of_exp=ints(N_EXP),
        nact=ints(1),
        gsum=np.zeros(N_EXP),
        gbound=np.zeros(N_EXP),
        gmem=np.empty((min(n, N_EXP), n), dtype=np.int32),
    )


@kernel(_nrt=False)
def _cr_reset(W: CrState) -> None:
    for j in range(W.grp.shape[0]):
        W.grp[j] = -1
        W.pos[j] = -1
    for g in range(N_EXP):
        W.order[g] = g
        W.where[g] = g
        W.slot_of_exp[g] = -1
        W.gsize[g] = 0
        W.gexp[g] = 0
        W.gsum[g] = 0.0
        W.gbound[g] = 0.0
    W.nact[0] = 0


@kernel(inline="always")
def _cr_set(W: CrState, j: int, an: float, a: np.ndarray) -> None:
    """Set a_j = ``an`` (>= 0), moving j between groups."""
    g = W.grp[j]
    if g >= 0 and an < W.gbound[g] and an >= 0.5 * W.gbound[g]:
        W.gsum[g] += an - a[j]  # same group
        a[j] = an
        return
    if g >= 0:  # leave group g: its last member takes j's place
        m = W.pos[j]
        last = W.gmem[g, W.gsize[g] - 1]
        W.gmem[g, m] = last
        W.pos[last] = m
        W.gsize[g] -= 1
        W.gsum[g] -= a[j]
        W.grp[j] = -1
        W.pos[j] = -1
        if W.gsize[g] == 0:  # free the slot: swap it to the end of the occupied list
            W.slot_of_exp[W.gexp[g] + EXP_OFFSET] = -1
            W.gsum[g] = 0.0
            n = W.nact[0] - 1
            other = W.order[n]
            w = W.where[g]
            W.order[w] = other
            W.where[other] = w
            W.order[n] = g
            W.where[g] = n
            W.nact[0] = n
    if an > 0.0:
        e = math.frexp(an)[1]
        g = W.slot_of_exp[e + EXP_OFFSET]
        if g < 0:  # occupy a free slot
            g = W.order[W.nact[0]]
            W.nact[0] += 1
            W.slot_of_exp[e + EXP_OFFSET] = g
            W.gexp[g] = e
            W.gbound[g] = math.ldexp(1.0, e)
            W.gsize[g] = 0
            W.gsum[g] = 0.0
        W.gmem[g, W.gsize[g]] = j
        W.pos[j] = W.gsize[g]
        W.gsize[g] += 1
        W.gsum[g] += an
        W.grp[j] = g
    a[j] = an


@kernel(inline="always")
def _cr_exact_sums(W: CrState, a: np.ndarray) -> float:
    """Recompute every group sum from its members; returns the total."""
    total = 0.0
    for q in range(W.nact[0]):
        g = W.order[q]
        s = 0.0
        for m in range(W.gsize[g]):
            s += a[W.gmem[g, m]]
        W.gsum[g] = s
        total += s
    return total


@kernel(inline="always")
def _cr_group(W: CrState, target: float) -> int:
    """The occupied slot where the cumulative group sum first exceeds ``target``, or -1."""
    acc = 0.0
    for q in range(W.nact[0]):
        g = W.order[q]
        acc += W.gsum[g]
        if acc > target:
            return g
    return -1


@kernel(inline="always")
def _cr_member(W: CrState, g: int, s: np.ndarray, a: np.ndarray, counters: np.ndarray) -> int:
    """A member j of slot g with probability a_j / gsum[g], by rejection."""
    n = W.gsize[g]
    bound = W.gbound[g]
    while True:
        # One uniform gives both the member (integer part) and the acceptance test (fraction).
        w = uniform(s) * n
        m = int(w)
        if m >= n:
            m = n - 1
        j = W.gmem[g, m]
        if (w - m) * bound < a[j]:
            return j
        counters[C_REJECTIONS] += 1


# --- general path: one stretch of one run ------------------------------------------------------
@kernel(inline="always")
def triggers_changed(
    K: vm.Kernel, v: np.ndarray, t: float, trig_slots: np.ndarray, trig: np.ndarray,
    fall_ok: np.ndarray, stack: np.ndarray,
) -> bool:  # fmt: skip
    """Evaluate the event triggers at ``t`` (``v`` in sync with the state): True when one
    turned true, or turned false where ``fall_ok`` says the event queue must see it; other
    falling edges only update ``trig``."""
    v[vm.SLOT_TIME] = t
    vm.run_segment(K, v, vm.SEG_DERIV, stack)
    vm.run_segment(K, v, vm.SEG_OUT, stack)
    vm.run_segment(K, v, vm.SEG_TRIGGERS, stack)
    for e in range(trig_slots.shape[0]):
        val = v[trig_slots[e]]
        now = val != 0.0 and val == val
        if now != trig[e]:
            if now or not fall_ok[e]:
                return True
            trig[e] = False
    return False


@kernel(_nrt=False)
def ssa_core(
    T: SsaTables,
    K: vm.Kernel,
    mt: np.ndarray,
    c: np.ndarray,
    cr: bool,
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
    ev_t: np.ndarray,
    ev_x: np.ndarray,
    n_ev: int,
    stack: np.ndarray,
    counters: np.ndarray,
    info: np.ndarray,
) -> tuple[float, int, int, int]:
    """Simulate one run from ``t`` (counts ``x``, values ``v``) until ``t_stop``, or until an
    event trigger changes value (when ``check_trig``), whichever comes first.

    Any law (mass action, or a general law run by the VM on ``v``), rules, value outputs, either
    variant (``cr``: composition-rejection with the groups ``W``).  ``x`` is padded
    (:func:`padded`), ``mt`` is :func:`ma_table`.
    With ``fresh`` the rate constants ``c`` (from ``v``), every propensity ``a`` and the running
    sums (``fs = (total, recent maximum, events since the exact sum)``) are computed first, so
    the caller may have changed ``x`` and ``v``; without it the run resumes from them.

    Grid rows ``out[i]`` are written for ``times[i]`` before the stop (from ``i_out``).  A stop
    at ``t_stop`` fires nothing there: the waiting time drawn past it is discarded (exact, as
    waiting times are memoryless).  ``sync_v`` keeps ``v``'s amounts equal to ``x / scale``
    after every reaction (general laws and triggers read them).  ``trig`` holds the trigger
    values at the start; with ``check_trig`` the triggers (``v[trig_slots] != 0``) are evaluated
    after every reaction and the stretch ends when one turns true, or turns false unless
    ``fall_ok`` says that is a no-op for the event queue (then ``trig`` is updated here).
    When ``ev_t`` is not empty, every reaction appends its time and the output row after it to
    ``ev_t``/``ev_x`` at row ``n_ev``; a full buffer ends the stretch with :data:`FULL` (right
    after a reaction: resuming draws nothing twice).

    Returns ``(t, i_out, status, n_ev)``: the time reached (the stop, or the time of the reaction
    after which the stretch ended), the next grid row, the status, the rows recorded;
    :data:`BAD_PROPENSITY` leaves ``info[1:4] = (reaction, time, value)``.
    """
    n_r = T.n_reactions
    n_t = times.shape[0]
    st_ptr, st_idx, st_val = T.st_ptr, T.st_idx, T.st_val
    dep_ptr, dep_idx = T.dep_ptr, T.dep_idx
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
        if cr:
            _cr_reset(W)
        total = 0.0
        for j in range(n_r):
            aj = _prop(T, mt, c, j, x, v, stack)
            if _bad(aj):
                info[1], info[2], info[3] = j, t, aj
                return t, i_out, BAD_PROPENSITY, n_ev
            if cr:
                a[j] = 0.0
                _cr_set(W, j, aj, a)
            else:
                a[j] = aj
            total += aj
        if total == np.inf:
            j = _infinite(a)
            info[1], info[2], info[3] = j, t, a[j]
            return t, i_out, BAD_PROPENSITY, n_ev
        big = total
        since = 0
    else:
        total, big, since = fs[0], fs[1], int(fs[2])
    while True:
        if rec_events and n_ev == ev_t.shape[0]:
            fs[0], fs[1], fs[2] = total, big, since
            return t, i_out, FULL, n_ev
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
        # select; a search that runs off the end (rounding) recomputes the sums and redraws
        if cr:
            g = _cr_group(W, uniform(s) * total)
            while g < 0:
                total = _cr_exact_sums(W, a)
                big = total
                since = 0
                if total <= 0.0:
                    break
                g = _cr_group(W, uniform(s) * total)
            j = -1 if g < 0 else _cr_member(W, g, s, a, counters)
        else:
            j = _search(a, uniform(s) * total)
            while j < 0:
                total = _exact_sum(a)
                big = total
                since = 0
                if total <= 0.0:
                    break
                j = _search(a, uniform(s) * total)
        if j < 0:
            continue  # every propensity is zero after all: the next draw runs to the stop
        # fire
        for p in range(st_ptr[j], st_ptr[j + 1]):
            q = st_idx[p]
            x[q] += st_val[p]
            if sync_v:
                v[x_slots[q]] = x[q] * inv_scale
        for p in range(dep_ptr[j], dep_ptr[j + 1]):
            k = dep_idx[p]
            ak = _prop(T, mt, c, k, x, v, stack)
            if _bad(ak):
                counters[C_EVENTS] += 1
                info[1], info[2], info[3] = k, t, ak
                return t, i_out, BAD_PROPENSITY, n_ev
            total += ak - a[k]
            if cr:
                _cr_set(W, k, ak, a)
            else:
                a[k] = ak
        counters[C_UPDATES] += dep_ptr[j + 1] - dep_ptr[j]
        counters[C_EVENTS] += 1
        if total == np.inf:
            k = _infinite(a)
            info[1], info[2], info[3] = k, t, a[k]
            return t, i_out, BAD_PROPENSITY, n_ev
        since += 1
        if total > big:
            big = total
        if since >= every or total < DRIFT_GUARD * big:
            total = _cr_exact_sums(W, a) if cr else _exact_sum(a)
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
def ssa_general_runs(
    T: SsaTables,
    K: vm.Kernel,
    mt: np.ndarray,
    c: np.ndarray,
    cr: bool,
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
    stack: np.ndarray,
    counters: np.ndarray,
    info: np.ndarray,
    no_slots: np.ndarray,
    no_flags: np.ndarray,
    no_t: np.ndarray,
    no_x: np.ndarray,
) -> int:
    """All runs of a model without events through :func:`ssa_core` (any law, any output,
    either variant); ``x``, ``v``, ``a``, ``fs`` and ``W`` are workspace (``x0`` and ``x``
    padded), ``no_*`` empty arrays (int64, bool, float64 1-D and 2-D).  Returns :data:`OK`, or
    :data:`BAD_PROPENSITY` with ``info = (run, reaction, time, value)``."""
    n_t = times.shape[0]
    t_end = times[n_t - 1]
    # Arguments typed as plain bool/int (literal constants would make numba compile ssa_core a
    # second time, for a signature with literal types, besides the one Python calls).
    yes = n_t > 0
    zero = n_t - n_t
    for r in range(rng.shape[0]):
        _copy(x0, x)
        _copy(v0, v)
        _, i_out, status, _ = ssa_core(
            T, K, mt, c, cr, yes, x, v, a, fs, rng[r], times[0], t_end, times, zero, out[r],
            no_slots, no_flags, no_flags, not yes, sync_v, W, no_t, no_x, zero, stack, counters,
            info,
        )  # fmt: skip
        if status != OK:
            info[0] = r
            return status
        while i_out < n_t:
            record(T, K, times[i_out], x, v, out[r, i_out], stack)
            i_out += 1
    return OK
