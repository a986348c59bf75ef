"""The manifest on shared and read-only filesystems: detection, snapshots, read-only mounts."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from _roots import RootClip, build_videos_root, clips

from kinetix.cli.main import main
from kinetix.store import filesystem
from kinetix.store.database import live_path
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import ClipState, Manifest

NFS, LUSTRE, GPFS, BEEGFS, CIFS, FUSE, EXT4 = (
    0x6969, 0x0BD00BD0, 0x47504653, 0x19830326, 0xFF534D42, 0x65735546, 0xEF53,
)  # fmt: skip


def _fake_statfs(monkeypatch: pytest.MonkeyPatch, magic: int) -> None:
    monkeypatch.setattr(filesystem, "statfs_magic", lambda path: magic)


@pytest.mark.parametrize(
    "magic, name",
    [(NFS, "nfs"), (LUSTRE, "lustre"), (GPFS, "gpfs"), (BEEGFS, "beegfs"), (CIFS, "cifs"),
     (FUSE, "fuse")],
)  # fmt: skip
def test_network_filesystems_are_detected_from_statfs(monkeypatch, tmp_path, magic, name) -> None:
    monkeypatch.delenv("KINETIX_SHARED_FS", raising=False)
    _fake_statfs(monkeypatch, magic)
    info = filesystem.filesystem_info(tmp_path / "not" / "yet")
    assert (info.name, info.network, info.readonly) == (name, True, False)


def test_local_filesystems_and_the_override(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("KINETIX_SHARED_FS", raising=False)
    _fake_statfs(monkeypatch, EXT4)
    assert filesystem.filesystem_info(tmp_path) == filesystem.FilesystemInfo("ext4", False, False)
    monkeypatch.setenv("KINETIX_SHARED_FS", "1")
    assert filesystem.filesystem_info(tmp_path).network
    monkeypatch.setenv("KINETIX_SHARED_FS", "0")
    _fake_statfs(monkeypatch, NFS)
    assert not filesystem.filesystem_info(tmp_path).network


def test_the_real_statfs_answers_here(tmp_path) -> None:
    assert filesystem.statfs_magic(tmp_path) is not None  # Linux: the call works


@pytest.fixture
def on_nfs(monkeypatch, tmp_path) -> Path:
    """Every path looks like NFS; the writer's local disk is ``tmp_path/host-a``."""
    monkeypatch.delenv("KINETIX_SHARED_FS", raising=False)
    _fake_statfs(monkeypatch, NFS)
    monkeypatch.setenv("KINETIX_STATE_DIR", str(tmp_path / "host-a"))
    return tmp_path / "root"


CLIPS = clips("val", ["abseiling", "archery", "bowling"])


def _header_mode(path: Path) -> int:
    """Byte 18 of an SQLite header: 1 = rollback journal, 2 = WAL."""
    return path.read_bytes()[18]


def test_on_a_network_filesystem_readers_see_published_snapshots(on_nfs, monkeypatch) -> None:
    published = manifest_path(on_nfs)
    writer = Manifest(published)
    writer.add_clips(CLIPS)
    live = live_path(published)
    assert live.exists() and not str(live).startswith(str(on_nfs))
    assert published.exists(), "a new root is published at once so other hosts see it"
    writer.update("k400", "val", CLIPS[0].key, state=ClipState.PRESENT, path="a.mp4")
    # nothing of SQLite's WAL machinery ever appears on the shared filesystem
    assert sorted(p.name for p in published.parent.iterdir()) == ["manifest.sqlite"]
    assert _header_mode(published) == 1
    with Manifest(published, readonly=True) as reader:  # a login node, mid-run: last snapshot
        assert reader.count(states=["present"]) == 0
    writer.close()
    assert sorted(p.name for p in published.parent.iterdir()) == ["manifest.sqlite"]
    with Manifest(published, readonly=True) as reader:
        assert reader.count(states=["present"]) == 1
        assert reader.get_meta("generation") == "2"


def test_a_rerun_continues_from_the_live_copy_or_else_the_published_one(
    on_nfs, monkeypatch, tmp_path
) -> None:
    published = manifest_path(on_nfs)
    with Manifest(published) as m:
        m.add_clips(CLIPS)
    # host A is killed after recording a clip it never published: its live copy knows more
    m = Manifest(published)
    m.update("k400", "val", CLIPS[1].key, state=ClipState.PRESENT, path="b.mp4")
    m._db.close()  # no publish: as if SIGKILLed
    with Manifest(published) as m:  # the rerun on host A
        assert m.count(states=["present"]) == 1
    # host B (another local disk) starts from the published snapshot
    monkeypatch.setenv("KINETIX_STATE_DIR", str(tmp_path / "host-b"))
    with Manifest(published) as m:
        assert m.count(states=["present"]) == 1
        m.update("k400", "val", CLIPS[2].key, state=ClipState.PRESENT, path="c.mp4")
    # back on host A: its live copy is now older than the published one, so it is dropped
    monkeypatch.setenv("KINETIX_STATE_DIR", str(tmp_path / "host-a"))
    with Manifest(published) as m:
        assert m.count(states=["present"]) == 2


def test_a_recreated_root_does_not_inherit_an_old_live_copy(on_nfs) -> None:
    published = manifest_path(on_nfs)
    with Manifest(published) as m:
        m.add_clips(CLIPS)
    for p in published.parent.iterdir():
        p.unlink()
    with Manifest(published) as m:
        assert m.count() == 0


# --- read-only mounts (issue 14 item 2) ------------------------------------------------------


@pytest.fixture
def readonly_root(tmp_path) -> Iterator[Path]:
    """A finished root (WAL-mode manifest) seen through a real read-only bind mount."""
    src = build_videos_root(
        tmp_path / "src", [RootClip(c) for c in clips("train", ["abseiling", "archery"] * 2)]
    )
    assert _header_mode(manifest_path(src)) == 2  # written in WAL mode, as a local run leaves it
    mnt = tmp_path / "ro"
    mnt.mkdir()
    up = subprocess.run(
        f"mount --bind {src} {mnt} && mount -o remount,ro,bind {mnt}",
        shell=True,
        capture_output=True,
    )
    if up.returncode:
        subprocess.run(["umount", str(mnt)], capture_output=True)
        pytest.skip(f"cannot make a read-only bind mount here (needs root): {up.stderr!r}")
    try:
        yield mnt
    finally:
        for _ in range(20):
            if subprocess.run(["umount", str(mnt)], capture_output=True).returncode == 0:
                break
            subprocess.run(["sleep", "0.1"])
        else:
            subprocess.run(["umount", "-l", str(mnt)])


def test_plain_sqlite_cannot_read_it_which_is_the_defect(readonly_root) -> None:
    uri = f"file:{manifest_path(readonly_root)}?mode=ro"
    with pytest.raises(sqlite3.OperationalError, match="unable to open"):
        sqlite3.connect(uri, uri=True).execute("SELECT * FROM meta").fetchall()


def test_status_export_frames_and_dataset_read_a_readonly_mount(
    readonly_root, tmp_path, capsys
) -> None:
    assert filesystem.filesystem_info(readonly_root).readonly
    assert main(["status", str(readonly_root)]) == 0
    assert "4" in capsys.readouterr().out
    lists = tmp_path / "lists"
    assert main(["export", str(readonly_root), "--out", str(lists), "--format", "mmaction"]) == 0
    assert any(lists.iterdir())
    frames_out = tmp_path / "frames"
    code = main(["frames", str(readonly_root), "--out", str(frames_out), "--no-progress"])
    assert code == 0
    assert len(list(frames_out.glob("train/*/*/img_00001.jpg"))) == 4
    from kinetix.data.datasets import KineticsDataset

    ds = KineticsDataset(readonly_root, "train", frames_per_clip=4, output="numpy")
    assert len(ds) == 4
    assert ds[0][0].shape[0] == 4
    # nothing was added (no -shm, no -wal): the manifest and its meta copy, as it was made
    names = sorted(p.name for p in (readonly_root / ".kinetix").iterdir())
    assert names == ["manifest.sqlite", "meta.json"]
