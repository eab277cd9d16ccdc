"""A reproducible parallel map over independent tasks (optimizer starts, profile branches, ...).

:func:`map_tasks` runs ``fn(state, task)`` for every task and returns the results **in task
order**, so anything computed from them is identical for any number of workers and any
backend: a task gets nothing from its neighbours, and randomness (if any) must be drawn by the
caller and put into the tasks (e.g. from ``numpy.random.SeedSequence(seed)`` in the parent).

``state = prepare(context)`` is built once per worker (thread or process) and reused by every
task that worker runs; ``context`` is sent once per worker (pickled for processes and Dask), so
a problem and its compiled objective are not rebuilt or re-sent per task.  ``fn``, ``prepare``,
``context`` and the tasks must pickle for processes and Dask (module-level functions).

Backends:

* ``workers == 1`` (and no scheduler): in the calling thread, one task after another;
* ``workers > 1`` (the default is every core this process may use): a local pool of worker
  processes (``concurrent.futures``; started by ``fork`` when the calling process runs a
  single Python thread, else by ``forkserver``/``spawn``, which re-import the main module: a
  script then needs the ``if __name__ == "__main__":`` guard).
  Processes, not threads, because the tasks this is built for (PEtab objectives) spend most
  of their time in Python: measured on the two-core machine, 2 x 20 Boehm gradients took 1.15 s
  serially and 1.13 s on two threads, i.e. threads gain nothing;
* ``scheduler="threads"``: a thread pool, for tasks that release the interpreter lock;
* ``scheduler="processes"`` or a Dask address / ``distributed.Client`` / cluster object: Dask
  (:mod:`.cluster`'s connection helpers), the context scattered once to every worker.

Ctrl-C: no further task starts, the running ones finish (worker processes ignore SIGINT so
that they can) and are kept; a second Ctrl-C abandons them.  The result then holds every
finished task, ``interrupted`` is True, and a :class:`~.core.EnsembleInterrupted` warning says
how many were kept; with none finished the KeyboardInterrupt propagates.  An exception raised
by a task cancels the others and propagates.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import signal
import threading
import time
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import OptionError
from .cluster import DaskClientBase
from .core import EnsembleInterrupted
from .local import default_workers
from .progress import ProgressBar

__all__ = ["TaskRun", "map_tasks"]

POLL_S = 0.2
_KEEP = 4  # prepared states kept per worker process (the most recent maps)
_states: OrderedDict[str, Any] = OrderedDict()
_states_lock = threading.Lock()
_thread_states = threading.local()


@dataclass
class TaskRun:
    """Results of :func:`map_tasks`: ``results[i]`` is task ``i``'s result (None when it did
    not finish: only after Ctrl-C), ``finished[i]`` whether it did."""

    results: list[Any]
    finished: list[bool]
    interrupted: bool
    stats: dict[str, Any] = field(default_factory=dict)


def _process_state(token: str, prepare: Callable[[Any], Any], context: Any) -> Any:
    """The prepared state of map ``token`` in this worker process (built on first use)."""
    with _states_lock:
        state = _states.get(token)
        if state is None:
            state = prepare(context)
            _states[token] = state
            while len(_states) > _KEEP:
                _states.popitem(last=False)
        else:
            _states.move_to_end(token)
        return state


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _process_task(
    token: str,
    prepare: Callable[[Any], Any],
    context: Any,
    fn: Callable[[Any, Any], Any],
    task: Any,
) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(_process_state(token, prepare, context), task)
    return out, time.perf_counter() - t0


def _thread_task(
    token: str,
    prepare: Callable[[Any], Any],
    context: Any,
    fn: Callable[[Any, Any], Any],
    task: Any,
) -> tuple[Any, float]:
    t0 = time.perf_counter()
    states = getattr(_thread_states, "states", None)
    if states is None:
        states = _thread_states.states = {}
    if token not in states:
        states.clear()
        states[token] = prepare(context)
    out = fn(states[token], task)
    return out, time.perf_counter() - t0


def _start_method() -> str:
    """``fork`` when this process runs a single Python thread (the workers then inherit the
    loaded modules and compiled kernels, and scripts without a ``__main__`` guard work);
    otherwise ``forkserver`` (or ``spawn``), since forking a multi-threaded process can
    deadlock."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


class _Pool:
    """concurrent.futures pool (threads or processes) behind one small interface."""

    def __init__(self, kind: str, workers: int, token: str, prepare: Any, context: Any, fn: Any):
        self.kind, self.workers = kind, workers
        self._args = (token, prepare, context, fn)
        self._pool: cf.Executor
        if kind == "threads":
            self._task: Any = _thread_task
            self._pool = cf.ThreadPoolExecutor(workers, thread_name_prefix="scalebridge-task")
        else:
            ctx = multiprocessing.get_context(_start_method())
            self._task = _process_task
            self._pool = cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_ignore_sigint)

    def submit(self, task: Any) -> Any:
        token, prepare, context, fn = self._args
        return self._pool.submit(self._task, token, prepare, context, fn, task)

    def wait(self, handles: set[Any], timeout: float) -> set[Any]:
        done, _ = cf.wait(handles, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return set(done)

    def cancel(self, handles: set[Any]) -> set[Any]:
        return {h for h in handles if not h.cancel()}

    def close(self, wait: bool) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def describe(self) -> dict[str, Any]:
        return {"workers": self.workers, "scheduler": None, "backend": self.kind}


class _Dask(DaskClientBase):
    """Tasks on a Dask cluster; the context is scattered once to every worker."""

    def __init__(self, scheduler: Any, workers: int | None, token: str, prepare: Any, context: Any,
                 fn: Any):  # fmt: skip
        self._open(scheduler, workers)
        try:
            self.client.wait_for_workers(1, timeout=20.0)
            self.workers = sum(self.client.nthreads().values())
            [self._context] = self.client.scatter([context], broadcast=True, hash=False)
        except BaseException:
            self._close_client()
            raise
        self._token, self._prepare, self._fn = token, prepare, fn
        self._count = 0

    def submit(self, task: Any) -> Any:
        self._count += 1
        return self.client.submit(
            _process_task, self._token, self._prepare, self._context, self._fn, task,
            key=f"scalebridge-task-{self._token}-{self._count}", pure=False,
        )  # fmt: skip

    def close(self, wait: bool) -> None:
        try:
            self._context.release()
        finally:
            self._close_client()


def _check_workers(workers: int | None) -> int | None:
    if workers is None:
        return None
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise OptionError(f"workers must be a positive integer, got {workers!r}")
    return workers


def map_tasks(
    fn: Callable[[Any, Any], Any],
    tasks: Sequence[Any],
    *,
    prepare: Callable[[Any], Any] | None = None,
    context: Any = None,
    workers: int | None = None,
    scheduler: Any = None,
    progress: bool | None = None,
    label: str = "tasks",
) -> TaskRun:
    """``[fn(prepare(context), task) for task in tasks]``, in parallel, in task order.

    ``prepare`` defaults to the identity.  ``workers``: parallel tasks (default: every core
    this process may use; never more than there are tasks); ``scheduler``: None (local),
    ``"threads"``, ``"processes"`` (a local Dask cluster) or a Dask address / client (see the
    module docstring).  ``progress``: None shows a bar for maps projected to take more than a
    few seconds when stderr is a terminal; True/False force it on/off.

    Stats: ``tasks``, ``completed``, ``interrupted``, ``workers``, ``scheduler``, ``backend``,
    ``task_seconds`` (summed over tasks), ``wall_time_s``.
    """
    t_start = time.perf_counter()
    n = len(tasks)
    workers = _check_workers(workers)
    prep: Callable[[Any], Any] = prepare if prepare is not None else _identity
    token = uuid.uuid4().hex
    results: list[Any] = [None] * n
    finished = [False] * n
    n_local = min(workers or default_workers(), max(n, 1))
    backend: Any = None
    if scheduler is None and n_local > 1:
        backend = _Pool("processes", n_local, token, prep, context, fn)
    elif scheduler == "threads":
        backend = _Pool("threads", n_local, token, prep, context, fn)
    elif scheduler is not None:
        backend = _Dask(scheduler, workers, token, prep, context, fn)
    bar = ProgressBar(progress, n, label=label)
    busy = {"seconds": 0.0}
    counted = [0]
    interrupted = False

    def record(i: int, out: Any, seconds: float) -> None:
        results[i], finished[i] = out, True
        busy["seconds"] += seconds
        counted[0] += 1
        left = n - counted[0]
        par = 1 if backend is None else max(1, min(backend.workers, left))
        bar.update(counted[0], time.perf_counter() - t_start,
                   left * busy["seconds"] / counted[0] / par)  # fmt: skip

    try:
        if backend is None:
            state = prep(context)
            for i, task in enumerate(tasks):
                try:
                    t0 = time.perf_counter()
                    out = fn(state, task)
                except KeyboardInterrupt:
                    interrupted = True
                    break
                record(i, out, time.perf_counter() - t0)
        else:
            interrupted = _run_pool(backend, tasks, record)
    finally:
        bar.close(counted[0])
    done = counted[0]
    if interrupted and done == 0:
        raise KeyboardInterrupt
    if interrupted:
        warnings.warn(
            f"interrupted: kept {done} finished task{'s' if done != 1 else ''} of {n}",
            EnsembleInterrupted,
            stacklevel=2,
        )
    desc = backend.describe() if backend is not None else {
        "workers": 1, "scheduler": None, "backend": "serial"}  # fmt: skip
    stats = {
        "tasks": n,
        "completed": done,
        "interrupted": interrupted,
        **desc,
        "task_seconds": busy["seconds"],
        "wall_time_s": time.perf_counter() - t_start,
    }
    return TaskRun(results, finished, interrupted, stats)


def _identity(context: Any) -> Any:
    return context


def _run_pool(
    backend: Any, tasks: Sequence[Any], record: Callable[[int, Any, float], None]
) -> bool:
    """Keep ``2 x workers`` tasks in flight; returns whether Ctrl-C stopped the map."""
    n = len(tasks)
    inflight: dict[Any, int] = {}
    nxt = 0
    clean = False
    interrupted = False

    def collect(handle: Any) -> None:
        i = inflight.pop(handle)
        out, seconds = handle.result()
        record(i, out, seconds)

    try:
        while nxt < n or inflight:
            while nxt < n and len(inflight) < 2 * backend.workers:
                inflight[backend.submit(tasks[nxt])] = nxt
                nxt += 1
            for handle in backend.wait(set(inflight), POLL_S):
                collect(handle)
        clean = True
    except KeyboardInterrupt:
        interrupted = True
        running = backend.cancel(set(inflight))
        try:
            while running:
                running -= backend.wait(running, POLL_S)
            clean = True
        except KeyboardInterrupt:
            pass
        finally:
            for handle in list(inflight):
                try:
                    if handle.done() and not handle.cancelled():
                        collect(handle)
                except BaseException:  # a task that failed or was interrupted is not kept
                    inflight.pop(handle, None)
    finally:
        if not clean and inflight:
            backend.cancel(set(inflight))
        backend.close(wait=clean)
    return interrupted
