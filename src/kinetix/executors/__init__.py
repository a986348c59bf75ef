"""Executors: ``local`` (default) and ``dask`` (a local cluster, a scheduler, or SLURM jobs).

``run_tasks`` is the one way a stage runs its tasks: it feeds them lazily (a bounded number in
flight, so a 650k-clip run never queues 650k tasks), hands every result to the parent's
``on_result`` (the only place the manifest is written), runs again the tasks it sends back, and
stops when it says so. Dispatch is metered there too (``pace``), so a limit holds for the whole
cluster, retries included.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from kinetix.config import ExecutorConfig
from kinetix.executors.base import Executor, TaskKind, TaskQueue
from kinetix.executors.local import LocalExecutor
from kinetix.executors.preflight import Preflight
from kinetix.interrupts import StopToken

__all__ = [
    "Again",
    "Executor",
    "LocalExecutor",
    "Preflight",
    "TaskKind",
    "TaskQueue",
    "make_executor",
    "open_executor",
    "run_tasks",
]

T = TypeVar("T")
R = TypeVar("R")


def open_executor(
    config: ExecutorConfig | str = "local",
    workers: int | None = None,
    *,
    io_workers: int | None = None,
    preflight: Preflight | None = None,
    log_directory: Path | None = None,
) -> Executor:
    """The executor ``config`` names, started and (on a cluster) preflighted.

    ``local``: process/thread pools on this machine. ``dask``, ``dask://HOST:PORT``, ``slurm``:
    a Dask cluster whose workers each pass ``preflight`` before getting a task; SLURM worker
    logs go to ``log_directory``.
    """
    config = ExecutorConfig.coerce(config)
    if config.is_local:
        return LocalExecutor(workers, io_workers=io_workers)
    from kinetix.executors.dask import DaskExecutor

    return DaskExecutor.from_config(
        config, workers, preflight=preflight, log_directory=log_directory
    )


make_executor = open_executor  # the older name


@dataclass(frozen=True)
class Again(Generic[T]):
    """What ``on_result`` returns to run ``task`` again, ``after`` seconds from now at the
    earliest (a retry, dispatched through the same pacing as every first try)."""

    task: T
    after: float = 0.0


def run_tasks(
    tasks: Iterable[T],
    fn: Callable[[T], R],
    executor: Executor,
    *,
    on_result: Callable[[R], bool | Again[T] | None],
    kind: TaskKind = TaskKind.CPU,
    pace: Callable[[], float] | None = None,
    in_flight: int | None = None,
    stop: StopToken | None = None,
    abandon: bool = False,
) -> None:
    """Run ``fn`` over ``tasks`` on ``executor``; ``on_result`` gets each result in this process.

    ``on_result`` returning True stops the run: tasks not started are never dispatched and
    those in flight are cancelled; returning ``Again(task, after)`` queues ``task`` to run again.
    ``pace``, when given, is asked before each task is handed out: 0 means go (and counts it),
    more is the seconds to wait before asking again. It is the one place dispatch is metered,
    retries included (YouTube's request rate, Retry-After and circuit breaker across a whole
    cluster), so it must not block: while it says wait, results keep being collected.
    ``in_flight`` caps the tasks handed out at once (default: the executor's own bound); on
    Dask, unpaced CPU tasks that finish quickly ride several to a Dask task (see
    ``executors.dask``), and the cap counts those.
    ``stop`` set (Ctrl-C, SIGTERM, a full disk): nothing more is handed out, first tries or
    retries; the results of the tasks in flight still reach ``on_result``. With ``abandon``
    (verify, process, frames: a clip takes a while and its output is written under a temporary
    name) the tasks in flight are not waited for: the executor's ``abort`` ends them (pool
    workers killed with their ffmpeg; on Dask they are cancelled and the cluster closed).
    """
    queue = executor.open_queue(fn, kind=kind, limit=in_flight, batch=pace is None)
    fresh = iter(tasks)
    later: list[tuple[float, int, T]] = []  # (due, order, task): retries waiting for their time
    order = itertools.count()
    held: list[T] = []  # taken from a source but not yet dispatched (pace said wait)
    exhausted = False
    try:
        while True:
            wait: float | None = None  # until something may be dispatched; None: only results
            stopped = stop is not None and stop.is_set()
            if stopped and abandon:
                abort = getattr(executor, "abort", None)
                if abort is not None:
                    abort()
                return
            while queue.in_flight < queue.capacity and not stopped:
                if not held:
                    now = time.monotonic()
                    if later and later[0][0] <= now:
                        held.append(heapq.heappop(later)[2])
                    elif not exhausted and (task := next(fresh, _END)) is not _END:
                        held.append(task)  # type: ignore[arg-type]
                    else:
                        exhausted = True
                        if later:
                            wait = later[0][0] - now
                        break
                if pace is not None and (seconds := pace()) > 0:
                    wait = seconds if wait is None else min(wait, seconds)
                    break
                queue.submit(held.pop())
            if not queue.in_flight:
                if stopped or (not held and not later and exhausted):
                    return
                time.sleep(max(wait or 0.0, 0.0))  # nothing running: only time can help
                continue
            if abandon and stop is not None:  # look at the stop token now and then
                wait = _STOP_POLL if wait is None else min(wait, _STOP_POLL)
            for result in queue.collect(timeout=wait):
                verdict = on_result(result)
                if verdict is True:
                    return
                if isinstance(verdict, Again):
                    due = time.monotonic() + max(verdict.after, 0.0)
                    heapq.heappush(later, (due, next(order), verdict.task))
    finally:
        queue.cancel()


_END = object()
_STOP_POLL = 0.25  # seconds: how soon an abandoning run notices its stop token
