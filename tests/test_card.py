"""Dataset cards: each root download/process/frames write and each export gets DATASET_CARD.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from kinetix.card import CARD_NAME
from kinetix.cli.main import main
from kinetix.config import DownloadConfig
from kinetix.download import download
from kinetix.store.downstream import DownstreamInfo, downstream_info, downstream_rows
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import Manifest
from kinetix.synthetic.mirror import MirrorIndex
from kinetix.synthetic.server import MirrorServer


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KINETIX_CACHE", str(tmp_path / "cache"))


def card(folder: Path) -> str:
    return (folder / CARD_NAME).read_text(encoding="utf-8")


def test_a_countix_root_and_what_is_made_from_it_carry_cards(
    tmp_path: Path, downstream_mirror: MirrorIndex, downstream_server: MirrorServer
) -> None:
    root, small, frames, out = (tmp_path / n for n in ("root", "small", "frames", "csv"))
    command = [
        "download", "countix", "--split", "val", "--root", str(root),
        "--mirror", downstream_server.url, "--no-progress",
    ]  # fmt: skip
    assert main(command) == 0
    text = card(root)
    assert text.startswith("# Dataset card: Countix on Kinetics-700-2020\n")
    assert f"    kinetix download countix --split val --root {root} --mirror " in text
    assert "| k700-2020 | val | 2 | 2 | 0 |" in text
    assert "| val | 1434 | 2 | no_clip 1431, rejected:span_outside_clip 1 |" in text
    assert "The Countix annotations: licence not stated by the authors" in text
    assert "The K700 annotations are licensed by DeepMind under CC BY 4.0" in text
    for key in ("dwibedi2020counting", "carreira2019short", "smaira2020short"):
        assert f"{{{key}," in text  # Countix, the K700 paper it cites, K700-2020's
    assert "Counting Out Time" in text and "2006.15418" in text
    before = (root / CARD_NAME).stat().st_mtime_ns
    assert main(command) == 0  # a rerun that does nothing rewrites nothing
    assert (root / CARD_NAME).stat().st_mtime_ns == before

    assert main(["process", str(root), "--out", str(small), "--short-side", "32"]) == 0
    text = card(small)
    assert text.startswith("# Dataset card: Countix on Kinetics-700-2020\n")
    assert f"- made from: `{root}`" in text and '"short_side": 32' in text
    assert "| k700-2020 | val | 2 | 2 | 0 |" in text and "{dwibedi2020counting," in text
    # the processed root has the Countix rows too, on its own clips
    assert "| val | 1434 | 2 | no_clip 1431, rejected:span_outside_clip 1 |" in text
    with Manifest(manifest_path(small), readonly=True) as m:
        assert downstream_info(m) == DownstreamInfo("countix", ("val",))
        present = [r for r in downstream_rows(m) if r.present]
    assert len(present) == 2 and all((small / r.path).is_file() for r in present)
    assert (small / ".kinetix/downstream/countix_val.csv").is_file()

    assert main(["frames", str(root), "--out", str(frames), "--fps", "5"]) == 0
    text = card(frames)
    assert "- kind: frames" in text and f"kinetix frames {root} --out {frames}" in text
    with Manifest(manifest_path(frames), readonly=True) as m:
        folders = [r for r in downstream_rows(m) if r.present]
    assert len(folders) == 2 and all((frames / r.path / "img_00001.jpg").is_file() for r in folders)

    assert main(["export", str(root), "--format", "csv", "--out", str(out)]) == 0
    text = card(out)
    assert f"A export (csv) of the root `{root.resolve()}`" not in text
    assert f"An export (csv) of the root `{root.resolve()}`" in text
    assert "- k700-2020 val: 2 rows written, 0 left out" in text
    assert "{dwibedi2020counting," in text and (out / "manifest.csv").is_file()

    # verify brings the root's card up to date with what it found
    (clip,) = [p for p in (root / "val").rglob("*.mp4")][:1]
    with clip.open("r+b") as f:
        f.truncate(clip.stat().st_size // 3)
    assert main(["verify", str(root)]) in (0, 1)
    text = card(root)
    assert "| k700-2020 | val | 2 | 1 | 1 (quarantined 1) |" in text
    assert "| val | 1434 | 1 | no_clip 1431, quarantined:" in text


def test_a_library_call_says_so_and_a_kinetics_root_cites_its_release(
    tmp_path: Path, mirror: MirrorIndex, mirror_server: MirrorServer
) -> None:
    config = DownloadConfig(
        root=tmp_path / "k600", release="k600", split="val", mirror=mirror_server.url,
        progress=False,
    )  # fmt: skip
    download(config)
    text = card(tmp_path / "k600")
    assert text.startswith("# Dataset card: Kinetics-600\n")
    assert "    the kinetix Python API\n" in text
    assert "{carreira2018short," in text and "dwibedi" not in text
    assert "## Annotation rows" not in text
    split = mirror.split("k600", "val")
    assert f"| k600 | val | {len(split.clips)} | {len(split.present)} |" in text
