"""Video roots as 'kinetix download' leaves them, from generated clips: verify, process, frames."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kinetix.catalog.clip import Clip
from kinetix.store.layout import LabelStyle, clip_relpath, manifest_path
from kinetix.store.manifest import Manifest
from kinetix.synthetic.media import VideoSpec, corrupt_video, make_video

# 64x80: each of the index pattern's five bands is 16 px, so frame_index() reads frames back
SPEC = VideoSpec(duration=2.0, fps=25, width=64, height=80, audio=True, gop=10)

_CACHE = Path(tempfile.mkdtemp(prefix="kinetix-test-media-"))
atexit.register(shutil.rmtree, _CACHE, True)


def media(spec: VideoSpec = SPEC) -> Path:
    """A generated clip for ``spec``, made once per test session and copied from then on."""
    name = "_".join(str(v) for v in spec.__dict__.values()).replace("/", "-") + ".mp4"
    path = _CACHE / name
    if not path.exists():
        make_video(path, spec)
    return path


@dataclass(frozen=True)
class Item:
    """One clip of a test root: its annotation, its file and what its row says."""

    clip: Clip
    spec: VideoSpec | None = SPEC  # None: no file
    corrupt: str | None = None  # a corrupt_video() damage applied to the copy
    keep: float = 0.5  # the part of the file a "truncate" keeps
    state: str = "present"
    fields: tuple[tuple[str, object], ...] = ()  # extra manifest columns


def clips(
    split: str,
    labels: Sequence[str | None],
    *,
    release: str = "k400",
    span: int = 2,
    start: int = 0,
) -> list[Clip]:
    """Distinct clips, one per label; ids begin with '-' as real YouTube ids may."""
    return [
        Clip(release, split, f"-x{start + i:02d}_Ab9", 30 * i, 30 * i + span, label)
        for i, label in enumerate(labels)
    ]


def build_root(
    root: Path,
    items: Sequence[Item],
    *,
    layout: LabelStyle = LabelStyle.RAW,
    release: str = "k400",
) -> Path:
    """Write each item's file into the layout and a manifest saying it is present."""
    with Manifest(manifest_path(root)) as m:
        m.set_meta("kind", "videos")
        m.set_meta("release", release)
        m.set_meta("layout", layout.value)
        for item in items:
            c = item.clip
            m.add_clips([c])
            fields: dict[str, object] = {"state": item.state, **dict(item.fields)}
            if item.spec is not None:
                rel = clip_relpath(c.split, c.label, c.key, layout)
                dest = root / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(media(item.spec), dest)
                if item.corrupt is not None:
                    corrupt_video(dest, item.corrupt, keep=item.keep)
                fields.update(path=rel, bytes=dest.stat().st_size, source="cvdf")
            m.update(c.release, c.split, c.key, **fields)
    return root


def rows(root: Path) -> dict[str, dict[str, object]]:
    """Every manifest row of ``root`` by clip key, as plain dicts."""
    with Manifest(manifest_path(root), readonly=True) as m:
        return {r.key: r.as_dict() for r in m.clips()}


def meta(root: Path, key: str) -> str | None:
    with Manifest(manifest_path(root), readonly=True) as m:
        return m.get_meta(key)
