"""`kinetix download countix|ava-kinetics` on the synthetic mirror: the clips the rows need, every
row's state in the manifest, reruns, --retry-failed, --source auto, status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import pytest

from kinetix.catalog.clip import Clip
from kinetix.catalog.downstream import read_downstream
from kinetix.cli.main import main
from kinetix.store.downstream import DownstreamInfo, downstream_info, downstream_rows
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import Manifest
from kinetix.synthetic.mirror import MirrorIndex, MirrorSpec, build_mirror
from kinetix.synthetic.server import MirrorServer


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KINETIX_CACHE", str(tmp_path.parent / f"{tmp_path.name}-cache"))


@pytest.fixture(scope="module")
def gappy_mirror(tmp_path_factory: pytest.TempPathFactory, shared_kinetics: Path) -> MirrorIndex:
    """K700-2020 val where one Countix row's clip is in a shard and one's is in none, but has a
    full-length YouTube source video."""
    spec = MirrorSpec(
        releases={"k700-2020": ("val",)},
        classes=1,
        clips_per_class=1,
        missing=0,
        downstream_clips=1,
        downstream_missing=1,
        source_videos=1,
        source_releases=("k700-2020",),
        data_dir=shared_kinetics,
    )
    return build_mirror(tmp_path_factory.mktemp("gappy-downstream"), spec)


class Downstream(NamedTuple):
    mirror: MirrorIndex  # conftest's downstream_mirror: K700-2020 val/test, 2 rows per set
    server: MirrorServer
    shared: Path  # the real metadata folder


@pytest.fixture
def ds(
    downstream_mirror: MirrorIndex, downstream_server: MirrorServer, shared_kinetics: Path
) -> Downstream:
    return Downstream(downstream_mirror, downstream_server, shared_kinetics)


def argv(release: str, split: str, root: Path, server: MirrorServer, *extra: str) -> list[str]:
    return [
        "download", release, "--split", split, "--root", str(root), "--mirror", server.url,
        "--no-progress", *extra,
    ]  # fmt: skip


def shard_requests(server: MirrorServer) -> dict[str, int]:
    return {
        p: n
        for p, n in server.stats.requests.items()
        if p.endswith(".tar.gz") and "/annotations/" not in p
    }


def rows_of(root: Path, split: str | None = None) -> list:
    with Manifest(manifest_path(root), readonly=True) as m:
        return list(downstream_rows(m, split))


def test_countix_val_fetches_exactly_the_clips_its_rows_need(
    tmp_path: Path, ds: Downstream, capsys: pytest.CaptureFixture[str]
) -> None:
    downstream_mirror, downstream_server, shared_kinetics = ds
    wanted = downstream_mirror.downstream["countix"]["clips"]["val"]
    split = downstream_mirror.split("k700-2020", "val")
    assert len(wanted) == 2 and all(split.clips[k].in_shard for k in wanted)
    assert main(argv("countix", "val", tmp_path, downstream_server)) == 0
    out = capsys.readouterr().out
    assert "k700-2020 val: 2 selected, 0 already present, 2 fetched (cvdf 2)" in out
    # only the class shards holding the two clips: not those of the other clips of the split
    shards = {split.clips[k].shard for k in wanted}
    assert {p for p in shard_requests(downstream_server)} == shards
    assert len(shards) < len(split.shards)

    source = read_downstream(shared_kinetics / "countix/countix_val.csv", "countix", "val")
    rows = rows_of(tmp_path)
    assert len(rows) == len(source.rows) + len(source.rejected) == 1434
    by_line = {r.line: r for r in rows}
    present = [r for r in rows if r.present]
    assert {r.key for r in present} == set(wanted)
    for row in present:
        clip = split.clips[row.key].clip
        assert (tmp_path / row.path).is_file()
        assert (row.youtube_id, row.time_start, row.fps) == (clip.youtube_id, clip.time_start, 10)
        line = next(s for s in source.rows if s.line == row.line)
        assert (line.youtube_id, line.time_start, line.time_end) == (
            clip.youtube_id, clip.time_start, clip.time_end,
        )  # fmt: skip
    # the one bad row is recorded, with its reason, and every other row has no K700-2020 clip
    # in this mirror's (cut-down) annotation file
    assert (by_line[1193].state, by_line[1193].reason) == ("rejected", "span_outside_clip")
    assert by_line[1193].youtube_id == "8-T1iL-6zAI"
    others = [r for r in rows if not r.present and r.line != 1193]
    assert {(r.state, r.reason) for r in others} == {("unresolved", "no_clip")}
    assert "countix val: 1434 annotation rows, 2 with their clip present; not present: " in out
    assert f"no_clip {len(others)}, rejected:span_outside_clip 1" in out

    with Manifest(manifest_path(tmp_path), readonly=True) as m:
        assert downstream_info(m) == DownstreamInfo("countix", ("val",))
        assert (m.get_meta("release"), m.get_meta("kind")) == ("k700-2020", "videos")
    copy = tmp_path / ".kinetix/downstream/countix_val.csv"
    assert copy.read_bytes() == (shared_kinetics / "countix/countix_val.csv").read_bytes()

    # the rerun fetches nothing, and records nothing new
    before = dict(downstream_server.stats.requests)
    assert main(argv("countix", "val", tmp_path, downstream_server)) == 0
    assert "2 selected, 2 already present, 0 fetched" in capsys.readouterr().out
    after = downstream_server.stats.requests
    assert {p: n for p, n in after.items() if n != before.get(p)} == {}
    assert rows_of(tmp_path) == rows

    assert main(["status", str(tmp_path)]) == 0
    status = capsys.readouterr().out
    assert "k700-2020 val: 2 annotated, 2 present (100.0%)" in status
    assert "countix val: 1434 annotation rows, 2 with their clip present (0.1%)" in status
    assert f"not present: no_clip {len(others)}, rejected:span_outside_clip 1" in status
    assert main(["verify", str(tmp_path)]) == 0


def test_ava_kinetics_rows_share_the_clip_of_their_keyframe(
    tmp_path: Path, ds: Downstream, capsys: pytest.CaptureFixture[str]
) -> None:
    downstream_mirror, downstream_server, _ = ds
    # val: generated rows of 7 columns, several box/action rows per keyframe
    wanted = downstream_mirror.downstream["ava-kinetics"]["clips"]["val"]
    assert main(argv("ava-kinetics", "val", tmp_path, downstream_server)) == 0
    rows = rows_of(tmp_path, "val")
    present = [r for r in rows if r.present]
    assert {r.key for r in present} == set(wanted)
    assert len(present) > len(wanted)  # a keyframe has a row per box and action
    split = downstream_mirror.split("k700-2020", "val")
    ava = read_downstream(
        tmp_path / ".kinetix/downstream/kinetics_val_v1.0.csv", "ava-kinetics", "val"
    )
    by_line = {r.line: r for r in ava.rows}
    for row in present:
        clip = split.clips[row.key].clip
        assert clip.time_start <= by_line[row.line].timestamp < clip.time_end
    # test: the class-mixed test shards, the real keyframe file
    capsys.readouterr()
    assert main(argv("ava-kinetics", "test", tmp_path, downstream_server)) == 0
    test_rows = rows_of(tmp_path, "test")
    assert len(test_rows) == 64304
    test_wanted = downstream_mirror.downstream["ava-kinetics"]["clips"]["test"]
    assert set(test_wanted) <= {r.key for r in test_rows if r.present}
    # AVA-Kinetics test is made from K700 test clips: the mirror's other test clips have
    # keyframes too; each row's clip is present if a shard holds it, else failed with the reason
    test_split = downstream_mirror.split("k700-2020", "test")
    for row in (r for r in test_rows if r.key):
        expected = (
            ("present", None) if test_split.clips[row.key].in_shard else ("failed", "not_in_shard")
        )
        assert (row.state, row.reason) == expected
    assert "failed:not_in_shard" in capsys.readouterr().out
    assert {r.reason for r in test_rows if r.state == "unresolved"} <= {"no_video", "outside_clips"}
    with Manifest(manifest_path(tmp_path), readonly=True) as m:
        assert downstream_info(m) == DownstreamInfo("ava-kinetics", ("val", "test"))
    # another annotation set is refused in the same root, and nothing is recorded for it
    assert main(argv("countix", "val", tmp_path, downstream_server)) == 2
    assert (
        "holds ava-kinetics (val, test), not countix; use another --root" in capsys.readouterr().err
    )
    assert {r.release for r in rows_of(tmp_path)} == {"ava-kinetics"}


def test_a_row_whose_clip_cvdf_lacks_is_failed_then_retried_then_taken_from_youtube(
    tmp_path: Path, gappy_mirror: MirrorIndex, capsys: pytest.CaptureFixture[str]
) -> None:
    info = gappy_mirror.downstream["countix"]
    (in_shard,), (gap,) = info["clips"]["val"], info["missing"]["val"]
    split = gappy_mirror.split("k700-2020", "val")
    assert split.clips[gap].shard is None and split.clips[gap].source_video
    with MirrorServer(gappy_mirror.root) as server:
        youtube = (
            "--youtube-url-template",
            server.url + "youtube/{youtube_id}.mp4",
            "--rate",
            "50",
        )
        assert main(argv("countix", "val", tmp_path, server)) == 0
        states = {r.key: (r.state, r.reason) for r in rows_of(tmp_path) if r.key}
        assert states == {in_shard: ("present", None), gap: ("failed", "not_in_shard")}
        assert "not present: no_clip" in capsys.readouterr().out
        assert main(["status", str(tmp_path)]) == 0
        assert "failed:not_in_shard 1" in capsys.readouterr().out

        # a plain rerun leaves the failure alone; --retry-failed asks CVDF again (the shards
        # it read are known to lack the clip: no transfer) and it stays failed
        before = dict(server.stats.requests)
        assert main(argv("countix", "val", tmp_path, server)) == 0
        assert main(argv("countix", "val", tmp_path, server, "--retry-failed")) == 0
        assert shard_requests(server) == {
            p: n for p, n in before.items() if p in shard_requests(server)
        }
        with Manifest(manifest_path(tmp_path), readonly=True) as m:
            row = m.get("k700-2020", "val", gap)
            assert row is not None and (row.state, row.attempts) == ("failed", 2)

        assert main(argv("countix", "val", tmp_path, server, "--source", "auto", *youtube)) == 0
        out = capsys.readouterr().out
        assert "1 fetched (youtube 1)" in out
        assert "with their clip present; not present: no_clip" in out
        rows = [r for r in rows_of(tmp_path) if r.key]
        assert {r.key: (r.state, r.reason) for r in rows} == {
            in_shard: ("present", None), gap: ("present", None),
        }  # fmt: skip
        with Manifest(manifest_path(tmp_path), readonly=True) as m:
            assert m.get("k700-2020", "val", gap).source == "youtube"  # type: ignore[union-attr]


def test_a_local_countix_file_its_status_as_json_and_a_root_of_another_release(
    tmp_path: Path, ds: Downstream, capsys: pytest.CaptureFixture[str]
) -> None:
    downstream_mirror, downstream_server, shared_kinetics = ds
    real = (shared_kinetics / "countix/countix_val.csv").read_text().splitlines(keepends=True)
    wanted = downstream_mirror.downstream["countix"]["clips"]["val"]
    ids = {k.rsplit("_", 2)[0] for k in wanted}
    mine = [real[0], *(line for line in real[1:] if line.split(",")[0] in ids), real[1192]]
    local = tmp_path / "my_countix_val.csv"
    local.write_text("".join(mine))
    root = tmp_path / "root"
    extra = ("--annotations", str(local))
    assert main(argv("countix", "val", root, downstream_server, *extra)) == 0
    rows = rows_of(root)
    assert [r.line for r in rows] == list(range(2, len(mine) + 1))
    assert [r.state for r in rows][-1] == "rejected"
    assert {r.key for r in rows if r.present} == set(wanted)
    assert (root / ".kinetix/downstream/countix_val.csv").read_text() == "".join(mine)
    capsys.readouterr()
    assert main(["status", str(root), "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["downstream"]
    assert entry == {
        "release": "countix", "split": "val", "rows": len(mine) - 1,
        "present": len(mine) - 2, "not_present": {"rejected:span_outside_clip": 1},
    }  # fmt: skip

    other = tmp_path / "k400"
    with Manifest(manifest_path(other)) as m:
        m.set_meta("release", "k400")
        m.add_clips([Clip("k400", "val", "aaaaaaaaaaa", 0, 10, "abseiling")])
    assert main(argv("countix", "val", other, downstream_server, *extra)) == 2
    err = capsys.readouterr().err
    assert "holds release 'k400', not 'k700-2020'; use another --root" in err
    assert rows_of(other) == []
