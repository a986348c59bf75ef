"""The label registry: index order, folder styles, forgiving lookup and typo suggestions."""

from __future__ import annotations

import pytest

from kinetix.catalog.labels import LabelRegistry, lookup_key
from kinetix.errors import ConfigError
from kinetix.store.layout import LabelStyle


@pytest.mark.parametrize(("release", "size"), [("k400", 400), ("k600", 600), ("k700", 700)])
def test_index_is_label_map_line_order(release: str, size: int) -> None:
    registry = LabelRegistry.for_release(release)
    assert len(registry) == size
    assert registry.names[0] == "abseiling" and registry.index("abseiling") == 0
    assert [registry.index(name) for name in registry.names] == list(range(size))
    assert registry.indices["abseiling"] == 0


def test_k700_2020_shares_the_k700_classes() -> None:
    assert LabelRegistry.for_release("k700-2020").names == LabelRegistry.for_release("k700").names
    assert LabelRegistry.for_release("kinetics-700-2020").release == "k700-2020"
    assert LabelRegistry.for_release("k400") is LabelRegistry.for_release("kinetics400")


@pytest.mark.parametrize(
    "spelling",
    [
        "massaging person's head",
        "massaging_person's_head",
        "massaging_persons_head",
        "Massaging Persons Head",
        "  massaging   person's head ",
    ],
)
def test_any_style_and_case_resolves(spelling: str) -> None:
    registry = LabelRegistry.for_release("k400")
    assert registry.resolve(spelling) == "massaging person's head"
    assert spelling in registry


def test_case_differs_between_releases() -> None:
    k600 = LabelRegistry.for_release("k600")
    k700 = LabelRegistry.for_release("k700")
    assert k600.resolve("passing American football (not in game)") == (
        "passing american football (not in game)"
    )
    assert k700.resolve("passing american football (not in game)") == (
        "passing American football (not in game)"
    )


@pytest.mark.parametrize(
    ("style", "folder"),
    [
        (LabelStyle.RAW, "tying knot (not on a tie)"),
        (LabelStyle.UNDERSCORE, "tying_knot_(not_on_a_tie)"),
        (LabelStyle.TORCHVISION, "tying_knot_not_on_a_tie"),
        ("torchvision", "tying_knot_not_on_a_tie"),
    ],
)
def test_folder_styles(style: LabelStyle | str, folder: str) -> None:
    registry = LabelRegistry.for_release("k400")
    assert registry.folder("Tying_Knot_Not_On_A_Tie", style) == folder


def test_folder_names_are_unique_in_every_style() -> None:
    for release in ("k400", "k600", "k700"):
        registry = LabelRegistry.for_release(release)
        for style in LabelStyle:
            folders = {registry.folder(name, style) for name in registry.names}
            assert len(folders) == len(registry), (release, style)


def test_typo_suggests_the_closest_class() -> None:
    registry = LabelRegistry.for_release("k400")
    with pytest.raises(ConfigError) as info:
        registry.resolve("abseling")
    assert str(info.value) == "unknown class 'abseling' for k400; did you mean 'abseiling'?"
    with pytest.raises(ConfigError, match=r"did you mean 'skiing \(not slalom or crosscountry\)'"):
        registry.resolve("skiing")
    with pytest.raises(ValueError, match="'kinetix annotations labels k400' lists its 400 classes"):
        registry.index("zzzz qqqq")
    assert "abseling" not in registry and 3 not in registry


def test_k400_names_missing_from_k600_are_unknown_there() -> None:
    with pytest.raises(ConfigError, match="unknown class 'balloon blowing' for k600"):
        LabelRegistry.for_release("k600").resolve("balloon blowing")


def test_lookup_key_and_spelled_alike_maps() -> None:
    assert lookup_key("Massaging_Person's_Head") == "massaging persons head"
    with pytest.raises(ConfigError, match="two classes spelled alike"):
        LabelRegistry("custom", ["air drumming", "air_drumming"])
