"""``--format ava``: the Kinetics part of AVA-Kinetics as mmaction2's ``AVAKineticsDataset`` reads.

What mmaction2 (``mmaction/datasets/ava_dataset.py``, ``tools/data/ava_kinetics/``) expects,
and what is written to match it:

- ``rawframes/{youtube_id}_{S:06d}_{E:06d}/img_00001.jpg ...``: one folder per keyframe, of
  ``(E - S) * 30`` frames, ``E - S`` always 4 (``frame_window``: mmaction2 takes every folder
  to be as long as the last CSV line's; checked with mmaction2 1.2.0 itself in
  ``tests/test_ava_mmaction2.py``). mmaction2 reads ``S`` and ``E`` back from the folder name
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
from kinetix.errors import DecodeError
from kinetix.executors import Executor, run_tasks
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


def frame_window(keyframe: float, clip_start: int, clip_end: int, shift: int = 0) -> FrameWindow:
    """``2 * HALF_WINDOW`` whole seconds around the keyframe's second: every folder the same
    length, so every folder is what mmaction2 takes it for.

    mmaction2 (1.2.0 ``AVAKineticsDataset.load_data_list``) gives every keyframe of a CSV the
    ``shot_info`` ``(1, 30 * (E - S) + 1)`` of the file's *last* line, and ``SampleAVAFrames``
    clamps its indices to that: a folder shorter than that one is read past its end
    (``FileNotFoundError``), a longer one is clamped short. So the window is not cut at the
    clip's ends; it slides inside the clip instead, keeping the keyframe at least one second
    from either end of its folder (its image exists; mmaction2 never reads ``img_00000``),
    except in a video's first second, where the folder starts at 0. Past the ends of a clip
    file shorter than the window the images repeat its first or last frame. ``shift`` moves
    it by whole seconds (``AvaFramesWriter`` gives two keyframes of one second two folders
    that way).
    """
    second = math.floor(keyframe)
    length = 2 * HALF_WINDOW
    preferred = min(max(second - HALF_WINDOW, clip_start), clip_end - length) + shift
    start = max(0, min(max(preferred, second - length + 1), second - 1))
    return FrameWindow(start, start + length, second)


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


@dataclass(frozen=True)
class FolderTask:
    """One keyframe's frame folder to write; any worker can (``write_frame_folder``)."""

    video: str
    dest: str
    frames: tuple[int, ...]  # the clip frame of img_00001, img_00002, ...
    threads: int | None = None  # libavcodec threads (None: the decoder's default)


def folder_is_whole(dest: Path, count: int, video: Path) -> bool:
    """``dest`` holds exactly ``img_00001 .. img_{count}`` and is newer than its clip."""
    last = dest / TEMPLATE.format(count)
    return (
        last.is_file()
        and not (dest / TEMPLATE.format(count + 1)).exists()
        and last.stat().st_mtime >= video.stat().st_mtime
    )


def write_frame_folder(task: FolderTask) -> tuple[str, str | None]:
    """Decode the task's frames and write them as JPEGs, all or nothing (a temporary folder,
    then a rename). Returns (dest, None), or (dest, why) for a clip that cannot be decoded."""
    import simplejpeg

    dest = Path(task.dest)
    try:
        images = PyAVDecoder(threads=task.threads).read(
            task.video, np.asarray(task.frames, dtype=np.int64)
        )
    except DecodeError as exc:
        return task.dest, str(exc)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for k, image in enumerate(images, start=1):
            data = simplejpeg.encode_jpeg(image, quality=JPEG_QUALITY, colorspace="RGB")
            (tmp / TEMPLATE.format(k)).write_bytes(data)
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return task.dest, None


@dataclass
class _Planned:
    folder: str
    rows: list[list[object]]  # its lines of kinetics_{split}.csv
    index: list[object]  # its line of kinetics_{split}_index.csv
    key: str


class AvaFramesWriter(OutputBase):
    """The frame folders and ``kinetics_{split}.csv`` of one split.

    ``write`` plans a keyframe; ``close`` writes the folders that are not already whole (here,
    or on ``executor``'s workers), then the CSVs, leaving out a keyframe whose clip cannot be
    decoded (``failed``: folder, clip key, why). A folder appears whole or not at all, and one
    already whole and newer than its clip is kept, so a rerun decodes nothing new.
    """

    def __init__(
        self,
        out: Path,
        split: str,
        *,
        with_boxes: bool = True,
        executor: Executor | None = None,
        threads: int | None = None,
    ):
        self.out = out
        self.threads = threads
        self.frames = out / "rawframes"
        self.split = split
        self.executor = executor
        name = f"kinetics_{split}.csv" if with_boxes else f"kinetics_{split}_keyframes.csv"
        self.path = out / "annotations" / name
        self.index_path = out / "annotations" / f"kinetics_{split}_index.csv"
        self.with_boxes = with_boxes
        self.count = 0
        self.reused = 0
        self.boxes = 0
        self.failed: list[tuple[str, str, str]] = []
        self.crowded: list[AvaKeyframe] = []  # keyframes left out: no folder name was free
        self._used: set[str] = set()
        self._planned: list[_Planned] = []
        self._tasks: list[FolderTask] = []

    def write(self, keyframe: AvaKeyframe, root: Path) -> str | None:
        """Plan ``keyframe``'s folder and CSV lines; returns the folder's name, or None when
        it gets none (``crowded``: another keyframe of the same second holds every name)."""
        clip = keyframe.clip
        window = self._unique(keyframe)
        if window is None:
            self.crowded.append(keyframe)
            return None
        folder = window.folder(keyframe.youtube_id)
        self._used.add(folder)
        video = root / clip.path
        if folder_is_whole(self.frames / folder, window.count, video):
            self.reused += 1
        else:
            frames = tuple(int(f) for f in source_frames(keyframe, window))
            dest = str(self.frames / folder)
            self._tasks.append(FolderTask(str(video), dest, frames, self.threads))
        rows: list[list[object]] = [
            [folder, window.second, *map(_number, box), action, person]
            for box, actions, person in zip(keyframe.boxes, keyframe.actions, keyframe.persons)
            for action in actions
        ]
        if not self.with_boxes:
            rows = [[folder, window.second]]
        index = [
            folder, window.second, keyframe.youtube_id, _number(keyframe.timestamp), clip.path,
            clip.key, _number(keyframe.keyframe.seconds), keyframe.keyframe.frame,
            window.centre, window.count, " ".join(map(str, keyframe.lines)),
        ]  # fmt: skip
        self._planned.append(_Planned(folder, rows, index, clip.key))
        return folder

    def _unique(self, keyframe: AvaKeyframe) -> FrameWindow | None:
        """Two keyframes of one video in the same second get folders of different starts
        (the same length): the window slid a second one way, then the other. None when every
        window keeping the keyframe a second inside its folder is taken (3 keyframes of one
        second at most; 1 in the video's first two seconds)."""
        clip = keyframe.clip
        for shift in (0, -1, 1, -2, 2):
            window = frame_window(keyframe.timestamp, clip.timing.time_start, clip.time_end, shift)
            if window.folder(keyframe.youtube_id) not in self._used:
                return window
        return None

    def close(self) -> None:
        problems: dict[str, str] = {}

        def done(result: tuple[str, str | None]) -> None:
            dest, why = result
            if why is not None:
                problems[Path(dest).name] = why

        if self.executor is None or len(self._tasks) < 2:
            for task in self._tasks:
                done(write_frame_folder(task))
        else:
            run_tasks(self._tasks, write_frame_folder, self.executor, on_result=done)
        self._tasks = []
        csv_file = AtomicFile(self.path, "w", encoding="utf-8", newline="")
        index_file = AtomicFile(self.index_path, "w", encoding="utf-8", newline="")
        lines, index = (csv.writer(f.file, lineterminator="\n") for f in (csv_file, index_file))
        index.writerow(
            ["folder", "timestamp", "youtube_id", "keyframe", "clip", "key", "clip_seconds",
             "clip_frame", "centre_image", "frames", "lines"]
        )  # fmt: skip
        for plan in self._planned:
            if plan.folder in problems:
                self.failed.append((plan.folder, plan.key, problems[plan.folder]))
                continue
            lines.writerows(plan.rows)
            index.writerow(plan.index)
            self.count += 1
            self.boxes += len(plan.rows) if self.with_boxes else 0
        csv_file.commit()
        index_file.commit()

    def abort(self) -> None:
        self._planned, self._tasks = [], []  # each folder is atomic; the CSVs are not begun
