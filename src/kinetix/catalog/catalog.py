"""The catalog of one release and split: its clips and label registry, loaded in one call."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from kinetix.catalog.clip import Clip
from kinetix.catalog.fetch import fetch_annotations
from kinetix.catalog.labels import LabelRegistry
from kinetix.catalog.parse import read_annotations
from kinetix.catalog.releases import check_split, get_release
from kinetix.catalog.select import select_clips
from kinetix.catalog.stats import AnnotationStats, compute_stats
from kinetix.config import Selection, TransferConfig
from kinetix.errors import AnnotationError


@dataclass(frozen=True)
class Catalog:
    """The annotated clips of one release and split, with the release's class list."""

    release: str
    split: str
    clips: list[Clip]
    registry: LabelRegistry
    path: Path  # the annotation file the clips were read from

    def select(self, selection: Selection) -> list[Clip]:
        """The clips ``selection`` asks for, in annotation order (see ``select_clips``)."""
        return select_clips(self.clips, selection, self.registry)

    def stats(self) -> AnnotationStats:
        return compute_stats(self.clips)


def load_catalog(
    release: str,
    split: str,
    *,
    mirror: str | None = None,
    offline: bool = False,
    annotations: Path | str | None = None,
    config: TransferConfig | None = None,
) -> Catalog:
    """Fetch (or reuse from the cache) and read a split's annotations.

    ``annotations`` points at a local file of any supported format instead of fetching.
    Every label must be a class of the release: a file of another release fails here,
    naming the labels that do not belong, rather than selecting nothing later.
    """
    rel = get_release(release)
    split = check_split(rel, split)
    if annotations is not None:
        path = Path(annotations)
    else:
        path = fetch_annotations(rel.name, split, mirror=mirror, offline=offline, config=config)
    clips = read_annotations(path, release=rel.name, split=split)
    registry = LabelRegistry.for_release(rel.name)
    _check_labels(clips, registry, path)
    return Catalog(rel.name, split, clips, registry, path)


def _check_labels(clips: list[Clip], registry: LabelRegistry, path: Path) -> None:
    labels = Counter(c.label for c in clips if c.label is not None)
    foreign = sorted(label for label in labels if label not in registry)
    if foreign:
        shown = ", ".join(repr(label) for label in foreign[:3])
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise AnnotationError(
            f"labels that are not {registry.release} classes: {shown}{more} "
            f"({sum(labels[f] for f in foreign)} rows); is this a file of another release?",
            path=str(path),
        )
