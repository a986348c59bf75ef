"""AVA-Kinetics and Countix as releases: real files, bad rows, resolution, fetch and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kinetix.catalog.downstream import get_downstream, read_downstream
from kinetix.catalog.fetch import fetch_downstream, read_sidecar
from kinetix.catalog.parse import read_annotations
from kinetix.catalog.resolve import load_resolution, resolve
from kinetix.cli.main import main
from kinetix.errors import AnnotationError, ConfigError
from kinetix.synthetic.mirror import MirrorIndex
from kinetix.synthetic.server import MirrorServer


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KINETIX_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- the real files ---------------------------------------------------------------------------


def test_real_countix_val_rejects_the_overrunning_span(shared_kinetics: Path) -> None:
    ann = read_downstream(shared_kinetics / "countix/countix_val.csv", "countix", "val")
    assert len(ann.rows) == 1433 and len(ann.rejected) == 1
    bad = ann.rejected[0]
    # SOURCES.md: one val row has its repetition window outside the 10 s clip; not clamped
    assert (bad.line, bad.column, bad.reason) == (1193, "repetition_end", "span_outside_clip")
    assert bad.text == "8-T1iL-6zAI,slicing onion,6,16,6.000000,16.000339,5"
    assert "countix_val.csv:1193: repetition_end:" in str(bad)
    first = ann.rows[0]
    assert (first.line, first.youtube_id, first.time_start, first.time_end) == (
        2, "ADtYZmfgeSM", 102, 112,
    )  # fmt: skip
    assert (first.repetition_start, first.repetition_end, first.count) == (102.0, 105.770437, 10)
    assert first.label == "battle rope training"
    train = read_downstream(shared_kinetics / "countix/countix_train.csv", "countix", "train")
    assert (len(train.rows), len(train.rejected)) == (4513, 0)


def test_countix_val_resolves_against_cvdf_and_deepmind(shared_kinetics: Path) -> None:
    cvdf = load_resolution(
        "countix", "val",
        annotations=shared_kinetics / "countix/countix_val.csv",
        base_annotations=shared_kinetics / "k700_2020/val.csv",
    ).summary()  # fmt: skip
    assert (cvdf["rows"], cvdf["rejected"], cvdf["resolving"]) == (1434, 1, 1417)
    assert cvdf["not_resolving"] == {"no_clip": 16}
    assert cvdf["clips_to_fetch"] == 1258  # several Countix rows share a clip
    deepmind = load_resolution(
        "countix", "val",
        annotations=shared_kinetics / "countix/countix_val.csv",
        base_annotations=shared_kinetics / "k700_2020/kinetics-700_2020_val.csv",
    ).summary()  # fmt: skip
    assert (deepmind["resolving"], deepmind["not_resolving"]) == (1416, {"no_clip": 17})


def test_countix_test_layout_has_no_class(shared_kinetics: Path, tmp_path: Path) -> None:
    lines = (shared_kinetics / "countix/countix_train.csv").read_text().splitlines()[:4]
    without = ["{},{}".format(*line.split(",", 2)[::2]) for line in lines]
    path = write(tmp_path, "countix_test.csv", "\n".join(without) + "\n")
    ann = read_downstream(path, "countix", "test")
    assert len(ann.rows) == 3 and all(r.label is None for r in ann.rows)
    assert ann.rows[0].youtube_id == "APkos_Kqa3M" and ann.rows[0].count == 20


def test_real_ava_test_resolves_against_k700_2020_test(shared_kinetics: Path) -> None:
    ava = read_downstream(
        shared_kinetics / "ava_kinetics/kinetics_test_v1.0.csv", "ava-kinetics", "test"
    )
    assert (len(ava.rows), len(ava.rejected), ava.keyframes) == (64304, 0, 64304)
    assert ava.rows[0] == (1, "000QsbOC-a4", 191.0, None, None, None)
    k700 = read_annotations(shared_kinetics / "k700_2020/test.csv", release="k700-2020")
    report = resolve(ava, k700).summary()
    assert report["resolving"] == 61388
    assert report["not_resolving"] == {"no_video": 2913, "outside_clips": 3}
    deepmind = read_annotations(
        shared_kinetics / "k700_2020/kinetics-700_2020_test.csv", release="k700-2020"
    )
    assert resolve(ava, deepmind).summary()["not_resolving"] == {"no_video": 230}


# --- resolution rules -------------------------------------------------------------------------


def test_ava_keyframe_goes_to_the_clip_that_contains_it(tmp_path: Path) -> None:
    k700 = write(
        tmp_path,
        "k700.csv",
        "youtube_id,time_start,time_end,split\n"
        "aaaaaaaaaaa,0,10,test\naaaaaaaaaaa,8,18,test\nbbbbbbbbbbb,20,30,test\n",
    )
    ava = write(
        tmp_path,
        "kinetics_test_v1.0.csv",
        # 9.5 is in both clips of aaaaaaaaaaa (more central in 8-18); 10.0 is the end of the
        # first clip (half-open) so the second; 30 is past bbbbbbbbbbb; ccccccccccc is absent
        "aaaaaaaaaaa,9.500000\naaaaaaaaaaa,10.000000\nbbbbbbbbbbb,30.000000\n"
        "ccccccccccc,1.000000\naaaaaaaaaaa,2.000000\n",
    )
    resolution = resolve(
        read_downstream(ava, "ava-kinetics", "test"),
        read_annotations(k700, release="k700-2020"),
    )
    keys = [c.key if c else None for c in resolution.clips]
    assert keys == [
        "aaaaaaaaaaa_000008_000018",
        "aaaaaaaaaaa_000008_000018",
        None,
        None,
        "aaaaaaaaaaa_000000_000010",
    ]
    assert resolution.reasons == ["resolved", "resolved", "outside_clips", "no_video", "resolved"]
    assert resolution.ambiguous == 1
    assert len(resolution.needed()) == 2


# --- bad rows ---------------------------------------------------------------------------------


def test_ava_box_rows_seven_and_eight_columns(tmp_path: Path) -> None:
    seven = write(
        tmp_path,
        "kinetics_train_v1.0.csv",
        "-0aaaaaaaaa,12.000000,0.100,0.200,0.500,0.900,12\n"
        "-0aaaaaaaaa,12.000000,0.100,0.200,0.500,0.900,80\n"
        "-0aaaaaaaaa,12.000000,0.100,0.200,1.200,0.900,3\n"  # x2 outside [0, 1]
        "-0aaaaaaaaa,12.000000,0.600,0.200,0.500,0.900,3\n"  # no area
        "-0aaaaaaaaa,12.000000,0.100,0.200,0.500,0.900,81\n",  # not an AVA action
    )
    ann = read_downstream(seven, "ava-kinetics", "train")
    assert [r.action for r in ann.rows] == [12, 80]
    assert ann.rows[0].box == (0.1, 0.2, 0.5, 0.9) and ann.rows[0].person is None
    assert ann.keyframes == 1
    assert [(r.line, r.column, r.reason) for r in ann.rejected] == [
        (3, "x2", "box_outside_unit"),
        (4, "x2", "empty_box"),
        (5, "action_id", "action_out_of_range"),
    ]
    assert ann.rejected[0].text == "-0aaaaaaaaa,12.000000,0.100,0.200,1.200,0.900,3"
    eight = write(tmp_path, "kinetics_val_v1.0.csv", "-0aaaaaaaaa,3,0.1,0.2,0.5,0.9,12,4\n")
    assert read_downstream(eight, "ava-kinetics", "val").rows[0].person == 4


@pytest.mark.parametrize(
    ("release", "text", "message"),
    [
        ("ava-kinetics", "-0aaaaaaaaa,12.0\n-0aaaaaaaaa,abc\n",
         r"x.csv:2: column timestamp: expected a number, got 'abc'"),
        ("ava-kinetics", "-0aaaaaaaaa,12.0\n-0aaaaaaaaa,1,0.1,0.2,0.5,0.9,3\n",
         r"x.csv:2: column .*expected 2 columns \(youtube_id,timestamp\) like line 1, got 7"),
        ("ava-kinetics", "-0aaaaaaaaa,1,0.1,0.2,0.5,0.9,one\n",
         r"x.csv:1: column action_id: expected a whole number, got 'one'"),
        ("ava-kinetics", "tooshort,12.0\n", r"x.csv:1: column youtube_id: expected an 11-char"),
        ("countix", "video_id,kinetics_start,kinetics_end,repetition_start,repetition_end,count\n"
         "-0aaaaaaaaa,0,10,1.0,2.0,many\n", r"x.csv:2: column count: expected a whole number"),
        ("countix", "video_id,start\n", r"x.csv:1: expected a Countix header"),
    ],
)  # fmt: skip
def test_malformed_rows_name_file_line_and_column(
    tmp_path: Path, release: str, text: str, message: str
) -> None:
    with pytest.raises(AnnotationError, match=message):
        read_downstream(write(tmp_path, "x.csv", text), release, "train")


def test_countix_bad_values_are_rejected_not_clamped(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "countix_train.csv",
        "video_id,class,kinetics_start,kinetics_end,repetition_start,repetition_end,count\n"
        "-0aaaaaaaaa,x,0,10,1.000000,9.000000,4\n"
        "-0aaaaaaaaa,x,0,10,1.000000,9.000000,0\n"
        "-0aaaaaaaaa,x,0,10,1.000000,9.000000,-3\n"
        "-0aaaaaaaaa,x,20,30,19.500000,25.000000,4\n"
        "-0aaaaaaaaa,x,20,30,25.000000,25.000000,4\n",
    )
    ann = read_downstream(path, "countix", "train")
    assert len(ann.rows) == 1
    assert [(r.line, r.column, r.reason) for r in ann.rejected] == [
        (3, "count", "count_not_positive"),
        (4, "count", "count_not_positive"),
        (5, "repetition_start", "span_outside_clip"),
        (6, "repetition_end", "empty_span"),
    ]


def test_unknown_set_and_split() -> None:
    with pytest.raises(ConfigError, match="valid ones are ava-kinetics, countix"):
        get_downstream("countix2")
    with pytest.raises(ConfigError, match="countix has no split 'holdout_test'"):
        get_downstream("countix").member("holdout_test")
    assert get_downstream("AVA_Kinetics").name == "ava-kinetics"


# --- the mirror, fetch and the CLI -----------------------------------------------------------


def test_mirror_serves_both_tarballs(downstream_mirror: MirrorIndex, shared_kinetics: Path) -> None:
    import tarfile

    info = downstream_mirror.downstream
    assert set(info) == {"ava-kinetics", "countix"}
    with tarfile.open(downstream_mirror.path(info["countix"]["archive"])) as tar:
        names = sorted(m.name for m in tar.getmembers() if m.isfile())
        val = tar.extractfile("countix/countix_val.csv")
        assert val is not None
        assert val.read() == (shared_kinetics / "countix/countix_val.csv").read_bytes()
    assert names == ["countix/countix_test.csv", "countix/countix_train.csv",
                     "countix/countix_val.csv"]  # fmt: skip
    assert info["countix"]["generated"] == ["test"]
    with tarfile.open(downstream_mirror.path(info["ava-kinetics"]["archive"])) as tar:
        test = tar.extractfile("ava_kinetics_v1_0/kinetics_test_v1.0.csv")
        assert test is not None
        real = shared_kinetics / "ava_kinetics/kinetics_test_v1.0.csv"
        assert test.read() == real.read_bytes()
        train = tar.extractfile("ava_kinetics_v1_0/kinetics_train_v1.0.csv")
        assert train is not None
        first = train.readline().decode().rstrip("\n").split(",")
    assert len(first) == 7 and 1 <= int(first[6]) <= 80
    for name in ("countix", "ava-kinetics"):
        for split in ("val", "test"):
            keys = info[name]["clips"][split]
            assert len(keys) == 2
            assert all(downstream_mirror.split("k700-2020", split).clips[k].in_shard for k in keys)


def test_fetch_caches_with_sidecar_and_works_offline(
    downstream_server: MirrorServer, downstream_mirror: MirrorIndex, cache: Path
) -> None:
    path = fetch_downstream("countix", "val", mirror=downstream_server.url)
    assert path.name == "countix_val.csv" and path.parent.name == "countix"
    record = read_sidecar(path)
    assert record is not None and record.member == "countix/countix_val.csv"
    archive = read_sidecar(path.parent.with_name("countix.tar.gz"))
    assert archive is not None
    assert archive.sha256 == downstream_mirror.files[
        "700_2020/annotations/countix.tar.gz"
    ].sha256  # fmt: skip
    requests = downstream_server.stats.total_requests
    again = fetch_downstream("countix", "val", mirror=downstream_server.url, offline=True)
    assert again == path and downstream_server.stats.total_requests == requests
    # the other splits come out of the cached tarball: no new download
    fetch_downstream("countix", "train", mirror=downstream_server.url)
    assert downstream_server.stats.requests["700_2020/annotations/countix.tar.gz"] == 1
    with pytest.raises(ConfigError, match="--offline: no cached annotations for countix test"):
        fetch_downstream("countix", "test", mirror=downstream_server.url, offline=True)


def test_cli_fetch_stats_list(
    downstream_server: MirrorServer,
    downstream_mirror: MirrorIndex,
    cache: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = downstream_server.url
    assert main(["annotations", "fetch", "ava-kinetics", "--mirror", url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in out] == [
        "ava-kinetics train", "ava-kinetics val", "ava-kinetics test",
    ]  # fmt: skip
    assert all("\tsha256:" in line for line in out)

    assert main(["annotations", "stats", "countix", "--split", "val", "--mirror", url,
                 "--json"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    forced = downstream_mirror.downstream["countix"]["clips"]["val"]
    assert report["rows"] == 1434 and report["rejected"] == 1
    assert report["clips_to_fetch"] == len(forced)
    assert report["resolving"] + report["not_resolving"]["no_clip"] == 1433
    assert report["rejected_rows"][0]["line"] == 1193

    assert main(["annotations", "stats", "ava-kinetics", "--split", "test", "--mirror", url]) == 0
    text = capsys.readouterr().out
    assert "rows                       64304" in text
    assert "not resolving: no_video" in text
    # AVA-Kinetics test covers almost every K700-2020 test video: the mirror's other test
    # clips resolve too, besides the two put there for it
    hosted = len(downstream_mirror.split("k700-2020", "test").clips)
    fetch = int(text.split("clips to fetch")[1].split()[0])
    assert 2 <= fetch <= hosted

    assert main(["annotations", "list", "countix", "--split", "val", "--mirror", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "line\tyoutube_id\ttime\tk700_2020_clip\tstatus"
    resolved = {line.split("\t")[3] for line in lines[1:] if line.endswith("\tresolved")}
    assert resolved == set(forced)
    assert "1193\t8-T1iL-6zAI\t-\t-\tspan_outside_clip" in lines

    argv = ["annotations", "list", "countix", "--split", "val", "--mirror", url, "--unresolved"]
    assert main(argv) == 0
    rest = capsys.readouterr().out.splitlines()[1:]
    assert rest and not any(line.endswith("\tresolved") for line in rest)
    every = [line for line in lines[1:] if not line.endswith("\tresolved")]
    assert set(rest) <= set(every)


def test_cli_stats_on_local_files(
    shared_kinetics: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([
        "annotations", "stats", "countix", "--split", "val",
        "--file", str(shared_kinetics / "countix/countix_val.csv"),
        "--k700-file", str(shared_kinetics / "k700_2020/val.csv"),
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "  resolving                  1417\n" in out
    assert "countix_val.csv:1193: repetition_end: repetition span 6-16.0003 s" in out
