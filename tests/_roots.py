"""Build small kinetix roots for export and loader tests: real clips, a real manifest."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av

from kinetix.catalog.clip import Clip
from kinetix.catalog.labels import LabelRegistry
from kinetix.process.ffmpeg import run_ffmpeg
from kinetix.store.layout import LabelStyle, clip_relpath, label_folder, manifest_path
from kinetix.store.manifest import Manifest
from kinetix.synthetic.media import VideoSpec, frame_index, make_video

# 64x80 so each of the index pattern's five bands is 16 px: frame_index() reads it back exactly
TINY = VideoSpec(duration=2.0, fps=25, width=64, height=80, audio=False, gop=10)


@dataclass(frozen=True)
class RootClip:
    """One clip of a test root and what its manifest row says."""

    clip: Clip
    state: str = "present"
    verify: str | None = "good"
    trim: str | None = "exact"
    store_index: bool = True  # False: label_index NULL, so the registry must fill it
    media: Path | None = None  # this file instead of the shared generated clip


def clips(
    split: str, labels: Sequence[str | None], *, release: str = "k400", start: int = 0
) -> list[Clip]:
    """Distinct clips, one per label given (repeat a label for several clips of it)."""
    return [
        Clip(release, split, f"vid{start + i:03d}-x_Y", 10 * i, 10 * i + 10, label)
        for i, label in enumerate(labels)
    ]


def build_videos_root(
    root: Path,
    items: Sequence[RootClip],
    spec: VideoSpec = TINY,
    *,
    layout: LabelStyle = LabelStyle.RAW,
    release: str = "k400",
) -> Path:
    """Write each present clip (one encode, then copies) and a manifest saying so."""
    source = make_video(root / ".source.mp4", spec)
    indices = LabelRegistry.for_release(release).indices
    with Manifest(manifest_path(root)) as m:
        m.set_meta("kind", "videos")
        m.set_meta("release", release)
        m.set_meta("layout", layout.value)
        for item in items:
            c = item.clip
            m.add_clips([c], indices if item.store_index else None)
            fields: dict[str, object] = {"state": item.state, "verify": item.verify}
            if item.state == "present":
                rel = clip_relpath(c.split, c.label, c.key, layout)
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(item.media or source, root / rel)
                fields.update(
                    path=rel, num_frames=count_frames(root / rel), fps=spec.fps, width=spec.width,
                    height=spec.height, duration=spec.duration, trim=item.trim, source="cvdf",
                    bytes=(root / rel).stat().st_size,
                )  # fmt: skip
            m.update(c.release, c.split, c.key, **fields)
    source.unlink()
    return root


def count_frames(path: Path) -> int:
    """Frames a player shows (PyAV honours edit lists), as verify records them."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def cut_fast(source: Path, dest: Path, start: float) -> int:
    """``ffmpeg -ss START -c copy``, as a fast YouTube trim does: the file keeps the frames from
    the previous keyframe behind an edit list. Returns the frame number shown first."""
    run_ffmpeg(["-ss", str(start), "-i", str(source), "-c", "copy", "-y", str(dest)])
    with av.open(str(dest)) as container:
        return frame_index(next(container.decode(video=0)).to_ndarray(format="rgb24"))


def build_frames_root(root: Path, videos_root: Path, *, release: str = "k400") -> Path:
    """A frames root as ``kinetix frames`` writes it: ``img_00001.jpg``... per present clip."""
    import cv2

    with (
        Manifest(manifest_path(videos_root), readonly=True) as src,
        Manifest(manifest_path(root)) as m,
    ):
        style = LabelStyle(src.get_meta("layout") or "raw")
        m.set_meta("kind", "frames")
        m.set_meta("layout", style.value)
        m.set_meta("release", release)
        m.set_meta("source_root", str(videos_root))
        for row in src.clips():
            m.add_clips([row.to_clip()], None)
            fields = {k: row.values[k] for k in ("label_index", "state", "verify")}
            if row.state == "present" and row.path:
                folder = f"{row.split}/{label_folder(row.label, style)}/{row.key}"
                (root / folder).mkdir(parents=True, exist_ok=True)
                with av.open(str(videos_root / row.path)) as container:
                    for n, frame in enumerate(container.decode(video=0), start=1):
                        bgr = frame.to_ndarray(format="bgr24")
                        cv2.imwrite(str(root / folder / f"img_{n:05d}.jpg"), bgr)
                fields.update(path=folder, num_frames=n, fps=row.values["fps"])
            m.update(row.release, row.split, row.key, **fields)
    return root
