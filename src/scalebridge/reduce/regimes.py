r"""Regime advice: which description fits each species and reaction -- CME/SSA, CLE or ODE.

Given a network, its initial state and a time window ``[t0, t_end]``, :func:`advise_regimes`
runs a short pilot -- the rate equations (ODE) and, by default, a few tau-leaping runs (whose
cost does not grow with the copy numbers) -- and classifies every pilot state with the rules the
hybrid simulator uses for its partition (:mod:`scalebridge.wellmixed.hybrid`; the classification
is done by the same compiled function, so the advice and the hybrid's partition cannot drift
apart).  Counts are molecule counts (DESIGN.md: ``counts_per_amount x`` amount).

Species (copy numbers ``x``; Poisson-scale relative fluctuation ``1/sqrt(x)``)
------------------------------------------------------------------------------
* **SSA** (CME) below ``discrete_below`` copies (default 100: a relative fluctuation above
  10 %; a Gaussian description -- CLE, LNA -- then misses the discrete distribution by more than
  about 1 % in total variation: for birth-death-like species the distance falls as
  ``~0.1 / sqrt(x)``, e.g. 0.043 at 3 copies, 0.018 at 18, 0.002 at 1200 against the exact
  CME of a dimerisation-decay network, ``tests/unit/test_regimes.py``);
* **CLE** from ``discrete_below`` to ``ode_above`` (default 10^4: Gaussian fluctuations of
  1--10 %);
* **ODE** from ``ode_above`` (fluctuations below 1 %, the rate equations' mean within a
  fraction of that).

Reactions
---------
A reaction can be continuous only if every species it changes is (else a discrete species
would take fractional values), and only if it fires often on their time scale: with the flux
through species ``i``, ``phi_i = 1/2 sum_k |nu_ik| a_k``, its turnover (relaxation) time
``tau_i = x_i / phi_i`` and ``F_j = a_j min_(i changed by j) tau_i`` the firings of ``j`` per
relaxation time, a reaction with ``F_j < min_firings`` (default 10) stays discrete.  Its
continuous description is the lowest among the species it changes (CLE or ODE).

Each species and reaction gets the time fraction of the window it spends in each description
(pooled over the pilot runs, trapezoidal weights), and the advice is the description that
holds for most of the window; a second description holding at least ``dynamic_fraction`` of the
window (default 5 %) makes the entry *dynamic* (the hybrid simulator switches it during a run).

Timescales and fast reactions
-----------------------------
The Jacobian ``J = S da/dx`` of the rate equations (central differences of the propensities)
is evaluated along the ODE pilot.  Its ``rank S`` non-zero eigenvalues (``n - rank S`` zero
modes come from conservation laws) give relaxation rates ``r_1 <= ... <= r_d``, medians over
the pilot.  With the window rate ``1/W`` as floor (a mode slower than the window is frozen on
it), the largest ratio ``r_(k+1) / max(r_k, 1/W)`` (``k = 0`` compares the fastest modes with
the window itself) is the *timescale gap*; when it reaches ``fast_ratio`` (default 10) the
modes above it are fast and ``max(r_k, 1/W)`` is the slow rate.  A reaction relaxes itself at
the rate ``kappa_j = |sum_i nu_ij da_j/dx_i|`` (``k_f`` for ``A -> B`` at ``k_f A``; a
reversible pair relaxes at ``k_f + k_b``); it is **fast enough to reduce** (QSSA /
:mod:`scalebridge.reduce.qssa`) when ``kappa_j >= fast_ratio x`` the slow rate (and so also
``>= fast_ratio / W``).  Reactions that do not consume what they read (zero-order inflow,
production by a modifier) have ``kappa_j = 0``: they set levels, they do not relax.

Every entry carries its reason in numbers (``reason``), e.g.
``"P: 0-835 copies (median 471), Poisson CV 4.6% at the median; CLE 79% of the window, SSA
21% -> CLE (dynamic)"`` or ``"S: 4.9e+05-1e+06 copies (median 5.1e+05), Poisson CV 0.1% at the
min; ODE 100% of the window -> ODE"``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .._io import json_safe
from ..errors import ModelError, OptionError
from ..model.network import ReactionNetwork
from ..problem import TimeCourse, time_grid
from ..wellmixed import hybrid_kernels as hk
from ..wellmixed.hybrid import (
    DISCRETE_BELOW,
    LEVELS,
    MIN_FIRINGS,
    ODE_ABOVE,
    Hybrid,
)
from ..wellmixed.propensity import propensity_matrix
from ..wellmixed.stochastic_base import Prepared, prepare

__all__ = [
    "DYNAMIC_FRACTION",
    "FAST_RATIO",
    "PILOT_RUNS",
    "ReactionAdvice",
    "RegimeReport",
    "RegimeThresholds",
    "SpeciesAdvice",
    "advise_regimes",
]

FAST_RATIO = 10.0  # timescale ratio for a fast (reducible) reaction
DYNAMIC_FRACTION = 0.05  # a second description holding this much of the window: "dynamic"
PILOT_RUNS = 16  # tau-leaping runs of the stochastic pilot
JACOBIAN_POINTS = 21  # ODE pilot points where the Jacobian is evaluated
ZERO_MODE = 1e-9  # |lambda| below this x the largest: a zero mode (conservation)


@dataclass(frozen=True)
class RegimeThresholds:
    """Named thresholds of the advice (module docstring); the first three are the hybrid
    simulator's (:meth:`hybrid` gives that method with the same partition)."""

    discrete_below: float = DISCRETE_BELOW
    ode_above: float = ODE_ABOVE
    min_firings: float = MIN_FIRINGS
    fast_ratio: float = FAST_RATIO
    dynamic_fraction: float = DYNAMIC_FRACTION

    def __post_init__(self) -> None:
        for name in ("discrete_below", "ode_above", "min_firings", "fast_ratio"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise OptionError(f"{name} must be a non-negative number, got {v!r}")
        if self.ode_above < self.discrete_below:
            raise OptionError(
                f"ode_above ({self.ode_above:g}) must be at least discrete_below "
                f"({self.discrete_below:g})"
            )
        if not (0.0 < self.dynamic_fraction < 0.5):
            raise OptionError(
                f"dynamic_fraction must be in (0, 0.5), got {self.dynamic_fraction!r}"
            )

    def hybrid(self, **options: Any) -> Hybrid:
        """The hybrid method whose partition follows these thresholds."""
        return Hybrid(
            discrete_below=self.discrete_below,
            ode_above=self.ode_above,
            min_firings=self.min_firings,
            **options,
        )


@dataclass(frozen=True)
class SpeciesAdvice:
    """The advice for one species (copies are molecule counts over the pilot)."""

    id: str
    regime: str  # "SSA", "CLE" or "ODE"
    dynamic: bool
    fractions: dict[str, float]  # time fraction of the window in each description
    min_copies: float
    median_copies: float
    max_copies: float
    poisson_cv: float  # 1 / sqrt(copies) at the min (at the median where the min is 0)
    ode_end: float  # the rate equations' value at the window's end (copies)
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


@dataclass(frozen=True)
class ReactionAdvice:
    """The advice for one reaction."""

    id: str
    regime: str
    dynamic: bool
    fractions: dict[str, float]
    changes: tuple[str, ...]  # species it changes
    firings: float  # expected firings in the window (mean over the pilot)
    firings_per_relaxation: float  # median of F_j over the pilot
    relaxation_rate: float  # kappa_j (median along the ODE pilot)
    ratio_to_slow: float | None  # kappa_j / slow rate
    ratio_to_window: float  # kappa_j x window
    fast: bool  # fast enough to reduce
    reason: str

    @property
    def timescale(self) -> float:
        """1 / kappa_j (inf for a reaction that does not relax itself)."""
        return 1.0 / self.relaxation_rate if self.relaxation_rate > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["changes"] = list(self.changes)
        d["timescale"] = self.timescale
        return json_safe(d)


@dataclass(frozen=True)
class RegimeReport:
    """Regime advice for a network over a time window (:func:`advise_regimes`)."""

    model: str
    window: tuple[float, float]
    thresholds: RegimeThresholds
    species: tuple[SpeciesAdvice, ...]
    reactions: tuple[ReactionAdvice, ...]
    relaxation_times: tuple[float, ...]  # 1 / r_k, slowest first (medians along the pilot)
    conservation_laws: int
    gap: float | None  # largest ratio of consecutive rates (window rate as floor)
    slow_rate: float | None  # when gap >= fast_ratio: the slow modes' (or window's) rate
    pilot: str
    notes: tuple[str, ...] = field(default=())

    def _entries(self) -> list[SpeciesAdvice | ReactionAdvice]:
        return [*self.species, *self.reactions]

    def __getitem__(self, ident: str) -> SpeciesAdvice | ReactionAdvice:
        for a in self._entries():
            if a.id == ident:
                return a
        raise KeyError(f"no species or reaction '{ident}' in this report")

    def partition(self) -> dict[str, str]:
        """The advised description of every species and reaction (``"SSA"``, ``"CLE"``,
        ``"ODE"``): the partition the hybrid simulator uses for most of the window."""
        return {a.id: a.regime for a in self._entries()}

    def fast_reactions(self) -> list[str]:
        """Reactions fast enough to reduce (module docstring)."""
        return [r.id for r in self.reactions if r.fast]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (infinities become None)."""
        return json_safe(
            {
                "model": self.model,
                "window": list(self.window),
                "thresholds": asdict(self.thresholds),
                "pilot": self.pilot,
                "species": {a.id: a.to_dict() for a in self.species},
                "reactions": {a.id: a.to_dict() for a in self.reactions},
                "relaxation_times": list(self.relaxation_times),
                "conservation_laws": self.conservation_laws,
                "gap": self.gap,
                "slow_rate": self.slow_rate,
                "fast_reactions": self.fast_reactions(),
                "partition": self.partition(),
                "notes": list(self.notes),
            }
        )

    def summary(self) -> str:
        """Human-readable advice, one line per species and reaction with its reasons."""
        th = self.thresholds
        lines = [
            f"Regime advice for '{self.model}', window [{_f(self.window[0])}, "
            f"{_f(self.window[1])}]",
            f"  pilot: {self.pilot}",
            f"  thresholds: SSA below {_f(th.discrete_below)} copies, ODE from "
            f"{_f(th.ode_above)} copies, CLE between; continuous reactions need >= "
            f"{_f(th.min_firings)} firings per relaxation time; fast: >= {_f(th.fast_ratio)}x "
            "the slow modes",
            "Species:",
            *(f"  {a.reason}" for a in self.species),
            "Reactions:",
            *(f"  {a.reason}" for a in self.reactions),
            "Timescales:",
            f"  {self._timescale_line()}",
        ]
        fast = self.fast_reactions()
        lines.append("  fast enough to reduce: " + (", ".join(fast) if fast else "none"))
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)

    def _timescale_line(self) -> str:
        times = ", ".join(_f(t) for t in self.relaxation_times) or "none"
        parts = [f"relaxation times {times}"]
        if self.conservation_laws:
            s = "s" if self.conservation_laws > 1 else ""
            parts.append(f"{self.conservation_laws} conservation law{s}")
        if self.gap is not None:
            parts.append(
                f"largest gap {_f(self.gap)}x"
                + (
                    f" (slow rate {_f(self.slow_rate)})"
                    if self.slow_rate is not None
                    else f" < {_f(self.thresholds.fast_ratio)}: no separation"
                )
            )
        return "; ".join(parts)

    def __str__(self) -> str:
        return self.summary()


# =============================================================================================
def advise_regimes(
    model: ReactionNetwork | str | os.PathLike[str],
    t_end: float | None = None,
    *,
    times: Iterable[float] | None = None,
    t0: float = 0.0,
    n_points: int = 101,
    params: Mapping[str, float] | None = None,
    thresholds: RegimeThresholds | None = None,
    pilot_runs: int = PILOT_RUNS,
    seed: int = 0,
    counts_per_amount: float | None = None,
) -> RegimeReport:
    """Which description fits each species and reaction over ``[t0, t_end]`` (module docstring).

    ``times`` (or ``t_end`` with ``n_points``) is the pilot's grid; ``params`` overrides
    values as in :func:`scalebridge.simulate`; ``pilot_runs`` tau-leaping runs (0: the ODE
    alone) with ``seed``; ``thresholds`` the named thresholds (defaults in
    :class:`RegimeThresholds`).  Raises :class:`~scalebridge.errors.ModelError` for models the
    stochastic methods cannot run (rate rules, non-integer stoichiometry, ...).
    """
    from ..api import load, simulate

    net = model if isinstance(model, ReactionNetwork) else load(model)
    th = thresholds if thresholds is not None else RegimeThresholds()
    if times is not None:
        grid = np.asarray(list(times), dtype=np.float64)
    elif t_end is not None:
        grid = time_grid(float(t_end), n_points, t0)
    else:
        raise OptionError("give t_end (with n_points) or times")
    if isinstance(pilot_runs, bool) or not isinstance(pilot_runs, int) or pilot_runs < 0:
        raise OptionError(f"pilot_runs must be a non-negative integer, got {pilot_runs!r}")
    values = dict(params or {})
    if net.events:
        raise ModelError(
            "regime advice covers the reaction network without SBML events",
            element=net.events[0].id,
        )
    prepared = prepare(TimeCourse(net, grid, values=values), counts_per_amount)
    sm = prepared.sm
    species = list(sm.species)
    n_s = len(species)
    window = float(grid[-1] - grid[0])
    notes: list[str] = []

    # -- pilots (counts) ------------------------------------------------------------------------
    ode = simulate(net, "ode", times=grid, units="amount", vars=species, params=values)
    X_ode = np.stack([np.asarray(ode.data[s].values, float) for s in species], axis=-1)
    X_ode = np.maximum(X_ode * sm.counts_per_amount, 0.0).reshape(len(grid), n_s)
    pilot = "rate equations (ODE)"
    X_st: np.ndarray | None = None
    if pilot_runs > 0:
        st = simulate(
            net, "tau-leap", times=grid, runs=pilot_runs, seed=seed, workers=1,
            progress=False, vars=species, params=values, counts_per_amount=counts_per_amount,
        )  # fmt: skip
        X_st = np.stack([np.asarray(st.data[s].values, float) for s in species], axis=-1)
        X_st = X_st.reshape(pilot_runs, len(grid), n_s)
        pilot += f" + {pilot_runs} tau-leaping runs (seed {seed}), classified on the runs"
    X = X_st if X_st is not None else X_ode[None]
    weights = _trapezoid_weights(grid)

    # -- classification by the hybrid's own partition rule -------------------------------------
    hybrid = th.hybrid()
    s_lev, r_lev = _levels(prepared, hybrid, X)
    A = _propensities(prepared, X.reshape(-1, n_s)).reshape(*X.shape[:2], -1)
    F = _firings_per_relaxation(prepared, X, A)

    # -- timescales along the ODE pilot -------------------------------------------------------
    rates, n_cons, kappa = _timescales(prepared, X_ode, grid)
    gap, slow_rate = _gap(rates, window, th.fast_ratio)

    # -- species ----------------------------------------------------------------------------------
    sp_adv = []
    for i, sid in enumerate(species):
        fr = _fractions(s_lev[..., i], weights)
        regime, dynamic = _pick(fr, th.dynamic_fraction)
        xs = X[..., i]
        lo, med, hi = float(xs.min()), float(np.median(xs)), float(xs.max())
        at = lo if lo > 0 else med
        pcv = 1.0 / math.sqrt(at) if at > 0 else math.inf
        reason = (
            f"{sid}: {_f(lo)}-{_f(hi)} copies (median {_f(med)})"
            + (f", Poisson CV {_pct(pcv)} at the {'min' if lo > 0 else 'median'}" if at > 0 else "")
            + f"; {_fraction_text(fr, regime)} -> {regime}"
            + (" (dynamic)" if dynamic else "")
        )
        sp_adv.append(
            SpeciesAdvice(
                id=sid, regime=regime, dynamic=dynamic, fractions=fr,
                min_copies=lo, median_copies=med, max_copies=hi, poisson_cv=pcv,
                ode_end=float(X_ode[-1, i]), reason=reason,
            )
        )  # fmt: skip

    # -- reactions --------------------------------------------------------------------------------
    T = sm.tables
    s_regime = {a.id: a.regime for a in sp_adv}
    rx_adv = []
    for j, rid in enumerate(sm.reactions):
        fr = _fractions(r_lev[..., j], weights)
        regime, dynamic = _pick(fr, th.dynamic_fraction)
        changes = tuple(species[int(T.st_idx[p])] for p in range(T.st_ptr[j], T.st_ptr[j + 1]))
        firings = float(np.mean(np.sum(A[..., j] * weights * window, axis=-1)))
        Fj = float(np.median(F[..., j]))
        kj = float(kappa[j])
        r_slow = kj / slow_rate if slow_rate else None
        r_win = kj * window
        fast = bool(slow_rate is not None and kj >= th.fast_ratio * slow_rate * (1.0 - 1e-6))
        why = []
        low = [s for s in changes if s_regime[s] == "SSA"]
        if low:
            why.append(f"changes {', '.join(low)} (SSA)")
        elif regime == "SSA" and Fj < th.min_firings:
            why.append(f"fewer than {_f(th.min_firings)} firings per relaxation time")
        timing = (
            f"relaxes at rate {_f(kj)} ({_f(r_win)}x the window"
            + (f", {_f(r_slow)}x the slow rate" if r_slow is not None else "")
            + ")"
            if kj > 0
            else "does not relax itself (inflow or production by a modifier)"
        )
        reason = (
            f"{rid}: {_f(firings)} firings in the window, {_f(Fj)} per relaxation time"
            + (f"; {'; '.join(why)}" if why else "")
            + f"; {_fraction_text(fr, regime)} -> {regime}"
            + (" (dynamic)" if dynamic else "")
            + f"; {timing}"
            + ("; fast: reducible" if fast else "")
        )
        rx_adv.append(
            ReactionAdvice(
                id=rid, regime=regime, dynamic=dynamic, fractions=fr, changes=changes,
                firings=firings, firings_per_relaxation=Fj, relaxation_rate=kj,
                ratio_to_slow=r_slow, ratio_to_window=r_win, fast=fast, reason=reason,
            )
        )  # fmt: skip
    if gap is None or slow_rate is None:
        rates_up = sorted(rates)
        if rates_up and window > 0 and rates_up[0] * window >= th.fast_ratio:
            notes.append(
                f"every mode relaxes at least {_f(rates_up[0] * window)}x faster than the "
                "window: the network is near its stationary state for most of the window"
            )
    if X_st is None:
        notes.append(
            "classified on the rate equations alone: noise-driven excursions (switching, "
            "extinction) are not seen; give pilot_runs > 0 to include them"
        )
    relax = tuple(1.0 / r for r in sorted(rates) if r > 0)
    return RegimeReport(
        model=net.id or "model",
        window=(float(grid[0]), float(grid[-1])),
        thresholds=th,
        species=tuple(sp_adv),
        reactions=tuple(rx_adv),
        relaxation_times=relax,
        conservation_laws=n_cons,
        gap=gap,
        slow_rate=slow_rate,
        pilot=pilot,
        notes=tuple(notes),
    )


# =============================================================================================
# helpers
def _trapezoid_weights(grid: np.ndarray) -> np.ndarray:
    """Weights w_k >= 0 summing to 1 with sum_k w_k f(t_k) = trapezoidal mean of f."""
    if grid.size == 1:
        return np.ones(1)
    d = np.diff(grid)
    w = np.zeros(grid.size)
    w[:-1] += d / 2
    w[1:] += d / 2
    return w / w.sum()


def _levels(prepared: Prepared, hybrid: Hybrid, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Species levels and reaction classes of every pilot state, by the hybrid simulator's
    compiled partition rule (its partition at the start of a run, at that state)."""
    T, K = prepared.T, prepared.K
    W = hk.new_work(T, prepared.v0.size, max(T.stack_size, K.stack_size))
    opt = hybrid.option_array()
    counters = np.zeros(hk.N_COUNTERS, dtype=np.int64)
    s_lev = np.zeros((*X.shape[:2], T.n_species), dtype=np.int64)
    r_lev = np.zeros((*X.shape[:2], T.n_reactions), dtype=np.int64)
    x = np.empty(T.n_species)
    for r in range(X.shape[0]):
        for k in range(X.shape[1]):
            W.v[:] = prepared.v0
            x[:] = X[r, k]
            status = hk.initial_partition(T, W, x, opt, counters)
            if status != hk.OK:
                raise ModelError(
                    "a propensity is negative or not finite along the pilot trajectory"
                )
            s_lev[r, k] = W.slev
            r_lev[r, k] = W.rlev
    return s_lev, r_lev


def _propensities(prepared: Prepared, X: np.ndarray) -> np.ndarray:
    """a_j at every row of ``X`` (counts)."""
    T = prepared.T
    out = np.zeros((X.shape[0], T.n_reactions))
    if X.shape[0]:
        v = prepared.v0.copy()
        stack = np.zeros(max(T.stack_size, 1))
        propensity_matrix(T, np.ascontiguousarray(X, dtype=np.float64), v, out, stack)
    return out


def _stoichiometry(prepared: Prepared) -> np.ndarray:
    """nu_ij (net changes) as a dense species x reactions array."""
    T = prepared.T
    S = np.zeros((T.n_species, T.n_reactions))
    for j in range(T.n_reactions):
        for p in range(T.st_ptr[j], T.st_ptr[j + 1]):
            S[int(T.st_idx[p]), j] = T.st_val[p]
    return S


def _firings_per_relaxation(prepared: Prepared, X: np.ndarray, A: np.ndarray) -> np.ndarray:
    """F_j = a_j min_(i changed by j) x_i / phi_i at every pilot state."""
    S = _stoichiometry(prepared)
    absS = np.abs(S)
    phi = 0.5 * np.einsum("rkj,ij->rki", A, absS)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = np.where(phi > 0, X / np.where(phi > 0, phi, 1.0), np.inf)
    F = np.empty_like(A)
    for j in range(A.shape[-1]):
        rows = np.nonzero(absS[:, j])[0]
        tmin = tau[..., rows].min(axis=-1) if rows.size else np.full(A.shape[:2], np.inf)
        with np.errstate(invalid="ignore"):
            F[..., j] = np.where(A[..., j] > 0, A[..., j] * tmin, 0.0)
    return F


def _timescales(
    prepared: Prepared, X_ode: np.ndarray, grid: np.ndarray
) -> tuple[list[float], int, np.ndarray]:
    """Median relaxation rates of the non-zero modes of J = S da/dx along the ODE pilot, the
    number of conservation laws, and kappa_j (median).  ``da/dx`` is the analytic derivative
    of the macroscopic propensities (:class:`~scalebridge.wellmixed.lna.LnaModel`)."""
    from ..wellmixed.lna import LnaModel

    S = _stoichiometry(prepared)
    n_s, n_r = S.shape
    rank = int(np.linalg.matrix_rank(S)) if S.size else 0
    n_cons = n_s - rank
    if n_s == 0 or n_r == 0:
        return [], n_cons, np.zeros(n_r)
    lna = LnaModel(prepared)
    idx = np.unique(np.linspace(0, len(grid) - 1, min(JACOBIAN_POINTS, len(grid))).round())
    all_rates = []
    kappas = []
    for k in idx.astype(int):
        _, da = lna.propensities_and_derivative(np.maximum(X_ode[k], 0.0))
        dadx = da.toarray()
        J = S @ dadx  # (n_s x n_s)
        kappas.append(np.abs(np.einsum("ij,ji->j", S, dadx)))
        if not np.all(np.isfinite(J)):
            continue
        lam = np.linalg.eigvals(J)
        r = np.sort(np.abs(lam.real))
        big = float(r.max()) if r.size else 0.0
        # the n_cons smallest (zero) modes belong to conservation laws
        r = r[n_cons:]
        r = r[r > ZERO_MODE * big] if big > 0 else r[:0]
        all_rates.append(r)
    kappa = np.median(np.asarray(kappas), axis=0) if kappas else np.zeros(n_r)
    if not all_rates:
        return [], n_cons, kappa
    d = min(len(r) for r in all_rates)
    rates = [float(np.median([r[len(r) - d + m] for r in all_rates])) for m in range(d)]
    return rates, n_cons, kappa


def _gap(rates: Sequence[float], window: float, ratio: float) -> tuple[float | None, float | None]:
    """(timescale gap, slow rate or None): the module docstring's rule.

    Rates below the window rate ``1/W`` count as ``1/W`` (frozen on the window).  The gap is
    the largest ratio ``r_(k+1) / max(r_k, 1/W)`` between consecutive modes (None with fewer
    than two modes); the slow rate is ``max(r_k, 1/W)`` below it when the gap reaches ``ratio``
    (to a relative 1e-6, so that a gap of exactly ``ratio`` counts), else None.
    """
    floor = 1.0 / window if window > 0 else 0.0
    r = sorted(rates)
    best, slow = 0.0, 0.0
    for k in range(1, len(r)):
        lo = max(r[k - 1], floor)
        if lo > 0 and r[k] / lo > best:
            best, slow = r[k] / lo, lo
    if best <= 0:
        return None, None
    return best, (slow if best >= ratio * (1.0 - 1e-6) else None)


def _fractions(levels: np.ndarray, weights: np.ndarray) -> dict[str, float]:
    """Time fraction of each description (levels: runs x times), pooled over runs."""
    out = {}
    for code, name in enumerate(LEVELS):
        out[name] = float(np.mean(np.sum((levels == code) * weights, axis=-1)))
    return out


def _pick(fr: Mapping[str, float], dynamic_fraction: float) -> tuple[str, bool]:
    """The advised description: continuous when the continuous descriptions together hold
    more than half of the window (the hybrid simulator's discrete/continuous split), then the
    CLE or the ODE, whichever holds more of it (ties: the CLE); and whether another description
    holds at least ``dynamic_fraction`` of the window."""
    cont = fr["CLE"] + fr["ODE"]
    best = "SSA" if fr["SSA"] >= cont else ("ODE" if fr["ODE"] > fr["CLE"] else "CLE")
    dynamic = any(fr[k] >= dynamic_fraction for k in LEVELS if k != best)
    return best, dynamic


def _fraction_text(fr: Mapping[str, float], regime: str) -> str:
    parts = [f"{k} {_pct(fr[k], 0)} of the window" if k == regime else f"{k} {_pct(fr[k], 0)}"
             for k in sorted(LEVELS, key=lambda k: -fr[k]) if fr[k] >= 0.005]  # fmt: skip
    return ", ".join(parts)


def _f(x: float | None) -> str:
    if x is None:
        return "n/a"
    if not math.isfinite(x):
        return "inf" if x > 0 else ("-inf" if x < 0 else "nan")
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e4:
        return f"{x:.3g}"
    return f"{x:.2g}"


def _pct(x: float | None, digits: int = 1) -> str:
    if x is None or not math.isfinite(x):
        return "inf"
    return f"{100 * x:.{digits}f}%"
