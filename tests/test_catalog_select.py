"""Selecting clips: classes in any style, ids or keys, a seeded per-class sample, AVA keyframes."""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from kinetix.catalog.labels import LabelRegistry
from kinetix.catalog.parse import read_annotations
from kinetix.catalog.select import match_keyframes, read_class_file, read_ids_file, select_clips
from kinetix.config import Selection
from kinetix.errors import ConfigError

DATA = Path(__file__).parent / "data" / "annotations"
K400 = LabelRegistry.for_release("k400")


@pytest.fixture(scope="module")
def val() -> list:
    return read_annotations(DATA / "k400_val.csv", release="k400")


def test_no_filter_keeps_everything_in_order(val: list) -> None:
    assert select_clips(val, Selection(), K400) == val


def test_classes_in_any_style(val: list) -> None:
    chosen = select_clips(val, Selection(classes=("Air_Drumming", "massaging_persons_head")), K400)
    assert Counter(c.label for c in chosen) == {"air drumming": 5, "massaging person's head": 5}
    assert chosen == [c for c in val if c.label in ("air drumming", "massaging person's head")]


def test_class_typo_is_a_config_error(val: list) -> None:
    with pytest.raises(
        ConfigError, match="unknown class 'abseling' for k400; did you mean 'abseiling'"
    ):
        select_clips(val, Selection(classes=("abseling",)), K400)


def test_class_without_clips_is_reported(val: list, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="kinetix.catalog.select"):
        assert select_clips(val, Selection(classes=("zumba",)), K400) == []
    assert "no clips of class 'zumba'" in caplog.text


def test_unlabelled_clips_never_match_classes() -> None:
    test = read_annotations(DATA / "k400_test_unlabelled.csv", release="k400")
    assert select_clips(test, Selection(classes=("abseiling",)), K400) == []


def test_max_per_class_takes_at_most_n_of_each(val: list) -> None:
    chosen = select_clips(val, Selection(max_per_class=3, seed=7), K400)
    sizes = Counter(c.label for c in val)
    assert Counter(c.label for c in chosen) == {label: min(3, n) for label, n in sizes.items()}
    positions = [val.index(c) for c in chosen]
    assert positions == sorted(positions)  # input order kept


def test_sample_does_not_depend_on_row_order(val: list) -> None:
    chosen = select_clips(val, Selection(max_per_class=2, seed=3), K400)
    shuffled = list(val)
    random.Random(1).shuffle(shuffled)
    again = select_clips(shuffled, Selection(max_per_class=2, seed=3), K400)
    assert sorted(c.key for c in again) == sorted(c.key for c in chosen)
    assert again == [c for c in shuffled if c in chosen]


def test_seed_changes_the_sample(val: list) -> None:
    picks = {
        tuple(c.key for c in select_clips(val, Selection(max_per_class=3, seed=s), K400))
        for s in range(5)
    }
    assert len(picks) > 1


def test_sample_is_stable_across_processes(val: list) -> None:
    code = (
        "import json, sys; from kinetix.catalog.parse import read_annotations;"
        "from kinetix.catalog.labels import LabelRegistry; from kinetix.config import Selection;"
        "from kinetix.catalog.select import select_clips;"
        "clips = read_annotations(sys.argv[1], release='k400');"
        "print(json.dumps([c.key for c in select_clips(clips, Selection(max_per_class=2, seed=11),"
        " LabelRegistry.for_release('k400'))]))"
    )
    here = [c.key for c in select_clips(val, Selection(max_per_class=2, seed=11), K400)]
    for hash_seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code, str(DATA / "k400_val.csv")],
            check=True, capture_output=True, text=True, env={"PYTHONHASHSEED": hash_seed},
        )  # fmt: skip
        assert json.loads(out.stdout) == here


def test_ids_and_keys(val: list, caplog: pytest.LogCaptureFixture) -> None:
    wanted = (
        "-huT_p-r_zA",
        "3caPS4FHFF8_000036_000046",
        "3caPS4FHFF8_000001_000011",
        "aaaaaaaaaaa",
    )
    with caplog.at_level(logging.WARNING, logger="kinetix.catalog.select"):
        chosen = select_clips(val, Selection(ids=wanted), K400)
    assert [c.key for c in chosen] == ["3caPS4FHFF8_000036_000046", "-huT_p-r_zA_001989_001999"]
    assert "2 of the 4 requested ids/keys are not in these annotations" in caplog.text
    assert "3caPS4FHFF8_000001_000011" in caplog.text and "aaaaaaaaaaa" in caplog.text
    with pytest.raises(ConfigError, match="'not-an-id' is not a youtube id or clip key"):
        select_clips(val, Selection(ids=("not-an-id",)), K400)


def test_filters_combine(val: list) -> None:
    ids = tuple(c.youtube_id for c in val[:8])
    chosen = select_clips(val, Selection(ids=ids, classes=("abseiling",), max_per_class=2), K400)
    assert len(chosen) == 2 and {c.label for c in chosen} == {"abseiling"}
    assert {c.youtube_id for c in chosen} <= set(ids)


def test_class_and_id_files(tmp_path: Path, val: list) -> None:
    classes = tmp_path / "classes.txt"
    classes.write_text("# my subset\nabseiling\n\n  air_drumming  \r\n")
    assert read_class_file(classes) == ("abseiling", "air_drumming")
    ids = tmp_path / "ids.txt"
    ids.write_text("0wR5jVB-WPk\n# keys work too\n3caPS4FHFF8_000036_000046\n")
    assert read_ids_file(ids) == ("0wR5jVB-WPk", "3caPS4FHFF8_000036_000046")
    ids.write_text("0wR5jVB-WPk\nabseiling\n")
    with pytest.raises(ConfigError, match=r"ids.txt: entry 2 'abseiling' is not a youtube id"):
        read_ids_file(ids)
    with pytest.raises(ConfigError, match="cannot read class file"):
        read_class_file(tmp_path / "absent.txt")


def test_keyframes_move_onto_their_kinetics_clips() -> None:
    keyframes = read_annotations(DATA / "ava_kinetics_test.csv", split="test")
    k700 = read_annotations(DATA / "k700_2020_test_ava_videos.csv", release="k700")
    matched, unmatched = match_keyframes(keyframes, k700)
    assert unmatched == [] and len(matched) == len(keyframes)
    for keyframe, clip in zip(keyframes, matched):
        assert clip.youtube_id == keyframe.youtube_id
        assert clip.extra == keyframe.extra
        assert clip._replace(extra=None) in k700
    lonely, missing = match_keyframes(keyframes, [])
    assert lonely == [] and missing == keyframes
    with pytest.raises(ConfigError, match="is not an AVA-Kinetics keyframe"):
        match_keyframes(k700[:1], k700)
