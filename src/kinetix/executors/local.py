"""The default executor: a process pool for CPU work, a thread pool for I/O, no extra deps."""

from __future__ import annotations

import gc
import logging
import os
import threading
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
from kinetix.executors.base import TaskKind, worker_lost_message
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
        if self.workers == 0:
            for item in items:
                yield fn(item)
            return
        limit = 4 * (self.workers if kind is TaskKind.CPU else self.io_workers)
        pending: dict[Future[R], _Task[T]] = {}
        it = iter(items)

        def submit(task: _Task[T]) -> None:
            task.pool = self._pool(kind)
            pending[task.pool.submit(fn, task.item)] = task

        def finished() -> Iterator[R]:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for f in done:
                task = pending.pop(f)
                try:
                    result = f.result()
                except BrokenProcessPool:
                    self._lost(kind, task)
                    submit(task)
                    continue
                yield result

        try:
            for item in it:
                submit(_Task(item))
                if len(pending) >= limit:
                    yield from finished()
            while pending:
                yield from finished()
        finally:
            for f in pending:
                f.cancel()

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

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
        self._pools.clear()

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
