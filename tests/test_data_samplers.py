"""Samplers choose in-range, fps-aware frame indices, the same ones for the same seed."""

from __future__ import annotations

import numpy as np
import pytest

from kinetix.data.decoders import scaled_size
from kinetix.data.samplers import (
    MultiViewSampler,
    RandomClipSampler,
    UniformSampler,
    item_rng,
    make_sampler,
)
from kinetix.errors import ConfigError


def test_random_clips_stay_inside_and_cover_every_start() -> None:
    sampler = RandomClipSampler(16, 4)
    starts = set()
    for item in range(400):
        chosen = sampler(250, 25.0, item_rng(0, 0, item))
        assert chosen.shape == (1, 16)
        assert np.all(np.diff(chosen[0]) == 4) and chosen.max() <= 249
        starts.add(int(chosen[0, 0]))
    assert min(starts) == 0 and max(starts) == 250 - 61  # every start that fits is possible


def test_stride_follows_fps_when_a_target_rate_is_given() -> None:
    sampler = RandomClipSampler(4, 2, target_fps=25)
    rng = np.random.default_rng(0)
    assert np.diff(sampler(300, 25.0, rng)[0]).tolist() == [2, 2, 2]
    assert np.diff(sampler(300, 50.0, rng)[0]).tolist() == [4, 4, 4]  # same span in seconds
    assert np.diff(sampler(300, None, rng)[0]).tolist() == [2, 2, 2]  # unknown fps: as given
    assert np.diff(RandomClipSampler(4, 2)(300, 50.0, rng)[0]).tolist() == [2, 2, 2]


def test_short_clips_repeat_their_last_frame() -> None:
    assert RandomClipSampler(5, 3)(7, 25.0, np.random.default_rng(1)).tolist() == [[0, 3, 6, 6, 6]]
    assert MultiViewSampler(3, 2, views=2)(4, None, np.random.default_rng()).tolist() == [
        [0, 2, 3], [0, 2, 3],
    ]  # fmt: skip


def test_multiview_and_uniform_are_deterministic() -> None:
    views = MultiViewSampler(4, 2, views=3)(100, 25.0, np.random.default_rng(5))
    assert views[:, 0].tolist() == [0, 46, 93] and views[-1, -1] == 99
    assert MultiViewSampler(4, 2, views=1)(100, 25.0, None)[0, 0] == 46  # the centre clip
    assert UniformSampler(4)(100, 25.0, None).tolist() == [[12, 37, 62, 87]]


def test_same_seed_epoch_item_same_choice() -> None:
    sampler = RandomClipSampler(8, 2)
    first = sampler(300, 30.0, item_rng(3, 1, 17))
    assert np.array_equal(first, sampler(300, 30.0, item_rng(3, 1, 17)))
    others = [sampler(300, 30.0, item_rng(*k)) for k in [(3, 2, 17), (4, 1, 17), (3, 1, 18)]]
    assert all(not np.array_equal(first, o) for o in others)


def test_bad_settings_say_what_is_valid() -> None:
    with pytest.raises(ConfigError, match="valid values are random, uniform, multiview"):
        make_sampler("dense", 8)
    with pytest.raises(ConfigError, match="frames_per_clip"):
        make_sampler("random", 0)
    with pytest.raises(ConfigError, match="num_views"):
        make_sampler("multiview", 8, num_views=0)
    with pytest.raises(ConfigError, match="target_fps"):
        make_sampler("random", 8, target_fps=-1)


def test_scaled_size_keeps_the_aspect() -> None:
    assert scaled_size(340, 256, 128) == (170, 128)
    assert scaled_size(256, 340, 128) == (128, 170)
    assert scaled_size(640, 360, 256) == (456, 256)
    assert scaled_size(64, 80, None) == (64, 80)
