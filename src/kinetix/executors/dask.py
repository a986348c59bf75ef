"""Dask executor: the same tasks on a ``distributed`` cluster (local, remote, or SLURM).

Workers run the task functions and return result values; the results stream back to the
one parent process, which alone writes the manifest, exactly as with the local executor.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from kinetix.config import EXECUTOR_KINDS, ExecutorConfig
from kinetix.errors import ConfigError, MissingDependencyError, WorkerLostError
from kinetix.executors.base import TaskKind, worker_lost_message
from kinetix.executors.preflight import Preflight, run_preflight

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise MissingDependencyError("dask.distributed", "dask") from None
    return distributed


class DaskExecutor:
    """Map tasks over a ``distributed.Client``, keeping a bounded number in flight."""

    poll_seconds = 5.0  # how often a run with nothing finishing looks at its workers
    lost_after = 120.0  # seconds with no worker at all before the run gives up

    def __init__(self, client: Any, *, owns: list[Any] | None = None, in_flight: int | None = None):
        self.client = client
        self._owns = owns or []
        self.in_flight = in_flight

    @classmethod
    def from_spec(cls, spec: str, workers: int | None = None) -> DaskExecutor:
        """``dask`` (local cluster), ``dask://HOST:PORT`` / ``tcp://…`` (a scheduler), ``slurm``."""
        return cls.from_config(ExecutorConfig.coerce(spec), workers)

    @classmethod
    def from_config(
        cls,
        config: ExecutorConfig,
        workers: int | None = None,
        *,
        preflight: Preflight | None = None,
        log_directory: Path | None = None,
    ) -> DaskExecutor:
        """Start (or connect to) the cluster ``config`` names and check its workers.

        ``dask``: a LocalCluster of ``workers`` single-threaded processes on ``scheduler_host``
        (127.0.0.1 unless given). ``dask://HOST:PORT``: an existing scheduler. ``slurm``: one SLURM
        job per worker, shaped by ``config.slurm`` and checked against ``sinfo`` first; the
        first worker is awaited while the jobs' pending reasons are watched.
        """
        distributed = _import_distributed()
        owns: list[Any] = []
        try:
            if config.kind == "dask":
                n = workers or os.cpu_count() or 1
                cluster = distributed.LocalCluster(
                    n_workers=n,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    host=config.scheduler_host or "127.0.0.1",
                )
                owns.append(cluster)
                client = distributed.Client(cluster)
                owns.insert(0, client)
            elif config.kind == "address":
                client = distributed.Client(config.address)
                owns.append(client)
            elif config.kind == "slurm":
                from kinetix.executors import slurm

                slurm.check_shape(config.slurm, slurm.read_partitions())
                cluster = slurm.make_cluster(
                    config.slurm,
                    scheduler_host=config.scheduler_host,
                    log_directory=log_directory,
                )
                owns.append(cluster)
                log.info("SLURM job script:\n%s", cluster.job_script())
                cluster.scale(jobs=workers or 1)
                client = distributed.Client(cluster)
                owns.insert(0, client)
                slurm.wait_for_first_worker(cluster, client, config.slurm)
            else:
                raise ConfigError(
                    f"unknown dask executor {config.spec!r}; valid values are {EXECUTOR_KINDS}"
                )
            executor = cls(client, owns=owns, in_flight=config.in_flight)
            if preflight is not None:
                run_preflight(client, preflight)
        except BaseException:
            for obj in owns:
                with contextlib.suppress(Exception):
                    obj.close()
            raise
        return executor

    def _capacity(self) -> int:
        if self.in_flight:
            return self.in_flight
        try:
            threads = sum(self.client.nthreads().values())
        except Exception:
            threads = 1
        return max(4, 4 * threads)

    def map_unordered(
        self, fn: Callable[[T], R], items: Iterable[T], *, kind: TaskKind = TaskKind.CPU
    ) -> Iterator[R]:
        distributed = _import_distributed()
        limit = self._capacity()
        it = iter(items)
        items_of: dict[Any, T] = {}

        def submit(item: T) -> Any:
            fut = self.client.submit(fn, item, pure=False)
            items_of[fut.key] = item
            return fut

        # A worker that dies (kill -9, OOM, a pre-empted job, a node gone) is noticed by the
        # scheduler, which runs its tasks again on the others; only a task that took down
        # distributed.scheduler.allowed-failures + 1 workers comes back as KilledWorker.
        pending = {submit(x) for _, x in zip(range(limit), it)}
        alone_since: float | None = None
        try:
            while pending:
                try:
                    done, _ = distributed.wait(
                        list(pending), timeout=self.poll_seconds, return_when="FIRST_COMPLETED"
                    )
                except (TimeoutError, distributed.TimeoutError):
                    alone_since = self._check_workers(alone_since, len(pending))
                    continue
                alone_since = None
                for fut in done:
                    pending.discard(fut)
                    item = items_of.pop(fut.key)
                    try:
                        result = fut.result()  # any other exception is a bug in fn: it propagates
                    except distributed.KilledWorker as exc:
                        deaths = int(dask_config_get("distributed.scheduler.allowed-failures")) + 1
                        raise WorkerLostError(worker_lost_message(deaths, item)) from exc
                    fut.release()
                    pending.update(submit(nxt) for nxt in itertools.islice(it, 1))
                    yield result
        finally:
            for f in pending:
                f.cancel()

    def _check_workers(self, alone_since: float | None, waiting: int) -> float | None:
        """Nothing finished for a while: stop when no worker has been left for ``lost_after``.

        The scheduler reruns a lost worker's tasks on the others, but with every worker gone
        (all jobs pre-empted, the nodes lost) nothing would ever finish and the run would wait
        forever without a word.
        """
        try:
            workers = len(self.client.nthreads())
        except Exception as exc:  # the scheduler itself is unreachable: the same outcome
            log.debug("asking the scheduler for its workers failed: %s", exc)
            workers = 0
        if workers:
            return None
        now = time.monotonic()
        if alone_since is None:
            log.warning(
                "no Dask worker is left (killed, pre-empted or their nodes lost); %d task(s) "
                "wait for one for up to %.0f s",
                waiting,
                self.lost_after,
            )
            return now
        if now - alone_since >= self.lost_after:
            raise WorkerLostError(
                f"every worker has been gone for {self.lost_after:.0f} s (killed, pre-empted, or "
                f"their nodes lost) with {waiting} task(s) unfinished; what finished is "
                "recorded: rerun the command to resume"
            )
        return alone_since

    def close(self) -> None:
        for obj in self._owns:
            try:
                obj.close()
            except Exception as exc:  # closing is best effort; say so rather than hide it
                log.warning("closing %s failed: %s", type(obj).__name__, exc)
        self._owns = []

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def dask_config_get(key: str) -> Any:
    import dask

    return dask.config.get(key)
