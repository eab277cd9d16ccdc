"""Compiled propensities and random numbers shared by the stochastic kernels.

Propensities follow :mod:`scalebridge.codegen.stochastic`: a mass-action reaction has
``a_j = c_j prod_i ff(x_i, nu_ij)`` with the falling factorial ``ff(x, n) = x (x-1) ... (x-n+1)``
(zero when an integer count ``x < n``); a general law is run by the bytecode VM on the value
array ``v`` (whose amount slots must hold ``x / scale``) and scaled to counts per unit time.

Random numbers: xoshiro256+ (Blackman & Vigna), 4 x uint64 of state per stream, seeded from
``numpy.random.SeedSequence.generate_state(4, np.uint64)``; :func:`uniform` returns doubles in
(0, 1) (never 0, so ``-log(u)`` is finite).
"""

from __future__ import annotations

import math

import numpy as np

from ..codegen import vm
from ..codegen.jit import kernel
from ..codegen.stochastic import SsaTables


@kernel(inline="always")
def ma_propensity(T: SsaTables, j: int, c: float, x: np.ndarray) -> float:
    """``c prod_i ff(x_i, nu_ij)`` for mass-action reaction ``j`` with rate constant ``c``."""
    a = c
    for p in range(T.ma_ptr[j], T.ma_ptr[j + 1]):
        xi = x[T.ma_idx[p]]
        n = T.ma_ord[p]
        if n == 1:
            a *= xi
        else:
            for k in range(n):
                f = xi - k
                if f <= 0.0:
                    return 0.0
                a *= f
    return a


@kernel
def propensity(T: SsaTables, j: int, x: np.ndarray, v: np.ndarray, stack: np.ndarray) -> float:
    """a_j(x); for a general law ``v`` must hold the current amounts."""
    if T.is_ma[j]:
        return ma_propensity(T, j, v[T.c_slot[j]], x)
    vm.run(T.code, T.consts, v, T.prop_seg[j, 0], T.prop_seg[j, 1], stack)
    return T.scale * v[T.rate_slot[j]]


@kernel
def set_amounts(T: SsaTables, x: np.ndarray, v: np.ndarray) -> None:
    """Write every count into ``v`` as an amount (x / scale)."""
    inv = 1.0 / T.scale
    for i in range(T.n_species):
        v[T.x_slots[i]] = x[i] * inv


@kernel
def all_propensities(
    T: SsaTables, x: np.ndarray, v: np.ndarray, a: np.ndarray, stack: np.ndarray
) -> float:
    """Every a_j into ``a``; returns their sum.  Syncs ``v`` with ``x`` first."""
    set_amounts(T, x, v)
    total = 0.0
    for j in range(T.n_reactions):
        a[j] = propensity(T, j, x, v, stack)
        total += a[j]
    return total


@kernel
def propensity_matrix(
    T: SsaTables, X: np.ndarray, v: np.ndarray, out: np.ndarray, stack: np.ndarray
) -> None:
    """``out[r, j] = a_j(X[r])`` for many states (rows of ``X``), e.g. for the CME generator."""
    for r in range(X.shape[0]):
        all_propensities(T, X[r], v, out[r], stack)


# --- xoshiro256+ -------------------------------------------------------------------------------
@kernel
def _rotl(x: np.uint64, k: int) -> np.uint64:
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@kernel
def next_u64(s: np.ndarray) -> np.uint64:
    """xoshiro256+ step on the state ``s`` (uint64[4]); returns 64 random bits."""
    result = s[0] + s[3]
    t = s[1] << np.uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


@kernel
def uniform(s: np.ndarray) -> float:
    """A double in (0, 1) from the top 53 bits (never 0 or 1)."""
    return ((next_u64(s) >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@kernel
def exponential(s: np.ndarray) -> float:
    """An Exp(1) variate."""
    return -math.log(uniform(s))


@kernel
def normal(s: np.ndarray) -> float:
    """A standard normal variate (Marsaglia's polar method)."""
    while True:
        u = 2.0 * uniform(s) - 1.0
        w = 2.0 * uniform(s) - 1.0
        r = u * u + w * w
        if 0.0 < r < 1.0:
            return u * math.sqrt(-2.0 * math.log(r) / r)


def stream_states(seed_sequences: list[np.random.SeedSequence]) -> np.ndarray:
    """xoshiro256+ states (runs x 4 uint64), one per seed sequence; never all-zero."""
    out = np.empty((len(seed_sequences), 4), dtype=np.uint64)
    for i, ss in enumerate(seed_sequences):
        st = ss.generate_state(4, np.uint64)
        if not st.any():
            st[0] = np.uint64(1)
        out[i] = st
    return out


@kernel
def record(
    T: SsaTables,
    K: vm.Kernel,
    t: float,
    x: np.ndarray,
    v: np.ndarray,
    row: np.ndarray,
    stack: np.ndarray,
) -> None:
    """One output row at time ``t``: species as counts, other variables by value.

    ``T.rec_kind``/``T.rec_ref`` say what each column is; value columns are computed by the
    compiled model's derived and output segments (``K``), which needs ``v`` in sync with ``x``.
    """
    need_values = False
    for k in range(T.rec_kind.shape[0]):
        if T.rec_kind[k] == 0:
            row[k] = x[T.rec_ref[k]]
        else:
            need_values = True
    if need_values:
        set_amounts(T, x, v)
        v[vm.SLOT_TIME] = t
        vm.run(K.code, K.consts, v, K.seg[vm.SEG_DERIV, 0], K.seg[vm.SEG_DERIV, 1], stack)
        vm.run(K.code, K.consts, v, K.seg[vm.SEG_OUT, 0], K.seg[vm.SEG_OUT, 1], stack)
        for k in range(T.rec_kind.shape[0]):
            if T.rec_kind[k] == 1:
                row[k] = v[T.rec_ref[k]]
            elif T.rec_kind[k] == 2:
                row[k] = v[T.rec_ref[k]] * T.scale
