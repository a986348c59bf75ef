"""``kinetix download countix|ava-kinetics``: the K700-2020 clips an annotation set's rows need.

annotation rows -> resolved to K700-2020 clips (``catalog/resolve.py``) -> every row recorded in
the root's manifest with its clip key or the reason for none (``store/downstream.py``) -> the
distinct clips downloaded as an ordinary K700-2020 selection (``download.py``: only the CVDF
class shards that hold them, YouTube for the rest with ``--source auto``). The root is a
K700-2020 videos root, so reruns, ``--retry-failed``, ``status`` and ``verify`` behave as for
any root; whether a row's clip is present is read from the clip's own row.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from kinetix.catalog.downstream import get_downstream, read_downstream
from kinetix.catalog.fetch import fetch_downstream
from kinetix.catalog.resolve import Resolution, load_resolution, resolve
from kinetix.config import DownloadConfig, Selection
from kinetix.errors import ConfigError
from kinetix.store.downstream import (
    ResolvedRow,
    annotation_copy,
    check_downstream,
    downstream_counts,
    downstream_from_meta,
    keep_copy,
    record_downstream,
    recorded_fingerprint,
    recorded_rows,
    set_recorded_fingerprint,
)
from kinetix.store.layout import clip_folders, manifest_path, missing_manifest_error
from kinetix.store.lock import RootLock
from kinetix.store.manifest import Manifest, manifest_absent
from kinetix.store.root import RootMeta

if TYPE_CHECKING:
    from kinetix.catalog.catalog import Catalog
    from kinetix.download import DownloadReport

log = logging.getLogger(__name__)


def download_downstream(
    config: DownloadConfig, *, emit: Callable[[str], None] | None = None
) -> DownloadReport:
    """Bring ``config.root`` to the K700-2020 clips of ``config.release``'s ``config.split``."""
    from kinetix.download import download, prepare_root

    rel = get_downstream(config.release)
    split = rel.check_split(config.split)
    resolution = load_resolution(
        rel.name, split, mirror=config.mirror, offline=config.offline,
        annotations=config.annotations, base_annotations=config.base_annotations,
        config=config.transfer,
    )  # fmt: skip
    keys = wanted_keys(resolution, config.selection)
    prepare_root(config.root)
    if manifest_absent(manifest_path(config.root)) and clip_folders(config.root):
        raise missing_manifest_error(manifest_path(config.root))
    with RootLock(config.root), Manifest(manifest_path(config.root)) as manifest:
        _check_base(manifest, rel.base, config.root)
        check_downstream(manifest, rel.name, config.root)
        fingerprint = _fingerprint(resolution)
        if recorded_fingerprint(manifest, split) != fingerprint or not recorded_rows(
            manifest, rel.name, split
        ):
            recorded = record_downstream(manifest, rel.name, split, resolved_rows(resolution))
            set_recorded_fingerprint(manifest, split, fingerprint)
            log.info("%s %s: recorded %d annotation rows", rel.name, split, recorded)
        keep_copy(resolution.annotations.path, annotation_copy(config.root, rel.member(split)))
    inner = replace(
        config,
        release=rel.base,
        split=split,
        selection=Selection(
            ids=tuple(keys), classes=config.selection.classes,
            max_per_class=config.selection.max_per_class, seed=config.selection.seed,
        ),
        annotations=config.base_annotations,
        base_annotations=None,
    )  # fmt: skip
    report = download(inner, emit=emit)
    with Manifest(manifest_path(config.root), readonly=True) as manifest:
        report.downstream = next(iter(downstream_counts(manifest, split)), None)
    return report


def wanted_keys(resolution: Resolution, selection: Selection) -> list[str]:
    """The clips the resolving rows need, narrowed by ``--ids`` (youtube ids or clip keys)."""
    clips = resolution.needed()
    if selection.ids is not None:
        ids = set(selection.ids)
        clips = [c for c in clips if c.key in ids or c.youtube_id in ids]
    return [c.key for c in clips]


def resolved_rows(resolution: Resolution) -> Iterator[ResolvedRow]:
    """Every row of the file: resolved, not resolving (with the reason), or rejected."""
    for row, clip, reason in zip(resolution.rows, resolution.clips, resolution.reasons):
        if clip is None:
            yield ResolvedRow(row.line, row.youtube_id, None, reason)
        else:
            yield ResolvedRow(row.line, row.youtube_id, clip.key, None)
    for bad in resolution.rejected:
        yield ResolvedRow(bad.line, _youtube_id_of(bad.text), None, bad.reason, rejected=True)


def _youtube_id_of(text: str) -> str:
    """The youtube id in a rejected row's text (its first 11-character field), or ''."""
    return next((f for f in text.split(",") if len(f) == 11), "")


def _check_base(manifest: Manifest, base: str, root: Path) -> None:
    have = RootMeta.read(manifest).release
    if have is not None and have != base and manifest.splits():
        raise ConfigError(f"{root} holds release {have!r}, not {base!r}; use another --root")


def _fingerprint(resolution: Resolution) -> str:
    """The two files a split's rows were resolved from, as ``make`` sees them."""
    parts = []
    for path in (resolution.annotations.path, Path(resolution.base_path)):
        st = path.stat()
        parts.append([str(path.resolve()), st.st_size, st.st_mtime_ns])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


# -- kinetix repair: a rebuilt manifest gets its annotation rows back -------------------------


@dataclass(frozen=True)
class DownstreamRestore:
    """One split's annotation rows to record again in a rebuilt manifest (``repair.py``)."""

    release: str  # countix | ava-kinetics
    split: str
    resolution: Resolution

    def keys(self) -> set[str]:
        """The K700-2020 clips its rows need: the clip rows the rebuilt manifest gets."""
        return {c.key for c in self.resolution.needed()}


def downstream_splits(meta: Mapping[str, str]) -> tuple[str, ...]:
    """The Countix/AVA-Kinetics splits a damaged root's salvaged ``meta`` records (or none)."""
    info = downstream_from_meta(meta)
    return () if info is None else info.splits


def plan_restore(
    root: Path,
    meta: Mapping[str, str],
    catalogs: Mapping[str, Catalog],
    *,
    mirror: str | None,
    offline: bool,
) -> list[DownstreamRestore]:
    """Each recorded split's rows, read from the copy kept under ``ROOT/.kinetix/downstream/``
    (else the cached annotation file, as ``download`` fetches it) and resolved against the
    K700-2020 catalog the repair rebuilds the clip rows from (``catalogs``, by split)."""
    info = downstream_from_meta(meta)
    if info is None:
        return []
    rel = get_downstream(info.release)
    restores = []
    for split in info.splits:
        path = annotation_copy(root, rel.member(split))
        if not path.is_file():
            log.warning("%s has no kept copy; using the cached %s %s file", path, rel.name, split)
            path = fetch_downstream(rel.name, split, mirror=mirror, offline=offline)
        catalog = catalogs[split]
        rows = read_downstream(path, rel, split)
        resolution = resolve(rows, catalog.clips, base_path=str(catalog.path))
        restores.append(DownstreamRestore(rel.name, split, resolution))
    return restores


def restore_downstream(manifest: Manifest, restores: Iterable[DownstreamRestore]) -> int:
    """Record the rows of ``plan_restore`` in the rebuilt manifest; returns how many.

    No fingerprint is recorded: the next ``download`` records its own files' rows again.
    """
    restored = 0
    for restore in restores:
        rows = resolved_rows(restore.resolution)
        restored += record_downstream(manifest, restore.release, restore.split, rows)
    return restored
