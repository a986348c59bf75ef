"""`kinetix download` against the synthetic CVDF mirror: layouts, selection, resume, faults."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _faults import expected_tree
from _faults import mirror_download_config as config

from kinetix.card import CARD_NAME
from kinetix.cli.main import main
from kinetix.config import Selection
from kinetix.download import download
from kinetix.errors import ConfigError, DiskSpaceError, KinetixError, LockedError
from kinetix.sources.cvdf import shard_id
from kinetix.store.layout import LabelStyle, clip_relpath, manifest_path, partial_dir
from kinetix.store.lock import RootLock
from kinetix.store.manifest import Manifest
from kinetix.synthetic.server import MirrorServer


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    """Annotation and path-list caches live under the test's tmp_path, never in ~/.cache."""
    monkeypatch.setenv("KINETIX_CACHE", str(tmp_path.parent / f"{tmp_path.name}-cache"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root: Path) -> dict[str, str]:
    """Every file under root (state folder aside) -> its sha256."""
    return {
        str(p.relative_to(root)): sha256(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".kinetix" not in p.parts and p.name != CARD_NAME
    }


@pytest.mark.parametrize(
    ("release", "layout"),
    [
        ("k400", LabelStyle.RAW),
        ("k600", LabelStyle.TORCHVISION),
        ("k700-2020", LabelStyle.UNDERSCORE),
    ],
)
def test_full_split_lands_exactly_like_the_mirror(tmp_path, mirror, mirror_server, release, layout):
    report = download(config(tmp_path, mirror_server, release, layout=layout))
    assert report.ok, report.errors
    assert tree(tmp_path) == expected_tree(mirror, release, "val", layout)
    s = mirror.split(release, "val")
    with Manifest(manifest_path(tmp_path), readonly=True) as m:
        rows = {r.key: r for r in m.clips(release=release, split="val")}
        assert set(rows) == set(s.clips)
        for key in s.missing:
            assert rows[key].state == "failed" and rows[key].error_code == "not_in_shard"
        for key in s.replacement:
            assert rows[key].source == "cvdf_replacement"
        present = [r for r in rows.values() if r.state == "present"]
        assert all(r.sha256 == sha256(tmp_path / r.path) for r in present)
        assert all(r.label_index is not None for r in present)
        assert m.get_meta("layout") == layout.value
    assert not list(partial_dir(tmp_path).glob("*")), "partial shards must be cleaned up"
    assert not [p for p in tmp_path.rglob("*.kx-part")], "no temp files left behind"

    # Rerunning a finished job does no network transfer at all.
    before = mirror_server.stats
    again = download(config(tmp_path, mirror_server, release, layout=layout))
    assert sum(again.placed.values()) == 0 and again.planned == 0  # not_in_shard is not work
    assert mirror_server.stats.total_requests == before.total_requests


def test_k400_anomalies_are_handled(tmp_path, mirror, mirror_server):
    download(config(tmp_path, mirror_server, "k400"))
    names = {p.name for p in tmp_path.rglob("*")}
    assert not any(n.startswith("._") for n in names)
    assert not (tmp_path / "home").exists()  # deep prefixes map by file stem
    assert tree(tmp_path) == expected_tree(mirror, "k400", "val")


def test_selection_fetches_and_writes_only_what_was_asked(tmp_path, mirror, mirror_server):
    s = mirror.split("k600", "val")
    label = sorted({c.clip.label for c in s.present})[0]
    sel = Selection(classes=(label,), max_per_class=2, seed=3)
    report = download(config(tmp_path, mirror_server, "k600", selection=sel))
    assert report.selected == 2 and sum(report.placed.values()) == 2
    assert {p.parent.name for p in tmp_path.rglob("*.mp4")} == {label}
    fetched = {path for path, n in mirror_server.stats.bytes_sent.items() if n and "tar" in path}
    assert fetched == {f"600/val/{label}.tar.gz"}


def test_bigger_selection_later_reuses_the_shard_index(tmp_path, mirror, mirror_server):
    """A K400 run over a subset lists every shard's members; a later full run needs no re-read
    of shards that hold nothing new and never refetches what it placed."""
    s = mirror.split("k400", "val")
    first = sorted(c.key for c in s.present if not c.corrupted)[:2]
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(first) + "\n")
    root = tmp_path / "root"
    download(config(root, mirror_server, "k400", selection=Selection(ids=tuple(first))))
    assert {p.stem for p in root.rglob("*.mp4")} == set(first)
    report = download(config(root, mirror_server, "k400"))
    assert report.ok and tree(root) == expected_tree(mirror, "k400", "val")
    assert not set(first) & set(report.placed_keys)


def test_missing_files_are_fetched_again(tmp_path, mirror, mirror_server):
    download(config(tmp_path, mirror_server, "k700-2020"))
    victim = next(iter(tmp_path.rglob("*.mp4")))
    victim.unlink()
    report = download(config(tmp_path, mirror_server, "k700-2020"))
    assert list(report.placed_keys) == [victim.stem]
    assert tree(tmp_path) == expected_tree(mirror, "k700-2020", "val")


# --- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "params", "code"),
    [("status", {"status": 404}, "http_404"), ("html", {}, "not_an_archive")],
)
def test_broken_shard_is_one_line_keeps_the_rest_and_rerun_finishes(
    tmp_path, mirror, mirror_server, capsys, kind, params, code
):
    s = mirror.split("k600", "val")
    broken = s.shards[0]
    mirror_server.add_fault(broken, kind, times=None, **params)
    argv = ["download", "k600", "--split", "val", "--root", str(tmp_path)]
    argv += ["--mirror", mirror_server.url, "--no-progress"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("kinetix: error:")]
    assert len(lines) == 1 and Path(broken).name in lines[0]
    with Manifest(manifest_path(tmp_path), readonly=True) as m:
        assert m.shard(shard_id(broken))["error_code"] == code
    good = {k: v for k, v in expected_tree(mirror, "k600", "val").items()}
    got = tree(tmp_path)
    assert got and all(good[k] == v for k, v in got.items())  # everything placed is good
    mirror_server.clear_faults()
    assert main(argv) == 0
    assert tree(tmp_path) == good


@pytest.mark.parametrize("kind", ["reset", "truncate"])
def test_broken_transfers_are_retried(tmp_path, mirror, mirror_server, monkeypatch, kind):
    monkeypatch.setattr("kinetix.transfer.retry.time.sleep", lambda s: None)
    for shard in mirror.split("k700-2020", "val").shards:
        mirror_server.add_fault(shard, kind, times=1, after_bytes=100)
    report = download(config(tmp_path, mirror_server, "k700-2020"))
    assert report.ok and tree(tmp_path) == expected_tree(mirror, "k700-2020", "val")


def test_corrupt_shard_is_fetched_again_never_half_accepted(tmp_path, mirror, mirror_server):
    """A shard whose bytes change underneath (a bad copy on the CDN) is re-read from scratch."""
    s = mirror.split("k700-2020", "val")
    shard = mirror.path(s.shards[0])
    good = shard.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2 : len(bad) // 2 + 64] = b"\0" * 64  # inflate fails or CRC mismatches
    shard.write_bytes(bytes(bad))
    try:
        report = download(config(tmp_path, mirror_server, "k700-2020"))
        assert len(report.errors) == 1 and s.shards[0] in report.errors[0]
        with Manifest(manifest_path(tmp_path), readonly=True) as m:
            row = m.shard(shard_id(s.shards[0]))
            assert row["error_code"] == "corrupt_archive" and row["attempts"] == 1
        assert not list(tmp_path.rglob(f"val/{_label_of(s, s.shards[0])}/*.mp4"))
    finally:
        shard.write_bytes(good)
    report = download(config(tmp_path, mirror_server, "k700-2020"))
    assert report.ok and tree(tmp_path) == expected_tree(mirror, "k700-2020", "val")


def _label_of(split, shard: str) -> str:
    return next(c.clip.label for c in split.clips.values() if c.shard == shard)


def test_second_download_on_the_same_root_is_refused(tmp_path, mirror_server):
    with RootLock(tmp_path), pytest.raises(LockedError, match="in use by another kinetix"):
        download(config(tmp_path, mirror_server, "k700-2020"))


def test_read_only_root_is_a_clear_error(tmp_path, mirror_server):
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(KinetixError, match="cannot write to"):
            download(config(tmp_path / "data", mirror_server, "k600"))
    finally:
        tmp_path.chmod(0o700)


def test_read_only_state_dir_is_a_clear_error(tmp_path, mirror_server, monkeypatch):
    def refuse(self, *a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "write_bytes", refuse)
    with pytest.raises(KinetixError, match=r"cannot write to .*Permission denied"):
        download(config(tmp_path, mirror_server, "k600"))


def test_short_disk_is_refused_before_any_transfer(tmp_path, mirror_server, monkeypatch):
    real = shutil.disk_usage
    monkeypatch.setattr(
        "kinetix.sources.cvdf_source.shutil.disk_usage", lambda p: real(p)._replace(free=1000)
    )
    # in units that say it: "1.0 KB free", not "0.0 GB free ... needs about 0.0 GB"
    with pytest.raises(DiskSpaceError, match=r"has 1.0 KB free but this run needs about [1-9]"):
        download(config(tmp_path, mirror_server, "k600"))
    assert not list(tmp_path.rglob("*.mp4"))


def test_k700_2019_has_no_cvdf_copy(tmp_path, mirror_server):
    with pytest.raises(ConfigError, match="--source youtube"):
        download(config(tmp_path, mirror_server, "k700"))


def test_layout_of_an_existing_root_is_kept(tmp_path, mirror_server):
    download(config(tmp_path, mirror_server, "k600", selection=Selection(max_per_class=1)))
    with pytest.raises(ConfigError, match="use --layout raw"):
        download(config(tmp_path, mirror_server, "k600", layout=LabelStyle.TORCHVISION))


def test_status_reports_reasons_and_classes(tmp_path, mirror, mirror_server, capsys):
    download(config(tmp_path, mirror_server, "k400"))
    assert main(["status", str(tmp_path), "--by-class"]) == 0
    out = capsys.readouterr().out
    assert "not_in_shard" in out and "least complete classes" in out
    assert main(["status", str(tmp_path), "--json"]) == 0
    import json

    info = json.loads(capsys.readouterr().out)
    (split,) = info["splits"]
    s = mirror.split("k400", "val")
    assert split["annotated"] == len(s.clips)
    assert split["failed"] == {"not_in_shard": len(s.missing)}


# --- SIGKILL at any point -------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fraction", [0.15, 0.5, 0.85])
def test_sigkill_then_rerun_ends_with_the_same_bytes(tmp_path, mirror, fraction):
    """Kill -9 a real `kinetix download` part way through (by bytes served), rerun it: the root
    holds exactly the files (same bytes) an uninterrupted run leaves, and the rerun resumes
    instead of starting over."""
    expected = expected_tree(mirror, "k400", "val")
    files = mirror.split("k400", "val").shards  # val never needs the replacement set
    sizes = [mirror.path(p).stat().st_size for p in files]
    total = sum(sizes)
    piece = 16 * 1024
    root = tmp_path / "root"
    # Slow enough that the kill lands mid-transfer: ~4 s for the whole split.
    with MirrorServer(mirror.root, total_bps=total / 4.0) as server:
        argv = [sys.executable, "-m", "kinetix.cli.main", "download", "k400", "--split", "val"]
        argv += ["--root", str(root), "--mirror", server.url, "--no-progress"]
        argv += ["--parallel", "1", "--connections", "2", "--piece-size", str(piece)]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while server.stats.total_bytes < fraction * total and proc.poll() is None:
            assert time.monotonic() < deadline, "download never got going"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        served = server.stats.total_bytes
        rerun = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        resent = server.stats.total_bytes - served
    assert tree(root) == expected
    assert not list(partial_dir(root).glob("*"))
    # What was on disk was kept: at most the pieces in flight and one finished-but-unrecorded
    # shard are fetched twice.
    assert resent <= total - served + 2 * piece + max(sizes)


def test_full_disk_mid_shard_is_one_line_keeps_what_was_placed_and_rerun_finishes(
    tmp_path, mirror, mirror_server, monkeypatch, capsys
):
    import errno

    import kinetix.transfer.extract as extract

    real_write = extract._MemberWriter.write
    calls = {"n": 0}

    def fill_up(self, data):
        calls["n"] += 1
        if calls["n"] > 3:  # the first member lands, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(extract._MemberWriter, "write", fill_up)
    argv = ["download", "k700-2020", "--split", "val", "--root", str(tmp_path)]
    argv += ["--mirror", mirror_server.url, "--no-progress", "--parallel", "1"]
    assert main(argv) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "no space" in errors[0].lower()
    assert not [p for p in tmp_path.rglob("*.kx-part")]  # no half-written clip left
    good = expected_tree(mirror, "k700-2020", "val")
    assert all(good[k] == v for k, v in tree(tmp_path).items())
    monkeypatch.setattr(extract._MemberWriter, "write", real_write)
    assert main(argv) == 0
    assert tree(tmp_path) == good


def test_progress_lines_without_a_terminal() -> None:
    from kinetix.progress import Progress

    lines: list[str] = []
    p = Progress("shards", total_tasks=2, total_clips=5, bars=False, emit=lines.append, every=0)
    p.add_bytes(2_000_000)
    p.add_clips(3, failed=1)
    p.task_done()
    p.task_done()
    p.close()
    assert lines[-1].startswith("shards, tasks 2/2, clips 3/5, failed 1, 2.0 MB at ")


def test_progress_bars_count_bytes_shards_and_clips() -> None:
    from kinetix.progress import Progress

    p = Progress("shards", total_bytes=100, total_tasks=2, total_clips=4, bars=True)
    p.add_bytes(60)
    p.task_done()
    p.add_clips(2)
    assert [p._bars[k].n for k in ("bytes", "tasks", "clips")] == [60, 1, 2]
    assert p._bars["bytes"].total == 100
    p.close()


def test_dask_executor_downloads_the_same_split(tmp_path, mirror, mirror_server):
    """Shard tasks run on a Dask cluster's workers; the parent alone writes the manifest."""
    pytest.importorskip("distributed")
    report = download(config(tmp_path, mirror_server, "k600", executor="dask", parallel=2))
    assert report.ok and tree(tmp_path) == expected_tree(mirror, "k600", "val")
    with Manifest(manifest_path(tmp_path), readonly=True) as m:
        assert all(r.state == "present" for r in m.clips())


def test_a_run_stopped_by_a_bad_flag_does_not_pin_the_layout(tmp_path, mirror_server):
    with pytest.raises(ConfigError, match="did you mean"):
        download(
            config(tmp_path, mirror_server, "k600", selection=Selection(classes=("abseling",)))
        )
    report = download(config(tmp_path, mirror_server, "k600", layout=LabelStyle.TORCHVISION))
    assert report.ok and sum(report.placed.values()) > 0


def test_the_shard_index_holds_across_mirrors(tmp_path, mirror, mirror_server):
    """Shards are known by their CVDF location, not by the mirror (or port) they came from:
    after a full run, a lost clip is fetched from the one shard that holds it, even when the
    mirror moved."""
    download(config(tmp_path, mirror_server, "k400"))
    with Manifest(manifest_path(tmp_path), readonly=True) as m:
        assert all(x["url"].startswith("https://s3.amazonaws.com/kinetics/") for x in m.shards())
    s = mirror.split("k400", "val")
    victim = sorted((c for c in s.present if not c.corrupted), key=lambda c: c.key)[0]
    (tmp_path / clip_relpath("val", victim.clip.label, victim.key, LabelStyle.RAW)).unlink()
    with MirrorServer(mirror.root) as other:  # the same mirror on another port
        report = download(config(tmp_path, other, "k400"))
        fetched = {p for p, n in other.stats.requests.items() if p.endswith((".tar.gz", ".tgz"))}
    assert fetched == {victim.shard}
    assert report.ok and tree(tmp_path) == expected_tree(mirror, "k400", "val")


def test_keep_archives_keeps_each_shard_byte_for_byte(tmp_path, mirror, mirror_server):
    report = download(config(tmp_path, mirror_server, "k600", keep_archives=True))
    assert report.ok and tree(tmp_path / "val") == {
        k[len("val/") :]: v for k, v in expected_tree(mirror, "k600", "val").items()
    }
    for name in mirror.split("k600", "val").shards:
        assert (tmp_path / "archives" / name).read_bytes() == mirror.path(name).read_bytes()
    assert not list(partial_dir(tmp_path).glob("*"))


def test_offline_rerun_needs_no_server(tmp_path, mirror, mirror_server):
    download(config(tmp_path, mirror_server, "k700-2020"))
    cfg = config(tmp_path, mirror_server, "k700-2020", offline=True)
    mirror_server.stop()  # annotations and path list come from the caches
    report = download(cfg)
    assert report.ok and report.planned == 0
    assert tree(tmp_path) == expected_tree(mirror, "k700-2020", "val")
