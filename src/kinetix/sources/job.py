"""One download run as its sources see it: the settings, the root's manifest, the report, and
how every task result reaches the manifest (in this one process).

``DownloadJob`` is what ``download.py`` hands each ``Source.fetch`` (``sources/base.py``);
``apply_result`` records a ``TaskResult`` and counts it in the ``DownloadReport``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kinetix.catalog.releases import Release
from kinetix.config import DownloadConfig
from kinetix.errors import ErrorCode
from kinetix.executors import Executor, Preflight, open_executor
from kinetix.executors.preflight import Tool
from kinetix.interrupts import StopToken
from kinetix.sources.base import TaskResult
from kinetix.store.downstream import DownstreamSplitCounts
from kinetix.store.layout import partial_dir, slurm_logs
from kinetix.store.manifest import ClipState, ClipUpdate, Manifest
from kinetix.store.rows import WorkRow

if TYPE_CHECKING:
    from kinetix.process.landing import LandingSpec

CVDF_SOURCES = frozenset({"cvdf", "cvdf_replacement"})
# A clip's copy in a shard refused for what it is (not for how the transfer went).
REFUSED = frozenset(
    code.value
    for code in (
        ErrorCode.UNSAFE_MEMBER,
        ErrorCode.OVERSIZED_MEMBER,
        ErrorCode.DUPLICATE_MEMBER,
    )
)
# Every state but present: what a rerun reads row by row.
NOT_PRESENT = tuple(s.value for s in ClipState if s is not ClipState.PRESENT)


@dataclass
class DownloadReport:
    """What one run did; the CLI prints it, tests assert on it."""

    release: str
    split: str
    selected: int = 0
    already_present: int = 0
    planned: int = 0
    placed_keys: dict[str, str] = field(default_factory=dict)  # clip key -> source
    failed: Counter[str] = field(default_factory=Counter)  # error code -> clips
    # clips a source served that failed the inline check (set aside, not placed): key -> code
    quarantined_keys: dict[str, str] = field(default_factory=dict)
    # clips a shard held whose copy was refused (unsafe, oversized, twice, not a whole MP4) or,
    # in K400 train, set aside: key -> code; they are not "in no shard"
    refused_keys: dict[str, str] = field(default_factory=dict)
    shards_done: int = 0
    shards_failed: int = 0
    bytes_transferred: int = 0
    errors: list[str] = field(default_factory=list)
    fatal: bool = False  # a failure (disk full) that stopped the run early
    seconds: float = 0.0
    # ``download countix|ava-kinetics``: the annotation rows and their clips after the run
    downstream: DownstreamSplitCounts | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def not_present(self) -> int:
        """Selected clips still not on disk after the run (failed, gaps, or never reached)."""
        return max(self.selected - self.already_present - len(self.placed_keys), 0)

    @property
    def quarantined(self) -> Counter[str]:
        """Clips set aside by the inline check and not placed since, by error code."""
        return Counter(self.quarantined_keys.values())

    @property
    def held_keys(self) -> set[str]:
        """Clips a shard held but whose copy was not placed (refused or set aside)."""
        return set(self.quarantined_keys) | set(self.refused_keys)

    @property
    def placed(self) -> Counter[str]:
        """Clips placed by this run, by source (a replaced clip counts once, as replaced)."""
        return Counter(self.placed_keys.values())


@dataclass
class DownloadJob:
    """One run of one split: what every source of it reads and where its results go."""

    config: DownloadConfig
    release: Release
    manifest: Manifest
    report: DownloadReport
    emit: Callable[[str], None] | None
    stop: StopToken
    labels: Sequence[str]  # the release's class names, in class-index order
    selected: set[str]  # the selected clips' keys
    catalog_size: int  # rows of the annotation file


def archives_dir(root: Path) -> Path:
    """``--keep-archives``: ``ROOT/archives/{path under the CVDF base}``, beside the splits."""
    return Path(root) / "archives"


def landing_spec(config: DownloadConfig) -> LandingSpec | None:
    """Fused processing: what each clip becomes as it lands (None: the clip as fetched)."""
    if config.process is None and config.frames is None:
        return None
    from kinetix.process.ffmpeg import threads_per_job
    from kinetix.process.jpeg import resolve_encoder
    from kinetix.process.landing import LandingSpec

    derive = config.process or config.frames
    assert derive is not None
    # one clip at a time per shard in flight: the shards share the cores
    threads = derive.threads or threads_per_job(config.parallel)
    encoder = resolve_encoder(config.frames.encoder) if config.frames is not None else None
    return LandingSpec(
        process=config.process, frames=config.frames, keep_originals=config.keep_originals,
        threads=threads, **({"encoder": encoder} if encoder is not None else {}),
    )  # fmt: skip


_MISSING, _QUARANTINED = ClipState.MISSING.value, ClipState.QUARANTINED.value
_FAILED = ClipState.FAILED.value


def needs_work(row: WorkRow, retry: tuple[str, ...] | None, *, cvdf_gaps: bool = False) -> bool:
    """Missing and quarantined clips are work; failed ones when asked (and CVDF gaps for auto).

    A clip CVDF failed to give (no shard holds it, or the copy it holds is broken) is a gap
    YouTube can fill under ``--source auto``.
    """
    state = row.state
    if state in (_MISSING, _QUARANTINED):
        return True
    if state != _FAILED:
        return False
    if cvdf_gaps and row.source in CVDF_SOURCES:
        # no shard held it (not_in_shard), or the copy one held failed the inline check
        return True
    if retry is None:
        return False
    return not retry or row.error_code in retry


def cluster_executor(config: DownloadConfig, tools: tuple[Tool, ...]) -> Executor:
    """Workers that see the root (its partial folder) and have ``tools``; one job per worker."""
    preflight = Preflight(partial_dir(config.root), tools=tools)
    return open_executor(
        config.executor, config.parallel, preflight=preflight, log_directory=slurm_logs(config.root)
    )


def apply_result(manifest: Manifest, result: TaskResult, report: DownloadReport) -> None:
    updates = [u for u in result.updates if not unpresents(manifest, u, report)]
    if result.shard_url is None:
        manifest.apply(updates)
    else:
        members = result.shard_members if result.error is None else None
        manifest.apply_shard(result.shard_url, updates, result.shard_fields, members)
    report.bytes_transferred += result.bytes_transferred
    for u in updates:
        state = u.fields.get("state")
        if state == ClipState.PRESENT.value:
            report.placed_keys[u.key] = str(u.fields.get("source"))
            report.quarantined_keys.pop(u.key, None)  # the replacement set's good copy
            report.refused_keys.pop(u.key, None)
        elif state == ClipState.FAILED.value and u.fields.get("verify") == "bad":
            report.quarantined_keys[u.key] = str(u.fields.get("error_code"))
        elif u.fields.get("error_code") in REFUSED or u.fields.get("verify") == "bad":
            report.refused_keys[u.key] = str(u.fields.get("error_code"))


def unpresents(manifest: Manifest, update: ClipUpdate, report: DownloadReport) -> bool:
    """A shard's refused copy of a clip that another copy already placed: not recorded."""
    fields = update.fields
    if fields.get("state") == ClipState.PRESENT.value:
        return False
    if fields.get("error_code") not in REFUSED and fields.get("verify") != "bad":
        return False
    if update.key in report.placed_keys:
        return True
    row = manifest.get(update.release, update.split, update.key)
    return row is not None and row.state == ClipState.PRESENT.value


def placed(update: ClipUpdate) -> bool:
    return update.fields.get("state") == ClipState.PRESENT.value
