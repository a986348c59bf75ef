"""A clip's audio track as PCM WAV (16 kHz mono by default), the input audio models expect."""

from __future__ import annotations

import os
from pathlib import Path

from kinetix.config import AudioConfig
from kinetix.process.ffmpeg import file_arg, run_ffmpeg

WAV_NAME = "audio.wav"


def audio_output_args(dest: str | os.PathLike[str], config: AudioConfig) -> list[str]:
    """ffmpeg output arguments writing the first audio track of input 0 to ``dest``.

    An output of its own, so one ffmpeg run can write frames and audio from a single decode.
    """
    return [
        "-map", "0:a:0", "-vn", "-ac", str(config.channels), "-ar", str(config.sample_rate),
        "-c:a", "pcm_s16le", "-f", "wav", "-y", file_arg(dest),
    ]  # fmt: skip


def extract_audio(
    src: str | os.PathLike[str], dest: str | os.PathLike[str], config: AudioConfig
) -> Path:
    """Write ``src``'s audio to ``dest`` (atomically); ``FFmpegError`` when it has none."""
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        run_ffmpeg(["-i", file_arg(src), *audio_output_args(tmp, config)])
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest
