"""A resumed download follows the ``--mirror`` of the rerun, whatever the cached path list says."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from kinetix.catalog.releases import CVDF_BASE, get_release
from kinetix.config import DownloadConfig, TransferConfig
from kinetix.download import download
from kinetix.sources.cvdf import read_path_list, shard_id
from kinetix.store.layout import LabelStyle, clip_relpath
from kinetix.synthetic.server import MirrorServer


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KINETIX_CACHE", str(tmp_path.parent / f"{tmp_path.name}-cache"))


def test_path_list_lines_are_keyed_by_their_cvdf_location() -> None:
    where = "400/val/k400_val_path.txt"
    text = (
        f"{CVDF_BASE}400/val/part_0.tar.gz\n"
        "http://old-mirror.internal:8080/kinetics/400/val/part_1.tar.gz\n"
        "http://10.0.0.7/400/val/part%202.tar.gz\n"
    )
    pairs = read_path_list(text, "http://new:9000/k/", where)
    assert [name for _, name in pairs] == [
        "400/val/part_0.tar.gz",
        "400/val/part_1.tar.gz",
        "400/val/part 2.tar.gz",
    ]
    assert all(url.startswith("http://new:9000/k/400/val/") for url, _ in pairs)
    assert shard_id(pairs[1][1]) == f"{CVDF_BASE}400/val/part_1.tar.gz"


def test_a_different_mirror_on_resume_is_used_for_every_shard(tmp_path, mirror) -> None:
    # A mirror whose path list names itself (an internal copy that rewrote its lists). The first
    # run stops part way; the rerun goes to another mirror while the first one is gone.
    # It used to keep asking the dead host: the cached list held its absolute URLs.
    copy = tmp_path / "mirror"
    shutil.copytree(mirror.root, copy)
    release = get_release("k400")
    list_path = copy / release.path_list_path("val")
    lines = list_path.read_text().splitlines()
    root = tmp_path / "root"
    split = mirror.split("k400", "val")
    with MirrorServer(copy) as old:
        list_path.write_text(
            "".join(line.replace(CVDF_BASE, old.url) + "\n" for line in lines), encoding="utf-8"
        )
        old.add_fault(split.shards[1], "status", times=None, status=503)
        cfg = DownloadConfig(
            root=root,
            release="k400",
            split="val",
            mirror=old.url,
            progress=False,
            transfer=TransferConfig(retries=0),  # the faulty shard fails at once
        )
        first = download(cfg)
    assert not first.ok
    with MirrorServer(copy) as new:
        report = download(replace(cfg, mirror=new.url))
        shards = {p for p in new.stats.requests if p.endswith((".tar.gz", ".tgz"))}
    assert report.ok, report.errors
    assert split.shards[1] in shards
    for clip in split.clips.values():
        if clip.shard is None and clip.replacement is None:
            continue
        path = root / clip_relpath("val", clip.clip.label, clip.key, LabelStyle.RAW)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == clip.sha256
