"""Summary figures of an annotation split: counts, class balance, duplicates, short clips."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from kinetix.catalog.clip import Clip

FULL_CLIP_SECONDS = 10  # Kinetics clips are 10 s; K700 has a few shorter ones


@dataclass(frozen=True)
class AnnotationStats:
    """What ``kinetix annotations stats`` reports about a list of clips."""

    rows: int
    releases: dict[str, int]
    splits: dict[str, int]
    labels: int  # distinct labels
    clips_per_class_min: int | None
    clips_per_class_median: float | None
    clips_per_class_max: int | None
    unlabeled: int  # rows without a label (test splits)
    duplicate_youtube_ids: int  # videos with more than one row (different segments)
    duplicate_keys: int  # keys (id + segment) found on more than one row
    short_clips: int  # rows shorter than FULL_CLIP_SECONDS
    duration_min: int | None
    duration_max: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compute_stats(clips: Sequence[Clip]) -> AnnotationStats:
    """Count rows, classes, duplicates and clip lengths of ``clips``."""
    per_class = Counter(c.label for c in clips if c.label is not None)
    ids = Counter(c.youtube_id for c in clips)
    spans = Counter((c.youtube_id, c.time_start, c.time_end) for c in clips)
    durations = [c.time_end - c.time_start for c in clips]
    counts = sorted(per_class.values())
    return AnnotationStats(
        rows=len(clips),
        releases=dict(Counter(c.release for c in clips)),
        splits=dict(Counter(c.split for c in clips)),
        labels=len(per_class),
        clips_per_class_min=counts[0] if counts else None,
        clips_per_class_median=statistics.median(counts) if counts else None,
        clips_per_class_max=counts[-1] if counts else None,
        unlabeled=sum(1 for c in clips if c.label is None),
        duplicate_youtube_ids=sum(1 for n in ids.values() if n > 1),
        duplicate_keys=sum(1 for n in spans.values() if n > 1),
        short_clips=sum(1 for d in durations if d < FULL_CLIP_SECONDS),
        duration_min=min(durations, default=None),
        duration_max=max(durations, default=None),
    )
