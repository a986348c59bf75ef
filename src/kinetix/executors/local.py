"""The default executor: a process pool for CPU work, a thread pool for I/O, no extra deps."""

from __future__ import annotations

import gc
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
from typing import TypeVar

from kinetix.executors.base import TaskKind
from kinetix.executors.orphans import init_pool_worker

T = TypeVar("T")
R = TypeVar("R")


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
        pool = self._pool(kind)
        limit = 4 * (self.workers if kind is TaskKind.CPU else self.io_workers)
        pending: set[Future[R]] = set()
        it = iter(items)
        try:
            for item in it:
                pending.add(pool.submit(fn, item))
                if len(pending) >= limit:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in done:
                        yield f.result()
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    yield f.result()
        finally:
            for f in pending:
                f.cancel()

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
        self._pools.clear()

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
