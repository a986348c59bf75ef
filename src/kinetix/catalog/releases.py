"""The release table: versions, splits and the official locations of their files."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

from kinetix.errors import ConfigError

CVDF_BASE = "https://s3.amazonaws.com/kinetics/"
DEEPMIND_BASE = "https://storage.googleapis.com/deepmind-media/Datasets/"

# Raw split names found in real files -> the one name kinetix uses.
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validate": "val",
    "validation": "val",
    "test": "test",
    "holdout_test": "holdout_test",
    "holdout": "holdout_test",
}


@dataclass(frozen=True)
class Release:
    """One Kinetics release and where its files live, relative to a mirror base."""

    name: str  # k400, k600, k700, k700-2020
    num_classes: int
    splits: tuple[str, ...]
    cvdf_dir: str | None  # "400", "600", "700_2020"; None when CVDF has no copy
    deepmind_archive: str  # kinetics400.tar.gz ...
    # split -> annotation file path under the CVDF base
    cvdf_annotations: dict[str, str] = field(default_factory=dict)
    label_map: str = ""  # packaged mmaction2 label map file name
    replacement: str | None = None  # K400 replacement_for_corrupted_k400.tgz
    # Splits whose shards hold the corrupted clips the replacement set replaces: CVDF's own
    # arrange_by_classes.py counts 1,392 for K400 train and none for val or test.
    replacement_splits: tuple[str, ...] = ()

    def has_split(self, split: str) -> bool:
        return split in self.splits

    def replacement_for(self, split: str) -> str | None:
        """The replacement set that applies to ``split`` (path under the mirror base), if any."""
        return self.replacement if split in self.replacement_splits else None

    def path_list_path(self, split: str) -> str:
        """Path (relative to the mirror base) of the CVDF list of shard URLs."""
        if self.cvdf_dir is None:
            raise ConfigError(
                f"{self.name} has no CVDF copy; use --source youtube (valid CVDF releases are "
                f"{', '.join(r.name for r in RELEASES.values() if r.cvdf_dir)})"
            )
        return f"{self.cvdf_dir}/{split}/k{self.cvdf_dir}_{split}_path.txt"

    def annotation_path(self, split: str) -> str:
        try:
            return self.cvdf_annotations[split]
        except KeyError:
            raise ConfigError(
                f"{self.name} has no CVDF annotation file for split {split!r}; "
                f"valid splits are {', '.join(self.cvdf_annotations)}"
            ) from None


RELEASES: dict[str, Release] = {
    r.name: r
    for r in (
        Release(
            name="k400",
            num_classes=400,
            splits=("train", "val", "test"),
            cvdf_dir="400",
            deepmind_archive="kinetics400.tar.gz",
            cvdf_annotations={s: f"400/annotations/{s}.csv" for s in ("train", "val", "test")},
            label_map="label_map_k400.txt",
            replacement="400/replacement_for_corrupted_k400.tgz",
            replacement_splits=("train",),
        ),
        Release(
            name="k600",
            num_classes=600,
            splits=("train", "val", "test", "holdout_test"),
            cvdf_dir="600",
            deepmind_archive="kinetics600.tar.gz",
            cvdf_annotations={
                "train": "600/annotations/train.txt",
                "val": "600/annotations/val.txt",
                "test": "600/annotations/test.csv",
                "holdout_test": "600/annotations/kinetics600_holdout_test.csv",
            },
            label_map="label_map_k600.txt",
        ),
        Release(
            name="k700",
            num_classes=700,
            splits=("train", "val", "test"),
            cvdf_dir=None,
            deepmind_archive="kinetics700.tar.gz",
            label_map="label_map_k700.txt",
        ),
        Release(
            name="k700-2020",
            num_classes=700,
            splits=("train", "val", "test"),
            cvdf_dir="700_2020",
            deepmind_archive="kinetics700_2020.tar.gz",
            cvdf_annotations={s: f"700_2020/annotations/{s}.csv" for s in ("train", "val", "test")},
            label_map="label_map_k700.txt",
        ),
    )
}

_RELEASE_ALIASES = {
    "400": "k400", "kinetics400": "k400", "kinetics-400": "k400",
    "600": "k600", "kinetics600": "k600", "kinetics-600": "k600",
    "700": "k700", "kinetics700": "k700", "kinetics-700": "k700",
    "k700_2020": "k700-2020", "700-2020": "k700-2020", "700_2020": "k700-2020",
    "kinetics700_2020": "k700-2020", "kinetics-700-2020": "k700-2020",
}  # fmt: skip


def get_release(name: str) -> Release:
    """Look a release up by name (``k400``, ``kinetics-400``, ``700_2020`` ...)."""
    key = name.strip().lower()
    key = _RELEASE_ALIASES.get(key, key)
    try:
        return RELEASES[key]
    except KeyError:
        hint = ""
        if key.replace("_", "-") in ("ava-kinetics", "avakinetics", "countix"):
            hint = (
                f"; {name} is an annotation set on k700-2020 clips: "
                f"'kinetix annotations stats {name} --split val' and see the README"
            )
        raise ConfigError(
            f"unknown release {name!r}; valid releases are {', '.join(RELEASES)}{hint}"
        ) from None


def normalise_split(raw: str) -> str:
    """Map the split names found in real files (``validate``, ``val`` ...) to one name."""
    try:
        return SPLIT_ALIASES[raw.strip().lower()]
    except KeyError:
        raise ConfigError(
            f"unknown split {raw!r}; valid splits are train, val, test, holdout_test"
        ) from None


def check_split(release: Release, split: str) -> str:
    split = normalise_split(split)
    if not release.has_split(split):
        raise ConfigError(
            f"{release.name} has no split {split!r}; valid splits are {', '.join(release.splits)}"
        )
    return split


def join_url(base: str, path: str) -> str:
    """Join a mirror base and a relative path, percent-encoding the path.

    K600 shard names carry raw spaces, parentheses and an apostrophe; S3 wants them
    encoded, while an already-encoded ``%20`` must not be encoded twice.
    """
    if not base.endswith("/"):
        base += "/"
    return base + quote(path, safe="/%")


def encode_url(url: str) -> str:
    """Percent-encode the path of a full URL as read from a CVDF path list."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return quote(url, safe="/%:")
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host}{slash}{quote(path, safe='/%')}"
