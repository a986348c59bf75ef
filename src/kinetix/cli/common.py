"""Flags and parsing shared by several verbs (not a verb itself: discovery skips ``common``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from kinetix import sizes
from kinetix.config import EXECUTOR_KINDS, ExecutorConfig, Selection, SlurmConfig
from kinetix.errors import ConfigError


def emit_stderr(line: str) -> None:
    """Where library progress lines go from the CLI: stderr, so stdout stays the result."""
    print(line, file=sys.stderr, flush=True)


def add_derive_flags(p: argparse.ArgumentParser) -> None:
    """How ``process`` and ``frames`` run: clips at once, ffmpeg threads, executor, retries."""
    p.add_argument("--workers", type=int, metavar="N", help="clips at once (default: cores)")
    p.add_argument("--threads", type=int, metavar="N", help="ffmpeg threads per clip")
    p.add_argument(
        "--retry-failed", action="store_true", help="retry clips that failed in an earlier run"
    )
    add_executor_flags(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar or lines")


def size_flag(flag: str) -> Callable[[str], int]:
    """An argparse ``type`` for a byte-size flag (see ``kinetix.sizes`` for the units)."""

    def parse(text: str) -> int:
        try:
            return sizes.parse_size(text, flag)
        except ConfigError:  # argparse already names the flag
            raise argparse.ArgumentTypeError(f"{text!r} is not a size; {sizes.EXAMPLES}") from None

    return parse


def add_selection_flags(p: argparse.ArgumentParser) -> None:
    """The clip-selection flags of every verb that reads a catalog."""
    g = p.add_argument_group("selection")
    g.add_argument(
        "--classes",
        action="append",
        metavar="NAMES",
        help="comma-separated class names in any style (repeatable)",
    )
    g.add_argument("--classes-file", type=Path, metavar="FILE", help="class names, one a line")
    g.add_argument("--max-per-class", type=int, metavar="N", help="at most N clips per class")
    g.add_argument("--seed", type=int, default=0, help="seed of the --max-per-class sample")
    g.add_argument("--ids", type=Path, metavar="FILE", help="youtube ids or clip keys, one a line")


def selection_from(args: argparse.Namespace) -> Selection:
    """The selection the flags ask for; a flag given but naming nothing is a ``ConfigError``.

    Only a flag left out means "everything": ``--classes ""`` or an empty ``--classes-file``
    would otherwise silently select the whole split.
    """
    from kinetix.catalog.select import read_class_file, read_ids_file

    classes: list[str] | None = None
    if args.classes is not None:
        classes = [c.strip() for item in args.classes for c in item.split(",") if c.strip()]
        if not classes:
            given = " ".join(f"--classes {item!r}" for item in args.classes)
            raise ConfigError(
                f"{given} names no class; give comma-separated class names, "
                "or leave the flag out to select every class"
            )
    if args.classes_file:
        from_file = read_class_file(args.classes_file)
        if not from_file:
            raise ConfigError(
                f"--classes-file {args.classes_file} lists no class (blank lines and # comments "
                "are skipped); put one class name a line, or leave the flag out to select "
                "every class"
            )
        classes = [*(classes or ()), *from_file]
    ids = None
    if args.ids:
        ids = read_ids_file(args.ids)
        if not ids:
            raise ConfigError(
                f"--ids {args.ids} lists no youtube id or clip key (blank lines and # comments "
                "are skipped); put one a line, or leave the flag out to select every clip"
            )
    if args.max_per_class is not None and args.max_per_class < 1:
        raise ConfigError(f"--max-per-class must be >= 1, got {args.max_per_class}")
    return Selection(
        classes=tuple(classes) if classes is not None else None,
        max_per_class=args.max_per_class,
        seed=args.seed,
        ids=ids,
    )


def add_executor_flags(p: argparse.ArgumentParser) -> None:
    """Where tasks run (``--executor``) and, for ``slurm``, the shape of each worker job."""
    d = SlurmConfig()
    g = p.add_argument_group("executor")
    g.add_argument(
        "--executor",
        default="local",
        metavar="KIND",
        help=f"where tasks run: {EXECUTOR_KINDS} (default local)",
    )
    g.add_argument(
        "--scheduler-host",
        metavar="HOST",
        help="address the Dask scheduler listens on (default 127.0.0.1 for dask; for slurm this "
        "machine's name, which the compute nodes must reach)",
    )
    g.add_argument("--in-flight", type=int, metavar="N", help="tasks queued on the cluster at once")
    g.add_argument(
        "--dry-run",
        action="store_true",
        help="print where the tasks would run (the SLURM job script) and stop",
    )
    g.add_argument("--slurm-config", type=Path, metavar="FILE", help="TOML with a [slurm] table")
    g.add_argument("--slurm-partition", metavar="NAME", help="default: the cluster's default")
    g.add_argument("--slurm-cores", type=int, metavar="N", help=f"per job (default {d.cores})")
    g.add_argument("--slurm-memory", metavar="SIZE", help=f"per job (default {d.memory})")
    g.add_argument("--slurm-walltime", metavar="TIME", help=f"per job (default {d.walltime})")
    g.add_argument("--slurm-account", metavar="NAME")
    g.add_argument(
        "--slurm-extra",
        action="append",
        metavar="OPTION",
        help="another #SBATCH option, e.g. --slurm-extra=--qos=low (repeatable)",
    )
    g.add_argument(
        "--slurm-wait",
        type=float,
        metavar="SECONDS",
        help=f"give up when no worker job starts this long (default {d.wait:.0f})",
    )


def executor_from(args: argparse.Namespace) -> ExecutorConfig:
    flags = {
        "partition": args.slurm_partition,
        "cores": args.slurm_cores,
        "memory": args.slurm_memory,
        "walltime": args.slurm_walltime,
        "account": args.slurm_account,
        "extra": tuple(args.slurm_extra) if args.slurm_extra else None,
        "wait": args.slurm_wait,
    }
    if args.slurm_config is not None:
        slurm = SlurmConfig.from_file(args.slurm_config, **flags)
    else:
        slurm = SlurmConfig(**{k: v for k, v in flags.items() if v is not None})  # type: ignore[arg-type]
    return ExecutorConfig(
        args.executor,
        in_flight=args.in_flight,
        scheduler_host=args.scheduler_host,
        slurm=slurm,
        dry_run=args.dry_run,
    )


def print_dry_run(config: ExecutorConfig, workers: int | None, root: Path) -> None:
    """What ``--dry-run`` shows: the executor, and for SLURM the checked job script."""
    from kinetix.store.layout import slurm_logs

    if config.kind != "slurm":
        where = {"local": "local pools", "dask": "a local Dask cluster", "address": config.spec}
        count = f"{workers} workers" if workers else "one worker per core"
        print(f"would run on {where[config.kind]} with {count}")
        return
    from kinetix.executors import slurm

    partition = slurm.check_shape(config.slurm, slurm.read_partitions())
    print(
        f"would submit {workers or 1} SLURM job(s) to partition {partition.name!r}, "
        "each running this script:"
    )
    print(
        slurm.job_script(
            config.slurm, scheduler_host=config.scheduler_host, log_directory=slurm_logs(root)
        )
    )
