"""``kinetix cite RELEASE``: the papers to cite for a release and the licence of its annotations."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cite",
        help="the papers to cite for a release, and its annotation licence",
        description="Print the citation(s) of a release, its own paper first and then the "
        "Kinetics release whose clips it uses, then the licence of its annotations.",
    )
    p.add_argument("release", help="k400, k600, k700, k700-2020, ava-kinetics, countix")
    p.add_argument("--format", choices=("bibtex", "text"), default="bibtex")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kinetix.catalog.citations import citation, licence_note

    text = citation(args.release, args.format)
    comment = "% " if args.format == "bibtex" else ""
    print(text)
    print()
    print(f"{comment}{licence_note(args.release)}")
    return 0
