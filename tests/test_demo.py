"""`kinetix demo` runs every stage against the synthetic mirror and leaves real outputs."""

from __future__ import annotations

from kinetix.cli.main import main
from kinetix.demo import run_demo
from kinetix.store.layout import manifest_path
from kinetix.store.manifest import Manifest


def test_demo_runs_the_whole_pipeline(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("KINETIX_CACHE", raising=False)
    lines: list[str] = []
    result = run_demo(tmp_path, say=lines.append)
    assert any("SYNTHETIC" in line for line in lines)
    with Manifest(manifest_path(result.roots["k400"]), readonly=True) as m:
        present = [r for r in m.clips(states=["present"])]
        assert present and all(r.verify == "good" for r in present)
        # val has no corrupted clips: the replacement set is for train only, never fetched
        assert {r.source for r in present} == {"cvdf"}
    with Manifest(manifest_path(result.roots["k700"]), readonly=True) as m:
        (clip,) = m.clips(states=["present"])
        assert clip.source == "youtube" and clip.trim == "exact"
    frames = list((result.roots["frames"]).rglob("img_00001.jpg"))
    assert len(frames) == len(present)
    assert len(list(result.roots["frames"].rglob("audio.wav"))) == len(present)
    assert result.batch_shape[0] == 4 and result.batch_shape[1:2] == (8,)
    assert all(0 <= label < 400 for label in result.batch_labels)
    assert (tmp_path / "exports" / "mmaction").is_dir()

    # The CLI reuses the built mirror and finishes again with nothing new to fetch.
    assert main(["demo", "--workdir", str(tmp_path)]) == 0
    assert "reusing the synthetic mirror" in capsys.readouterr().out
