"""Run configuration: frozen dataclasses checked on construction; CLI flags map 1:1 to fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from kinetix.errors import ConfigError
from kinetix.store.layout import LabelStyle


class SourceKind(str, Enum):
    CVDF = "cvdf"
    YOUTUBE = "youtube"
    AUTO = "auto"  # CVDF (and the K400 replacement set) first, YouTube for what is still missing


class TrimMode(str, Enum):
    EXACT = "exact"  # re-encode: first frame at time_start, duration within one frame
    FAST = "fast"  # stream copy from the previous keyframe; real offset recorded


def _enum(cls: type[Enum], value: object, flag: str) -> Enum:
    if isinstance(value, cls):
        return value
    try:
        return cls(value)
    except ValueError:
        valid = ", ".join(str(m.value) for m in cls)  # type: ignore[attr-defined]
        raise ConfigError(f"invalid {flag} {value!r}; valid values are {valid}") from None


@dataclass(frozen=True)
class Selection:
    """Which annotated clips a run is about."""

    classes: tuple[str, ...] | None = None  # any label style; resolved by the label registry
    max_per_class: int | None = None
    seed: int = 0
    ids: tuple[str, ...] | None = None  # youtube ids or clip keys

    def __post_init__(self) -> None:
        if self.max_per_class is not None and self.max_per_class < 1:
            raise ConfigError(f"--max-per-class must be >= 1, got {self.max_per_class}")


@dataclass(frozen=True)
class TransferConfig:
    """HTTP behaviour shared by every transfer."""

    connections: int = 8  # Range connections per shard
    retries: int = 8
    backoff_base: float = 0.5
    backoff_max: float = 60.0
    timeout: float = 60.0
    chunk_size: int = 1 << 20
    user_agent: str = "kinetix"
    piece_size: int = 4 << 20  # Range piece handed to one connection; resume granularity

    def __post_init__(self) -> None:
        if not 1 <= self.connections <= 64:
            raise ConfigError(f"--connections must be between 1 and 64, got {self.connections}")
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0, got {self.retries}")
        if self.chunk_size < 1 or self.piece_size < 1:
            raise ConfigError(
                f"chunk_size and piece_size must be >= 1 byte, got {self.chunk_size} "
                f"and {self.piece_size}"
            )


@dataclass(frozen=True)
class YoutubeConfig:
    """How clips are fetched from YouTube with yt-dlp."""

    trim: TrimMode = TrimMode.EXACT
    short_side: int | None = None
    audio: bool = True
    cookies: Path | None = None
    cookies_from_browser: str | None = None
    proxy: str | None = None
    rate: float = 1.0  # requests per second, shared by every worker
    url_template: str = "https://www.youtube.com/watch?v={youtube_id}"
    margin: float = 3.0  # seconds fetched before/after the span, for keyframes
    max_attempts: int = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "trim", _enum(TrimMode, self.trim, "--trim"))
        if self.rate <= 0:
            raise ConfigError(f"--rate must be > 0 requests/s, got {self.rate}")
        if self.cookies is not None and self.cookies_from_browser is not None:
            raise ConfigError("use either --cookies or --cookies-from-browser, not both")
        if "{youtube_id}" not in self.url_template:
            raise ConfigError(
                f"--youtube-url-template {self.url_template!r} must contain {{youtube_id}}"
            )


@dataclass(frozen=True)
class DownloadConfig:
    """Everything ``kinetix download`` needs besides the release and split."""

    root: Path
    release: str
    split: str
    selection: Selection = field(default_factory=Selection)
    source: SourceKind = SourceKind.CVDF
    layout: LabelStyle = LabelStyle.RAW
    mirror: str | None = None  # base URL standing in for https://s3.amazonaws.com/kinetics/
    parallel: int = 4  # shards (or clips) at once
    keep_archives: bool = False
    transfer: TransferConfig = field(default_factory=TransferConfig)
    youtube: YoutubeConfig = field(default_factory=YoutubeConfig)
    retry_failed: tuple[str, ...] | None = None  # error codes to retry; () means all
    progress: bool = True
    executor: str = "local"
    annotations: Path | None = None  # a local annotation file instead of the fetched one
    offline: bool = False  # use cached annotation files only

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "source", _enum(SourceKind, self.source, "--source"))
        if not isinstance(self.layout, LabelStyle):
            object.__setattr__(self, "layout", LabelStyle.parse(str(self.layout)))
        if self.parallel < 1:
            raise ConfigError(f"--parallel must be >= 1, got {self.parallel}")
