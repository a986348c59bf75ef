"""The manifest (SQLite, one row per clip), the on-disk layout, and a root as one object."""

from kinetix.store.layout import LabelStyle, clip_relpath, label_folder, manifest_path
from kinetix.store.manifest import ClipState, Manifest
from kinetix.store.root import DatasetRoot, RootInfo, RootMeta

__all__ = [
    "ClipState", "DatasetRoot", "LabelStyle", "Manifest", "RootInfo", "RootMeta", "clip_relpath",
    "label_folder", "manifest_path",
]  # fmt: skip
