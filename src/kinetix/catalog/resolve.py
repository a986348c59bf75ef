"""Putting AVA-Kinetics and Countix rows onto the K700-2020 clips that hold them, and counting.

- Countix names its clip: ``(video_id, kinetics_start, kinetics_end)`` is looked up as is.
- AVA-Kinetics names only a video and a keyframe time: its clip is the K700-2020 row of that
  ``youtube_id`` whose ``[time_start, time_end)`` contains the timestamp. When two clips of
  the video contain it (the same video under two labels, overlapping), the one the keyframe
  is most central in wins, then the earlier one: the same answer on every run.

A row that does not resolve is data, with a reason: ``no_clip`` (Countix: no K700-2020 clip
with that id and segment), ``no_video`` (AVA-Kinetics: no K700-2020 clip of that video),
``outside_clips`` (AVA-Kinetics: the video is there, the timestamp is in none of its clips).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kinetix.catalog.clip import Clip
from kinetix.catalog.downstream import (
    AvaRow,
    CountixRow,
    DownstreamAnnotations,
    RejectedRow,
    get_downstream,
    read_downstream,
    rejected_reasons,
)
from kinetix.config import TransferConfig

RESOLVED = "resolved"
NO_CLIP = "no_clip"
NO_VIDEO = "no_video"
OUTSIDE_CLIPS = "outside_clips"
REASONS = {
    NO_CLIP: "no K700-2020 clip with that youtube id and segment",
    NO_VIDEO: "no K700-2020 clip of that youtube id",
    OUTSIDE_CLIPS: "timestamp outside every K700-2020 clip of that video",
}

# Bytes per clip of the CVDF K700-2020 copy, from its readme (700_2020/readme.md): train
# 603 GB / 536,699 clips, val 48 GB / 33,966, test 59 GB / 64,535.
CVDF_BYTES_PER_CLIP = {
    "train": 603e9 / 536_699,
    "val": 48e9 / 33_966,
    "test": 59e9 / 64_535,
}


@dataclass
class Resolution:
    """Each row of a split and the K700-2020 clip it resolves to (``None`` with a reason)."""

    annotations: DownstreamAnnotations
    base_release: str
    base_split: str
    base_path: str  # the K700-2020 annotation file the clips came from
    clips: list[Clip | None]  # per row of ``annotations.rows``
    reasons: list[str]  # per row: RESOLVED or a reason of ``REASONS``
    ambiguous: int = 0  # AVA rows more than one clip contains
    _needed: list[Clip] | None = field(default=None, repr=False)

    @property
    def rows(self) -> Sequence[CountixRow | AvaRow]:
        return self.annotations.rows

    @property
    def rejected(self) -> list[RejectedRow]:
        return self.annotations.rejected

    def needed(self) -> list[Clip]:
        """The distinct K700-2020 clips the resolving rows need, in first-use order."""
        if self._needed is None:
            seen: dict[tuple[str, int, int], Clip] = {}
            for clip in self.clips:
                if clip is not None:
                    seen.setdefault((clip.youtube_id, clip.time_start, clip.time_end), clip)
            self._needed = list(seen.values())
        return self._needed

    def counts(self) -> Counter[str]:
        return Counter(self.reasons)

    def summary(self) -> dict[str, Any]:
        """What ``kinetix annotations stats`` reports for a downstream split."""
        counts = self.counts()
        needed = len(self.needed())
        ann = self.annotations
        return {
            "release": ann.release,
            "split": ann.split,
            "file": str(ann.path),
            "base": f"{self.base_release} {self.base_split}",
            "base_file": self.base_path,
            "rows": len(ann.rows) + len(ann.rejected),
            "rejected": len(ann.rejected),
            "rejected_reasons": rejected_reasons(ann.rejected),
            "keyframes": ann.keyframes if ann.release == "ava-kinetics" else None,
            "resolving": counts[RESOLVED],
            "not_resolving": {r: counts[r] for r in REASONS if counts[r]},
            "ambiguous": self.ambiguous,
            "clips_to_fetch": needed,
            "estimated_bytes": round(needed * CVDF_BYTES_PER_CLIP[self.base_split]),
            "rejected_rows": [_rejected_dict(r) for r in ann.rejected],
        }


def _rejected_dict(row: RejectedRow) -> dict[str, Any]:
    return {
        "line": row.line,
        "column": row.column,
        "reason": row.reason,
        "message": row.message,
        "row": row.text,
    }


def resolve(
    annotations: DownstreamAnnotations, clips: Sequence[Clip], *, base_path: str = ""
) -> Resolution:
    """Resolve every row of ``annotations`` against ``clips`` (the K700-2020 split's)."""
    base_release = clips[0].release if clips else "k700-2020"
    if annotations.release == "countix":
        found, reasons = _resolve_countix(annotations.rows, clips)  # type: ignore[arg-type]
        ambiguous = 0
    else:
        found, reasons, ambiguous = _resolve_ava(annotations.rows, clips)  # type: ignore[arg-type]
    return Resolution(
        annotations, base_release, annotations.split, base_path, found, reasons, ambiguous
    )


def _resolve_countix(
    rows: Sequence[CountixRow], clips: Sequence[Clip]
) -> tuple[list[Clip | None], list[str]]:
    by_span = {(c.youtube_id, c.time_start, c.time_end): c for c in clips}
    found: list[Clip | None] = []
    reasons: list[str] = []
    for row in rows:
        clip = by_span.get((row.youtube_id, row.time_start, row.time_end))
        found.append(clip)
        reasons.append(NO_CLIP if clip is None else RESOLVED)
    return found, reasons


def _resolve_ava(
    rows: Sequence[AvaRow], clips: Sequence[Clip]
) -> tuple[list[Clip | None], list[str], int]:
    by_id: dict[str, list[Clip]] = {}
    for clip in clips:
        by_id.setdefault(clip.youtube_id, []).append(clip)
    found: list[Clip | None] = []
    reasons: list[str] = []
    ambiguous = 0
    # Train/val repeat a keyframe on every box and action row: decide each keyframe once.
    decided: dict[tuple[str, float], tuple[Clip | None, str, bool]] = {}
    for row in rows:
        key = (row.youtube_id, row.timestamp)
        decision = decided.get(key)
        if decision is None:
            decision = decided[key] = _home(by_id.get(row.youtube_id), row.timestamp)
        home, reason, several = decision
        found.append(home)
        reasons.append(reason)
        ambiguous += several
    return found, reasons, ambiguous


def _home(candidates: list[Clip] | None, t: float) -> tuple[Clip | None, str, bool]:
    if not candidates:
        return None, NO_VIDEO, False
    best: Clip | None = None
    best_margin = -1.0
    hits = 0
    for clip in candidates:
        if clip.time_start <= t < clip.time_end:
            hits += 1
            margin = min(t - clip.time_start, clip.time_end - t)
            if margin > best_margin or (
                margin == best_margin and best is not None and clip.time_start < best.time_start
            ):
                best, best_margin = clip, margin
    if best is None:
        return None, OUTSIDE_CLIPS, False
    return best, RESOLVED, hits > 1


def load_resolution(
    release: str,
    split: str,
    *,
    mirror: str | None = None,
    offline: bool = False,
    annotations: Path | str | None = None,
    base_annotations: Path | str | None = None,
    config: TransferConfig | None = None,
) -> Resolution:
    """A downstream split's rows resolved against its K700-2020 split.

    Both files are fetched (or reused from the cache) unless given: ``annotations`` is a local
    Countix/AVA-Kinetics CSV, ``base_annotations`` a local K700-2020 file of any supported
    format (DeepMind's ``kinetics-700_2020_val.csv`` as well as CVDF's ``val.csv``).
    """
    from kinetix.catalog.fetch import fetch_downstream, load_catalog

    rel = get_downstream(release)
    split = rel.check_split(split)
    if annotations is None:
        path = fetch_downstream(rel.name, split, mirror=mirror, offline=offline, config=config)
    else:
        path = Path(annotations)
    rows = read_downstream(path, rel, split)
    catalog = load_catalog(
        rel.base, split, mirror=mirror, offline=offline, annotations=base_annotations,
        config=config,
    )  # fmt: skip
    return resolve(rows, catalog.clips, base_path=str(catalog.path))
