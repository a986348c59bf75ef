"""Where a cluster run's CPU goes: one ``verify`` or ``frames`` run, split by process and phase.

Unlike ``bench_cluster.py`` (CPU of the whole run), this one says which process spent it and
when: the executor's start (cluster, workers, preflight), the driver while tasks run, and the
workers (``psutil`` on their pids, their reaped tools included), split again into the task's
own thread, the worker's other threads while a task runs (event loop, profiler, monitors), the
tools it started (ffmpeg) and what it did between tasks. Each task is wrapped to read
``getrusage`` before and after it, in the worker.

    python benchmarks/bench_cluster_phases.py --work /tmp/kx-probe --stage verify --clips 400 \
        --executor dask [--no-quiet] [--batch-seconds S] [--dask-config JSON]

Run it for ``local`` and ``dask`` in turn, a few rounds, to compare (one line each).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _cpu(a: Any, b: Any) -> float:
    return float(b.ru_utime - a.ru_utime + b.ru_stime - a.ru_stime)


class Timed:
    """``fn`` with the CPU its worker spent while it ran: process, tools, this thread, wall."""

    def __init__(self, fn: Any):
        self.fn = fn

    def __call__(self, item: Any) -> tuple[Any, tuple[float, float, float, float]]:
        s0, c0 = (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
        t0, w0 = time.thread_time(), time.perf_counter()
        result = self.fn(item)
        s1, c1 = (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
        return result, (
            _cpu(s0, s1),
            _cpu(c0, c1),
            time.thread_time() - t0,
            time.perf_counter() - w0,
        )


def run(args: argparse.Namespace) -> dict[str, Any]:
    import dask
    import distributed  # noqa: F401  # first: importing it merges its defaults over --dask-config
    import psutil

    import kinetix.executors as executors_mod
    import kinetix.executors.dask as dask_mod
    import kinetix.process.derived as derived_mod
    import kinetix.process.frames as frames_mod
    import kinetix.process.verify as verify_mod
    from kinetix.config import ExecutorConfig, FramesConfig, VerifyConfig

    if args.dask_config:
        dask.config.set(json.loads(args.dask_config))
    if args.no_quiet:
        dask_mod.QUIET.clear()
    if args.batch_seconds is not None:
        dask_mod.BATCH_SECONDS = args.batch_seconds
    me = psutil.Process()
    seen: dict[int, float] = {}
    marks: dict[str, tuple[float, float, float]] = {}  # name -> (wall, driver CPU, workers CPU)
    stats: list[tuple[float, float, float, float]] = []

    def mark(name: str) -> None:
        for p in me.children():
            try:
                t = p.cpu_times()
                seen[p.pid] = t.user + t.system + t.children_user + t.children_system
            except psutil.Error:
                pass
        own = resource.getrusage(resource.RUSAGE_SELF)
        marks[name] = (time.perf_counter(), own.ru_utime + own.ru_stime, sum(seen.values()))

    real_open, real_run = executors_mod.open_executor, executors_mod.run_tasks

    def opened(*a: Any, **kw: Any) -> Any:
        executor = real_open(*a, **kw)
        mark("opened")
        return executor

    def timed_run(tasks: Any, fn: Any, executor: Any, *, on_result: Any, **kw: Any) -> None:
        def unwrap(pair: Any) -> Any:
            stats.append(pair[1])
            return on_result(pair[0])

        real_run(tasks, Timed(fn), executor, on_result=unwrap, **kw)
        mark("ran")

    verify_mod.open_executor = opened  # type: ignore[assignment]
    derived_mod.open_executor = opened  # type: ignore[assignment]
    for mod in (derived_mod, frames_mod, verify_mod):
        mod.run_tasks = timed_run  # type: ignore[attr-defined]
    config = ExecutorConfig(args.executor, scheduler_host="127.0.0.1")
    mark("start")
    if args.stage == "verify":
        verify_mod.verify_dataset(args.root, VerifyConfig(executor=config, workers=args.workers))
    else:
        frames_mod.extract_dataset(
            args.root, args.out, FramesConfig(executor=config, workers=args.workers)
        )
    mark("end")
    (t0, d0, _), (t1, d1, w1), (t2, d2, w2) = marks["start"], marks["opened"], marks["ran"]
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    in_task, tools, thread, _ = (sum(s[i] for s in stats) for i in range(4))
    return {
        "start_cpu": d1 - d0 + w1, "driver_cpu": d2 - d1, "workers_cpu": w2 - w1,
        "task_thread": thread, "other_threads": in_task - thread, "tools": tools,
        "between_tasks": (w2 - w1) - in_task - tools, "run_wall": t2 - t1,
        "total_cpu": marks["end"][1] + reaped.ru_utime + reaped.ru_stime, "wall": t2 - t0,
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/kinetix-bench-phases"))
    parser.add_argument("--stage", choices=("verify", "frames"), default="verify")
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--executor", default="dask")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-quiet", action="store_true", help="Dask's own worker settings")
    parser.add_argument("--batch-seconds", type=float, default=None)
    parser.add_argument("--dask-config", default=None, help="JSON of dask settings to set")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from bench_cluster import build_root

    from kinetix.store.layout import manifest_path
    from kinetix.synthetic.media import VideoSpec

    spec = VideoSpec(4, 25, 340, 256, pattern="noise", bitrate="1M")
    args.root = build_root(args.work / f"{args.stage}-{args.clips}", args.clips, spec)
    args.out = args.work / f"{args.stage}-{args.clips}-out"
    shutil.rmtree(args.out, ignore_errors=True)
    pristine = args.work / f"{args.stage}-{args.clips}.sqlite"
    live = manifest_path(args.root)
    if not pristine.exists():
        shutil.copyfile(live, pristine)
    for side in (live, Path(f"{live}-wal"), Path(f"{live}-shm")):
        side.unlink(missing_ok=True)
    shutil.copyfile(pristine, live)  # unverified again: the same work every run
    got = run(args)
    print(
        f"{args.stage} {args.clips} {args.executor:5s} total {got['total_cpu']:6.2f} CPU-s | "
        f"start {got['start_cpu']:5.2f} | driver while running {got['driver_cpu']:5.2f} | "
        f"workers {got['workers_cpu']:6.2f} = task thread {got['task_thread']:6.2f} + other "
        f"threads {got['other_threads']:5.2f} + tools {got['tools']:6.2f} + between tasks "
        f"{got['between_tasks']:5.2f} | run wall {got['run_wall']:6.2f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
