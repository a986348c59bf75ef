"""Settings of ``kinetix export``: the format enum, shard size and the frozen ``ExportConfig``."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from kinetix.catalog.labels import LabelStyle
from kinetix.config import ExecutorConfig
from kinetix.errors import ConfigError
from kinetix.sizes import EXAMPLES, has_unit, size_or_none


class ExportFormat(str, Enum):
    MMACTION = "mmaction"  # mmaction2 txt list: videos or rawframes, by the root's kind
    MMACTION_JSON = "mmaction-json"  # the same as mmaction2's json annotation list
    PADDLE = "paddle"  # PaddleVideo .list files
    SLOWFAST = "slowfast"  # SlowFast / pytorchvideo {split}.csv: "path label"
    TORCHVISION = "torchvision"  # OUT/split/label/*.mp4 links, torchvision.datasets.Kinetics names
    CSV = "csv"  # the manifest rows
    PARQUET = "parquet"
    WEBDATASET = "webdataset"  # OUT/{split}-000000.tar: {key}.mp4, {key}.json, {key}.cls
    COUNTIX = "countix"  # a Countix root: countix_{split}.csv/.parquet, spans on the clips
    AVA = "ava"  # an AVA-Kinetics root: mmaction2's rawframes, CSV and action list

    @classmethod
    def parse(cls, value: str | ExportFormat) -> ExportFormat:
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(f.value for f in cls)
            raise ConfigError(
                f"unknown export format {value!r}; valid values are {valid}"
            ) from None

    @property
    def is_downstream(self) -> bool:
        """Formats of a Countix / AVA-Kinetics root (``export/downstream.py``)."""
        return self in (self.COUNTIX, self.AVA)

    @property
    def is_list(self) -> bool:
        return self in (self.MMACTION, self.MMACTION_JSON, self.PADDLE, self.SLOWFAST)


# formats whose outputs workers write (--workers, --executor): shards, AVA frame folders
PARALLEL_FORMATS = (ExportFormat.WEBDATASET, ExportFormat.AVA)


@dataclass(frozen=True)
class ShardSize:
    """When a WebDataset shard is full: after ``clips`` clips, or before passing ``bytes``."""

    clips: int | None = 1000
    bytes: int | None = None

    @classmethod
    def parse(cls, value: str | int | ShardSize) -> ShardSize:
        """``1000`` (clips) or ``1GB`` / ``500MiB`` (bytes)."""
        if isinstance(value, ShardSize):
            return value
        text = str(value).strip()
        if text.isdigit():
            if int(text) < 1:
                raise ConfigError(
                    f"--shard-size must be a whole number of clips >= 1, got {value!r}"
                )
            return cls(clips=int(text), bytes=None)
        size = size_or_none(text)
        if size is None or not has_unit(text):
            raise ConfigError(
                f"invalid --shard-size {value!r}; give a clip count (1000) or a size ({EXAMPLES})"
            )
        if size < 1:
            raise ConfigError(f"--shard-size must be at least 1 byte, got {value!r}")
        return cls(clips=None, bytes=size)


@dataclass(frozen=True)
class ExportConfig:
    """Everything ``kinetix export ROOT`` needs; CLI flags map 1:1 onto these fields."""

    format: ExportFormat
    out: Path | None = None  # default: ROOT/exports/{format}
    splits: tuple[str, ...] | None = None  # None: every split of the root
    release: str | None = None  # only for roots holding several releases
    include_unverified: bool = False  # also clips never verified (verified-bad ones never)
    absolute: bool = False  # lists: absolute paths instead of paths under the split folder
    link_dir: Path | None = None  # lists: a link tree whose names have no whitespace
    link_style: LabelStyle = LabelStyle.UNDERSCORE  # folder names in link_dir
    hardlink: bool = False  # torchvision / link_dir: hard links instead of symlinks
    shard_size: ShardSize = ShardSize()
    shuffle: bool = False  # webdataset: shuffle clips across shards (with ``seed``)
    seed: int = 0
    workers: int | None = None  # webdataset shards / ava frame folders at once (default: cores)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)  # of those

    def __post_init__(self) -> None:
        object.__setattr__(self, "format", ExportFormat.parse(self.format))
        object.__setattr__(self, "executor", ExecutorConfig.coerce(self.executor))
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {self.workers}")
        if not self.executor.is_local and self.format not in PARALLEL_FORMATS:
            raise ConfigError(
                f"--executor only applies to --format webdataset and ava; {self.format.value} "
                "is one sequential file"
            )
        if self.out is not None:
            object.__setattr__(self, "out", Path(self.out))
        if self.link_dir is not None:
            object.__setattr__(self, "link_dir", Path(self.link_dir))
            if not self.format.is_list:
                raise ConfigError(
                    f"--link-dir only applies to list formats, not {self.format.value}"
                )
        if not isinstance(self.link_style, LabelStyle):
            object.__setattr__(self, "link_style", LabelStyle.parse(str(self.link_style)))
        object.__setattr__(self, "shard_size", ShardSize.parse(self.shard_size))
        if self.shuffle and self.format is not ExportFormat.WEBDATASET:
            raise ConfigError("--shuffle only applies to --format webdataset")
        if self.splits is not None:
            object.__setattr__(self, "splits", tuple(self.splits))

    def out_dir(self, root: Path) -> Path:
        return self.out if self.out is not None else root / "exports" / self.format.value
