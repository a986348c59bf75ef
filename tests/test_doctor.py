"""``kinetix doctor`` reports the binaries and runtimes kinetix will use."""

from __future__ import annotations

import json

from kinetix.cli.main import main


def test_doctor_json_names_ffmpeg_and_ytdlp(capsys) -> None:
    assert main(["doctor", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["ffmpeg"]["origin"] in {"system", "imageio-ffmpeg", "KINETIX_FFMPEG"}
    assert info["ffmpeg"]["version"]
    assert info["pyav"] and info["yt_dlp"]
    assert "js_runtime" in info


def test_imageio_ffmpeg_is_used_without_a_system_binary(monkeypatch) -> None:
    import kinetix.process.ffmpeg as ff

    monkeypatch.delenv("KINETIX_FFMPEG", raising=False)
    monkeypatch.setattr(ff.shutil, "which", lambda name: None)
    ff.find_ffmpeg.cache_clear()
    try:
        found = ff.find_ffmpeg()
        assert found.origin == "imageio-ffmpeg"
        assert (
            ff.run_ffmpeg(["-f", "lavfi", "-i", "nullsrc=s=16x16:d=0.1", "-f", "null", "-"]) == ""
        )
    finally:
        ff.find_ffmpeg.cache_clear()


def test_doctor_says_whether_youtube_downloads_can_work(capsys, monkeypatch) -> None:
    import kinetix.sources.youtube as yt

    monkeypatch.setattr(
        yt,
        "youtube_readiness",
        lambda: {"ready": False, "problems": ["no deno found: pip install deno"], "deno": None},
    )
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "js_runtime         not found" in out
    assert "warning: YouTube downloads will fail: no deno found: pip install deno" in out
