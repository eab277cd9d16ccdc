"""What every stochastic method shares: preparing a problem, and the per-run contract.

A stochastic method (``ssa``, ``tau-leap``, ``cle``) is a stateless strategy with its options in
the constructor.  It implements

* ``prepare(problem) -> Prepared``: compile the network (cached on it), compute the initial
  counts and value array, and the output tables -- once per ensemble;
* ``run_runs(prepared, rng_states, out) -> dict``: simulate ``k = len(rng_states)`` independent
  runs, run ``r`` drawing only from its own xoshiro256+ stream ``rng_states[r]``, writing
  ``out[r, i, :]`` at ``prepared.times[i]``; returns additive run statistics (``events``,
  ``steps``, ...).  Because each run owns its stream, results do not depend on how runs are
  grouped into calls, threads, processes or cluster workers.

The ensemble layer (:mod:`scalebridge.ensemble`) derives one stream per run from
``numpy.random.SeedSequence(seed).spawn(runs)`` and calls ``run_runs`` on chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..codegen import vm
from ..codegen.stochastic import SsaTables, StochasticModel, compile_stochastic
from ..model.network import ReactionNetwork
from ..problem import TimeCourse, check_vars

_ATTR = "_scalebridge_stochastic"


def stochastic_model(
    net: ReactionNetwork, counts_per_amount: float | None = None
) -> StochasticModel:
    """The network compiled for the stochastic kernels, cached on the network object."""
    cache: dict[float | None, StochasticModel] = net.__dict__.setdefault(_ATTR, {})
    sm = cache.get(counts_per_amount)
    if sm is None:
        sm = compile_stochastic(net, counts_per_amount=counts_per_amount)
        cache[counts_per_amount] = sm
    return sm


@dataclass
class Prepared:
    """A problem ready for ``run_runs``: compiled model, initial state and output tables.

    ``T`` records ``names`` (species as molecule counts, other variables by value through
    ``K``, the compiled model's kernel).  ``x0``/``v0`` are copied by every run.
    """

    sm: StochasticModel
    T: SsaTables
    K: vm.Kernel
    names: list[str]
    times: np.ndarray
    x0: np.ndarray
    y0: np.ndarray
    v0: np.ndarray

    @property
    def has_events(self) -> bool:
        return bool(self.sm.cm.events)


def prepare(problem: TimeCourse, counts_per_amount: float | None = None) -> Prepared:
    """Compile and initialise ``problem`` for a stochastic method."""
    sm = stochastic_model(problem.network, counts_per_amount)
    names = problem.output_names()
    check_vars(problem.network, names)
    T = sm.with_records(names)
    value_slots = [int(r) for k, r in zip(T.rec_kind, T.rec_ref, strict=True) if k == 1]
    K = sm.cm.with_records(value_slots)
    x0, y0, v0 = sm.initial(problem.values, problem.t0)
    return Prepared(sm, T, K, names, problem.times, x0, y0, v0)
