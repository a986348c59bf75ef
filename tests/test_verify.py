"""kinetix verify: columns filled, bad clips quarantined with reasons, reruns free, --fix."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from _dataset import SPEC, Item, build_root, clips, media, meta, rows

from kinetix.cli.main import main
from kinetix.config import VerifyConfig, VerifyLevel
from kinetix.errors import ConfigError, KinetixError, LockedError
from kinetix.store.layout import manifest_path, quarantine_dir
from kinetix.store.lock import RootLock
from kinetix.store.manifest import Manifest

GOOD, NOAUDIO, EARLY, TRUNC, EMPTY, HTML, GARBAGE, NOMOOV, LONG = range(9)
CLIPS = clips("val", ["abseiling"] * 3 + ["air drumming"] * 5 + [None])
CLIPS[EARLY] = CLIPS[EARLY]._replace(time_end=CLIPS[EARLY].time_start + 10)  # video ended at 2 s
KEYS = [c.key for c in CLIPS]
BAD = {TRUNC: "truncated", EMPTY: "empty_file", HTML: "unreadable", GARBAGE: "unreadable",
       NOMOOV: "unreadable", LONG: "bad_duration"}  # fmt: skip


@pytest.fixture
def root(tmp_path) -> Path:
    """Three good clips (one without audio, one ending early) and six bad ones."""
    cs = CLIPS
    items = [
        Item(cs[GOOD]),
        Item(cs[NOAUDIO], SPEC.with_(audio=False)),
        Item(cs[EARLY]),
        Item(cs[TRUNC], corrupt="truncate"),
        Item(cs[EMPTY], corrupt="empty"),
        Item(cs[HTML], corrupt="html"),
        Item(cs[GARBAGE], corrupt="garbage"),
        Item(cs[NOMOOV], SPEC.with_(faststart=False), corrupt="truncate"),
        Item(cs[LONG], SPEC.with_(duration=6.0)),  # not trimmed to its 2 s span
    ]
    return build_root(tmp_path / "k400", items)


def test_verify_records_quarantines_and_reruns_for_free(root) -> None:
    from kinetix.process.verify import verify_dataset

    keys = KEYS
    report = verify_dataset(root, VerifyConfig(workers=2))
    assert report.checked == 9 and report.good == 3
    assert report.bad == {"truncated": 1, "empty_file": 1, "unreadable": 3, "bad_duration": 1}
    assert len(report.quarantined) == 6 and not report.errors
    got = rows(root)
    good = got[keys[GOOD]]
    assert good["state"] == "present" and good["verify"] == "good"
    assert good["verify_level"] == "quick" and good["verified_at"]
    assert (good["width"], good["height"], good["fps"], good["num_frames"]) == (64, 80, 25.0, 50)
    assert good["duration"] == pytest.approx(2.0) and good["codec"] == "h264"
    assert good["has_audio"] == 1 and got[keys[NOAUDIO]]["has_audio"] == 0
    assert got[keys[EARLY]]["verify"] == "good"  # ends early: legitimate
    for i, code in BAD.items():
        row = got[keys[i]]
        assert (row["state"], row["verify"], row["error_code"]) == ("quarantined", "bad", code)
        assert row["error_message"] and str(root) not in row["error_message"]
        moved = root / row["path"]
        assert moved.is_file() and moved.is_relative_to(quarantine_dir(root))
        folder = "_unlabeled" if CLIPS[i].label is None else CLIPS[i].label
        assert moved.relative_to(quarantine_dir(root)).as_posix() == f"val/{folder}/{keys[i]}.mp4"
        assert not (root / "val" / folder / f"{keys[i]}.mp4").exists()
    assert "moov atom not found" in got[keys[NOMOOV]]["error_message"]
    assert "not trimmed" in got[keys[LONG]]["error_message"]
    assert not (root / "val" / "air drumming").exists()  # an emptied class folder goes too

    again = verify_dataset(root, VerifyConfig(workers=2))
    assert (again.checked, again.skipped, sum(again.bad.values())) == (0, 3, 0)

    deep = verify_dataset(root, VerifyConfig(level=VerifyLevel.DEEP, workers=0))
    assert (deep.checked, deep.good) == (3, 3)  # deeper than before: checked again
    assert rows(root)[keys[GOOD]]["verify_level"] == "deep"
    quick = verify_dataset(root, VerifyConfig(workers=0))
    assert (quick.checked, quick.skipped) == (0, 3)  # deep covers quick

    clip = root / rows(root)[keys[GOOD]]["path"]
    os.utime(clip, (1e9, 1e9))  # touched (same size): checked again
    assert verify_dataset(root, VerifyConfig(workers=0)).checked == 1


def test_reconcile_reports_then_fixes(root) -> None:
    from kinetix.process.verify import verify_dataset

    verify_dataset(root, VerifyConfig(workers=0))
    keys = KEYS
    before = rows(root)
    stranger = root / "val" / "abseiling" / "-Zz9_000005_000007.mp4"
    shutil.copyfile(media(SPEC), stranger)
    (root / "val" / "notes.mp4").write_bytes(b"x")  # not {split}/{label}/{key}.mp4
    (root / before[keys[NOAUDIO]]["path"]).unlink()
    with open(root / before[keys[GOOD]]["path"], "ab") as f:
        f.write(b"\0" * 100)  # trailing bytes after the last box: changed, still playable

    report = verify_dataset(root, VerifyConfig(workers=0))
    assert report.unknown == ["val/abseiling/-Zz9_000005_000007.mp4"]
    assert report.unrecognised == ["val/notes.mp4"]
    assert report.vanished == [before[keys[NOAUDIO]]["path"]]
    assert report.changed == [before[keys[GOOD]]["path"]]
    assert (report.checked, report.good) == (1, 1)  # the changed clip is checked again
    grown = rows(root)[keys[GOOD]]
    assert grown["bytes"] == before[keys[GOOD]]["bytes"] + 100 and grown["verify"] == "good"
    untouched = {k: v for k, v in rows(root).items() if k != keys[GOOD]}
    assert untouched == {k: v for k, v in before.items() if k != keys[GOOD]}  # only reported

    fixed = verify_dataset(root, VerifyConfig(fix=True, workers=0))
    assert (fixed.added, fixed.marked_missing, fixed.checked, fixed.good) == (1, 1, 1, 1)
    after = rows(root)
    new = after["-Zz9_000005_000007"]
    assert (new["state"], new["verify"], new["label"], new["source"]) == (
        "present", "good", "abseiling", "local"
    )  # fmt: skip
    assert new["label_index"] == 0 and (new["time_start"], new["time_end"]) == (5, 7)
    assert after[keys[NOAUDIO]]["state"] == "missing" and after[keys[NOAUDIO]]["path"] is None
    grown = after[keys[GOOD]]
    assert grown["bytes"] == before[keys[GOOD]]["bytes"] + 100 and grown["verify"] == "good"
    clean = verify_dataset(root, VerifyConfig(fix=True, workers=0))
    assert (clean.checked, clean.added, clean.marked_missing) == (0, 0, 0)
    assert clean.unrecognised == ["val/notes.mp4"]


def test_refetch_hands_quarantined_clips_to_download(root, monkeypatch) -> None:
    from kinetix.process.verify import verify_dataset

    calls: list[tuple[Path, list[tuple[str, str, str]]]] = []

    def refetch(where: Path, keys: list[tuple[str, str, str]]) -> int:
        with RootLock(where):  # verify has let go of the root by now
            calls.append((where, sorted(keys)))
        return len(keys) - 1

    report = verify_dataset(root, VerifyConfig(refetch=True, workers=0), refetch=refetch)
    quarantined = sorted(("k400", "val", k) for k in KEYS if rows(root)[k]["verify"] == "bad")
    assert calls == [(root, quarantined)]
    assert (report.refetch_asked, report.refetched) == (6, 5)


def test_refetch_without_download_fails_before_any_work(root, monkeypatch) -> None:
    from kinetix.process.verify import verify_dataset

    monkeypatch.setitem(sys.modules, "kinetix.download", None)  # import raises ImportError
    with pytest.raises(KinetixError, match=r"--refetch needs kinetix\.download\.refetch"):
        verify_dataset(root, VerifyConfig(refetch=True, workers=0))
    assert all(r["verify"] is None for r in rows(root).values())


def test_cli_refetch_without_download_fails_before_any_work(root, monkeypatch, capsys) -> None:
    from kinetix.cli.main import main

    monkeypatch.setitem(sys.modules, "kinetix.download", None)  # import raises ImportError
    assert main(["verify", str(root), "--refetch", "--workers", "0"]) != 0
    assert "--refetch needs kinetix.download.refetch" in capsys.readouterr().err
    assert all(r["verify"] is None for r in rows(root).values())


def test_refuses_locked_and_non_video_roots(root, tmp_path) -> None:
    from kinetix.process.verify import verify_dataset

    with RootLock(root), pytest.raises(LockedError):
        verify_dataset(root, VerifyConfig(workers=0))
    other = tmp_path / "other"
    with Manifest(manifest_path(other)) as m:
        m.set_meta("kind", "audio")
    with pytest.raises(ConfigError, match="audio dataset; verify checks video and frames"):
        verify_dataset(other, VerifyConfig(workers=0))
    assert meta(root, "kind") == "videos"


def test_cli_summary_and_exit_code(root, capsys) -> None:
    assert main(["verify", str(root), "--workers", "2", "--no-progress"]) == 0  # bad clips: data
    out = capsys.readouterr().out
    assert "9 checked" in out and "3 good, 6 bad" in out and "unreadable 3" in out
    assert "clips/s" in out and "quarantined 6 clips" in out
    assert main(["verify", str(root), "--deep", "--no-progress"]) == 0
    assert "3 checked" in capsys.readouterr().out
    assert main(["verify", str(root / "nope")]) == 2
    assert "kinetix download" in capsys.readouterr().err


def test_a_clip_deleted_during_verify_becomes_missing(root, monkeypatch) -> None:
    import kinetix.process.verify as verify

    def vanish(path: str, level: VerifyLevel) -> None:
        os.unlink(path)  # someone deletes it while it is being read
        raise verify.MediaError(path, "cannot read", code=verify.ErrorCode.UNREADABLE)

    monkeypatch.setattr(verify, "check_video", vanish)
    report = verify.verify_dataset(root, VerifyConfig(workers=0))
    assert report.checked == 9 and not report.bad and not report.errors
    assert {r["state"] for r in rows(root).values()} == {"missing"}
    assert len(report.vanished) == 9


def test_fix_maps_label_folders_back_to_classes(tmp_path) -> None:
    from kinetix.process.verify import verify_dataset
    from kinetix.store.layout import LabelStyle

    root = build_root(tmp_path / "k400", [Item(CLIPS[GOOD])], layout=LabelStyle.UNDERSCORE)
    for folder in ("massaging_person's_head", "_unlabeled", "not_a_class"):
        (root / "test" / folder).mkdir(parents=True)
        shutil.copyfile(media(SPEC), root / "test" / folder / f"-{folder[:3]}_000001_000003.mp4")
    report = verify_dataset(root, VerifyConfig(fix=True, workers=0))
    assert (report.added, report.good) == (3, 4)
    labels = {k: r["label"] for k, r in rows(root).items() if r["split"] == "test"}
    assert labels == {
        "-mas_000001_000003": "massaging person's head",
        "-_un_000001_000003": None,
        "-not_000001_000003": "not_a_class",  # kept as found, with a warning
    }
