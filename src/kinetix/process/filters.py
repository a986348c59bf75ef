"""The ffmpeg filter chain shared by resize and frame extraction: frame rate, then short side."""

from __future__ import annotations


def scale_filter(short_side: int, *, upscale: bool = False) -> str:
    """Scale so the shorter side is ``short_side``, keeping aspect ratio and even dimensions.

    Written as ffmpeg expressions rather than numbers so it follows the frame ffmpeg really
    decodes (after autorotation of portrait phone videos). ``-2`` keeps the aspect ratio
    and rounds to even, as yuv420p needs; without ``upscale`` a smaller clip keeps its size
    (rounded down to even), as mmaction2's ``kinetics400_256`` does not blow up 240p clips.
    """
    n = str(short_side)
    w_side = n if upscale else f"trunc(min({n},iw)/2)*2"
    h_side = n if upscale else f"trunc(min({n},ih)/2)*2"
    return f"scale=w='if(gte(iw,ih),-2,{w_side})':h='if(gte(iw,ih),{h_side},-2)'"


def video_filters(
    *, fps: float | None = None, short_side: int | None = None, upscale: bool = False
) -> str | None:
    """The ``-vf`` chain: ``fps`` first so scaling only touches the frames that are kept."""
    chain = []
    if fps is not None:
        chain.append(f"fps={fps:g}")
    if short_side is not None:
        chain.append(scale_filter(short_side, upscale=upscale))
    return ",".join(chain) or None
