"""The chemical master equation by finite state projection: ``method="fsp"``.

The CME ``dp/dt = A p`` for the probability ``p(x, t)`` of every molecule-count vector ``x`` is
solved on a finite projection of the state space (Munsky & Khammash, J. Chem. Phys. 124,
044104, 2006).  The model is the stochastic model of
:mod:`scalebridge.codegen.stochastic` (counts, combinatorial mass action, other laws as
written); the initial distribution is a point mass at the initial counts.

Projection (:mod:`.fsp_space`): the states reachable from the initial state inside a box of
per-species bounds, starting from the initial state alone.  Probability that would leave the
box is collected in absorbing sinks, one per growth direction (each species' upper and lower
bound); that mass is the reported truncation error.

Transient distributions (the default): the solver steps through the output times (cut into at
least ``MIN_PIECES`` pieces, grouped into chunks) with an exponential integrator
(uniformization, or scipy's ``expm_multiply``; :mod:`.fsp_solve` explains the choice).  A chunk
may lose its share of what ``tol`` leaves -- ``(tol - eps) x`` its fraction of the remaining
time span; when it loses more, the box grows in the directions whose sinks received too much
(:class:`~.fsp_solve.Growth`) and the chunk is redone from its start (the multiple-time-interval
FSP of Munsky & Khammash, IET Syst. Biol. 1, 2007).  The box never shrinks, so states are only
appended and the projection of every output time is a subset of the final one.  The reported
joint distribution and marginals are the projected solution itself: entrywise below the true
distribution, summing to ``1 - eps(t)``, with ``|| p(t) - p_FSP(t) ||_1 = eps(t)`` exactly (up to
rounding, about 1e-13), where ``eps(t)`` is the probability lost so far
(``stats["truncation_error"]``, non-decreasing in time, at most ``tol``).  Means and sds are
those of the projected solution normalised to one (the distribution conditioned on staying in
the projection).

``stationary=True`` gives the stationary distribution instead: the null vector of the
generator restricted to the projection (transitions out of it dropped), normalised, with an
*estimated* 1-norm error from the probability flux out of the projection (:mod:`.fsp_solve`);
the box grows until the estimate is at most ``tol``.  The result has one time point, ``+inf``.

Result layout (:class:`~scalebridge.results.Result`, no ``"run"`` dimension; counts):

* ``X``: the mean of each reported variable ``X``, dims ``("time",)``, attrs
  ``statistic="mean"``; ``X-sd``: its standard deviation, attrs ``statistic="sd"``,
  ``of="X"``.  :meth:`Result.mean` / :meth:`Result.sd` return them, and
  :meth:`Result.to_csv` writes ``time``, ``X-mean``, ``X-sd`` (the DSMTS layout).
* ``X-marginal``: the marginal distribution of each reported species in the state, dims
  ``("time", "X-count")`` with the coordinate ``X-count`` = the counts.
* ``probability``: the joint distribution on the sparse list of states, dims
  ``("time", "state")``, with one coordinate ``X-state`` (the count of ``X`` in each state) on
  ``"state"`` for every species in the state (left out with ``joint=False``).

Reported variables other than species (parameters, rules, ...) get means and sds, evaluated
state by state.  Refused (:class:`~scalebridge.errors.UnsupportedFeatureError`, naming the
element): events (the CME here is that of the reaction network alone), and, inherited from
the stochastic model, rate rules, time-dependent propensities and stoichiometry set by rules.
Assignment rules are honoured: they are functions of the state.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import numpy as np
import xarray as xr

from ..codegen import vm
from ..codegen.build import CompiledModel
from ..errors import OptionError, SolverError, UnsupportedFeatureError
from ..model.expr import Call, symbols, walk
from ..problem import TimeCourse
from ..results import TIME, Result
from .fsp_solve import (
    Growth,
    Propagator,
    absorbing_generator,
    reach,
    stationary,
    stationary_error,
)
from .fsp_space import StateSpace, state_values
from .propensity import all_propensities
from .stochastic_base import Prepared, prepare

# Growth steps before giving up (each step grows at least one bound by at least one count, and
# the state limit stops runaway growth long before this).
MAX_GROWTH_STEPS = 500
# The transient solve checks the projection on at least MIN_PIECES pieces of the time span,
# grouped into at most about MAX_CHUNKS chunks (a chunk is redone when the projection grows).
MIN_PIECES = 16
MAX_CHUNKS = 32
JOINT = "probability"
STATE = "state"


@dataclass(frozen=True)
class FSP:
    """Finite state projection of the chemical master equation (module docstring).

    ``tol``: the truncation error allowed (total probability that leaves the projection by the
    last output time; for ``stationary=True`` the estimated 1-norm error).  ``max_states``: the
    largest projection allowed (:class:`~scalebridge.errors.OptionError` beyond, saying how
    large it would be).  ``stationary``: the stationary distribution instead of the transient.
    ``counts_per_amount``: molecules per unit of amount (see
    :mod:`scalebridge.codegen.stochastic`).  ``joint``: keep the joint distribution in the
    result (its size is time points x states; moments and marginals are always kept).
    ``propagator``: ``"uniformization"`` or ``"expm"`` (scipy's ``expm_multiply``), the
    exponential integrator of the transient solve (:mod:`.fsp_solve`).
    """

    tol: float = 1e-6
    max_states: int = 2_000_000
    stationary: bool = False
    counts_per_amount: float | None = None
    joint: bool = True
    propagator: str = "uniformization"

    name = "fsp"
    exact = True  # up to the reported truncation error
    # The stochastic model, solved for its distribution: no runs, no seed, no ``run_runs``.
    stochastic = True

    def __post_init__(self) -> None:
        if not (isinstance(self.tol, int | float) and 0.0 < self.tol < 1.0):
            raise OptionError(f"tol must be in (0, 1), got {self.tol!r}")
        if not (isinstance(self.max_states, int | np.integer) and self.max_states >= 1):
            raise OptionError(f"max_states must be a positive integer, got {self.max_states!r}")
        if self.counts_per_amount is not None and not (
            isinstance(self.counts_per_amount, int | float)
            and math.isfinite(self.counts_per_amount)
            and self.counts_per_amount > 0
        ):
            raise OptionError(
                f"counts_per_amount must be a positive number, got {self.counts_per_amount!r}"
            )
        if self.propagator not in ("uniformization", "expm"):
            raise OptionError(
                f"propagator must be 'uniformization' or 'expm', not {self.propagator!r}"
            )

    def options(self) -> dict[str, Any]:
        return asdict(self)

    def solve(self, problem: TimeCourse) -> Result:
        t_start = time.perf_counter()
        for ev in problem.network.events:
            raise UnsupportedFeatureError(
                "event in a finite state projection",
                element=ev.id,
                detail="the CME is solved for the reaction network alone; use method 'ssa'",
            )
        prep = prepare(problem, self.counts_per_amount)
        for name in (JOINT, STATE):
            if name in prep.names:
                raise OptionError(
                    f"'{name}' names a dimension or variable of the FSP result; leave it out of "
                    "vars"
                )
        sm = prep.sm
        space = StateSpace(prep.T, prep.v0, prep.x0, int(self.max_states), sm.species,
                           sm.reactions)  # fmt: skip
        times = np.array([math.inf]) if self.stationary else problem.times
        reporter = _Reporter(prep, space, times, keep_joint=self.joint)
        if self.stationary:
            reporter.check_time_free()
            work, kind = self._stationary(space, reporter), "estimate"
        else:
            work, kind = self._transient(space, reporter, problem), "bound"
        stats: dict[str, Any] = {
            "method": self.name,
            "options": self.options(),
            "seed": None,
            "n_states": int(space.n),
            "truncation_error": [float(e) for e in reporter.error],
            "truncation_error_kind": kind,
            "projection": {
                s: [int(space.lo[i]), int(space.hi[i])] for i, s in enumerate(sm.species)
            },
            **work,
            "stationary": bool(self.stationary),
        }
        data = reporter.dataset(problem)
        stats["wall_time_s"] = time.perf_counter() - t_start
        return Result(data, stats)

    # ------------------------------------------------------------------------------------------
    def _transient(self, space: StateSpace, rep: _Reporter, problem: TimeCourse) -> dict[str, int]:
        """Time stepping with a growing projection (module docstring); returns work counts
        (``growth_steps``; ``products``, matrix-vector products of uniformization)."""
        grid, outputs, chunks = _internal_grid(problem.times)
        n, D = space.n, space.n_directions
        p = np.zeros(n)
        p[0] = 1.0
        sinks = np.zeros(D)  # probability lost so far, per growth direction
        rep.add(0, space.states(), p, 0.0)
        prop = Propagator(absorbing_generator(space), self.propagator)
        steps = products = 0
        for a, b in chunks:
            # This chunk may lose its share of what tol leaves: the error stays within tol.
            budget = max(self.tol - float(sinks.sum()), 0.0) * (
                (grid[b] - grid[a]) / (grid[-1] - grid[a])
            )
            growth = Growth(budget)
            while True:
                seq = list(prop(np.concatenate([p, sinks]), grid[a : b + 1]))
                leak = np.clip(seq[-1][n:] - sinks, 0.0, None)
                if leak.sum() <= budget:
                    break
                steps += 1
                if steps > MAX_GROWTH_STEPS:
                    raise SolverError(
                        f"the finite state projection did not reach tol={self.tol:g} in "
                        f"{MAX_GROWTH_STEPS} growth steps (box {space.describe_box()})"
                    )
                z = growth.z(int(np.count_nonzero(leak > budget / (2 * D))) or 1)
                spread = reach(space.states(), [v[:n] for v in seq], z)
                lo, hi = growth.next_box(space, leak, spread)
                space.grow(lo, hi, need=partial(_mean_field_box, problem, space, z))
                p = np.concatenate([p, np.zeros(space.n - n)])  # new states start empty
                n = space.n
                products += prop.products
                prop = Propagator(absorbing_generator(space), self.propagator)
            for j, v in enumerate(seq[1:], start=a + 1):
                if j in outputs:
                    rep.add(outputs[j], space.states(), v[:n], float(v[n:].sum()))
            p, sinks = seq[-1][:n], seq[-1][n:]
        return {"growth_steps": steps, "products": products + prop.products}

    def _stationary(self, space: StateSpace, rep: _Reporter) -> dict[str, int]:
        growth = Growth(self.tol)
        for step in range(MAX_GROWTH_STEPS):
            pi, exits = stationary(space)
            err, per = stationary_error(space, pi, exits)
            if err <= self.tol:
                rep.add(0, space.states(), pi, err, normalised=True)
                return {"growth_steps": step}
            z = growth.z(int(np.count_nonzero(per > self.tol / (2 * per.size))) or 1)
            lo, hi = growth.next_box(space, per, reach(space.states(), [pi], z))
            try:
                space.grow(lo, hi)
            except OptionError as exc:
                raise OptionError(
                    f"{exc} (if the network has no stationary distribution -- for example an "
                    "unbounded production -- no projection is large enough)"
                ) from None
        raise SolverError(
            f"the stationary projection did not reach tol={self.tol:g} in {MAX_GROWTH_STEPS} "
            f"growth steps (box {space.describe_box()})"
        )


def _internal_grid(times: np.ndarray) -> tuple[np.ndarray, dict[int, int], list[tuple[int, int]]]:
    """The time points the solver steps through, which of them are outputs, and the chunks.

    Each output interval is cut into equal pieces so that there are at least
    ``MIN_PIECES`` in all (the projection is checked, and grown, piece by piece); consecutive
    pieces form at most about ``MAX_CHUNKS`` chunks, each propagated by one call on an equally
    spaced grid.  Returns ``(grid, {grid index: output index}, [(first, last) grid index])``.
    """
    m = times.size - 1
    if m == 0:
        return times.copy(), {0: 0}, []
    sub = max(1, math.ceil(MIN_PIECES / m))
    pieces = [np.linspace(times[k], times[k + 1], sub + 1)[:-1] for k in range(m)]
    grid = np.concatenate([*pieces, times[-1:]])
    outputs = {k * sub: k for k in range(times.size)}
    per = max(1, math.ceil((grid.size - 1) / MAX_CHUNKS))
    chunks = [(a, min(a + per, grid.size - 1)) for a in range(0, grid.size - 1, per)]
    return grid, outputs, chunks


class _Reporter:
    """Moments, marginals and the joint distribution at the output times, from the
    distribution on the projection (which may grow between output times: states are only
    ever appended, so an earlier distribution is the later one's prefix)."""

    def __init__(self, prep: Prepared, space: StateSpace, times: np.ndarray, keep_joint: bool):
        self.prep = prep
        self.space = space
        self.times = times
        self.keep_joint = keep_joint
        T = prep.T
        self.value_cols = [c for c, k in enumerate(T.rec_kind) if k != 0]
        self.species_cols = {c: int(T.rec_ref[c]) for c, k in enumerate(T.rec_kind) if k == 0}
        self.time_dependent = any(_depends_on_time(prep.sm.cm, int(T.rec_ref[c]))
                                  for c in self.value_cols)  # fmt: skip
        n_t, n_c = times.size, len(prep.names)
        self.mean = np.full((n_t, n_c), np.nan)
        self.sd = np.full((n_t, n_c), np.nan)
        self.error = [math.nan] * n_t
        self.marginals: dict[int, list[np.ndarray]] = {c: [] for c in self.species_cols}
        self.joint: list[np.ndarray] = []
        self._values_cache: np.ndarray | None = None

    def check_time_free(self) -> None:
        for c in self.value_cols:
            if _depends_on_time(self.prep.sm.cm, int(self.prep.T.rec_ref[c])):
                raise UnsupportedFeatureError(
                    "output that depends on time in a stationary distribution",
                    element=self.prep.names[c],
                )

    def _values(self, X: np.ndarray, t: float) -> np.ndarray:
        """Every recorded output in every state (cached while it cannot change)."""
        cache = self._values_cache
        if not self.time_dependent and cache is not None and cache.shape[0] == X.shape[0]:
            return cache
        prep = self.prep
        out = np.empty((X.shape[0], len(prep.names)))
        stack = np.empty(max(prep.T.stack_size, prep.K.stack_size, 1))
        v = prep.v0.copy()
        state_values(prep.T, prep.K, t, np.ascontiguousarray(X), X.shape[0], v, out, stack)
        self._values_cache = out
        return out

    def add(self, k: int, X: np.ndarray, p: np.ndarray, error: float,
            normalised: bool = False) -> None:  # fmt: skip
        """The distribution ``p`` on the states ``X`` at output ``k``; ``error`` is the sink
        mass, or with ``normalised`` the stationary error estimate."""
        q = np.clip(p, 0.0, None)
        mass = float(q.sum())
        self.error[k] = error if normalised else max(error, 1.0 - mass, 0.0)
        for c, i in self.species_cols.items():
            self.marginals[c].append(np.bincount(X[:, i].astype(np.int64), weights=q))
        if self.keep_joint:
            self.joint.append(q)
        if mass <= 0.0:
            return
        w = q / mass
        top = int(np.argmax(q))
        values = self._values(X, float(self.times[k])) if self.value_cols else None
        for c in range(len(self.prep.names)):
            if c in self.species_cols:
                x = X[:, self.species_cols[c]]
            else:
                assert values is not None
                x = values[:, c]
            # centred on the most probable state's value: exact for a constant, less rounding
            m = float(x[top] + w @ (x - x[top]))
            self.mean[k, c] = m
            self.sd[k, c] = math.sqrt(max(float(w @ (x - m) ** 2), 0.0))

    def dataset(self, problem: TimeCourse) -> xr.Dataset:
        prep, net = self.prep, problem.network
        X = self.space.states()
        data: dict[str, Any] = {}
        coords: dict[str, Any] = {TIME: self.times}
        for c, name in enumerate(prep.names):
            attrs = {"kind": net.kind_of(name) or "", "statistic": "mean"}
            if name in net.species_map:
                attrs["quantity"] = "amount"  # molecule counts
            data[name] = ((TIME,), self.mean[:, c], attrs)
        for c, name in enumerate(prep.names):
            attrs = {"statistic": "sd", "of": name}
            data[f"{name}-sd"] = ((TIME,), self.sd[:, c], attrs)
        species = prep.sm.species
        for c, i in self.species_cols.items():
            name = prep.names[c]
            dim = f"{name}-count"
            first, last = int(X[:, i].min()), int(X[:, i].max())
            table = np.zeros((self.times.size, last - first + 1))
            for k, counts in enumerate(self.marginals[c]):
                part = counts[first:]
                table[k, : part.size] = part
            coords[dim] = np.arange(first, last + 1, dtype=np.int64)
            data[f"{name}-marginal"] = ((TIME, dim), table,
                                        {"statistic": "marginal", "of": name})  # fmt: skip
        if self.keep_joint:
            joint = np.zeros((self.times.size, X.shape[0]))
            for k, q in enumerate(self.joint):
                joint[k, : q.size] = q
            # States in lexicographic order of their counts (the first species varies slowest).
            order = np.lexsort(X.T[::-1]) if species else np.arange(X.shape[0])
            for i, s in enumerate(species):
                coords[f"{s}-state"] = (STATE, X[order, i].astype(np.int64))
            data[JOINT] = ((TIME, STATE), joint[:, order], {"statistic": "probability"})
        return xr.Dataset(data, coords=coords)


def _mean_field_box(
    problem: TimeCourse, space: StateSpace, z: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """Per species, the extremes over the output times of ``mean -+ z sqrt(mean)`` (a
    Poisson-like spread) around the mean-field solution ``dx/dt = sum_j nu_j a_j(x)`` (the
    propensities at non-integer counts), in counts -- for the message when the projection
    outgrows its limit; None when that solution cannot be computed."""
    from scipy.integrate import solve_ivp

    T, n_s = space.T, space.n_species
    S = np.zeros((n_s, T.n_reactions))
    for j in range(T.n_reactions):
        for p in range(T.st_ptr[j], T.st_ptr[j + 1]):
            S[T.st_idx[p], j] += T.st_val[p]
    v, stack, a = space.v.copy(), np.empty(max(T.stack_size, 1)), np.empty(T.n_reactions)

    def rhs(_t: float, x: np.ndarray) -> np.ndarray:
        all_propensities(T, np.maximum(x, 0.0), v, a, stack)
        return S @ a

    times = problem.times
    with np.errstate(all="ignore"):
        sol = solve_ivp(rhs, (times[0], times[-1]), space.states()[0].copy(), method="LSODA",
                        t_eval=times, rtol=1e-4, atol=1e-6)  # fmt: skip
    if not sol.success or not np.all(np.isfinite(sol.y)):
        return None
    means = np.maximum(sol.y.T, 0.0)
    spread = z * np.sqrt(np.maximum(means, 1.0))
    return (means - spread).min(axis=0), (means + spread).max(axis=0)


def _depends_on_time(cm: CompiledModel, slot: int) -> bool:
    """Whether the value in ``slot`` (a derived value, a fixed value or a state) involves time."""
    if slot == vm.SLOT_TIME:
        return True
    keys = [k for k, s in cm.slots.items() if s == slot]
    seen: set[str] = set()
    todo = [k for k in keys if k in cm.derived_exprs]
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        seen.add(key)
        e = cm.derived_exprs[key]
        if any(isinstance(node, Call) and node.op == "time" for node in walk(e)):
            return True
        todo.extend(s for s in symbols(e) if s in cm.derived_exprs)
    return False
