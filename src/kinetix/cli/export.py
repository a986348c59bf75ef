"""``kinetix export ROOT --format F``: lists, link trees, tables or WebDataset shards of a root."""

from __future__ import annotations

import argparse
from pathlib import Path

from kinetix.catalog.labels import LabelStyle
from kinetix.cli.common import add_executor_flags, executor_from, print_dry_run


def register(sub: argparse._SubParsersAction) -> None:
    from kinetix.export.config import ExportFormat

    p = sub.add_parser(
        "export",
        help="write training lists, a torchvision tree, a table or WebDataset shards of a root",
        description="Only clips that verified good are exported unless --include-unverified.",
    )
    p.add_argument("root", type=Path, metavar="ROOT", help="a kinetix videos or frames root")
    p.add_argument(
        "--format", required=True, choices=[f.value for f in ExportFormat], dest="format"
    )
    p.add_argument("--out", type=Path, help="output folder (default ROOT/exports/FORMAT)")
    p.add_argument("--split", action="append", dest="splits", help="only this split (repeatable)")
    p.add_argument("--release", help="for roots holding several releases")
    p.add_argument("--include-unverified", action="store_true", help="also clips never verified")
    p.add_argument("--absolute", action="store_true", help="lists: absolute paths")
    p.add_argument(
        "--link-dir", type=Path, help="lists: link the clips into DIR under names without spaces"
    )
    p.add_argument(
        "--link-style",
        default=LabelStyle.UNDERSCORE.value,
        choices=[s.value for s in LabelStyle if s is not LabelStyle.RAW],
        help="folder names in --link-dir (default underscore)",
    )
    p.add_argument("--hardlink", action="store_true", help="hard links instead of symlinks")
    p.add_argument(
        "--shard-size", default="1000", help="webdataset: clips (1000) or bytes (1GB) per shard"
    )
    p.add_argument("--shuffle", action="store_true", help="webdataset: shuffle clips (--seed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="webdataset shards / ava frame folders written at once (cores)",
    )
    add_executor_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kinetix.data.index import describe_left_out
    from kinetix.export import ExportConfig, export_root

    config = ExportConfig(
        format=args.format,
        out=args.out,
        splits=tuple(args.splits) if args.splits else None,
        release=args.release,
        include_unverified=args.include_unverified,
        absolute=args.absolute,
        link_dir=args.link_dir,
        link_style=args.link_style,
        hardlink=args.hardlink,
        shard_size=args.shard_size,
        shuffle=args.shuffle,
        seed=args.seed,
        workers=args.workers,
        executor=executor_from(args),
    )
    if config.executor.dry_run:
        print_dry_run(config.executor, config.workers, config.out_dir(args.root))
        return 0
    report = export_root(args.root, config)
    for s in report.splits:
        where = f" -> {s.output}" if s.output else ""
        print(f"{s.release} {s.split}: {s.written} {report.unit}{where}")
        if s.left_out:
            total = sum(s.left_out.values())
            print(f"  left out {total}: {describe_left_out(s.left_out)}")
    print(f"exported {report.written} {report.unit} as {report.format.value} to {report.out}")
    if report.kept is not None:
        print(f"  {report.kept.name} was already this manifest's export: left as it was")
    for hint in report.hints:
        print(f"  {hint}")
    return 0
