"""What to cite for each release, and the licence of its annotations.

DeepMind publishes the Kinetics annotations (K400, K600, K700, K700-2020) and AVA-Kinetics under
CC BY 4.0. The licence covers the annotation files only. The videos belong to their YouTube
uploaders. Countix's authors state no licence that kinetix could find (not in the paper,
arXiv:2006.15418, nor in CVDF's README, https://github.com/cvdfoundation/kinetics-dataset, which
hosts its annotations), so none is asserted for it (``licence_note``).
Annotation sets built on Kinetics clips also cite the Kinetics release whose clips they use.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kinetix.catalog.downstream import downstream_name
from kinetix.catalog.releases import get_release
from kinetix.errors import ConfigError

LICENCE = "CC BY 4.0"
LICENCE_URL = "https://creativecommons.org/licenses/by/4.0/"
LICENCE_NOTE = (
    "The annotations are licensed by DeepMind under CC BY 4.0 "
    "(https://creativecommons.org/licenses/by/4.0/). The videos are not: each belongs to its "
    "YouTube uploader."
)
# No primary source states a licence for Countix (module docstring): say so, assert none.
COUNTIX_LICENCE_NOTE = (
    "The Countix annotations: licence not stated by the authors; they are distributed by CVDF "
    "beside K700-2020 (https://github.com/cvdfoundation/kinetics-dataset)."
)


@dataclass(frozen=True)
class Paper:
    key: str  # BibTeX key
    authors: tuple[str, ...]  # "Last, First"
    title: str
    year: int
    venue: str  # journal / booktitle
    arxiv: str | None = None
    kind: str = "article"  # BibTeX entry type

    def bibtex(self) -> str:
        venue_field = "booktitle" if self.kind == "inproceedings" else "journal"
        fields = [
            ("title", self.title),
            ("author", " and ".join(self.authors)),
            (venue_field, self.venue),
            ("year", str(self.year)),
        ]
        if self.arxiv:
            fields += [("eprint", self.arxiv), ("archivePrefix", "arXiv")]
        body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
        return f"@{self.kind}{{{self.key},\n{body}\n}}"

    def text(self) -> str:
        names = [_initials(a) for a in self.authors]
        people = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        where = self.venue + (f", arXiv:{self.arxiv}" if self.arxiv else "")
        return f"{people}. {self.title}. {where}, {self.year}."


def _initials(author: str) -> str:
    last, _, first = author.partition(", ")
    initials = " ".join(f"{part[0]}." for part in first.replace("-", " ").split())
    return f"{initials} {last}".strip()


_ARXIV = "arXiv preprint"
PAPERS: dict[str, Paper] = {
    p.key: p
    for p in (
        Paper(
            "kay2017kinetics",
            ("Kay, Will", "Carreira, Jo{\\~a}o", "Simonyan, Karen", "Zhang, Brian",
             "Hillier, Chloe", "Vijayanarasimhan, Sudheendra", "Viola, Fabio", "Green, Tim",
             "Back, Trevor", "Natsev, Paul", "Suleyman, Mustafa", "Zisserman, Andrew"),
            "The Kinetics Human Action Video Dataset", 2017, _ARXIV, "1705.06950",
        ),
        Paper(
            "carreira2018short",
            ("Carreira, Jo{\\~a}o", "Noland, Eric", "Banki-Horvath, Andras", "Hillier, Chloe",
             "Zisserman, Andrew"),
            "A Short Note about Kinetics-600", 2018, _ARXIV, "1808.01340",
        ),
        Paper(
            "carreira2019short",
            ("Carreira, Jo{\\~a}o", "Noland, Eric", "Hillier, Chloe", "Zisserman, Andrew"),
            "A Short Note on the Kinetics-700 Human Action Dataset", 2019, _ARXIV, "1907.06987",
        ),
        Paper(
            "smaira2020short",
            ("Smaira, Lucas", "Carreira, Jo{\\~a}o", "Noland, Eric", "Clancy, Ellen",
             "Wu, Amy", "Zisserman, Andrew"),
            "A Short Note on the Kinetics-700-2020 Human Action Dataset", 2020, _ARXIV,
            "2010.10864",
        ),
        Paper(
            "li2020ava",
            ("Li, Ang", "Thotakuri, Meghana", "Ross, David A.", "Carreira, Jo{\\~a}o",
             "Vostrikov, Alexander", "Zisserman, Andrew"),
            "The AVA-Kinetics Localized Human Actions Video Dataset", 2020, _ARXIV, "2005.00214",
        ),
        Paper(
            "dwibedi2020counting",
            ("Dwibedi, Debidatta", "Aytar, Yusuf", "Tompson, Jonathan", "Sermanet, Pierre",
             "Zisserman, Andrew"),
            "Counting Out Time: Class Agnostic Video Repetition Counting in the Wild", 2020,
            "Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition "
            "(CVPR)", "2006.15418", "inproceedings",
        ),
    )
}  # fmt: skip

# Release -> its own paper first, then the papers of the clips it is built on.
CITATIONS: dict[str, tuple[str, ...]] = {
    "k400": ("kay2017kinetics",),
    "k600": ("carreira2018short",),
    "k700": ("carreira2019short",),
    "k700-2020": ("smaira2020short", "carreira2019short"),
    "ava-kinetics": ("li2020ava", "carreira2019short"),
    "countix": ("dwibedi2020counting", "carreira2019short"),
}


def release_name(name: str) -> str:
    """A Kinetics release or an annotation set on its clips, in its canonical spelling."""
    downstream = downstream_name(name)
    if downstream is not None:
        return downstream
    try:
        return get_release(name).name
    except ConfigError:
        raise ConfigError(
            f"unknown release {name!r}; valid releases are {', '.join(CITATIONS)}"
        ) from None


def papers_for(name: str) -> list[Paper]:
    return [PAPERS[key] for key in CITATIONS[release_name(name)]]


def citation(name: str, style: str = "bibtex") -> str:
    """What to cite for ``name`` as BibTeX or plain text, followed by the licence."""
    papers = papers_for(name)
    if style == "bibtex":
        return "\n\n".join(p.bibtex() for p in papers)
    if style == "text":
        return "\n".join(p.text() for p in papers)
    raise ConfigError(f"unknown citation format {style!r}; valid formats are bibtex, text")


def licence_note(names: str | Iterable[str]) -> str:
    """The licence lines for a release, or for the releases a root or export holds."""
    wanted = {downstream_name(n) for n in ([names] if isinstance(names, str) else names)}
    if "countix" not in wanted:
        return LICENCE_NOTE
    # A Countix root's clips are K700-2020's, whose annotations DeepMind licenses.
    k700 = LICENCE_NOTE.replace("The annotations", "The K700 annotations", 1)
    return f"{COUNTIX_LICENCE_NOTE} {k700}"
