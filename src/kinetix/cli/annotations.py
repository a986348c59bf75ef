"""``kinetix annotations fetch|stats|labels|list``: annotation files, class lists and selections."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kinetix.cli.common import add_selection_flags, selection_from
from kinetix.store.layout import LabelStyle


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
    listing.set_defaults(func=run_list)


def _add_release(p: argparse.ArgumentParser) -> None:
    p.add_argument("release", help="k400, k600, k700, k700-2020")


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


def run_fetch(args: argparse.Namespace) -> int:
    from kinetix.catalog.fetch import fetch_annotations, read_sidecar
    from kinetix.catalog.releases import get_release

    release = get_release(args.release)
    for split in [args.split] if args.split else release.splits:
        path = fetch_annotations(release.name, split, mirror=args.mirror, offline=args.offline)
        record = read_sidecar(path)
        digest = record.sha256 if record else "?"
        print(f"{release.name} {split}\t{path}\tsha256:{digest}")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from kinetix.catalog.fetch import load_catalog

    catalog = load_catalog(
        args.release, args.split, mirror=args.mirror, offline=args.offline, annotations=args.file
    )
    stats = catalog.stats()
    if args.json:
        report = {"release": catalog.release, "split": catalog.split, "file": str(catalog.path)}
        print(json.dumps({**report, **stats.as_dict()}, indent=2))
        return 0
    print(f"{catalog.release} {catalog.split}: {catalog.path}")
    rows = [
        ("rows", stats.rows),
        ("labels", f"{stats.labels} of {len(catalog.registry)} classes"),
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

    selection = selection_from(args)
    catalog = load_catalog(
        args.release, args.split, mirror=args.mirror, offline=args.offline, annotations=args.file
    )
    for clip in catalog.select(selection):
        print(clip.key if clip.label is None else f"{clip.key}\t{clip.label}")
    return 0
