"""``kinetix annotations fetch|stats|labels|list``: annotation files, class lists and selections."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from kinetix.catalog.downstream import downstream_name
from kinetix.catalog.labels import LabelStyle
from kinetix.cli.common import add_selection_flags, selection_from

if TYPE_CHECKING:
    from kinetix.catalog.resolve import Resolution


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "annotations",
        help="fetch, summarise and select from the annotation files of a release",
        description="Annotation files of every Kinetics release: fetch them into the cache, "
        "summarise a split, list the classes, list the clips a selection picks.",
    )
    verbs = p.add_subparsers(dest="annotations_command", metavar="ACTION", required=True)

    fetch = verbs.add_parser("fetch", help="download annotation files into the cache")
    _add_release(fetch)
    fetch.add_argument("--split", help="one split (default: every split of the release)")
    _add_source_flags(fetch, local_file=False)
    fetch.set_defaults(func=run_fetch)

    stats = verbs.add_parser("stats", help="rows, classes, duplicates and short clips of a split")
    _add_release(stats)
    _add_split(stats)
    _add_source_flags(stats)
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.set_defaults(func=run_stats)

    labels = verbs.add_parser("labels", help="the classes of a release, in index order")
    _add_release(labels)
    labels.add_argument(
        "--style",
        choices=[s.value for s in LabelStyle],
        default=LabelStyle.RAW.value,
        help="print names as folder names of this style (default: raw)",
    )
    labels.set_defaults(func=run_labels)

    listing = verbs.add_parser("list", help="the clip keys and labels a selection picks")
    _add_release(listing)
    _add_split(listing)
    _add_source_flags(listing)
    add_selection_flags(listing)
    listing.add_argument(
        "--unresolved",
        action="store_true",
        help="ava-kinetics/countix: only the rows that resolve to no K700-2020 clip",
    )
    listing.set_defaults(func=run_list)


def _add_release(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "release",
        help="k400, k600, k700, k700-2020, or an annotation set on k700-2020 "
        "clips: ava-kinetics, countix",
    )


def _add_split(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", required=True, help="train, val, test (holdout_test for k600)")


def _add_source_flags(p: argparse.ArgumentParser, *, local_file: bool = True) -> None:
    p.add_argument("--mirror", metavar="URL", help="base URL standing in for the CVDF bucket")
    p.add_argument("--offline", action="store_true", help="use cached annotation files only")
    if local_file:
        p.add_argument(
            "--file",
            "--annotations",
            dest="file",
            type=Path,
            metavar="PATH",
            help="read this annotation file (any supported format) instead of fetching",
        )
        p.add_argument(
            "--k700-file",
            dest="base_file",
            type=Path,
            metavar="PATH",
            help="ava-kinetics/countix: resolve against this K700-2020 annotation file "
            "(CVDF's or DeepMind's) instead of fetching CVDF's",
        )


def run_fetch(args: argparse.Namespace) -> int:
    from kinetix.catalog.downstream import get_downstream
    from kinetix.catalog.fetch import fetch_annotations, fetch_downstream, read_sidecar
    from kinetix.catalog.releases import get_release

    if downstream_name(args.release):
        set_ = get_downstream(args.release)
        name, splits, fetch = set_.name, set_.splits, fetch_downstream
    else:
        release = get_release(args.release)
        name, splits, fetch = release.name, release.splits, fetch_annotations
    for split in [args.split] if args.split else splits:
        path = fetch(name, split, mirror=args.mirror, offline=args.offline)
        record = read_sidecar(path)
        digest = record.sha256 if record else "?"
        print(f"{name} {split}\t{path}\tsha256:{digest}")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from kinetix.catalog.fetch import load_stats
    from kinetix.catalog.labels import LabelRegistry
    from kinetix.catalog.releases import check_split, get_release

    if downstream_name(args.release):
        return _stats_downstream(args)
    # streamed: no row is kept, so a file of millions of rows is checked in little memory
    release = get_release(args.release)
    split = check_split(release, args.split)
    path, stats = load_stats(
        release.name, split, mirror=args.mirror, offline=args.offline, annotations=args.file
    )
    classes = len(LabelRegistry.for_release(release.name))
    if args.json:
        report = {"release": release.name, "split": split, "file": str(path)}
        print(json.dumps({**report, **stats.as_dict()}, indent=2))
        return 0
    print(f"{release.name} {split}: {path}")
    rows = [
        ("rows", stats.rows),
        ("labels", f"{stats.labels} of {classes} classes"),
        (
            "clips per class",
            f"min {stats.clips_per_class_min} / median {stats.clips_per_class_median} / "
            f"max {stats.clips_per_class_max}",
        ),
        ("unlabeled rows", stats.unlabeled),
        ("duplicate youtube ids", stats.duplicate_youtube_ids),
        ("duplicate keys", stats.duplicate_keys),
        ("short clips (< 10 s)", stats.short_clips),
        ("duration (s)", f"{stats.duration_min} to {stats.duration_max}"),
    ]
    for name, value in rows:
        print(f"  {name:22s} {value}")
    return 0


def run_labels(args: argparse.Namespace) -> int:
    from kinetix.catalog.labels import LabelRegistry

    registry = LabelRegistry.for_release(args.release)
    for index, name in enumerate(registry.names):
        print(f"{index}\t{registry.folder(name, args.style)}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from kinetix.catalog.fetch import load_catalog

    if downstream_name(args.release):
        return _list_downstream(args)
    selection = selection_from(args)
    catalog = load_catalog(
        args.release, args.split, mirror=args.mirror, offline=args.offline, annotations=args.file
    )
    for clip in catalog.select(selection):
        print(clip.key if clip.label is None else f"{clip.key}\t{clip.label}")
    return 0


# --- AVA-Kinetics and Countix -----------------------------------------------------------------


def _resolution(args: argparse.Namespace) -> Resolution:
    from kinetix.catalog.resolve import load_resolution

    return load_resolution(
        args.release, args.split, mirror=args.mirror, offline=args.offline,
        annotations=args.file, base_annotations=args.base_file,
    )  # fmt: skip


def _stats_downstream(args: argparse.Namespace) -> int:
    from kinetix.catalog.resolve import REASONS

    report = _resolution(args).summary()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{report['release']} {report['split']}: {report['file']}")
    print(f"  resolved against {report['base']}: {report['base_file']}")
    rows: list[tuple[str, object]] = [("rows", report["rows"])]
    if report["keyframes"] is not None:
        rows.append(("keyframes", report["keyframes"]))
    rejected = ", ".join(f"{k} {v}" for k, v in report["rejected_reasons"].items())
    rows.append(("rejected", f"{report['rejected']}" + (f" ({rejected})" if rejected else "")))
    rows.append(("resolving", report["resolving"]))
    for reason, count in report["not_resolving"].items():
        rows.append((f"not resolving: {reason}", f"{count} ({REASONS[reason]})"))
    if report["ambiguous"]:
        rows.append(("in two clips", f"{report['ambiguous']} (the more central clip is used)"))
    rows.append(("clips to fetch", report["clips_to_fetch"]))
    rows.append(("estimated size", f"{report['estimated_bytes'] / 1e9:.2f} GB (CVDF average)"))
    for name, value in rows:
        print(f"  {name:26s} {value}")
    for rejected_row in report["rejected_rows"]:
        print(
            f"  rejected {report['file']}:{rejected_row['line']}: {rejected_row['column']}: "
            f"{rejected_row['message']}: {rejected_row['row']}"
        )
    return 0


def _list_downstream(args: argparse.Namespace) -> int:
    """One line per row: line, youtube id, time, the K700-2020 clip key (or -), status."""
    from kinetix.catalog.downstream import AvaRow
    from kinetix.catalog.resolve import RESOLVED

    resolution = _resolution(args)
    print("line\tyoutube_id\ttime\tk700_2020_clip\tstatus")
    for row, clip, reason in zip(resolution.rows, resolution.clips, resolution.reasons):
        if args.unresolved and reason == RESOLVED:
            continue
        if isinstance(row, AvaRow):
            when = f"{row.timestamp:g}"
        else:
            when = f"{row.repetition_start:g}-{row.repetition_end:g}"
        key = clip.key if clip is not None else "-"
        print(f"{row.line}\t{row.youtube_id}\t{when}\t{key}\t{reason}")
    if not args.unresolved:
        for rejected in resolution.rejected:
            print(f"{rejected.line}\t{rejected.text.split(',', 1)[0]}\t-\t-\t{rejected.reason}")
    return 0
