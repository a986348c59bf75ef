"""The generated test videos have the fps, frame count and frame numbering they promise."""

from __future__ import annotations

import av
import pytest

from kinetix.errors import ConfigError
from kinetix.synthetic.media import VideoSpec, corrupt_video, frame_index, make_video


def test_index_pattern_round_trips_through_h264(tmp_path) -> None:
    spec = VideoSpec(duration=2.0, fps=25, width=64, height=80, gop=10, comment="clip-a")
    path = make_video(tmp_path / "a b's (clip).mp4", spec)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == 25
        assert container.metadata.get("comment") == "clip-a"
        assert len(container.streams.audio) == 1
        got = [frame_index(f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
    assert got == list(range(spec.num_frames)) == list(range(50))
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically


def test_large_frame_numbers_are_readable(tmp_path) -> None:
    spec = VideoSpec(duration=0.2, fps=5000, width=32, height=40, audio=False)
    path = make_video(tmp_path / "fast.mp4", spec)
    with av.open(str(path)) as container:
        frames = [frame_index(f.to_ndarray(format="gray")) for f in container.decode(video=0)]
    assert frames == list(range(1000))


def test_corruptions_damage_the_file(tmp_path) -> None:
    path = make_video(tmp_path / "c.mp4", VideoSpec(duration=1.0, audio=False, pattern="testsrc"))
    size = path.stat().st_size
    corrupt_video(path, "truncate", keep=0.5)
    assert path.stat().st_size == size // 2
    assert corrupt_video(path, "empty").stat().st_size == 0
    with pytest.raises(ConfigError, match="valid values are"):
        corrupt_video(path, "melt")


def test_odd_sizes_are_refused() -> None:
    with pytest.raises(ConfigError, match="even"):
        VideoSpec(width=33)
