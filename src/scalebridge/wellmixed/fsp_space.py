"""The projected state space of the chemical master equation (for :mod:`.fsp`).

A projection is the set ``S`` of molecule-count vectors reachable from the initial state ``x0``
without leaving a box ``lo <= x <= hi`` (per species), through reactions whose propensity is
positive in the state they fire from.  Such a set is closed under every in-box transition, so a
transition out of a state of ``S`` either stays in ``S`` or leaves the box.  A transition that
leaves the box is charged to one *growth direction*: ``d = 2 i`` when it exceeds ``hi[i]``,
``d = 2 i + 1`` when it falls below ``lo[i]`` (the species with the largest excess when several
bounds are crossed at once).

States live in a growing float64 array (the stochastic kernels' count convention) with their
propensities; an open-addressing hash table on the count vectors finds a state's index.  Growing
the box rescans the states already found (their out-of-box targets may now be inside) and
explores from the new ones, breadth first.  Everything that touches states runs compiled.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..codegen import vm
from ..codegen.jit import kernel
from ..codegen.stochastic import SsaTables
from ..errors import OptionError, SolverError
from .propensity import all_propensities, record

# statuses returned by the exploration kernel
DONE, FULL, BAD_PROPENSITY, NEGATIVE = 0, 1, 2, 3
_EMPTY = -1


# --- hashing of count vectors -------------------------------------------------------------------
@kernel
def _hash(x: np.ndarray) -> np.uint64:
    """splitmix64-style mix of the counts (whole numbers held as float64)."""
    h = np.uint64(0x9E3779B97F4A7C15)
    for i in range(x.shape[0]):
        h ^= np.uint64(np.int64(x[i])) + np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h


@kernel
def _slot(X: np.ndarray, H: np.ndarray, x: np.ndarray) -> int:
    """The hash-table slot holding state ``x``, or the empty slot where it would go."""
    mask = H.shape[0] - 1
    k = np.int64(_hash(x) >> np.uint64(1)) & mask  # keep the index in int64 arithmetic
    n_s = x.shape[0]
    while True:
        idx = H[k]
        if idx < 0:
            return k
        same = True
        for i in range(n_s):
            if X[idx, i] != x[i]:
                same = False
                break
        if same:
            return k
        k = (k + 1) & mask


@kernel
def _rehash(X: np.ndarray, n: int, H: np.ndarray) -> None:
    H[:] = _EMPTY
    for s in range(n):
        H[_slot(X, H, X[s])] = s


@kernel
def _apply(T: SsaTables, j: int, x: np.ndarray, y: np.ndarray) -> bool:
    """``y = x + nu_j``; False when reaction ``j`` changes no count."""
    y[:] = x
    moved = False
    for p in range(T.st_ptr[j], T.st_ptr[j + 1]):
        y[T.st_idx[p]] += T.st_val[p]
        moved = True
    return moved


@kernel
def _direction(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> int:
    """-1 inside the box; else the growth direction charged for leaving it."""
    best = 0.0
    d = -1
    for i in range(y.shape[0]):
        if y[i] > hi[i]:
            excess = y[i] - hi[i]
            if excess > best:
                best = excess
                d = 2 * i
        elif y[i] < lo[i]:
            excess = lo[i] - y[i]
            if excess > best:
                best = excess
                d = 2 * i + 1
    return d


@kernel
def _explore(
    T: SsaTables,
    v: np.ndarray,
    stack: np.ndarray,
    X: np.ndarray,
    A: np.ndarray,
    H: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    n: int,
    n_props: int,
    head: int,
) -> tuple[int, int, int, int, int]:
    """Breadth-first closure of the states ``X[:n]`` under in-box transitions.

    States ``head ..`` are (re)expanded in order; ``A[s]`` (propensities) is computed for
    ``s >= n_props``.  Returns ``(status, n, n_props, head, j)``: ``FULL`` when ``X`` has no
    room for a new state (the caller enlarges it and calls again from ``head``; re-expanding a
    state is harmless), ``BAD_PROPENSITY`` (``A[head, j]`` negative or not finite) and
    ``NEGATIVE`` (reaction ``j`` fires in state ``head`` and would make a count negative).
    """
    cap = X.shape[0]
    y = np.empty(X.shape[1])
    while head < n:
        if head >= n_props:
            all_propensities(T, X[head], v, A[head], stack)
            n_props = head + 1
            for j in range(T.n_reactions):
                a = A[head, j]
                if not (a >= 0.0 and a < np.inf):
                    return BAD_PROPENSITY, n, n_props, head, j
        for j in range(T.n_reactions):
            if A[head, j] == 0.0 or not _apply(T, j, X[head], y):
                continue
            for i in range(y.shape[0]):
                if y[i] < 0.0:
                    return NEGATIVE, n, n_props, head, j
            if _direction(y, lo, hi) >= 0:
                continue
            k = _slot(X, H, y)
            if H[k] < 0:
                if n >= cap:
                    return FULL, n, n_props, head, j
                X[n] = y
                H[k] = n
                n += 1
        head += 1
    return DONE, n, n_props, head, -1


@kernel
def _transitions(
    T: SsaTables,
    X: np.ndarray,
    A: np.ndarray,
    H: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    n: int,
    src: np.ndarray,
    dst: np.ndarray,
    rxn: np.ndarray,
    rate: np.ndarray,
) -> int:
    """Every transition out of ``X[:n]`` with positive rate: ``src -> dst`` by reaction ``rxn``.

    ``dst >= 0`` is a state index; ``dst = -1 - d`` leaves the box in growth direction ``d``;
    ``dst = -1 - 2 n_s`` flags an in-box target missing from the set (a broken invariant).
    Returns the number of transitions written.
    """
    y = np.empty(X.shape[1])
    missing = -1 - 2 * X.shape[1]
    k = 0
    for s in range(n):
        for j in range(T.n_reactions):
            a = A[s, j]
            if a == 0.0 or not _apply(T, j, X[s], y):
                continue
            d = _direction(y, lo, hi)
            if d >= 0:
                t = -1 - d
            else:
                t = H[_slot(X, H, y)]
                if t < 0:
                    t = missing
            src[k] = s
            dst[k] = t
            rxn[k] = j
            rate[k] = a
            k += 1
    return k


@kernel
def _drift(T: SsaTables, y: np.ndarray, i: int, sign: float, a: np.ndarray) -> float:
    """``sign x sum_k a_k nu_ki``: the expected rate of change of ``sign x y_i`` (``a`` holds
    the propensities at ``y``)."""
    rate = 0.0
    for k in range(T.n_reactions):
        if a[k] > 0.0:
            for p in range(T.st_ptr[k], T.st_ptr[k + 1]):
                if T.st_idx[p] == i:
                    rate += a[k] * T.st_val[p]
    return sign * rate


@kernel
def _return_times(
    T: SsaTables,
    v: np.ndarray,
    stack: np.ndarray,
    X: np.ndarray,
    src: np.ndarray,
    rxn: np.ndarray,
    direction: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    tau: np.ndarray,
) -> None:
    """Estimated time an excursion that leaves the box by reaction ``rxn[e]`` from state
    ``X[src[e]]`` spends beyond the bound it crossed (direction ``d``, species ``i``).

    With ``u = y_i - hi_i`` (``lo_i - y_i`` for a lower bound) at the target ``y``, its drift
    ``g1 = E[du/dt]`` and the drift's own rate of change ``g2`` (the generator applied twice to
    ``u``): ``u / -g1`` when ``g1 < 0``; the zero of ``u + g1 t + g2 t^2 / 2`` when ``g1 >= 0``
    but ``g2 < 0`` (the excursion still goes outward, but is being turned back -- e.g. a
    protein still rising while its mRNA decays); infinite otherwise.  Only the crossed bound
    counts, so that a direction still cut short does not make every excursion look endless.
    """
    n_s = X.shape[1]
    y = np.empty(n_s)
    z = np.empty(n_s)
    a = np.empty(T.n_reactions)
    b = np.empty(T.n_reactions)
    for e in range(src.shape[0]):
        _apply(T, rxn[e], X[src[e]], y)
        d = direction[e]
        i = d // 2
        sign = 1.0 if d % 2 == 0 else -1.0
        u = y[i] - hi[i] if d % 2 == 0 else lo[i] - y[i]
        all_propensities(T, y, v, a, stack)
        g1 = _drift(T, y, i, sign, a)
        if g1 < 0.0:
            tau[e] = u / -g1
            continue
        g2 = 0.0
        for k in range(T.n_reactions):
            if a[k] > 0.0 and _apply(T, k, y, z):
                all_propensities(T, z, v, b, stack)
                g2 += a[k] * (_drift(T, z, i, sign, b) - g1)
        if g2 < 0.0:
            tau[e] = (g1 + np.sqrt(g1 * g1 - 2.0 * g2 * u)) / -g2
        else:
            tau[e] = np.inf


@kernel
def state_values(
    T: SsaTables,
    K: vm.Kernel,
    t: float,
    X: np.ndarray,
    n: int,
    v: np.ndarray,
    out: np.ndarray,
    stack: np.ndarray,
) -> None:
    """``out[s]`` = the recorded outputs (:func:`~.propensity.record`) in state ``X[s]``."""
    for s in range(n):
        record(T, K, t, X[s], v, out[s], stack)


# --- the Python side ----------------------------------------------------------------------------
class StateSpace:
    """A growing projection of the CME state space (see the module docstring).

    ``X[:n]`` are the states (``X[0]`` is ``x0``), ``A[:n]`` their propensities, ``lo``/``hi``
    the current box.  ``species``/``reactions`` name things in error messages.
    """

    def __init__(
        self,
        T: SsaTables,
        v: np.ndarray,
        x0: np.ndarray,
        max_states: int,
        species: list[str],
        reactions: list[str],
    ):
        self.T = T
        self.v = v.copy()
        self.stack = np.empty(max(T.stack_size, 1))
        self.max_states = max_states
        self.species = species
        self.reactions = reactions
        n_s = T.n_species
        cap = min(1024, max_states)
        self.X = np.zeros((cap, n_s))
        self.A = np.zeros((cap, T.n_reactions))
        self.H = np.full(_table_size(cap), _EMPTY, dtype=np.int64)
        self.X[0] = x0
        self.H[_slot(self.X, self.H, self.X[0])] = 0
        self.n = 1
        self.n_props = 0
        self.lo = x0.astype(np.float64).copy()
        self.hi = x0.astype(np.float64).copy()
        self.grow(self.lo, self.hi)  # propensities of x0 (and the checks on them)

    @property
    def n_species(self) -> int:
        return self.T.n_species

    @property
    def n_directions(self) -> int:
        return 2 * self.T.n_species

    def states(self) -> np.ndarray:
        return self.X[: self.n]

    def propensities(self) -> np.ndarray:
        return self.A[: self.n]

    def describe_box(self, lo: np.ndarray | None = None, hi: np.ndarray | None = None) -> str:
        lo = self.lo if lo is None else lo
        hi = self.hi if hi is None else hi
        parts = [f"{s} in [{lo[i]:.0f}, {hi[i]:.0f}]" for i, s in enumerate(self.species)]
        return ", ".join(parts) if parts else "no species"

    def describe_state(self, x: np.ndarray) -> str:
        return "(" + ", ".join(f"{s}={x[i]:.0f}" for i, s in enumerate(self.species)) + ")"

    def grow(
        self,
        lo: np.ndarray,
        hi: np.ndarray,
        need: Callable[[], tuple[np.ndarray, np.ndarray] | None] | None = None,
    ) -> None:
        """Enlarge the box to ``[lo, hi]`` (containing the old one) and close the set under it.

        Raises :class:`OptionError` when the set would exceed ``max_states`` states (``need()``,
        a box the caller expects the final projection to fill, goes into the message), and
        :class:`SolverError` for a negative or non-finite propensity, or a reaction that would
        make a count negative.
        """
        old_n, old_volume = self.n, _volume(self.lo, self.hi)
        self.lo = np.minimum(self.lo, lo)
        self.hi = np.maximum(self.hi, hi)
        head = 0
        while True:
            status, self.n, self.n_props, head, j = _explore(
                self.T, self.v, self.stack, self.X, self.A, self.H, self.lo, self.hi,
                self.n, self.n_props, head,
            )  # fmt: skip
            if status == DONE:
                return
            if status == FULL:
                if self.X.shape[0] >= self.max_states:
                    self._too_many(old_n, old_volume, need)
                self._enlarge(min(2 * self.X.shape[0], self.max_states))
                continue
            x = self.X[head]
            name = self.reactions[j]
            if status == BAD_PROPENSITY:
                raise SolverError(
                    f"reaction '{name}' has propensity {self.A[head, j]:g} in state "
                    f"{self.describe_state(x)}: propensities must be finite and non-negative",
                    variable=name,
                )
            raise SolverError(
                f"reaction '{name}' can fire in state {self.describe_state(x)} (propensity "
                f"{self.A[head, j]:g}) and would make a count negative: its rate law must "
                "vanish when a reactant runs out",
                variable=name,
            )

    def transitions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(src, dst, rxn, rate)`` of every transition out of the set (see
        :func:`_transitions`)."""
        m = self.n * self.T.n_reactions
        src = np.empty(m, dtype=np.int64)
        dst = np.empty(m, dtype=np.int64)
        rxn = np.empty(m, dtype=np.int64)
        rate = np.empty(m)
        k = _transitions(self.T, self.X, self.A, self.H, self.lo, self.hi, self.n,
                         src, dst, rxn, rate)  # fmt: skip
        if np.any(dst[:k] == -1 - 2 * self.n_species):
            raise AssertionError("FSP state set not closed under in-box transitions")
        return src[:k], dst[:k], rxn[:k], rate[:k]

    def return_times(self, src: np.ndarray, rxn: np.ndarray, direction: np.ndarray) -> np.ndarray:
        """Estimated time outside after each exit ``(src, rxn)`` in growth direction
        ``direction`` (see :func:`_return_times`)."""
        tau = np.empty(src.shape[0])
        _return_times(self.T, self.v, self.stack, self.X, src, rxn, direction, self.lo,
                      self.hi, tau)  # fmt: skip
        return tau

    # ------------------------------------------------------------------------------------------
    def _enlarge(self, cap: int) -> None:
        n_s, n_r = self.X.shape[1], self.A.shape[1]
        X = np.zeros((cap, n_s))
        A = np.zeros((cap, n_r))
        X[: self.n] = self.X[: self.n]
        A[: self.n_props] = self.A[: self.n_props]
        self.X, self.A = X, A
        self.H = np.full(_table_size(cap), _EMPTY, dtype=np.int64)
        _rehash(self.X, self.n, self.H)

    def _too_many(
        self,
        old_n: int,
        old_volume: float,
        need: Callable[[], tuple[np.ndarray, np.ndarray] | None] | None,
    ) -> None:
        # The set fills a larger box about as densely as it filled the old one.
        density = old_n / max(old_volume, 1.0)
        estimate = max(density * _volume(self.lo, self.hi), self.max_states + 1.0)
        text = (
            f"the finite state projection needs more than max_states={self.max_states:,} "
            f"states: the next projection ({self.describe_box()}) would hold about "
            f"{_round_estimate(estimate)} states (the current one has {old_n:,})"
        )
        box = need() if need is not None else None
        if box is not None:
            lo = np.minimum(self.lo, np.floor(np.maximum(box[0], 0.0)))
            hi = np.maximum(self.hi, np.ceil(box[1]))
            total = max(density * _volume(lo, hi), estimate)
            text += (
                f"; the mean-field estimate of the whole projection is about "
                f"{_round_estimate(total)} states ({self.describe_box(lo, hi)})"
            )
        raise OptionError(
            f"{text}; raise the limit with max_states (FSP(max_states=...); --option "
            "max_states=N on the command line) or loosen tol, or use a sampling method (ssa, "
            "tau-leap) for a state space this large"
        )


def _table_size(cap: int) -> int:
    return 1 << max(4, math.ceil(math.log2(2 * cap + 1)))


def _volume(lo: np.ndarray, hi: np.ndarray) -> float:
    return float(np.prod(hi - lo + 1.0)) if lo.size else 1.0


def _round_estimate(x: float) -> str:
    if x < 1e4:
        return f"{x:,.0f}"
    exp = math.floor(math.log10(x))
    return f"{x / 10**exp:.1f}e{exp}"
