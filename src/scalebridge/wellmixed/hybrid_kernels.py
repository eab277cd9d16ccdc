r"""Compiled kernels of the hybrid partitioned simulator (see :mod:`scalebridge.wellmixed.hybrid`).

State and partition
-------------------
The state is the vector of molecule counts ``x`` (float64).  Every species has a *level*
(:data:`DISCRETE`, :data:`LANGEVIN`, :data:`DETERMINISTIC`) set by its count with hysteresis,
and every reaction a *class*:

* a reaction is continuous only if every species it changes is continuous (so discrete species
  stay whole numbers), and if it fires often on the time scale of those species: with the
  flux through species ``i``, ``phi_i = 1/2 sum_k |nu_ik| a_k``, and its turnover time
  ``tau_i = x_i / phi_i``, the firings per relaxation time ``F_j = a_j min_(i changed by j)
  tau_i`` must reach ``f_up`` (to become continuous) or stay above ``f_down`` (to stay so);
  a reaction whose propensity is zero cannot fire and takes the level of its species;
* its continuous class is the lowest level among the species it changes: Langevin (drift and
  noise, the CLE) or deterministic (drift only, the rate equations); ``mode`` may force all
  continuous reactions to one of them.

Continuous reactions move the state by ``dx = sum_(j cont) nu_j a_j dt`` (+ ``sum_(j Langevin)
nu_j sqrt(a_j) dW_j``); discrete reactions fire one at a time with their exact, time-varying
hazard: ``Lambda(t) = int_(t_k)^t a_D(x(s)) ds`` with ``a_D = sum_(j discrete) a_j`` is
integrated alongside the continuous dynamics, and the next discrete reaction fires when
``Lambda`` reaches an ``Exp(1)`` threshold ``E`` -- reaction ``j`` with probability
``a_j / a_D`` at that instant.  (The partition is a function of the past, so the intensity is
predictable and the construction exact for the hybrid process.)

Continuous integration
----------------------
* Deterministic only (no Langevin reaction): Bogacki--Shampine 3(2) with FSAL and step-size
  control on the continuous species and on ``Lambda`` (scale ``atol + rtol max(|x|, |x_new|)``
  for species, ``rtol max(1, Lambda)`` for the hazard).  The crossing ``Lambda = E`` is located
  within the step on the cubic Hermite interpolant of ``Lambda`` (values and derivatives
  ``a_D`` at both ends; bisection), and the state there on the Hermite interpolant of ``x``.
  A step that would make a continuous count negative is rejected and halved.
* With Langevin reactions: stochastic Heun steps of ``dt = dt_factor x min tau_i`` over the
  continuous species (at most ``dt_max``; steps cut to land on output times): the noise
  ``sum_j nu_j sqrt(a_j(x) dt) xi_j`` of Euler--Maruyama (coefficients at the start of the
  step, Ito), the drift by Heun's predictor-corrector with the same noise -- second order in
  the drift, weak order 1 overall.  The hazard is integrated by the trapezoidal rule, the
  crossing found by solving the quadratic of the linearly interpolated ``a_D``, and the state
  there by linear interpolation of the step (an O(dt) approximation of the path inside the
  step).  Counts pushed below zero are set to zero (``clips``).
* No continuous reaction: exact SSA (the hazard is constant between events).

After every step or event the partition is revised; a species that turns discrete is rounded
to a whole number stochastically (``floor(x) + Bernoulli(x - floor(x))``, unbiased).

Options (``opt`` float64 array, slots ``O_*``); counters (int64, ``C_*``); ``tacc[0, k]`` /
``tacc[1, k]`` accumulate the time entry ``k`` (species, then reactions) spent continuous /
deterministic, summed over runs.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..codegen import vm
from ..codegen.jit import kernel
from ..codegen.stochastic import SsaTables
from .propensity import exponential, normal, record, uniform
from .tauleap_kernels import (
    NEGATIVE_COUNT,
    OK,
    check_propensities,
    fill_propensities,
)

DISCRETE, LANGEVIN, DETERMINISTIC = 0, 1, 2
MODE_AUTO, MODE_ODE, MODE_CLE = 0, 1, 2

# option slots
O_CLE_UP, O_CLE_DOWN, O_ODE_UP, O_ODE_DOWN = 0, 1, 2, 3
O_F_UP, O_F_DOWN, O_MODE, O_RTOL, O_ATOL, O_DT_FACTOR, O_DT_MAX = 4, 5, 6, 7, 8, 9, 10
N_OPTIONS = 11

# counters
C_EVENTS, C_ODE_STEPS, C_CLE_STEPS, C_REJECTED, C_CHANGES, C_CLIPS, C_ROUNDED = range(7)
N_COUNTERS = 7

STEP_TOO_SMALL = 5  # the deterministic integrator's step fell below 1e-12 of the time scale
BISECTIONS = 60  # bisection steps locating a hazard crossing in a deterministic step


class HybridWork(NamedTuple):
    """Work arrays of one thread (the kernels never allocate)."""

    x: np.ndarray  # float64[n_s]  counts of the current run
    v: np.ndarray  # float64[n_slots]
    rng: np.ndarray  # uint64[4]
    a: np.ndarray  # float64[n_r]  propensities at x
    b: np.ndarray  # float64[n_r]  at the end of a trial step
    c: np.ndarray  # float64[n_r]  at a stage
    k1: np.ndarray  # float64[n_s]  drift of the continuous reactions at x
    k2: np.ndarray  # float64[n_s]
    k3: np.ndarray  # float64[n_s]
    k4: np.ndarray  # float64[n_s]  drift at the end of a trial step
    xs: np.ndarray  # float64[n_s]  stage point
    xn: np.ndarray  # float64[n_s]  end of a trial step
    w: np.ndarray  # float64[n_s]  clipped evaluation point
    phi: np.ndarray  # float64[n_s]  flux through each species
    slev: np.ndarray  # int64[n_s]  species levels
    rlev: np.ndarray  # int64[n_r]  reaction classes
    stack: np.ndarray


def new_work(T: SsaTables, n_slots: int, stack_size: int) -> HybridWork:
    n_s, n_r = T.n_species, T.n_reactions
    return HybridWork(
        x=np.zeros(n_s), v=np.zeros(n_slots), rng=np.zeros(4, dtype=np.uint64),
        a=np.zeros(n_r), b=np.zeros(n_r), c=np.zeros(n_r),
        k1=np.zeros(n_s), k2=np.zeros(n_s), k3=np.zeros(n_s), k4=np.zeros(n_s),
        xs=np.zeros(n_s), xn=np.zeros(n_s), w=np.zeros(n_s), phi=np.zeros(n_s),
        slev=np.zeros(n_s, dtype=np.int64), rlev=np.zeros(n_r, dtype=np.int64),
        stack=np.zeros(max(stack_size, 1)),
    )  # fmt: skip


# --- propensities, drift and hazard -----------------------------------------------------------
@kernel(_nrt=False, inline="always")
def _split(T: SsaTables, a: np.ndarray, rlev: np.ndarray, k: np.ndarray) -> float:
    """Drift of the continuous reactions into ``k``; returns the discrete hazard a_D."""
    for i in range(T.n_species):
        k[i] = 0.0
    a_d = 0.0
    for j in range(T.n_reactions):
        aj = a[j]
        if rlev[j] == DISCRETE:
            a_d += aj
        elif aj != 0.0:
            for p in range(T.st_ptr[j], T.st_ptr[j + 1]):
                k[T.st_idx[p]] += T.st_val[p] * aj
    return a_d


@kernel(_nrt=False, inline="always")
def _evaluate(T: SsaTables, W: HybridWork, y: np.ndarray, a: np.ndarray,
              k: np.ndarray) -> tuple[float, int, int]:  # fmt: skip
    """Propensities at ``max(y, 0)`` into ``a``, drift into ``k``; (a_D, status, reaction)."""
    w = W.w
    for i in range(T.n_species):
        w[i] = y[i] if y[i] > 0.0 else 0.0
    fill_propensities(T, w, W.v, a, W.stack)
    status, bad = check_propensities(a)
    if status != OK:
        return 0.0, status, bad
    return _split(T, a, W.rlev, k), OK, -1


# --- the partition ----------------------------------------------------------------------------
@kernel(_nrt=False, inline="always")
def species_level(old: int, xi: float, opt: np.ndarray) -> int:
    """The level of a species at count ``xi`` whose level was ``old`` (-1: none yet)."""
    if old < 0 or old == DISCRETE:
        if xi >= opt[O_ODE_UP]:
            return DETERMINISTIC
        if xi >= opt[O_CLE_UP]:
            return LANGEVIN
        return DISCRETE
    if xi < opt[O_CLE_DOWN]:
        return DISCRETE
    if old == LANGEVIN:
        return DETERMINISTIC if xi >= opt[O_ODE_UP] else LANGEVIN
    return LANGEVIN if xi < opt[O_ODE_DOWN] else DETERMINISTIC


@kernel(_nrt=False, inline="always")
def _partition(T: SsaTables, W: HybridWork, x: np.ndarray, a: np.ndarray, opt: np.ndarray,
               first: bool, rng: np.ndarray,
               counters: np.ndarray) -> tuple[bool, bool]:  # fmt: skip
    """Revise the levels of species and classes of reactions (module docstring).

    ``first``: the partition at the start of a run (no hysteresis, no history).  Returns
    (something changed, some count was rounded).
    """
    slev, rlev, phi = W.slev, W.rlev, W.phi
    changed = False
    rounded = False
    for i in range(T.n_species):
        old = -1 if first else slev[i]
        new = species_level(old, x[i], opt)
        if new != slev[i] or first:
            if new == DISCRETE and old > DISCRETE:
                f = math.floor(x[i])
                x[i] = f + (1.0 if uniform(rng) < x[i] - f else 0.0)
                rounded = True
                counters[C_ROUNDED] += 1
            if new != slev[i] and not first:
                changed = True
            slev[i] = new
    for i in range(T.n_species):
        phi[i] = 0.0
    for j in range(T.n_reactions):
        aj = a[j]
        if aj > 0.0:
            for p in range(T.st_ptr[j], T.st_ptr[j + 1]):
                phi[T.st_idx[p]] += 0.5 * abs(T.st_val[p]) * aj
    mode = int(opt[O_MODE])
    for j in range(T.n_reactions):
        lev = DETERMINISTIC
        tau = np.inf
        for p in range(T.st_ptr[j], T.st_ptr[j + 1]):
            i = T.st_idx[p]
            if slev[i] < lev:
                lev = slev[i]
            if phi[i] > 0.0:
                ti = x[i] / phi[i]
                if ti < tau:
                    tau = ti
        if lev != DISCRETE:
            aj = a[j]
            was = DISCRETE if first else rlev[j]
            # (a reaction that cannot fire now takes the level of its species)
            if aj > 0.0:
                thr = opt[O_F_DOWN] if was != DISCRETE else opt[O_F_UP]
                if aj * tau < thr:
                    lev = DISCRETE
        if lev != DISCRETE:
            if mode == MODE_ODE:
                lev = DETERMINISTIC
            elif mode == MODE_CLE:
                lev = LANGEVIN
        if lev != rlev[j] or first:
            if lev != rlev[j] and not first:
                changed = True
            rlev[j] = lev
    return changed, rounded


@kernel(_nrt=False)
def initial_partition(
    T: SsaTables, W: HybridWork, x: np.ndarray, opt: np.ndarray, counters: np.ndarray
) -> int:
    """The partition at the start of a run at counts ``x`` into ``W.slev`` / ``W.rlev`` (for
    inspection: the regime advice and the tests); returns a status."""
    _, status, _ = _evaluate(T, W, x, W.a, W.k1)
    if status != OK:
        return status
    _partition(T, W, x, W.a, opt, True, W.rng, counters)
    return OK


@kernel(_nrt=False, inline="always")
def _turnover(T: SsaTables, W: HybridWork, x: np.ndarray) -> float:
    """The shortest turnover time x_i / phi_i of a continuous species (inf if none)."""
    tau = np.inf
    for i in range(T.n_species):
        if W.slev[i] != DISCRETE and W.phi[i] > 0.0:
            ti = x[i] / W.phi[i]
            if ti < tau:
                tau = ti
    return tau


@kernel(_nrt=False, inline="always")
def _accumulate(T: SsaTables, W: HybridWork, dt: float, mode: int, tacc: np.ndarray) -> None:
    """Add ``dt`` to the continuous / deterministic time of every species and reaction (a
    species' description is its level, mapped by ``mode`` as the reactions' classes are)."""
    n_s = T.n_species
    for i in range(n_s):
        lev = W.slev[i]
        if lev != DISCRETE:
            tacc[0, i] += dt
            if mode == MODE_ODE or (lev == DETERMINISTIC and mode != MODE_CLE):
                tacc[1, i] += dt
    for j in range(T.n_reactions):
        if W.rlev[j] != DISCRETE:
            tacc[0, n_s + j] += dt
            if W.rlev[j] == DETERMINISTIC:
                tacc[1, n_s + j] += dt


@kernel(_nrt=False, inline="always")
def _fire(T: SsaTables, W: HybridWork, x: np.ndarray, a_d: float, rng: np.ndarray,
          counters: np.ndarray) -> tuple[int, int]:  # fmt: skip
    """Fire one discrete reaction, chosen with probability a_j / a_D from ``W.a``.
    Returns (status, reaction)."""
    a, rlev = W.a, W.rlev
    r = uniform(rng) * a_d
    acc = 0.0
    j = -1
    last = -1
    for k in range(T.n_reactions):
        if rlev[k] == DISCRETE and a[k] > 0.0:
            acc += a[k]
            last = k
            if r < acc:
                j = k
                break
    if j < 0:
        j = last  # round-off at the top end
    if j < 0:
        return OK, -1
    for p in range(T.st_ptr[j], T.st_ptr[j + 1]):
        i = T.st_idx[p]
        x[i] += T.st_val[p]
        if x[i] < 0.0:
            if W.slev[i] == DISCRETE:
                return NEGATIVE_COUNT, j
            x[i] = 0.0
            counters[C_CLIPS] += 1
    counters[C_EVENTS] += 1
    return OK, j


@kernel(_nrt=False, inline="always")
def _hermite(y0: float, d0: float, y1: float, d1: float, h: float, s: float) -> float:
    """Cubic Hermite interpolant on [0, h] at ``s h``, values y0, y1 and derivatives d0, d1."""
    s2 = s * s
    s3 = s2 * s
    return ((2.0 * s3 - 3.0 * s2 + 1.0) * y0 + (s3 - 2.0 * s2 + s) * h * d0
            + (3.0 * s2 - 2.0 * s3) * y1 + (s3 - s2) * h * d1)  # fmt: skip


# --- one run ------------------------------------------------------------------------------------
@kernel(_nrt=False)
def hybrid_run(T: SsaTables, K: vm.Kernel, W: HybridWork, x: np.ndarray, v: np.ndarray,
               times: np.ndarray, out_r: np.ndarray, rng: np.ndarray, opt: np.ndarray,
               counters: np.ndarray, tacc: np.ndarray) -> tuple[float, int, int]:  # fmt: skip
    """Simulate one run from ``times[0]`` to ``times[-1]``, recording ``out_r[i]`` at
    ``times[i]``.  Returns (time reached, status, reaction or species)."""
    n_s = T.n_species
    n_t = times.shape[0]
    a, b, c = W.a, W.b, W.c
    k1, k2, k3, k4 = W.k1, W.k2, W.k3, W.k4
    xs, xn, slev, rlev = W.xs, W.xn, W.slev, W.rlev
    rtol, atol = opt[O_RTOL], opt[O_ATOL]
    mode = int(opt[O_MODE])
    t = times[0]
    t_end = times[n_t - 1]
    h_min = 1e-12 * max(abs(t), abs(t_end), t_end - t)
    a_d, status, bad = _evaluate(T, W, x, a, k1)
    if status != OK:
        return t, status, bad
    _, rounded = _partition(T, W, x, a, opt, True, rng, counters)
    a_d = _split(T, a, rlev, k1)
    E = exponential(rng)
    lam = 0.0
    h = 0.0  # step size proposal of the deterministic integrator (0: choose afresh)
    i_out = 0
    while True:
        while i_out < n_t and times[i_out] <= t:
            record(T, K, times[i_out], x, v, out_r[i_out], W.stack)
            i_out += 1
        if t >= t_end or i_out >= n_t:
            return t, OK, -1
        t_next = times[i_out]
        n_cont = 0
        n_lang = 0
        for j in range(T.n_reactions):
            if rlev[j] != DISCRETE:
                n_cont += 1
                if rlev[j] == LANGEVIN:
                    n_lang += 1
        fired = False
        if n_cont == 0:
            # -- exact SSA: the hazard is constant until the next event
            if a_d <= 0.0 or t + (E - lam) / a_d >= t_next:
                _accumulate(T, W, t_next - t, mode, tacc)
                lam += a_d * (t_next - t)
                t = t_next
                continue
            dt = (E - lam) / a_d
            _accumulate(T, W, dt, mode, tacc)
            t += dt
            fired = True
        elif n_lang > 0:
            # -- stochastic Heun step of the continuous part, trapezoidal hazard
            span = t_next - t
            dt = opt[O_DT_FACTOR] * _turnover(T, W, x)
            if opt[O_DT_MAX] > 0.0 and dt > opt[O_DT_MAX]:
                dt = opt[O_DT_MAX]
            n = math.ceil(span / dt * (1.0 - 1e-12)) if dt < span else 1
            hh = span / n if n > 1 else span
            sq = math.sqrt(hh)
            for i in range(n_s):
                xn[i] = x[i] + hh * k1[i]
            for j in range(T.n_reactions):
                if rlev[j] == LANGEVIN:
                    xi = normal(rng)
                    aj = a[j]
                    if aj > 0.0:
                        inc = math.sqrt(aj) * sq * xi
                        for p in range(T.st_ptr[j], T.st_ptr[j + 1]):
                            xn[T.st_idx[p]] += T.st_val[p] * inc
            for i in range(n_s):
                if xn[i] < 0.0:
                    xn[i] = 0.0
                    counters[C_CLIPS] += 1
            # Heun's corrector for the drift (same noise): second order in the drift
            _, status, bad = _evaluate(T, W, xn, c, k2)
            if status != OK:
                return t, status, bad
            for i in range(n_s):
                xn[i] += 0.5 * hh * (k2[i] - k1[i])
                if xn[i] < 0.0:
                    xn[i] = 0.0
                    counters[C_CLIPS] += 1
            a_d1, status, bad = _evaluate(T, W, xn, b, k4)
            if status != OK:
                return t, status, bad
            lam1 = lam + 0.5 * hh * (a_d + a_d1)
            counters[C_CLE_STEPS] += 1
            if lam1 >= E:
                # a_D(s) = a_d + (a_d1 - a_d) s / hh on [0, hh]: solve int_0^s a_D = E - lam
                need = E - lam
                slope = (a_d1 - a_d) / hh
                disc = a_d * a_d + 2.0 * slope * need
                if disc < 0.0:
                    disc = 0.0
                den = a_d + math.sqrt(disc)
                s = 2.0 * need / den if den > 0.0 else hh
                if s > hh:
                    s = hh
                f = s / hh
                for i in range(n_s):
                    x[i] = x[i] + f * (xn[i] - x[i])
                _accumulate(T, W, s, mode, tacc)
                t = t_next if (n == 1 and f >= 1.0) else t + s
                a_d, status, bad = _evaluate(T, W, x, a, k1)
                if status != OK:
                    return t, status, bad
                fired = True
            else:
                _accumulate(T, W, hh, mode, tacc)
                for i in range(n_s):
                    x[i] = xn[i]
                for j in range(T.n_reactions):
                    a[j] = b[j]
                for i in range(n_s):
                    k1[i] = k4[i]
                a_d = a_d1
                lam = lam1
                t = t_next if n == 1 else t + hh
        else:
            # -- Bogacki-Shampine 3(2) step of the rate equations, hazard as a component
            span = t_next - t
            if h <= 0.0:
                h = 0.05 * _turnover(T, W, x)
            hh = h if h < span else span
            last = hh >= span
            for i in range(n_s):
                xs[i] = x[i] + 0.5 * hh * k1[i]
            l2, status, bad = _evaluate(T, W, xs, c, k2)
            if status != OK:
                return t, status, bad
            for i in range(n_s):
                xs[i] = x[i] + 0.75 * hh * k2[i]
            l3, status, bad = _evaluate(T, W, xs, c, k3)
            if status != OK:
                return t, status, bad
            negative = False
            for i in range(n_s):
                xn[i] = x[i] + hh * (2.0 / 9.0 * k1[i] + 1.0 / 3.0 * k2[i] + 4.0 / 9.0 * k3[i])
                if xn[i] < 0.0:
                    negative = True
            if negative:
                counters[C_REJECTED] += 1
                h = 0.5 * hh
                if h < h_min:
                    return t, STEP_TOO_SMALL, -1
                continue
            lam1 = lam + hh * (2.0 / 9.0 * a_d + 1.0 / 3.0 * l2 + 4.0 / 9.0 * l3)
            a_d1, status, bad = _evaluate(T, W, xn, b, k4)
            if status != OK:
                return t, status, bad
            err2 = 0.0
            n_err = 1
            for i in range(n_s):
                if slev[i] != DISCRETE:
                    e = hh * (-5.0 / 72.0 * k1[i] + 1.0 / 12.0 * k2[i] + 1.0 / 9.0 * k3[i]
                              - 0.125 * k4[i])  # fmt: skip
                    sc = atol + rtol * max(abs(x[i]), abs(xn[i]))
                    err2 += (e / sc) ** 2
                    n_err += 1
            e = hh * (-5.0 / 72.0 * a_d + 1.0 / 12.0 * l2 + 1.0 / 9.0 * l3 - 0.125 * a_d1)
            err2 += (e / (rtol * max(1.0, lam1))) ** 2
            err = math.sqrt(err2 / n_err)
            factor = 5.0 if err == 0.0 else min(5.0, max(0.2, 0.9 * err ** (-1.0 / 3.0)))
            if err > 1.0:
                counters[C_REJECTED] += 1
                h = hh * factor
                if h < h_min:
                    return t, STEP_TOO_SMALL, -1
                continue
            counters[C_ODE_STEPS] += 1
            if not last or factor < 1.0:
                h = hh * factor
            if lam1 >= E:
                # locate Lambda(s) = E on the cubic Hermite interpolant (bisection)
                lo, hi = 0.0, 1.0
                for _ in range(BISECTIONS):
                    mid = 0.5 * (lo + hi)
                    if _hermite(lam, a_d, lam1, a_d1, hh, mid) >= E:
                        hi = mid
                    else:
                        lo = mid
                    if hi - lo < 1e-15:
                        break
                s = hi
                for i in range(n_s):
                    xi = _hermite(x[i], k1[i], xn[i], k4[i], hh, s)
                    if xi < 0.0:
                        xi = 0.0
                        counters[C_CLIPS] += 1
                    x[i] = xi
                _accumulate(T, W, s * hh, mode, tacc)
                t = t_next if (last and s >= 1.0) else t + s * hh
                a_d, status, bad = _evaluate(T, W, x, a, k1)
                if status != OK:
                    return t, status, bad
                fired = True
            else:
                _accumulate(T, W, hh, mode, tacc)
                for i in range(n_s):
                    x[i] = xn[i]
                for j in range(T.n_reactions):
                    a[j] = b[j]
                for i in range(n_s):
                    k1[i] = k4[i]
                a_d = a_d1
                lam = lam1
                t = t_next if last else t + hh
        if fired:
            status, bad = _fire(T, W, x, a_d, rng, counters)
            if status != OK:
                return t, status, bad
            E = exponential(rng)
            lam = 0.0
            a_d, status, bad = _evaluate(T, W, x, a, k1)
            if status != OK:
                return t, status, bad
        changed, rounded = _partition(T, W, x, a, opt, False, rng, counters)
        if rounded:
            a_d, status, bad = _evaluate(T, W, x, a, k1)
            if status != OK:
                return t, status, bad
        elif changed:
            a_d = _split(T, a, rlev, k1)
        if changed:
            counters[C_CHANGES] += 1


@kernel(_nrt=False)
def hybrid_runs(T: SsaTables, K: vm.Kernel, W: HybridWork, x0: np.ndarray, v0: np.ndarray,
                times: np.ndarray, states: np.ndarray, out: np.ndarray, opt: np.ndarray,
                counters: np.ndarray, tacc: np.ndarray, info: np.ndarray) -> None:  # fmt: skip
    """All runs; run r draws only from ``states[r]`` (a copy).  On a failure ``info`` =
    (status, run, reaction or species, time) and the call returns."""
    x, v, rng = W.x, W.v, W.rng
    for r in range(states.shape[0]):
        for i in range(x0.shape[0]):
            x[i] = x0[i]
        for i in range(v0.shape[0]):
            v[i] = v0[i]
        for k in range(4):
            rng[k] = states[r, k]
        t, status, bad = hybrid_run(T, K, W, x, v, times, out[r], rng, opt, counters, tacc)
        if status != OK:
            info[0] = status
            info[1] = r
            info[2] = bad
            info[3] = t
            return
