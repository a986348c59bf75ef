"""``kinetix export ROOT --format countix|ava`` of a root made by ``download countix|ava-kinetics``.

Per split: the usable rows through the format's writer (``countix.py``, ``ava.py``), and two
lists beside them, so nothing is dropped unseen: ``{name}_{split}_not_present.csv`` (rows
whose clip is not on disk, with the reason: data, not an error) and
``{name}_{split}_rejected.csv`` (rows that cannot be right: file, line, column, reason, text).
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import logging
from pathlib import Path

from kinetix.card import write_export_card
from kinetix.data.downstream import DownstreamSplit, load_downstream, require_downstream
from kinetix.data.index import RootInfo, describe_left_out
from kinetix.executors import Executor, Preflight, open_executor
from kinetix.export.atomic import AtomicFile
from kinetix.export.ava import ACTION_LIST, FPS, AvaFramesWriter, write_action_list
from kinetix.export.config import ExportConfig, ExportFormat
from kinetix.export.countix import CountixTableWriter
from kinetix.export.job import ExportReport, SplitReport, check_splits
from kinetix.process.ffmpeg import threads_per_job
from kinetix.store.layout import manifest_path, require_writable, slurm_logs

log = logging.getLogger(__name__)

RELEASE_OF = {ExportFormat.COUNTIX: "countix", ExportFormat.AVA: "ava-kinetics"}
PREFIX = {ExportFormat.COUNTIX: "countix", ExportFormat.AVA: "kinetics"}  # of the lists' names


def export_downstream(root: Path, config: ExportConfig) -> ExportReport:
    """Export the Countix or AVA-Kinetics rows of ``root``; see the module docstring."""
    fmt = config.format
    RootInfo.read(root).require("videos", "export the root kinetix download wrote")
    release, splits = require_downstream(root, RELEASE_OF[fmt])
    if config.splits is not None:
        check_splits(root, config.splits, splits, f"{release} ")
        splits = tuple(s for s in splits if s in config.splits)
    out = config.out_dir(root)
    default = "" if config.out is not None else " (the default --out, under ROOT)"
    require_writable(out, f"{out}{default}", "pass a writable --out DIR")
    unit = "rows" if fmt is ExportFormat.COUNTIX else "keyframes"
    report = ExportReport(root, fmt, out, unit=unit)
    parquet = importlib.util.find_spec("pyarrow") is not None
    with contextlib.ExitStack() as stack:
        executor = _frames_executor(config, root, out, stack) if fmt is ExportFormat.AVA else None
        for split in splits:
            rows = load_downstream(
                root, split, release=release, include_unverified=config.include_unverified
            )
            if fmt is ExportFormat.COUNTIX:
                split_report = _countix_split(root, config, rows, out, parquet)
            else:
                split_report = _ava_split(root, config, rows, out, executor)
            report.splits.append(split_report)
            _report_left_out(split_report, rows, _write_left_out(out, PREFIX[fmt], rows))
    if fmt is ExportFormat.AVA:
        write_action_list(out)
    report.hints = _hints(report, parquet)
    write_export_card(
        out, root, fmt.value,
        [(s.release, s.split, s.written, sum(s.left_out.values())) for s in report.splits],
    )  # fmt: skip
    return report


def _countix_split(
    root: Path, config: ExportConfig, rows: DownstreamSplit, out: Path, parquet: bool
) -> SplitReport:
    base = str(root.resolve()).rstrip("/") + "/" if config.absolute else ""
    with CountixTableWriter(out, rows.split, base=base, parquet=parquet) as table:
        for item in rows.items:
            table.write(item)  # type: ignore[arg-type]
    return SplitReport(rows.release, rows.split, table.count, rows.left_out(), table.path)


def _ava_split(
    root: Path,
    config: ExportConfig,
    rows: DownstreamSplit,
    out: Path,
    executor: Executor | None,
) -> SplitReport:
    threads = None if executor is None else threads_per_job(config.workers)
    writer = AvaFramesWriter(
        out, rows.split, with_boxes=_has_boxes(rows), executor=executor, threads=threads
    )
    lines: dict[str, int] = {}
    with writer as frames:
        for keyframe in rows.items:
            folder = frames.write(keyframe, root)  # type: ignore[arg-type]
            if folder is not None:
                lines[folder] = len(keyframe.lines)  # type: ignore[union-attr]
    if frames.reused:
        log.info("%s: %d frame folders were already whole", rows.split, frames.reused)
    left_out = rows.left_out()
    for folder, key, why in frames.failed:
        log.warning(
            "%s: %s left out, its clip %s cannot be decoded: %s", rows.split, folder, key, why
        )
        left_out["undecodable"] += lines[folder]
    for keyframe in frames.crowded:
        log.warning(
            "%s: keyframe %s %g s (lines %s) left out: other keyframes of that second hold "
            "every folder name mmaction2 can read", rows.split, keyframe.youtube_id,
            keyframe.timestamp, ",".join(map(str, keyframe.lines)),
        )  # fmt: skip
        left_out["same_second"] += len(keyframe.lines)
    return SplitReport(rows.release, rows.split, frames.count, left_out, frames.path)


def _frames_executor(
    config: ExportConfig, root: Path, out: Path, stack: contextlib.ExitStack
) -> Executor | None:
    """Workers for the frame folders when ``--workers N`` (N > 1) or ``--executor`` asks."""
    if config.executor.is_local and (config.workers or 1) <= 1:
        return None
    preflight = Preflight(out, visible=(manifest_path(root),))  # workers read the clips
    executor = open_executor(
        config.executor, config.workers, preflight=preflight, log_directory=slurm_logs(out)
    )
    stack.callback(executor.close)
    return executor


def _report_left_out(report: SplitReport, rows: DownstreamSplit, rejected_list: Path) -> None:
    left_out = report.left_out
    if left_out:
        log.warning(
            "%s %s: left out %d rows: %s", report.release, report.split,
            sum(left_out.values()), describe_left_out(left_out),
        )  # fmt: skip
    for bad in rows.rejected[:5]:
        log.warning("rejected %s", bad)
    if len(rows.rejected) > 5:
        log.warning("... %d more rejected rows in %s", len(rows.rejected) - 5, rejected_list)


def _has_boxes(rows: DownstreamSplit) -> bool:
    """Train/val rows carry boxes; test rows only a keyframe (mmaction2 cannot read those)."""
    return any(getattr(k, "boxes", ()) for k in rows.items) or rows.split != "test"


def _write_left_out(out: Path, prefix: str, rows: DownstreamSplit) -> Path:
    """The not-present and rejected lists of a split; returns the rejected one's path."""
    missing = AtomicFile(
        out / f"{prefix}_{rows.split}_not_present.csv", "w", encoding="utf-8", newline=""
    )
    writer = csv.writer(missing.file, lineterminator="\n")
    writer.writerow(["line", "youtube_id", "key", "state", "reason"])
    for r in rows.not_present:
        writer.writerow([r.line, r.youtube_id, r.key or "", r.state, r.reason or ""])
    missing.commit()
    rejected = AtomicFile(
        out / f"{prefix}_{rows.split}_rejected.csv", "w", encoding="utf-8", newline=""
    )
    writer = csv.writer(rejected.file, lineterminator="\n")
    writer.writerow(["file", "line", "column", "reason", "message", "row"])
    for b in rows.rejected:
        writer.writerow([b.path, b.line, b.column, b.reason, b.message, b.text])
    return rejected.commit()


def _hints(report: ExportReport, parquet: bool) -> list[str]:
    out = report.out
    hints: list[str] = []
    if report.format is ExportFormat.COUNTIX:
        for s in report.splits:
            table = s.output.with_suffix(".parquet") if parquet and s.output else s.output
            reader = "pandas.read_parquet" if parquet else "pandas.read_csv"
            hints.append(f"countix {s.split}: {reader}('{table}')")
        if not parquet:
            hints.append("no Parquet tables: pip install 'kinetix[parquet]' for them")
        return hints
    for s in report.splits:
        if s.output is None or s.output.name.endswith("_keyframes.csv"):
            hints.append(
                f"ava {s.split}: frames in {out / 'rawframes'}, keyframes in {s.output} (no "
                "boxes in this split: mmaction2's AVAKineticsDataset needs them to train/eval)"
            )
            continue
        hints.append(
            f"mmaction2 {s.split}: dataset=dict(type='AVAKineticsDataset', "
            f"ann_file='{s.output}', exclude_file=None, "
            f"label_file='{out / 'annotations' / ACTION_LIST}', proposal_file=None, "
            f"data_prefix=dict(img='{out / 'rawframes'}'), fps={FPS}, start_index=0)"
        )
    hints.append(
        "mmaction2 config: num_classes=81 (80 actions + background); the folders are 30 fps "
        "and img_{:05}.jpg (filename_tmpl default)"
    )
    return hints
