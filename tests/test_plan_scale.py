"""Planning a fresh download set-wise plans exactly what reading every row back planned."""

from __future__ import annotations

from dataclasses import asdict

import pytest

import kinetix.download as download_job
import kinetix.sources.cvdf_source as cvdf_source
from kinetix.catalog.clip import Clip
from kinetix.config import DownloadConfig
from kinetix.download import download, work_rows
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import Manifest


class FirstTask(Exception):
    """Raised where the first shard task would start, carrying the planned tasks."""


def planned(cfg: DownloadConfig, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    def first_task(config, manifest, tasks, *args, **kwargs):
        raise FirstTask([asdict(t) | {"wanted": list(t.wanted.items())} for t in tasks])

    monkeypatch.setattr(cvdf_source, "run_shard_tasks", first_task)
    with pytest.raises(FirstTask) as stop:
        download(cfg)
    return stop.value.args[0]


@pytest.mark.parametrize("release", ["k700-2020", "k400"])  # class shards; class-mixed shards
def test_a_fresh_plan_equals_the_plan_from_rows_read_back(
    tmp_path, mirror_server, monkeypatch, release
) -> None:
    def config(name: str) -> DownloadConfig:
        return DownloadConfig(
            root=tmp_path / name, release=release, split="val", mirror=mirror_server.url,
            progress=False,
        )  # fmt: skip

    fresh = planned(config("fresh"), monkeypatch)
    monkeypatch.setattr(download_job, "registered_rows", lambda clips, keys: None)
    read_back = planned(config("read-back"), monkeypatch)
    for tasks in (fresh, read_back):
        for task in tasks:
            for field in ("root", "part_path", "archive_path"):
                task[field] = str(task[field]).replace(str(tmp_path), "")
            task["root"] = task["root"].replace("/fresh", "/read-back")
            task["part_path"] = task["part_path"].replace("/fresh/", "/read-back/")
    assert fresh == read_back and fresh
    assert sum(len(t["wanted"]) for t in fresh) >= len(fresh)
    # a fresh root's rows were registered in key order: reading them back gives the same rows
    with Manifest(manifest_path(tmp_path / "fresh"), readonly=True) as m:
        rows = work_rows(m, release, "val", ["missing"])
        cur = m.execute(
            "SELECT release, split, key, youtube_id, time_start, time_end, label, state, "
            "error_code, source, path FROM clips WHERE release=? AND split=? ORDER BY key",
            (release, "val"),
        )
        assert [tuple(r) for r in rows] == [tuple(r) for r in cur]
        assert m.clip_counts() == m.clip_counts(recount=True)


def test_add_clips_in_key_order_keeps_the_first_of_a_key(tmp_path) -> None:
    clips = [
        Clip("k400", "train", f"v{i % 7000:010d}", 0, 10, f"label {i % 3}") for i in range(9000)
    ]
    clips += [
        Clip("k400", "val", "dup", 0, 10, "first"),
        Clip("k400", "val", "dup", 0, 10, "second"),
    ]
    with Manifest(tmp_path / "m.sqlite") as m:
        assert m.add_clips(clips, {"label 0": 0, "label 1": 1}) == 7001
        assert m.add_clips(clips[:5]) == 0  # known rows are kept as they are
        cur = m.execute("SELECT key, label, label_index FROM clips WHERE split='train'")
        got = {key: (label, index) for key, label, index in cur}
        first = {c.key: c.label for c in reversed(clips[:9000])}
        assert got == {
            k: (label, {"label 0": 0, "label 1": 1}.get(label)) for k, label in first.items()
        }
        keys = [r[0] for r in m.execute("SELECT key FROM clips WHERE split='train' ORDER BY rowid")]
        assert keys == sorted(keys)
        assert m.execute("SELECT label FROM clips WHERE split='val'").fetchall()[0][0] == "first"
        assert m.clip_counts() == m.clip_counts(recount=True)


def test_a_bulk_of_new_rows_counts_what_a_recount_counts(tmp_path) -> None:
    labels = ["abseiling", None, "air drumming"]
    clips = [
        Clip("k400", ("train", "test")[i % 2], f"w{i:010d}", i, i + 10, labels[i % 3], i % 2 == 0)
        for i in range(6000)
    ]
    with Manifest(tmp_path / "m.sqlite") as m:
        m.add_clips(clips[:10])  # counted by the trigger
        assert m.add_clips(clips[10:], {"abseiling": 0}) == 5990  # counted from the columns
        assert m.clip_counts() == m.clip_counts(recount=True)
        assert m.split_size("k400", "test") == 3000
        cc = dict(m.execute("SELECT key, is_cc FROM clips").fetchall())
        assert cc[clips[0].key] == 1 and cc[clips[1].key] == 0
