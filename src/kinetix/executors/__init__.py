"""Executors: ``local`` (default) and ``dask`` (a local cluster, a scheduler, or SLURM jobs).

``run_tasks`` is the one way a stage runs its tasks: it feeds them lazily (a bounded number in
flight, so a 650k-clip run never queues 650k tasks), hands every result to the parent's
``on_result`` (the only place the manifest is written) and stops when it says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from kinetix.config import ExecutorConfig
from kinetix.executors.base import Executor, TaskKind
from kinetix.executors.local import LocalExecutor
from kinetix.executors.preflight import Preflight

__all__ = [
    "Executor",
    "LocalExecutor",
    "Preflight",
    "TaskKind",
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


def run_tasks(
    tasks: Iterable[T],
    fn: Callable[[T], R],
    executor: Executor,
    *,
    on_result: Callable[[R], bool | None],
    kind: TaskKind = TaskKind.CPU,
    pace: Callable[[], None] | None = None,
) -> None:
    """Run ``fn`` over ``tasks`` on ``executor``; ``on_result`` gets each result in this process.

    ``on_result`` returning True stops the run: tasks not started are never dispatched and
    those in flight are cancelled. ``pace``, when given, is called before each task is handed
    out (the parent meters dispatch, e.g. YouTube's request rate across a whole cluster).
    """
    items: Iterable[T] = tasks if pace is None else _paced(tasks, pace)
    results = executor.map_unordered(fn, items, kind=kind)
    try:
        for result in results:
            if on_result(result):
                break
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()


def _paced(tasks: Iterable[T], pace: Callable[[], None]) -> Iterator[T]:
    for task in tasks:
        pace()
        yield task
