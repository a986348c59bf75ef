"""Frame folders load without OpenCV or Pillow: simplejpeg (a kinetix dependency) decodes them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from _roots import RootClip, build_frames_root, build_videos_root, clips

from kinetix.data import RawFramesDataset
from kinetix.data.decoders import JpegFolderReader, resize_bilinear
from kinetix.errors import MissingDependencyError
from kinetix.synthetic.media import frame_index


@pytest.fixture(scope="module")
def frames_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("jpeg")
    videos = build_videos_root(base / "videos", [RootClip(c) for c in clips("train", ["yoga"] * 2)])
    return build_frames_root(base / "frames", videos)


def hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)  # ``import name`` raises ImportError


def test_frames_load_with_simplejpeg_alone(
    frames_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_cv2 = RawFramesDataset(frames_root, "train", frames_per_clip=4, seed=1, output="numpy")
    expected = [with_cv2[i][0] for i in range(len(with_cv2))]
    hide(monkeypatch, "cv2", "PIL", "PIL.Image")
    ds = RawFramesDataset(frames_root, "train", frames_per_clip=4, seed=1, output="numpy")
    assert ds.reader._turbo is not None
    for i, want in enumerate(expected):
        got, _ = ds[i]
        assert got.shape == want.shape == (4, 80, 64, 3)
        assert [frame_index(f) for f in got] == [frame_index(f) for f in want]
        assert np.abs(got.astype(int) - want.astype(int)).mean() < 1.0  # both libjpeg-turbo
    small = RawFramesDataset(frames_root, "train", frames_per_clip=2, short_side=32, output="numpy")
    assert small[0][0].shape == (2, 40, 32, 3)
    assert [frame_index(f) for f in small[0][0]] == list(small.frame_indices(0))


def test_no_decoder_at_all_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "cv2", "PIL", "PIL.Image", "simplejpeg")
    with pytest.raises(MissingDependencyError) as error:
        JpegFolderReader()
    message = str(error.value)
    assert "OpenCV, Pillow or simplejpeg" in message and "pip install simplejpeg" in message


def test_bilinear_resize_keeps_flat_areas_and_shape() -> None:
    image = np.zeros((80, 64, 3), np.uint8)
    image[:40] = 200  # top half bright
    out = resize_bilinear(image, (32, 40))
    assert out.shape == (40, 32, 3) and out.dtype == np.uint8
    assert (out[:19] == 200).all() and (out[21:] == 0).all()
    assert (resize_bilinear(image, (64, 80)) == image).all()  # same size: unchanged
