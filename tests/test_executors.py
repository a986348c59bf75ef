"""Both executors run the same tasks and hand every result back to the caller."""

from __future__ import annotations

import pytest

from kinetix.errors import ConfigError
from kinetix.executors import Executor, LocalExecutor, TaskKind, make_executor


def square(x: int) -> int:
    return x * x


def boom(x: int) -> int:
    raise RuntimeError(f"bug on {x}")


@pytest.mark.parametrize("kind", [TaskKind.CPU, TaskKind.IO])
@pytest.mark.parametrize("workers", [0, 2])
def test_local_executor_returns_every_result(kind: TaskKind, workers: int) -> None:
    with LocalExecutor(workers=workers) as ex:
        assert isinstance(ex, Executor)
        got = sorted(ex.map_unordered(square, range(50), kind=kind))
    assert got == [x * x for x in range(50)]


def test_local_executor_propagates_bugs() -> None:
    with LocalExecutor(workers=2) as ex, pytest.raises(RuntimeError, match="bug on"):
        list(ex.map_unordered(boom, range(3), kind=TaskKind.IO))


def test_unknown_executor_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="valid values are local"):
        make_executor("spark")


def test_dask_executor_matches_local() -> None:
    pytest.importorskip("distributed")
    ex = make_executor("dask", workers=2)
    try:
        got = sorted(ex.map_unordered(square, range(30)))
    finally:
        ex.close()
    assert got == [x * x for x in range(30)]
