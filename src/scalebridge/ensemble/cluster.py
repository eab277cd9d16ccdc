"""Running chunks of an ensemble on a Dask cluster (``dask.distributed``): an existing one (an
address, a ``distributed.Client`` or a cluster object), or, with ``scheduler="processes"``, a
local cluster of worker processes started for the ensemble and closed after it.

The method and the problem are scattered once to every worker (the network pickles without its
compiled caches: :meth:`ReactionNetwork.__getstate__`).  A worker prepares the problem on the first
chunk it runs and keeps it, keyed by the ensemble's token, for the chunks that follow (a few recent
ensembles are kept per worker process).  Each chunk task derives its runs' streams from the root
seed and its run indices (:mod:`scalebridge.ensemble.seeding`) and returns its rows, so the result
is identical to a local run with the same seed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import OptionError
from .local import run_chunk

__all__ = ["DaskBackend"]

CONNECT_TIMEOUT_S = 20.0
# scheduler="processes": a local cluster of worker processes, one thread each, started for the
# ensemble -- for methods whose runs hold the interpreter lock much of the time (models whose
# SBML events are handled in Python between compiled stretches), where threads cannot help.
PROCESSES = "processes"
_KEEP = 4  # prepared problems kept per worker process (the most recent ensembles)
_prepared_cache: OrderedDict[str, Any] = OrderedDict()
_prepared_lock = threading.Lock()


@dataclass(frozen=True)
class _Work:
    """What every chunk of one ensemble needs, scattered once to the workers."""

    token: str
    method: Any
    problem: Any
    n_vars: int


def _prepared(work: _Work) -> Any:
    with _prepared_lock:  # worker threads of one process share the cache
        prepared = _prepared_cache.get(work.token)
        if prepared is None:
            prepared = work.method.prepare(work.problem)
            _prepared_cache[work.token] = prepared
            while len(_prepared_cache) > _KEEP:
                _prepared_cache.popitem(last=False)
        else:
            _prepared_cache.move_to_end(work.token)
        return prepared


def _chunk_task(work: _Work, seed: int, start: int, stop: int) -> tuple[np.ndarray, dict, float]:
    """Runs ``start .. stop-1`` on a worker; returns (rows, run statistics, seconds)."""
    prepared = _prepared(work)
    out = np.full((stop - start, work.problem.times.size, work.n_vars), np.nan)
    stats, seconds = run_chunk(work.method, prepared, seed, start, stop, out)
    return out, stats, seconds


def _local_processes(workers: int | None) -> tuple[Any, Any]:
    """A Dask cluster of single-threaded worker processes on this machine, and its client."""
    from distributed import Client, LocalCluster

    from .local import default_workers

    cluster = LocalCluster(
        n_workers=workers or default_workers(), threads_per_worker=1, processes=True,
        host="127.0.0.1", dashboard_address=None,
    )  # fmt: skip
    try:
        return cluster, Client(cluster, set_as_default=False)
    except BaseException:
        cluster.close()
        raise


def _connect(scheduler: Any) -> tuple[Any, bool, str]:
    """(client, whether we own it, address) for an address, a Client or a cluster object."""
    from distributed import Client

    if isinstance(scheduler, Client):
        return scheduler, False, str(scheduler.scheduler_info().get("address", "?"))
    address = getattr(scheduler, "scheduler_address", scheduler)
    if not isinstance(address, str) or not address:
        raise OptionError(
            f"scheduler must be an address such as 'tcp://host:8786' or a distributed.Client, "
            f"not {scheduler!r}"
        )
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as e:
        raise OptionError(f"scheduler '{address}': cannot connect ({e})") from None
    return client, True, address


class DaskClientBase:
    """What every Dask backend shares: the client (connected, or a local process cluster that
    it owns), waiting for the first finished task, cancelling, closing and describing."""

    _cluster: Any
    client: Any
    _own: bool
    address: str
    workers: int | None

    def _open(self, scheduler: Any, workers: int | None) -> None:
        self._cluster = None
        if scheduler == PROCESSES:
            self._cluster, self.client = _local_processes(workers)
            self._own, self.address = True, PROCESSES
        else:
            self.client, self._own, self.address = _connect(scheduler)

    def wait(self, handles: set[Any], timeout: float) -> set[Any]:
        from distributed import wait

        try:
            with self.client.as_current():  # wait() uses the current client, not ours otherwise
                wait(list(handles), timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            pass
        return {h for h in handles if h.done()}

    def cancel(self, handles: set[Any]) -> set[Any]:
        """Cancel every task not finished yet (the cluster stops them); nothing to wait for."""
        pending = [h for h in handles if not h.done()]
        if pending:
            self.client.cancel(pending)
        return set()

    def _close_client(self) -> None:
        if self._own:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def describe(self) -> dict[str, Any]:
        return {"workers": self.workers, "scheduler": self.address, "backend": "dask"}


class DaskBackend(DaskClientBase):
    """Chunks as tasks on a Dask cluster; results are copied into ``out`` as they arrive."""

    target_seconds = 1.0  # per chunk: amortises task and transfer overheads

    def __init__(
        self,
        scheduler: Any,
        method: Any,
        problem: Any,
        seed: int,
        out: np.ndarray,
        workers: int | None,
        token: str,
    ):
        self._open(scheduler, workers)
        if scheduler == PROCESSES:
            workers = None  # it was the number of processes
        try:
            threads = sum(self.client.nthreads().values())
            if threads == 0:
                try:
                    self.client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
                except TimeoutError:
                    raise OptionError(
                        f"scheduler '{self.address}': no workers joined within "
                        f"{CONNECT_TIMEOUT_S:g} s"
                    ) from None
                threads = sum(self.client.nthreads().values())
            self.workers = threads
            # Two chunks per worker thread in flight keep the cluster busy while results travel.
            self.slots = workers if workers is not None else 2 * threads
            work = _Work(token, method, problem, out.shape[2])
            [self._work] = self.client.scatter([work], broadcast=True, hash=False)
        except BaseException:
            self._close_client()
            raise
        self.seed = seed
        self.out = out
        self.token = token

    def submit(self, start: int, stop: int) -> Any:
        return self.client.submit(
            _chunk_task, self._work, self.seed, start, stop,
            key=f"scalebridge-chunk-{self.token}-{start}-{stop}", pure=False,
        )  # fmt: skip

    def result(self, handle: Any, start: int, stop: int) -> tuple[dict[str, Any], float]:
        rows, stats, seconds = handle.result()
        self.out[start:stop] = rows
        return stats, seconds

    def close(self, wait: bool) -> None:
        try:
            self._work.release()
        finally:
            self._close_client()
