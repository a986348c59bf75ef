"""The offline demo: a synthetic mirror on 127.0.0.1 and the whole pipeline run against it.

Every stage is the real code path a user runs against CVDF and YouTube; only the data is
generated (tiny videos whose frames carry their own index) and the servers are local.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from kinetix.catalog.labels import LabelStyle
from kinetix.config import DownloadConfig, Selection, SourceKind, YoutubeConfig

Say = Callable[[str], None]


@dataclass
class DemoResult:
    """What the demo produced, for tests and for the closing lines."""

    workdir: Path
    mirror_url: str = ""
    roots: dict[str, Path] = field(default_factory=dict)
    batch_shape: tuple[int, ...] = ()
    batch_labels: list[int] = field(default_factory=list)
    countix_counts: list[int] = field(default_factory=list)  # the Countix batch's counts
    size_bytes: int = 0  # what the workdir holds at the end
    removed: bool = False  # the temp workdir was removed (no --workdir, no --keep)


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def run_demo(
    workdir: Path | None = None, *, keep: bool = False, say: Say = lambda line: None
) -> DemoResult:
    """Build and serve a synthetic mirror, then fetch, download, verify, process, export, load.

    Without ``workdir`` everything goes to a new temp dir, removed at the end unless ``keep``
    (or the demo failed: then it stays, for a look); a ``workdir`` given is always kept. The
    last line says where it all is, or was, and how big.
    """
    temporary = workdir is None
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="kinetix-demo-"))
        say(
            f"working in the temp dir {workdir} ("
            + ("kept at the end)" if keep else "removed at the end; --keep keeps it)")
        )
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    result = DemoResult(workdir)
    try:
        _pipeline(workdir, result, say)
    except BaseException:
        if temporary:
            say(f"demo stopped; its files stay in {workdir} ({_megabytes(workdir)})")
        raise
    result.size_bytes = _disk_usage(workdir)
    size = f"{result.size_bytes / 1e6:.1f} MB"
    if temporary and not keep:
        shutil.rmtree(workdir, ignore_errors=True)
        result.removed = True
        say(
            f"demo finished; removed its temp dir {workdir} ({size}); "
            "--keep keeps it, --workdir DIR puts it where you choose"
        )
    elif temporary:
        say(f"demo finished; kept its temp dir {workdir} ({size}); remove it: rm -rf {workdir}")
    else:
        say(f"demo finished; everything is under {workdir} ({size})")
    return result


def _pipeline(workdir: Path, result: DemoResult, say: Say) -> None:
    # The demo's annotation cache stays in its workdir, never in the user's cache.
    with _env("KINETIX_CACHE", str(workdir / "cache")):
        mirror = _build(workdir, say)
        from kinetix.synthetic.server import MirrorServer

        with MirrorServer(mirror.root) as server:
            result.mirror_url = server.url
            say(
                f"serving the SYNTHETIC mirror at {server.url} (generated clips, not real Kinetics)"
            )
            _annotations(server.url, say)
            k400 = _download_cvdf(workdir, server.url, say)
            result.roots["k400"] = k400
            result.roots["k700"] = _download_youtube(workdir, server.url, mirror, say)
            countix = _download_countix(workdir, server.url, mirror, say)
        _verify(k400, say)
        result.roots["k400-128"] = _process(k400, workdir, say)
        result.roots["frames"] = _frames(k400, workdir, say)
        _export(k400, workdir, say)
        result.batch_shape, result.batch_labels = _load(k400, say)
        if countix is not None:
            result.roots["countix"] = countix
            result.countix_counts = _load_countix(countix, say)


def _disk_usage(folder: Path) -> int:
    """Bytes of the files under ``folder`` (links not followed)."""
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _megabytes(folder: Path) -> str:
    return f"{_disk_usage(folder) / 1e6:.1f} MB"


def _build(workdir: Path, say: Say):  # type: ignore[no-untyped-def]
    from kinetix.synthetic.mirror import MirrorIndex, MirrorSpec, build_mirror

    root = workdir / "mirror"
    if (root / "mirror.json").exists():
        say(f"[1/10] reusing the synthetic mirror in {root}")
        return MirrorIndex.load(root)
    say(
        f"[1/10] building a synthetic CVDF mirror in {root} (real annotation rows, generated "
        "videos)"
    )
    spec = MirrorSpec(
        releases={"k400": ("val",), "k700": ("val",), "k700-2020": ("val",)},
        classes=3,
        clips_per_class=3,
        source_videos=2,
        source_releases=("k700",),
        downstream_clips=2,  # the K700-2020 clips of two Countix val rows
    )
    return build_mirror(root, spec)


def _annotations(url: str, say: Say) -> None:
    from kinetix.catalog.fetch import fetch_annotations, load_catalog

    path = fetch_annotations("k400", "val", mirror=url)
    catalog = load_catalog("k400", "val", mirror=url)
    stats = catalog.stats()
    say(f"[2/10] annotations: {path.name} cached; {stats.rows} clips in {stats.labels} classes")


def _download_cvdf(workdir: Path, url: str, say: Say) -> Path:
    from kinetix.download import download
    from kinetix.store.status import root_status

    root = workdir / "k400"
    config = DownloadConfig(
        root=root,
        release="k400",
        split="val",
        mirror=url,
        layout=LabelStyle.TORCHVISION,
        progress=False,
    )
    report = download(config)
    placed = ", ".join(f"{src} {n}" for src, n in report.placed.most_common()) or "none new"
    say(f"[3/10] download k400 val from the CVDF-shaped shards: {placed}")
    for s in root_status(root).splits:
        failed = ", ".join(f"{code} {n}" for code, n in s.failed.items()) or "none"
        say(f"      status: {s.present}/{s.annotated} present, failed: {failed}")
    return root


def _download_youtube(workdir: Path, url: str, mirror, say: Say) -> Path:  # type: ignore[no-untyped-def]
    from kinetix.download import download

    root = workdir / "k700"
    ids = tuple(c.key for c in mirror.clips("k700", "val") if c.source_video)[:1]
    config = DownloadConfig(
        root=root,
        release="k700",
        split="val",
        mirror=url,
        source=SourceKind.YOUTUBE,
        selection=Selection(ids=ids),
        layout=LabelStyle.TORCHVISION,
        youtube=YoutubeConfig(url_template=url + "youtube/{youtube_id}.mp4", rate=20.0),
        progress=False,
    )
    report = download(config)
    got = report.placed.get("youtube", 0)
    say(f"[4/10] download k700 val --source youtube (yt-dlp, exact trim): {got} clip(s) {ids}")
    return root


def _download_countix(workdir: Path, url: str, mirror, say: Say) -> Path | None:  # type: ignore[no-untyped-def]
    from kinetix.download import download

    if "countix" not in mirror.downstream:
        say("      (no Countix step: the mirror was built without the real annotation folder)")
        return None
    root = workdir / "countix"
    config = DownloadConfig(root=root, release="countix", split="val", mirror=url, progress=False)
    report = download(config)
    rows = report.downstream
    present = f"{rows.present} of {rows.rows} rows with their clip" if rows else "no rows"
    say(f"      download countix val: the K700-2020 clips its rows need; {present}")
    return root


def _verify(root: Path, say: Say) -> None:
    from kinetix.config import VerifyConfig
    from kinetix.process.verify import verify_dataset

    report = verify_dataset(root, VerifyConfig(workers=2))
    bad = ", ".join(f"{code} {n}" for code, n in report.bad.items()) or "none"
    say(f"[5/10] verify: {report.checked} clips probed and decoded, {report.good} good, bad: {bad}")


def _process(root: Path, workdir: Path, say: Say) -> Path:
    from kinetix.config import ProcessConfig
    from kinetix.process.transcode import process_dataset

    out = workdir / "k400-short48"
    report = process_dataset(root, out, ProcessConfig(short_side=48, preset="veryfast", workers=2))
    say(f"[6/10] process --short-side 48 -> {out.name}: {report.done} clips re-encoded")
    return out


def _frames(root: Path, workdir: Path, say: Say) -> Path:
    from kinetix.config import AudioConfig, FramesConfig
    from kinetix.process.frames import extract_dataset

    out = workdir / "frames"
    report = extract_dataset(root, out, FramesConfig(audio=AudioConfig(), workers=2))
    say(
        f"[7/10] frames -> {out.name}/{{split}}/{{label}}/{{key}}/img_00001.jpg + audio.wav: "
        f"{report.done} clips, {report.frames} frames"
    )
    return out


def _export(root: Path, workdir: Path, say: Say) -> None:
    from kinetix.export import ExportConfig, ExportFormat, export_root

    for fmt in (ExportFormat.MMACTION, ExportFormat.WEBDATASET):
        report = export_root(root, ExportConfig(format=fmt, out=workdir / "exports" / fmt.value))
        say(f"[8/10] export {fmt.value}: {report.written} clips -> {report.out}")


def _load(root: Path, say: Say) -> tuple[tuple[int, ...], list[int]]:
    from kinetix.data import KineticsDataset

    ds = KineticsDataset(root, "val", frames_per_clip=8, frame_stride=2, seed=0)
    try:
        from torch.utils.data import DataLoader
    except ImportError:
        # Without torch the same batch, stacked by hand from the dataset's numpy samples.
        import numpy as np

        samples = [ds[i] for i in range(min(4, len(ds)))]
        batch = np.stack([frames for frames, _ in samples])
        numpy_labels = [int(label) for _, label in samples]
        say(f"[9/10] batch (torch not installed, numpy): {batch.shape} labels {numpy_labels}")
        return tuple(batch.shape), numpy_labels
    # KineticsDataset is duck-typed (torch is optional), hence the cast for the type checker.
    loader: DataLoader[Any] = DataLoader(cast(Any, ds), batch_size=4, num_workers=2, shuffle=True)
    frames, labels = next(iter(loader))
    shape = tuple(frames.shape)
    say(f"[9/10] DataLoader batch (2 workers): frames {shape} uint8, labels {labels.tolist()}")
    return shape, [int(x) for x in labels]


def _load_countix(root: Path, say: Say) -> list[int]:
    import numpy as np

    from kinetix.data import CountixDataset

    ds = CountixDataset(root, "val", frames_per_clip=8, output="numpy")
    items = [ds[i] for i in range(min(2, len(ds)))]
    frames = np.stack([item["frames"] for item in items])
    counts = [item["count"] for item in items]
    spans = [item["span"].tolist() for item in items]
    say(
        f"[10/10] Countix batch: frames {frames.shape} uint8 over each repetition span, "
        f"counts {counts}, spans in clip frames {spans}"
    )
    return counts
