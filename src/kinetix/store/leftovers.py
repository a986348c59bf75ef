"""What a killed run leaves in a root, and how the next run that writes it removes it.

A run writes each file under a hidden temporary name and renames it into place when whole; a
``kill -9`` leaves those temps behind: ``.{key}.mp4.kx-part`` beside the clips (CVDF
extraction), ``.{key}.mp4.{worker}.part`` (YouTube trims), ``.manifest.sqlite.*.kx-part``
(a snapshot being published), and in ``.kinetix/partial/`` the ``.part``/``.state`` of a shard
whose clips were already recorded. They are this root's own: the root lock lets one writer in at
a time, so whoever holds it owns every temp there (nothing of a concurrent run can be there).

A run that writes marks the root ``unfinished`` while it works; the next one finds the mark and
sweeps. Roots made before the mark existed are swept once (``meta.leftovers`` records it).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from kinetix.store.layout import SPLIT_DIRS, partial_dir, state_dir
from kinetix.store.manifest import Manifest
from kinetix.store.root import RootMeta

log = logging.getLogger(__name__)

MARKER = "unfinished"  # ROOT/.kinetix/unfinished: a run that writes the root is (or was) at work
SWEEP_VERSION = "1"  # meta.leftovers: the sweep rules this root was last swept with


def is_temp_name(name: str) -> bool:
    """A hidden name kinetix writes a file under before renaming it into place."""
    if not name.startswith("."):
        return False
    return name.endswith(".kx-part") or (name.endswith(".part") and ".mp4." in name)


def remove_temps(folders: Iterable[Path]) -> list[Path]:
    """Delete every temp (``is_temp_name``) under ``folders``; returns what went."""
    removed: list[Path] = []
    for top in folders:
        for dirpath, _dirs, files in os.walk(top):
            for name in files:
                if is_temp_name(name):
                    path = Path(dirpath, name)
                    path.unlink(missing_ok=True)
                    removed.append(path)
    return removed


def stale_partials(root: Path, done: set[str]) -> list[Path]:
    """Files in ``.kinetix/partial/`` no later run can use: a recorded shard's ``.part`` and
    ``.state``, a ``.state`` whose ``.part`` is gone, a half-written ``.state.tmp``."""
    partial = partial_dir(root)
    try:
        entries = [e for e in os.scandir(partial) if e.is_file(follow_symlinks=False)]
    except FileNotFoundError:
        return []
    names = {e.name for e in entries}
    stale = []
    for e in entries:
        name = e.name
        if name.endswith(".state.tmp"):
            stale.append(Path(e.path))
        elif name.endswith(".part.state"):
            if name[: -len(".state")] not in names or _shard_of(name[: -len(".state")]) in done:
                stale.append(Path(e.path))
        elif name.endswith(".part") and _shard_of(name) in done:
            stale.append(Path(e.path))
    return stale


def _shard_of(part_name: str) -> str:
    """The shard name a ``.part`` file stands for (``shard_task`` turns '/' into '__')."""
    return part_name[: -len(".part")].replace("__", "/")


def sweep(root: Path, manifest: Manifest) -> list[Path]:
    """Remove every leftover of a killed run in ``root`` (see the module docstring)."""
    done = {str(s["name"]) for s in manifest.shards() if s["state"] == "done" and s["name"]}
    # A frames root's split folders hold folders of JPEGs, written in .kinetix/partial/ and
    # renamed whole: no temps there, and too many files to walk.
    videos = RootMeta.read(manifest).is_videos
    folders = [root / s for s in SPLIT_DIRS if videos and (root / s).is_dir()]
    removed = remove_temps([*folders, state_dir(root)])
    for path in stale_partials(root, done):
        path.unlink(missing_ok=True)
        removed.append(path)
    if removed:
        log.info("removed %d file(s) a killed run left in %s", len(removed), root)
    return removed


@contextlib.contextmanager
def writing(root: Path, manifest: Manifest) -> Iterator[list[Path]]:
    """Hold the ``unfinished`` mark while a run writes ``root``; sweep first if it is there.

    Yields what the sweep removed. The mark stays when the run ends in an exception: what it
    was doing may not have cleaned up after itself.
    """
    marker = state_dir(root) / MARKER
    removed: list[Path] = []
    if marker.exists() or manifest.get_meta("leftovers") != SWEEP_VERSION:
        removed = sweep(root, manifest)
        manifest.set_meta("leftovers", SWEEP_VERSION)
    marker.write_text(f"{os.getpid()}\n")
    yield removed
    marker.unlink(missing_ok=True)
