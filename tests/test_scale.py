"""Cost grows with what changed: maintained counts, old roots, and reruns that do no work."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

import kinetix.catalog.fetch
from kinetix.catalog.clip import Clip
from kinetix.config import DownloadConfig
from kinetix.data.index import ClipEntry, ClipIndex, LabelIndexer, iter_usable
from kinetix.download import download
from kinetix.store import presence
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import ClipUpdate, Manifest
from kinetix.store.presence import mark_vanished
from kinetix.store.status import root_status

OLD_SCHEMA = Path(__file__).parent / "data" / "manifest_schema_v1.sql"


def _clips(n: int, split: str = "train") -> list[Clip]:
    labels = ["abseiling", "air drumming", None]
    return [
        Clip("k400", split, f"vid{i:08d}", i, i + 10, labels[i % len(labels)]) for i in range(n)
    ]


def test_counters_equal_a_full_recount(tmp_path) -> None:
    with Manifest(tmp_path / "m.sqlite") as m:
        m.add_clips(_clips(30))
        m.add_clips(_clips(12, "val"))
        m.add_clips(_clips(30))  # known rows: ignored, not counted twice
        updates = [
            ClipUpdate("k400", "train", f"vid{i:08d}_{i:06d}_{i + 10:06d}", fields)
            for i, fields in [
                (0, {"state": "present", "bytes": 100, "source": "cvdf", "path": "a"}),
                (1, {"state": "present", "bytes": 50, "source": "youtube", "verify": "good"}),
                (2, {"state": "failed", "error_code": "http_404"}),
                (3, {"state": "failed", "error_code": "not_in_shard"}),
                (4, {"state": "quarantined", "verify": "bad"}),
            ]
        ]
        m.apply(updates)
        m.apply(updates[:2])  # the same values again: no drift
        m.update("k400", "train", updates[0].key, bytes=70)  # size changed
        m.update("k400", "train", updates[2].key, state="present", error_code=None, bytes=5)
        m.update("k400", "train", updates[1].key, state="missing", verify=None, bytes=None)
        m.execute("DELETE FROM clips WHERE split='train' AND key=?", (updates[4].key,))
        m.execute("COMMIT")
        assert m.clip_counts() == m.clip_counts(recount=True)
        assert sum(r[-2] for r in m.clip_counts()) == 41
    root = tmp_path / "root"
    manifest_path(root).parent.mkdir(parents=True)
    (tmp_path / "m.sqlite").rename(manifest_path(root))
    counted = root_status(root, by_class=True)
    recounted = root_status(root, by_class=True, recount=True)
    assert counted.as_dict() == recounted.as_dict()
    train = next(s for s in counted.splits if s.split == "train")
    assert (train.annotated, train.present, train.bytes) == (29, 2, 75)
    assert train.failed == {"not_in_shard": 1}


def old_root(root: Path, clips: list[Clip], present: int) -> Path:
    """A root as the kinetix before the counters made it: its schema, rows written by SQL."""
    manifest_path(root).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(manifest_path(root))
    db.executescript(OLD_SCHEMA.read_text())
    with db:
        db.executemany("INSERT INTO meta VALUES (?, ?)", [("kind", "videos"), ("release", "k400"),
                                                          ("layout", "raw")])  # fmt: skip
        for i, c in enumerate(clips):
            path = f"{c.split}/{c.label}/{c.key}.mp4" if i < present else None
            db.execute(
                "INSERT INTO clips (release, split, key, youtube_id, time_start, time_end, label, "
                "state, path, bytes, verify, source) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (c.release, c.split, c.key, c.youtube_id, c.time_start, c.time_end, c.label,
                 "present" if path else "missing", path, 3 if path else None,
                 "good" if path else None, "cvdf" if path else None),
            )  # fmt: skip
            if path:
                (root / path).parent.mkdir(parents=True, exist_ok=True)
                (root / path).write_bytes(b"abc")
    db.close()
    return root


def test_root_of_the_previous_schema_opens(tmp_path) -> None:
    clips = [c for c in _clips(9) if c.label]
    root = old_root(tmp_path / "root", clips, present=4)
    # read-only (a finished root on a read-only mount): counted from the rows
    before = root_status(root)
    assert (before.splits[0].annotated, before.splits[0].present) == (6, 4)
    # opened for writing: the counters are added, filled, and kept from then on
    with Manifest(manifest_path(root)) as m:
        assert m.clip_counts() == m.clip_counts(recount=True)
        m.update("k400", "train", clips[5].key, state="present", bytes=3)
        assert m.clip_counts() == m.clip_counts(recount=True)
    after = root_status(root)
    assert (after.splits[0].present, after.splits[0].bytes) == (5, 15)


# --- reruns: cost in folders, not clips -----------------------------------------------------


def _present_root(root: Path, folders: int = 3, per_folder: int = 8) -> list[str]:
    """A root of present rows with one file each, ``per_folder`` clips in each class folder."""
    labels = ["abseiling", "air drumming", "zumba", "yoga"][:folders]
    clips = [
        Clip("k400", "train", f"v{f}{i:09d}", 0, 10, label)
        for f, label in enumerate(labels)
        for i in range(per_folder)
    ]
    with Manifest(manifest_path(root)) as m:
        m.add_clips(clips)
        m.apply(
            ClipUpdate("k400", "train", c.key, {"state": "present", "path": rel, "source": "cvdf"})
            for c in clips
            for rel in [f"train/{c.label}/{c.key}.mp4"]
        )
    for c in clips:
        (root / "train" / str(c.label)).mkdir(parents=True, exist_ok=True)
        (root / "train" / str(c.label) / f"{c.key}.mp4").write_bytes(b"x")
    return [c.key for c in clips]


def _age(root: Path) -> None:
    """Backdate every folder, as if written long before this check (no racy mtimes)."""
    old = time.time() - 3600
    for folder in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        os.utime(folder, (old, old))


def _count_listings(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    calls: Counter[str] = Counter()
    real_names, real_mtime = presence._names, presence._mtime

    def names(folder: str) -> set[str]:
        calls["scandir"] += 1
        return real_names(folder)

    def mtime(folder: str) -> int | None:
        calls["stat"] += 1
        return real_mtime(folder)

    monkeypatch.setattr(presence, "_names", names)
    monkeypatch.setattr(presence, "_mtime", mtime)
    return calls


def test_vanished_clips_are_found_by_listing_only_changed_folders(tmp_path, monkeypatch) -> None:
    root = tmp_path / "root"
    keys = _present_root(root)
    _age(root)
    calls = _count_listings(monkeypatch)
    with Manifest(manifest_path(root)) as m:
        assert mark_vanished(m, "k400", "train") == []  # no record yet: every folder listed once
        assert calls == {"stat": 3, "scandir": 3}
        calls.clear()
        assert mark_vanished(m, "k400", "train") == []  # nothing changed: a stat per folder
        assert calls == {"stat": 3}
        victims = [k for k in keys if k.startswith(("v0", "v2"))][::2][:5]
        victims += [k for k in keys if k.startswith("v2")][-5:]
        for row in m.clips(keys=victims):
            (root / row.path).unlink()
        calls.clear()
        assert sorted(mark_vanished(m, "k400", "train")) == sorted(set(victims))
        assert calls == {"stat": 3, "scandir": 2}  # abseiling and zumba, not air drumming
        assert {r.key for r in m.clips(states=["missing"])} == set(victims)
        assert m.clip_counts() == m.clip_counts(recount=True)
        calls.clear()
        # changed within RACY_NS of their listing: listed once more, then trusted
        assert mark_vanished(m, "k400", "train") == []
        assert calls == {"stat": 3, "scandir": 2}


def test_rows_changed_behind_unchanged_folders_are_checked_again(tmp_path, monkeypatch) -> None:
    """A present row added without a folder change (e.g. verify --fix) is not trusted blindly."""
    root = tmp_path / "root"
    keys = _present_root(root)
    _age(root)
    with Manifest(manifest_path(root)) as m:
        assert mark_vanished(m, "k400", "train") == []
        m.add_clips([Clip("k400", "train", "ghost000000", 0, 10, "abseiling")])
        ghost = "ghost000000_000000_000010"
        m.update("k400", "train", ghost, state="present", path=f"train/abseiling/{ghost}.mp4")
        assert mark_vanished(m, "k400", "train") == [ghost]
        # a whole folder gone
        shutil.rmtree(root / "train" / "zumba")
        assert sorted(mark_vanished(m, "k400", "train")) == [k for k in keys if k[1] == "2"]


def test_a_finished_rerun_reads_no_catalog_and_fetches_nothing(
    tmp_path, mirror_server, monkeypatch
) -> None:
    cfg = DownloadConfig(
        root=tmp_path / "root", release="k700-2020", split="val", mirror=mirror_server.url,
        progress=False,
    )  # fmt: skip
    first = download(cfg)
    assert first.ok and first.placed
    _age(cfg.root)
    before = mirror_server.stats
    calls = _count_listings(monkeypatch)

    def no_catalog(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished rerun read the catalog")

    monkeypatch.setattr(kinetix.catalog.fetch, "read_catalog", no_catalog)
    for _ in range(2):  # the first rerun lists each folder once (placing changed them)
        again = download(cfg)
        assert again.ok and again.planned == 0 and not again.placed
        assert again.selected == first.selected
        assert again.already_present == sum(first.placed.values())
        assert again.failed == first.failed
    folders = {p.parent for p in cfg.root.rglob("*.mp4")}
    assert calls["scandir"] <= len(folders) and calls["stat"] == 2 * len(folders)
    assert mirror_server.stats.total_requests == before.total_requests


def test_a_rerun_after_ten_clips_vanished_fetches_exactly_those(tmp_path, mirror_server) -> None:
    cfg = DownloadConfig(
        root=tmp_path / "root", release="k400", split="val", mirror=mirror_server.url,
        progress=False,
    )  # fmt: skip
    assert download(cfg).ok
    download(cfg)  # records the folder listings
    clips = sorted(cfg.root.rglob("*.mp4"))
    victims = clips[:: max(len(clips) // 10, 1)][:10]
    assert len(victims) == 10 and len({v.parent for v in victims}) > 1
    for victim in victims:
        victim.unlink()
    report = download(cfg)
    assert report.ok and sorted(report.placed_keys) == sorted(v.stem for v in victims)
    assert report.already_present == len(clips) - 10
    assert all(v.is_file() for v in victims)
    assert not download(cfg).placed
    with Manifest(manifest_path(cfg.root), readonly=True) as m:
        assert m.clip_counts() == m.clip_counts(recount=True)


# --- the loader's index: arrays built in SQL, the same as row by row ------------------------


def _index_by_rows(root: Path, split: str, include_unverified: bool) -> list[ClipEntry]:
    """What ClipIndex.load gave when it read one ClipRow at a time (the behaviour to keep)."""
    indexer = LabelIndexer()
    entries = []
    with Manifest(manifest_path(root), readonly=True) as m:
        for row in iter_usable(m, split=split, include_unverified=include_unverified):
            v = row.values
            n, fps, w, h = v.get("num_frames"), v.get("fps"), v.get("width"), v.get("height")
            entries.append(
                ClipEntry(
                    key=row.key,
                    path=root / str(row.path),
                    label=indexer(row.release, row.label, v.get("label_index")),
                    num_frames=n if n is not None and n > 0 else None,
                    fps=fps if fps is not None and fps > 0 else None,
                    width=w or None,
                    height=h or None,
                    fast_trim=v.get("trim") == "fast",
                    lead_seconds=max(-(v.get("start_offset") or 0.0), 0.0),
                )
            )
    return entries


@pytest.mark.parametrize("arrow", [True, False], ids=["arrow", "sql-text"])
@pytest.mark.parametrize("include_unverified", [False, True])
def test_clip_index_equals_the_row_by_row_read(
    tmp_path, monkeypatch, include_unverified, arrow
) -> None:
    """Read into Arrow by ADBC (when installed) or from SQLite's concatenated text: the same."""
    import kinetix.data.index as index_module
    from kinetix.store.usable import arrow_reader_available

    if arrow and not arrow_reader_available():
        pytest.skip("the Arrow reader needs pyarrow and adbc-driver-sqlite")
    monkeypatch.setattr(index_module, "arrow_read_pays", lambda *args: arrow)
    if arrow:  # and no fallback to the text aggregate behind the test's back

        def no_text(*args, **kwargs):
            raise AssertionError("the Arrow read fell back to index_text")

        monkeypatch.setattr(index_module, "index_text", no_text)
    root = tmp_path / "root"
    labels = ["abseiling", "air drumming", "zumba", None, "yoga", "massaging person's head"]
    clips = [Clip("k400", "train", f"v{i:03d}-Ü{i}", i, i + 10, labels[i % 6]) for i in range(60)]
    clips += [Clip("k400", "val", f"w{i:03d}", i, i + 10, "zumba") for i in range(5)]
    registry_index = {"abseiling": 0, "air drumming": 1, "zumba": 399}
    with Manifest(manifest_path(root)) as m:
        m.add_clips(clips, registry_index)  # yoga and the head massage: no stored index
        updates = []
        for i, c in enumerate(clips):
            fields: dict[str, object] = {
                "state": ["present", "present", "present", "missing", "present"][i % 5],
                "path": None if i % 17 == 3 else f"{c.split}/{c.label}/{c.key}.mp4",
                "verify": ["good", None, "good", "bad", "good", "good", None][i % 7],
                "num_frames": None if i % 4 == 0 else 100 + i,
                "fps": [None, 25.0, 30000 / 1001, 0.0, 24000 / 1001][i % 5],
                "width": None if i % 6 == 0 else 340,
                "height": None if i % 6 == 0 else 256 - i,
                "trim": "fast" if i % 3 == 0 else ("exact" if i % 3 == 1 else None),
                "start_offset": -(i / 7) if i % 3 == 0 else None,
            }
            if i == 7:
                fields["path"] = ""
            updates.append(ClipUpdate(c.release, c.split, c.key, fields))
        m.apply(updates)
    index = ClipIndex.load(root, "train", include_unverified=include_unverified)
    expected = _index_by_rows(root, "train", include_unverified)
    assert len(expected) > 20
    assert [index[i] for i in range(len(index))] == expected
    assert index.left_out == count_left_out_by_rows(root, "train", include_unverified)
    labels_seen = {e.label for e in expected}
    assert -1 in labels_seen and {0, 1, 399} <= labels_seen  # unlabelled and stored indices
    assert any(e.fast_trim and e.lead_seconds > 0 for e in expected)


def count_left_out_by_rows(root: Path, split: str, include_unverified: bool) -> Counter[str]:
    """The reasons as counted from every row (the counters and the no-path index must agree)."""
    reasons: Counter[str] = Counter()
    with Manifest(manifest_path(root), readonly=True) as m:
        for row in m.clips(split=split):
            if row.state != "present":
                reasons[row.state] += 1
            elif row.values.get("verify") == "bad":
                reasons["verified bad"] += 1
            elif row.values.get("verify") is None and not include_unverified:
                reasons["not verified"] += 1
            elif not row.path:
                reasons["no path"] += 1
    return reasons
