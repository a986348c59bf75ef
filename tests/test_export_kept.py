"""A csv/parquet export rerun on an unchanged manifest leaves its table as it is (``kept``),
and any write to the manifest, to the table or another option makes it write the table again."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from _manifest_roots import build_manifest_root

import kinetix.export.job as job
from kinetix.export import ExportConfig, export_root, kept
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import ClipUpdate, Manifest

TABLES = {"csv": "manifest.csv", "parquet": "manifest.parquet"}


@pytest.fixture
def state(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("KINETIX_STATE_DIR", str(tmp_path / "state"))
    # the roots here are made a moment before they are exported
    monkeypatch.setattr(kept, "SETTLED", 0.0)
    return tmp_path / "state"


def no_writing(monkeypatch) -> None:
    """Make any attempt to read rows for a table fail."""

    def refuse(*args, **kwargs):
        raise AssertionError("the table was written again")

    monkeypatch.setattr(job, "_write_batches", refuse)
    monkeypatch.setattr(job, "_records", refuse)


def export(root: Path, out: Path, fmt: str, *, kept_as_is: bool = False, **options):
    """(the table's bytes, rows written per split); ``kept_as_is``: the table must be kept."""
    report = export_root(root, ExportConfig(fmt, out=out, **options))
    table = out / TABLES[fmt]
    assert report.kept == (table if kept_as_is else None)
    return table.read_bytes(), [(s.release, s.split, s.written) for s in report.splits]


@pytest.mark.parametrize("fmt", sorted(TABLES))
def test_a_rerun_on_an_unchanged_manifest_keeps_the_table(tmp_path, state, monkeypatch, fmt):
    root = build_manifest_root(tmp_path / "root")
    first, counts = export(root, tmp_path / "out", fmt)
    inode = os.stat(tmp_path / "out" / TABLES[fmt]).st_ino
    no_writing(monkeypatch)
    again, counts_again = export(root, tmp_path / "out", fmt, kept_as_is=True)
    assert again == first and counts_again == counts and sum(n for *_, n in counts) > 0
    assert os.stat(tmp_path / "out" / TABLES[fmt]).st_ino == inode  # not even replaced


def changed_by_sqlite(root: Path) -> None:
    """One cell of a usable row, by a client that is not kinetix (updated_at stays)."""
    db = sqlite3.connect(manifest_path(root))
    with db:
        db.execute(
            "UPDATE clips SET codec='vp9' WHERE rowid = (SELECT max(rowid) FROM clips "
            "WHERE state='present' AND verify='good')"
        )
    db.close()


def changed_by_kinetix(root: Path) -> None:
    with Manifest(manifest_path(root)) as m:
        row = next(r for r in m.clips(states=["present"], verify=["good"]) if r.path)
        m.apply([ClipUpdate(row.release, row.split, row.key, {"codec": "av1"})])


def deleted_by_sqlite(root: Path) -> None:
    db = sqlite3.connect(manifest_path(root))
    with db:
        db.execute("DELETE FROM clips WHERE rowid = (SELECT max(rowid) FROM clips "
                   "WHERE state='present' AND verify='good')")  # fmt: skip
    db.close()


@pytest.mark.parametrize("fmt", sorted(TABLES))
@pytest.mark.parametrize("change", [changed_by_sqlite, changed_by_kinetix, deleted_by_sqlite])
def test_any_manifest_write_writes_the_table_again(tmp_path, state, fmt, change):
    root = build_manifest_root(tmp_path / "root")
    before, _ = export(root, tmp_path / "out", fmt)
    change(root)
    made, counts = export(root, tmp_path / "out", fmt)
    expected, expected_counts = export(root, tmp_path / "fresh", fmt)
    assert made == expected and counts == expected_counts and made != before


@pytest.mark.parametrize("fmt", sorted(TABLES))
def test_a_changed_table_or_other_options_write_it_again(tmp_path, state, fmt):
    root = build_manifest_root(tmp_path / "root")
    out = tmp_path / "out"
    first, _ = export(root, out, fmt)
    (out / TABLES[fmt]).write_bytes(b"edited")
    assert export(root, out, fmt)[0] == first
    (out / TABLES[fmt]).unlink()
    assert export(root, out, fmt)[0] == first
    wider, _ = export(root, out, fmt, include_unverified=True)
    assert wider == export(root, tmp_path / "fresh", fmt, include_unverified=True)[0] != first
    only_val, counts = export(root, out, fmt, splits=("val",))
    assert [s for _, s, _ in counts] == ["val"] and only_val != first


def test_a_manifest_written_just_now_is_not_remembered(tmp_path, monkeypatch):
    monkeypatch.setenv("KINETIX_STATE_DIR", str(tmp_path / "state"))
    root = build_manifest_root(tmp_path / "root")  # its files are seconds old at most
    assert kept.manifest_state(manifest_path(root)) is None
    export(root, tmp_path / "out", "csv")
    assert not kept.record_path(tmp_path / "out" / "manifest.csv").exists()
