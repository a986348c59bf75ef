"""``kinetix annotations``: fetch, stats, labels and list, and one-line errors."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from kinetix.cli.main import main
from kinetix.synthetic.server import MirrorServer

DATA = Path(__file__).parent / "data" / "annotations"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["annotations", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_labels_in_every_style(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "labels", "k400")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 400 and lines[0] == "0\tabseiling"
    assert "\tmassaging person's head" in out
    _, torchvision, _ = run(capsys, "labels", "kinetics-400", "--style", "torchvision")
    assert "\tmassaging_persons_head\n" in torchvision
    _, k600, _ = run(capsys, "labels", "k600", "--style", "underscore")
    assert len(k600.splitlines()) == 600 and "\tpassing_american_football_(not_in_game)\n" in k600


def test_stats_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(DATA / "k700_val.csv")
    code, out, _ = run(capsys, "stats", "k700", "--split", "val", "--file", path)
    assert code == 0
    assert out.splitlines()[0] == f"k700 val: {path}"
    assert "short clips (< 10 s)   2" in out and "duration (s)           5 to 10" in out
    code, out, _ = run(capsys, "stats", "k700", "--split", "val", "--file", path, "--json")
    report = json.loads(out)
    assert (report["rows"], report["short_clips"], report["file"]) == (21, 2, path)


def test_list_selection(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = str(DATA / "k400_val.csv")
    selection = ["--classes", "Air_Drumming,abseiling", "--max-per-class", "2", "--seed", "4"]
    code, out, _ = run(capsys, "list", "k400", "--split", "val", "--file", path, *selection)
    rows = [line.split("\t") for line in out.splitlines()]
    assert code == 0 and len(rows) == 4
    assert sorted(label for _, label in rows) == ["abseiling"] * 2 + ["air drumming"] * 2
    classes = tmp_path / "classes.txt"
    classes.write_text("massaging_persons_head\n")
    ids = tmp_path / "ids.txt"
    ids.write_text("-huT_p-r_zA\n3caPS4FHFF8_000036_000046\n")
    _, out, _ = run(capsys, "list", "k400", "--split", "val", "--file", path,
                    "--classes-file", str(classes), "--ids", str(ids))  # fmt: skip
    assert out == "-huT_p-r_zA_001989_001999\tmassaging person's head\n"
    _, out, _ = run(capsys, "list", "k700-2020", "--split", "test",
                    "--file", str(DATA / "k700_2020_test_crlf.csv"))  # fmt: skip
    assert out.splitlines()[0] == "---v8pgm1eQ_000000_000010"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["list", "k400", "--split", "val", "--classes", "abseling"],
         "unknown class 'abseling' for k400; did you mean 'abseiling'?"),
        (["stats", "k500", "--split", "val"], "unknown release 'k500'; valid releases are"),
        (["list", "k400", "--split", "holdout_test"], "k400 has no split 'holdout_test'"),
        (["list", "k400", "--split", "val", "--max-per-class", "0"],
         "--max-per-class must be >= 1"),
    ],
)  # fmt: skip
def test_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv, "--file", str(DATA / "k400_val.csv"))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("kinetix: error: ") and message in err


def test_malformed_row_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "val.csv"
    lines = (DATA / "k400_val.csv").read_bytes().splitlines(keepends=True)
    bad.write_bytes(b"".join([*lines[:5], lines[5].replace(b",val,", b","), *lines[6:]]))
    code, _, err = run(capsys, "stats", "k400", "--split", "val", "--file", str(bad))
    assert code == 2
    assert err == (
        f"kinetix: error: {bad}:6: expected 6 columns (label,youtube_id,time_start,time_end,"
        f"split,is_cc), got 5: {lines[5].decode().strip().replace(',val,', ',')!r}\n"
    )


def test_fetch_every_split_then_offline(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KINETIX_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "mirror" / "400" / "annotations"
    root.mkdir(parents=True)
    # fetch does not parse: any real file stands in for each split
    for split in ("train", "val", "test"):
        shutil.copy(DATA / "k400_val.csv", root / f"{split}.csv")
    with MirrorServer(tmp_path / "mirror") as server:
        code, out, _ = run(capsys, "fetch", "k400", "--mirror", server.url)
    digest = hashlib.sha256((DATA / "k400_val.csv").read_bytes()).hexdigest()
    lines = out.splitlines()
    assert code == 0 and [line.split("\t")[0] for line in lines] == [
        "k400 train", "k400 val", "k400 test",
    ]  # fmt: skip
    assert all(line.endswith(f"\tsha256:{digest}") for line in lines)
    assert all(Path(line.split("\t")[1]).is_file() for line in lines)
    code, again, _ = run(
        capsys, "fetch", "k400", "--split", "val", "--mirror", server.url, "--offline"
    )
    assert code == 0 and again == lines[1] + "\n"
    code, _, err = run(
        capsys, "stats", "k400", "--split", "val", "--mirror", server.url, "--offline"
    )
    assert code == 0
    code, _, err = run(capsys, "fetch", "k600", "--split", "val", "--offline")
    assert code == 2 and "run 'kinetix annotations fetch k600 --split val' while online" in err
