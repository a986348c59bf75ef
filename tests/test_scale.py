"""Cost grows with what changed: maintained counts, old roots, and reruns that do no work."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from kinetix.catalog.clip import Clip
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import ClipUpdate, Manifest
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
