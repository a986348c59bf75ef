"""The class list of each release: index order, folder-name styles and forgiving lookup."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from enum import Enum
from functools import cache
from importlib import resources

from kinetix.catalog.releases import get_release
from kinetix.errors import ConfigError

UNLABELED_DIR = "_unlabeled"  # the folder of clips without a label (test splits)


class LabelStyle(str, Enum):
    """How a label becomes a folder name."""

    RAW = "raw"  # "massaging person's head"
    UNDERSCORE = "underscore"  # "massaging_person's_head" (PaddleVideo lists)
    TORCHVISION = "torchvision"  # "massaging_persons_head" (torchvision.datasets.Kinetics)

    @classmethod
    def parse(cls, value: str) -> LabelStyle:
        try:
            return cls(value)
        except ValueError:
            raise ConfigError(
                f"unknown layout {value!r}; valid values are {', '.join(s.value for s in cls)}"
            ) from None


_TORCHVISION_DROP = re.compile(r"['()]")


def label_folder(label: str | None, style: LabelStyle = LabelStyle.RAW) -> str:
    """The folder name of a label in the given style; unlabelled clips share one folder."""
    if label is None:
        return UNLABELED_DIR
    if style is LabelStyle.RAW:
        return label
    if style is LabelStyle.UNDERSCORE:
        return label.replace(" ", "_")
    return _TORCHVISION_DROP.sub("", label).replace(" ", "_")


_FOLDER_PUNCTUATION = str.maketrans({"'": None, "(": None, ")": None, "_": " "})


def lookup_key(spelling: str) -> str:
    """The form every spelling of a class shares: lower case, no ``'()``, ``_`` as space.

    ``massaging person's head``, ``massaging_person's_head`` and ``Massaging_persons_head``
    all become ``massaging persons head``; no two classes of one release collide.
    """
    return " ".join(spelling.lower().translate(_FOLDER_PUNCTUATION).split())


class LabelRegistry:
    """The classes of one release, in the order of its mmaction2 label map (= class index).

    Lookup accepts any folder style (``raw``, ``underscore``, ``torchvision``) in any case,
    because K600 spells ``passing american football (not in game)`` in lower case while K400
    and K700 capitalise it.
    """

    def __init__(self, release: str, names: Iterable[str]):
        self.release = release
        self._names = tuple(names)
        self._index = {name: i for i, name in enumerate(self._names)}
        self._by_key: dict[str, str] = {}
        for name in self._names:
            key = lookup_key(name)
            if key in self._by_key:
                raise ConfigError(
                    f"label map of {release} has two classes spelled alike: "
                    f"{self._by_key[key]!r} and {name!r}"
                )
            self._by_key[key] = name

    @classmethod
    def for_release(cls, name: str) -> LabelRegistry:
        """The registry of a release (``k400``, ``k600``, ``k700``; ``k700-2020`` uses k700's)."""
        return _registry(get_release(name).name)

    @property
    def names(self) -> tuple[str, ...]:
        """Canonical class names in index order."""
        return self._names

    @property
    def indices(self) -> Mapping[str, int]:
        """Canonical name -> class index (what the manifest's ``label_index`` stores)."""
        return self._index

    def resolve(self, spelling: str) -> str:
        """The canonical name of a class given in any style or case; ``ConfigError`` otherwise."""
        if spelling in self._index:
            return spelling
        found = self._by_key.get(lookup_key(spelling))
        if found is None:
            raise ConfigError(self._unknown_message(spelling))
        return found

    def index(self, label: str) -> int:
        return self._index[self.resolve(label)]

    def folder(self, label: str, style: LabelStyle | str = LabelStyle.RAW) -> str:
        if not isinstance(style, LabelStyle):
            style = LabelStyle.parse(style)
        return label_folder(self.resolve(label), style)

    def __len__(self) -> int:
        return len(self._names)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __contains__(self, spelling: object) -> bool:
        if not isinstance(spelling, str):
            return False
        return spelling in self._index or lookup_key(spelling) in self._by_key

    def __repr__(self) -> str:
        return f"LabelRegistry({self.release!r}, {len(self)} classes)"

    def _unknown_message(self, spelling: str) -> str:
        key = lookup_key(spelling)
        # "skiing" is no class, but it starts three; difflib alone would offer "skydiving".
        close = [k for k in self._by_key if key and k.startswith(key + " ")][:3]
        close = close or difflib.get_close_matches(key, self._by_key, n=3, cutoff=0.75)
        message = f"unknown class {spelling!r} for {self.release}"
        if close:
            names = [repr(self._by_key[k]) for k in close]
            choices = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
            return f"{message}; did you mean {choices}?"
        return (
            f"{message}; 'kinetix annotations labels {self.release}' lists its {len(self)} classes"
        )


@cache
def _registry(release: str) -> LabelRegistry:
    label_map = get_release(release).label_map
    text = (
        resources.files("kinetix.catalog")
        .joinpath("label_maps")
        .joinpath(label_map)
        .read_text("utf-8")
    )
    return LabelRegistry(release, (line for line in text.splitlines() if line.strip()))
