"""Where things live on disk under a dataset root, and how label folders are named."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path

from kinetix.errors import ConfigError

UNLABELED_DIR = "_unlabeled"
STATE_DIR = ".kinetix"


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


def clip_relpath(split: str, label: str | None, key: str, style: LabelStyle) -> str:
    """``{split}/{label_folder}/{key}.mp4``, relative to the dataset root."""
    return f"{split}/{label_folder(label, style)}/{key}.mp4"


def state_dir(root: str | Path) -> Path:
    """``ROOT/.kinetix``: manifest, lock, partial downloads, quarantine."""
    return Path(root) / STATE_DIR


def manifest_path(root: str | Path) -> Path:
    return state_dir(root) / "manifest.sqlite"


def quarantine_dir(root: str | Path) -> Path:
    return state_dir(root) / "quarantine"


def partial_dir(root: str | Path) -> Path:
    """Where shard ``.part`` files and resume state live."""
    return state_dir(root) / "partial"


def slurm_logs(root: str | Path) -> Path:
    """Where ``--executor slurm`` worker jobs write their stdout/stderr."""
    return state_dir(root) / "slurm"
