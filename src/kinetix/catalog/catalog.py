"""The catalog of one release and split: its clips and the release's label registry."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from kinetix.catalog.clip import Clip
from kinetix.catalog.labels import LabelRegistry
from kinetix.catalog.parse import first_line_of_label, stream_annotations
from kinetix.catalog.select import select_clips
from kinetix.catalog.stats import AnnotationStats, StatsCounter, compute_stats
from kinetix.config import Selection
from kinetix.errors import AnnotationError


@dataclass(frozen=True)
class Catalog:
    """The annotated clips of one release and split, with the release's class list.

    ``kinetix.catalog.fetch.load_catalog`` builds one. Every label must be a class of the
    release (in any spelling the registry accepts): a file of another release fails here,
    naming the labels that do not belong, rather than selecting nothing later.
    """

    release: str
    split: str
    clips: list[Clip]
    registry: LabelRegistry
    path: Path  # the annotation file the clips were read from

    def __post_init__(self) -> None:
        labels = Counter(c.label for c in self.clips if c.label is not None)
        foreign = sorted(label for label in labels if label not in self.registry)
        if foreign:
            raise foreign_labels_error(
                self.path, self.registry, labels, foreign, self.release, self.split
            )

    def select(self, selection: Selection) -> list[Clip]:
        """The clips ``selection`` asks for, in annotation order (see ``select_clips``)."""
        return select_clips(self.clips, selection, self.registry)

    def stats(self) -> AnnotationStats:
        return compute_stats(self.clips)


def foreign_labels_error(
    path: Path,
    registry: LabelRegistry,
    labels: Counter[str],
    foreign: list[str],
    release: str,
    split: str,
) -> AnnotationError:
    """The one-line error for labels of ``path`` that are not classes of ``registry``'s release.

    ``labels`` counts the rows of each label; ``foreign`` (sorted) are the ones not in the
    registry. The line is the first row holding the first one shown, found by reading again.
    """
    shown = ", ".join(repr(label) for label in foreign[:3])
    more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
    return AnnotationError(
        f"labels that are not {registry.release} classes: {shown}{more} "
        f"({sum(labels[f] for f in foreign)} rows; the line is the first shown's); "
        "is this a file of another release?",
        path=str(path),
        line=first_line_of_label(path, foreign[:1], release=release, split=split),
    )


def file_stats(release: str, split: str, path: Path) -> AnnotationStats:
    """``Catalog.stats()`` of an annotation file, read one row at a time and kept by none.

    The same checks and errors as building the ``Catalog`` (a label that is not a class of
    the release fails, with the line of its first row), in memory that does not hold the rows.
    """
    registry = LabelRegistry.for_release(release)
    counter = StatsCounter()
    stream_annotations(path, counter.add, release=release, split=split)
    labels = Counter({label: n for label, n in counter.labels().items() if label is not None})
    foreign = sorted(label for label in labels if label not in registry)
    if foreign:
        raise foreign_labels_error(path, registry, labels, foreign, release, split)
    return counter.result()
