"""The repair job: rebuild a damaged or lost manifest from the clips on disk and the catalog.

damaged file set aside -> release and layout (recorded copy, flags, or the folders) -> one row
per annotated clip of each split on disk -> the clip files (and quarantined ones) matched to
their rows -> every clip found verified like ``kinetix verify`` does. Nothing is downloaded:
a later ``kinetix download`` fetches only what is still missing.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kinetix.catalog.catalog import Catalog
from kinetix.catalog.labels import LabelRegistry
from kinetix.config import RepairConfig, VerifyConfig
from kinetix.downstream_download import downstream_splits, plan_restore, restore_downstream
from kinetix.errors import ConfigError, ManifestError
from kinetix.process.reconcile import FileStat, parse_clip_path, walk_clips
from kinetix.process.verify import VerifyReport, verify_dataset
from kinetix.store.damage import check_manifest, salvage_meta
from kinetix.store.layout import LabelStyle, clip_relpath, manifest_path, quarantine_dir
from kinetix.store.lock import RootLock
from kinetix.store.manifest import ClipState, ClipUpdate, Manifest
from kinetix.store.root import RootKind, write_root_meta

log = logging.getLogger(__name__)


@dataclass
class RepairReport:
    root: Path
    problem: str | None = None  # what was wrong (None: the manifest was healthy, left alone)
    set_aside: Path | None = None  # where the damaged file went
    release: str | None = None
    layout: str | None = None
    annotated: int = 0
    found: int = 0  # clip files matched to an annotated clip, recorded present
    quarantined: int = 0  # clips found under .kinetix/quarantine, recorded quarantined
    unmatched: list[str] = field(default_factory=list)  # clip files no annotation names
    downstream_rows: int = 0  # Countix/AVA-Kinetics rows recorded again (a downstream root)
    verify: VerifyReport | None = None


def repair(
    root: str | os.PathLike[str],
    config: RepairConfig,
    *,
    emit: Callable[[str], None] | None = None,
) -> RepairReport:
    """Run ``kinetix repair``: a healthy manifest is left alone; a damaged one is rebuilt."""
    root = Path(root)
    path = manifest_path(root)
    report = RepairReport(root)
    with RootLock(root):
        report.problem = check_manifest(path)
        if report.problem is None:
            return report
        meta = salvage_meta(path)
        kind = meta.get("kind") or "videos"
        if kind != "videos":
            raise ConfigError(
                f"{root} is a {kind} dataset made from {meta.get('source_root', 'another root')}; "
                f"repair rebuilds downloaded roots: move {root} aside and run the 'kinetix "
                f"{'frames' if kind == 'frames' else 'process'}' command that made it again"
            )
        release = config.release or meta.get("release")
        if not release:
            raise ConfigError(
                f"{root} records no release (its manifest is unreadable and "
                f"{path.with_name('meta.json')} is missing); pass --release (e.g. --release k400)"
            )
        files = walk_clips(root)
        by_split: dict[str, list[str]] = {}
        for rel in sorted(files):
            parsed = parse_clip_path(rel)
            if parsed is None:
                report.unmatched.append(rel)
            else:
                by_split.setdefault(parsed[0], []).append(rel)
        held = _quarantined(root)
        downstream = downstream_splits(meta)
        splits = sorted(set(by_split) | {s for s, _ in held} | set(downstream))
        registry = LabelRegistry.for_release(release)
        layout = config.layout or _recorded_layout(meta) or infer_layout(files, registry)
        report.release, report.layout = release, layout.value
        mirror = config.mirror or meta.get("mirror")
        catalogs = {split: _catalog(release, split, mirror, config) for split in splits}
        # a Countix/AVA-Kinetics root: its annotation rows, and only the clip rows they need
        restores = plan_restore(root, meta, catalogs, mirror=mirror, offline=config.offline)
        keep: dict[str, set[str]] = {}
        for restore in restores:
            keep.setdefault(restore.split, set()).update(restore.keys())
        report.set_aside = _set_aside(path)
        with Manifest(path) as manifest:
            write_root_meta(
                manifest, kind=RootKind.VIDEOS.value, release=release, layout=layout.value,
                mirror=mirror or None,
            )  # fmt: skip
            for split, catalog in catalogs.items():
                wanted = keep.get(split, set()) if restores else None
                _record(root, manifest, catalog, layout, files, by_split, held, report, wanted)
            report.downstream_rows = restore_downstream(manifest, restores)
    if emit is not None:
        rows = f", {report.downstream_rows} annotation rows" if restores else ""
        emit(f"repair {root}: manifest rebuilt ({report.found} clips found{rows}); verifying them")
    verify = VerifyConfig(level=config.level, workers=config.workers, executor=config.executor)
    report.verify = verify_dataset(root, verify, emit=emit)
    return report


def _recorded_layout(meta: dict[str, str]) -> LabelStyle | None:
    try:
        return LabelStyle(meta["layout"])
    except (KeyError, ValueError):
        return None


def infer_layout(files: dict[str, FileStat], registry: LabelRegistry) -> LabelStyle:
    """The label style whose folder names match the most label folders on disk (raw on ties)."""
    folders = {rel.split("/")[1] for rel in files if rel.count("/") == 2}
    scores = Counter(
        {
            style: len(folders & {registry.folder(name, style) for name in registry.names})
            for style in LabelStyle
        }
    )
    best = max(LabelStyle, key=lambda s: (scores[s], s is LabelStyle.RAW))
    return best


def _quarantined(root: Path) -> list[tuple[str, str]]:
    """(split, relpath) of every clip set aside under ``.kinetix/quarantine``."""
    top = quarantine_dir(root)
    found = []
    for rel in walk_clips(top) if top.is_dir() else {}:
        parsed = parse_clip_path(rel)
        if parsed is not None:
            found.append((parsed[0], (top / rel).relative_to(root).as_posix()))
    return found


def _catalog(release: str, split: str, mirror: str | None, config: RepairConfig) -> Catalog:
    from kinetix.catalog.fetch import load_catalog

    return load_catalog(release, split, mirror=mirror, offline=config.offline)


def _set_aside(path: Path) -> Path | None:
    """Move the damaged manifest (and its -wal/-shm) to ``manifest.sqlite.damaged-STAMP``."""
    if not path.exists():
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S")
    dest = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm", "-journal"):
        src = path.with_name(path.name + suffix)
        if src.exists():
            os.replace(src, dest.with_name(dest.name + suffix))
    log.warning("%s set aside as %s", path, dest)
    return dest


def _record(
    root: Path,
    manifest: Manifest,
    catalog: Catalog,
    layout: LabelStyle,
    files: dict[str, FileStat],
    by_split: dict[str, list[str]],
    held: list[tuple[str, str]],
    report: RepairReport,
    keep: set[str] | None = None,
) -> None:
    """Rows for a split's annotated clips; the files found make them present (or quarantined).

    ``keep`` (a Countix/AVA-Kinetics root): only those clips and the ones on disk get rows.
    """
    indices = catalog.registry.indices
    where = {clip_relpath(c.split, c.label, c.key, layout): c for c in catalog.clips}
    clips = catalog.clips
    if keep is not None:
        on_disk = {where[rel].key for rel in by_split.get(catalog.split, ()) if rel in where}
        top = quarantine_dir(root).relative_to(root).as_posix() + "/"
        on_disk |= {where[r].key for _, q in held if (r := q.removeprefix(top)) in where}
        clips = [c for c in clips if c.key in keep or c.key in on_disk]
    manifest.add_clips(clips, indices)
    report.annotated += len(clips)
    updates = []
    placed: set[str] = set()
    for rel in by_split.get(catalog.split, ()):
        clip = where.get(rel)
        if clip is None:
            report.unmatched.append(rel)
            continue
        stat = files[rel]
        placed.add(clip.key)
        fields = {"state": ClipState.PRESENT.value, "path": rel, "bytes": stat.size,
                  "mtime": stat.mtime, "source": "local"}  # fmt: skip
        updates.append(ClipUpdate(clip.release, clip.split, clip.key, fields))
    report.found += len(updates)
    quarantine_top = quarantine_dir(root).relative_to(root).as_posix() + "/"
    for split, rel in held:
        clip = where.get(rel.removeprefix(quarantine_top))
        if split != catalog.split or clip is None or clip.key in placed:
            continue
        fields = {"state": ClipState.QUARANTINED.value, "path": rel, "verify": "bad"}
        updates.append(ClipUpdate(clip.release, clip.split, clip.key, fields))
        report.quarantined += 1
    try:
        manifest.apply(updates)
    except sqlite3.DatabaseError as exc:  # pragma: no cover - a fresh file failing is I/O
        raise ManifestError(f"cannot write the rebuilt manifest: {exc}") from exc
