"""Dask workers as SLURM jobs: the job shape, its check against the cluster, and the wait for it.

A shape no node can satisfy would leave the jobs pending forever (``PD (PartitionConfig)`` with a
4-core job on 2-core nodes), so before submitting, the requested cores, memory, walltime and
partition are compared with what ``sinfo`` reports; while waiting for the first worker the jobs'
state and pending reason are read with ``scontrol``, and a job that cannot start stops the run
with one line naming the limit and the flag to change.
"""

from __future__ import annotations

import logging
import math
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kinetix.config import SlurmConfig
from kinetix.errors import ConfigError, MissingDependencyError
from kinetix.executors.dask import quiet_environment

log = logging.getLogger(__name__)

# Pending reasons that never clear by waiting, and the flag that fixes each.
IMPOSSIBLE_REASONS: dict[str, str] = {
    "PartitionConfig": "--slurm-cores/--slurm-memory/--slurm-partition",
    "PartitionNodeLimit": "--slurm-cores/--slurm-partition",
    "PartitionTimeLimit": "--slurm-walltime",
    "PartitionDown": "--slurm-partition",
    "PartitionInactive": "--slurm-partition",
    "BadConstraints": "--slurm-extra",
    "InvalidAccount": "--slurm-account",
    "AccountNotAllowed": "--slurm-account",
    "InvalidQOS": "--slurm-extra (--qos)",
    "QOSNotAllowed": "--slurm-extra (--qos)",
    "QOSMaxCpuPerJobLimit": "--slurm-cores",
    "QOSMaxMemoryPerJob": "--slurm-memory",
    "QOSMaxWallDurationPerJobLimit": "--slurm-walltime",
    "MaxCpuPerAccount": "--slurm-cores",
    "MaxMemPerLimit": "--slurm-memory",
}
_ENDED = {"FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Partition:
    """What ``sinfo`` says about one partition (the largest node of it)."""

    name: str
    default: bool
    cpus: int
    memory_mb: int
    time_limit: float | None  # seconds; None: no limit
    up: bool


def memory_mb(text: str) -> int:
    """The ``--mem`` dask-jobqueue will ask for, in MiB (it rounds the size up)."""
    from dask.utils import parse_bytes

    return math.ceil(parse_bytes(text) / 2**20)


def walltime_seconds(text: str) -> float | None:
    """SLURM time (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``, ``infinite``) in seconds."""
    text = text.strip()
    if text in ("infinite", "UNLIMITED", "n/a", ""):
        return None
    days = 0
    if "-" in text:
        d, text = text.split("-", 1)
        days = int(d)
        parts = [int(p) for p in text.split(":")] + [0, 0]
        h, m, s = parts[:3]
    else:
        parts = [int(p) for p in text.split(":")]
        if len(parts) == 1:
            h, m, s = 0, parts[0], 0
        elif len(parts) == 2:
            h, m, s = 0, parts[0], parts[1]
        else:
            h, m, s = parts[:3]
    return float(((days * 24 + h) * 60 + m) * 60 + s)


def read_partitions(run: Callable[[list[str]], str] | None = None) -> list[Partition]:
    """Every partition ``sinfo`` reports, each with its largest node."""
    out = (run or _run)(["sinfo", "-h", "-o", "%P|%c|%m|%l|%a"])
    found: dict[str, Partition] = {}
    for line in out.splitlines():
        if line.count("|") != 4:
            continue
        name, cpus, mem, limit, avail = line.split("|")
        default = name.endswith("*")
        name = name.rstrip("*")
        p = Partition(
            name, default, int(cpus.rstrip("+")), int(mem.rstrip("+") or 0),
            walltime_seconds(limit), avail.strip() == "up",
        )  # fmt: skip
        old = found.get(name)
        if old is not None:
            p = Partition(
                name, old.default or default, max(old.cpus, p.cpus),
                max(old.memory_mb, p.memory_mb), p.time_limit, old.up or p.up,
            )  # fmt: skip
        found[name] = p
    return list(found.values())


def check_shape(config: SlurmConfig, partitions: list[Partition]) -> Partition:
    """The partition the jobs will go to, or a ConfigError naming the limit and the flag."""
    if not partitions:
        raise ConfigError("sinfo reports no SLURM partitions; is this a SLURM cluster?")
    if config.partition is None:
        chosen = next((p for p in partitions if p.default), None)
        if chosen is None:
            names = ", ".join(p.name for p in partitions)
            raise ConfigError(
                f"this SLURM cluster has no default partition; pass --slurm-partition ({names})"
            )
    else:
        chosen = next((p for p in partitions if p.name == config.partition), None)
        if chosen is None:
            names = ", ".join(p.name for p in partitions)
            raise ConfigError(
                f"--slurm-partition {config.partition!r} does not exist; partitions are {names}"
            )
    where = f"partition {chosen.name!r}"
    if not chosen.up:
        raise ConfigError(f"SLURM {where} is not up (sinfo); choose another --slurm-partition")
    if config.cores > chosen.cpus:
        raise ConfigError(
            f"--slurm-cores {config.cores}: the largest node of {where} has {chosen.cpus} CPUs "
            f"(sinfo); use --slurm-cores {chosen.cpus} or less"
        )
    need = memory_mb(config.memory)
    if chosen.memory_mb and need > chosen.memory_mb:
        raise ConfigError(
            f"--slurm-memory {config.memory} ({need} MiB): the largest node of {where} has "
            f"{chosen.memory_mb} MiB (sinfo); use --slurm-memory {chosen.memory_mb}MiB or less"
        )
    wall = walltime_seconds(config.walltime)
    if chosen.time_limit is not None and wall is not None and wall > chosen.time_limit:
        raise ConfigError(
            f"--slurm-walltime {config.walltime} is longer than the {where} time limit "
            f"({_hms(chosen.time_limit)}, sinfo); use a shorter --slurm-walltime"
        )
    return chosen


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _run(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        raise ConfigError(
            f"--executor slurm needs SLURM's {argv[0]} on PATH; run kinetix on a SLURM login node"
        )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ConfigError(f"{' '.join(argv)} failed: {tail[0]}")
    return done.stdout


def _job_kwargs(
    config: SlurmConfig, scheduler_host: str | None, log_directory: Path | None
) -> dict[str, Any]:
    worker_args: list[str] = []
    if scheduler_host in ("127.0.0.1", "localhost", "::1"):
        worker_args = ["--host", scheduler_host]  # one machine: workers stay on loopback too
    return {
        "queue": config.partition,
        "account": config.account,
        "cores": config.cores,
        "processes": 1,
        "memory": config.memory,
        "walltime": config.walltime,
        "job_extra_directives": list(config.extra),
        "job_name": "kinetix",
        "python": sys.executable,
        "worker_extra_args": worker_args,
        # the worker's settings, as the parent's own LocalCluster gets them (dask.QUIET)
        "job_script_prologue": [
            f"export {k}={shlex.quote(v)}" for k, v in quiet_environment().items()
        ],
        "log_directory": str(log_directory) if log_directory is not None else None,
    }


def _import_jobqueue() -> Any:
    try:
        import dask_jobqueue
    except ImportError:
        raise MissingDependencyError("dask_jobqueue", "dask") from None
    return dask_jobqueue


def make_cluster(
    config: SlurmConfig, *, scheduler_host: str | None, log_directory: Path | None
) -> Any:
    """A ``dask_jobqueue.SLURMCluster`` with one single-process worker per job (no jobs yet)."""
    jobqueue = _import_jobqueue()
    scheduler_options: dict[str, Any] = {"dashboard_address": None}
    if scheduler_host:
        scheduler_options["host"] = scheduler_host
    if log_directory is not None:
        log_directory.mkdir(parents=True, exist_ok=True)
    return jobqueue.SLURMCluster(
        scheduler_options=scheduler_options,
        **_job_kwargs(config, scheduler_host, log_directory),
    )


def job_script(
    config: SlurmConfig, *, scheduler_host: str | None, log_directory: Path | None
) -> str:
    """The script each worker job runs, as ``sbatch`` will get it (the scheduler port is known
    only once it listens, so it reads ``SCHEDULER``)."""
    from dask_jobqueue.slurm import SLURMJob

    _import_jobqueue()
    address = f"tcp://{scheduler_host or 'SCHEDULER'}:PORT"
    job = SLURMJob(
        scheduler=address,
        name="kinetix-worker",
        **_job_kwargs(config, scheduler_host, log_directory),
    )
    return str(job.job_script())


def job_states(
    job_ids: list[str], run: Callable[[list[str]], str] | None = None
) -> dict[str, tuple[str, str]]:
    """Job id -> (JobState, Reason) from ``scontrol show job -o``."""
    states: dict[str, tuple[str, str]] = {}
    for job in job_ids:
        try:
            out = (run or _run)(["scontrol", "show", "job", "-o", job])
        except ConfigError:
            continue  # forgotten by slurmctld already: its worker connected or it ended long ago
        fields = dict(item.split("=", 1) for item in out.split() if "=" in item)
        states[job] = (fields.get("JobState", "UNKNOWN"), fields.get("Reason", "None"))
    return states


def wait_for_first_worker(
    cluster: Any,
    client: Any,
    config: SlurmConfig,
    *,
    run: Callable[[list[str]], str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Block until one worker connected; fail fast when the jobs cannot start."""
    started = clock()
    said = started
    while not client.scheduler_info().get("workers"):
        ids = [str(job.job_id) for job in cluster.workers.values() if getattr(job, "job_id", None)]
        states = job_states(ids, run)
        for job, (state, reason) in states.items():
            if state == "PENDING" and reason in IMPOSSIBLE_REASONS:
                raise ConfigError(
                    f"SLURM job {job} cannot start: pending ({reason}) for the shape "
                    f"{config.cores} cores, {config.memory}, {config.walltime}"
                    f"{' on ' + config.partition if config.partition else ''}; change "
                    f"{IMPOSSIBLE_REASONS[reason]}"
                )
        ended = {j: s for j, (s, _) in states.items() if s in _ENDED}
        if ids and len(ended) == len(ids):
            logs = getattr(cluster, "log_directory", None)
            where = f" (logs in {logs})" if logs else ""
            jobs = ", ".join(f"{j} {s}" for j, s in ended.items())
            raise ConfigError(
                f"every SLURM worker job ended before connecting ({jobs}){where}; check that "
                "this Python and kinetix are installed on the compute nodes"
            )
        now = clock()
        if now - started > config.wait:
            pending = ", ".join(f"{j} {s} ({r})" for j, (s, r) in states.items()) or "none listed"
            raise ConfigError(
                f"no SLURM worker connected within {config.wait:.0f} s (jobs: {pending}); "
                "the cluster may be busy: raise --slurm-wait or try another --slurm-partition"
            )
        if now - said >= 10:
            pending = ", ".join(f"{j} {s} ({r})" for j, (s, r) in states.items()) or "submitting"
            log.warning("waiting for SLURM workers: %s", pending)
            said = now
        sleep(POLL_SECONDS)
