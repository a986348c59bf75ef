"""What running on a cluster costs: the same verify and frames jobs on the local pool, on a Dask
LocalCluster and as SLURM jobs; the scheduler's memory as tasks queue; planning as workers grow.

Three parts, each runnable alone (``--parts``):

- ``stages``: ``verify`` (quick) and ``frames`` over the same generated clips with ``--executor
  local``, ``dask`` (LocalCluster, 2 single-threaded workers on 127.0.0.1) and ``slurm`` (2 jobs
  of 1 core / 1 GB, scheduler and workers on 127.0.0.1; skipped when ``sinfo`` is not there),
  interleaved for ``--rounds`` rounds, the order rotated each round, each run after an
  ``os.sync`` (``--stages`` picks verify, frames or both). Each run is its own process: wall
  time, time to the first result (cluster start, worker preflight, planning and one task), the
  rate after that first result, and CPU seconds of the process and its waited-for children
  (SLURM workers are children of slurmd, so their CPU is not in the figure).
- ``memory``: a ``dask scheduler`` process of its own with 2 workers; ``--tasks`` trivial tasks
  fed through kinetix's ``run_tasks`` (at most ``--in-flight`` Dask tasks queued, each a batch,
  the rest fed as results come back) and then ``--map-tasks`` submitted at once with
  ``client.map``; the scheduler's peak RSS above its idle RSS and the most tasks it held,
  sampled every 50 ms.
- ``plan``: a ``scale_root`` root of ``--plan-clips`` clips, every one verified (the files' own
  mtimes recorded, so nothing is checked again); the no-op rerun
  of ``kinetix verify --executor dask --workers W`` (plan, nothing to do) and ``kinetix status``
  for W in 1, 2, 4, interleaved.

Load from ``uptime`` is printed before and after each part: the machine is shared.

    python benchmarks/bench_cluster.py --work /tmp/kx-cluster [--rounds 3]
        [--parts stages,memory,plan] [--executors local,dask,slurm]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kinetix.catalog.clip import Clip
from kinetix.store.layout import LabelStyle, clip_relpath, manifest_path
from kinetix.store.manifest import Manifest
from kinetix.synthetic.media import VideoSpec, make_video

HERE = Path(__file__).resolve().parent
LABELS = ("abseiling", "air drumming", "answering questions", "applauding")
SLURM_SHAPE = {"cores": 1, "memory": "1GB", "walltime": "00:30:00"}
EXECUTORS = ("local", "dask", "slurm")


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def say(text: str) -> None:
    print(text, flush=True)


# --- stages ----------------------------------------------------------------------------------


def build_root(root: Path, clips: int, spec: VideoSpec) -> Path:
    """``clips`` unverified clips, hard links of one encode (decoding costs the same)."""
    if manifest_path(root).exists():
        with Manifest(manifest_path(root), readonly=True) as m:
            if m.count() == clips:
                return root
        shutil.rmtree(root)
    source = make_video(root / ".source.mp4", spec)
    with Manifest(manifest_path(root)) as m:
        m.set_meta("kind", "videos")
        m.set_meta("release", "k400")
        m.set_meta("layout", "raw")
        for i in range(clips):
            clip = Clip("k400", "val", f"bench{i:05d}", 0, int(spec.duration), LABELS[i % 4])
            rel = clip_relpath(clip.split, clip.label, clip.key, LabelStyle.RAW)
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            os.link(source, root / rel)
            m.add_clips([clip])
            m.update("k400", "val", clip.key, state="present", path=rel,
                     bytes=(root / rel).stat().st_size)  # fmt: skip
    return root


def one_run(stage: str, executor: str, root: Path, out: Path, workers: int) -> dict[str, Any]:
    """Run one stage in this process, timing the first result (child side of ``stages``)."""
    import kinetix.executors as executors_mod
    import kinetix.process.derived as derived_mod
    import kinetix.process.frames as frames_mod
    import kinetix.process.verify as verify_mod
    from kinetix.config import ExecutorConfig, FramesConfig, SlurmConfig, VerifyConfig

    marks: dict[str, float] = {}
    real = executors_mod.run_tasks

    def timed(tasks: Any, fn: Any, ex: Any, *, on_result: Any, **kw: Any) -> None:
        def first(result: Any) -> Any:
            marks.setdefault("first", time.perf_counter())
            return on_result(result)

        real(tasks, fn, ex, on_result=first, **kw)

    for mod in (derived_mod, frames_mod, verify_mod):
        mod.run_tasks = timed  # type: ignore[attr-defined]
    config = ExecutorConfig(
        executor,
        scheduler_host="127.0.0.1",
        slurm=SlurmConfig(**SLURM_SHAPE),  # type: ignore[arg-type]
    )
    started = time.perf_counter()
    if stage == "verify":
        report = verify_mod.verify_dataset(root, VerifyConfig(executor=config, workers=workers))
        done = report.checked
    else:
        r = frames_mod.extract_dataset(root, out, FramesConfig(executor=config, workers=workers))
        done = r.done
    ended = time.perf_counter()
    first = marks.get("first", ended)
    return {"wall": ended - started, "first": first - started, "after": ended - first, "n": done}


def child_run(argv: list[str]) -> tuple[dict[str, Any], float]:
    """Run ``argv`` (one ``_one`` child); its JSON line and its CPU seconds with children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(done.stdout.strip().splitlines()[-1]), cpu


def median_spread(values: list[float]) -> str:
    if not values:
        return "-"
    m = statistics.median(values)
    return f"{m:.2f} ±{(max(values) - min(values)) / 2:.2f}"


def stages(args: argparse.Namespace) -> None:
    spec_v = VideoSpec(4, 25, 340, 256, pattern="noise", bitrate="1M")
    executors = [e for e in args.executors.split(",") if e != "slurm" or shutil.which("sinfo")]
    sizes = {"verify": args.verify_clips, "frames": args.frames_clips}
    jobs = {
        stage: build_root(args.work / f"{stage}-root", sizes[stage], spec_v)
        for stage in args.stages.split(",")
    }
    pristine = args.work / "verify-manifest.sqlite"
    if "verify" in jobs and not pristine.exists():
        shutil.copyfile(manifest_path(jobs["verify"]), pristine)
    results: dict[tuple[str, str], list[tuple[dict[str, Any], float]]] = {}
    say(f"stages: load {load()}; " + ", ".join(f"{sizes[s]} clips to {s}" for s in jobs))
    for r in range(args.rounds):
        for stage, root in jobs.items():
            # rotated each round: no executor always runs after the one that wrote 30k frames
            for executor in executors[r % len(executors) :] + executors[: r % len(executors)]:
                out = args.work / "frames-out"
                shutil.rmtree(out, ignore_errors=True)
                os.sync()  # the last run's writeback is not this run's to pay
                if stage == "verify":  # unverified again: the same work every run
                    live = manifest_path(root)
                    for side in (live, Path(f"{live}-wal"), Path(f"{live}-shm")):
                        side.unlink(missing_ok=True)
                    shutil.copyfile(pristine, live)
                argv = [sys.executable, __file__, "_one", stage, executor, str(root), str(out),
                        str(args.workers)]  # fmt: skip
                got, cpu = child_run(argv)
                results.setdefault((stage, executor), []).append((got, cpu))
                say(
                    f"  round {r + 1} {stage:6s} {executor:5s} wall {got['wall']:6.2f} s  "
                    f"first {got['first']:5.2f} s  cpu {cpu:6.2f} s  n {got['n']}  load {load()}"
                )
    say("")
    say("| stage | executor | wall s | to first result s | rate after it /s | CPU s | wall vs "
        "local | rate vs local |")  # fmt: skip
    say("|---|---|---|---|---|---|---|---|")
    for stage in jobs:
        base = results[(stage, "local")]
        base_wall = statistics.median(g["wall"] for g, _ in base)
        base_rate = statistics.median((g["n"] - 1) / g["after"] for g, _ in base)
        for executor in executors:
            runs = results[(stage, executor)]
            walls = [g["wall"] for g, _ in runs]
            rates = [(g["n"] - 1) / g["after"] for g, _ in runs]
            say(f"| {stage} | {executor} | {median_spread(walls)} | "
                f"{median_spread([g['first'] for g, _ in runs])} | {median_spread(rates)} | "
                f"{median_spread([c for _, c in runs])} | "
                f"{statistics.median(walls) / base_wall:.3f} | "
                f"{statistics.median(rates) / base_rate:.3f} |")  # fmt: skip
    say(f"stages done: load {load()}")


# --- scheduler memory ------------------------------------------------------------------------


def noop(x: int) -> int:
    return x


class Sampler:
    """The peak RSS of one process and the most tasks its scheduler held, every ``every`` s."""

    def __init__(self, pid: int, client: Any, every: float = 0.05):
        import psutil

        self.proc = psutil.Process(pid)
        self.client = client
        self.every = every
        self.peak_rss = 0
        self.peak_tasks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        tick = 0
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss)
            if tick % 10 == 0:  # every 0.5 s: the count is a scheduler round trip
                n = self.client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
                self.peak_tasks = max(self.peak_tasks, n)
            tick += 1
            self._stop.wait(self.every)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def memory(args: argparse.Namespace) -> None:
    import distributed
    import psutil

    from kinetix.executors import run_tasks
    from kinetix.executors.dask import DaskExecutor

    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "scheduler.json"
        py = sys.executable
        sched = subprocess.Popen(
            [py, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard", "--scheduler-file", str(file)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        workers = []
        try:
            while not file.exists():
                time.sleep(0.1)
            for _ in range(2):
                workers.append(subprocess.Popen(
                    [py, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(file),
                     "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                ))  # fmt: skip
            client = distributed.Client(scheduler_file=str(file))
            client.wait_for_workers(2)
            client.submit(noop, 0).result()
            proc = psutil.Process(sched.pid)
            idle = proc.memory_info().rss
            say(f"memory: load {load()}; scheduler idle RSS {idle / 2**20:.0f} MiB")
            n = args.tasks
            rows = []
            ex = DaskExecutor(client, in_flight=args.in_flight)
            with Sampler(sched.pid, client) as s:
                t0 = time.perf_counter()
                got = [0]
                run_tasks(range(n), noop, ex, on_result=lambda r: got.__setitem__(0, got[0] + 1))
                wall = time.perf_counter() - t0
            assert got[0] == n
            # what was queued at most: Dask tasks (each a batch of up to MAX_BATCH no-ops)
            rows.append(("kinetix `run_tasks` (lazy, batched)", ex._capacity(), s, wall))
            client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
            m = args.map_tasks
            with Sampler(sched.pid, client) as e:
                t0 = time.perf_counter()
                futures = client.map(noop, range(m), pure=False)
                distributed.wait(futures)
                wall = time.perf_counter() - t0
                del futures
            rows.append(("`client.map` of every task at once", m, e, wall))
            say("")
            say("| how tasks are fed | most queued | scheduler peak RSS over idle | per 100k "
                "tasks fed | most tasks on the scheduler | wall | tasks/s |")  # fmt: skip
            say("|---|---|---|---|---|---|---|")
            for (name, queued, smp, wall), fed in zip(rows, (n, m)):
                over = (smp.peak_rss - idle) / 2**20
                say(f"| {name} ({fed} tasks) | {queued} | {over:.0f} MiB | "
                    f"{over * 100_000 / fed:.0f} MiB | {smp.peak_tasks} | {wall:.1f} s | "
                    f"{fed / wall:.0f} |")  # fmt: skip
            client.close()
            say(f"memory done: load {load()}")
        finally:
            for p in [*workers, sched]:
                p.terminate()
            for p in [*workers, sched]:
                p.wait(30)


# --- plan and status against workers ---------------------------------------------------------


def settle_files(root: Path) -> None:
    """Record each (empty) clip file's own size and mtime, as a verify that passed would have:
    the verify rerun then has nothing to do and only plans (``scale_root`` writes one time
    for every row before it creates the files, so every clip would be checked again)."""
    import sqlite3

    db = sqlite3.connect(manifest_path(root))
    base = str(root) + "/"
    rows = []
    for rowid, path in db.execute("SELECT rowid, path FROM clips"):
        st = os.stat(base + path)
        rows.append((st.st_mtime, st.st_size, rowid))
    with db:
        db.executemany("UPDATE clips SET mtime=?, bytes=? WHERE rowid=?", rows)
    db.close()


def plan(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE))
    from scale_root import build_root as build_scale_root

    root = args.work / f"scale-{args.plan_clips}"
    ready = root.with_name(root.name + ".ready")
    if not ready.exists():  # a root of an earlier, unfinished or disturbed run: built again
        shutil.rmtree(root, ignore_errors=True)
        say(f"plan: building a {args.plan_clips}-clip root at {root}")
        build_scale_root(root, args.plan_clips)
        settle_files(root)
        ready.touch()
    kinetix = [sys.executable, "-m", "kinetix.cli.main"]
    commands = {
        f"verify --executor dask --workers {w} (no-op rerun)": [
            *kinetix,
            "verify",
            str(root),
            "--executor",
            "dask",
            "--workers",
            str(w),
            "--no-progress",
        ]
        for w in (1, 2, 4)
    }
    commands["status"] = [*kinetix, "status", str(root)]
    say(f"plan: load {load()}; {args.plan_clips} clips")
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in commands}
    for _ in range(args.rounds):
        for name, argv in commands.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            times[name].append((wall, cpu))
    say("")
    say(f"| command at {args.plan_clips} clips | wall s | CPU s |")
    say("|---|---|---|")
    for name, runs in times.items():
        say(f"| `kinetix {name}` | {median_spread([w for w, _ in runs])} | "
            f"{median_spread([c for _, c in runs])} |")  # fmt: skip
    say(f"plan done: load {load()}")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_one":
        stage, executor, root, out, workers = sys.argv[2:7]
        print(json.dumps(one_run(stage, executor, Path(root), Path(out), int(workers))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/kinetix-bench-cluster"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parts", default="stages,memory,plan")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--executors", default=",".join(EXECUTORS), help="of local,dask,slurm")
    parser.add_argument("--stages", default="verify,frames", help="of verify,frames")
    parser.add_argument("--verify-clips", type=int, default=1500)
    parser.add_argument("--frames-clips", type=int, default=120)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--map-tasks", type=int, default=5000, help="for the client.map row")
    parser.add_argument("--in-flight", type=int, default=None)
    parser.add_argument("--plan-clips", type=int, default=650_000)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    say(f"bench_cluster: {os.cpu_count()} CPUs; uptime load {load()}")
    parts = {"stages": stages, "memory": memory, "plan": plan}
    for name in args.parts.split(","):
        parts[name](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
