"""Clips from YouTube: the source (``source.py``), format choice (``formats.py``), cookies
(``cookies.py``), whether this machine can download at all (``readiness.py``) and what a
failure means (``errors.py``). The names callers use are importable from here."""

from kinetix.sources.youtube.cookies import load_cookies, parse_browser_spec
from kinetix.sources.youtube.errors import Failure, classify, classify_message, clean_message
from kinetix.sources.youtube.formats import (
    MAX_HEIGHT,
    choose_formats,
    ffmpeg_has_request_size,
    merged_format,
)
from kinetix.sources.youtube.readiness import youtube_readiness
from kinetix.sources.youtube.source import (
    ADVICE,
    MIN_TAIL,
    SOURCE_NAME,
    TryOutcome,
    YoutubeSource,
    YoutubeTask,
    YoutubeTry,
)

__all__ = [
    "ADVICE",
    "MAX_HEIGHT",
    "MIN_TAIL",
    "SOURCE_NAME",
    "Failure",
    "TryOutcome",
    "YoutubeSource",
    "YoutubeTask",
    "YoutubeTry",
    "choose_formats",
    "classify",
    "classify_message",
    "clean_message",
    "ffmpeg_has_request_size",
    "load_cookies",
    "merged_format",
    "parse_browser_spec",
    "youtube_readiness",
]
