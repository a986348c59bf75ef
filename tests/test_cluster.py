"""Every stage on a Dask cluster (bound to 127.0.0.1) matches a local run; the executor seam,
its settings, worker preflight and the SLURM shape checks."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shlex
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _roots import RootClip, build_videos_root, clips

from kinetix.card import CARD_NAME
from kinetix.cli.main import main
from kinetix.config import (
    DownloadConfig,
    ExecutorConfig,
    FramesConfig,
    ProcessConfig,
    RepairConfig,
    SlurmConfig,
    VerifyConfig,
)
from kinetix.errors import ConfigError
from kinetix.executors import Again, LocalExecutor, Preflight, TaskKind, open_executor, run_tasks
from kinetix.executors import preflight as preflight_module
from kinetix.executors import slurm as slurm_mod
from kinetix.executors.dask import QUIET, quiet_environment
from kinetix.executors.preflight import check_worker
from kinetix.export import ExportConfig
from kinetix.interrupts import StopToken
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import Manifest

distributed = pytest.importorskip("distributed")


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda e: DownloadConfig(root=Path("r"), release="k400", split="val", executor=e),
        lambda e: VerifyConfig(executor=e),
        lambda e: ProcessConfig(executor=e),
        lambda e: FramesConfig(executor=e),
        lambda e: RepairConfig(executor=e),
        lambda e: ExportConfig(format="webdataset", executor=e),
    ],
)
@pytest.mark.parametrize("spec", ["spark", "dask://nohost", "slurm2", ""])
def test_an_unknown_executor_is_refused_by_every_stage(make, spec) -> None:
    with pytest.raises(ConfigError, match="valid values are local, dask, dask://HOST:PORT, slurm"):
        make(spec)


def test_executor_and_slurm_settings_are_checked(tmp_path) -> None:
    assert ExecutorConfig("dask://10.0.0.1:8786").address == "tcp://10.0.0.1:8786"
    assert ExecutorConfig("tcp://h:1").kind == "address"
    with pytest.raises(ConfigError, match="--in-flight must be >= 1"):
        ExecutorConfig("dask", in_flight=0)
    with pytest.raises(ConfigError, match="--slurm-memory 'lots' is not a size"):
        SlurmConfig(memory="lots")
    with pytest.raises(ConfigError, match="--slurm-walltime '4h' is not a SLURM time"):
        SlurmConfig(walltime="4h")
    with pytest.raises(ConfigError, match="--slurm-cores must be >= 1"):
        SlurmConfig(cores=0)
    with pytest.raises(ConfigError, match="must be an sbatch option"):
        SlurmConfig(extra=("qos=low",))
    with pytest.raises(ConfigError, match="--executor only applies to --format webdataset"):
        ExportConfig(format="csv", executor="dask")
    toml = tmp_path / "slurm.toml"
    toml.write_text('[slurm]\npartition = "gpu"\ncores = 2\nextra = ["--qos=low"]\n')
    got = SlurmConfig.from_file(toml, cores=8, memory=None)
    assert (got.partition, got.cores, got.memory, got.extra) == ("gpu", 8, "16GB", ("--qos=low",))
    toml.write_text("[slurm]\ncpus = 2\n")
    with pytest.raises(ConfigError, match=r"unknown key.*cpus; valid keys are account, cores"):
        SlurmConfig.from_file(toml)


# --- the seam ----------------------------------------------------------------------------------


def double(x: int) -> int:
    return 2 * x


def test_run_tasks_feeds_lazily_and_stops_when_told() -> None:
    pulled: list[int] = []

    def tasks() -> Iterator[int]:
        for i in range(10_000):
            pulled.append(i)
            yield i

    got: list[int] = []
    with LocalExecutor(workers=2) as ex:
        run_tasks(tasks(), double, ex, on_result=lambda r: got.append(r) or len(got) >= 3)
    assert len(got) == 3
    assert len(pulled) <= 3 + 4 * 2 * 2, "tasks are handed out a few at a time, not all at once"


def identity(x: int) -> int:
    return x


@pytest.mark.parametrize("workers", [0, 2])
def test_run_tasks_runs_again_what_on_result_sends_back_through_the_same_pace(workers) -> None:
    asked: list[float] = []
    got: list[int] = []
    tries: Counter[int] = Counter()

    def pace() -> float:
        # Every other ask says "wait a little": dispatch must go on once the wait is over.
        asked.append(time.monotonic())
        return 0.0 if len(asked) % 2 == 0 else 0.01

    def record(x: int) -> Again[int] | None:
        tries[x] += 1
        if x % 2 and tries[x] == 1:  # odd tasks fail their first try
            return Again(x, after=0.05)
        got.append(x)
        return None

    with LocalExecutor(workers=workers) as ex:
        run_tasks(range(10), identity, ex, on_result=record, kind=TaskKind.IO, pace=pace)
    assert sorted(got) == list(range(10))
    assert tries == Counter({x: 2 if x % 2 else 1 for x in range(10)})
    assert len(asked) == 2 * 15, "every dispatch, retries included, went through pace"


def test_run_tasks_keeps_collecting_while_pace_says_wait() -> None:
    """A pace that opens only once a result is in, as a half-open breaker waits for its probe:
    blocking (or sleeping) in the pace instead of collecting would never finish."""
    got: list[int] = []
    asked = [0]

    def pace() -> float:
        asked[0] += 1
        assert asked[0] < 10_000, "the runner stopped collecting while it waited"
        return 0.0 if asked[0] == 1 or got else 0.05

    with LocalExecutor(workers=2) as ex:
        run_tasks(range(5), identity, ex, on_result=got.append, kind=TaskKind.IO, pace=pace)
    assert sorted(got) == list(range(5))


def test_run_tasks_dispatches_nothing_once_stopped() -> None:
    stop = StopToken()
    ran: list[int] = []

    def record(x: int) -> Again[int] | None:
        ran.append(x)
        stop.set()
        return Again(x)  # a retry asked for after the stop: never dispatched

    with LocalExecutor(workers=1) as ex:
        run_tasks(range(100), double, ex, on_result=record, in_flight=1, stop=stop)
    assert ran == [0]


@pytest.fixture(scope="module")
def dask_address() -> Iterator[str]:
    """One LocalCluster (2 single-threaded workers on 127.0.0.1) that every stage below uses."""
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
    )
    try:
        yield "dask://" + cluster.scheduler_address.split("://", 1)[1]
    finally:
        cluster.close()


def _worker_settings() -> tuple[object, ...]:
    import dask

    return tuple(dask.config.get(key) for key in sorted(QUIET))


_QUIET_SEEN = tuple(QUIET[key] for key in sorted(QUIET))


def test_slurm_worker_jobs_get_the_same_quiet_settings(tmp_path) -> None:
    import subprocess
    import sys

    # the job script comes from dask-jobqueue (the `dask` extra), which '.[dev]' does not bring
    pytest.importorskip("dask_jobqueue", reason="dask-jobqueue (kinetix[dask]) is not installed")

    script = slurm_mod.job_script(
        SlurmConfig(cores=1, memory="1GB"), scheduler_host="127.0.0.1", log_directory=None
    )
    exports = [shlex.split(line)[1] for line in script.splitlines() if line.startswith("export ")]
    env = dict(line.split("=", 1) for line in exports)
    assert set(env) == set(quiet_environment())
    # what a worker started by that script reads back from its environment
    code = (
        "import distributed, dask; "
        f"print(repr(tuple(dask.config.get(k) for k in {sorted(QUIET)!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    assert out.strip() == repr(_QUIET_SEEN)


def test_dask_executor_binds_to_loopback_and_bounds_what_is_queued() -> None:
    ex = open_executor(ExecutorConfig("dask", in_flight=3), 2)
    try:
        client = ex.client  # type: ignore[attr-defined]
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 2 and all(a.startswith("tcp://127.0.0.1:") for a in workers)
        assert ex._capacity() == 3  # type: ignore[attr-defined]
        # the workers' background work turned down (profiler off, slower ticks), as in QUIET
        assert client.run(_worker_settings) == {a: _QUIET_SEEN for a in workers}
        # nor Dask's MALLOC_TRIM_THRESHOLD_, which made every frame buffer a fresh mmap
        trim = client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_")
        assert trim == {a: None for a in workers}
        got: list[int] = []
        run_tasks(range(20), double, ex, on_result=got.append)
        assert sorted(got) == [2 * x for x in range(20)]
    finally:
        ex.close()


def quick(x: int) -> int:
    time.sleep(0.002)
    return 2 * x


def fails_at_150(x: int) -> int:
    if x == 150:
        raise ValueError("a bug at 150")
    return quick(x)


class KillOnce:
    """Kills the worker running item ``at`` once (a marker file says it did)."""

    def __init__(self, marker: Path, at: int):
        self.marker, self.at = marker, at

    def __call__(self, x: int) -> int:
        if x == self.at and not self.marker.exists():
            self.marker.write_text("killed")
            os.kill(os.getpid(), 9)
        return quick(x)


@pytest.fixture(scope="module")
def two_workers() -> Iterator[object]:
    ex = open_executor(ExecutorConfig("dask"), 2)
    try:
        yield ex
    finally:
        ex.close()


def _dask_tasks(ex: object, run: Callable[[], None]) -> list[str]:
    """Names of the Dask tasks ``run`` ran on ``ex``'s cluster."""
    with distributed.get_task_stream(ex.client) as stream:  # type: ignore[attr-defined]
        run()
    return [t["key"][0] if isinstance(t["key"], tuple) else t["key"] for t in stream.data]


def test_short_tasks_ride_in_batches_on_dask_and_paced_ones_never(two_workers) -> None:
    got: list[int] = []
    paced: list[int] = []

    def unpaced() -> None:
        run_tasks(range(300), quick, two_workers, on_result=got.append)

    def metered() -> None:
        run_tasks(range(40), quick, two_workers, on_result=paced.append, pace=lambda: 0.0)

    tasks = _dask_tasks(two_workers, unpaced)
    assert sorted(got) == [2 * x for x in range(300)]  # each result once
    assert all(t.startswith("run_batch-") for t in tasks) and len(tasks) < 100
    tasks = _dask_tasks(two_workers, metered)
    assert sorted(paced) == [2 * x for x in range(40)]
    assert len(tasks) == 40 and all(t.startswith("quick-") for t in tasks)  # one per dispatch


def sleepy(x: int) -> int:
    time.sleep(1.0)
    return x


def test_a_part_filled_batch_waits_while_the_workers_have_work(two_workers) -> None:
    queue = two_workers.open_queue(sleepy, batch=True)
    results: list[int] = []

    def run() -> None:
        for i in range(4):  # two Dask tasks per worker thread: none would be idle
            queue.submit(i)
        queue._size = 4  # type: ignore[attr-defined]  # as if learnt from earlier batches
        queue.submit(10)
        queue.submit(11)
        # not sent half-full while the cluster has work, so it fills up after a collect
        assert queue.collect(timeout=0) == [] and queue.in_flight == 6
        queue.submit(12)
        queue.submit(13)
        while queue.in_flight:
            results.extend(queue.collect())

    tasks = _dask_tasks(two_workers, run)
    assert sorted(results) == [0, 1, 2, 3, 10, 11, 12, 13]
    assert len(tasks) == 5  # the four, then 10 to 13 together (not 10-11 and 12-13)


def test_a_part_filled_batch_goes_out_when_the_cluster_runs_low(two_workers) -> None:
    queue = two_workers.open_queue(sleepy, batch=True)
    queue.submit(0)
    queue._size = 4  # type: ignore[attr-defined]
    queue.submit(1)
    # one Dask task for two worker threads: the part-filled batch goes as it is, now
    assert queue.collect(timeout=0) == [] and not queue._buffer  # type: ignore[attr-defined]
    results: list[int] = []
    while queue.in_flight:
        results.extend(queue.collect())
    assert sorted(results) == [0, 1]


def test_a_bug_mid_batch_raises_after_the_results_before_it(two_workers) -> None:
    got: list[int] = []
    with pytest.raises(ValueError, match="a bug at 150") as err:
        run_tasks(range(300), fails_at_150, two_workers, on_result=got.append, in_flight=1)
    assert sorted(got) == [2 * x for x in range(150)]  # one batch at a time: all before it
    assert "on the worker" in "\n".join(getattr(err.value, "__notes__", ["on the worker"]))


def test_a_worker_killed_mid_batch_loses_nothing_and_repeats_nothing(two_workers, tmp_path) -> None:
    got: list[int] = []
    fn = KillOnce(tmp_path / "killed", at=200)
    run_tasks(range(300), fn, two_workers, on_result=got.append)
    assert (tmp_path / "killed").exists()  # it did die mid-batch
    assert sorted(got) == [2 * x for x in range(300)]


def _tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file outside ``.kinetix``."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".kinetix" not in p.parts and p.name != CARD_NAME
    }


def _verify_columns(root: Path) -> dict[str, tuple[object, ...]]:
    with Manifest(manifest_path(root), readonly=True) as m:
        return {r.key: (r.state, r.verify, r.num_frames, r.error_code) for r in m.clips()}


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """Six unverified clips, one of them a truncated file verify must quarantine."""
    root = tmp_path_factory.mktemp("videos")
    items = [RootClip(c, verify=None) for c in clips("val", ["abseiling", "archery"] * 3)]
    return build_videos_root(root, items)


def _copy_root(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_every_stage_on_a_dask_cluster_matches_a_local_run(videos, tmp_path, dask_address) -> None:
    results = {}
    for name, executor in (("local", "local"), ("dask", dask_address)):
        base = tmp_path / name
        root = _copy_root(videos, base / "videos")
        bad = next(root.glob("val/archery/*.mp4"))
        bad.write_bytes(bad.read_bytes()[:2000])
        flags = ["--executor", executor, "--workers", "2", "--no-progress"]
        assert main(["verify", str(root), *flags]) == 0
        assert main(["frames", str(root), "--out", str(base / "frames"), *flags]) == 0
        assert main(
            ["process", str(root), "--out", str(base / "small"), "--short-side", "32",
             "--threads", "1", *flags]
        ) == 0  # fmt: skip
        shard_flags = ["--executor", executor, "--workers", "2", "--shard-size", "2"]
        assert main(
            ["export", str(root), "--format", "webdataset", "--out", str(base / "wds"),
             *shard_flags]
        ) == 0  # fmt: skip
        results[name] = {
            "verify": _verify_columns(root),
            "videos": _tree(root),
            "frames": _tree(base / "frames"),
            "small": _tree(base / "small"),
            "wds": _tree(base / "wds"),
            "wds-index": json.loads((base / "wds" / "val-index.json").read_text())["shards"],
        }
    local, dask = results["local"], results["dask"]
    assert sum(v[1] == "bad" for v in local["verify"].values()) == 1
    assert sorted(local["wds"]) == [  # 5 good clips in shards of 2
        "val-000000.tar", "val-000001.tar", "val-000002.tar", "val-index.json",
    ]  # fmt: skip
    del local["wds"]["val-index.json"], dask["wds"]["val-index.json"]  # holds its own path
    for stage in local:
        assert dask[stage] == local[stage], f"{stage} differs between local and dask"


def test_a_dask_download_matches_a_local_one(tmp_path, mirror_server, dask_address) -> None:
    trees = []
    for executor in ("local", dask_address):
        root = tmp_path / executor.replace("/", "_").replace(":", "_")
        argv = [
            "download", "k600", "--split", "val", "--root", str(root), "--mirror",
            mirror_server.url, "--executor", executor, "--workers", "2", "--no-progress",
        ]  # fmt: skip
        assert main(argv) == 0
        trees.append(_tree(root))
    assert trees[0] == trees[1] and trees[0]


# --- preflight ---------------------------------------------------------------------------------


def test_preflight_names_the_worker_host_and_what_is_missing(
    tmp_path, dask_address, monkeypatch
) -> None:
    preflight = Preflight(tmp_path / "out", tools=("av",))
    monkeypatch.setattr(Preflight, "expected", lambda self: {"av": "0.0.1"})
    with pytest.raises(ConfigError) as err:
        open_executor(dask_address, preflight=preflight)
    line = str(err.value)
    assert "\n" not in line
    assert line.startswith("worker tcp://127.0.0.1:") and f" on {socket.gethostname()}: " in line
    assert "differs from the parent's 0.0.1" in line
    assert not preflight.token_path.exists()


def test_preflight_tools_come_from_the_stage_that_needs_them(tmp_path) -> None:
    """ffmpeg's and deno's finders are handed in by process/ and sources/; executors imports
    neither. A worker runs the finders it is sent, and a missing tool is named."""
    from kinetix.executors.preflight import Tool
    from kinetix.process.ffmpeg import FFMPEG_TOOL, find_ffmpeg

    preflight = Preflight(tmp_path / "out", tools=(FFMPEG_TOOL, "av"))
    assert preflight.expected()["ffmpeg"] == find_ffmpeg().version
    with pytest.raises(ConfigError, match="valid values are av, yt_dlp or a Tool value"):
        Preflight(tmp_path / "out", tools=("ffmpeg",))
    gone = Tool("ffmpeg", _no_version)
    (tmp_path / ".preflight-z").write_text("z")
    expected = {"ffmpeg": "7.0"}
    token = str(tmp_path / ".preflight-z")
    assert check_worker(token, "z", [], expected, {"ffmpeg": gone.version})[1] == [
        "ffmpeg is missing"
    ]
    tree = ast.parse(Path(preflight_module.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m for m in imported if m.startswith(("kinetix.process", "kinetix.sources"))}


def _no_version() -> str | None:
    return None


def test_a_worker_that_does_not_see_the_root_says_so(tmp_path) -> None:
    host, problems = check_worker(str(tmp_path / "elsewhere" / ".preflight-x"), "x", [], {})
    assert host == socket.gethostname()
    assert problems == [
        f"does not see {tmp_path / 'elsewhere'} (the root must be at the same path on every "
        "node, on a shared filesystem)"
    ]
    (tmp_path / ".preflight-y").write_text("y")
    assert check_worker(str(tmp_path / ".preflight-y"), "y", [str(tmp_path / "no")], {})[1] == [
        f"does not see {tmp_path / 'no'}"
    ]


# --- SLURM shapes, without a cluster ------------------------------------------------------------

SINFO = "debug*|2|1900|1:00:00|up\nbig|16|64000|infinite|up\nbig|32+|128000|infinite|up\n"


def test_partitions_are_read_from_sinfo() -> None:
    parts = {p.name: p for p in slurm_mod.read_partitions(lambda argv: SINFO)}
    assert parts["debug"] == slurm_mod.Partition("debug", True, 2, 1900, 3600.0, True)
    assert (parts["big"].cpus, parts["big"].memory_mb, parts["big"].time_limit) == (
        32, 128000, None,
    )  # fmt: skip


@pytest.mark.parametrize(
    "shape, message",
    [
        ({"cores": 4}, "--slurm-cores 4: the largest node of partition 'debug' has 2 CPUs "
         "(sinfo); use --slurm-cores 2 or less"),
        ({"memory": "16GB"}, "--slurm-memory 16GB (15259 MiB): the largest node of partition "
         "'debug' has 1900 MiB (sinfo)"),
        ({"walltime": "04:00:00"}, "--slurm-walltime 04:00:00 is longer than the partition "
         "'debug' time limit (01:00:00, sinfo)"),
        ({"partition": "gpu"}, "--slurm-partition 'gpu' does not exist; partitions are debug, big"),
    ],
)  # fmt: skip
def test_a_shape_no_node_can_run_is_refused_before_submitting(shape, message) -> None:
    parts = slurm_mod.read_partitions(lambda argv: SINFO)
    base = {"cores": 1, "memory": "1GB", "walltime": "00:30:00"}
    with pytest.raises(ConfigError) as err:
        slurm_mod.check_shape(SlurmConfig(**{**base, **shape}), parts)
    assert str(err.value).startswith(message)
    assert slurm_mod.check_shape(SlurmConfig(**base), parts).name == "debug"
    assert slurm_mod.check_shape(SlurmConfig(**{**base, "partition": "big"}), parts).cpus == 32


class _Job:
    def __init__(self, job_id: str):
        self.job_id = job_id


class _Cluster:
    log_directory = "/logs"

    def __init__(self, *ids: str):
        self.workers = {i: _Job(i) for i in ids}


class _Client:
    def scheduler_info(self) -> dict[str, dict[str, object]]:
        return {"workers": {}}


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _scontrol(state: str, reason: str):
    return lambda argv: f"JobId={argv[-1]} JobName=kinetix JobState={state} Reason={reason} X=1"


@pytest.mark.parametrize(
    "state, reason, message",
    [
        ("PENDING", "PartitionConfig", "SLURM job 7 cannot start: pending (PartitionConfig) for "
         "the shape 1 cores, 1GB, 00:30:00; change --slurm-cores/--slurm-memory/--slurm-partition"),
        ("PENDING", "InvalidAccount", "change --slurm-account"),
        ("FAILED", "NonZeroExitCode", "every SLURM worker job ended before connecting "
         "(7 FAILED, 8 FAILED) (logs in /logs)"),
        ("PENDING", "Resources", "no SLURM worker connected within 30 s (jobs: 7 PENDING "
         "(Resources), 8 PENDING (Resources)); the cluster may be busy"),
    ],
)  # fmt: skip
def test_waiting_for_workers_fails_fast_on_a_job_that_cannot_start(state, reason, message) -> None:
    clock = _Clock()
    config = SlurmConfig(cores=1, memory="1GB", walltime="00:30:00", wait=30)
    with pytest.raises(ConfigError) as err:
        slurm_mod.wait_for_first_worker(
            _Cluster("7", "8"), _Client(), config, run=_scontrol(state, reason),
            clock=clock, sleep=clock.sleep,
        )  # fmt: skip
    assert message in str(err.value) and "\n" not in str(err.value)
    assert clock.now <= 31


def test_a_finished_derived_job_reruns_without_a_cluster(videos, tmp_path) -> None:
    """Nothing left to do: no scheduler is contacted (none listens at this address), no SLURM
    job would be submitted."""
    nowhere = "dask://127.0.0.1:9"  # discard port: nothing to connect to
    for verb, extra in (("frames", []), ("process", ["--short-side", "32"])):
        out = tmp_path / verb
        argv = [verb, str(videos), "--out", str(out), *extra, "--no-progress"]
        assert main([*argv, "--workers", "1"]) == 0
        before = _tree(out)
        assert main([*argv, "--executor", nowhere]) == 0
        assert _tree(out) == before
