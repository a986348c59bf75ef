"""Fused processing: each clip a download lands is resized / re-encoded, or cut into frames,
before it is placed, so the download root *is* the derived (or frames) root."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kinetix.config import AudioConfig, FramesConfig, JpegEncoder, ProcessConfig
from kinetix.errors import ConfigError
from kinetix.process.frames import FramesTask, extract_frames, frame_relpath, frames_settings
from kinetix.process.transcode import TranscodeTask, process_settings, transcode_clip
from kinetix.store.layout import partial_dir
from kinetix.store.manifest import ClipState, ClipUpdate

ORIGINALS_DIR = "originals"  # --keep-originals: ROOT/originals/{split}/{label}/{key}.mp4
_STAGE = "landed"  # ROOT/.kinetix/partial/landed/: outputs made, not yet placed
_LANDING = "landing"  # ROOT/.kinetix/partial/landing/: originals not kept, while in use


@dataclass(frozen=True)
class LandingSpec:
    """What a download makes of each clip as it lands (picklable: it travels with the tasks)."""

    process: ProcessConfig | None = None  # a derived video root (resize / fps / codec)
    frames: FramesConfig | None = None  # a frames root
    keep_originals: bool = False
    encoder: JpegEncoder = JpegEncoder.FFMPEG  # frames: resolved, never auto
    threads: int = 1  # ffmpeg threads per clip

    @property
    def kind(self) -> str:
        """The root's ``kind`` meta: ``frames`` or ``videos``."""
        return "frames" if self.frames is not None else "videos"

    def settings(self) -> dict[str, Any]:
        """What the root's outputs are made with (the ``settings`` meta a rerun must match)."""
        if self.frames is not None:
            return {"fused": "frames", **frames_settings(self.frames, self.encoder)}
        assert self.process is not None
        return {"fused": "videos", **process_settings(self.process)}

    def output_relpath(self, relpath: str) -> str:
        """Where the output of the clip at ``relpath`` goes (a frames root: its folder)."""
        return frame_relpath(relpath) if self.frames is not None else relpath

    def originals(self, root: Path) -> Path:
        """Where originals land: kept under ``ROOT/originals/``, else in the partial folder."""
        return root / ORIGINALS_DIR if self.keep_originals else partial_dir(root) / _LANDING


def configs_from_settings(
    settings: dict[str, Any],
) -> tuple[ProcessConfig | None, FramesConfig | None]:
    """The configs a fused root was made with, from its ``settings`` meta (for refetch)."""
    made = dict(settings)
    fused = made.pop("fused", None)
    if fused == "videos":
        return ProcessConfig(**made), None
    if fused == "frames":
        audio = made.pop("audio", None)
        made.pop("libjpeg_quality", None)
        return None, FramesConfig(audio=None if audio is None else AudioConfig(
            sample_rate=audio["rate"], channels=audio["channels"]), **made)  # fmt: skip
    raise ConfigError(
        f"the root was made by 'kinetix process' or 'kinetix frames' ({settings}), not by a "
        "download: refetch into its source root and rerun that command"
    )


def clear_stage(root: Path) -> None:
    """Drop what a killed run made and never placed (the caller holds the root's lock)."""
    for name in (_STAGE, _LANDING):
        shutil.rmtree(partial_dir(root) / name, ignore_errors=True)


def derive_landed(
    spec: LandingSpec, release: str, split: str, key: str, relpath: str, src: Path, root: Path
) -> tuple[ClipUpdate, Path]:
    """Make the output of the clip just written at ``src`` under the stage folder.

    Returns the worker's update (present, with the output's checked facts, or failed with the
    reason) and where the output was staged; ``place`` moves it into the root.
    """
    stage = partial_dir(root) / _STAGE
    stage.mkdir(parents=True, exist_ok=True)
    out_rel = spec.output_relpath(relpath)
    staged = stage / f"{split}.{key}{'' if spec.frames is not None else '.mp4'}"
    tmp = staged.with_name(staged.name + ".tmp")
    update: ClipUpdate
    if spec.frames is not None:
        frames = FramesTask(release, split, key, out_rel, str(src), str(staged), str(tmp),
                            spec.frames, spec.threads, None, spec.encoder)  # fmt: skip
        update = extract_frames(frames)
    else:
        assert spec.process is not None
        video = TranscodeTask(release, split, key, out_rel, str(src), str(staged), str(tmp),
                              spec.process, spec.threads)  # fmt: skip
        update = transcode_clip(video)
    return update, staged


def place(staged: Path, dest: Path) -> None:
    """Rename a staged output into place (a frames folder left by an earlier run is replaced)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_dir() and not dest.is_symlink():
        shutil.rmtree(dest)
    os.replace(staged, dest)


def landed_fields(update: ClipUpdate, origin: Path | None) -> dict[str, Any]:
    """The row of a placed output: its facts, pointing back at the kept original (if any)."""
    fields = dict(update.fields)
    fields.update(origin=None if origin is None else str(origin), sha256=None)
    fields["state"] = ClipState.PRESENT.value
    return fields


def short_output(source: Mapping[str, Any], output: Mapping[str, Any]) -> str | None:
    """Why an output made from a checked source stops early (None: it covers the source).

    The source's duration is its index's; the output's comes from its own check (decoded
    first to last frame) or, for a frame folder, its frame count. An output more than 1.5
    frames short means ffmpeg could not decode the source to its end: the source is damaged.
    """
    want = source.get("duration")
    fps = output.get("fps") or source.get("fps")
    if not want or not fps:
        return None
    got = output.get("duration")
    if got is None and output.get("num_frames"):
        got = output["num_frames"] / fps
    if got is None or got >= want - 1.5 / fps - 0.05:
        return None
    return (
        f"its frames decode for {got:.2f} s of the {want:.2f} s its index promises: the clip "
        "is damaged towards its end"
    )
