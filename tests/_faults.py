"""What the fault tests share: the inputs, their clean runs, how they are compared, and how to
find a worker mid-task (tests/test_cluster_faults.py, tests/test_slurm_faults.py)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from _procs import descendants, opens_under, processes
from _roots import RootClip, build_videos_root, clips

from kinetix.card import CARD_NAME
from kinetix.cli.main import main
from kinetix.store.layout import manifest_path, partial_dir
from kinetix.store.lock import RootLock
from kinetix.store.manifest import Manifest
from kinetix.testing.media import VideoSpec
from kinetix.testing.server import MirrorServer

Clean = tuple[dict[str, str], dict[str, tuple[object, ...]]]

# Long enough (150 frames, 160x120) that ffmpeg is seen writing before the clip is done.
LONGER = VideoSpec(duration=6.0, fps=25, width=160, height=120, audio=False, gop=25)
SHARD_BPS = 60_000  # each connection: a 6-clip shard takes a few seconds to arrive


def tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file outside ``.kinetix``."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".kinetix" not in p.parts and p.name != CARD_NAME
    }


def recorded(root: Path) -> dict[str, tuple[object, ...]]:
    with Manifest(manifest_path(root), readonly=True) as m:
        return {r.key: (r.state, r.path, r.num_frames, r.bytes) for r in m.clips()}


def leftovers(root: Path) -> list[str]:
    """Whatever is in the root's partial folder: half-written folders, ``.part`` files."""
    folder = partial_dir(root)
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def assert_unlocked(root: Path) -> None:
    RootLock(root).acquire().release()


# --- inputs and the clean runs they are compared with -------------------------------------------


def make_videos(root: Path) -> Path:
    """Eight verified 6 s clips in two classes."""
    return build_videos_root(
        root, [RootClip(c) for c in clips("val", ["abseiling", "archery"] * 4)], LONGER
    )


def clean_frames_run(videos: Path, out: Path) -> Clean:
    """Frames of ``videos`` extracted by the local executor, untroubled."""
    assert main(["frames", str(videos), "--out", str(out), "--workers", "2", "--no-progress"]) == 0
    return tree(out), recorded(out)


def frames_argv(videos: Path, out: Path, executor: str) -> list[str]:
    return ["frames", str(videos), "--out", str(out), "--executor", executor, "--workers", "2",
            "--no-progress"]  # fmt: skip


def download_argv(root: Path, server: MirrorServer, executor: str) -> list[str]:
    return ["download", "k600", "--split", "val", "--root", str(root), "--mirror", server.url,
            "--executor", executor, "--workers", "2", "--connections", "1",
            "--no-progress"]  # fmt: skip


def clean_download_run(mirror_root: Path, root: Path) -> Clean:
    """K600 val from the mirror by the local executor, untroubled."""
    with MirrorServer(mirror_root) as server:
        assert main(download_argv(root, server, "local")) == 0
    return tree(root), recorded(root)


def check_like_clean(root: Path, clean: Clean) -> None:
    files, rows = clean
    assert tree(root) == files
    assert recorded(root) == rows
    assert leftovers(root) == []
    assert_unlocked(root)


# --- who to kill ------------------------------------------------------------------------------


def ffmpeg_writing_under(out: Path, seen: dict[str, int]) -> Callable[[], int | None]:
    """The worker whose ffmpeg is writing frames into ``out``'s partial folder (not yet moved
    into place: the task is mid-way)."""
    where = str(partial_dir(out))

    def find() -> int | None:
        for p in processes():
            if "ffmpeg" in p.cmdline and where in p.cmdline:
                seen["ffmpeg"] = p.pid
                return p.ppid
        return None

    return find


def part_has_bytes(folder: Path) -> bool:
    try:
        return any(p.stat().st_size for p in folder.glob("*.part"))
    except OSError:  # renamed into place while we looked
        return False


def jpg_written(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("*/*.jpg"))


def writing_a_part(root: Path, among: Callable[[], list[int]]) -> Callable[[], int | None]:
    """The worker with a ``.part`` shard open under ``root`` that has bytes in it already."""
    folder = partial_dir(root)

    def find() -> int | None:
        if not part_has_bytes(folder):
            return None
        return next((pid for pid in among() if opens_under(pid, folder)), None)

    return find


def my_workers() -> list[int]:
    return [pid for pid in descendants(os.getpid()) if pid != os.getpid()]
