"""Insight in space, in a real TensorBoard through Debian's chromium: the overlay on the
input, the shared crosshair, top K channels with the channel filter, and the detail zoom.

One tensorboard for the module, small data: a 3-channel "input" of 16x16 and a "conv" layer
of 12 channels of 8x8 whose channels have clearly different spreads, three steps, a second
run to compare with, and a short demo run for the screenshot. What the page shows is checked
against the `npy` route.
"""

import hashlib
import io
import os
import sys
import urllib.parse

import numpy as np
import pytest
import torch
from torch.utils.tensorboard import SummaryWriter

from support import REPO, TensorBoardProcess
from tab_driver import logged, written
from tab_driver import paint as _paint
from tb_featmap import log_feature_maps

TAG = "feature_maps/conv"
CHANNELS = 12
CROSSHAIR_RGB = [0x00, 0xE5, 0xFF]


def _conv(step: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1000 + step)
    spread = torch.randperm(CHANNELS, generator=g).float() + 1  # a different order each step
    x = torch.randn(1, CHANNELS, 8, 8, generator=g) * spread[None, :, None, None]
    return x + torch.randn(1, CHANNELS, 1, 1, generator=g) * 3  # and different means


@pytest.fixture(scope="module")
def tb(tmp_path_factory):
    root = tmp_path_factory.mktemp("insight") / "logs"
    for run, seed in (("train", 1), ("other", 2)):
        with SummaryWriter(root / run) as writer:
            for step in range(3):
                g = torch.Generator().manual_seed(step)
                image = torch.rand(1, 3, 16, 16, generator=g)
                log_feature_maps(writer, {"input": image, "conv": _conv(step, seed)}, step * 10)
    sys.path.insert(0, str(REPO / "demo"))
    try:
        import train
    finally:
        sys.path.pop(0)
    train.run_all(root, steps=120, maps_every=40)
    server = TensorBoardProcess(root)
    try:
        expected = written(root)
        server.wait_for(lambda: logged(server) == expected)
        yield server
    finally:
        server.stop()


def _npy(tb, run, step):
    query = urllib.parse.urlencode({"run": run, "tag": TAG, "step": step})
    status, _, body = tb.get(f"/data/plugin/feature_maps/npy?{query}")
    assert status == 200, body[:200]
    return np.load(io.BytesIO(body))[0]


def _ready(page, open_tab, tb):
    frame = open_tab(page, tb.url)
    frame.wait_for_function("window.fmApp && fmApp.paintCount > 0", timeout=60000)
    if frame.input_value("#fm-run") != "train":
        _paint(frame, lambda: frame.select_option("#fm-run", "train"))
    if frame.input_value("#fm-layer") != TAG:
        _paint(frame, lambda: frame.select_option("#fm-layer", TAG))
    return frame


def _fill(frame, selector, value):
    """Set an input's value as typing (or dragging a slider) does, then wait for the repaint."""
    js = "([s, v]) => { const e = document.querySelector(s); e.value = v; e.dispatchEvent(new Event('input')); }"
    _paint(frame, lambda: frame.evaluate(js, [selector, value]))


def _wait_overlaid(frame):
    """Choosing a background repaints at once, and again once its kept steps have loaded
    (a fetch of its own): only from then on is it drawn. Wait for that, not for the first
    repaint, before a test repaints and looks."""
    frame.wait_for_function("fmApp.overlaid", timeout=30000)


def _hash(frame, selector="#fm-grid"):
    url = frame.evaluate(f"document.querySelector('{selector}').toDataURL()")
    return hashlib.sha256(url.encode()).hexdigest()


def _layout(frame):
    return frame.evaluate("(() => { const c = fmApp.current; return {...c.layout, order: c.order}; })()")


def _origin(layout, slot):
    return ((slot % layout["cols"]) * (layout["cellW"] + layout["gap"]),
            (slot // layout["cols"]) * (layout["cellH"] + layout["gap"]))


def _pixel(frame, selector, x, y):
    return frame.evaluate(
        f"Array.from(document.querySelector('{selector}').getContext('2d').getImageData({x}, {y}, 1, 1).data)")


def _cell(frame, layout, slot):
    x, y = _origin(layout, slot)
    return frame.evaluate(
        f"Array.from(document.querySelector('#fm-grid').getContext('2d')"
        f".getImageData({x}, {y}, {layout['cellW']}, {layout['cellH']}).data)")


def _steps(frame):
    return [s["step"] for s in frame.evaluate("fmApp.steps")]


def test_the_overlay_draws_the_input_under_the_maps_and_follows_the_opacity(tb, page, open_tab):
    frame = _ready(page, open_tab, tb)
    options = frame.eval_on_selector_all("#fm-overlay option", "os => os.map(o => o.value)")
    assert options == ["", "feature_maps/input"]  # conv has 12 channels: not a background
    plain = _hash(frame)
    _paint(frame, lambda: frame.select_option("#fm-overlay", "feature_maps/input"))
    _wait_overlaid(frame)
    assert frame.is_visible("#fm-opacity")
    seen = {}
    for opacity in ("60", "20", "100", "0"):
        _fill(frame, "#fm-opacity", opacity)
        seen[opacity] = _hash(frame)
    assert len({seen["60"], seen["20"], seen["0"], plain}) == 4
    assert seen["100"] == plain  # opaque maps hide the input
    layout = _layout(frame)
    # At opacity 0 every cell is the input alone, the same picture in each.
    assert _cell(frame, layout, 0) == _cell(frame, layout, 5)
    _fill(frame, "#fm-opacity", "60")
    assert _cell(frame, layout, 0) != _cell(frame, layout, 5)
    # The detail view draws over the input too, and follows the opacity.
    box = frame.locator("#fm-grid").bounding_box()
    _paint(frame, lambda: page.mouse.click(box["x"] + 2, box["y"] + 2))
    before = _hash(frame, "#fm-detail-canvas")
    _fill(frame, "#fm-opacity", "30")
    assert _hash(frame, "#fm-detail-canvas") != before
    assert not page.console_errors


def test_the_crosshair_marks_the_hovered_place_in_every_map_of_both_grids(tb, page, open_tab):
    frame = _ready(page, open_tab, tb)
    _paint(frame, lambda: frame.select_option("#fm-compare", "other"))
    layout = _layout(frame)
    x, y, slot = 2, 5, 3
    ox, oy = _origin(layout, slot)
    box = frame.locator("#fm-grid").bounding_box()
    page.mouse.move(box["x"] + ox + (x + 0.5) * layout["cellW"] / 8, box["y"] + oy + (y + 0.5) * layout["cellH"] / 8)
    frame.wait_for_function(f"document.querySelector('#fm-hover').dataset.x === '{x}'"
                            f" && document.querySelector('#fm-hover').dataset.y === '{y}'")
    assert frame.text_content("#fm-hover").startswith(f"channel {layout['order'][slot]} · x {x}, y {y}")
    for canvas in ("#fm-grid-cross", "#fm-grid-compare-cross"):
        for other in (0, layout["count"] - 1):
            sx, sy = _origin(layout, other)
            cx = sx + int((x + 0.5) / 8 * layout["cellW"])
            cy = sy + int((y + 0.5) / 8 * layout["cellH"])
            assert _pixel(frame, canvas, cx, cy) == [*CROSSHAIR_RGB, 255], (canvas, other)
            assert _pixel(frame, canvas, sx, sy)[3] == 0  # the cell's corner: unmarked
    page.mouse.move(box["x"] - 20, box["y"] - 20)
    frame.wait_for_function("!document.querySelector('#fm-grid-cross').getContext('2d')"
                            ".getImageData(0, 0, fmApp.current.layout.width, fmApp.current.layout.height)"
                            ".data.some((v) => v)")


def _ranked(values, by, previous=None):
    flat = values.reshape(values.shape[0], -1).astype(np.float64)
    key = {"std": lambda: flat.std(axis=1), "mean": lambda: flat.mean(axis=1),
           "change": lambda: np.abs(flat - previous.reshape(flat.shape)).mean(axis=1)}[by]()
    return sorted(range(len(key)), key=lambda c: (-key[c], c)), key


@pytest.mark.parametrize("by", ["std", "change"])
def test_top_k_shows_k_maps_ordered_by_the_statistic_of_the_npy_values(tb, page, open_tab, by):
    frame = _ready(page, open_tab, tb)
    steps = _steps(frame)
    _paint(frame, lambda: frame.select_option("#fm-top-by", by))
    _fill(frame, "#fm-top", "5")
    for index in (2, 1):  # kept while stepping
        _paint(frame, lambda: frame.evaluate(f"fmApp.goTo({index})"))
        values = _npy(tb, "train", steps[index])
        order, key = _ranked(values, by, _npy(tb, "train", steps[index - 1]) if by == "change" else None)
        if by == "std":  # the writer's std (before quantisation) ranks like the stored values'
            assert min(abs(np.diff(np.sort(key)))) > 0.05
        layout = _layout(frame)
        assert layout["count"] == 5 and layout["order"] == order[:5]
        assert frame.text_content("#fm-summary").startswith(f"showing 5 of {CHANNELS} channels")
    # The filter narrows what top K ranks; a bad filter says why and filters nothing.
    _fill(frame, "#fm-channels", "1, 3-6")
    values = _npy(tb, "train", steps[1])
    order, _ = _ranked(values, by, _npy(tb, "train", steps[0]) if by == "change" else None)
    assert _layout(frame)["order"] == [c for c in order if c in (1, 3, 4, 5, 6)][:5]
    _fill(frame, "#fm-top", "")
    assert _layout(frame)["order"] == [1, 3, 4, 5, 6]
    assert frame.text_content("#fm-summary").startswith(f"showing 5 of {CHANNELS}")
    _fill(frame, "#fm-channels", "3, 40")
    assert frame.text_content("#fm-channels-error") == "Channels: channel 40 does not exist: this layer has 0-11"
    assert _layout(frame)["count"] == CHANNELS
    _fill(frame, "#fm-channels", "3-x")
    assert '"3-x" is not a channel' in frame.text_content("#fm-channels-error")
    _fill(frame, "#fm-channels", "")
    assert not frame.is_visible("#fm-channels-error")


def test_zoom_keeps_the_hover_value_equal_to_npy_and_stays_while_stepping(tb, page, open_tab):
    frame = _ready(page, open_tab, tb)
    steps = _steps(frame)
    layout = _layout(frame)
    channel = layout["order"][4]
    ox, oy = _origin(layout, 4)
    box = frame.locator("#fm-grid").bounding_box()
    _paint(frame, lambda: page.mouse.click(box["x"] + ox + 3, box["y"] + oy + 3))
    zoom = frame.locator("#fm-detail-canvas")
    for _ in range(2):
        frame.click("#fm-zoom-in")
    z = zoom.bounding_box()
    page.mouse.move(z["x"] + 70, z["y"] + 200)
    page.mouse.wheel(0, -100)  # the wheel zooms in too, about the mouse
    frame.wait_for_function(f"fmApp.zoom.scale > {280 / 8 * 1.25 ** 2 + 1}")
    page.mouse.move(z["x"] + 100, z["y"] + 100)  # drag to pan
    page.mouse.down()
    page.mouse.move(z["x"] + 60, z["y"] + 80, steps=4)
    page.mouse.up()
    view = frame.evaluate("fmApp.zoom")
    assert view["scale"] == pytest.approx(280 / 8 * 1.25 ** 3) and view["ox"] > 0

    def hover_checks(step):
        values = _npy(tb, "train", step)
        for px, py in ((10, 20), (151, 77), (279, 279)):
            page.mouse.move(z["x"] + px + 0.5, z["y"] + py + 0.5)
            x = int(np.floor(view["ox"] + (px + 0.5) / view["scale"]))
            y = int(np.floor(view["oy"] + (py + 0.5) / view["scale"]))
            frame.wait_for_function(f"document.querySelector('#fm-detail-hover').dataset.x === '{x}'"
                                    f" && document.querySelector('#fm-detail-hover').dataset.y === '{y}'")
            value = float(frame.evaluate("document.querySelector('#fm-detail-hover').dataset.value"))
            assert value == pytest.approx(float(values[channel, y, x]), rel=1e-6, abs=1e-7)

    hover_checks(steps[-1])
    _paint(frame, lambda: frame.evaluate("fmApp.goTo(0)"))
    assert frame.evaluate("fmApp.zoom") == view  # kept while stepping
    hover_checks(steps[0])
    _paint(frame, lambda: frame.click("#fm-filmstrip button >> nth=1"))
    assert frame.evaluate("fmApp.zoom") == view  # and along the filmstrip
    hover_checks(steps[1])
    frame.click("#fm-zoom-1to1")
    assert frame.evaluate("fmApp.zoom.scale") == 1
    frame.click("#fm-zoom-fit")
    assert frame.evaluate("fmApp.zoom") is None
    assert not page.console_errors


def test_screenshot_of_the_overlay_on_the_demo(tb, page, open_tab, tmp_path):
    """The demo's conv1 over its probe image. Rewrites docs/screenshot-overlay.png when
    UPDATE_SCREENSHOT=1."""
    page.set_viewport_size({"width": 1400, "height": 900})
    frame = open_tab(page, tb.url)
    frame.wait_for_function("window.fmApp && fmApp.paintCount > 0", timeout=60000)
    for selector, value in (("#fm-run", "shapes_cnn"), ("#fm-layer", "feature_maps/conv1"),
                            ("#fm-colormap", "viridis"), ("#fm-overlay", "feature_maps/input")):
        if frame.input_value(selector) != value:
            _paint(frame, lambda: frame.select_option(selector, value))
    _wait_overlaid(frame)
    _fill(frame, "#fm-opacity", "55")
    layout = _layout(frame)
    box = frame.locator("#fm-grid").bounding_box()
    ox, oy = _origin(layout, 3)
    _paint(frame, lambda: page.mouse.click(box["x"] + ox + 5, box["y"] + oy + 5))
    frame.click("#fm-zoom-in")
    frame.wait_for_selector("#fm-filmstrip button")
    page.mouse.move(box["x"] + ox + layout["cellW"] * 0.4, box["y"] + oy + layout["cellH"] * 0.45)
    frame.wait_for_function("document.querySelector('#fm-hover').dataset.channel === '3'")
    update = os.environ.get("UPDATE_SCREENSHOT") == "1"
    path = REPO / "docs" / "screenshot-overlay.png" if update else tmp_path / "overlay.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10000
    assert not page.console_errors
