"""The tab shows the right picture: the grid's pixels are the selected step's maps.

For several steps (the newest, loaded first, and older ones), for a second sample, for the
compare grid and for the difference view, every data pixel of every channel is read off the
canvas and compared with the colour tb_featmap.render gives the `npy` route's values (or the
difference of two steps' values) on the range the tab claims to use. A grid that still shows
another step, another run's step, the wrong sample or a wrong scale fails here.
"""

import json

import numpy as np
import pytest
import torch
from torch.utils.tensorboard import SummaryWriter

from support import TensorBoardProcess
from tab_driver import (
    choose, colours, grid_rgb, hover, logged, mismatch, npy, paint, ready, route, select,
    set_step_index, wire_stats, written,
)
from tb_featmap import log_feature_maps, render

TAG = "feature_maps/conv"
STEPS = [0, 10, 20, 30]
OTHER_STEPS = [0, 15, 30]
NAN_AT = (20, 0, 3, 2, 5)  # step, sample, channel, y, x


def _conv(seed: int, scale: float) -> torch.Tensor:
    """[2, 6, 9, 11]: every channel its own offset and spread, nothing constant."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 6, 9, 11, generator=g) * scale
    return x + torch.arange(6).view(1, 6, 1, 1) * 0.5


@pytest.fixture(scope="module")
def tb(tmp_path_factory):
    root = tmp_path_factory.mktemp("pixels") / "logs"
    with SummaryWriter(root / "train") as writer:
        for step in STEPS:
            maps = _conv(step, 1 + step / 10)
            if step == NAN_AT[0]:
                maps[NAN_AT[1:]] = float("nan")
            log_feature_maps(writer, {"conv": maps}, step, max_samples=2)
    with SummaryWriter(root / "other") as writer:
        for step in OTHER_STEPS:
            log_feature_maps(writer, {"conv": _conv(1000 + step, 3.0)}, step, max_samples=2)
    server = TensorBoardProcess(root, "--samples_per_plugin=feature_maps=0")
    try:
        expected = written(root)  # every step of both runs loaded
        server.wait_for(lambda: logged(server) == expected)
        yield server
    finally:
        server.stop()


def _settings(frame):
    return frame.evaluate("({colormap: document.querySelector('#fm-colormap').value,"
                          " norm: document.querySelector('#fm-norm').value})")


def _values_and_ranges(tb, run, step, sample, colormap):
    """The maps of one step and sample, and their per-channel ranges (the default mode)."""
    values = npy(tb, run, TAG, step)[sample]
    stats = wire_stats(tb, run, TAG, step)[sample]
    # The stats are those of the activations; the values of the npy route are dequantised,
    # so the two may differ, by at most the quantisation step's half.
    finite = np.where(np.isfinite(values), values, np.nan)
    assert np.allclose(np.nanmin(finite, axis=(1, 2)), stats[:, 0], rtol=0, atol=1e-6)
    lo, hi = render.value_ranges(stats[:, 0], stats[:, 1], norm="channel", colormap=colormap)
    return values, lo, hi


@pytest.fixture
def frame(tb, page, open_tab):
    frame = ready(page, open_tab, tb)
    choose(frame, "train", TAG)
    assert _settings(frame)["norm"] == "channel"
    return frame


def test_each_step_shows_its_own_maps(tb, page, frame):
    steps = [s["step"] for s in json.loads(route(tb, "steps", run="train", tag=TAG))]
    assert steps == STEPS
    colormap = _settings(frame)["colormap"]
    # the newest step is painted first; then older ones, not in order
    for index in [3, 0, 2, 1]:
        shown = set_step_index(frame, index)
        step = STEPS[index]
        assert shown["step"] == step and f"step {step}" in shown["title"]
        values, lo, hi = _values_and_ranges(tb, "train", step, 0, colormap)
        assert not mismatch(grid_rgb(frame), colours(values, lo, hi, colormap)), f"step {step}"
        readout = hover(page, frame, 4, 6, 7)
        assert float(readout["value"]) == pytest.approx(float(values[4, 7, 6]), rel=1e-6, abs=1e-7)
    # the NaN of step 20 is drawn in the non-finite colour (checked by mismatch) and read as such
    set_step_index(frame, STEPS.index(NAN_AT[0]))
    _, _, channel, y, x = NAN_AT
    assert hover(page, frame, channel, x, y)["text"].endswith("non-finite")
    # another sample of the same step, and another colormap
    select(frame, "#fm-colormap", "magma")
    shown = select(frame, "#fm-sample", "1")
    assert shown["step"] == NAN_AT[0]
    values, lo, hi = _values_and_ranges(tb, "train", NAN_AT[0], 1, "magma")
    assert not mismatch(grid_rgb(frame), colours(values, lo, hi, "magma"))


def test_the_compare_grid_shows_the_other_runs_nearest_step(tb, frame):
    colormap = _settings(frame)["colormap"]
    select(frame, "#fm-compare", "other")
    for index, nearest in [(1, 15), (3, 30)]:  # step 10 is nearest to 15, step 30 is 30
        step = STEPS[index]
        set_step_index(frame, index)
        frame.wait_for_function(
            f"document.querySelector('#fm-compare-title').textContent === 'other · step {nearest}'")
        mine, my_lo, my_hi = _values_and_ranges(tb, "train", step, 0, colormap)
        theirs, their_lo, their_hi = _values_and_ranges(tb, "other", nearest, 0, colormap)
        # shared scale (the default): per map, the lower low and the higher high of both
        lo, hi = np.fmin(my_lo, their_lo), np.fmax(my_hi, their_hi)
        assert not mismatch(grid_rgb(frame), colours(mine, lo, hi, colormap)), f"main, step {step}"
        shown = grid_rgb(frame, "#fm-grid-compare")
        assert not mismatch(shown, colours(theirs, lo, hi, colormap)), f"compare, step {nearest}"
    # each its own scale: the compare grid on the other run's own ranges
    select(frame, "#fm-compare-scale", "own")
    shown = grid_rgb(frame, "#fm-grid-compare")
    assert not mismatch(shown, colours(theirs, their_lo, their_hi, colormap))
    assert not mismatch(grid_rgb(frame), colours(mine, my_lo, my_hi, colormap))


def test_the_difference_view_shows_this_step_minus_the_one_before(tb, page, frame):
    paint(frame, lambda: frame.check("#fm-diff"))
    for index in [1, 3, 2]:  # step 20 holds a NaN: its difference there is non-finite too
        step, before = STEPS[index], STEPS[index - 1]
        shown = set_step_index(frame, index)
        assert f"step {step} − step {before}" in shown["title"]
        diff = npy(tb, "train", TAG, step)[0] - npy(tb, "train", TAG, before)[0]
        lo, hi = render.difference_ranges(diff, norm="channel")
        expected = colours(diff, lo, hi, "diverging")
        assert not mismatch(grid_rgb(frame), expected), f"step {step} - step {before}"
        readout = hover(page, frame, 2, 10, 8)
        assert readout["diff"] == "1"
        assert float(readout["value"]) == pytest.approx(float(diff[2, 8, 10]), rel=1e-6, abs=1e-7)
