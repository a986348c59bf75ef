"""The ava export read by mmaction2 itself: its ``AVAKineticsDataset`` built from the files
``kinetix export --format ava`` writes, samples taken through ``SampleAVAFrames`` and
``RawFrameDecode``, every value checked against the source annotation rows.

mmaction2 is not a dependency of kinetix: these tests run in a venv that has it (the README's
"Checked against mmaction2" says how it is made) and are skipped, saying so, anywhere else.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _downstream import FPS, VIDEO, Roots, ava_text, build_roots

from kinetix.catalog.downstream import AvaRow
from kinetix.catalog.relative import keyframe_on_clip
from kinetix.cli.main import main
from kinetix.data.downstream import load_downstream
from kinetix.export.ava import AvaFramesWriter, write_action_list
from kinetix.synthetic.media import frame_index

try:
    import mmaction.datasets  # noqa: F401  (registers the datasets and transforms)
    from mmaction.registry import DATASETS
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
except Exception as exc:  # ImportError, or mmaction2's own mmcv version assertion
    if os.environ.get("KINETIX_TEST_MMACTION2") == "required":  # CI installed it: must run
        raise
    pytest.skip(
        f"mmaction2 is not importable here ({type(exc).__name__}: {exc}); run this file in "
        "the venv the README's 'Checked against mmaction2' section builds",
        allow_module_level=True,
    )

# Not mmaction.utils.register_all_modules: it imports mmaction.models too, and the 1.2.0 wheel
# lacks mmaction/models/localizers/drn (ModuleNotFoundError); the dataset needs no model.
init_default_scope("mmaction")
# its INFO lines go to the stream pytest captured when the logger was made, closed by the time a
# later test logs ("I/O operation on closed file"): keep to warnings
MMLogger.get_current_instance().setLevel(logging.WARNING)


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory, shared_kinetics: Path) -> Roots:
    return build_roots(tmp_path_factory.mktemp("ava-mmaction2"), shared_kinetics)


def build_dataset(config: dict[str, Any], clip_len: int, interval: int) -> Any:
    """The printed ``dataset=dict(...)`` with the AVA test pipeline of mmaction2's configs."""
    pipeline = [
        dict(type="SampleAVAFrames", clip_len=clip_len, frame_interval=interval, test_mode=True),
        dict(type="RawFrameDecode"),
    ]
    return DATASETS.build({**config, "pipeline": pipeline, "test_mode": True})


def printed_config(printed: str, split: str) -> dict[str, Any]:
    (line,) = [x for x in printed.splitlines() if f"mmaction2 {split}: dataset=dict(" in x]
    text = line.split("dataset=", 1)[1]
    return eval(text, {"__builtins__": {}, "dict": dict})  # type: ignore[no-any-return]


def source_keyframes(
    text: str,
) -> dict[tuple[str, float], list[tuple[tuple[float, ...], set[int], int]]]:
    """The annotation file's rows by keyframe: per box (in file order), its actions and person."""
    out: dict[tuple[str, float], list[tuple[tuple[float, ...], set[int], int]]] = {}
    for line in text.splitlines():
        vid, t, *numbers = line.split(",")
        box = tuple(float(v) for v in numbers[:4])
        boxes = out.setdefault((vid, float(t)), [])
        for known, actions, _ in boxes:
            if known == box:
                actions.add(int(numbers[4]))
                break
        else:
            boxes.append((box, {int(numbers[4])}, int(numbers[5])))
    return out


def expected_frame(
    keyframe: float, image: int, centre: int, start: float, fps: float, n: int
) -> int:
    """The clip frame image ``image`` should show: video time keyframe + (image - centre)/30,
    counted from the clip file's first frame (video time ``start``), clamped to the file."""
    t = keyframe + (image - centre) / 30
    return min(max(math.floor((t - start) * fps + 1e-6), 0), n - 1)


def test_mmaction2_reads_the_cli_export_as_the_source_rows(
    roots: Roots, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ava"
    assert main(["export", str(roots.ava), "--format", "ava", "--out", str(out)]) == 0
    config = printed_config(capsys.readouterr().out, "val")
    a, b = roots.clips.cvdf, roots.clips.youtube
    # person proposals are looked up by youtube id and whole second (the folder's _S_E cut
    # off); a keyframe without one gets the whole image
    proposals = {f"{a.youtube_id},{a.time_start + 4:04d}": np.array([[0.1, 0.2, 0.5, 0.9, 0.95]])}
    with open(tmp_path / "proposals.pkl", "wb") as f:
        pickle.dump(proposals, f)
    dataset = build_dataset({**config, "proposal_file": str(tmp_path / "proposals.pkl")}, 8, 8)
    source = source_keyframes(ava_text(roots.clips))
    # line 5 (a box past x = 1) and line 6 (no clip) are out; the two keyframes are in
    wanted = {k: v for k, v in source.items() if k[0] in (a.youtube_id, b.youtube_id)}
    wanted[(b.youtube_id, b.time_start + 5.5)].pop()  # the rejected box (its only row)
    assert len(dataset) == len(wanted) == 2
    frames = {k.youtube_id: k.clip.num_frames for k in load_downstream(roots.ava, "val").items}
    seen = set()
    for i in range(len(dataset)):
        r = dataset[i]
        vid = r["video_id"].rsplit("_", 2)[0]
        clip = a if vid == a.youtube_id else b
        keyframe = a.time_start + 4.0 if clip is a else b.time_start + 5.5
        boxes = wanted[(vid, keyframe)]
        seen.add(vid)
        # the CSV's integer timestamp is the keyframe's second; the folder name gives the shot
        assert r["timestamp"] == math.floor(keyframe) and r["fps"] == 30
        assert r["img_key"] == f"{r['video_id']},{r['timestamp']:04d}"
        assert Path(r["frame_dir"]).parent == out / "rawframes"
        # RawFrameDecode scales the normalised boxes to the decoded image: the source box
        assert r["img_shape"] == (VIDEO.height, VIDEO.width)
        scale = np.array([VIDEO.width, VIDEO.height] * 2, dtype=np.float32)
        np.testing.assert_allclose(
            r["gt_bboxes"], np.array([box for box, _, _ in boxes], dtype=np.float32) * scale
        )
        # multi-hot over 81 columns (0 the background), column = the file's action id
        assert r["gt_labels"].shape == (len(boxes), 81)
        assert [set(np.flatnonzero(row)) for row in r["gt_labels"]] == [a for _, a, _ in boxes]
        assert list(r["entity_ids"]) == [person for _, _, person in boxes]
        proposal = [0.1, 0.2, 0.5, 0.9] if clip is a else [0.0, 0.0, 1.0, 1.0]
        np.testing.assert_allclose(r["proposals"], [np.array(proposal) * scale], rtol=1e-6)
        # every decoded image is the clip frame at its 30 fps time; the middle one the keyframe
        lead = 0.0 if clip is a else roots.lead
        offset = 0 if clip is a else round((clip.time_start + lead) * FPS)  # video frames
        centre = 30 * (r["timestamp"] - r["timestamp_start"])
        num = frames[vid]
        got = [frame_index(img) for img in r["imgs"]]
        want = [
            expected_frame(keyframe, int(k), centre, clip.time_start + lead, FPS, num) + offset
            for k in r["frame_inds"]
        ]
        assert got == want
        assert got[len(got) // 2] == math.floor((keyframe - clip.time_start - lead) * FPS) + offset
    assert seen == {a.youtube_id, b.youtube_id}


def test_mmaction2_reads_keyframes_at_either_end_of_a_clip(roots: Roots, tmp_path: Path) -> None:
    """Keyframes 1 s after a clip's start and 0.75 s before its end, then one in the middle,
    sampled over +-2 s (8 images 15 apart). mmaction2 gives every keyframe of a file the shot
    (1, 30 * (E - S) + 1) of the file's last line, so a folder of another length than that
    one is read past its end (FileNotFoundError) or clamped at the wrong image."""
    (mid,) = [k for k in load_downstream(roots.ava, "val").items if k.lines == (1, 2, 3)]
    clip = mid.clip
    start, n = clip.timing.time_start, clip.num_frames
    keyframes = []
    for line, t in ((20, start + 9.25), (21, start + 1.0), (22, mid.timestamp)):
        on_clip = keyframe_on_clip(AvaRow(line, mid.youtube_id, t), clip.timing)
        keyframes.append(replace(mid, timestamp=t, lines=(line,), keyframe=on_clip))
    with AvaFramesWriter(tmp_path, "val") as writer:
        for keyframe in keyframes:
            writer.write(keyframe, roots.ava)
    write_action_list(tmp_path)
    config = dict(
        type="AVAKineticsDataset", ann_file=str(tmp_path / "annotations/kinetics_val.csv"),
        exclude_file=None, label_file=str(tmp_path / "annotations/ava_action_list_v2.2.pbtxt"),
        proposal_file=None, data_prefix=dict(img=str(tmp_path / "rawframes")), fps=30,
        start_index=0,
    )  # fmt: skip
    dataset = build_dataset(config, 8, 15)
    assert len(dataset) == 3
    by_second = {math.floor(k.timestamp): k for k in keyframes}
    for i in range(len(dataset)):
        r = dataset[i]
        keyframe = by_second[r["timestamp"]]
        images = sorted(Path(r["frame_dir"]).iterdir())
        inds = np.clip(np.asarray(r["frame_inds"]), 1, len(images))  # this folder's shot
        assert list(r["frame_inds"]) == list(inds)
        centre = 30 * (r["timestamp"] - r["timestamp_start"])
        got = [frame_index(img) for img in r["imgs"]]
        assert got == [
            expected_frame(keyframe.timestamp, int(k), centre, start, FPS, n) for k in inds
        ]
        assert got[len(got) // 2] == keyframe.keyframe.frame
