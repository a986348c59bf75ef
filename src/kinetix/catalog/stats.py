"""Summary figures of an annotation split: counts, class balance, duplicates, short clips."""

from __future__ import annotations

import statistics
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

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


def compute_stats(clips: Iterable[Clip]) -> AnnotationStats:
    """Count rows, classes, duplicates and clip lengths of ``clips``."""
    counter = StatsCounter()
    add = counter.add
    for clip in clips:
        add(clip)
    return counter.result()


class StatsCounter:
    """``compute_stats`` one clip at a time, keeping no clip: ``add`` each, then ``result``.

    Duplicates are counted from an 8-byte hash per row (Python's 64-bit ``hash`` of the
    youtube id, and of the (id, start, end) key) kept in a flat array: 16 bytes a row
    instead of the row objects, so a 2M-row file needs 32 MB for them. Two different keys
    share a 64-bit hash with a chance of about n^2 / 2^65 (1e-7 for 2M rows); such a pair would
    count as one duplicate too many.
    """

    def __init__(self) -> None:
        # rows per (release, split, label, duration): a handful of groups, one dict hit a row
        self.groups: Counter[tuple[str, str, str | None, int]] = Counter()
        self.id_hashes = array("q")
        self.key_hashes = array("q")

    def add(self, clip: Clip) -> None:
        self.groups[clip[0], clip[1], clip[5], clip[4] - clip[3]] += 1
        self.id_hashes.append(hash(clip[2]))
        self.key_hashes.append(hash(clip[2:5]))  # (youtube_id, time_start, time_end)

    def labels(self) -> Counter[str | None]:
        """Rows per label so far (``None``: unlabelled rows)."""
        per_label: Counter[str | None] = Counter()
        for (_, _, label, _), n in self.groups.items():
            per_label[label] += n
        return per_label

    def result(self) -> AnnotationStats:
        releases: Counter[str] = Counter()
        splits: Counter[str] = Counter()
        durations: Counter[int] = Counter()
        for (release, split, _, duration), n in self.groups.items():
            releases[release] += n
            splits[split] += n
            durations[duration] += n
        per_label = self.labels()
        unlabeled = per_label.pop(None, 0)
        counts = sorted(per_label.values())
        return AnnotationStats(
            rows=len(self.id_hashes),
            releases=dict(releases),
            splits=dict(splits),
            labels=len(per_label),
            clips_per_class_min=counts[0] if counts else None,
            clips_per_class_median=statistics.median(counts) if counts else None,
            clips_per_class_max=counts[-1] if counts else None,
            unlabeled=unlabeled,
            duplicate_youtube_ids=_repeated(self.id_hashes),
            duplicate_keys=_repeated(self.key_hashes),
            short_clips=sum(n for d, n in durations.items() if d < FULL_CLIP_SECONDS),
            duration_min=min(durations, default=None),
            duration_max=max(durations, default=None),
        )


def _repeated(hashes: array[int]) -> int:
    """How many distinct values occur more than once in ``hashes``."""
    if len(hashes) < 2:
        return 0
    values = np.sort(np.frombuffer(hashes, dtype=np.int64))
    same = values[1:] == values[:-1]  # same[i]: values[i + 1] repeats values[i]
    # a repeated value is counted once: at the first pair of its run
    starts = same.copy()
    starts[1:] &= ~same[:-1]
    return int(starts.sum())
