"""The executor protocol: run many independent tasks, hand results back to one parent.

An executor opens a ``TaskQueue`` for one function: the parent submits tasks one at a time (at
most ``capacity`` in flight) and collects the finished ones in batches. ``map_unordered`` is
the plain loop over it; ``run_tasks`` (``executors/__init__``) adds pacing and re-queueing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from enum import Enum
from typing import Protocol, TypeVar, runtime_checkable

T = TypeVar("T")
R = TypeVar("R")
T_contra = TypeVar("T_contra", contravariant=True)


class TaskKind(str, Enum):
    IO = "io"  # network / disk bound: threads are enough
    CPU = "cpu"  # decode / encode bound: processes


class TaskQueue(Protocol[T_contra, R]):
    """One function running on an executor's workers: tasks in one at a time, results in batches.

    The owner keeps ``in_flight`` at most ``capacity`` (submitting more only queues them on a
    worker, where nobody can pace them any more). ``collect`` waits for at least one finished
    task, or ``timeout`` seconds (then it returns ``[]``), and returns every result ready by
    then. An exception that escaped the function is raised by the ``collect`` after the one that
    returned the results finished before it. ``cancel`` drops whatever is still in flight.
    """

    @property
    def capacity(self) -> int: ...

    @property
    def in_flight(self) -> int: ...

    def submit(self, item: T_contra) -> None: ...

    def collect(self, timeout: float | None = None) -> list[R]: ...

    def cancel(self) -> None: ...


@runtime_checkable
class Executor(Protocol):
    """Runs ``fn`` over ``items`` and yields results as they finish (any order).

    Workers must not raise for expected failures: they return result values carrying an
    error code. An exception that escapes ``fn`` is a bug and propagates to the caller.
    Only the caller (one process) writes the manifest.
    """

    def map_unordered(
        self, fn: Callable[[T], R], items: Iterable[T], *, kind: TaskKind = TaskKind.CPU
    ) -> Iterator[R]: ...

    def open_queue(
        self,
        fn: Callable[[T], R],
        *,
        kind: TaskKind = TaskKind.CPU,
        limit: int | None = None,
        batch: bool = False,
    ) -> TaskQueue[T, R]: ...

    def close(self) -> None: ...

    # ``batch``: the caller does not meter dispatch task by task, so an executor whose
    # per-task cost is high (Dask) may run several short tasks as one.
    # Optional: ``abort()`` (any thread) makes a running ``map_unordered`` stop at once,
    # abandoning the tasks in flight; ``run_tasks`` calls it when its stop token is set.


def stream_results(queue: TaskQueue[T, R], items: Iterable[T]) -> Iterator[R]:
    """Every result of ``items`` run through ``queue``, as they finish; tasks fed lazily.

    The free slots are refilled before a batch is handed on, so workers stay busy while the
    parent records it. Closing the iterator early cancels the tasks in flight.
    """
    it = iter(items)

    def fill() -> None:
        while queue.in_flight < queue.capacity:
            item = next(it, _END)
            if item is _END:
                return
            queue.submit(item)  # type: ignore[arg-type]

    try:
        fill()
        while queue.in_flight:
            batch = queue.collect()
            fill()
            yield from batch
    finally:
        queue.cancel()


_END = object()


def describe_task(item: object) -> str:
    """A task as a message names it: its clip key or shard, else a short repr."""
    for name in ("key", "shard_id", "relpath"):
        value = getattr(item, name, None)
        if isinstance(value, str):
            return value
    text = repr(item)
    return text if len(text) <= 100 else text[:99] + "…"


def worker_lost_message(deaths: int, item: object, *, name: str | None = None) -> str:
    return (
        f"a worker process died {deaths} times while running {name or describe_task(item)} "
        "(killed, or out of memory); not trying it again. Rerunning resumes the job"
    )
