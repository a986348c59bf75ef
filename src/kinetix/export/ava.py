"""``--format ava``: the Kinetics part of AVA-Kinetics as mmaction2's ``AVAKineticsDataset`` reads.

What mmaction2 (``mmaction/datasets/ava_dataset.py``, ``tools/data/ava_kinetics/``) expects,
and what is written to match it:

- ``rawframes/{youtube_id}_{S:06d}_{E:06d}/img_00001.jpg ...``: one folder per keyframe, of
  ``(E - S) * 30`` frames. mmaction2 reads ``S`` and ``E`` back from the folder name
  (``timestamp_start``/``timestamp_end``), puts the keyframe at index ``30 * (t - S)`` for
  the integer ``t`` of the CSV row, and reads indices ``1 .. 30 * (E - S)`` as
  ``img_{:05}.jpg`` (``start_index`` 0, ``shot_info`` ``(1, 30 * (E - S) + 1)``).
- ``annotations/kinetics_{split}.csv``, no header, one line per box and action:
  ``folder,t,x1,y1,x2,y2,action_id,person_id`` with the box normalised to [0, 1], the action
  1..80, the person -1 when the file has none (as ``prepare_annotation.py`` writes).
- ``annotations/ava_action_list_v2.2.pbtxt``: the 80 actions as ``label { name: … label_id: …
  label_type: … }`` (what ``read_labelmap`` parses).

Where this is exact and mmaction2's own recipe is not: the recipe cuts at whole seconds and
writes ``ffmpeg -r 30`` frames, so ``img_00001`` is time ``S`` and the keyframe index
``30 * (t - S)`` shows ``t - 1/30``, and a keyframe at 22.07 s is truncated to 22 s. Here
``S``, ``E`` and ``t`` are whole seconds (``t`` the keyframe's), and frame ``img_{k:05d}``
shows video time ``keyframe + (k - 30 * (t - S)) / 30``: the index mmaction2 computes shows
the annotated keyframe itself, fractional or not. Each frame is the clip frame showing that
time (``catalog/relative.py``: the manifest's fps and start offset, so a fast-trimmed clip's
lead-in is accounted for); times past either end of the clip file repeat its first or last
frame, as mmaction2 clamps indices to the shot.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kinetix.catalog.downstream import ava_action_type, ava_actions
from kinetix.data.decoders import PyAVDecoder
from kinetix.data.downstream import AvaKeyframe
from kinetix.errors import MissingDependencyError
from kinetix.export.atomic import AtomicFile
from kinetix.export.records import OutputBase

log = logging.getLogger(__name__)

FPS = 30  # mmaction2's AVA frame rate (``AVAKineticsDataset(fps=30)``)
HALF_WINDOW = 2  # seconds each side of the keyframe, as tools/data/ava_kinetics/cut_kinetics.py
TEMPLATE = "img_{:05d}.jpg"
ACTION_LIST = "ava_action_list_v2.2.pbtxt"
JPEG_QUALITY = 95


@dataclass(frozen=True)
class FrameWindow:
    """The whole seconds ``[start, end)`` of video a keyframe's folder covers, at 30 fps."""

    start: int
    end: int
    second: int  # the keyframe's whole second: the CSV's timestamp

    @property
    def count(self) -> int:
        return (self.end - self.start) * FPS

    @property
    def centre(self) -> int:
        """The image number (``img_{centre:05d}``) mmaction2 takes as the keyframe."""
        return FPS * (self.second - self.start)

    def folder(self, youtube_id: str) -> str:
        return f"{youtube_id}_{self.start:06d}_{self.end:06d}"

    def video_times(self, keyframe: float) -> np.ndarray:
        """Video time shown by ``img_00001 .. img_{count}``: the keyframe at ``centre``."""
        return keyframe + (np.arange(1, self.count + 1) - self.centre) / FPS


def frame_window(keyframe: float, clip_start: int, clip_end: int) -> FrameWindow:
    """``HALF_WINDOW`` seconds each side of the keyframe's second, inside its clip.

    At least one second on either side, so the keyframe's image exists: mmaction2 never reads
    index 0 (``img_00000``).
    """
    second = math.floor(keyframe)
    start = max(0, min(max(second - HALF_WINDOW, clip_start), second - 1))
    end = max(min(second + HALF_WINDOW, clip_end), second + 1)
    return FrameWindow(start, end, second)


def source_frames(keyframe: AvaKeyframe, window: FrameWindow) -> np.ndarray:
    """The clip frame each image shows: the frame showing its time, clamped to the file."""
    timing = keyframe.clip.timing
    clip_seconds = window.video_times(keyframe.timestamp) - timing.first_frame_time
    frames = np.floor(clip_seconds * timing.fps + 1e-6).astype(np.int64)
    return np.clip(frames, 0, keyframe.clip.num_frames - 1)


def action_list_text() -> str:
    """The AVA v2.2 action list in the official ``.pbtxt`` form."""
    items = []
    for action, name in enumerate(ava_actions(), start=1):
        items.append(
            f'label {{\n  name: "{name}"\n  label_id: {action}\n'
            f"  label_type: {ava_action_type(action)}\n}}\n"
        )
    return "".join(items)


def write_action_list(out: Path) -> Path:
    file = AtomicFile(out / "annotations" / ACTION_LIST, "w", encoding="utf-8")
    file.file.write(action_list_text())
    return file.commit()


def _number(value: float) -> str:
    """The shortest text that reads back as ``value`` (0.344, not 0.34400000000000003)."""
    return repr(float(value))


class AvaFramesWriter(OutputBase):
    """The frame folders and ``kinetics_{split}.csv`` of one split, a keyframe at a time.

    A folder is written under a temporary name and renamed when whole; one that is already
    whole and newer than its clip is kept, so a rerun decodes nothing new.
    """

    def __init__(self, out: Path, split: str, *, with_boxes: bool = True):
        try:
            import simplejpeg
        except ImportError:
            raise MissingDependencyError("simplejpeg", requirement="simplejpeg") from None
        self._jpeg = simplejpeg
        self.out = out
        self.frames = out / "rawframes"
        self.split = split
        name = f"kinetics_{split}.csv" if with_boxes else f"kinetics_{split}_keyframes.csv"
        self.path = out / "annotations" / name
        self.index_path = out / "annotations" / f"kinetics_{split}_index.csv"
        self.count = 0
        self.reused = 0
        self.boxes = 0
        self._decoder = PyAVDecoder()
        self._used: set[str] = set()
        self._csv_file = AtomicFile(self.path, "w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._csv_file.file, lineterminator="\n")
        self._index_file = AtomicFile(self.index_path, "w", encoding="utf-8", newline="")
        self._index = csv.writer(self._index_file.file, lineterminator="\n")
        self._index.writerow(
            ["folder", "timestamp", "youtube_id", "keyframe", "clip", "key", "clip_seconds",
             "clip_frame", "centre_image", "frames", "lines"]
        )  # fmt: skip

    def write(self, keyframe: AvaKeyframe, root: Path) -> str:
        clip = keyframe.clip
        window = frame_window(keyframe.timestamp, clip.timing.time_start, clip.time_end)
        window = self._unique(keyframe.youtube_id, window)
        folder = window.folder(keyframe.youtube_id)
        self._used.add(folder)
        self._write_frames(root / clip.path, self.frames / folder, keyframe, window)
        for box, actions, person in zip(keyframe.boxes, keyframe.actions, keyframe.persons):
            for action in actions:
                self._csv.writerow([folder, window.second, *map(_number, box), action, person])
                self.boxes += 1
        if not keyframe.boxes and self.path.name.endswith("_keyframes.csv"):
            self._csv.writerow([folder, window.second])
        self._index.writerow(
            [folder, window.second, keyframe.youtube_id, _number(keyframe.timestamp), clip.path,
             clip.key, _number(keyframe.keyframe.seconds), keyframe.keyframe.frame,
             window.centre, window.count, " ".join(map(str, keyframe.lines))]
        )  # fmt: skip
        self.count += 1
        return folder

    def _unique(self, youtube_id: str, window: FrameWindow) -> FrameWindow:
        """Two keyframes of one video in the same second get folders of different ends."""
        while window.folder(youtube_id) in self._used:
            window = FrameWindow(window.start, window.end + 1, window.second)
        return window

    def _write_frames(
        self, video: Path, dest: Path, keyframe: AvaKeyframe, window: FrameWindow
    ) -> None:
        last = dest / TEMPLATE.format(window.count)
        if (
            last.is_file()
            and not (dest / TEMPLATE.format(window.count + 1)).exists()
            and last.stat().st_mtime >= video.stat().st_mtime
        ):
            self.reused += 1
            return
        images = self._decoder.read(video, source_frames(keyframe, window))
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            for k, image in enumerate(images, start=1):
                data = self._jpeg.encode_jpeg(image, quality=JPEG_QUALITY, colorspace="RGB")
                (tmp / TEMPLATE.format(k)).write_bytes(data)
            if dest.exists():
                shutil.rmtree(dest)
            tmp.rename(dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def close(self) -> None:
        self._csv_file.commit()
        self._index_file.commit()

    def abort(self) -> None:
        self._csv_file.discard()
        self._index_file.discard()
