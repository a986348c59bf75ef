"""The manifest (SQLite, one row per clip) and the on-disk layout."""

from kinetix.store.layout import LabelStyle, clip_relpath, label_folder, manifest_path
from kinetix.store.manifest import ClipState, Manifest

__all__ = ["ClipState", "LabelStyle", "Manifest", "clip_relpath", "label_folder", "manifest_path"]
