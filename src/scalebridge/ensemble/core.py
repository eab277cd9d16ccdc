"""Ensembles of stochastic runs: seeding, chunking, local or Dask execution, Ctrl-C.

A stochastic method implements ``prepare(problem)`` and ``run_runs(prepared, rng_states, out)``
(:mod:`scalebridge.wellmixed.stochastic_base`).  :func:`run_ensemble` splits the runs
``0 .. R-1`` into contiguous chunks and hands them to a backend -- a pool of threads on the local
cores (:mod:`.local`) or a Dask cluster (:mod:`.cluster`) -- keeping a few chunks in flight per
worker.  Run ``r`` draws only from its own stream (:mod:`.seeding`), so the result is bit-identical
whatever the number of workers, the chunk size or the backend.

Chunk sizes adapt to the runs' cost unless ``chunk_size`` is given: the first chunks hold one
run, and each next chunk is sized from the latest measured rate to take about the backend's
target time (a quarter of a second locally, a second on a cluster), growing at most fourfold per
step and never beyond a fair share (remaining runs / chunks in flight), which keeps the
end of the ensemble balanced.  Chunks are short so that Ctrl-C is answered quickly: on
KeyboardInterrupt no further chunk starts, the chunks already running finish (a second Ctrl-C
abandons them), and the result holds every finished run, in run order, with its run index as the
``run`` coordinate; stats say ``interrupted`` and ``runs_completed``, and an
:class:`EnsembleInterrupted` warning says how many runs were kept.  With no run finished the
KeyboardInterrupt propagates.
"""

from __future__ import annotations

import math
import time
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import OptionError
from ..problem import TimeCourse, check_vars
from ..results import RUN, Result
from .local import ThreadBackend, default_workers
from .progress import ProgressBar
from .seeding import root_seed

__all__ = ["EnsembleInterrupted", "run_ensemble"]

POLL_S = 0.2  # the main thread wakes this often while chunks run (Ctrl-C, progress)
MAX_GROWTH = 4


class EnsembleInterrupted(UserWarning):
    """An ensemble was stopped by Ctrl-C; the result holds the runs that had finished."""


class _Chunker:
    """Chunk sizes: fixed, or adapted to the measured cost of a run (module docstring)."""

    def __init__(self, fixed: int | None, slots: int, target_s: float):
        self.fixed = fixed
        self.slots = max(1, slots)
        self.target_s = target_s
        self.size = 1
        self.rate: float | None = None  # runs per second of one worker, from the latest chunk

    def next(self, remaining: int) -> int:
        if self.fixed is not None:
            return min(self.fixed, remaining)
        fair = math.ceil(remaining / self.slots)
        return max(1, min(self.size, fair, remaining))

    def observe(self, runs: int, seconds: float) -> None:
        self.rate = runs / max(seconds, 1e-9)
        wanted = max(1, int(self.rate * self.target_s))
        self.size = max(1, min(wanted, MAX_GROWTH * max(self.size, runs)))


def _check_runs(runs: int | None) -> int:
    if runs is None:
        return 1
    if isinstance(runs, bool) or not isinstance(runs, int | np.integer) or runs < 1:
        raise OptionError(f"runs must be a positive integer, got {runs!r}")
    return int(runs)


def _check_count(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise OptionError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def run_ensemble(
    method: Any,
    problem: TimeCourse,
    *,
    runs: int | None = None,
    seed: int | None = None,
    workers: int | None = None,
    scheduler: Any = None,
    chunk_size: int | None = None,
    progress: bool | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> Result:
    """Run ``runs`` independent trajectories of ``problem`` with a stochastic ``method``.

    ``runs`` None or 1 gives one trajectory, dims ``("time",)``; more give dims
    ``("run", "time")``.  Species are molecule counts.  ``seed`` (a non-negative integer) fixes
    every stream: run ``r`` uses ``numpy.random.SeedSequence(seed).spawn(runs)[r]``; None draws
    fresh entropy, recorded as ``stats["seed"]`` so the ensemble can be repeated.

    ``workers``: threads on this machine (default: every core this process may use); with
    ``scheduler`` (an address ``"tcp://host:port"``, a ``distributed.Client`` or a cluster
    object) chunks run on that Dask cluster and ``workers`` is the number of chunks kept in
    flight (default: twice its worker threads); ``scheduler="processes"`` starts a local Dask
    cluster of ``workers`` single-threaded processes for the ensemble (for runs that hold the
    interpreter lock, such as models with SBML events; see :mod:`.local`).  ``chunk_size``
    fixes the runs per chunk (default: adaptive).  ``progress``: None shows a bar on stderr for
    ensembles projected to take more than a few seconds when stderr is a terminal; True/False
    force it on/off.
    ``on_chunk(done, runs)`` is called in the calling thread after every finished chunk.

    Stats: ``method``, ``options``, ``seed``, ``runs``, ``runs_completed``, ``interrupted``,
    ``workers``, ``scheduler``, ``chunk_size`` (given, or ``"auto"``), ``chunks``,
    ``wall_time_s``, ``versions``, and the sums of the method's run statistics (``events``, ...).
    Ctrl-C: see the module docstring.
    """
    t_start = time.perf_counter()
    if not callable(getattr(method, "run_runs", None)):
        raise OptionError(f"method '{getattr(method, 'name', method)}' does not run ensembles")
    n = _check_runs(runs)
    chunk_size = _check_count("chunk_size", chunk_size)
    workers = _check_count("workers", workers)
    entropy = root_seed(seed)
    if problem.units == "concentration":
        raise OptionError(
            f"method '{method.name}' reports species as molecule counts: units "
            "'concentration' does not apply (use 'model' or 'amount')"
        )
    names = problem.output_names()
    check_vars(problem.network, names)

    prepared = method.prepare(problem)  # model errors (e.g. non-integer stoichiometry) show here
    out = np.full((n, problem.times.size, len(names)), np.nan)
    backend: Any
    if scheduler is not None:
        from .cluster import DaskBackend

        backend = DaskBackend(
            scheduler, method, problem, entropy, out, workers, token=uuid.uuid4().hex
        )
    else:
        threads = min(workers or default_workers(), n)
        backend = ThreadBackend(method, prepared, entropy, out, threads)

    finished = np.zeros(n, dtype=bool)
    totals: dict[str, Any] = {}
    counters = {"chunks": 0, "done": 0}
    bar = ProgressBar(progress, n)
    chunker = _Chunker(chunk_size, backend.slots, backend.target_seconds)
    inflight: dict[Any, tuple[int, int]] = {}
    next_run = 0
    interrupted = False

    def collect(handle: Any) -> None:
        start, stop = inflight.pop(handle)
        stats, seconds = backend.result(handle, start, stop)
        finished[start:stop] = True
        counters["chunks"] += 1
        counters["done"] += stop - start
        _accumulate(totals, stats)
        chunker.observe(stop - start, seconds)

    t_loop = time.perf_counter()
    clean = False
    try:
        while next_run < n or inflight:
            while next_run < n and len(inflight) < backend.slots:
                k = chunker.next(n - next_run)
                inflight[backend.submit(next_run, next_run + k)] = (next_run, next_run + k)
                next_run += k
            for handle in backend.wait(set(inflight), POLL_S):
                collect(handle)
                if on_chunk is not None:
                    on_chunk(counters["done"], n)
            if chunker.rate is not None:
                left = n - counters["done"]
                parallel = max(1, min(backend.workers, left))
                bar.update(
                    counters["done"], time.perf_counter() - t_loop, left / (chunker.rate * parallel)
                )
        clean = True
    except KeyboardInterrupt:
        interrupted = True
        clean = _drain(backend, inflight, collect)
    finally:
        bar.close(counters["done"])
        if not clean and inflight:
            backend.cancel(set(inflight))
        backend.close(wait=clean)

    done = int(counters["done"])
    if interrupted and done == 0:
        raise KeyboardInterrupt
    stats: dict[str, Any] = {
        "method": method.name,
        "options": method.options(),
        "seed": entropy,
        "runs": n,
        "runs_completed": done,
        "interrupted": interrupted,
        **backend.describe(),
        "chunk_size": chunk_size if chunk_size is not None else "auto",
        "chunks": counters["chunks"],
        "streams": "numpy.random.SeedSequence(seed).spawn(runs)[run] -> xoshiro256+",
    }
    stats.update(totals)
    stats["wall_time_s"] = time.perf_counter() - t_start
    if interrupted:
        warnings.warn(
            f"interrupted: kept {done} finished run{'s' if done != 1 else ''} of {n}",
            EnsembleInterrupted,
            stacklevel=2,
        )
    return _result(problem, names, out, finished, n, stats)


def _drain(backend: Any, inflight: dict[Any, tuple[int, int]], collect: Callable) -> bool:
    """After Ctrl-C: start no more chunks, let the running ones finish and keep them.

    Returns True when every running chunk was waited for (False after a second Ctrl-C).
    """
    running = backend.cancel(set(inflight))
    try:
        while running:
            running -= backend.wait(running, POLL_S)
    except KeyboardInterrupt:
        return False
    finally:
        for handle in list(inflight):
            try:
                if handle.done():
                    collect(handle)
            except BaseException:  # a chunk that failed or was interrupted is not kept
                inflight.pop(handle, None)
    return True


def _accumulate(totals: dict[str, Any], stats: dict[str, Any]) -> None:
    """Add a chunk's run statistics (numbers add up; anything else is kept from the first)."""
    for key, value in stats.items():
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            totals.setdefault(key, value)
        else:
            value = value.item() if isinstance(value, np.number) else value
            totals[key] = totals.get(key, 0) + value


def _result(
    problem: TimeCourse,
    names: list[str],
    out: np.ndarray,
    finished: np.ndarray,
    n: int,
    stats: dict[str, Any],
) -> Result:
    net = problem.network
    kinds = {v: net.kind_of(v) or "" for v in names}
    quantities = {v: "amount" for v in names if v in net.species_map}
    if n == 1:
        return Result.from_arrays(
            problem.times, (names, out[0]), runs=False, kinds=kinds, quantities=quantities,
            stats=stats,
        )  # fmt: skip
    index = np.flatnonzero(finished)
    rows = out if index.size == n else out[index]
    res = Result.from_arrays(
        problem.times, (names, rows), runs=True, kinds=kinds, quantities=quantities, stats=stats
    )
    if index.size != n:
        res = Result(res.data.assign_coords({RUN: index}), res.stats)
    return res
