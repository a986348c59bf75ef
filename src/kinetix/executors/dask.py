"""Dask executor: the same tasks on a ``distributed`` cluster (local, remote, or SLURM).

Workers run the task functions and return result values; the results stream back to the
one parent process, which alone writes the manifest, exactly as with the local executor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from kinetix.config import EXECUTOR_KINDS, ExecutorConfig
from kinetix.errors import ConfigError, MissingDependencyError, WorkerLostError
from kinetix.executors.base import (
    TaskKind,
    TaskQueue,
    describe_task,
    stream_results,
    worker_lost_message,
)
from kinetix.executors.preflight import Preflight, run_preflight

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


# What every Dask server kinetix starts (its scheduler, nannies and workers) does besides the
# tasks, turned down: by default each samples its threads' stacks every 10 ms (the profiler,
# for a dashboard kinetix never opens), checks its event loop every 20 ms and reads host
# counters every 500 ms. Measured on a 2-worker LocalCluster (BENCHMARKS.md, "Cluster
# executors"): 0.10 CPU-s per second of wall with nothing to do, 0.013 with these. That cost
# runs while tasks run too, so on a loaded machine, where a job takes longer, it grew to most
# of the gap between Dask and the local pool.
#
# And no MALLOC_TRIM_THRESHOLD_=65536 in the workers (Dask's nanny sets it before it starts a
# worker, to hand freed memory back to the OS): setting it also fixes glibc's mmap threshold
# at 128 KiB, so every decoded frame buffer (a 340x256 frame is 130 KB) was mmap'd, zeroed
# page by page and unmapped again, in the worker (verify's PyAV decode: ~500 page faults a
# clip against ~20 on the local pool) and in every ffmpeg it started, which inherits it
# (~4,900 against ~4,000 a clip for frames). Kinetix workers hold no data between tasks.
QUIET: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "500ms",
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,  # None: not set
}


def quiet_environment() -> dict[str, str]:
    """``QUIET`` as the environment variables a worker started elsewhere (a SLURM job) reads.

    Dask lower-cases a variable's name into its key, so a key with capitals in its last part
    (an environment variable's name) goes in a dict literal set on its parent, which Dask
    merges into the parent's defaults rather than replacing them.
    """
    env: dict[str, str] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in QUIET.items():
        parent, _, last = key.rpartition(".")
        if last != last.lower():
            nested.setdefault(parent, {})[last] = value
        else:
            env[_variable(key)] = str(value)
    for parent, values in nested.items():
        env[_variable(parent)] = repr(values)
    return env


def _variable(key: str) -> str:
    return "DASK_" + key.upper().replace(".", "__").replace("-", "_")


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
        import dask

        owns: list[Any] = []
        try:
            # servers kinetix starts get its settings; someone else's scheduler keeps its own
            quiet: Any = dask.config.set(QUIET if config.kind != "address" else {})
            with quiet:
                cls._start(config, workers, distributed, owns, log_directory)
            client = owns[0]
            executor = cls(client, owns=owns, in_flight=config.in_flight)
            if preflight is not None:
                run_preflight(client, preflight)
        except BaseException:
            for obj in owns:
                with contextlib.suppress(Exception):
                    obj.close()
            raise
        return executor

    @staticmethod
    def _start(
        config: ExecutorConfig,
        workers: int | None,
        distributed: Any,
        owns: list[Any],
        log_directory: Path | None,
    ) -> None:
        """Start (or reach) the cluster, appending what to close to ``owns``, the client first."""
        if config.kind == "address":
            owns.append(distributed.Client(config.address))
            return
        if config.kind == "dask":
            cluster = distributed.LocalCluster(
                n_workers=workers or os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                host=config.scheduler_host or "127.0.0.1",
            )
            owns.append(cluster)
            owns.insert(0, distributed.Client(cluster))
            return
        if config.kind != "slurm":
            raise ConfigError(
                f"unknown dask executor {config.spec!r}; valid values are {EXECUTOR_KINDS}"
            )
        from kinetix.executors import slurm

        slurm.check_shape(config.slurm, slurm.read_partitions())
        cluster = slurm.make_cluster(
            config.slurm, scheduler_host=config.scheduler_host, log_directory=log_directory
        )
        owns.append(cluster)
        log.info("SLURM job script:\n%s", cluster.job_script())
        cluster.scale(jobs=workers or 1)
        client = distributed.Client(cluster)
        owns.insert(0, client)
        slurm.wait_for_first_worker(cluster, client, config.slurm)

    def _threads(self) -> int:
        """Worker threads on the cluster now (1 when the scheduler cannot say)."""
        try:
            return max(1, sum(self.client.nthreads().values()))
        except Exception:
            return 1

    def _capacity(self, threads: int | None = None) -> int:
        if self.in_flight:
            return self.in_flight
        return max(4, 4 * (threads or self._threads()))

    def map_unordered(
        self, fn: Callable[[T], R], items: Iterable[T], *, kind: TaskKind = TaskKind.CPU
    ) -> Iterator[R]:
        return stream_results(self.open_queue(fn, kind=kind), items)

    def open_queue(
        self,
        fn: Callable[[T], R],
        *,
        kind: TaskKind = TaskKind.CPU,
        limit: int | None = None,
        batch: bool = False,
    ) -> TaskQueue[T, R]:
        """``limit`` Dask tasks on the cluster at once (default ``in_flight``, else 4 per
        thread); ``batch`` (CPU tasks only) lets short ones share a Dask task."""
        threads = self._threads()
        return _DaskQueue(
            self, fn, limit or self._capacity(threads), batch=batch and kind is TaskKind.CPU,
            threads=threads,
        )  # fmt: skip

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


# Short tasks ride in batches: every Dask task costs ~7 ms of CPU in the parent (client and
# scheduler) and ~5 ms in its worker on this kind of machine (BENCHMARKS.md), +45% on a 30 ms
# quick verify of a clip; a batch that runs for BATCH_SECONDS makes that under 2%.
BATCH_SECONDS = 1.0
MAX_BATCH = 64


def run_batch(fn: Callable[[T], R], items: list[T]) -> tuple[list[R], Exception | None, float]:
    """Run on a worker: ``fn`` over ``items`` in order; the results, the exception that
    stopped it (a bug in ``fn``; the results before it still count) and the seconds it took."""
    started = time.perf_counter()
    results: list[R] = []
    for item in items:
        try:
            results.append(fn(item))
        except Exception as exc:
            note = getattr(exc, "add_note", None)  # Python 3.11+: where it was raised
            if note is not None:
                note("on the worker:\n" + "".join(traceback.format_exception(exc)).rstrip())
            return results, exc, time.perf_counter() - started
    return results, None, time.perf_counter() - started


def _batch_name(batch: list[Any]) -> str:
    name = describe_task(batch[0]) if batch else "?"
    return name if len(batch) <= 1 else f"{name} or one of the {len(batch) - 1} batched with it"


class _DaskQueue(Generic[T, R]):
    """Tasks on the cluster, their results gathered in the background as they finish.

    ``distributed.as_completed(with_results=True)`` fetches each result on the client's event
    loop the moment its task ends, so ``collect`` takes everything ready in one go instead of a
    ``wait`` and a ``result()`` round trip per task. A worker that dies (kill -9, OOM, a
    pre-empted job, a node gone) is noticed by the scheduler, which runs its tasks again on the
    others; only a task that took down ``distributed.scheduler.allowed-failures`` + 1 workers
    comes back as ``KilledWorker``.

    With ``batch``, items go to the cluster several to a Dask task (``run_batch``): one each
    at first, then as many as run for about ``BATCH_SECONDS`` by the time the finished ones
    took (at most doubling from one result to the next, at most ``MAX_BATCH``). ``limit``
    bounds the Dask tasks on the cluster, so ``capacity`` (in items) grows with the batch.
    A part-filled batch goes out on ``collect`` only when fewer than two Dask tasks per worker
    thread are left on the cluster (a worker would soon have nothing to run): sent at every
    ``collect``, as they were, most batches went out one or two items short of their size
    whenever it grew, so frames ran ~2.4 clips per Dask task instead of ~5 (BENCHMARKS.md).
    A batch whose worker dies runs again whole elsewhere, as one task would: outputs are
    written atomically, so a clip done twice is only done again.
    """

    def __init__(
        self,
        executor: DaskExecutor,
        fn: Callable[[T], R],
        limit: int,
        *,
        batch: bool = False,
        threads: int = 1,
    ):
        distributed = _import_distributed()
        self._executor = executor
        self._client = executor.client
        self._fn = fn
        self._limit = max(1, limit)
        self._batching = batch
        # below this many Dask tasks on the cluster, a part-filled batch is sent as it is
        self._low = max(1, min(self._limit, 2 * threads))
        self._size = 1  # items per Dask task
        self._per_item: float | None = None  # seconds an item takes on a worker (smoothed)
        self._buffer: list[T] = []  # submitted, not yet on the cluster (a batch filling up)
        self._batches: dict[Any, list[T]] = {}  # future key -> its items
        self._count = 0  # items submitted and not yet collected
        self._done = distributed.as_completed(
            loop=self._client.loop, with_results=True, raise_errors=False
        )
        self._killed = distributed.KilledWorker
        self._error: BaseException | None = None
        self._quiet_since = time.monotonic()  # the last time a result came (or the start)
        self._alone_since: float | None = None  # since when no worker has been left

    @property
    def capacity(self) -> int:
        return self._limit * self._size

    @property
    def in_flight(self) -> int:
        return self._count

    @property
    def batch_size(self) -> int:
        return self._size

    def submit(self, item: T) -> None:
        self._count += 1
        if not self._batching:
            self._send([item])
            return
        self._buffer.append(item)
        if len(self._buffer) >= self._size:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            batch, self._buffer = self._buffer, []
            self._send(batch)

    def _send(self, batch: list[T]) -> None:
        if self._batching:
            future = self._client.submit(run_batch, self._fn, batch, pure=False)
        else:
            future = self._client.submit(self._fn, batch[0], pure=False)
        self._batches[future.key] = batch
        self._done.add(future)

    def _learn(self, items: int, seconds: float) -> None:
        """A batch of ``items`` took ``seconds``: size the next ones."""
        if not items:
            return
        took = seconds / items
        self._per_item = took if self._per_item is None else 0.7 * self._per_item + 0.3 * took
        want = int(BATCH_SECONDS / self._per_item) if self._per_item > 0 else MAX_BATCH
        self._size = max(1, min(want, 2 * self._size, MAX_BATCH))

    def collect(self, timeout: float | None = None) -> list[R]:
        if self._error is not None:
            raised, self._error = self._error, None
            raise raised
        if len(self._batches) < self._low:  # workers would soon be idle: send it part-filled
            self._flush()
        if not self._batches:
            return []
        now = time.monotonic()
        deadline = None if timeout is None else now + timeout
        poll = self._executor.poll_seconds
        while not self._done.has_ready():
            if now - self._quiet_since >= poll:  # nothing finished for a while: anyone left?
                self._alone_since = self._executor._check_workers(self._alone_since, self._count)
                self._quiet_since = now
            left = self._quiet_since + poll - now
            if deadline is not None:
                if now >= deadline:
                    return []
                left = min(left, deadline - now)
            self._wait_ready(left)
            now = time.monotonic()
        self._quiet_since, self._alone_since = now, None
        results: list[R] = []
        for future, result in self._done.next_batch(block=False):
            batch = self._batches.pop(future.key, [])
            self._count -= len(batch)
            if future.status == "finished":
                future.release()
                if not self._batching:
                    results.append(result)
                    continue
                done, bug, seconds = result
                results.extend(done)
                self._learn(len(done), seconds)
                if bug is None:
                    continue
                error: BaseException = bug
            else:
                error = self._failure(batch, future.status, result)
            if not results:
                raise error
            self._error = error
            break
        return results

    def _wait_ready(self, seconds: float) -> bool:
        condition = self._done.thread_condition
        with condition:
            if self._done.has_ready():
                return True
            condition.wait(seconds)
        return self._done.has_ready()

    def _failure(self, batch: list[T], status: str, info: Any) -> BaseException:
        """Why a task came back without a result: a worker lost too often or the scheduler
        dropping it, as one line; an exception ``fn`` raised (a bug) as itself."""
        if status != "error":
            return WorkerLostError(
                f"the Dask scheduler dropped the task for {_batch_name(batch)} ({status}); what "
                "finished is recorded: rerun the command to resume"
            )
        _, exc, tb = info
        if isinstance(exc, self._killed):
            deaths = int(dask_config_get("distributed.scheduler.allowed-failures")) + 1
            lost = WorkerLostError(
                worker_lost_message(deaths, batch[0] if batch else None, name=_batch_name(batch))
            )
            lost.__cause__ = exc
            return lost
        return exc.with_traceback(tb)

    def cancel(self) -> None:
        futures = list(self._done.futures)
        self._done.clear()
        self._batches.clear()
        self._buffer.clear()
        self._count = 0
        if futures:
            with contextlib.suppress(Exception):
                self._client.cancel(futures)


def dask_config_get(key: str) -> Any:
    import dask

    return dask.config.get(key)
