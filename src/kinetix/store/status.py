"""What a dataset root holds, per split and per class, read from its manifest alone."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kinetix.store.downstream import downstream_counts
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import Manifest
from kinetix.store.root import RootMeta


@dataclass
class SplitStatus:
    release: str
    split: str
    annotated: int = 0
    present: int = 0
    missing: int = 0
    quarantined: int = 0
    failed: dict[str, int] = field(default_factory=dict)  # error code -> clips
    bytes: int = 0
    verified_good: int = 0
    verified_bad: int = 0
    sources: dict[str, int] = field(default_factory=dict)  # where present clips came from

    @property
    def complete(self) -> float:
        return self.present / self.annotated if self.annotated else 1.0


@dataclass
class ClassStatus:
    release: str
    split: str
    label: str | None
    annotated: int
    present: int

    @property
    def complete(self) -> float:
        return self.present / self.annotated if self.annotated else 1.0


@dataclass
class DownstreamStatus:
    """A Countix / AVA-Kinetics split of a root: its annotation rows and their clips."""

    release: str
    split: str
    rows: int
    present: int  # rows whose clip is on disk
    not_present: dict[str, int]  # reason (see DownstreamSplitCounts.reasons) -> rows


@dataclass
class RootStatus:
    root: str
    kind: str | None
    splits: list[SplitStatus]
    shards: dict[str, int]  # shard state -> count
    classes: list[ClassStatus] | None = None
    downstream: list[DownstreamStatus] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for entry, split in zip(d["splits"], self.splits):
            entry["complete"] = round(split.complete, 6)
        for entry, cls in zip(d["classes"] or (), self.classes or ()):
            entry["complete"] = round(cls.complete, 6)
        return d


def root_status(root: str | Path, *, by_class: bool = False, recount: bool = False) -> RootStatus:
    """Counts by state and failure reason; ``by_class`` lists the least complete classes first.

    Read from the manifest's maintained counters (``recount``: from every row).
    """
    with Manifest(manifest_path(root), readonly=True) as m:
        counts = m.clip_counts(recount=recount)
        shards = Counter(
            {state: n for state, n in m.execute("SELECT state, COUNT(*) FROM shards GROUP BY 1")}
        )
        kind = RootMeta.read(m).recorded_kind
        downstream = [
            DownstreamStatus(c.release, c.split, c.rows, c.present, c.reasons())
            for c in downstream_counts(m)
        ]
    splits: dict[tuple[str, str], SplitStatus] = {}
    failed: dict[tuple[str, str], Counter[str]] = {}
    sources: dict[tuple[str, str], Counter[str]] = {}
    per_class: dict[tuple[str, str, str | None], list[int]] = {}
    for release, split, label, state, code, verify, source, count, size in counts:
        s = splits.setdefault((release, split), SplitStatus(release, split))
        s.annotated += count
        cls = per_class.setdefault((release, split, label), [0, 0])
        cls[0] += count
        if state == "present":
            cls[1] += count
            s.present += count
            s.bytes += size
            sources.setdefault((release, split), Counter())[source or "unknown"] += count
        elif state == "missing":
            s.missing += count
        elif state == "quarantined":
            s.quarantined += count
        elif state == "failed":
            failed.setdefault((release, split), Counter())[code or "unknown"] += count
        if verify == "good":
            s.verified_good += count
        elif verify == "bad":
            s.verified_bad += count
    for k, s in splits.items():
        s.failed = dict(failed.get(k, Counter()).most_common())
        s.sources = dict(sources.get(k, Counter()).most_common())
    classes = None
    if by_class:
        classes = [
            ClassStatus(release, split, label, annotated, present)
            for (release, split, label), (annotated, present) in per_class.items()
        ]
        classes.sort(key=lambda c: (c.complete, -c.annotated, c.label or ""))
    return RootStatus(
        str(root), kind, [splits[k] for k in sorted(splits)], dict(shards), classes, downstream
    )
