"""Planning a fresh download set-wise plans exactly what reading every row back planned."""

from __future__ import annotations

import gc
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
    assert gc.get_freeze_count() == 0  # the rows it froze went back to the collector
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


def _plan_row_by_row(rows, shards, listed, done, labels, layout):
    """plan_shards' grouping as one pass over the rows (what the column-wise one must equal)."""
    from collections import defaultdict

    from kinetix.sources.cvdf import NO_SHARD, shard_for_label, shard_id
    from kinetix.store.layout import clip_relpath

    shards = [(shard_id(name), name) for _, name in shards]
    label_shard = shard_for_label(shards, labels)
    names = dict(shards)
    everywhere = frozenset(names)
    anywhere: dict[str, str] = {}
    single: dict[str, dict[str, str]] = defaultdict(dict)
    candidates, mixed = {}, False
    for row in rows:
        url = label_shard(row.label)
        rel = clip_relpath(row.split, row.label, row.key, layout)
        if listed:
            url = listed.get(row.key) or url
        if url == NO_SHARD:
            candidates[row.key] = frozenset()
        elif url is not None and url in names:
            candidates[row.key] = frozenset((url,))
            single[url][row.key] = rel
        else:
            candidates[row.key] = everywhere
            mixed = True
            anywhere[row.key] = rel
    unread = {url for url in names if url not in done}
    wanted = {}
    for url in names:
        mine = single.get(url, {})
        if url in unread and anywhere:
            wanted[url] = {**anywhere, **mine} if mine else anywhere
        elif mine and (url in unread or any(listed.get(k) == url for k in mine)):
            wanted[url] = mine
    return candidates, mixed, wanted


@pytest.mark.parametrize("kind", ["numbered", "mixed"])
@pytest.mark.parametrize("indexed", [False, True])
def test_the_column_wise_shard_plan_equals_one_pass_over_the_rows(tmp_path, kind, indexed) -> None:
    import random

    from kinetix.catalog.releases import get_release
    from kinetix.config import TransferConfig
    from kinetix.sources.cvdf import plan_shards, shard_id
    from kinetix.store.layout import LabelStyle
    from kinetix.store.planning import WorkRow

    rng = random.Random(7)
    labels = [f"class {i}" for i in range(6)]
    if kind == "numbered":  # K700-2020: shards numbered in label order; class 5 has none
        names = [f"700_2020/train/k700_train_{i:03d}.tar.gz" for i in range(1, 6)]
        shards = [(f"http://m/{name}", name) for name in names]
    else:  # K400: class-mixed parts
        shards = [(f"http://m/part_{i}.tar.gz", f"400/train/part_{i}.tar.gz") for i in range(4)]
    rows = [
        WorkRow("k700-2020", "train", f"v{i:010d}_000000_000010", f"v{i:010d}", 0, 10,
                rng.choice([*labels, None]), "missing", None, None, None)
        for i in rng.sample(range(10_000), 3000)
    ]  # fmt: skip
    rows.sort(key=lambda r: r.key)
    ids = [shard_id(name) for _, name in shards]
    listed, done = {}, set()
    if indexed:  # a shard read in full, clips it holds, and an index entry for an unlisted URL
        done = {ids[1]}
        listed = {r.key: ids[1] for r in rows[::7]}
        listed.update({r.key: shard_id("400/train/gone.tar.gz") for r in rows[3::11]})
    plan = plan_shards(
        rows, shards, listed=listed, done=done, labels=labels, root=tmp_path,
        layout=LabelStyle.UNDERSCORE, partial=tmp_path / "p", transfer=TransferConfig(),
        release=get_release("k700-2020"), split="train",
    )  # fmt: skip
    candidates, mixed, wanted = _plan_row_by_row(
        rows, shards, listed, done, labels, LabelStyle.UNDERSCORE
    )
    assert list(plan.candidates.items()) == list(candidates.items())
    assert plan.mixed is mixed
    got = {t.shard_id: list(t.wanted.items()) for t in plan.tasks}
    assert got == {url: list(w.items()) for url, w in wanted.items()}
    assert [t.name for t in plan.tasks] == sorted(t.name for t in plan.tasks)


def test_rows_kept_from_the_collector_go_back_to_it_after() -> None:
    from kinetix.bulk import paused_gc, rows_kept

    assert gc.get_freeze_count() == 0
    with rows_kept():
        with paused_gc(keep=True):
            rows = [(i, [i]) for i in range(1000)]
        assert gc.isenabled() and gc.get_freeze_count() >= len(rows)
        with rows_kept(), paused_gc(keep=True):  # nested: the outer scope unfreezes
            more = [[i] for i in range(10)]
        assert gc.get_freeze_count() >= len(rows) + len(more)
    assert gc.get_freeze_count() == 0
    with paused_gc(keep=True):  # outside a scope: nothing frozen
        rows = [(i, [i]) for i in range(1000)]
    assert gc.get_freeze_count() == 0 and gc.isenabled()


def test_a_bulk_registration_reads_the_same_before_and_after_its_deferred_checkpoint(
    tmp_path,
) -> None:
    from kinetix.store.manifest import ClipUpdate

    path = tmp_path / "manifest.sqlite"
    clips = [Clip("k400", "train", f"x{i:010d}", 0, 10, "abseiling") for i in range(6000)]
    with Manifest(path) as m:
        assert m.add_clips(clips) == 6000
        m.set_meta("after", "registration")  # a commit that does not checkpoint
        with Manifest(path, readonly=True) as reader:  # sees the rows through the WAL
            assert reader.split_size("k400", "train") == 6000
            assert reader.get_meta("after") == "registration"
        m.apply([ClipUpdate("k400", "train", clips[0].key, {"state": "present"})])
        assert m.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000  # default again
    assert not path.with_name(path.name + "-wal").exists()
    with Manifest(path, readonly=True) as m:
        assert m.split_size("k400", "train") == 6000
        assert m.split_size("k400", "train", "present") == 1
        assert m.clip_counts() == m.clip_counts(recount=True)
