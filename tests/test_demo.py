"""`kinetix demo` runs every stage against the synthetic mirror and leaves real outputs."""

from __future__ import annotations

from pathlib import Path

from kinetix.catalog.downstream import read_downstream
from kinetix.cli.main import main
from kinetix.demo import run_demo
from kinetix.store.downstream import annotation_copy, downstream_rows
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
    # the Countix step: the mirror's two Countix val rows with their clips, their counts
    if "countix" in result.roots:
        copy = annotation_copy(result.roots["countix"], "countix_val.csv")
        rows = {r.line: r for r in read_downstream(copy, "countix", "val").rows}
        with Manifest(manifest_path(result.roots["countix"]), readonly=True) as m:
            present = [rows[r.line].count for r in downstream_rows(m, "val") if r.present]
        assert sorted(result.countix_counts) == sorted(present) and len(present) == 2
        assert any(line.startswith("[10/10] Countix batch: frames (2, 8,") for line in lines)

    # The CLI reuses the built mirror and finishes again with nothing new to fetch.
    assert main(["demo", "--workdir", str(tmp_path)]) == 0
    assert "reusing the synthetic mirror" in capsys.readouterr().out


def _tiny_pipeline(workdir, result, say) -> None:
    (workdir / "k400").mkdir()
    (workdir / "k400" / "clip.mp4").write_bytes(b"x" * 1_500_000)


def test_demo_temp_dir_is_removed_unless_kept_and_says_where_and_how_big(
    tmp_path, monkeypatch, capsys
) -> None:
    import tempfile

    import kinetix.demo

    monkeypatch.setattr(kinetix.demo, "_pipeline", _tiny_pipeline)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert main(["demo"]) == 0
    out = capsys.readouterr().out.splitlines()
    (made,) = {
        word.rstrip(")(;") for line in out for word in line.split() if "kinetix-demo-" in word
    }
    assert "removed at the end; --keep keeps it" in out[0]
    assert out[-1] == (
        f"demo finished; removed its temp dir {made} (1.5 MB); --keep keeps it, "
        "--workdir DIR puts it where you choose"
    )
    assert not Path(made).exists()

    assert main(["demo", "--keep"]) == 0
    out = capsys.readouterr().out.splitlines()
    (kept,) = [p for p in tmp_path.iterdir() if p.name.startswith("kinetix-demo-")]
    assert out[-1] == f"demo finished; kept its temp dir {kept} (1.5 MB); remove it: rm -rf {kept}"
    assert (kept / "k400" / "clip.mp4").is_file()

    chosen = tmp_path / "mine"
    assert main(["demo", "--workdir", str(chosen)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"demo finished; everything is under {chosen} (1.5 MB)"
    )
    assert chosen.is_dir()


def test_a_failed_demo_keeps_its_temp_dir_and_says_so(tmp_path, monkeypatch) -> None:
    import tempfile

    import pytest

    import kinetix.demo

    def broken(workdir, result, say) -> None:
        (workdir / "half").write_bytes(b"x" * 200_000)
        raise RuntimeError("stage 3 broke")

    monkeypatch.setattr(kinetix.demo, "_pipeline", broken)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    lines: list[str] = []
    with pytest.raises(RuntimeError):
        run_demo(say=lines.append)
    (left,) = list(tmp_path.iterdir())
    assert lines[-1] == f"demo stopped; its files stay in {left} (0.2 MB)"
