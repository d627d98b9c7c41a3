"""The timeline and the scalar chart (issue 12) in a real TensorBoard (the default Rust data
server), driven by Debian's chromium. One tensorboard for the module. Expected colours come
from Python: the reader's series coloured by tb_featmap.render."""

import os

import numpy as np
import pytest
import torch
from torch.utils.tensorboard import SummaryWriter

from support import REPO, TensorBoardProcess
from tab_driver import choose, ready, select, set_step_index
from tb_featmap import log_feature_maps, render
from tb_featmap.reader import FeatureMapReader

STEPS = list(range(0, 80, 5))  # 16 kept steps
CHANNELS = 8
KILLED, KILLED_AT = 5, 8  # channel 5 is zero from kept step 8 on
DEAD_RGB = [0xE5, 0x39, 0x35]  # timeline.js's DEAD
CURRENT_RGB = [0xFF, 0x98, 0x00]  # timeline.js's CURRENT


def conv_at(step):
    g = torch.Generator().manual_seed(step)
    x = torch.randn(1, CHANNELS, 6, 6, generator=g) * torch.arange(1, CHANNELS + 1).view(1, -1, 1, 1)
    x = x + step / 10
    if step >= STEPS[KILLED_AT]:
        x[:, KILLED] = 0
    return x


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("timeline") / "logs"
    writer = SummaryWriter(logdir / "train")
    for step in STEPS:
        log_feature_maps(writer, {"conv": conv_at(step)}, step)
        writer.add_scalar("acc", step / 100, step)
        writer.add_scalar("train/loss", 1 / (1 + step), step)
    writer.close()
    live = SummaryWriter(logdir / "zlive")  # a writer still logging (see the last test)
    for step in range(2):
        log_feature_maps(live, {"conv": conv_at(step)}, step)
        live.add_scalar("loss", 1.0, step)
    live.flush()
    tb = TensorBoardProcess(logdir)
    tb.logdir, tb.live = logdir, live
    tb.wait_for(lambda: b"zlive" in tb.get("/data/plugin/feature_maps/tags")[2])
    yield tb
    tb.stop()
    live.close()


def strip_ready(frame, count=0, run="train"):
    """Waits until the strip of `run` was painted more than `count` times in all."""
    frame.wait_for_function(
        f"fmApp.timelineCount > {count} && fmApp.timeline.shown"
        f" && document.querySelector('#fm-run').value === '{run}'", timeout=30000)
    return frame.evaluate("""(() => { const s = fmApp.timeline.shown;
      return {cellW: s.cellW, cellH: s.cellH, order: [...s.order], rows: s.series.rows,
              width: fmApp.timeline.canvas.width, height: fmApp.timeline.canvas.height}; })()""")


def strip_rgb(frame):
    """The timeline's canvas, [height, width, 3]."""
    data = frame.evaluate("""(() => { const c = document.querySelector('#fm-timeline');
      return [...c.getContext('2d').getImageData(0, 0, c.width, c.height).data]; })()""")
    shape = frame.evaluate("[document.querySelector('#fm-timeline').height,"
                           " document.querySelector('#fm-timeline').width]")
    return np.array(data, np.uint8).reshape(*shape, 4)[..., :3]


def cells(rgb, info):
    """The colour at the centre of each cell, [rows, steps, 3]."""
    ys = np.arange(len(info["order"])) * info["cellH"] + info["cellH"] // 2
    xs = np.arange(info["rows"]) * info["cellW"] + info["cellW"] // 2
    return rgb[ys][:, xs]


def click_cell(page, frame, info, index, row):
    box = frame.locator("#fm-timeline").bounding_box()
    page.mouse.click(box["x"] + (index + 0.5) * info["cellW"] * box["width"] / info["width"],
                     box["y"] + (row + 0.5) * info["cellH"] * box["height"] / info["height"])


@pytest.fixture(scope="module")
def reader(server):
    return FeatureMapReader(server.logdir)


def test_strip_shows_the_statistic_chosen_in_the_grids_order(server, reader, page, open_tab):
    frame = ready(page, open_tab, server)
    choose(frame, "train", "feature_maps/conv")
    info = strip_ready(frame)
    colormap = frame.input_value("#fm-colormap")

    def expected(stat, order):
        _, array = reader.series("train", "conv", stat=stat)
        return render.render_series(array, colormap=colormap)[order]  # [channels, steps, 3]

    def unmarked(shown, want, info):
        """Compare where no mark is drawn: not the dead onset's cells, not the step shown."""
        index = frame.evaluate("Number(document.querySelector('#fm-step').value)")
        keep = np.ones(shown.shape[:2], bool)
        keep[:, index] = False
        keep[info["order"].index(KILLED), KILLED_AT] = False
        return shown[keep], want[keep]

    std = cells(strip_rgb(frame), info)
    np.testing.assert_array_equal(*unmarked(std, expected("std", info["order"]), info))
    count = frame.evaluate("fmApp.timelineCount")
    frame.select_option("#fm-timeline-stat", "mean")
    info = strip_ready(frame, count)
    mean = cells(strip_rgb(frame), info)
    assert (mean != std).any(axis=-1).mean() > 0.5  # the picture changed with the statistic
    np.testing.assert_array_equal(*unmarked(mean, expected("mean", info["order"]), info))
    # Rows follow the grid's sort order.
    select(frame, "#fm-sort", "std")
    order = frame.evaluate("fmApp.current.order")
    assert order != list(range(CHANNELS))
    assert frame.evaluate("fmApp.timeline.shown.order") == order
    np.testing.assert_array_equal(
        *unmarked(cells(strip_rgb(frame), {**info, "order": order}), expected("mean", order),
                  {**info, "order": order}))
    assert not page.console_errors


def test_dead_onset_and_the_step_shown_are_marked(server, page, open_tab):
    frame = ready(page, open_tab, server)
    choose(frame, "train", "feature_maps/conv")
    info = strip_ready(frame)
    set_step_index(frame, 2)
    rgb = cells(strip_rgb(frame), info)
    row = info["order"].index(KILLED)
    assert rgb[row, KILLED_AT].tolist() == DEAD_RGB
    dead = [(r, i) for r in range(CHANNELS) for i in range(len(STEPS))
            if rgb[r, i].tolist() == DEAD_RGB]
    assert dead == [(row, KILLED_AT)]
    full = strip_rgb(frame)  # the top pixel row of each cell: the current-step line is there
    current = {i for r in range(CHANNELS) for i in range(len(STEPS))
               if (r, i) != (row, KILLED_AT)
               and full[r * info["cellH"], i * info["cellW"] + info["cellW"] // 2].tolist()
               == CURRENT_RGB}
    assert current == {2}
    assert "red: the step a channel died" in frame.text_content("#fm-timeline-note")


def test_clicking_a_cell_opens_that_step_and_channel(server, page, open_tab):
    frame = ready(page, open_tab, server)
    choose(frame, "train", "feature_maps/conv")
    info = strip_ready(frame)
    row = 3
    channel = info["order"][row]
    box = frame.locator("#fm-timeline").bounding_box()
    page.mouse.move(box["x"] + 6.5 * info["cellW"] * box["width"] / info["width"],
                    box["y"] + (row + 0.5) * info["cellH"] * box["height"] / info["height"])
    frame.wait_for_function(f"document.querySelector('#fm-timeline-hover').dataset.step"
                            f" === '{STEPS[6]}'")
    hover = frame.text_content("#fm-timeline-hover")
    assert hover.startswith(f"channel {channel} · step {STEPS[6]} · std ")
    click_cell(page, frame, info, 6, row)
    frame.wait_for_function(f"document.querySelector('#fm-step-input').value === '{STEPS[6]}'")
    frame.wait_for_selector("#fm-detail:not([hidden])")
    assert frame.text_content("#fm-detail strong") == f"Channel {channel}"


def test_clicking_the_scalar_chart_moves_the_step(server, page, open_tab):
    frame = ready(page, open_tab, server)
    choose(frame, "train", "feature_maps/conv")
    frame.wait_for_selector("#fm-scalar-panel:not([hidden])")
    options = frame.eval_on_selector_all("#fm-scalar-tag option", "os => os.map(o => o.value)")
    assert options == ["acc", "train/loss"]
    assert frame.input_value("#fm-scalar-tag") == "train/loss"  # the first tag with "loss"
    box = frame.locator("#fm-scalars").bounding_box()
    for index in (4, 11):
        x = box["x"] + box["width"] * index / (len(STEPS) - 1)
        page.mouse.click(x, box["y"] + box["height"] / 2)
        frame.wait_for_function(
            f"document.querySelector('#fm-step-input').value === '{STEPS[index]}'")
    # The chart lies over the slider: its ends are where the slider's thumb can go.
    slider = frame.locator("#fm-step").bounding_box()
    assert slider["x"] < box["x"] < slider["x"] + 20
    assert slider["x"] + slider["width"] - 20 < box["x"] + box["width"] <= slider["x"] + slider["width"]
    assert not page.console_errors


def test_new_steps_appear_while_a_writer_is_still_logging(server, page, open_tab):
    frame = ready(page, open_tab, server)
    choose(frame, "zlive", "feature_maps/conv")
    info = strip_ready(frame, run="zlive")
    assert info["rows"] == 2
    frame.wait_for_function("fmApp.scalars.shown && fmApp.scalars.shown.points.length === 2")
    for step in (2, 3):
        server.live.add_scalar("loss", 1.0 / step, step)
        log_feature_maps(server.live, {"conv": conv_at(step)}, step)
    server.live.flush()
    server.wait_for(lambda: b'"step": 3' in server.get(
        "/data/plugin/feature_maps/steps?run=zlive&tag=feature_maps/conv")[2])
    frame.evaluate("window.dispatchEvent(new Event('focus'))")  # poll now, as on focus
    frame.wait_for_function("fmApp.timeline.shown && fmApp.timeline.shown.series.rows === 4",
                            timeout=30000)
    frame.wait_for_function("fmApp.scalars.shown.points.length === 4", timeout=30000)
    assert frame.evaluate("document.querySelector('#fm-timeline').width") == \
        4 * frame.evaluate("fmApp.timeline.shown.cellW")


def test_screenshot_of_the_timeline(demo_tb, page, open_tab):
    """The timeline and scalar chart over the demo run. Rewrites docs/timeline.png only
    when UPDATE_SCREENSHOT=1."""
    if os.environ.get("UPDATE_SCREENSHOT") != "1":
        pytest.skip("UPDATE_SCREENSHOT=1 rewrites docs/timeline.png")
    page.set_viewport_size({"width": 1400, "height": 1300})
    frame = ready(page, open_tab, demo_tb)
    choose(frame, demo_tb.run_name, "feature_maps/conv1")
    strip_ready(frame, run=demo_tb.run_name)
    frame.wait_for_selector("#fm-scalar-panel:not([hidden])")
    frame.evaluate("document.querySelector('#fm-timeline-panel').scrollIntoView()")
    path = REPO / "docs" / "timeline.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10000 and not page.console_errors
