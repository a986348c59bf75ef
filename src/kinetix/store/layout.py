"""Where things live on disk under a dataset root, and how label folders are named."""

from __future__ import annotations

from pathlib import Path

# the label enum and folder names belong to the catalog, the writable check to durable;
# re-exported here, where they were
from kinetix.catalog.labels import UNLABELED_DIR, LabelStyle, label_folder
from kinetix.durable import require_writable
from kinetix.errors import ManifestDamagedError, ManifestError

__all__ = [
    "SPLIT_DIRS",
    "STATE_DIR",
    "UNLABELED_DIR",
    "LabelStyle",
    "clip_folders",
    "clip_relpath",
    "label_folder",
    "manifest_path",
    "missing_manifest_error",
    "partial_dir",
    "quarantine_dir",
    "require_writable",
    "slurm_logs",
    "state_dir",
]
SPLIT_DIRS = ("train", "val", "test", "holdout_test")  # the folders clips live under
STATE_DIR = ".kinetix"


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


def clip_folders(root: str | Path) -> list[str]:
    """The split folders under ``root`` that hold anything (a glance, not a walk)."""
    found = []
    for split in SPLIT_DIRS:
        folder = Path(root) / split
        try:
            if folder.is_dir() and next(folder.iterdir(), None) is not None:
                found.append(split)
        except OSError:
            continue
    return found


def missing_manifest_error(path: Path) -> ManifestError:
    """No manifest: a new root needs a download; one whose clips are there needs a repair."""
    root = path.parent.parent if path.parent.name == STATE_DIR else path.parent
    splits = clip_folders(root)
    if splits:
        return ManifestDamagedError(
            f"no manifest at {path}, but {root} holds clips ({', '.join(splits)}): the manifest "
            f"was deleted or lost. 'kinetix repair {root}' rebuilds it from the clips on disk "
            "and the catalog (verifying them, downloading nothing)"
        )
    return ManifestError(f"no manifest at {path}; run 'kinetix download' on this root first")
