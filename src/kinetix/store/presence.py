"""Which clips the manifest records as present are gone from disk, checked per folder, not per clip.

A rerun must not stat every clip: 650k ``stat`` calls are seconds on a local disk and minutes
on Lustre or NFS, where cluster admins see them as a metadata storm. Clips live in a few
hundred class folders, and removing, renaming or adding a file changes its folder's mtime.

The manifest's ``folder_checks`` table records, per folder holding present clips, its mtime
and its number of present clips when it was last listed, and ``meta`` records the present
rows' counts (from the trigger-kept ``clip_counts``) at that time. A rerun whose counts match
stats each recorded folder once and lists (one ``os.scandir``) only those whose mtime moved;
otherwise (rows changed since, or no record yet) it groups the present rows by folder in one
pass and lists every folder. A folder modified within ``RACY_NS`` of its listing is listed
again next time: a change in the same mtime tick as the listing would otherwise go unseen.

On NFS a deletion made from another host shows in the folder's mtime once the client's
attribute cache expires (``acdirmax``, 60 s by default), so a rerun may see it only then.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import Counter

from kinetix.store.manifest import ClipState, ClipUpdate, Manifest

log = logging.getLogger(__name__)

RACY_NS = 2_000_000_000  # folders modified this close to their listing are listed again


def folder_of(path: str) -> str:
    """``train/abseiling/`` of ``train/abseiling/x.mp4`` (``''`` for a file at the root)."""
    head, sep, _ = path.rpartition("/")
    return head + sep


def mark_vanished(manifest: Manifest, release: str, split: str) -> list[str]:
    """Mark present clips of ``release/split`` whose file is gone as missing; returns their keys.

    Filesystem calls: one ``stat`` per folder holding present clips, and one ``scandir`` per
    folder that changed since the last check (every folder when rows changed). Never one per
    clip.
    """
    root = str(manifest.path.parent.parent).rstrip("/") + "/"
    signature = _signature(manifest, release, split)
    recorded = manifest.folder_checks(release, split)
    trusted = bool(recorded) and manifest.get_meta(_meta_key(release, split)) == signature
    if trusted:
        counts = {folder: check[1] for folder, check in recorded.items()}
        changed = {}
        for folder, (mtime_ns, _, listed_ns) in recorded.items():
            mtime = _mtime(root + folder)
            if mtime is None or mtime != mtime_ns or mtime >= listed_ns - RACY_NS:
                changed[folder] = mtime
        if not changed:
            return []
        rows = [
            (key, path) for key, path in manifest.present_paths(release, split)
            if folder_of(path) in changed
        ]  # fmt: skip
    else:
        # a fresh split has no present row: the counters say so without a scan of every row
        none = manifest.split_size(release, split, ClipState.PRESENT) == 0
        rows = [] if none else list(manifest.present_paths(release, split))
        counts = dict(Counter(folder_of(path) for _, path in rows))
        changed = {folder: _mtime(root + folder) for folder in counts}
    listed_ns = time.time_ns()
    names = {folder: _names(root + folder) for folder in changed}
    gone: list[str] = []
    lost: Counter[str] = Counter()
    for key, path in rows:
        folder = folder_of(path)
        if path[len(folder) :] not in names[folder]:
            gone.append(key)
            lost[folder] += 1
    del rows, names
    if gone:
        manifest.apply(
            ClipUpdate(release, split, key, {"state": ClipState.MISSING.value, "verify": None})
            for key in gone
        )
    checks = [
        (folder, mtime, counts[folder] - lost[folder], listed_ns)
        for folder, mtime in changed.items()
        if mtime is not None and counts[folder] > lost[folder]
    ]
    manifest.record_folder_checks(
        release,
        split,
        checks,
        replace=not trusted,
        forget=[f for f, m in changed.items() if m is None or counts[f] <= lost[f]],
    )
    manifest.set_meta(_meta_key(release, split), _signature(manifest, release, split))
    log.debug("listed %d folders of %s/%s", len(changed), release, split)
    return gone


def _signature(manifest: Manifest, release: str, split: str) -> str:
    """A digest of the present rows' counts per group (O(groups), from the counters)."""
    rows = [
        row
        for row in manifest.clip_counts()
        if row[0] == release and row[1] == split and row[3] == ClipState.PRESENT.value
    ]
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:32]


def _meta_key(release: str, split: str) -> str:
    return f"folders_checked:{release}/{split}"


def _mtime(folder: str) -> int | None:
    try:
        return os.stat(folder).st_mtime_ns
    except (FileNotFoundError, NotADirectoryError):
        return None


def _names(folder: str) -> set[str]:
    """The entry names of ``folder`` (empty when it is gone or not a folder)."""
    try:
        with os.scandir(folder) as entries:
            return {entry.name for entry in entries}
    except (FileNotFoundError, NotADirectoryError):
        return set()
