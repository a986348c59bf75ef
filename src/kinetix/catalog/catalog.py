"""The catalog of one release and split: its clips and the release's label registry."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from kinetix.catalog.clip import Clip
from kinetix.catalog.labels import LabelRegistry
from kinetix.catalog.parse import first_line_with
from kinetix.catalog.select import select_clips
from kinetix.catalog.stats import AnnotationStats, compute_stats
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
            shown = ", ".join(repr(label) for label in foreign[:3])
            more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            raise AnnotationError(
                f"labels that are not {self.registry.release} classes: {shown}{more} "
                f"({sum(labels[f] for f in foreign)} rows; the line is the first shown's); "
                "is this a file of another release?",
                path=str(self.path),
                line=first_line_with(self.path, foreign[0]),
            )

    def select(self, selection: Selection) -> list[Clip]:
        """The clips ``selection`` asks for, in annotation order (see ``select_clips``)."""
        return select_clips(self.clips, selection, self.registry)

    def stats(self) -> AnnotationStats:
        return compute_stats(self.clips)
