"""Exports built set-wise are byte for byte what the per-record writers make.

The per-record path (``ExportRecord`` from ``iter_usable``, each writer's ``write``) is the one
the link-tree exports still take; it is the reference. The roots hold the awkward rows of
``_manifest_roots`` (apostrophes, parentheses, spaces, keys beginning with '-', rows with no
stored class index, floats of every shape, text that CSV must quote).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from _manifest_roots import build_manifest_root

from kinetix.data.index import LabelIndexer, RootInfo
from kinetix.errors import ConfigError
from kinetix.export import ExportConfig, export_root
from kinetix.export.job import _pairs, _records, _split_writer
from kinetix.export.lists import WHITESPACE, has_whitespace
from kinetix.export.records import WriterBase
from kinetix.export.tables import CsvWriter, ParquetWriter, table_row
from kinetix.store.layout import LabelStyle, manifest_path
from kinetix.store.manifest import Manifest

LISTS = ["mmaction", "paddle", "slowfast", "mmaction-json"]
TABLES = ["csv", "parquet"]
OPTIONS = [{}, {"absolute": True}, {"include_unverified": True}, {"splits": ("val",)}]


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("awkward")
    return {
        "under": build_manifest_root(base / "under"),
        "raw": build_manifest_root(base / "raw", layout=LabelStyle.RAW),
        "frames": build_manifest_root(base / "frames", kind="frames", null_frames=False),
        "frames-gaps": build_manifest_root(base / "frames-gaps", kind="frames"),
    }


def reference_export(root: Path, config: ExportConfig) -> None:
    """What ``export_root`` writes, made one ``ExportRecord`` at a time (each ``write``)."""
    info = RootInfo.read(root)
    out = config.out_dir(root)
    indexer = LabelIndexer()
    with Manifest(manifest_path(root), readonly=True) as manifest:
        shared: WriterBase | None = None
        if config.format.value == "csv":
            shared = CsvWriter(out / "manifest.csv")
        elif config.format.value == "parquet":
            shared = ParquetWriter(out / "manifest.parquet")
        for release, split in _pairs(manifest, config, root):
            own = _split_writer(config, info.kind, out, release, split)
            writer = own or shared
            assert writer is not None
            records = _records(manifest, root, info.kind, release, split, config, indexer)
            if isinstance(writer, ParquetWriter):
                # one row group per split's batch of up to 65,536 rows, as the export makes
                rows = [tuple(table_row(record).values()) for record in records]
                for start in range(0, len(rows), 65536):
                    writer.write_batch(rows[start : start + 65536])
                continue
            for record in records:
                writer.write(record)
            if own is not None:
                own.close()
        if shared is not None:
            shared.close()


def files(folder: Path) -> dict[str, bytes]:
    """The export's files; the dataset card beside them says what was exported, not how."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.name != "DATASET_CARD.md"
    }


def both(root: Path, tmp_path: Path, fmt: str, **options) -> tuple[dict, dict]:
    made, expected = tmp_path / "made", tmp_path / "expected"
    export_root(root, ExportConfig(fmt, out=made, **options))
    reference_export(root, ExportConfig(fmt, out=expected, **options))
    return files(made), files(expected)


@pytest.mark.parametrize("fmt", LISTS)
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(o) or "plain")
def test_video_lists_are_what_the_record_writer_makes(roots, tmp_path, fmt, options) -> None:
    made, expected = both(roots["under"], tmp_path, fmt, **options)
    assert made == expected and made
    text = b"".join(made.values()).decode()
    assert "'" in text and "(not_cat)" in text and "/-" in text  # the awkward rows are there


@pytest.mark.parametrize("fmt", ["mmaction", "paddle", "mmaction-json"])
@pytest.mark.parametrize("options", OPTIONS[:2], ids=lambda o: "-".join(o) or "plain")
def test_rawframe_lists_are_what_the_record_writer_makes(roots, tmp_path, fmt, options) -> None:
    made, expected = both(roots["frames"], tmp_path, fmt, **options)
    assert made == expected and made


@pytest.mark.parametrize("fmt", TABLES)
@pytest.mark.parametrize("name", ["under", "raw", "frames"])
@pytest.mark.parametrize("options", OPTIONS[2:], ids=lambda o: "-".join(o))
def test_tables_are_what_the_record_writer_makes(roots, tmp_path, fmt, name, options) -> None:
    made, expected = both(roots[name], tmp_path, fmt, **options)
    assert made == expected and made


def test_tables_of_every_split(roots, tmp_path) -> None:
    for fmt in TABLES:
        made, expected = both(roots["raw"], tmp_path / fmt, fmt)
        assert made == expected and made
    text = (tmp_path / "csv/made/manifest.csv").read_text()
    assert '"has, a comma"' in text and '"has ""quotes"""' in text and "1e+16" in text


def test_a_missing_num_frames_names_the_first_such_row(roots, tmp_path) -> None:
    with pytest.raises(ConfigError) as made:
        export_root(roots["frames-gaps"], ExportConfig("mmaction", out=tmp_path / "made"))
    with pytest.raises(ConfigError) as expected:
        reference_export(roots["frames-gaps"], ExportConfig("mmaction", out=tmp_path / "ref"))
    assert str(made.value) == str(expected.value)
    assert "has no num_frames" in str(made.value)


def _first_spaced_path(root: Path, split: str) -> str:
    with Manifest(manifest_path(root), readonly=True) as m:
        rows = m.clips(split=split, states=["present"], verify=["good"])
        return next(r.path for r in rows if r.path and " " in r.path)


@pytest.mark.parametrize("splits", [None, ("val",), ("train", "val")])
def test_whitespace_is_refused_naming_the_first_path(roots, tmp_path, splits) -> None:
    """In the first split (checked as it is written) or a later one (checked before)."""
    out = tmp_path / "lists"
    with pytest.raises(ConfigError, match="--link-dir") as refused:
        export_root(roots["raw"], ExportConfig("mmaction", out=out, splits=splits))
    # test (the first split of all) has no label folders: train is the one refused then
    first = "train" if splits is None else splits[0]
    assert repr(_first_spaced_path(roots["raw"], first)) in str(refused.value)
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]


def test_has_whitespace_is_the_regex() -> None:
    spaces = "".join(chr(c) for c in range(sys.maxunicode + 1) if WHITESPACE.match(chr(c)))
    assert len(spaces) > 20
    for c in spaces:
        for text in (c, f"a{c}", f"{c}b", f"a\0{c}\0b", f"a{c}{c}b"):
            assert has_whitespace(text)
    for text in ("", "a", "a\0b", "\0", "train/x_(y)/-k'z.mp4", "\x00\x1b\u200b"):
        assert has_whitespace(text) is bool(re.search(r"\s", text)) is False
