"""A fresh whole-split download starts its first shards while it reads and plans its rows."""

from __future__ import annotations

import threading

import pytest
from _faults import expected_tree, mirror_download_config, tree

import kinetix.download as download_mod
from kinetix.config import DownloadConfig, Selection
from kinetix.download import download
from kinetix.errors import DiskSpaceError
from kinetix.sources.cvdf import part_path_of
from kinetix.store.layout import partial_dir
from kinetix.transfer import prefetch


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("KINETIX_CACHE", str(tmp_path.parent / f"{tmp_path.name}-cache"))


def config(root, server, release="k600", **kw) -> DownloadConfig:
    return mirror_download_config(root, server, release, **kw)


def first_parts(mirror, root, release: str, n: int) -> set[str]:
    names = sorted(mirror.split(release, "val").shards)
    return {str(part_path_of(partial_dir(root), name)) for name in names[:n]}


class Registering:
    """``register_selection`` wrapped: what had started ahead, and bytes, when it ran."""

    def __init__(self, monkeypatch, *, then=None):
        self.started: set[str] = set()
        self.then = then
        real = download_mod.register_selection

        def wrapped(*args, **kwargs):
            with prefetch._lock:
                self.started = set(prefetch._started)
                running = list(prefetch._started.values())
            if self.then is not None:
                self.then(running)
            return real(*args, **kwargs)

        monkeypatch.setattr(download_mod, "register_selection", wrapped)


@pytest.mark.parametrize("release", ["k400", "k600", "k700-2020"])
def test_the_first_shards_start_before_the_rows_are_registered_and_are_fetched_once(
    tmp_path, mirror, mirror_server, monkeypatch, release
):
    seen = Registering(monkeypatch)
    report = download(config(tmp_path, mirror_server, release, parallel=2))
    assert report.ok, report.errors
    assert seen.started == first_parts(mirror, tmp_path, release, 2)
    assert tree(tmp_path) == expected_tree(mirror, release, "val")
    # taken over by their tasks, not fetched again: every shard's bytes crossed the link once
    sizes = {s: (mirror.root / s).stat().st_size for s in mirror.split(release, "val").shards}
    stats = mirror_server.stats
    for shard, size in sizes.items():
        assert stats.bytes_sent[shard] == size, shard
    assert not prefetch._started
    assert not list(partial_dir(tmp_path).glob("*.part"))


def test_no_head_start_for_a_selection_or_a_split_already_registered(
    tmp_path, mirror_server, monkeypatch
):
    seen = Registering(monkeypatch)
    assert download(config(tmp_path, mirror_server, selection=Selection(max_per_class=1))).ok
    assert seen.started == set()
    # the whole split now: its rows are partly known, so the plan decides what to fetch
    assert download(config(tmp_path, mirror_server)).ok
    assert seen.started == set()


def test_no_head_start_when_the_first_shards_do_not_fit(tmp_path, mirror_server, monkeypatch):
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(
        "kinetix.sources.cvdf_source.shutil.disk_usage", lambda p: real(p)._replace(free=1000)
    )
    seen = Registering(monkeypatch)
    with pytest.raises(DiskSpaceError, match="free but this run needs"):
        download(config(tmp_path, mirror_server))
    assert seen.started == set()
    assert mirror_server.stats.total_bytes < 100_000  # annotations and path list only


def test_a_run_stopped_while_it_plans_keeps_the_started_shards_and_a_rerun_finishes(
    tmp_path, mirror, mirror_server, monkeypatch
):
    # a slow link, so the shards are part way when the run stops
    mirror_server.per_connection_bps = 200_000
    flowing = threading.Event()

    def stop_when_bytes_flow(running):
        for _ in range(200):
            if any(d.bytes_transferred for d in running):
                flowing.set()
                break
            threading.Event().wait(0.02)
        raise KeyboardInterrupt

    Registering(monkeypatch, then=stop_when_bytes_flow)
    with pytest.raises(KeyboardInterrupt):
        download(config(tmp_path, mirror_server, parallel=2))
    assert flowing.is_set()
    assert not prefetch._started  # stopped, none left running
    parts = first_parts(mirror, tmp_path, "k600", 2)
    assert {str(p) for p in partial_dir(tmp_path).glob("*.part")} == parts

    monkeypatch.undo()
    monkeypatch.setenv("KINETIX_CACHE", str(tmp_path.parent / f"{tmp_path.name}-cache"))
    mirror_server.per_connection_bps = None
    report = download(config(tmp_path, mirror_server, parallel=2))
    assert report.ok, report.errors
    assert tree(tmp_path) == expected_tree(mirror, "k600", "val")


def test_a_head_start_that_cannot_start_leaves_the_run_to_its_tasks(
    tmp_path, mirror, mirror_server, monkeypatch
):
    class Refused(prefetch.ShardDownload):
        def start(self):
            raise PermissionError(13, "Permission denied", str(self.part_path))

    monkeypatch.setattr(prefetch, "ShardDownload", Refused)
    seen = Registering(monkeypatch)
    report = download(config(tmp_path, mirror_server, parallel=2))
    assert report.ok, report.errors
    assert seen.started == set()
    assert tree(tmp_path) == expected_tree(mirror, "k600", "val")
