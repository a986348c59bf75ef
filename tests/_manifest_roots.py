"""Manifest-only roots (no media) with awkward rows, for exports compared byte for byte."""

from __future__ import annotations

from pathlib import Path

from kinetix.catalog.clip import Clip
from kinetix.catalog.labels import LabelRegistry
from kinetix.store.layout import LabelStyle, clip_relpath, manifest_path
from kinetix.store.manifest import Manifest

K400 = LabelRegistry.for_release("k400")
# an apostrophe, parentheses, spaces, and plain names
LABELS = ["massaging person's head", "petting animal (not cat)", "air drumming", "abseiling"]
# floats of every shape repr writes: integral, short, long, tiny, huge, negative
FLOATS = [10.0, 29.97, 30000 / 1001, 1e-05, 0.0001, 1e16, 123456789012345.67, -0.25, 0.1 + 0.2,
          1796287712.74165, 2.5e-300, 0.0, -0.0, 1e15, 999999999999999.9]  # fmt: skip
MESSAGES = [None, "plain", "has, a comma", 'has "quotes"', "two\nlines", "cr\r", "", " lead"]


def awkward_clips(*, null_frames: bool = True) -> list[tuple[Clip, dict[str, object], bool]]:
    """(clip, manifest fields, store the class index) for every row of the awkward root."""
    rows: list[tuple[Clip, dict[str, object], bool]] = []
    for i in range(60):
        split = ("train", "val", "test")[i % 3]
        label = None if split == "test" else LABELS[i % len(LABELS)]
        # keys beginning with '-' (YouTube ids may), and ordinary ones
        youtube_id = f"-{i:02d}xY_z{i:04d}"[:11] if i % 4 == 0 else f"v{i:03d}abcdEF"[:11]
        clip = Clip("k400", split, youtube_id, 10 * i, 10 * i + 10, label)
        fields: dict[str, object] = {
            "state": "present",
            "source": ("cvdf", "youtube", None)[i % 3],
            "bytes": 1000 + i,
            "mtime": FLOATS[i % len(FLOATS)],
            "verify": "good" if i % 11 else None,
            "verify_level": "quick",
            "verified_at": FLOATS[(i + 3) % len(FLOATS)],
            "duration": FLOATS[(i + 5) % len(FLOATS)],
            "fps": FLOATS[(i + 7) % len(FLOATS)] if i % 5 else None,
            "width": 340 if i % 6 else None,
            "height": 256,
            "num_frames": 250 + i if i % 7 or not null_frames else None,
            "codec": "h264",
            "has_audio": i % 2,
            "error_message": MESSAGES[i % len(MESSAGES)],
            "start_offset": -0.125 if i % 9 == 0 else None,
            "trim": "fast" if i % 9 == 0 else None,
        }
        if i % 13 == 5:
            fields["state"] = "missing"
        if i % 17 == 3:
            fields["verify"] = "bad"
        rows.append((clip, fields, i % 8 != 1))
    return rows


def build_manifest_root(
    root: Path,
    *,
    layout: LabelStyle = LabelStyle.UNDERSCORE,
    kind: str = "videos",
    null_frames: bool = True,
) -> Path:
    """A root whose manifest holds ``awkward_clips()`` with paths in ``layout``; no files."""
    with Manifest(manifest_path(root)) as m:
        m.set_meta("kind", kind)
        m.set_meta("release", "k400")
        m.set_meta("layout", layout.value)
        for clip, fields, store_index in awkward_clips(null_frames=null_frames):
            m.add_clips([clip], K400.indices if store_index else None)
            path = clip_relpath(clip.split, clip.label, clip.key, layout)
            if kind == "frames":
                path = path.removesuffix(".mp4")
            m.update(clip.release, clip.split, clip.key, path=path, **fields)
    return root
