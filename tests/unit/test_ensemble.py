"""Ensembles (:mod:`scalebridge.ensemble`): streams, reproducibility, layout, Ctrl-C, progress,
Dask, and the routing of :func:`scalebridge.simulate`.

The ensemble layer is tested on its own with ``MiniSSA``, a direct-method SSA written here on the
shared compiled pieces (propensities, xoshiro256+, output rows) and the per-run contract of
:mod:`scalebridge.wellmixed.stochastic_base`; its kernel releases the GIL like the real ones.
Correctness is checked against the immigration-death process, whose count at time t is exactly
Poisson(lambda(t)), lambda(t) = (k/g)(1 - exp(-g t)) from X(0) = 0.  The routing and Dask tests
use the real ``ssa``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pytest

import scalebridge as sb
from scalebridge import methods
from scalebridge.codegen import vm
from scalebridge.codegen.jit import kernel
from scalebridge.codegen.stochastic import SsaTables
from scalebridge.ensemble import (
    EnsembleInterrupted,
    default_workers,
    root_seed,
    run_ensemble,
    run_states,
)
from scalebridge.ensemble import core as ensemble_core
from scalebridge.ensemble import progress as ensemble_progress
from scalebridge.errors import OptionError, SolverError
from scalebridge.problem import TimeCourse, time_grid
from scalebridge.wellmixed.propensity import (
    all_propensities,
    exponential,
    record,
    stream_states,
    uniform,
)
from scalebridge.wellmixed.stochastic_base import Prepared, prepare


# ==================================================================================================
# A stand-in stochastic method
# ==================================================================================================
@kernel
def _direct(
    T: SsaTables,
    K: vm.Kernel,
    x0: np.ndarray,
    v0: np.ndarray,
    times: np.ndarray,
    states: np.ndarray,
    out: np.ndarray,
) -> int:
    n_r = T.n_reactions
    a = np.empty(max(n_r, 1))
    stack = np.empty(max(T.stack_size, K.stack_size, 1))
    events = 0
    for r in range(states.shape[0]):
        s = states[r].copy()
        x = x0.copy()
        v = v0.copy()
        t = times[0]
        i = 0
        while i < times.size:
            a0 = all_propensities(T, x, v, a, stack)
            t_next = t + exponential(s) / a0 if a0 > 0.0 else math.inf
            while i < times.size and times[i] < t_next:
                record(T, K, times[i], x, v, out[r, i], stack)
                i += 1
            if i == times.size:
                break
            target = uniform(s) * a0
            j = 0
            acc = a[0]
            while acc < target and j < n_r - 1:
                j += 1
                acc += a[j]
            for p in range(T.st_ptr[j], T.st_ptr[j + 1]):
                x[T.st_idx[p]] += T.st_val[p]
            t = t_next
            events += 1
    return events


@dataclass(frozen=True)
class MiniSSA:
    """Gillespie's direct method without SBML events (a stand-in for the real ``ssa``)."""

    name = "mini-ssa"
    exact = True
    stochastic = True

    def options(self) -> dict[str, Any]:
        return asdict(self)

    def prepare(self, problem: TimeCourse) -> Prepared:
        return prepare(problem)

    def run_runs(self, prepared: Prepared, rng_states: np.ndarray, out: np.ndarray) -> dict:
        p = prepared
        events = _direct(p.T, p.K, p.x0, p.v0, p.times, rng_states, out)
        return {"events": int(events), "calls": 1}


# Immigration-death: X(t) ~ Poisson(K_IN/G (1 - exp(-G t))) from X(0) = 0.
K_IN, G = 10.0, 1.0
IMMDEATH = f"""
model immdeath
  compartment C = 1;
  species X in C = 0;
  birth: => X; k;
  death: X => ; g*X;
  k = {K_IN}; g = {G};
end
"""
TIMES = time_grid(5.0, 11)


@pytest.fixture(scope="module")
def net() -> sb.ReactionNetwork:
    return sb.from_antimony(IMMDEATH)


@pytest.fixture(scope="module")
def problem(net: sb.ReactionNetwork) -> TimeCourse:
    return TimeCourse(net, TIMES)


def lam(t: np.ndarray) -> np.ndarray:
    return K_IN / G * (1.0 - np.exp(-G * t))


# ==================================================================================================
# Streams
# ==================================================================================================
def test_run_states_are_the_spawned_children_of_the_root_seed():
    # The contract: run r uses SeedSequence(seed).spawn(runs)[r], whatever chunk computes it.
    spawned = stream_states(np.random.SeedSequence(12345).spawn(40))
    assert np.array_equal(run_states(12345, 0, 40), spawned)
    assert np.array_equal(run_states(12345, 17, 23), spawned[17:23])
    assert len({tuple(row) for row in spawned}) == 40  # every run its own stream


def test_root_seed():
    assert root_seed(7) == 7
    assert root_seed(np.int64(7)) == 7
    a, b = root_seed(None), root_seed(None)
    assert isinstance(a, int) and a != b and a >= 0
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(OptionError, match="seed"):
            root_seed(bad)  # type: ignore[arg-type]


# ==================================================================================================
# Reproducibility and layout
# ==================================================================================================
@pytest.fixture(scope="module")
def reference(problem: TimeCourse) -> sb.Result:
    return run_ensemble(MiniSSA(), problem, runs=200, seed=2024, workers=1, chunk_size=200)


@pytest.mark.parametrize(
    ("workers", "chunk_size"), [(1, 1), (1, None), (2, 3), (2, None), (4, 7), (4, 64), (3, 1000)]
)
def test_bit_identical_whatever_workers_and_chunks(problem, reference, workers, chunk_size):
    res = run_ensemble(
        MiniSSA(), problem, runs=200, seed=2024, workers=workers, chunk_size=chunk_size
    )
    assert np.array_equal(res["X"].to_numpy(), reference["X"].to_numpy())
    assert np.array_equal(res["X"]["run"].to_numpy(), np.arange(200))
    assert res.stats["events"] == reference.stats["events"]  # per-run event counts add up
    assert res.stats["workers"] == min(workers, 200)
    assert res.stats["chunk_size"] == (chunk_size if chunk_size else "auto")
    assert res.stats["calls"] == res.stats["chunks"]  # numeric method stats are summed


def test_ensemble_matches_the_exact_poisson_law(reference):
    x = reference["X"].to_numpy()
    n = x.shape[0]
    mu = lam(TIMES)
    assert np.all(x[:, 0] == 0)  # X(0) = 0 in every run
    mean, var = x.mean(axis=0)[1:], x.var(axis=0, ddof=1)[1:]
    # Mean: 5-sigma band (false failure < 6e-7 per point, < 1e-5 over the 10 points).
    assert np.all(np.abs(mean - mu[1:]) < 5 * np.sqrt(mu[1:] / n))
    # Sample variance of Poisson(l): Var(s^2) ~ (l + 2 l^2)/n; the same 5-sigma band.
    sd_s2 = np.sqrt((mu[1:] + 2 * mu[1:] ** 2) / n)
    assert np.all(np.abs(var - mu[1:]) < 5 * sd_s2)
    assert len({tuple(row) for row in x}) > 150  # runs are not copies of each other


def test_one_run_is_the_trajectory_and_run_zero_of_any_ensemble(problem, reference):
    for runs in (None, 1):
        one = run_ensemble(MiniSSA(), problem, runs=runs, seed=2024)
        assert one["X"].dims == ("time",)
        assert one.n_runs is None
        assert np.array_equal(one["X"].to_numpy(), reference["X"].to_numpy()[0])
        assert one.stats["runs"] == 1 and one.stats["runs_completed"] == 1


def test_stats_and_attrs(problem, reference):
    st = reference.stats
    for key in ("method", "options", "seed", "runs", "runs_completed", "interrupted", "workers",
                "chunk_size", "chunks", "events", "wall_time_s", "versions"):  # fmt: skip
        assert key in st, key
    assert st["method"] == "mini-ssa" and st["seed"] == 2024 and st["runs"] == 200
    assert st["runs_completed"] == 200 and st["interrupted"] is False
    assert st["scheduler"] is None
    assert reference["X"].dims == ("run", "time")
    assert reference["X"].attrs["quantity"] == "amount"
    assert reference.data.attrs["seed"] == 2024
    table = reference.to_dataframe()
    assert list(table.columns) == ["time", "X-mean", "X-sd"]


def test_fresh_entropy_is_recorded_and_repeats_the_ensemble(problem):
    a = run_ensemble(MiniSSA(), problem, runs=20)
    seed = a.stats["seed"]
    assert isinstance(seed, int) and seed > 2**64  # 128 bits of OS entropy
    b = run_ensemble(MiniSSA(), problem, runs=20, seed=seed, chunk_size=3)
    assert np.array_equal(a["X"].to_numpy(), b["X"].to_numpy())
    c = run_ensemble(MiniSSA(), problem, runs=20, seed=seed + 1)
    assert not np.array_equal(a["X"].to_numpy(), c["X"].to_numpy())


def test_bad_options(problem):
    m = MiniSSA()
    for kwargs, needle in (
        ({"runs": 0}, "runs"), ({"runs": 2.5}, "runs"), ({"runs": True}, "runs"),
        ({"runs": 2, "workers": 0}, "workers"), ({"runs": 2, "chunk_size": -1}, "chunk_size"),
        ({"runs": 2, "seed": -3}, "seed"),
    ):  # fmt: skip
        with pytest.raises(OptionError, match=needle):
            run_ensemble(m, problem, **kwargs)
    conc = TimeCourse(problem.network, TIMES, units="concentration")
    with pytest.raises(OptionError, match="molecule counts"):
        run_ensemble(m, conc, runs=2)
    with pytest.raises(OptionError, match="does not run ensembles"):
        run_ensemble(sb.get_method("ode"), problem, runs=2)


def test_default_workers_is_the_affinity_mask():
    import os

    n = default_workers()
    assert n >= 1
    if hasattr(os, "sched_getaffinity"):
        assert n == len(os.sched_getaffinity(0))


# ==================================================================================================
# Ctrl-C and failures
# ==================================================================================================
def _run_index(states: np.ndarray, seed: int, candidates: int) -> int:
    """Which run a chunk starts with (its first stream among the first ``candidates`` runs)."""
    table = run_states(seed, 0, candidates)
    return int(np.flatnonzero((table == states[0]).all(axis=1))[0])


@dataclass(frozen=True)
class InterruptedAt(MiniSSA):
    """Raises KeyboardInterrupt (as Ctrl-C in a chunk would) in the chunk holding run ``at``."""

    at: int = 0
    seed: int = 0

    def run_runs(self, prepared: Prepared, rng_states: np.ndarray, out: np.ndarray) -> dict:
        first = _run_index(rng_states, self.seed, 400)
        if first <= self.at < first + len(rng_states):
            raise KeyboardInterrupt
        return super().run_runs(prepared, rng_states, out)


def test_ctrl_c_from_a_callback_keeps_the_finished_runs(problem, reference):
    calls = []

    def on_chunk(done: int, total: int) -> None:
        calls.append((done, total))
        if done >= 12:
            raise KeyboardInterrupt

    with pytest.warns(EnsembleInterrupted, match="kept 12 finished runs of 200"):
        res = run_ensemble(
            MiniSSA(), problem, runs=200, seed=2024, workers=1, chunk_size=4, on_chunk=on_chunk
        )
    assert calls == [(4, 200), (8, 200), (12, 200)]
    assert res.stats["interrupted"] is True and res.stats["runs_completed"] == 12
    assert res.n_runs == 12
    assert np.array_equal(res["X"]["run"].to_numpy(), np.arange(12))
    assert np.array_equal(res["X"].to_numpy(), reference["X"].to_numpy()[:12])


def test_ctrl_c_inside_a_chunk_keeps_the_other_finished_runs_in_order(problem, reference):
    m = InterruptedAt(at=50, seed=2024)
    with pytest.warns(EnsembleInterrupted) as caught:
        res = run_ensemble(m, problem, runs=200, seed=2024, workers=2, chunk_size=10)
    runs = res["X"]["run"].to_numpy()
    assert 50 not in runs and np.all(runs < 200) and np.all(np.diff(runs) > 0)
    assert {0, 10, 20, 30, 40} <= set(runs.tolist())  # chunks before the interrupted one
    assert res.stats["runs_completed"] == runs.size and res.stats["interrupted"]
    assert runs.size % 10 == 0  # whole chunks only
    assert np.array_equal(res["X"].to_numpy(), reference["X"].to_numpy()[runs])
    assert f"kept {runs.size} finished runs of 200" in str(caught[0].message)


def test_ctrl_c_before_any_run_finished_propagates(problem):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(KeyboardInterrupt):
            run_ensemble(InterruptedAt(at=0, seed=5), problem, runs=30, seed=5, workers=1)
        with pytest.raises(KeyboardInterrupt):
            run_ensemble(InterruptedAt(at=0, seed=5), problem, runs=None, seed=5)


@dataclass(frozen=True)
class FailsAt(MiniSSA):
    at: int = 0
    seed: int = 0

    def run_runs(self, prepared: Prepared, rng_states: np.ndarray, out: np.ndarray) -> dict:
        first = _run_index(rng_states, self.seed, 400)
        if first <= self.at < first + len(rng_states):
            raise SolverError("the propensity of reaction 'death' became negative at t = 1.5")
        return super().run_runs(prepared, rng_states, out)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_chunk_raises_its_error(problem, workers):
    with pytest.raises(SolverError, match="'death'"):
        run_ensemble(FailsAt(at=33, seed=9), problem, runs=100, seed=9, workers=workers,
                     chunk_size=5)  # fmt: skip


# ==================================================================================================
# Progress
# ==================================================================================================
def test_progress_bar_appears_only_for_long_projected_runs():
    import io

    stream = io.StringIO()
    bar = ensemble_progress.ProgressBar(True, 100, stream=stream)
    bar.update(5, 0.2, 0.5)  # projected 0.7 s: too short
    assert not bar.shown
    bar.update(10, 0.5, 10.0)  # projected 10.5 s: shown
    assert bar.shown
    bar.close(100)
    assert "100/100" in stream.getvalue()
    auto = ensemble_progress.ProgressBar(None, 100, stream=io.StringIO())  # not a terminal
    auto.update(10, 0.5, 100.0)
    assert not auto.shown
    single = ensemble_progress.ProgressBar(True, 1, stream=io.StringIO())
    single.update(0, 5.0, 100.0)
    assert not single.shown  # no bar for one run


def test_forced_progress_on_an_ensemble(problem, monkeypatch, capsys):
    monkeypatch.setattr(ensemble_progress, "SHOW_AFTER_S", 0.0)
    monkeypatch.setattr(ensemble_progress, "MIN_REMAINING_S", 0.0)
    run_ensemble(MiniSSA(), problem, runs=60, seed=1, workers=1, chunk_size=5, progress=True)
    assert "60/60" in capsys.readouterr().err
    run_ensemble(MiniSSA(), problem, runs=60, seed=1, workers=1, chunk_size=5, progress=False)
    run_ensemble(MiniSSA(), problem, runs=60, seed=1, workers=1, chunk_size=5)  # not a tty
    assert capsys.readouterr().err == ""


def test_adaptive_chunks_grow_to_the_target_time():
    ch = ensemble_core._Chunker(None, slots=2, target_s=0.25)
    assert ch.next(1000) == 1  # the first chunk probes the cost of a run
    ch.observe(1, 0.001)  # 1000 runs/s -> 250 wanted, growth limited to 4x
    assert ch.next(1000) == 4
    for _ in range(5):
        ch.observe(ch.next(1000), ch.next(1000) / 1000)
    assert ch.next(10_000) == 250
    assert ch.next(100) == 50  # never beyond a fair share of what is left
    fixed = ensemble_core._Chunker(7, slots=2, target_s=0.25)
    assert fixed.next(100) == 7 and fixed.next(3) == 3


# ==================================================================================================
# Routing through scalebridge.simulate, and the method registry
# ==================================================================================================
def test_simulate_routes_ssa_to_the_ensemble(net):
    res = sb.simulate(net, "ssa", t_end=5, n_points=11, runs=50, seed=3, workers=2)
    assert res["X"].dims == ("run", "time") and res.stats["method"] == "ssa"
    assert res.stats["runs"] == 50 and res.stats["seed"] == 3 and res.stats["events"] > 0
    again = sb.simulate(net, "ssa", t_end=5, n_points=11, runs=50, seed=3, workers=1,
                        chunk_size=7)  # fmt: skip
    assert np.array_equal(res["X"].to_numpy(), again["X"].to_numpy())
    one = sb.simulate(net, "ssa", t_end=5, n_points=11, seed=3)
    assert one["X"].dims == ("time",)
    assert np.array_equal(one["X"].to_numpy(), res["X"].to_numpy()[0])


def test_simulate_record_events_is_one_run_of_the_same_stream(net):
    ev = sb.simulate(net, "ssa", t_end=5, n_points=11, seed=3, record_events=True)
    grid = sb.simulate(net, "ssa", t_end=5, n_points=11, seed=3)
    assert ev.stats["seed"] == 3
    t, x = ev.time, ev["X"].to_numpy()
    # The recorded path, read at the grid times (the state after every event at or before t),
    # is the gridded run with the same seed.
    at = x[np.searchsorted(t, TIMES, side="right") - 1]
    assert np.array_equal(at, grid["X"].to_numpy())
    # Rows: the start, one per birth or death, and the end time (the state carried on).
    assert t[0] == 0.0 and t[-1] == 5.0 and x[-1] == x[-2]
    assert np.all(np.abs(np.diff(x[:-1])) == 1)
    free = sb.simulate(net, "ssa", t_end=5, n_points=11, record_events=True)
    assert isinstance(free.stats["seed"], int)  # fresh entropy, recorded
    with pytest.raises(OptionError, match="one run"):
        sb.simulate(net, "ssa", t_end=5, runs=3, record_events=True)


def test_deterministic_methods_refuse_ensemble_options(net):
    for kwargs in ({"runs": 3}, {"seed": 1}, {"workers": 2}, {"scheduler": "tcp://x:1"},
                   {"chunk_size": 4}):  # fmt: skip
        with pytest.raises(OptionError, match="deterministic"):
            sb.simulate(net, "ode", t_end=1, **kwargs)


def test_registry_names_missing_and_planned_methods(monkeypatch):
    assert set(methods.AVAILABLE) == set(methods.METHOD_NAMES)  # every method is built
    monkeypatch.delitem(methods._CLASSES, "hybrid")  # a planned method not in this version
    with pytest.raises(OptionError, match="method 'hybrid' is not available in this version"):
        methods.get_method("hybrid")
    with pytest.raises(OptionError, match="unknown method 'gillespie'"):
        methods.get_method("gillespie")
    monkeypatch.setitem(methods._CLASSES, "cle", ("scalebridge.wellmixed.no_such_module", "CLE"))
    with pytest.raises(OptionError, match="method 'cle' is not available in this version"):
        methods.get_method("cle")
    with pytest.raises(OptionError, match=r"has no option 'dt'; its options are: .*variant"):
        methods.get_method("ssa", dt=0.1)
    assert "ssa" in methods.AVAILABLE


# ==================================================================================================
# Dask
# ==================================================================================================
@pytest.fixture(scope="module")
def ssa_reference(net: sb.ReactionNetwork) -> sb.Result:
    return sb.simulate(net, "ssa", t_end=5, n_points=11, runs=300, seed=77, workers=1)


def test_dask_local_cluster_gives_the_local_result(net, ssa_reference):
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, host="127.0.0.1", protocol="tcp",
        dashboard_address=None,
    ) as cluster:  # fmt: skip
        res = sb.simulate(net, "ssa", t_end=5, n_points=11, runs=300, seed=77,
                          scheduler=cluster.scheduler_address)  # fmt: skip
        assert res.stats["scheduler"] == cluster.scheduler_address
        assert res.stats["workers"] == 2 and res.stats["chunks"] >= 2
        assert np.array_equal(res["X"].to_numpy(), ssa_reference["X"].to_numpy())
        assert res.stats["events"] == ssa_reference.stats["events"]
        fixed = sb.simulate(net, "ssa", t_end=5, n_points=11, runs=300, seed=77,
                            scheduler=cluster.scheduler_address, chunk_size=7)  # fmt: skip
        assert np.array_equal(fixed["X"].to_numpy(), ssa_reference["X"].to_numpy())


def test_dask_worker_processes_give_the_local_result(net, ssa_reference):
    # scheduler="processes" starts LocalCluster(processes=True, n_workers=2, host="127.0.0.1"):
    # the network travels pickled (without its compiled caches) and is prepared in each worker.
    res = sb.simulate(net, "ssa", t_end=5, n_points=11, runs=300, seed=77, workers=2,
                      scheduler="processes", chunk_size=20)  # fmt: skip
    assert res.stats["scheduler"] == "processes" and res.stats["workers"] == 2
    assert res.stats["chunks"] == 15
    assert np.array_equal(res["X"].to_numpy(), ssa_reference["X"].to_numpy())


def test_unreachable_scheduler_is_an_option_error(net, monkeypatch):
    from scalebridge.ensemble import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1.0)
    with pytest.raises(OptionError, match="cannot connect"):
        sb.simulate(net, "ssa", t_end=1, runs=2, seed=1, scheduler="tcp://127.0.0.1:9")
