"""``kinetix cite``: every release's papers, as BibTeX and text, and the annotation licence."""

from __future__ import annotations

import pytest

from kinetix.catalog.citations import CITATIONS, citation, papers_for
from kinetix.cli.main import main
from kinetix.errors import ConfigError


@pytest.mark.parametrize(
    ("release", "first", "year", "arxiv"),
    [
        ("k400", "Kay", 2017, "1705.06950"),
        ("kinetics-600", "Carreira", 2018, "1808.01340"),
        ("k700", "Carreira", 2019, "1907.06987"),
        ("700_2020", "Smaira", 2020, "2010.10864"),
        ("ava_kinetics", "Li", 2020, "2005.00214"),
        ("countix", "Dwibedi", 2020, "2006.15418"),  # CVPR 2020, also on arXiv
    ],
)
def test_each_release_cites_its_own_paper_first(
    release: str, first: str, year: int, arxiv: str | None
) -> None:
    paper = papers_for(release)[0]
    assert paper.authors[0].startswith(first + ",") and paper.year == year
    assert paper.arxiv == arxiv


def test_downstream_sets_also_cite_kinetics_700() -> None:
    for name in ("ava-kinetics", "countix", "k700-2020"):
        assert CITATIONS[name][-1] == "carreira2019short"


def test_bibtex_and_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cite", "countix"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("@inproceedings{dwibedi2020counting,\n")
    assert "  booktitle = {Proceedings of the IEEE/CVF Conference" in out
    assert "@article{carreira2019short," in out and "eprint = {1907.06987}" in out
    # no primary source states Countix's licence: none is asserted; its clips' K700 labels are
    # DeepMind's, under CC BY 4.0
    assert "% The Countix annotations: licence not stated by the authors; they are " in out
    assert "distributed by CVDF beside K700-2020" in out and "CC BY" not in out.split("K700 ")[0]
    assert "The K700 annotations are licensed by DeepMind under CC BY 4.0" in out
    assert main(["cite", "ava-kinetics"]) == 0
    assert "% The annotations are licensed by DeepMind under CC BY 4.0" in capsys.readouterr().out
    assert main(["cite", "k400", "--format", "text"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("W. Kay, J. Carreira, K. Simonyan")
    assert "and A. Zisserman. The Kinetics Human Action Video Dataset. arXiv preprint, " in out
    assert "arXiv:1705.06950, 2017." in out and "CC BY 4.0" in out


def test_unknown_release_and_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cite", "k500"]) == 2
    assert "unknown release 'k500'; valid releases are k400, k600" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="valid formats are bibtex, text"):
        citation("k400", "apa")
