"""The K400 replacement set: train only, only when a selected clip needs it, a mirror without
it is a gap for exactly those clips, and the decision to read it survives kill -9."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kinetix.config import DownloadConfig, Selection
from kinetix.download import download
from kinetix.store.layout import LabelStyle, clip_relpath, manifest_path, partial_dir
from kinetix.store.manifest import Manifest
from kinetix.synthetic.mirror import MirrorIndex
from kinetix.synthetic.server import MirrorServer

REPLACEMENT = "400/replacement_for_corrupted_k400.tgz"


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("KINETIX_CACHE", str(tmp_path.parent / f"{tmp_path.name}-cache"))


def config(root: Path, server: MirrorServer, split: str, **kw) -> DownloadConfig:
    return DownloadConfig(
        root=root, release="k400", split=split, mirror=server.url, progress=False, **kw
    )


def rows(root: Path, split: str) -> dict:
    with Manifest(manifest_path(root), readonly=True) as m:
        return {r.key: r for r in m.clips(release="k400", split=split)}


def file_sha(root: Path, split: str, label: str | None, key: str) -> str:
    path = root / clip_relpath(split, label, key, LabelStyle.RAW)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def replacement_requests(server: MirrorServer) -> int:
    return server.stats.requests.get(REPLACEMENT, 0)


def test_val_never_needs_the_replacement_set_even_where_the_mirror_lacks_it(
    tmp_path, mirror, mirror_server
):
    mirror_server.add_fault(REPLACEMENT, "status", status=404, times=None)
    report = download(config(tmp_path, mirror_server, "val"))
    assert report.ok, report.errors
    assert replacement_requests(mirror_server) == 0
    s = mirror.split("k400", "val")
    got = rows(tmp_path, "val")
    assert {k for k, r in got.items() if r.state == "present"} == {c.key for c in s.present}
    assert {r.source for r in got.values() if r.state == "present"} == {"cvdf"}


def test_train_reads_it_only_when_a_selected_clip_needs_it(tmp_path, mirror, mirror_server):
    s = mirror.split("k400", "train")
    healthy = sorted(c.key for c in s.present if not c.corrupted)
    only = Selection(ids=tuple(healthy))
    first = download(config(tmp_path, mirror_server, "train", selection=only))
    assert first.ok and set(first.placed_keys) == set(healthy)
    assert replacement_requests(mirror_server) == 0  # every selected clip was whole in the parts

    full = download(config(tmp_path, mirror_server, "train"))
    assert full.ok, full.errors
    assert replacement_requests(mirror_server) > 0
    got = rows(tmp_path, "train")
    for key in s.corrupted:
        clip = s.clips[key]
        assert got[key].state == "present" and got[key].source == "cvdf_replacement"
        assert got[key].sha256 == clip.sha256 == file_sha(tmp_path, "train", clip.clip.label, key)
        assert got[key].integrity == "etag_md5"  # the mirror serves S3-style MD5 ETags
    for key in s.missing:  # in no part and not in the replacement set either
        assert got[key].state == "failed" and got[key].error_code == "not_in_shard"
    assert not list(partial_dir(tmp_path).glob("*"))

    before = mirror_server.stats.total_requests
    again = download(config(tmp_path, mirror_server, "train"))
    assert again.ok and again.planned == 0 and not again.placed_keys
    assert mirror_server.stats.total_requests == before


def test_a_mirror_without_it_is_a_gap_for_exactly_the_clips_that_needed_it(
    tmp_path, mirror, mirror_server, capsys, caplog
):
    from kinetix.cli.main import main

    mirror_server.add_fault(REPLACEMENT, "status", status=404, times=None)
    argv = ["download", "k400", "--split", "train", "--root", str(tmp_path)]
    argv += ["--mirror", mirror_server.url, "--no-progress"]
    assert main(argv) == 0  # not a failed run
    assert "error" not in capsys.readouterr().err
    (warning,) = [r.getMessage() for r in caplog.records if "not on this mirror" in r.getMessage()]
    s = mirror.split("k400", "train")
    # the damaged ones and those no part holds, nothing else
    assert f"{len(s.corrupted) + len(s.missing)} selected clip(s) that needed it" in warning
    got = rows(tmp_path, "train")
    for key in s.corrupted:  # the damaged part copy was set aside, the reason is recorded
        row = got[key]
        assert row.state == "failed" and row.error_code == "truncated" and row.verify == "bad"
        assert "not a whole MP4" in row.error_message
        assert "not on this mirror" in row.error_message
        assert row.path.startswith(".kinetix/quarantine/") and (tmp_path / row.path).is_file()
        assert not (tmp_path / clip_relpath("train", s.clips[key].clip.label, key, "raw")).exists()
    healthy = {c.key for c in s.present if not c.corrupted}
    assert {k for k, r in got.items() if r.state == "present"} == healthy
    for key in s.missing:
        assert got[key].state == "failed" and got[key].error_code == "not_in_shard"


def test_sigkill_during_the_replacement_phase_then_rerun_replaces_the_corrupt_clips(
    tmp_path, mirror: MirrorIndex
):
    """kill -9 while the replacement set is being fetched: no corrupt copy is ever recorded
    present, and the rerun (a plain rerun, no flag) fetches the set and places the good ones."""
    s = mirror.split("k400", "train")
    root = tmp_path / "root"
    with MirrorServer(mirror.root) as server:
        server.add_fault(REPLACEMENT, "slow_first_byte", delay=60, times=None)
        argv = [sys.executable, "-m", "kinetix.cli.main", "download", "k400", "--split", "train"]
        argv += ["--root", str(root), "--mirror", server.url, "--no-progress"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while replacement_requests(server) == 0:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the replacement phase never started"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        db = sqlite3.connect(f"file:{manifest_path(root)}?mode=ro", uri=True)
        states = {
            key: state
            for key, state in db.execute("SELECT key, state FROM clips WHERE split='train'")
            if key in s.corrupted
        }
        db.close()
        assert set(states.values()) == {"missing"}, states  # never "present" with a bad copy
        server.clear_faults()
        rerun = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
    got = rows(root, "train")
    for key in s.corrupted:
        clip = s.clips[key]
        assert got[key].state == "present" and got[key].source == "cvdf_replacement"
        assert got[key].sha256 == clip.sha256 == file_sha(root, "train", clip.clip.label, key)
    assert not list(partial_dir(root).glob("*"))
