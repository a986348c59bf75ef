"""A damaged manifest (cut short, junk, deleted, emptied, wrong tables, a bad page) is one clear
line on every command, never a traceback, and ``kinetix repair`` rebuilds it from the clips on
disk and the catalog, verifying them and downloading nothing."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kinetix.cli.main import main
from kinetix.config import DownloadConfig
from kinetix.download import download
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import Manifest
from kinetix.synthetic.mirror import MirrorIndex
from kinetix.synthetic.server import MirrorServer


def _truncate(m: Path) -> None:
    with open(m, "r+b") as f:
        f.truncate(m.stat().st_size // 3)


def _junk(m: Path) -> None:
    m.write_bytes(b"\x8f junk, not a database \x00" * 2000)


def _delete(m: Path) -> None:
    m.unlink()


def _empty(m: Path) -> None:
    m.write_bytes(b"")


def _wrong_schema(m: Path) -> None:
    db = sqlite3.connect(m)
    db.execute("DROP TABLE clips")
    db.execute("CREATE TABLE clips (x)")
    db.commit()
    db.close()


def _bad_page(m: Path) -> None:
    """Junk over pages in the middle: the header is fine, SQLite finds it only when it reads."""
    with open(m, "r+b") as f:
        f.seek(3 * 4096)
        f.write(b"\xff" * 8192)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated": _truncate,
    "junk": _junk,
    "deleted": _delete,
    "emptied": _empty,
    "wrong_schema": _wrong_schema,
    "bad_page": _bad_page,
}


@pytest.fixture(scope="module")
def server(mirror: MirrorIndex) -> Iterator[MirrorServer]:
    with MirrorServer(mirror.root) as s:
        yield s


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory, server: MirrorServer) -> Iterator[Path]:
    """A finished K400 val root (made once; each test damages a copy)."""
    base = tmp_path_factory.mktemp("healthy")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KINETIX_CACHE", str(base / "cache"))  # annotation files, for every copy
        root = base / "root"
        report = download(_config(root, server))
        assert report.ok and report.placed_keys
        with Manifest(manifest_path(root)) as m:  # fold the WAL in: copies are single files
            m.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        yield root


def _config(root: Path, server: MirrorServer) -> DownloadConfig:
    return DownloadConfig(root=root, release="k400", split="val", mirror=server.url, progress=False)


def _clips(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "val").rglob("*.mp4"))
    }


def _one_clear_line(err: str, root: Path) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("kinetix: error: ")
    assert f"kinetix repair {root}" in lines[0]


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_manifest_is_one_line_everywhere_and_repair_brings_it_back(
    kind, healthy, server, tmp_path, capsys, monkeypatch
):
    root = tmp_path / "root"
    shutil.copytree(healthy, root)
    before = _clips(root)
    DAMAGE[kind](manifest_path(root))
    argv_download = ["download", "k400", "--split", "val", "--root", str(root)]
    argv_download += ["--mirror", server.url, "--no-progress"]
    commands = [["verify", str(root)], argv_download]
    if (
        kind != "bad_page"
    ):  # a damaged page status never reads goes unnoticed there, and is harmless
        commands += [["status", str(root)], ["export", str(root), "--format", "csv"]]
    for argv in commands:
        assert main(argv) == 2, argv
        _one_clear_line(capsys.readouterr().err, root)
    assert _clips(root) == before  # nothing was touched, nothing fetched again

    requests = server.stats.total_requests
    assert main(["repair", str(root), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "could not be used" in out and "15 clip files found" in out
    assert "verified: 15 good, 0 bad" in out
    assert server.stats.total_requests == requests  # the annotation file came from the cache
    if kind != "deleted":
        assert list(manifest_path(root).parent.glob("manifest.sqlite.damaged-*"))
    with Manifest(manifest_path(root), readonly=True) as m:
        present = list(m.clips(states=["present"]))
        assert len(present) == 15 and {r.verify for r in present} == {"good"}
        assert m.get_meta("release") == "k400" and m.get_meta("layout") == "raw"

    # the way back is real: status works, a download fetches no clip that is there
    assert main(["status", str(root)]) == 0
    assert "15 present" in capsys.readouterr().out
    again = download(_config(root, server))
    assert again.ok and again.already_present == 15 and not again.placed_keys
    assert _clips(root) == before
    # and a second repair does not loop back to the same advice
    assert main(["repair", str(root)]) == 0
    assert "healthy; nothing rebuilt" in capsys.readouterr().out


def test_repair_without_a_recorded_release_asks_for_it(healthy, server, tmp_path, capsys):
    root = tmp_path / "root"
    shutil.copytree(healthy, root)
    (manifest_path(root).parent / "meta.json").unlink()
    _junk(manifest_path(root))
    assert main(["repair", str(root), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "pass --release" in err and "Traceback" not in err
    argv = ["repair", str(root), "--release", "k400", "--mirror", server.url, "--no-progress"]
    assert main(argv) == 0
    assert "15 clip files found" in capsys.readouterr().out


def test_a_new_root_without_clips_still_says_download(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "run 'kinetix download'" in err and "repair" not in err


# What a kill -9 leaves when it lands while a new root's manifest is being created: SQLite's
# header is written (WAL mode set) but the tables' transaction never committed.
_KILLED_AT_CREATION = {
    "wal_set": "import sqlite3, os, sys\n"
    "db = sqlite3.connect(sys.argv[1]); db.execute('PRAGMA journal_mode=WAL')\n"
    "os._exit(0)\n",
    "tables_uncommitted": "import sqlite3, os, sys\n"
    "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
    "db.execute('PRAGMA journal_mode=WAL')\n"
    "db.execute('BEGIN'); db.execute('CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)')\n"
    "db.execute('CREATE TABLE clips (x)'); os._exit(0)\n",
}


@pytest.mark.parametrize("stage", list(_KILLED_AT_CREATION))
def test_a_manifest_killed_as_it_was_created_is_taken_as_new(tmp_path, server, stage, capsys):
    """Found by the soak (3 of 20 random kills of download on main): the rerun called such a
    file damaged (no kinetix tables) and sent the user to 'kinetix repair' for a root with
    nothing in it; it is what an empty file is, a database not yet made."""
    import subprocess
    import sys

    root = tmp_path / "root"
    path = manifest_path(root)
    path.parent.mkdir(parents=True)
    subprocess.run([sys.executable, "-c", _KILLED_AT_CREATION[stage], str(path)], check=True)
    assert path.stat().st_size > 0
    assert main(["status", str(root)]) == 2  # a reader: nothing recorded yet, not damage
    err = capsys.readouterr().err
    assert "repair" not in err and "download" in err, err
    argv = ["download", "k400", "--split", "val", "--root", str(root), "--mirror", server.url]
    assert main([*argv, "--no-progress"]) == 0, capsys.readouterr().err
    with Manifest(manifest_path(root), readonly=True) as m:
        assert m.has_clips()
    # a file that does hold tables, none of them kinetix's, is still damage
    other = tmp_path / "other" / ".kinetix" / "manifest.sqlite"
    other.parent.mkdir(parents=True)
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(Exception, match="none of the kinetix tables"):
        Manifest(other)
