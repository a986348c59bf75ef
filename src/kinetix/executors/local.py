"""The default executor: a process pool for CPU work, a thread pool for I/O, no extra deps."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures import Executor as _PoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Generic, TypeVar

from kinetix.errors import WorkerLostError
from kinetix.executors.base import TaskKind, TaskQueue, stream_results, worker_lost_message
from kinetix.executors.orphans import init_pool_worker

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# A task whose worker died this many times is not tried again (Dask's allowed-failures is 3):
# it is what kills them (a clip that exhausts memory), not bad luck.
MAX_WORKER_DEATHS = 3


class _Task(Generic[T]):
    """One item in flight: the pool it was handed to, and how many workers died under it."""

    def __init__(self, item: T):
        self.item = item
        self.deaths = 0
        self.pool: _PoolExecutor | None = None


class LocalExecutor:
    """Bounded-queue map over local pools; ``workers=0`` runs inline (handy for debugging)."""

    def __init__(self, workers: int | None = None, io_workers: int | None = None):
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self.io_workers = io_workers or max(4, 2 * max(self.workers, 1))
        self._pools: dict[TaskKind, _PoolExecutor] = {}

    def _pool(self, kind: TaskKind) -> _PoolExecutor:
        if kind not in self._pools:
            if kind is TaskKind.CPU:
                # Free unreachable cycles here, before the workers fork: a child that collects
                # an inherited PyAV codec context (held by an old exception's traceback) joins
                # slice threads that exist only in this process, and hangs for good.
                gc.collect()
                # Workers die with this process, even on kill -9 (see init_pool_worker).
                self._pools[kind] = ProcessPoolExecutor(
                    max_workers=max(self.workers, 1),
                    initializer=init_pool_worker,
                    initargs=(os.getpid(), threading.current_thread() is threading.main_thread()),
                )
            else:
                self._pools[kind] = ThreadPoolExecutor(
                    max_workers=self.io_workers, thread_name_prefix="kinetix-io"
                )
        return self._pools[kind]

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
        """``limit`` tasks in flight (default 4 per worker, so none waits for its next one).
        ``batch`` is not needed here: a pool task costs the parent well under a millisecond."""
        if self.workers == 0:
            return _InlineQueue(fn)
        size = self.workers if kind is TaskKind.CPU else self.io_workers
        return _LocalQueue(self, fn, kind, limit or 4 * size)

    def _lost(self, kind: TaskKind, task: _Task[T]) -> None:
        """A worker process died (SIGKILL, the OOM killer) and broke the pool: every task the
        pool held fails with it, and each starts again on a new pool. Workers write their
        outputs atomically, so nothing a dead one half-wrote is ever seen or recorded."""
        task.deaths += 1
        if task.deaths >= MAX_WORKER_DEATHS:
            raise WorkerLostError(worker_lost_message(task.deaths, task.item))
        if task.pool is not None and self._pools.get(kind) is task.pool:  # first back: replace it
            del self._pools[kind]
            task.pool.shutdown(wait=False, cancel_futures=True)
            log.warning(
                "a worker process died (killed, or out of memory); the tasks it and the other "
                "workers held run again on new workers"
            )

    def abort(self) -> None:
        """Stop now (Ctrl-C, SIGTERM): end every worker process, whatever it is running.

        Their ffmpeg dies with them (see ``orphans``), so a long clip does not hold the stop
        up; threads cannot be killed, so I/O tasks already running finish.
        """
        for pool in list(self._pools.values()):
            workers = getattr(pool, "_processes", None) or {}
            for process in list(workers.values()):
                with contextlib.suppress(OSError, ValueError, AttributeError):  # gone already
                    process.kill()
            if workers:
                # Let the pool fail its futures first: cancelling one it is about to fail
                # makes its manager thread die with InvalidStateError (CPython 3.11).
                deadline = time.monotonic() + 2.0
                while not getattr(pool, "_broken", True) and time.monotonic() < deadline:
                    time.sleep(0.01)
            pool.shutdown(wait=False)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
        self._pools.clear()

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _LocalQueue(Generic[T, R]):
    """Tasks on the executor's pool of ``kind``; a task whose worker died runs again."""

    def __init__(self, executor: LocalExecutor, fn: Callable[[T], R], kind: TaskKind, limit: int):
        self._executor = executor
        self._fn = fn
        self._kind = kind
        self._capacity = max(1, limit)
        self._pending: dict[Future[R], _Task[T]] = {}
        self._error: BaseException | None = None

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def submit(self, item: T) -> None:
        self._submit(_Task(item))

    def _submit(self, task: _Task[T]) -> None:
        task.pool = self._executor._pool(self._kind)
        self._pending[task.pool.submit(self._fn, task.item)] = task

    def collect(self, timeout: float | None = None) -> list[R]:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if not self._pending:
            return []
        done, _ = wait(list(self._pending), timeout=timeout, return_when=FIRST_COMPLETED)
        results: list[R] = []
        for f in done:
            task = self._pending.pop(f)
            try:
                results.append(f.result())
            except BrokenProcessPool:
                self._executor._lost(self._kind, task)
                self._submit(task)
            except BaseException as exc:  # a bug in fn: raised once the results before it are in
                if not results:
                    raise
                self._error = exc
                break
        return results

    def cancel(self) -> None:
        for f in self._pending:
            f.cancel()
        self._pending.clear()


class _InlineQueue(Generic[T, R]):
    """``workers=0``: each task runs in this thread when its result is collected."""

    capacity = 1

    def __init__(self, fn: Callable[[T], R]):
        self._fn = fn
        self._items: list[T] = []

    @property
    def in_flight(self) -> int:
        return len(self._items)

    def submit(self, item: T) -> None:
        self._items.append(item)

    def collect(self, timeout: float | None = None) -> list[R]:
        items, self._items = self._items, []
        return [self._fn(item) for item in items]

    def cancel(self) -> None:
        self._items.clear()
