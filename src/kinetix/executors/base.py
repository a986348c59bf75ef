"""The executor protocol: run many independent tasks, hand results back to one parent."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from enum import Enum
from typing import Protocol, TypeVar, runtime_checkable

T = TypeVar("T")
R = TypeVar("R")


class TaskKind(str, Enum):
    IO = "io"  # network / disk bound: threads are enough
    CPU = "cpu"  # decode / encode bound: processes


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

    def close(self) -> None: ...


def describe_task(item: object) -> str:
    """A task as a message names it: its clip key or shard, else a short repr."""
    for name in ("key", "shard_id", "relpath"):
        value = getattr(item, name, None)
        if isinstance(value, str):
            return value
    text = repr(item)
    return text if len(text) <= 100 else text[:99] + "…"


def worker_lost_message(deaths: int, item: object) -> str:
    return (
        f"a worker process died {deaths} times while running {describe_task(item)} (killed, "
        "or out of memory); not trying it again. Rerunning resumes the job"
    )
