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


arrow_reader = pytest.mark.skipif(
    not __import__("kinetix.store.usable").store.usable.arrow_reader_available(),
    reason="the Arrow reader needs pyarrow and adbc-driver-sqlite (pip install 'kinetix[parquet]')",
)


@arrow_reader
@pytest.mark.parametrize("fmt", TABLES)
@pytest.mark.parametrize("name", ["under", "raw", "frames"])
@pytest.mark.parametrize("options", [{}, *OPTIONS[2:]], ids=lambda o: "-".join(o) or "plain")
def test_arrow_tables_are_the_row_tables(roots, tmp_path, monkeypatch, fmt, name, options) -> None:
    """The fast path (ADBC into Arrow, cells made in C++) writes the fallback's bytes."""
    import kinetix.export.job as job

    calls: list[str] = []
    real = job.usable_arrow

    def counted(*args, **kwargs):
        calls.append(kwargs["split"])
        yield from real(*args, **kwargs)

    monkeypatch.setattr(job, "usable_arrow", counted)
    monkeypatch.setattr("kinetix.store.usable.ARROW_MIN_ROWS", 0)  # the roots are small
    export_root(roots[name], ExportConfig(fmt, out=tmp_path / "arrow", **options))
    assert calls  # the Arrow path was the one taken
    monkeypatch.setattr(job, "arrow_reader_available", lambda: False)
    export_root(roots[name], ExportConfig(fmt, out=tmp_path / "rows", **options))
    made, expected = files(tmp_path / "arrow"), files(tmp_path / "rows")
    assert made == expected and made


@arrow_reader
def test_csv_cells_are_what_csv_writer_writes(tmp_path) -> None:
    """Floats of every notation (random bits too), every character csv quotes for, NULLs."""
    import csv
    import io
    import random
    import struct

    import pyarrow as pa

    from kinetix.export.tables import csv_lines

    rng = random.Random(7)
    floats = [struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0] for _ in range(4000)]
    floats += [rng.uniform(-1e6, 1e6) for _ in range(2000)] + [float(rng.randint(-10**17, 10**17))
                                                              for _ in range(2000)]  # fmt: skip
    floats += [1e-4, 9.999e-5, 1e16, 9999999999999998.0, 1e21, 1e22, 5e-324, float("inf"),
               float("-inf"), float("nan"), -0.0, 0.0, 1e15 + 0.5]  # fmt: skip
    texts = ["", "a", "a,b", 'q"', "\n", "\r", " x ", "é", "tab\t", None]
    n = len(floats)
    rows = [(floats[i], texts[i % len(texts)], i - n // 2 if i % 3 else None) for i in range(n)]
    batch = pa.RecordBatch.from_arrays(
        [pa.array([r[0] for r in rows], pa.float64()), pa.array([r[1] for r in rows], pa.string()),
         pa.array([r[2] for r in rows], pa.int64())],
        names=["f", "t", "i"],
    )  # fmt: skip
    expected = io.StringIO(newline="")
    csv.writer(expected).writerows(rows)
    assert csv_lines(batch) == expected.getvalue().encode("utf-8")
    plain = batch.slice(0, 0)  # no cell to quote: the other writer
    for keep in ([0], [0, 2]):
        plain = pa.RecordBatch.from_arrays([batch.column(i) for i in keep],
                                           names=[batch.schema.names[i] for i in keep])  # fmt: skip
        expected = io.StringIO(newline="")
        csv.writer(expected).writerows([tuple(r[i] for i in keep) for r in rows])
        assert csv_lines(plain) == expected.getvalue().encode("utf-8")


@arrow_reader
@pytest.mark.parametrize("batch", [16384, 4], ids=["in-the-first-batch", "in-a-later-batch"])
def test_a_value_arrow_cannot_hold_falls_back_to_rows(tmp_path, monkeypatch, batch) -> None:
    """Text in an INTEGER column (SQLite keeps it): the csv is still the reference's (a
    Parquet int64 column cannot hold it either way)."""
    import sqlite3

    import kinetix.export.job as job

    monkeypatch.setattr(job, "_TABLE_BATCH", batch)
    monkeypatch.setattr("kinetix.store.usable.ARROW_MIN_ROWS", 0)

    root = build_manifest_root(tmp_path / "odd")
    db = sqlite3.connect(manifest_path(root))
    with db:
        db.execute("UPDATE clips SET width='wide' WHERE rowid = (SELECT max(rowid) FROM clips)")
    db.close()
    made, expected = both(root, tmp_path, "csv", include_unverified=True)
    assert made == expected and made
    assert b",wide," in made["manifest.csv"]
