"""The Feature Maps tab in a real TensorBoard, driven by Debian's chromium through Playwright.

Each check reads what the page shows (canvas pixels, the hover readout, the selects) and
compares it with what the plugin's routes serve for the same data.
"""

import hashlib
import json
import os
import time

import numpy as np
import pytest
import torch
from torch.utils.tensorboard import SummaryWriter

from support import REPO, TensorBoardProcess
from tab_driver import PIXEL_JS
from tab_driver import cell_pixel as _cell_pixel
from tab_driver import choose as _choose
from tab_driver import hover as _hover
from tab_driver import logged as _logged
from tab_driver import npy as _npy
from tab_driver import open_detail as _open_detail
from tab_driver import paint as _paint
from tab_driver import ready as _ready
from tab_driver import route as _route
from tab_driver import select as _select
from tab_driver import set_step_index as _set_step_index
from tb_featmap import log_feature_maps

HOSTILE_TAG = "<img src=x onerror=alert(1)>"
HOSTILE_RUN = "<b>run</b>"  # a directory "<b>run<" with a subdirectory "b>"
KEPT = 4  # --samples_per_plugin: the "train" run logs more steps than this


def _maps(step: int, channels: int, h: int, w: int, samples: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(step * 100 + channels)
    x = torch.randn(samples, channels, h, w, generator=g) * (1 + step)
    x[:, 1] = 0.0  # channel 1: dead at every step
    return x


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tab") / "logs"
    with SummaryWriter(root / "train") as writer:
        for step in range(6):
            conv1 = _maps(step, 8, 12, 16, samples=2)
            if step == 5:  # the newest step: always kept
                conv1[0, 2, 4, 5] = float("nan")
            log_feature_maps(writer, {"conv1": conv1, "conv2": _maps(step, 16, 6, 6)}, step * 10, max_samples=2)
    with SummaryWriter(root / "other") as writer:
        for step in range(3):
            log_feature_maps(writer, {"conv1": _maps(step + 7, 8, 12, 16, samples=2)}, step * 25, max_samples=2)
    with SummaryWriter(root / HOSTILE_RUN) as writer:
        log_feature_maps(writer, {HOSTILE_TAG: _maps(0, 3, 5, 5)}, 0)
    return root


@pytest.fixture(scope="module")
def tb(logdir):
    server = TensorBoardProcess(logdir, f"--samples_per_plugin=feature_maps={KEPT}")
    try:
        # Every run loaded to its last step, not just listed: TensorBoard lists a run as soon
        # as it has read part of it, and a tab opened then says "kept 4 of the 5 steps".
        server.wait_for(lambda: _logged(server) == WRITTEN)
        yield server
    finally:
        server.stop()


WRITTEN = {  # (run, tag): (steps logged, newest step), as the logdir fixture writes them
    ("train", "feature_maps/conv1"): (6, 50),
    ("train", "feature_maps/conv2"): (6, 50),
    ("other", "feature_maps/conv1"): (3, 50),
    (HOSTILE_RUN, f"feature_maps/{HOSTILE_TAG}"): (1, 0),
}


def _canvas_hash(frame, selector="#fm-grid"):
    url = frame.evaluate(f"document.querySelector({json.dumps(selector)}).toDataURL()")
    return hashlib.sha256(url.encode()).hexdigest()


def test_layers_show_their_stored_shape_and_samples(tb, page, open_tab):
    frame = _ready(page, open_tab, tb)
    _choose(frame, "train", "feature_maps/conv1")
    options = frame.eval_on_selector_all("#fm-layer option", "os => os.map(o => o.textContent)")
    assert options == ["conv1 · 8×12×16", "conv2 · 16×6×6"]
    samples = frame.eval_on_selector_all("#fm-sample option", "os => os.map(o => o.value)")
    assert samples == ["0", "1"] and frame.is_visible("#fm-sample")
    tags = json.loads(_route(tb, "tags"))
    assert tags["train"]["feature_maps/conv1"]["logged"] > KEPT
    notice = frame.text_content("#fm-notice")
    assert f"kept {KEPT} of the 6 steps" in notice and "--samples_per_plugin=feature_maps=0" in notice
    assert not page.console_errors and not page.dialogs


def test_steps_layers_and_samples_change_the_pixels(tb, page, open_tab):
    frame = _ready(page, open_tab, tb)
    _choose(frame, "train", "feature_maps/conv1")
    steps = [s["step"] for s in json.loads(_route(tb, "steps", run="train", tag="feature_maps/conv1"))]
    assert len(steps) == KEPT and steps[-1] == 50
    hashes = {}
    for i, step in enumerate(steps):
        shown = _set_step_index(frame, i)
        assert shown["step"] == step and f"step {step}" in shown["title"]
        hashes[step] = _canvas_hash(frame)
    assert len(set(hashes.values())) == len(steps)
    # back to a step already seen: the same picture (from the cache)
    _set_step_index(frame, 0)
    assert _canvas_hash(frame) == hashes[steps[0]]
    # the keyboard moves one kept step
    frame.locator("body").click(position={"x": 5, "y": 5})
    shown = _paint(frame, lambda: page.keyboard.press("ArrowRight"))
    assert shown["step"] == steps[1]
    assert _select(frame, "#fm-sample", "1")["step"] == steps[1]  # another sample, same step
    sample1 = _canvas_hash(frame)
    assert sample1 != hashes[steps[1]]
    _select(frame, "#fm-layer", "feature_maps/conv2")
    assert _canvas_hash(frame) not in (sample1, *hashes.values())


def test_every_kept_step_is_prefetched_then_scrubbing_fetches_nothing(tb, page, open_tab):
    frame = _ready(page, open_tab, tb)
    _choose(frame, "train", "feature_maps/conv2")
    frame.wait_for_function(
        "fmApp.steps.length > 0 && fmApp.steps.every((s) => fmApp.model.peek("
        "document.querySelector('#fm-run').value, document.querySelector('#fm-layer').value,"
        " s.step, s.wall_time))", timeout=30000)
    requests = []
    page.on("request", lambda r: "/maps?" in r.url and requests.append(r.url))
    details = frame.evaluate("""async () => {
      const out = [];
      for (let i = 0; i < fmApp.steps.length; i++) {
        const painted = new Promise((r) => document.addEventListener('fm-painted', (e) => r(e.detail), {once: true}));
        fmApp.goTo(i);
        out.push(await painted);
      }
      return out;
    }""")
    assert [d["cached"] for d in details] == [True] * KEPT
    assert requests == []


def test_hover_reads_the_values_the_npy_route_serves(tb, page, open_tab):
    frame = _ready(page, open_tab, tb)
    _choose(frame, "train", "feature_maps/conv1")
    steps = [s["step"] for s in json.loads(_route(tb, "steps", run="train", tag="feature_maps/conv1"))]
    shown = _set_step_index(frame, len(steps) - 1)
    assert shown["step"] == 50
    maps = _npy(tb, "train", "feature_maps/conv1", 50)
    assert maps.shape == (2, 8, 12, 16)
    for channel, x, y in [(0, 0, 0), (3, 15, 11), (7, 6, 2), (1, 3, 3)]:
        readout = _hover(page, frame, channel, x, y)
        expected = maps[0, channel, y, x]
        assert float(readout["value"]) == pytest.approx(float(expected), rel=1e-6, abs=1e-7)
        assert f"channel {channel} · x {x}, y {y}" in readout["text"]
    readout = _hover(page, frame, 2, 5, 4)
    assert np.isnan(maps[0, 2, 4, 5]) and readout["text"].endswith("non-finite")


def test_colormap_and_normalisation_change_the_picture(tb, page, open_tab):
    frame = _ready(page, open_tab, tb)
    _choose(frame, "train", "feature_maps/conv1")
    seen = [_canvas_hash(frame)]
    for colormap in ["gray", "magma", "inferno", "diverging"]:
        _select(frame, "#fm-colormap", colormap)
        seen.append(_canvas_hash(frame))
        assert frame.text_content("#fm-colorbar")  # the colour bar follows
    assert len(set(seen)) == 5
    _select(frame, "#fm-colormap", "gray")
    _set_step_index(frame, 0)  # the oldest step has the smallest values: fixed != per layer
    per_channel = _canvas_hash(frame)
    _select(frame, "#fm-norm", "layer")
    per_layer = _canvas_hash(frame)
    frame.wait_for_function("fmApp.fixed !== null")
    _select(frame, "#fm-norm", "fixed")
    fixed = _canvas_hash(frame)
    assert len({per_channel, per_layer, fixed}) == 3
    # fixed: the colour bar is labelled with the range over all channels and kept steps
    stats = frame.evaluate("Array.from(fmApp.current.maps.stats)")
    stats = np.array(stats, dtype=np.float32).reshape(2, 8, 6)
    span = json.loads(_route(tb, "stats", run="train", tag="feature_maps/conv1"))
    assert float(frame.text_content(".fm-colorbar-low")) == pytest.approx(min(float(v) for v in span["min"]), rel=1e-3)
    assert float(frame.text_content(".fm-colorbar-high")) == pytest.approx(max(float(v) for v in span["max"]), rel=1e-3)
    assert float(frame.text_content(".fm-colorbar-high")) > np.nanmax(stats[0, :, 1]) * 1.5
    assert stats[0, 1, 4] == 1.0  # channel 1 is all zeros ...
    assert "dead at every kept step" in frame.text_content("#fm-summary")
    assert span["dead"][1] is True
    # sorting reorders the channels
    _select(frame, "#fm-sort", "std")
    order = frame.evaluate("fmApp.current.order")
    assert order != list(range(8)) and sorted(order) == list(range(8))
    assert order[-1] == 1  # the dead channel has the smallest std


def test_click_opens_the_channel_and_its_filmstrip(tb, page, open_tab):
    frame = _ready(page, open_tab, tb)
    _choose(frame, "train", "feature_maps/conv2")
    _open_detail(page, frame, 5, 2, 2)
    assert "Channel 5" in frame.text_content("#fm-detail")
    frame.wait_for_function(f"document.querySelectorAll('#fm-filmstrip button').length === {KEPT}")
    steps = [s["step"] for s in json.loads(_route(tb, "steps", run="train", tag="feature_maps/conv2"))]
    labels = frame.eval_on_selector_all("#fm-filmstrip button", "bs => bs.map(b => b.dataset.step)")
    assert labels == [str(s) for s in steps]
    shown = _paint(frame, lambda: frame.click("#fm-filmstrip button >> nth=0"))
    assert shown["step"] == steps[0]


def test_compare_and_difference_views(tb, page, open_tab):
    frame = _ready(page, open_tab, tb)
    _choose(frame, "train", "feature_maps/conv1")
    assert not frame.is_visible("#fm-grid-compare")
    _select(frame, "#fm-compare", "other")
    assert frame.is_visible("#fm-grid-compare")
    # (a repaint for another reason may come first, while the other run's steps load)
    frame.wait_for_function("document.querySelector('#fm-compare-title').textContent === 'other · step 50'")
    assert frame.evaluate("document.querySelector('#fm-grid-compare').width") > 1
    _select(frame, "#fm-compare", "")
    steps = [s["step"] for s in json.loads(_route(tb, "steps", run="train", tag="feature_maps/conv1"))]
    before = _canvas_hash(frame)
    _paint(frame, lambda: frame.check("#fm-diff"))
    assert _canvas_hash(frame) != before
    assert f"step {steps[-1]} − step {steps[-2]}" in frame.text_content("#fm-title")
    readout = _hover(page, frame, 4, 7, 3)
    now = _npy(tb, "train", "feature_maps/conv1", steps[-1])
    prev = _npy(tb, "train", "feature_maps/conv1", steps[-2])
    assert readout["diff"] == "1"
    assert float(readout["value"]) == pytest.approx(float(now[0, 4, 3, 7] - prev[0, 4, 3, 7]), rel=1e-5, abs=1e-6)


def test_difference_mode_colours_the_detail_view_and_filmstrip_like_the_grid(tb, page, open_tab):
    frame = _ready(page, open_tab, tb)
    _choose(frame, "train", "feature_maps/conv1")
    if not frame.is_checked("#fm-diff"):
        _paint(frame, lambda: frame.check("#fm-diff"))
    _open_detail(page, frame, 4, 7, 3)
    frame.wait_for_function(f"document.querySelectorAll('#fm-filmstrip button').length === {KEPT}")
    tile = frame.evaluate("(() => { const c = document.querySelector('#fm-detail canvas');"
                          " c.id = 'fm-test-tile'; return [c.width, c.height]; })()")
    maps = frame.evaluate("[fmApp.current.maps.w, fmApp.current.maps.h]")
    for x, y in [(7, 3), (0, 0), (15, 11)]:
        at = [int((x + 0.5) * tile[0] / maps[0]), int((y + 0.5) * tile[1] / maps[1])]
        assert frame.evaluate(PIXEL_JS, ["#fm-test-tile", *at]) == _cell_pixel(frame, 4, x, y)
    # every frame but the oldest (nothing before it to subtract) is a difference
    diffs = frame.eval_on_selector_all("#fm-filmstrip button", "bs => bs.map(b => b.dataset.diff)")
    assert diffs == ["0"] + ["1"] * (KEPT - 1)
    _paint(frame, lambda: frame.click("#fm-detail-close"))
    _paint(frame, lambda: frame.uncheck("#fm-diff"))


def test_the_compare_grid_says_its_scale(tb, page, open_tab):
    frame = _ready(page, open_tab, tb)
    _choose(frame, "train", "feature_maps/conv1")
    _select(frame, "#fm-norm", "layer")
    _select(frame, "#fm-compare", "other")
    frame.wait_for_function("document.querySelector('#fm-compare-title').textContent === 'other · step 50'")
    steps = json.loads(_route(tb, "steps", run="train", tag="feature_maps/conv1"))
    mine = _npy(tb, "train", "feature_maps/conv1", steps[-1]["step"])[0]
    theirs = _npy(tb, "other", "feature_maps/conv1", 50)[0]
    # shared (the default): one colour bar, over both runs' range at these steps
    assert "shared" in frame.text_content("#fm-grid-compare-scale")
    assert "(both runs)" in frame.text_content("#fm-colorbar")
    low = float(frame.text_content(".fm-colorbar-low"))
    high = float(frame.text_content(".fm-colorbar-high"))
    assert low == pytest.approx(min(np.nanmin(mine), np.nanmin(theirs)), rel=1e-3)
    assert high == pytest.approx(max(np.nanmax(mine), np.nanmax(theirs)), rel=1e-3)
    assert not frame.query_selector("#fm-colorbar-compare")
    # each its own: the compare grid gets its own colour bar with its own range
    _select(frame, "#fm-compare-scale", "own")
    assert "its own" in frame.text_content("#fm-grid-compare-scale")
    own = frame.query_selector("#fm-colorbar-compare")
    assert float(own.query_selector(".fm-colorbar-low").text_content()) == pytest.approx(np.nanmin(theirs), rel=1e-3)
    assert float(own.query_selector(".fm-colorbar-high").text_content()) == pytest.approx(np.nanmax(theirs), rel=1e-3)
    assert float(frame.text_content(".fm-colorbar-high")) == pytest.approx(np.nanmax(mine), rel=1e-3)
    _select(frame, "#fm-compare", "")
    _select(frame, "#fm-norm", "channel")


def test_hostile_names_render_as_text(tb, page, open_tab):
    frame = _ready(page, open_tab, tb)
    _choose(frame, HOSTILE_RUN, f"feature_maps/{HOSTILE_TAG}")
    assert frame.eval_on_selector_all("#fm-layer option", "os => os.map(o => o.textContent)") == [f"{HOSTILE_TAG} · 3×5×5"]
    assert HOSTILE_RUN in frame.eval_on_selector_all("#fm-run option", "os => os.map(o => o.textContent)")
    assert frame.text_content("#fm-title").startswith(HOSTILE_RUN)
    time.sleep(0.5)  # an injected onerror would have fired by now
    assert frame.evaluate("document.querySelectorAll('img, b').length") == 0
    assert not page.dialogs and not page.console_errors


def test_new_steps_appear_while_the_tab_is_open(tmp_path, tensorboard_process, page, open_tab):
    writer = SummaryWriter(tmp_path / "logs" / "live")
    log_feature_maps(writer, {"conv": _maps(0, 4, 6, 6)}, 0)
    writer.flush()
    server = tensorboard_process(tmp_path / "logs")
    server.wait_for(lambda: b"conv" in server.get("/data/plugin/feature_maps/tags")[2])
    frame = _ready(page, open_tab, server)
    assert frame.evaluate("document.querySelector('#fm-step').max") == "0"
    log_feature_maps(writer, {"conv": _maps(1, 4, 6, 6)}, 1)
    writer.flush()
    frame.wait_for_function("document.querySelector('#fm-step').max === '1'", timeout=40000)
    frame.wait_for_function("document.querySelector('#fm-step-input').value === '1'", timeout=10000)
    writer.close()


def test_empty_logdir_explains_what_to_do(tmp_path, tensorboard_process, page, open_tab):
    (tmp_path / "logs").mkdir()
    server = tensorboard_process(tmp_path / "logs")
    frame = open_tab(page, server.url)
    frame.wait_for_selector("#fm-empty:not([hidden])", timeout=60000)
    text = frame.text_content("#fm-empty")
    assert 'log_feature_maps(writer, {"conv1": activations}, step)' in text
    assert "from tb_featmap import log_feature_maps" in text
    assert not page.console_errors


def test_screenshot_of_the_demo(demo_tb, page, open_tab, tmp_path):
    """The tab over the demo run. Rewrites docs/screenshot.png when UPDATE_SCREENSHOT=1."""
    page.set_viewport_size({"width": 1400, "height": 900})
    frame = _ready(page, open_tab, demo_tb)
    _choose(frame, demo_tb.run_name, "feature_maps/conv1")
    _select(frame, "#fm-colormap", "viridis")
    _open_detail(page, frame, 3, 20, 20)
    frame.wait_for_selector("#fm-filmstrip[data-filled]")  # every frame of the strip drawn
    update = os.environ.get("UPDATE_SCREENSHOT") == "1"
    path = REPO / "docs" / "screenshot.png" if update else tmp_path / "screenshot.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10000
    assert frame.evaluate("document.querySelectorAll('#fm-filmstrip button').length") > 1
    assert not page.console_errors
