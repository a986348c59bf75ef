"""kinetix.durable: the one home of file hashing, fsync, atomic writes and the writable check."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from kinetix.durable import (
    AtomicFile,
    fsync_dir,
    fsync_file,
    require_writable,
    sha256_file,
    temp_sibling,
    write_text_atomic,
)
from kinetix.errors import ConfigError


def test_sha256_file_reads_in_chunks_to_the_same_digest(tmp_path) -> None:
    path = tmp_path / "blob"
    data = bytes(range(256)) * 5000  # more than one chunk of the small size below
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_file(path, chunk_size=1000) == hashlib.sha256(data).hexdigest()


def test_write_text_atomic_replaces_whole_and_leaves_no_temp(tmp_path) -> None:
    path = tmp_path / "card.md"
    path.write_text("old")
    write_text_atomic(path, "new text")
    fsync_file(path)
    fsync_dir(tmp_path)
    assert path.read_text() == "new text"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.md"]


def test_a_failed_atomic_write_keeps_the_old_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "meta.json"
    path.write_text("old")

    def refuse(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("kinetix.durable.os.replace", refuse)
    with pytest.raises(OSError, match="No space"):
        write_text_atomic(path, "new")
    assert path.read_text() == "old"
    assert not temp_sibling(path).exists()


def test_atomic_file_commit_and_discard(tmp_path) -> None:
    out = AtomicFile(tmp_path / "sub" / "list.txt")
    out.file.write("a\n")
    assert not (tmp_path / "sub" / "list.txt").exists()
    out.commit()
    assert (tmp_path / "sub" / "list.txt").read_text() == "a\n"
    gone = AtomicFile(tmp_path / "other.txt")
    gone.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


def test_require_writable_names_the_folder_and_the_fix(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    require_writable(tmp_path / "new" / "state", "ROOT", "fix it")  # created on the way
    assert (tmp_path / "new" / "state").is_dir()
    with pytest.raises(ConfigError, match=r"cannot write to ROOT: .*; choose another"):
        require_writable(Path(blocker) / "state", "ROOT", "choose another")
