"""Release table lookups and the URL encoding that K600's raw class names need."""

from __future__ import annotations

import pytest

from kinetix.catalog.clip import Clip, clip_key
from kinetix.catalog.releases import (
    check_split,
    encode_url,
    get_release,
    join_url,
    normalise_split,
)
from kinetix.errors import ConfigError


def test_aliases_resolve() -> None:
    assert get_release("Kinetics-400").name == "k400"
    assert get_release("700_2020").name == "k700-2020"


def test_unknown_release_lists_valid_ones() -> None:
    with pytest.raises(ConfigError, match="unknown release 'k500'; valid releases are k400"):
        get_release("k500")


def test_splits_normalise() -> None:
    assert normalise_split("validate") == "val"
    assert check_split(get_release("k600"), "holdout_test") == "holdout_test"
    with pytest.raises(ConfigError, match="has no split 'holdout_test'"):
        check_split(get_release("k400"), "holdout_test")


def test_k700_2019_has_no_cvdf_copy() -> None:
    with pytest.raises(ConfigError, match="no CVDF copy; use --source youtube"):
        get_release("k700").path_list_path("val")


def test_path_list_locations() -> None:
    assert get_release("k400").path_list_path("val") == "400/val/k400_val_path.txt"
    assert (
        get_release("k700-2020").path_list_path("train")
        == "700_2020/train/k700_2020_train_path.txt"
    )


def test_k600_urls_are_encoded_once() -> None:
    raw = "https://s3.amazonaws.com/kinetics/600/train/massaging person's head.tar.gz"
    assert encode_url(raw) == (
        "https://s3.amazonaws.com/kinetics/600/train/massaging%20person%27s%20head.tar.gz"
    )
    assert encode_url(encode_url(raw)) == encode_url(raw)
    assert join_url("http://127.0.0.1:1/kinetics", "600/val/hurling (sport).tar.gz") == (
        "http://127.0.0.1:1/kinetics/600/val/hurling%20%28sport%29.tar.gz"
    )


def test_clip_key_is_the_cvdf_stem() -> None:
    c = Clip("k400", "val", "-abc_DEF-12", 7, 17, "abseiling")
    assert c.key == clip_key("-abc_DEF-12", 7, 17) == "-abc_DEF-12_000007_000017"
    assert c.filename.endswith(".mp4") and c.duration == 10
