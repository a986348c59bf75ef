"""What the fault tests share: the inputs, their clean runs (as module fixtures: a test module
takes them with ``pytest_plugins = ["_faults"]``), how they are compared, how to run the CLI in
a process of its own and find what it left running, and how to find a worker mid-task
(tests/test_cluster_faults.py, tests/test_slurm_faults.py, tests/test_crash_points.py,
tests/test_interrupts.py)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _procs import descendants, opens_under, processes, wait_until
from _roots import RootClip, build_videos_root, clips

from kinetix.card import CARD_NAME
from kinetix.cli.main import main
from kinetix.config import DownloadConfig
from kinetix.store.layout import LabelStyle, clip_relpath, manifest_path, partial_dir
from kinetix.store.lock import RootLock
from kinetix.store.manifest import Manifest
from kinetix.synthetic.media import VideoSpec
from kinetix.synthetic.server import MirrorServer

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


def expected_tree(
    mirror: Any, release: str, split: str, layout: LabelStyle = LabelStyle.RAW
) -> dict[str, str]:
    """What a complete download must hold: the good bytes of every clip some shard has."""
    s = mirror.split(release, split)
    return {
        clip_relpath(split, c.clip.label, c.key, layout): c.sha256
        for c in s.clips.values()
        if c.shard is not None or c.replacement is not None
    }


def mirror_download_config(
    root: Path, server: MirrorServer, release: str, **kw: Any
) -> DownloadConfig:
    """A quiet download of ``release`` (``val`` unless given) from the synthetic mirror."""
    kw.setdefault("split", "val")
    kw.setdefault("progress", False)
    return DownloadConfig(root=root, release=release, mirror=server.url, **kw)


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


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_videos(tmp_path_factory.mktemp("fault-videos"))


@pytest.fixture(scope="module")
def clean_frames(videos: Path, tmp_path_factory: pytest.TempPathFactory) -> Clean:
    return clean_frames_run(videos, tmp_path_factory.mktemp("clean-frames"))


@pytest.fixture(scope="module")
def clean_download(mirror: Any, tmp_path_factory: pytest.TempPathFactory) -> Clean:
    return clean_download_run(mirror.root, tmp_path_factory.mktemp("clean-download"))


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


# --- the CLI in a process of its own ---------------------------------------------------------

MARKER = "KINETIX_TEST_RUN"  # every process of one run inherits it: how its leftovers are found


def cli(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "kinetix.cli.main", *argv]


class Run:
    """``kinetix ARGV`` started in its own session, tagged so that whatever it starts (pool
    workers, Dask workers, ffmpeg) can be found after it is gone."""

    def __init__(self, argv: list[str], **env: str):
        self.tag = uuid.uuid4().hex
        self.env = {**os.environ, MARKER: self.tag, **env}
        self.proc = subprocess.Popen(
            cli(argv), env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float = 120) -> tuple[int, str]:
        """(exit code, stderr); a run that does not end in ``timeout`` s is a hang: killed."""
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_all()
            pytest.fail(f"kinetix {self.proc.args[3:]} did not end within {timeout} s")
        return self.proc.returncode, err

    def family(self) -> list[int]:
        """Live processes of this run, the main one included."""
        return tagged(MARKER, self.tag)

    def assert_no_orphans(self, seconds: float = 15) -> None:
        """Nothing of the run is left running (generous: workers notice within a second)."""
        if not wait_until(lambda: not self.family(), seconds):
            left = [p.cmdline[:120] for p in processes() if p.pid in self.family()]
            self.kill_all()
            pytest.fail(f"processes outlived the run: {left}")

    def kill_all(self) -> None:
        for pid in [*self.family(), self.proc.pid]:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        self.proc.wait()


def tagged(name: str, value: str) -> list[int]:
    """Live (not zombie) processes whose environment holds ``name=value``."""
    needle = f"{name}={value}".encode()
    found = []
    for p in processes():
        try:
            env = Path(f"/proc/{p.pid}/environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            found.append(p.pid)
    return found


def rerun(argv: list[str], timeout: float = 300) -> None:
    """The same command again, untroubled: it must finish the job."""
    done = subprocess.run(cli(argv), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]


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
