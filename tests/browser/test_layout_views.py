"""Every kind of layer in the tab, from real models through a real tensorboard, both loaders.

torchvision's ResNet-18, MobileNetV3-Small, ViT-B/16 and R3D-18, all `weights=None`, plus a
small 1-D conv net (on a short input, and on one longer than the panel is wide), are
recorded with FeatureMapRecorder and logged the README's way, with no `layout=`. The tab
lists their layers in model order, labels each layout as its users think of it, draws 1-D
layers as rows (long ones one pixel a value, scrolled sideways) and linear ones as a feature
grid normalised over the layer, and its pixels are the colours tb_featmap.render gives the
`npy` route's values. One test takes the screenshot of each view that the README shows.
"""

import os
import struct

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from support import REPO, TensorBoardProcess
from tab_driver import (
    cell_pixel, choose, expected_colours, grid_layout, grid_rgb, hover, logged, mismatch, npy,
    open_detail, paint, ready, select, set_step_index, written,
)
from tb_featmap import FeatureMapRecorder, log_feature_maps

STEPS = [0, 1]
LENGTH = 300  # fits the panel at an integer zoom: each value is whole pixels wide
LONG = 3000  # wider than the panel (1400 px viewport): drawn one pixel a value, scrolled


class Audio(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 6, 9, padding=4)
        self.head = nn.Linear(6, 10)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean(-1))


def _photo(size):
    """matplotlib's grace_hopper.jpg, RGB, resized to size x size, values 0..1: [1, 3, s, s]."""
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as photo:
        pixels = np.asarray(photo.convert("RGB").resize((size, size)), dtype=np.float32) / 255
    return torch.from_numpy(pixels).permute(2, 0, 1)[None]


def _chirp(length):
    """Two channels of a rising tone with a little noise: [1, 2, length]."""
    t = torch.linspace(0, 1, length)
    tone = torch.sin(2 * torch.pi * (4 + 40 * t) * t)
    return torch.stack([tone, tone * t])[None] + 0.1 * torch.randn(1, 2, length)


def _models():
    image = _photo(64)
    clip = torch.stack([_photo(32).roll(4 * k, -1)[0] for k in range(4)], dim=1)[None]
    return {
        "audio": (Audio(), ["conv", "head"], torch.randn(1, 2, LENGTH)),
        "long": (Audio(), ["conv"], _chirp(LONG)),
        "long_b": (Audio(), ["conv"], _chirp(LONG)),  # to compare with
        "resnet18": (torchvision.models.resnet18(weights=None),
                     ["conv1", "layer1.0", "layer4.1", "fc"], image),
        "mobilenet": (torchvision.models.mobilenet_v3_small(weights=None),
                      ["features.1", "features.10", "classifier.3"], image),
        "vit": (torchvision.models.vit_b_16(weights=None),
                ["conv_proj", "encoder.layers.encoder_layer_0", "heads.head"], _photo(224)),
        "r3d": (torchvision.models.video.r3d_18(weights=None), ["stem", "layer1.0", "fc"], clip),
    }


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts") / "logs"
    torch.manual_seed(0)
    models = _models()
    for run, (model, layers, x) in models.items():
        with SummaryWriter(root / run) as writer:
            for step in STEPS:
                with torch.no_grad(), FeatureMapRecorder(model, layers, eval_mode=True) as rec:
                    model(x + step)
                log_feature_maps(writer, rec.outputs, step)  # the README's pattern
    # A layer whose shape changes between steps (an input of another size).
    with SummaryWriter(root / "reshape") as writer:
        for step in STEPS:
            size = 8 - 2 * step
            log_feature_maps(writer, {"conv": torch.randn(1, 4, size, size)}, step)
    return root, {run: layers for run, (_, layers, _) in models.items()}


RUNS = ["audio", "long", "long_b", "resnet18", "mobilenet", "vit", "r3d", "reshape"]


@pytest.fixture(scope="module", params=["rust", "python"])
def tb(request, logdir):
    root, layers = logdir
    flags = ["--samples_per_plugin=feature_maps=0"]
    if request.param == "python":
        flags.append("--load_fast=false")
    server = TensorBoardProcess(root, *flags)
    try:
        expected = written(root)  # every step of every layer loaded, not only some
        assert {run for run, _ in expected} == set(RUNS)
        server.wait_for(lambda: logged(server) == expected)
        yield server
    finally:
        server.stop()


def _options(frame, selector):
    return frame.evaluate(
        f"[...document.querySelectorAll('{selector} option')].map(o => [o.value, o.text])"
    )


def test_layers_in_model_order_with_each_layout_labelled(tb, page, open_tab, logdir):
    frame = ready(page, open_tab, tb)
    labels = {}
    for run, layers in logdir[1].items():
        choose(frame, run, f"feature_maps/{layers[0]}")
        options = _options(frame, "#fm-layer")
        assert [value for value, _ in options] == [f"feature_maps/{n}" for n in layers]
        labels.update({(run, value.split("/", 1)[1]): text for value, text in options})
    assert labels[("audio", "conv")].endswith(f"6 channels × {LENGTH} t")
    assert labels[("audio", "head")].endswith("10 features")
    assert labels[("long", "conv")].endswith(f"6 channels × {LONG} t")
    assert labels[("resnet18", "fc")].endswith("1000 features")
    assert labels[("resnet18", "layer1.0")].endswith("64×16×16")
    assert labels[("vit", "conv_proj")].endswith("768×14×14")
    assert labels[("vit", "encoder.layers.encoder_layer_0")].endswith(
        "768 dims · 14×14 patches, 1 class token dropped")
    assert labels[("vit", "heads.head")].endswith("1000 features")
    assert labels[("r3d", "layer1.0")].endswith("64×D4×16×16")
    assert labels[("r3d", "fc")].endswith("400 features")
    assert not page.console_errors


def test_a_1d_layer_is_a_row_per_channel(tb, page, open_tab):
    frame = ready(page, open_tab, tb)
    choose(frame, "audio", "feature_maps/conv")
    layout = grid_layout(frame)
    assert layout["cols"] == 1 and layout["rows"] == 6
    assert layout["cellH"] >= 4 and layout["height"] >= 128
    assert layout["mapW"] == LENGTH and layout["cellW"] % LENGTH == 0
    step = STEPS[-1]
    values, expected = expected_colours(tb, "audio", "feature_maps/conv", step, norm="channel",
                                        colormap=frame.input_value("#fm-colormap"))
    for channel, t in [(0, 0), (2, 150), (5, LENGTH - 1)]:
        assert cell_pixel(frame, channel, t, 0)[:3] == expected[channel, 0, t].tolist()
    readout = hover(page, frame, 3, 123, 0)
    assert readout["text"].startswith("channel 3 · t 123 · ")
    assert abs(float(readout["value"]) - values[3, 0, 123]) <= 1e-6 * max(1, abs(values[3, 0, 123]))


ROW_JS = """([y, x0, width]) => [...document.querySelector('#fm-grid').getContext('2d')
  .getImageData(x0, y, width, 1).data]"""


def _row_rgb(frame, layout, channel):
    """The RGB of every canvas column of a channel's row (its last canvas line): [width, 3]."""
    slot = layout["order"].index(channel)
    y = slot * (layout["cellH"] + layout["gap"]) + layout["cellH"] - 1
    rgba = np.array(frame.evaluate(ROW_JS, [y, 0, layout["width"]]), dtype=np.uint8)
    return rgba.reshape(-1, 4)[:, :3]


def _scroll_to(frame, x):
    """Scroll the long rows to value `x` with their scroll bar; return the layout drawn then."""
    frame.evaluate("(x) => { document.querySelector('#fm-grid-scroll').scrollLeft = x; }", x)
    frame.wait_for_function(f"fmApp.current.layout.viewX === {int(x)}")
    return grid_layout(frame)


def _hover_column(page, frame, layout, channel, px):
    """Move the mouse over canvas column px of a channel's row; return the readout's dataset."""
    slot = layout["order"].index(channel)
    box = frame.locator("#fm-grid").bounding_box()
    page.mouse.move(box["x"] + px + 0.5,
                    box["y"] + slot * (layout["cellH"] + layout["gap"]) + layout["cellH"] / 2)
    t = layout["viewX"] + px
    frame.wait_for_function(
        f"document.querySelector('#fm-hover').dataset.channel === '{channel}'"
        f" && document.querySelector('#fm-hover').dataset.x === '{t}'")
    return frame.evaluate("({...document.querySelector('#fm-hover').dataset,"
                          " text: document.querySelector('#fm-hover').textContent})")


def test_a_1d_layer_longer_than_the_panel_shows_every_value_scrolled_sideways(
        tb, page, open_tab):
    frame = ready(page, open_tab, tb)
    choose(frame, "long", "feature_maps/conv")
    layout = grid_layout(frame)
    assert (layout["cols"], layout["rows"], layout["mapW"], layout["viewX"]) == (1, 6, LONG, 0)
    assert layout["cellH"] >= 4 and layout["height"] >= 128
    # one canvas pixel a value, a window no wider than the panel
    width = layout["width"]
    assert layout["viewW"] == layout["cellW"] == width < LONG
    assert frame.evaluate("document.querySelector('#fm-grid').width") == width
    assert frame.locator("#fm-grid").bounding_box()["width"] <= 1400
    assert frame.locator("#fm-grid-window").inner_text().startswith(f"t 0–{width - 1} of {LONG}")
    step = STEPS[-1]
    values, expected = expected_colours(tb, "long", "feature_maps/conv", step, norm="channel",
                                        colormap=frame.input_value("#fm-colormap"))
    assert values.shape == (6, 1, LONG)
    expected = expected[:, 0]  # [C, L, 3]
    last = LONG - width
    for x0 in (0, 1234, last):
        if x0:
            layout = _scroll_to(frame, x0)
        for channel in (0, 4):
            problem = mismatch(_row_rgb(frame, layout, channel)[None, None],
                               expected[channel, x0:x0 + width][None, None])
            assert not problem, (x0, channel, problem)
    # the first and the last t, each exactly where it is drawn
    assert _row_rgb(frame, layout, 5)[-1].tolist() == expected[5, LONG - 1].tolist()
    layout = _scroll_to(frame, 0)
    assert _row_rgb(frame, layout, 5)[0].tolist() == expected[5, 0].tolist()
    # hover after scrolling reads the value under the mouse, not the column's
    layout = _scroll_to(frame, 1234)
    readout = _hover_column(page, frame, layout, 3, 100)
    assert readout["text"].startswith("channel 3 · t 1334 · ")
    assert float(readout["value"]) == pytest.approx(values[3, 0, 1334], rel=1e-6, abs=1e-6)
    # a sideways wheel over the rows scrolls them, and the readout follows the mouse
    page.mouse.wheel(300, 0)
    frame.wait_for_function("fmApp.current.layout.viewX === 1534")
    frame.wait_for_function("document.querySelector('#fm-hover').dataset.x === '1634'")
    assert frame.locator("#fm-grid-window").inner_text().startswith(f"t 1534–{1533 + width} ")
    assert not page.console_errors


def test_compared_long_rows_scroll_together(tb, page, open_tab):
    """Beside another run's long rows, a scroll of either panel moves both windows; beside a
    run whose rows fit, only this run's rows scroll."""
    frame = ready(page, open_tab, tb)
    choose(frame, "long", "feature_maps/conv")
    select(frame, "#fm-compare", "long_b")
    windows = ("document.querySelector('#fm-grid-window').textContent + '|' +"
               " document.querySelector('#fm-grid-compare-window').textContent")
    assert frame.is_visible("#fm-grid-compare-scroll")
    width = grid_layout(frame)["viewW"]
    for panel, x in (("#fm-grid-compare-scroll", 1000), ("#fm-grid-scroll", 2000)):
        # A repaint of the same window (here a resize; statistics arriving do the same) lands
        # before the scroll's event is handled: the scroll must survive it.
        frame.evaluate(f"(x) => {{ document.querySelector('{panel}').scrollLeft = x;"
                       " window.dispatchEvent(new Event('resize')); }", x)
        frame.wait_for_function(f"fmApp.current.layout.viewX === {x}")
        main, other = frame.evaluate(windows).split("|")
        assert main == other and main.startswith(f"t {x}–{x + width - 1} of {LONG}"), (main, other)
        assert frame.evaluate("[document.querySelector('#fm-grid-scroll').scrollLeft,"
                              " document.querySelector('#fm-grid-compare-scroll').scrollLeft]"
                              ) == [x, x]
    # the short run's 300 values fit its panel: no window there, this run's still scrolls
    select(frame, "#fm-compare", "audio")
    assert frame.is_hidden("#fm-grid-compare-window")
    assert frame.evaluate("document.querySelector('#fm-grid-compare').width") >= LENGTH
    assert frame.locator("#fm-grid-window").inner_text().startswith("t 2000–")
    assert not page.console_errors


def test_a_linear_layer_is_a_feature_grid_normalised_over_the_layer(tb, page, open_tab):
    frame = ready(page, open_tab, tb)
    choose(frame, "resnet18", "feature_maps/fc")
    assert frame.input_value("#fm-norm") == "layer"
    norm_text = dict(_options(frame, "#fm-norm"))["channel"]
    assert "1×1" in norm_text
    layout = grid_layout(frame)
    assert layout["cols"] == 32 and layout["rows"] == 32 and layout["cellW"] >= 4
    step = STEPS[-1]
    _, expected = expected_colours(tb, "resnet18", "feature_maps/fc", step, norm="layer",
                                   colormap=frame.input_value("#fm-colormap"))
    shown = [cell_pixel(frame, c, 0, 0)[:3] for c in (0, 1, 500, 999)]
    assert shown == [expected[c, 0, 0].tolist() for c in (0, 1, 500, 999)]
    assert len({tuple(p) for p in shown}) > 1  # not one flat colour
    readout = hover(page, frame, 500, 0, 0)
    assert readout["text"].startswith("feature 500 · ")
    # back on a 2-D layer the menu says plain 'per channel' again, and it is chosen again
    choose(frame, "resnet18", "feature_maps/conv1")
    assert dict(_options(frame, "#fm-norm"))["channel"] == "per channel"
    assert frame.input_value("#fm-norm") == "channel"
    # a choice the user made stays: fixed on the conv layer is fixed on the linear one too
    select(frame, "#fm-norm", "fixed")
    choose(frame, "resnet18", "feature_maps/fc")
    assert frame.input_value("#fm-norm") == "fixed"
    select(frame, "#fm-norm", "channel")
    choose(frame, "resnet18", "feature_maps/conv1")
    assert frame.input_value("#fm-norm") == "channel"
    assert not page.console_errors


def test_a_vit_b16_token_layer_is_its_patch_grid(tb, page, open_tab):
    frame = ready(page, open_tab, tb)
    tag = "feature_maps/encoder.layers.encoder_layer_0"
    choose(frame, "vit", tag)
    layout = grid_layout(frame)
    assert (len(layout["order"]), layout["mapH"], layout["mapW"]) == (768, 14, 14)
    step = STEPS[-1]
    values, expected = expected_colours(tb, "vit", tag, step, norm="channel",
                                        colormap=frame.input_value("#fm-colormap"))
    assert values.shape == (768, 14, 14)  # 768 dims on 196 patches, no class token
    for channel, y, x in [(0, 0, 0), (300, 7, 3), (767, 13, 13)]:
        assert cell_pixel(frame, channel, x, y)[:3] == expected[channel, y, x].tolist()
    readout = hover(page, frame, 300, 3, 7)
    assert readout["text"].startswith("channel 300 · x 3, y 7 · ")
    assert float(readout["value"]) == pytest.approx(values[300, 7, 3], rel=1e-6, abs=1e-6)
    assert not page.console_errors


def test_a_3d_layer_draws_the_depth_slice_its_control_picks(tb, page, open_tab):
    frame = ready(page, open_tab, tb)
    choose(frame, "resnet18", "feature_maps/layer1.0")
    assert frame.locator("#fm-depth").is_hidden()  # a 2-D layer has no depth control
    choose(frame, "r3d", "feature_maps/layer1.0")
    assert frame.locator("#fm-depth").is_visible()
    assert [v for v, _ in _options(frame, "#fm-depth")] == ["0", "1", "2", "3"]
    select(frame, "#fm-depth", "2")
    layout = grid_layout(frame)
    assert (layout["mapH"], layout["mapW"]) == (16, 16)  # one slice, not 4 stacked
    step = STEPS[-1]
    _, expected = expected_colours(tb, "r3d", "feature_maps/layer1.0", step,  # [C, D*H, W]
                                   norm="channel", colormap=frame.input_value("#fm-colormap"))
    for channel, y, x in [(0, 0, 0), (7, 5, 11), (63, 15, 15)]:
        shown = cell_pixel(frame, channel, x, y)[:3]
        assert shown == expected[channel, 2 * 16 + y, x].tolist(), (channel, y, x)
    readout = hover(page, frame, 7, 11, 5)
    assert readout["d"] == "2" and readout["text"].startswith("channel 7 · d 2, y 5, x 11 · ")
    assert not page.console_errors


def test_a_difference_across_a_shape_change_says_so_and_draws_this_step(tb, page, open_tab):
    frame = ready(page, open_tab, tb)
    choose(frame, "reshape", "feature_maps/conv")
    set_step_index(frame, 1)
    shown = paint(frame, lambda: frame.check("#fm-diff"))
    assert shown["title"].endswith("(step 0 has another shape: nothing to subtract)")
    # what is drawn is step 1's own maps (6 x 6), not a difference with step 0's 8 x 8
    layout = grid_layout(frame)
    assert (layout["mapH"], layout["mapW"]) == (6, 6)
    _, expected = expected_colours(tb, "reshape", "feature_maps/conv", 1, norm="channel",
                                   colormap="diverging")
    problem = mismatch(grid_rgb(frame), expected)
    assert not problem, problem
    assert not page.console_errors


LINE_PIXELS_JS = """([points]) => {
  const canvas = document.querySelector('#fm-line');
  const ctx = canvas.getContext('2d');
  return points.map(([x, y]) => {
    const d = ctx.getImageData(Math.round(x) - 1, Math.round(y) - 1, 3, 3).data;
    let darkest = 255 * 3;
    for (let i = 0; i < d.length; i += 4) darkest = Math.min(darkest, d[i] + d[i + 1] + d[i + 2]);
    return darkest;
  });
}"""


def test_the_detail_view_plots_a_1d_channel_as_a_line_across_t(tb, page, open_tab):
    frame = ready(page, open_tab, tb)
    choose(frame, "audio", "feature_maps/conv")
    open_detail(page, frame, 2, 40, 0)
    frame.wait_for_selector("#fm-detail:not([hidden]) #fm-line")
    values = npy(tb, "audio", "feature_maps/conv", STEPS[-1])[0, 2, 0].astype(np.float64)
    data = frame.evaluate("({...document.querySelector('#fm-line').dataset})")
    lo, hi = float(data["lo"]), float(data["hi"])
    assert int(data["count"]) == LENGTH
    assert np.isclose(lo, values.min(), rtol=1e-6) and np.isclose(hi, values.max(), rtol=1e-6)
    # the line passes through each value's point: a dark pixel there (the plot is white)
    width, height, pad = 256, 128, 4
    points = [(pad + t * (width - 2 * pad) / (LENGTH - 1),
               pad + (hi - values[t]) * (height - 2 * pad) / (hi - lo))
              for t in (0, 77, 150, LENGTH - 1)]
    assert all(v < 600 for v in frame.evaluate(LINE_PIXELS_JS, [points])), points
    # the filmstrip is there as for any layer
    frame.wait_for_function(
        f"document.querySelectorAll('#fm-filmstrip button').length === {len(STEPS)}")


def test_the_detail_view_of_a_3d_channel_shows_every_slice_side_by_side(tb, page, open_tab):
    frame = ready(page, open_tab, tb)
    choose(frame, "r3d", "feature_maps/layer1.0")
    select(frame, "#fm-depth", "1")
    open_detail(page, frame, 7, 3, 3)
    frame.wait_for_selector("#fm-detail:not([hidden]) #fm-volume")
    cell, gap, depth, side = 64, 3, 4, 16
    size = frame.evaluate("[document.querySelector('#fm-volume').width,"
                          " document.querySelector('#fm-volume').height]")
    assert size == [depth * cell + (depth - 1) * gap, cell]
    _, expected = expected_colours(tb, "r3d", "feature_maps/layer1.0", STEPS[-1],
                                   norm="channel", colormap=frame.input_value("#fm-colormap"))
    js = """([points]) => { const ctx = document.querySelector('#fm-volume').getContext('2d');
      return points.map(([x, y]) => [...ctx.getImageData(x, y, 1, 1).data].slice(0, 3)); }"""
    scale = cell // side
    points, wanted = [], []
    for d in range(depth):
        for y, x in [(0, 0), (9, 4), (15, 15)]:
            points.append([d * (cell + gap) + x * scale + scale // 2, y * scale + scale // 2])
            wanted.append(expected[7, d * side + y, x].tolist())
    points.append([cell + 1, 10])  # a separator
    shown = frame.evaluate(js, [points])
    assert shown[:-1] == wanted
    assert shown[-1] == [200, 200, 200]


# Each view the README shows: (name, run, layer, depth slice, cell size, channel enlarged,
# what is hovered); each at its layout's default normalisation.
SCREENSHOTS = [
    ("rows", "long", "conv", None, None, None, (3, 200)),
    ("features", "resnet18", "fc", None, None, None, (500, 0, 0)),
    ("depth", "r3d", "layer1.0", "2", 72, None, (1, 11, 5)),
    ("tokens", "vit", "encoder.layers.encoder_layer_0", None, 84, None, (5, 3, 7)),
    ("volume", "r3d", "layer1.0", "1", 72, 1, None),
    ("line", "long", "conv", None, None, 2, None),
]
SHOT = {"width": 1000, "height": 640}  # the part of the tab each screenshot keeps


SIZE_JS = """(v) => { const e = document.querySelector('#fm-size'); e.value = v;
  e.dispatchEvent(new Event('input')); }"""


def _png_size(path):
    """(width, height) from a PNG's IHDR."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def test_screenshots_of_each_view(tb, page, open_tab, tmp_path, request):
    """One screenshot per layout's view, of the tab's top-left SHOT. Rewrites
    docs/layout-<name>.png when UPDATE_SCREENSHOT=1 (with the Rust loader only)."""
    update = (os.environ.get("UPDATE_SCREENSHOT") == "1"
              and request.node.callspec.params["tb"] == "rust")
    page.set_viewport_size({"width": SHOT["width"], "height": 760})
    frame = ready(page, open_tab, tb)
    for name, run, layer, depth, size, channel, hovered in SCREENSHOTS:
        tag = f"feature_maps/{layer}"
        choose(frame, run, tag)
        norm = "layer" if name == "features" else "channel"
        assert frame.input_value("#fm-norm") == norm  # per layer for the linear layer only
        if depth is not None and frame.input_value("#fm-depth") != depth:
            select(frame, "#fm-depth", depth)
        if size is not None and frame.input_value("#fm-size") != str(size):
            paint(frame, lambda: frame.evaluate(SIZE_JS, str(size)))
        frame.wait_for_function(f"fmApp.lastPainted.step === {STEPS[-1]}")
        shown = frame.evaluate("({...fmApp.lastPainted})")
        assert (shown["run"], shown["tag"], shown["step"]) == (run, tag, STEPS[-1]), name
        layout = grid_layout(frame)
        assert frame.evaluate("document.querySelector('#fm-grid').width") == layout["width"]
        if channel is not None:
            box = frame.locator("#fm-grid").bounding_box()
            slot = layout["order"].index(channel)
            page.mouse.click(box["x"] + (slot % layout["cols"]) * (layout["cellW"] + layout["gap"]) + 2,
                             box["y"] + (slot // layout["cols"]) * (layout["cellH"] + layout["gap"]) + 2)
            view = "#fm-volume" if name == "volume" else "#fm-line"
            frame.wait_for_selector(f"#fm-detail:not([hidden]) {view}")
            assert frame.inner_text("#fm-detail strong") == f"Channel {channel}"
            frame.wait_for_function(
                f"document.querySelectorAll('#fm-filmstrip button').length === {len(STEPS)}")
        elif name == "rows":
            _hover_column(page, frame, layout, *hovered)
        else:
            hover(page, frame, *hovered)
        path = (REPO / "docs" if update else tmp_path) / f"layout-{name}.png"
        box = page.locator("iframe").bounding_box()
        page.screenshot(path=str(path), clip={"x": box["x"], "y": box["y"], **SHOT})
        assert _png_size(path) == (SHOT["width"], SHOT["height"])
        assert 10_000 < path.stat().st_size < 150_000, (name, path.stat().st_size)
    assert not page.console_errors
