"""Executors: ``local`` (default) and ``dask``, behind one protocol."""

from __future__ import annotations

from kinetix.errors import ConfigError
from kinetix.executors.base import Executor, TaskKind
from kinetix.executors.local import LocalExecutor

__all__ = ["Executor", "LocalExecutor", "TaskKind", "make_executor"]


def make_executor(spec: str = "local", workers: int | None = None) -> Executor:
    """``local`` or ``dask`` / ``dask://HOST:PORT`` / ``slurm`` (dask-jobqueue)."""
    if spec == "local":
        return LocalExecutor(workers)
    if spec.startswith(("dask", "slurm")):
        from kinetix.executors.dask import DaskExecutor

        return DaskExecutor.from_spec(spec, workers)
    raise ConfigError(
        f"unknown executor {spec!r}; valid values are local, dask, dask://HOST:PORT, slurm"
    )
