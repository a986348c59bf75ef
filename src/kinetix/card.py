"""Dataset cards: a short ``DATASET_CARD.md`` in every root kinetix writes and beside every export.

A card says what the folder holds (release, splits, clips present and not, and for a Countix or
AVA-Kinetics root its annotation rows), under which licence, what to cite, and which kinetix
version and command made it. It is read from the manifest alone, and rewritten only when its
text changes, so a rerun that does nothing leaves it as it was. The command is the one the CLI
was given (``COMMAND``, set by ``kinetix.cli.main``); a library call records its function.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from kinetix import __version__
from kinetix.catalog.citations import Paper, licence_note, papers_for
from kinetix.catalog.downstream import DOWNSTREAM
from kinetix.durable import temp_sibling, write_text_atomic
from kinetix.store.downstream import DownstreamSplitCounts, downstream_counts
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import Manifest
from kinetix.store.root import RootMeta
from kinetix.store.status import SplitStatus, root_status

log = logging.getLogger(__name__)

CARD_NAME = "DATASET_CARD.md"
# The command line that is running, as typed; None outside the CLI.
COMMAND: ContextVar[str | None] = ContextVar("kinetix_command", default=None)

TITLES = {
    "k400": "Kinetics-400",
    "k600": "Kinetics-600",
    "k700": "Kinetics-700 (2019)",
    "k700-2020": "Kinetics-700-2020",
    **{name: rel.title for name, rel in DOWNSTREAM.items()},
}


@dataclass
class CardFacts:
    """What a card states; gathered from a manifest (``root_facts``) or given by an export."""

    title: str  # what the folder is: "dataset root", "export (csv)"
    releases: list[str]
    splits: list[SplitStatus]
    kind: str | None = None
    settings: str | None = None  # process / frames settings (JSON), when derived
    source_root: str | None = None
    downstream: str | None = None  # countix | ava-kinetics
    downstream_rows: list[DownstreamSplitCounts] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # extra lines (an export's outputs)


def root_facts(root: str | Path) -> CardFacts:
    """The facts of a root, from its manifest (a derived root carries its source's rows)."""
    status = root_status(root)
    with Manifest(manifest_path(root), readonly=True) as m:
        meta = RootMeta.read(m)
        rows = downstream_counts(m)
    info, settings, source, release = meta.downstream, meta.settings, meta.source_root, meta.release
    releases = sorted({s.release for s in status.splits} | ({release} if release else set()))
    return CardFacts(
        "dataset root",
        releases,
        status.splits,
        kind=status.kind,
        settings=settings,
        source_root=source,
        downstream=None if info is None else info.release,
        downstream_rows=rows,
    )


def render_card(facts: CardFacts, *, command: str | None = None) -> str:
    """The card's Markdown text."""
    names = ([facts.downstream] if facts.downstream else []) + facts.releases
    lines = [f"# Dataset card: {' on '.join(TITLES.get(n, n) for n in names) or 'empty'}", ""]
    article = "An" if facts.title[:1] in "aeiou" else "A"
    lines += [f"{article} {facts.title} written by kinetix {__version__}, with:", ""]
    lines += [f"    {command or COMMAND.get() or 'the kinetix Python API'}", ""]
    about = {
        "kind": facts.kind if facts.kind not in (None, "videos") else None,
        "settings": facts.settings and f"`{facts.settings}`",
        "made from": facts.source_root and f"`{facts.source_root}`",
        "annotation set": facts.downstream and f"{facts.downstream} (its rows' K700-2020 clips)",
    }
    lines += [f"- {name}: {value}" for name, value in about.items() if value]
    lines += facts.notes
    if lines[-1] != "":
        lines.append("")
    lines += ["## Clips", "", "| release | split | annotated | present | not present |"]
    lines.append("|---|---|---:|---:|---|")
    for s in facts.splits:
        reasons = _reasons(s)
        lines.append(
            f"| {s.release} | {s.split} | {s.annotated} | {s.present} | "
            f"{s.annotated - s.present}{f' ({reasons})' if reasons else ''} |"
        )
    if facts.downstream_rows:
        lines += ["", f"## Annotation rows ({facts.downstream})", ""]
        lines += ["| split | rows | clip present | not present |", "|---|---:|---:|---|"]
        for d in facts.downstream_rows:
            why = ", ".join(f"{k} {n}" for k, n in d.reasons().items())
            lines.append(f"| {d.split} | {d.rows} | {d.present} | {why or 0} |")
    lines += ["", "## Licence", "", licence_note(names), "", "## Citation", ""]
    papers = _papers(names)
    lines += [f"- {p.text()}" for p in papers]
    lines += ["", "```bibtex", "\n\n".join(p.bibtex() for p in papers), "```", ""]
    return "\n".join(lines)


def _reasons(s: SplitStatus) -> str:
    parts = [f"missing {s.missing}"] if s.missing else []
    if s.quarantined:
        parts.append(f"quarantined {s.quarantined}")
    parts += [f"{code} {n}" for code, n in s.failed.items()]
    return ", ".join(parts)


def _papers(names: Iterable[str]) -> list[Paper]:
    seen: dict[str, Paper] = {}
    for name in names:
        for paper in papers_for(name):
            seen.setdefault(paper.key, paper)
    return list(seen.values())


def write_card(folder: str | Path, text: str) -> Path | None:
    """Write ``folder/DATASET_CARD.md`` atomically when its text changed; None if unchanged."""
    path = Path(folder) / CARD_NAME
    temp_sibling(path).unlink(missing_ok=True)  # left by a run killed while it wrote the card
    with contextlib.suppress(OSError):
        if path.read_text(encoding="utf-8") == text:
            return None
    return write_text_atomic(path, text)


def write_root_card(root: str | Path, *, command: str | None = None) -> Path | None:
    """The card of a root, from its manifest (``download``, ``process``, ``frames``).

    A card that cannot be written is a warning, not a failed run: the data is what matters.
    """
    try:
        return write_card(root, render_card(root_facts(root), command=command))
    except OSError as exc:
        log.warning("could not write %s: %s", Path(root) / CARD_NAME, exc)
        return None


def write_export_card(
    out: str | Path,
    root: str | Path,
    fmt: str,
    written: Sequence[tuple[str, str, int, int]],
    *,
    command: str | None = None,
) -> Path | None:
    """The card beside an export's outputs: the root's facts, with each split's rows written.

    ``written`` is (release, split, rows written, rows left out) per split exported.
    """
    facts = root_facts(root)
    facts.title = f"export ({fmt}) of the root `{Path(root).resolve()}`"
    exported = {(r, s) for r, s, _, _ in written}
    facts.splits = [s for s in facts.splits if (s.release, s.split) in exported] or facts.splits
    facts.notes = [
        f"- {release} {split}: {n} rows written, {left} left out"
        for release, split, n, left in written
    ]
    try:
        return write_card(out, render_card(facts, command=command))
    except OSError as exc:
        log.warning("could not write %s: %s", Path(out) / CARD_NAME, exc)
        return None
