"""Compare a root's clip files with its manifest: unknown files, vanished rows, changed sizes."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kinetix.catalog.clip import Clip
from kinetix.catalog.labels import LabelRegistry
from kinetix.catalog.releases import SPLIT_ALIASES
from kinetix.errors import ConfigError, KinetixError
from kinetix.store.layout import STATE_DIR, UNLABELED_DIR, LabelStyle, clip_relpath
from kinetix.store.manifest import ClipRow, ClipState, ClipUpdate, Manifest
from kinetix.store.root import RootMeta

log = logging.getLogger(__name__)

CLIP_SUFFIX = ".mp4"
_NOT_CLIPS = frozenset({"originals", "archives"})  # top-level folders a download may add
_KEY = re.compile(r"^(?P<youtube_id>.+)_(?P<start>\d{6})_(?P<end>\d{6})$")


@dataclass(frozen=True)
class FileStat:
    size: int
    mtime: float


@dataclass
class Reconciliation:
    """What a walk of the root found that the manifest does not say."""

    files: dict[str, FileStat] = field(default_factory=dict)  # every clip file, by relpath
    unknown: list[str] = field(default_factory=list)  # {split}/{label}/{key}.mp4, no row has it
    unrecognised: list[str] = field(default_factory=list)  # .mp4 files not in that shape
    vanished: list[ClipRow] = field(default_factory=list)  # present rows whose file is gone
    changed: list[ClipRow] = field(default_factory=list)  # present rows whose size differs

    @property
    def clean(self) -> bool:
        return not (self.unknown or self.unrecognised or self.vanished or self.changed)


@dataclass(frozen=True)
class Fixes:
    added: int  # unknown files that became present rows
    marked_missing: int  # vanished rows now ``missing`` (the download planner fetches them)


class Located(Protocol):
    """Anything that names a clip and maybe its path (a ClipRow, a planner's light row)."""

    @property
    def split(self) -> str: ...
    @property
    def label(self) -> str | None: ...
    @property
    def key(self) -> str: ...
    @property
    def path(self) -> str | None: ...


def row_relpath(row: Located, layout: LabelStyle) -> str:
    """Where a row's clip lives, relative to the root (older rows may not record ``path``)."""
    return row.path or clip_relpath(row.split, row.label, row.key, layout)


def root_layout(manifest: Manifest) -> LabelStyle:
    return RootMeta.read(manifest).label_style


def walk_clips(root: Path) -> dict[str, FileStat]:
    """Every ``*.mp4`` under ``root`` outside ``.kinetix/`` and hidden (temporary) names."""
    found: dict[str, FileStat] = {}
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise KinetixError(f"cannot list {folder}: {exc.strerror or exc}") from None
        for entry in entries:
            if entry.name.startswith("."):
                continue  # .kinetix/, and the .name.tmp files writers rename into place
            if entry.is_dir(follow_symlinks=False):
                if folder == root and entry.name in _NOT_CLIPS:
                    continue  # --keep-originals / --keep-archives: beside the clips, not clips
                stack.append(Path(entry.path))
            elif entry.name.endswith(CLIP_SUFFIX):
                st = entry.stat()
                rel = Path(entry.path).relative_to(root).as_posix()
                found[rel] = FileStat(st.st_size, st.st_mtime)
    return found


def scan_root(root: Path, manifest: Manifest) -> Reconciliation:
    """Walk ``root`` and set it against the manifest's present rows."""
    layout = root_layout(manifest)
    rec = Reconciliation(files=walk_clips(root))
    known: set[str] = set()
    for row in manifest.clips(states=[ClipState.PRESENT]):
        rel = row_relpath(row, layout)
        known.add(rel)
        stat = rec.files.get(rel)
        if stat is None:
            if not (root / rel).is_file():  # a clip stored under another suffix is not gone
                rec.vanished.append(row)
        elif row.bytes is not None and row.bytes != stat.size:
            rec.changed.append(row)
    for rel in sorted(set(rec.files) - known):
        (rec.unknown if parse_clip_path(rel) is not None else rec.unrecognised).append(rel)
    return rec


def parse_clip_path(rel: str) -> tuple[str, str, str, int, int] | None:
    """``{split}/{label_folder}/{key}.mp4`` -> (split, folder, youtube_id, start, end)."""
    parts = rel.split("/")
    if len(parts) != 3 or not parts[2].endswith(CLIP_SUFFIX):
        return None
    split, folder, name = parts
    if SPLIT_ALIASES.get(split) != split or folder.startswith(STATE_DIR):
        return None
    m = _KEY.match(name[: -len(CLIP_SUFFIX)])
    if m is None:
        return None
    return split, folder, m["youtube_id"], int(m["start"]), int(m["end"])


def _label_of(folder: str, registry: LabelRegistry | None) -> str | None:
    if folder == UNLABELED_DIR:
        return None
    if registry is not None:
        try:
            return registry.resolve(folder)
        except ConfigError:
            log.warning("folder %r is not a class of %s; kept as label", folder, registry.release)
    return folder


def fix_root(root: Path, manifest: Manifest, rec: Reconciliation) -> Fixes:
    """Vanished rows become ``missing``; unknown clip files become ``present`` rows to verify."""
    gone = [
        ClipUpdate(
            r.release, r.split, r.key,
            {"state": ClipState.MISSING.value, "path": None, "bytes": None, "mtime": None,
             "verify": None, "verify_level": None, "verified_at": None},
        )
        for r in rec.vanished
    ]  # fmt: skip
    manifest.apply(gone)
    added = 0
    if rec.unknown:
        release = RootMeta.read(manifest).release
        if release is None:
            raise ConfigError(
                f"{root}: the manifest records no release, so unknown files cannot become rows; "
                "run 'kinetix download' on this root first"
            )
        try:
            registry: LabelRegistry | None = LabelRegistry.for_release(release)
        except ConfigError:
            registry = None
        layout = root_layout(manifest)
        for rel in rec.unknown:
            parsed = parse_clip_path(rel)
            assert parsed is not None  # scan_root only lists parsable paths as unknown
            split, folder, youtube_id, start, end = parsed
            clip = Clip(release, split, youtube_id, start, end, _label_of(folder, registry))
            row = manifest.get(release, split, clip.key)
            if row is not None and row.state == ClipState.PRESENT.value:
                other = row_relpath(row, layout)
                if (root / other).is_file():
                    log.warning("%s duplicates %s (same clip); left alone", rel, other)
                    continue
            if row is None:
                index = None if registry is None else registry.indices
                manifest.add_clips([clip], index)
            stat = rec.files[rel]
            manifest.update(
                release, split, clip.key,
                state=ClipState.PRESENT.value, path=rel, bytes=stat.size, source="local",
                error_code=None, error_message=None, verify=None, verify_level=None,
            )  # fmt: skip
            added += 1
    return Fixes(added=added, marked_missing=len(gone))
