"""Run configuration: frozen dataclasses checked on construction; CLI flags map 1:1 to fields."""

from __future__ import annotations

import re
from dataclasses import MISSING, dataclass, field, fields
from enum import Enum
from pathlib import Path

from kinetix.catalog.labels import LabelStyle
from kinetix.errors import ConfigError


class SourceKind(str, Enum):
    CVDF = "cvdf"
    YOUTUBE = "youtube"
    AUTO = "auto"  # CVDF (and the K400 replacement set) first, YouTube for what is still missing


class TrimMode(str, Enum):
    EXACT = "exact"  # re-encode: first frame at time_start, duration within one frame
    FAST = "fast"  # stream copy from the previous keyframe; real offset recorded


class JpegEncoder(str, Enum):
    """Who writes ``kinetix frames``' JPEGs: the same frames, quantised differently."""

    AUTO = "auto"  # ffmpeg (kept so scripts that said auto still run)
    FFMPEG = "ffmpeg"  # one ffmpeg run per clip: byte for byte `ffmpeg -q:v N`'s JPEGs
    TURBO = "turbo"  # PyAV + libjpeg-turbo from the YUV planes: equal PSNR, ~25% larger


def default_of(cls: type, name: str) -> object:
    """The default of field ``name`` of config dataclass ``cls``: the CLI's flags read theirs here.

    Enum defaults come back as their value (what a flag is spelt with).
    """
    for f in fields(cls):
        if f.name == name:
            if f.default is not MISSING:
                value = f.default
            elif f.default_factory is not MISSING:
                value = f.default_factory()
            else:
                raise TypeError(f"{cls.__name__}.{name} has no default")
            return value.value if isinstance(value, Enum) else value
    raise TypeError(f"{cls.__name__} has no field {name!r}")


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
    # A connection that delivers less than min_rate bytes/s over any ``timeout``-second window
    # (or nothing at all for that long) is stalled: dropped and retried at most twice more.
    timeout: float = 30.0
    min_rate: int = 1024
    chunk_size: int = 1 << 20
    user_agent: str = "kinetix"
    piece_size: int = 4 << 20  # Range piece handed to one connection; resume granularity

    def __post_init__(self) -> None:
        if not 1 <= self.connections <= 64:
            raise ConfigError(f"--connections must be between 1 and 64, got {self.connections}")
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0, got {self.retries}")
        if not 0 < self.timeout <= 3600:
            raise ConfigError(f"--timeout must be > 0 and <= 3600 seconds, got {self.timeout:g}")
        if self.min_rate < 0:
            raise ConfigError(f"--min-rate must be >= 0 bytes/s, got {self.min_rate}")
        if self.piece_size < 1:
            raise ConfigError(
                f"--piece-size must be at least 1 byte, got {self.piece_size}; it is the "
                "size of one Range request and the resume step (e.g. 4M)"
            )
        if self.chunk_size < 1:
            raise ConfigError(f"chunk_size must be at least 1 byte, got {self.chunk_size}")


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
    # Seconds fetched past time_end (at least 0.5). None is fetched before time_start: the
    # seek already starts at the keyframe at or before it, which is all either trim needs.
    margin: float = 0.5  # more only costs bytes: 3 s fetched 20-40% more per clip
    max_attempts: int = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "trim", _enum(TrimMode, self.trim, "--trim"))
        if self.margin < 0:
            raise ConfigError(f"--margin must be >= 0 seconds, got {self.margin}")
        if self.rate <= 0:
            raise ConfigError(f"--rate must be > 0 requests/s, got {self.rate}")
        if self.cookies is not None and self.cookies_from_browser is not None:
            raise ConfigError("use either --cookies or --cookies-from-browser, not both")
        if "{youtube_id}" not in self.url_template:
            raise ConfigError(
                f"--youtube-url-template {self.url_template!r} must contain {{youtube_id}}"
            )


_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*([KMGT]i?B?)?\s*$", re.IGNORECASE)
_WALLTIME = re.compile(r"^(\d+-)?\d{1,3}(:\d{2}){0,2}$")
EXECUTOR_KINDS = "local, dask, dask://HOST:PORT, slurm"


@dataclass(frozen=True)
class SlurmConfig:
    """The shape of each SLURM job that runs one Dask worker (``--executor slurm``)."""

    partition: str | None = None  # None: the cluster's default partition
    cores: int = 4
    memory: str = "16GB"
    walltime: str = "04:00:00"
    account: str | None = None
    extra: tuple[str, ...] = ()  # more ``#SBATCH`` options, e.g. ``--qos=low``
    wait: float = 600.0  # seconds to wait for the first worker while jobs pend for a good reason

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra", tuple(self.extra))
        if self.cores < 1:
            raise ConfigError(f"--slurm-cores must be >= 1, got {self.cores}")
        if not _MEMORY.match(self.memory):
            raise ConfigError(f"--slurm-memory {self.memory!r} is not a size; use e.g. 2GB, 512MB")
        if not _WALLTIME.match(self.walltime):
            raise ConfigError(
                f"--slurm-walltime {self.walltime!r} is not a SLURM time; use e.g. 04:00:00, "
                "1-00:00:00 or 30"
            )
        for line in self.extra:
            if not line.startswith("-"):
                raise ConfigError(
                    f"--slurm-extra {line!r} must be an sbatch option such as --qos=low"
                )
        if self.wait <= 0:
            raise ConfigError(f"--slurm-wait must be > 0 seconds, got {self.wait}")

    @classmethod
    def from_file(cls, path: Path, **overrides: object) -> SlurmConfig:
        """Read the ``[slurm]`` table of a TOML file (keys are the field names); flags win."""
        import tomllib

        try:
            with open(path, "rb") as f:
                table = tomllib.load(f).get("slurm", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"--slurm-config {path}: {exc}") from None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(
                f"--slurm-config {path}: unknown key(s) {', '.join(unknown)}; valid keys are "
                f"{', '.join(sorted(known))}"
            )
        table.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**table)


@dataclass(frozen=True)
class ExecutorConfig:
    """Where a stage's tasks run: ``local`` pools, a Dask cluster, or Dask workers in SLURM jobs.

    ``in_flight`` caps the tasks handed to the cluster at once (the rest are fed as results come
    back), so a 650k-clip run never queues 650k tasks on a scheduler. ``scheduler_host`` is the
    address the scheduler (and, on one machine, the workers) listen on: ``127.0.0.1`` for
    ``dask``; for ``slurm`` the machine's own name unless given (workers on other nodes must
    reach it).
    """

    spec: str = "local"  # local | dask | dask://HOST:PORT (tcp://HOST:PORT) | slurm
    in_flight: int | None = None  # None: 4 per worker thread
    scheduler_host: str | None = None
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    dry_run: bool = False  # print the job script (slurm) and stop before starting anything

    def __post_init__(self) -> None:
        spec = self.spec.strip()
        object.__setattr__(self, "spec", spec)
        ok = spec in ("local", "dask", "slurm")
        if spec.startswith(("dask://", "tcp://")):
            host, _, port = spec.split("://", 1)[1].rpartition(":")
            ok = bool(host) and port.isdigit()
        if not ok:
            raise ConfigError(f"invalid --executor {spec!r}; valid values are {EXECUTOR_KINDS}")
        if self.in_flight is not None and self.in_flight < 1:
            raise ConfigError(f"--in-flight must be >= 1, got {self.in_flight}")

    @property
    def kind(self) -> str:
        """``local``, ``dask``, ``address`` (an existing scheduler) or ``slurm``."""
        return "address" if "://" in self.spec else self.spec

    @property
    def address(self) -> str | None:
        return "tcp://" + self.spec.split("://", 1)[1] if "://" in self.spec else None

    @property
    def is_local(self) -> bool:
        return self.spec == "local"

    @classmethod
    def coerce(cls, value: ExecutorConfig | str) -> ExecutorConfig:
        """An ``ExecutorConfig`` from itself or from a bare ``--executor`` value."""
        if isinstance(value, ExecutorConfig):
            return value
        if not isinstance(value, str):
            raise ConfigError(f"invalid executor {value!r}; valid values are {EXECUTOR_KINDS}")
        return cls(value)


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
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    annotations: Path | None = None  # a local annotation file instead of the fetched one
    # countix / ava-kinetics: a local K700-2020 file to resolve their rows against
    # (``annotations`` is then the set's own CSV)
    base_annotations: Path | None = None
    offline: bool = False  # use cached annotation files only
    # --max-clip-size: a shard member declaring more is refused (oversized_member), unwritten
    max_clip_bytes: int = 1 << 30
    # Fused processing: each clip is resized/re-encoded (``process``) or cut into frames
    # (``frames``) as it lands, and the root holds those outputs; originals only when kept.
    process: ProcessConfig | None = None
    frames: FramesConfig | None = None
    keep_originals: bool = False
    inline_verify: bool = True  # check each clip before it is placed (off only to measure it)

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        if self.max_clip_bytes < 1:
            raise ConfigError(f"--max-clip-size must be at least 1 byte, got {self.max_clip_bytes}")
        object.__setattr__(self, "source", _enum(SourceKind, self.source, "--source"))
        object.__setattr__(self, "executor", ExecutorConfig.coerce(self.executor))
        if self.process is not None and self.frames is not None:
            raise ConfigError("use either --frames or the video flags (--short-side ...), not both")
        if self.keep_originals and self.process is None and self.frames is None:
            raise ConfigError(
                "--keep-originals only applies with --short-side, --fps, --codec or --frames"
            )
        if not isinstance(self.layout, LabelStyle):
            object.__setattr__(self, "layout", LabelStyle.parse(str(self.layout)))
        if self.parallel < 1:
            raise ConfigError(f"--parallel must be >= 1, got {self.parallel}")


class VerifyLevel(str, Enum):
    QUICK = "quick"  # probe, then decode the first and the last frame
    DEEP = "deep"  # decode every frame

    @property
    def rank(self) -> int:
        """A clip verified at a higher rank need not be checked again at a lower one."""
        return 1 if self is VerifyLevel.DEEP else 0


class VideoCodec(str, Enum):
    H264 = "h264"
    H265 = "h265"


X264_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
)  # fmt: skip


def _workers(value: int | None) -> None:
    if value is not None and value < 0:
        raise ConfigError(f"--workers must be >= 0 (0 runs inline), got {value}")


def _short_side(value: int | None) -> None:
    if value is not None and (value < 2 or value % 2):
        raise ConfigError(f"--short-side must be an even number >= 2, got {value}")


def _fps(value: float | None) -> None:
    if value is not None and not 0 < value <= 1000:
        raise ConfigError(f"--fps must be > 0 and <= 1000, got {value}")


@dataclass(frozen=True)
class VerifyConfig:
    """How ``kinetix verify`` checks the clips of a root."""

    level: VerifyLevel = VerifyLevel.QUICK
    fix: bool = False  # reconcile disk and manifest (unknown files, vanished rows, changed sizes)
    refetch: bool = False  # download quarantined clips again afterwards
    # A clip may run past its annotated span by this much (plus a fast trim's start offset)...
    max_excess: float = 1.5
    # ...and end early (the YouTube video ended) but must keep this fraction of the span.
    min_fraction: float = 0.1
    workers: int | None = None  # None: one per core
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", _enum(VerifyLevel, self.level, "--level"))
        object.__setattr__(self, "executor", ExecutorConfig.coerce(self.executor))
        _workers(self.workers)
        if self.max_excess < 0:
            raise ConfigError(f"max_excess must be >= 0 seconds, got {self.max_excess}")
        if not 0 <= self.min_fraction <= 1:
            raise ConfigError(f"min_fraction must be between 0 and 1, got {self.min_fraction}")


@dataclass(frozen=True)
class RepairConfig:
    """How ``kinetix repair`` rebuilds a damaged or lost manifest from the clips on disk."""

    release: str | None = None  # None: the one the root recorded (ROOT/.kinetix/meta.json)
    layout: LabelStyle | None = None  # None: recorded, else read off the label folders
    mirror: str | None = None  # where the annotation files come from (None: recorded/CVDF)
    offline: bool = False  # cached annotation files only
    level: VerifyLevel = VerifyLevel.QUICK
    workers: int | None = None
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", _enum(VerifyLevel, self.level, "--level"))
        object.__setattr__(self, "executor", ExecutorConfig.coerce(self.executor))
        if self.layout is not None and not isinstance(self.layout, LabelStyle):
            object.__setattr__(self, "layout", LabelStyle.parse(str(self.layout)))
        _workers(self.workers)


@dataclass(frozen=True)
class ProcessConfig:
    """How ``kinetix process`` derives a resized / re-timed / re-encoded copy of a root."""

    short_side: int | None = 256  # None keeps the size
    fps: float | None = None  # None keeps the frame rate
    upscale: bool = False  # clips already smaller than short_side are kept at their size
    crf: int = 23
    preset: str = "medium"  # x264's own default, what mmaction2's resize script gets
    codec: VideoCodec = VideoCodec.H264
    audio: bool = True
    threads: int | None = None  # ffmpeg threads per clip; None shares the cores among workers
    workers: int | None = None
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    retry_failed: bool = False  # clips that failed for good are retried only when this is set

    def __post_init__(self) -> None:
        object.__setattr__(self, "codec", _enum(VideoCodec, self.codec, "--codec"))
        object.__setattr__(self, "executor", ExecutorConfig.coerce(self.executor))
        _short_side(self.short_side)
        _fps(self.fps)
        _workers(self.workers)
        if not 0 <= self.crf <= 51:
            raise ConfigError(f"--crf must be between 0 and 51, got {self.crf}")
        if self.preset not in X264_PRESETS:
            raise ConfigError(
                f"invalid --preset {self.preset!r}; valid values are {', '.join(X264_PRESETS)}"
            )
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {self.threads}")


@dataclass(frozen=True)
class AudioConfig:
    """The ``audio.wav`` written next to a clip's frames."""

    sample_rate: int = 16000
    channels: int = 1

    def __post_init__(self) -> None:
        if not 1000 <= self.sample_rate <= 192000:
            raise ConfigError(
                f"--audio-rate must be between 1000 and 192000 Hz, got {self.sample_rate}"
            )
        if self.channels not in (1, 2):
            raise ConfigError(f"invalid --audio-channels {self.channels}; valid values are 1, 2")


@dataclass(frozen=True)
class FramesConfig:
    """How ``kinetix frames`` writes ``{split}/{label}/{key}/img_00001.jpg`` folders."""

    fps: float | None = None  # None: every decoded frame
    short_side: int | None = None  # None keeps the size
    upscale: bool = False
    quality: int = 2  # ffmpeg -q:v, 2 (best) .. 31
    encoder: JpegEncoder = JpegEncoder.FFMPEG
    audio: AudioConfig | None = None  # also write audio.wav
    threads: int | None = None
    workers: int | None = None
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    retry_failed: bool = False
    sample_clips: int = 2  # clips extracted first to estimate the space the run needs

    def __post_init__(self) -> None:
        _short_side(self.short_side)
        _fps(self.fps)
        _workers(self.workers)
        object.__setattr__(self, "encoder", _enum(JpegEncoder, self.encoder, "--encoder"))
        object.__setattr__(self, "executor", ExecutorConfig.coerce(self.executor))
        if not 2 <= self.quality <= 31:
            raise ConfigError(f"--quality must be between 2 (best) and 31, got {self.quality}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {self.threads}")
        if self.sample_clips < 1:
            raise ConfigError(f"sample_clips must be >= 1, got {self.sample_clips}")
