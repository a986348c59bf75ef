"""Dask executor: the same tasks on a ``distributed`` cluster (local, remote, or SLURM).

Workers run the task functions and return result values; the results stream back to the
one parent process, which alone writes the manifest, exactly as with the local executor.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from kinetix.errors import ConfigError, MissingDependencyError
from kinetix.executors.base import TaskKind

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise MissingDependencyError("dask.distributed", "dask") from None
    return distributed


class DaskExecutor:
    """Map tasks over a ``distributed.Client``, keeping a bounded number in flight."""

    def __init__(self, client: Any, *, owns: list[Any] | None = None, in_flight: int | None = None):
        self.client = client
        self._owns = owns or []
        self.in_flight = in_flight

    @classmethod
    def from_spec(cls, spec: str, workers: int | None = None) -> DaskExecutor:
        """``dask`` (local cluster), ``dask://HOST:PORT`` / ``tcp://…`` (a scheduler), ``slurm``.

        ``slurm`` reads its job shape from environment variables so no flag soup is needed:
        ``KINETIX_SLURM_QUEUE``, ``KINETIX_SLURM_CORES`` (default 4), ``KINETIX_SLURM_MEMORY``
        (default 16GB), ``KINETIX_SLURM_WALLTIME`` (default 04:00:00), ``KINETIX_SLURM_ACCOUNT``;
        ``workers`` is the number of jobs.
        """
        distributed = _import_distributed()
        if spec == "dask":
            n = workers or os.cpu_count() or 1
            cluster = distributed.LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
            )
            client = distributed.Client(cluster)
            return cls(client, owns=[client, cluster])
        if spec.startswith("dask://") or spec.startswith("tcp://"):
            address = "tcp://" + spec.split("://", 1)[1]
            client = distributed.Client(address)
            return cls(client, owns=[client])
        if spec == "slurm":
            try:
                from dask_jobqueue import SLURMCluster
            except ImportError:
                raise MissingDependencyError("dask_jobqueue", "dask") from None
            env = os.environ
            cluster = SLURMCluster(
                queue=env.get("KINETIX_SLURM_QUEUE"),
                account=env.get("KINETIX_SLURM_ACCOUNT"),
                cores=int(env.get("KINETIX_SLURM_CORES", "4")),
                memory=env.get("KINETIX_SLURM_MEMORY", "16GB"),
                walltime=env.get("KINETIX_SLURM_WALLTIME", "04:00:00"),
            )
            cluster.scale(jobs=workers or 1)
            client = distributed.Client(cluster)
            return cls(client, owns=[client, cluster])
        raise ConfigError(
            f"unknown dask executor {spec!r}; valid values are dask, dask://HOST:PORT, slurm"
        )

    def _capacity(self) -> int:
        if self.in_flight:
            return self.in_flight
        try:
            threads = sum(self.client.nthreads().values())
        except Exception:
            threads = 1
        return max(4, 4 * threads)

    def map_unordered(
        self, fn: Callable[[T], R], items: Iterable[T], *, kind: TaskKind = TaskKind.CPU
    ) -> Iterator[R]:
        distributed = _import_distributed()
        limit = self._capacity()
        it = iter(items)
        futures = [self.client.submit(fn, x, pure=False) for _, x in zip(range(limit), it)]
        ac = distributed.as_completed(futures)
        try:
            for fut in ac:
                result = fut.result()  # an exception here is a bug in fn: let it propagate
                fut.release()
                nxt = next(it, _END)
                if nxt is not _END:
                    ac.add(self.client.submit(fn, nxt, pure=False))
                yield result
        finally:
            for f in list(ac.futures):
                f.cancel()

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


_END = object()
