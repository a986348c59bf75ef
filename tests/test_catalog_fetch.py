"""Fetching annotations from a local mirror: cache layout, sha256 sidecar, offline reuse."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kinetix.catalog.fetch import (
    cache_dir,
    fetch_annotations,
    load_catalog,
    locate_annotations,
    read_sidecar,
)
from kinetix.catalog.releases import CVDF_BASE, DEEPMIND_BASE
from kinetix.config import Selection, TransferConfig
from kinetix.errors import AnnotationError, ArchiveError, ConfigError, HTTPStatusError
from kinetix.synthetic.server import MirrorServer

DATA = Path(__file__).parent / "data" / "annotations"
FAST = TransferConfig(retries=0, timeout=10)


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def mirror_root(tmp_path: Path) -> Path:
    """A mirror in CVDF layout, with DeepMind's K700 archive under deepmind/."""
    root = tmp_path / "mirror"
    (root / "400" / "annotations").mkdir(parents=True)
    (root / "600" / "annotations").mkdir(parents=True)
    shutil.copy(DATA / "k400_val.csv", root / "400" / "annotations" / "val.csv")
    shutil.copy(DATA / "k400_test_unlabelled.csv", root / "400" / "annotations" / "test.csv")
    shutil.copy(DATA / "k600_val_listing.txt", root / "600" / "annotations" / "val.txt")
    (root / "deepmind").mkdir()
    with tarfile.open(root / "deepmind" / "kinetics700.tar.gz", "w:gz") as tar:
        add_member(tar, "kinetics700/validate.csv", (DATA / "k700_val.csv").read_bytes())
        add_member(
            tar, "kinetics700/test.csv", (DATA / "k700_2020_test_ava_videos.csv").read_bytes()
        )
        add_member(tar, "kinetics700/readme.txt", b"DeepMind Kinetics-700\n")
    return root


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KINETIX_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def server(mirror_root: Path) -> Iterator[MirrorServer]:
    with MirrorServer(mirror_root) as running:
        yield running


def test_cache_dir_default_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KINETIX_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "kinetix"
    monkeypatch.setenv("KINETIX_CACHE", str(tmp_path / "elsewhere"))
    assert cache_dir() == tmp_path / "elsewhere"


def test_official_and_mirror_locations() -> None:
    assert locate_annotations("k400", "validate").url == CVDF_BASE + "400/annotations/val.csv"
    holdout = locate_annotations("k600", "holdout_test", mirror="http://m.example/k/")
    assert holdout.url == "http://m.example/k/600/annotations/kinetics600_holdout_test.csv"
    k700 = locate_annotations("k700", "val")
    assert (k700.url, k700.archive_split) == (DEEPMIND_BASE + "kinetics700.tar.gz", "val")
    assert locate_annotations("k700", "val", mirror="http://m.example").url == (
        "http://m.example/deepmind/kinetics700.tar.gz"
    )
    with pytest.raises(ConfigError, match="k400 has no split 'holdout_test'"):
        locate_annotations("k400", "holdout_test")


def test_fetch_caches_with_a_sidecar(server: MirrorServer, cache: Path, mirror_root: Path) -> None:
    path = fetch_annotations("k400", "val", mirror=server.url, config=FAST)
    assert path == cache / f"127.0.0.1_{server.port}" / "400" / "annotations" / "val.csv"
    assert path.read_bytes() == (mirror_root / "400" / "annotations" / "val.csv").read_bytes()
    record = read_sidecar(path)
    assert record is not None
    assert record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record.size == path.stat().st_size
    assert record.url == server.url + "400/annotations/val.csv"
    assert record.etag and record.member is None
    assert json.loads(Path(f"{path}.meta.json").read_text())["sha256"] == record.sha256


def test_second_fetch_and_offline_do_no_network(server: MirrorServer, cache: Path) -> None:
    first = fetch_annotations("k400", "val", mirror=server.url, config=FAST)
    requests = server.stats.total_requests
    assert fetch_annotations("k400", "val", mirror=server.url, config=FAST) == first
    assert server.stats.total_requests == requests
    url = server.url
    server.stop()
    assert fetch_annotations("k400", "val", mirror=url, offline=True) == first


def test_offline_without_cache_says_what_to_run(cache: Path) -> None:
    with pytest.raises(ConfigError) as info:
        fetch_annotations("k400", "val", offline=True)
    message = str(info.value)
    assert "no cached annotations for k400 val" in message
    assert "run 'kinetix annotations fetch k400 --split val' while online" in message


def test_damaged_cache_is_fetched_again(server: MirrorServer, cache: Path) -> None:
    path = fetch_annotations("k400", "test", mirror=server.url, config=FAST)
    good = path.read_bytes()
    path.write_bytes(good.replace(b"test", b"tset", 1))
    with pytest.raises(ConfigError, match="--offline: no cached annotations"):
        fetch_annotations("k400", "test", mirror=server.url, offline=True)
    assert fetch_annotations("k400", "test", mirror=server.url, config=FAST).read_bytes() == good


def test_k700_comes_from_the_deepmind_archive(server: MirrorServer, cache: Path) -> None:
    val = fetch_annotations("k700", "val", mirror=server.url, config=FAST)
    assert val.name == "validate.csv" and val.parent.name == "kinetics700"
    assert val.read_bytes() == (DATA / "k700_val.csv").read_bytes()
    record = read_sidecar(val)
    assert record is not None and record.member == "kinetics700/validate.csv"
    assert record.url == server.url + "deepmind/kinetics700.tar.gz"
    assert record.sha256 == hashlib.sha256(val.read_bytes()).hexdigest()
    test = fetch_annotations("k700", "test", mirror=server.url, config=FAST)
    assert test.name == "test.csv"
    # the archive was downloaded once for both splits
    assert server.stats.requests["deepmind/kinetics700.tar.gz"] == 1
    assert fetch_annotations("k700", "val", mirror=server.url, offline=True) == val
    with pytest.raises(ArchiveError, match="expected one CSV for split 'train', found none"):
        fetch_annotations("k700", "train", mirror=server.url, config=FAST)


def test_missing_file_is_an_http_error(server: MirrorServer, cache: Path) -> None:
    with pytest.raises(HTTPStatusError, match="HTTP 404"):
        fetch_annotations("k600", "holdout_test", mirror=server.url, config=FAST)
    assert not list(cache.rglob("*.csv"))


def test_load_catalog_through_the_mirror(server: MirrorServer, cache: Path) -> None:
    catalog = load_catalog("kinetics-600", "val", mirror=server.url)
    assert (catalog.release, catalog.split, len(catalog.registry)) == ("k600", "val", 600)
    assert {c.label for c in catalog.clips} == {"tying knot (not on a tie)", "abseiling"}
    chosen = catalog.select(Selection(classes=("tying_knot_not_on_a_tie",), max_per_class=2))
    assert len(chosen) == 2 and catalog.stats().rows == len(catalog.clips)
    local = load_catalog("k600", "val", annotations=DATA / "k600_val.csv", offline=True)
    assert local.path == DATA / "k600_val.csv" and len(local.clips) == 15


def test_load_catalog_rejects_a_file_of_another_release() -> None:
    with pytest.raises(
        AnnotationError,
        match=r"k600_val.csv:12: labels that are not k400 classes: 'cracking knuckles' \(1 rows;",
    ):
        load_catalog("k400", "val", annotations=DATA / "k600_val.csv")
