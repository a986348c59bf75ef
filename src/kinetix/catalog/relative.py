"""Annotation times re-expressed on the clip file: seconds from its first frame, frame indices.

An annotation time is in seconds of the YouTube video. A clip file's first frame sits at
``time_start + start_offset`` of that video. ``start_offset`` is 0 for an exact cut (CVDF
clips). For a fast-trimmed YouTube clip it is what the manifest recorded from the probe, and it
is negative when the clip starts at the keyframe before ``time_start`` (a lead-in). So the same
Countix span or AVA keyframe lands on the right frame in either kind of clip.

Frame ``i`` shows times ``[i / fps, (i + 1) / fps)`` of the clip. A start time maps to the
frame showing it (floor), and an end time to the first frame after it (ceil, exclusive). A
tolerance of a microsecond absorbs float noise, so ``3.2 * 25`` is frame 80 and not 79.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kinetix.catalog.downstream import AvaRow, CountixRow
from kinetix.errors import ConfigError

_EPSILON = 1e-6


@dataclass(frozen=True)
class ClipTiming:
    """Where a clip file sits in its video, from the manifest (no probing)."""

    time_start: int  # the annotated segment's start, seconds of the video
    fps: float
    start_offset: float = 0.0  # first frame's time minus time_start (fast trims)
    num_frames: int | None = None

    def __post_init__(self) -> None:
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise ConfigError(f"fps must be > 0, got {self.fps}")

    @property
    def first_frame_time(self) -> float:
        return self.time_start + self.start_offset

    def seconds(self, video_time: float) -> float:
        """``video_time`` as seconds from the clip's first frame."""
        return video_time - self.first_frame_time

    def frame_at(self, video_time: float) -> int:
        """The index of the frame showing ``video_time``."""
        return math.floor(self.seconds(video_time) * self.fps + _EPSILON)

    def frame_after(self, video_time: float) -> int:
        """The first frame index after ``video_time`` (an exclusive end)."""
        return math.ceil(self.seconds(video_time) * self.fps - _EPSILON)


@dataclass(frozen=True)
class CountixOnClip:
    """A Countix row on its clip file: the repetition span in clip seconds and frames."""

    start_seconds: float
    end_seconds: float
    start_frame: int
    end_frame: int  # exclusive
    count: int


@dataclass(frozen=True)
class KeyframeOnClip:
    """An AVA-Kinetics keyframe on its clip file."""

    seconds: float
    frame: int


def countix_on_clip(row: CountixRow, timing: ClipTiming) -> CountixOnClip:
    start, end = row.repetition_start, row.repetition_end
    end_frame = timing.frame_after(end)
    if timing.num_frames is not None:
        # The span is inside the annotated segment (rows outside are rejected when read);
        # a file a frame short of the segment must not yield an index past its last frame.
        end_frame = min(end_frame, timing.num_frames)
    return CountixOnClip(
        timing.seconds(start), timing.seconds(end), timing.frame_at(start), end_frame, row.count
    )


def keyframe_on_clip(row: AvaRow, timing: ClipTiming) -> KeyframeOnClip:
    return KeyframeOnClip(timing.seconds(row.timestamp), timing.frame_at(row.timestamp))
