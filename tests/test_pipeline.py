"""Stages chained on a root that `kinetix download` made from the mirror: verify catches planted
damage, `--refetch` repairs it, and export/load see only good clips."""

from __future__ import annotations

import hashlib

import pytest

from kinetix.cli.main import main
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import Manifest
from kinetix.synthetic.media import corrupt_video


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("KINETIX_CACHE", str(tmp_path.parent / f"{tmp_path.name}-cache"))


def test_verify_quarantines_planted_damage_and_refetch_repairs_it(
    tmp_path, mirror, mirror_server, capsys
):
    root = tmp_path / "k400"
    argv = ["download", "k400", "--split", "val", "--root", str(root)]
    assert main([*argv, "--mirror", mirror_server.url, "--no-progress"]) == 0
    with Manifest(manifest_path(root), readonly=True) as m:
        present = sorted(m.clips(states=["present"]), key=lambda r: r.key)
    damaged = {present[0].key: "truncate", present[1].key: "empty", present[2].key: "html"}
    for row in present[:3]:
        corrupt_video(root / row.path, damaged[row.key])

    assert main(["verify", str(root)]) == 0
    out = capsys.readouterr().out
    assert "3 bad" in out
    with Manifest(manifest_path(root), readonly=True) as m:
        bad = {r.key: r for r in m.clips(states=["quarantined"])}
        assert set(bad) == set(damaged)
        assert all(r.verify == "bad" and r.error_code for r in bad.values())
    assert not any((root / row.path).exists() for row in present[:3])  # moved aside

    before = mirror_server.stats.total_requests
    assert main(["verify", str(root), "--refetch"]) == 0
    assert mirror_server.stats.total_requests > before
    # the refetched clips were checked as they landed: good, with no second verify
    with Manifest(manifest_path(root), readonly=True) as m:
        rows = {r.key: r for r in m.clips()}
    expected = mirror.split("k400", "val").clips
    for key in damaged:
        row = rows[key]
        assert row.state == "present" and row.verify == "good", (key, row.values)
        data = (root / row.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == expected[key].sha256

    # Export lists only good clips; the loader reads them.
    out_dir = tmp_path / "lists"
    argv = ["export", str(root), "--format", "slowfast", "--out", str(out_dir)]
    assert main(argv) == 2  # raw layout: class folders with spaces would break SlowFast's lists
    assert "--link-dir" in capsys.readouterr().err
    assert main([*argv, "--link-dir", str(tmp_path / "links")]) == 0
    listed = (out_dir / "val.csv").read_text().splitlines()
    assert len(listed) == sum(r.state == "present" for r in rows.values())
