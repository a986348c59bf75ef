"""Ctrl-C and SIGTERM stop a run at once, and disk and manifest agree afterwards."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kinetix.card import CARD_NAME
from kinetix.store.layout import LabelStyle, clip_relpath, manifest_path, partial_dir
from kinetix.store.manifest import Manifest
from kinetix.synthetic.server import MirrorServer

PIECE = 16 << 10


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def clips_on_disk(root: Path) -> dict[str, str]:
    """Every file at a final path (state folder and hidden temps aside) -> its sha256."""
    return {
        p.relative_to(root).as_posix(): sha256(p)
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and ".kinetix" not in p.parts
        and p.name != CARD_NAME
        and not p.name.startswith(".")
    }


def recorded(root: Path) -> dict[str, str]:
    """Present rows of the manifest: path -> sha256."""
    with Manifest(manifest_path(root), readonly=True) as m:
        rows = m.execute("SELECT path, sha256 FROM clips WHERE state='present'").fetchall()
    return {path: digest for path, digest in rows}


def expected(mirror) -> dict[str, str]:
    s = mirror.split("k400", "val")
    return {
        clip_relpath("val", c.clip.label, c.key, LabelStyle.RAW): c.sha256
        for c in s.clips.values()
        if c.shard is not None or c.replacement is not None
    }


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_a_download_at_once_and_disk_matches_the_manifest(
    tmp_path: Path, mirror, signum: int
) -> None:
    files = [*mirror.split("k400", "val").shards, *mirror.replacement.values()]
    total = sum(mirror.path(p).stat().st_size for p in files)
    root = tmp_path / "root"
    env_cache = {"KINETIX_CACHE": str(tmp_path / "cache")}
    # ~10 s for the whole split: the signal lands with a shard well under way.
    with MirrorServer(mirror.root, total_bps=total / 10.0) as server:
        argv = [sys.executable, "-m", "kinetix.cli.main", "download", "k400", "--split", "val"]
        argv += ["--root", str(root), "--mirror", server.url, "--no-progress"]
        argv += ["--parallel", "2", "--connections", "2", "--piece-size", str(PIECE)]
        import os

        env = {**os.environ, **env_cache}
        proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + 60
        while server.stats.total_bytes < 0.3 * total:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "download never got going"
            time.sleep(0.01)
        proc.send_signal(signum)
        at_signal = server.stats.total_bytes
        try:
            _, err = proc.communicate(timeout=20)  # generous: it must stop, not finish
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("the run did not stop after the signal")
        after = server.stats.total_bytes - at_signal
        assert proc.returncode == 128 + signum, err
        assert "interrupted; rerun the same command to resume" in err
        assert "Traceback" not in err
        # Stopped, not finished: at most the pieces in flight (2 shards x 2 connections) and
        # what the server had queued; before, the running shards were downloaded to the end.
        assert after < 8 * PIECE + (64 << 10), (after, total - at_signal)

        # Everything at a final path is recorded, with its bytes, and good.
        on_disk = clips_on_disk(root)
        assert on_disk == recorded(root)
        good = expected(mirror)
        assert all(good[path] == digest for path, digest in on_disk.items())
        assert any(partial_dir(root).glob("*.part.state")), "partials kept for resume"

        rerun = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert clips_on_disk(root) == recorded(root) == good
