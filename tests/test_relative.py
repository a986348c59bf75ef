"""Annotation times on the clip file: seconds from its first frame and frame indices."""

from __future__ import annotations

import pytest

from kinetix.catalog.downstream import AvaRow, CountixRow
from kinetix.catalog.relative import ClipTiming, countix_on_clip, keyframe_on_clip
from kinetix.errors import ConfigError


def countix(start: float, end: float, count: int = 5) -> CountixRow:
    return CountixRow(2, "-0aaaaaaaaa", 100, 110, start, end, count, "x")


def test_span_starting_3_2_s_in_starts_at_frame_80_of_a_25_fps_clip() -> None:
    on_clip = countix_on_clip(countix(103.2, 107.5), ClipTiming(100, 25.0))
    assert on_clip.start_seconds == pytest.approx(3.2)
    assert on_clip.end_seconds == pytest.approx(7.5)
    assert (on_clip.start_frame, on_clip.end_frame, on_clip.count) == (80, 188, 5)


def test_fast_trim_lead_in_shifts_every_index() -> None:
    # a YouTube clip cut at the keyframe 0.4 s before time_start: its frame 0 is video 99.6 s
    timing = ClipTiming(100, 25.0, start_offset=-0.4)
    on_clip = countix_on_clip(countix(103.2, 107.5), timing)
    assert on_clip.start_seconds == pytest.approx(3.6)
    assert (on_clip.start_frame, on_clip.end_frame) == (90, 198)
    key = keyframe_on_clip(AvaRow(1, "-0aaaaaaaaa", 105.0), ClipTiming(100, 30.0, -0.4))
    assert key.seconds == pytest.approx(5.4) and key.frame == 162


def test_end_never_past_the_last_frame_and_fps_checked() -> None:
    timing = ClipTiming(100, 10.0, num_frames=99)
    assert countix_on_clip(countix(100.0, 110.0), timing).end_frame == 99
    with pytest.raises(ConfigError, match="fps must be > 0"):
        ClipTiming(0, 0.0)
