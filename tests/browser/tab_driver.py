"""Driving the Feature Maps tab in the browser tests, and what its pictures should be.

The expected colours come from Python: the values of the `npy` route, the statistics of the
`maps` route decoded by tb_featmap.payload, and the colour rule of tb_featmap.render (the one
frontend/color.js mirrors; tests/color_cases.json holds the cases both run). No expected
value is read from the page.
"""

import io
import json
import struct
import urllib.parse

import numpy as np

from tb_featmap import payload, render


def logged(tb):
    """(run, tag) -> (steps logged, newest step), as the server's tags route says now (a
    reply other than a 200 fails at once, with its body, rather than being asked again)."""
    tags = json.loads(route(tb, "tags"))
    return {(run, tag): (info["logged"], info["maxStep"])
            for run, layers in tags.items() for tag, info in layers.items()}


def written(logdir):
    """(run, tag) -> (steps logged, newest step), as the event files under `logdir` hold them.

    A fixture waits until `logged(tb) == written(logdir)`: TensorBoard lists a run as soon as
    it has read part of it, so a tab opened earlier can see a layer with fewer steps, or none.
    """
    from tb_featmap import read

    steps = {}
    for record in read(str(logdir), values=False):
        steps.setdefault((record.run, record.tag), []).append(record.step)
    return {key: (len(s), max(s)) for key, s in steps.items()}


def route(tb, name, **params):
    """The body of a 200 reply of the plugin's route `name`."""
    status, _, body = tb.get(f"/data/plugin/feature_maps/{name}?{urllib.parse.urlencode(params)}")
    assert status == 200, body[:200]
    return body


def npy(tb, run, tag, step):
    """The `npy` route's maps of one step, [N, C, H, W] float32."""
    return np.load(io.BytesIO(route(tb, "npy", run=run, tag=tag, step=step)))


def wire_stats(tb, run, tag, step):
    """The statistics the `maps` route sends for one step, decoded by payload.py: [N, C, 6]."""
    body = route(tb, "maps", run=run, tag=tag, step=step)
    assert body[:4] == b"TBFM"
    (length,) = struct.unpack("<I", body[4:8])
    header = payload.decode_header(body[8:8 + length])
    n, c = header["stored"][:2]
    start = 8 + length
    return payload.decode_stats(header, body[start:start + n * c * len(payload.STAT_FIELDS) * 4])


def colours(values, lo, hi, colormap):
    """RGB of each value, [C, H, W, 3], by tb_featmap.render's colour rule."""
    index, finite = render.color_indices(values, lo, hi, colormap=colormap)
    rgb = render.colormap_lut(colormap)[index]
    rgb[~finite] = render.NONFINITE_RGB
    return rgb


def ready(page, open_tab, tb):
    """Open the tab; return its frame once it has painted a grid."""
    frame = open_tab(page, tb.url)
    frame.wait_for_function("window.fmApp && window.fmApp.paintCount > 0", timeout=60000)
    return frame


def paint(frame, action):
    """Run action(), then wait until the grid shows what it chose; returns the paint detail.

    A new paint is not enough: one that began before the action (the statistics of what was
    shown arriving) can end after it. Each paint takes a ticket when it begins, and a paint
    that is overtaken draws nothing; so the grid is up to date when the last paint drawn holds
    the newest ticket, taken after the action.
    """
    ticket = frame.evaluate("fmApp.paintTicket")
    action()
    frame.wait_for_function(
        f"fmApp.paintTicket > {ticket} && fmApp.lastPainted.ticket === fmApp.paintTicket"
        " && !fmApp.model.inflight.size", timeout=30000)
    return frame.evaluate("({step: Number(document.querySelector('#fm-step-input').value),"
                          " title: document.querySelector('#fm-title').textContent})")


def select(frame, selector, value):
    return paint(frame, lambda: frame.select_option(selector, value))


def set_step_index(frame, index):
    """Show kept step `index`; return once that step's grid has been painted (see choose)."""
    js = ("(i) => { const s = document.querySelector('#fm-step'); s.value = String(i);"
          " s.dispatchEvent(new Event('input')); }")
    paint(frame, lambda: frame.evaluate(js, index))
    frame.wait_for_function(f"fmApp.lastPainted.index === {int(index)} && !fmApp.model.inflight.size",
                            timeout=30000)
    return frame.evaluate("({step: Number(document.querySelector('#fm-step-input').value),"
                          " title: document.querySelector('#fm-title').textContent})")


def choose(frame, run, tag):
    """Select a run and a layer; return once a grid of that layer has been painted.

    Waiting for any new paint is not enough: a repaint of the layer shown before (its
    statistics arriving) can land between reading the paint count and the selection.
    """
    if frame.input_value("#fm-run") != run:
        select(frame, "#fm-run", run)
    if frame.input_value("#fm-layer") != tag:
        select(frame, "#fm-layer", tag)
    shown = f"fmApp.lastPainted.run === {json.dumps(run)} && fmApp.lastPainted.tag === {json.dumps(tag)}"
    frame.wait_for_function(f"{shown} && !fmApp.model.inflight.size", timeout=30000)


def grid_layout(frame):
    """The main grid's layout and channel order, as the tab reports them (where to look)."""
    return frame.evaluate("(() => { const c = fmApp.current; return {...c.layout, order: c.order}; })()")


def hover(page, frame, channel, x, y):
    """Move the mouse over data pixel (x, y) of a channel; return the readout's dataset."""
    layout = grid_layout(frame)
    slot = layout["order"].index(channel)
    ox = (slot % layout["cols"]) * (layout["cellW"] + layout["gap"])
    oy = (slot // layout["cols"]) * (layout["cellH"] + layout["gap"])
    px = ox + (x + 0.5) * layout["cellW"] / layout["mapW"]
    py = oy + (y + 0.5) * layout["cellH"] / layout["mapH"]
    box = frame.locator("#fm-grid").bounding_box()
    page.mouse.move(box["x"] + px, box["y"] + py)
    frame.wait_for_function(
        f"document.querySelector('#fm-hover').dataset.channel === '{channel}'"
        f" && document.querySelector('#fm-hover').dataset.x === '{x}'"
        f" && document.querySelector('#fm-hover').dataset.y === '{y}'")
    return frame.evaluate("({...document.querySelector('#fm-hover').dataset,"
                          " text: document.querySelector('#fm-hover').textContent})")


def open_detail(page, frame, channel, x, y):
    """Click data pixel (x, y) of a channel's map; return once the grid was painted with the
    detail view of that channel open."""
    hover(page, frame, channel, x, y)
    paint(frame, lambda: (page.mouse.down(), page.mouse.up()))
    frame.wait_for_selector("#fm-detail:not([hidden])")


def expected_colours(tb, run, tag, step, *, norm, colormap):
    """What the grid shows of sample 0 of a step: ``(values [C, H, W], colours [C, H, W, 3])``,
    from the `npy` route's values, the `maps` route's statistics and render's colour rule."""
    values = npy(tb, run, tag, step)[0]
    stats = wire_stats(tb, run, tag, step)[0]
    lo, hi = render.value_ranges(stats[:, 0], stats[:, 1], norm=norm, colormap=colormap)
    return values, colours(values, lo, hi, colormap)


PIXEL_JS = """([selector, x, y]) => [...document.querySelector(selector).getContext('2d')
  .getImageData(x, y, 1, 1).data]"""


def cell_pixel(frame, channel, x, y):
    """The grid's colour at data pixel (x, y) of a channel."""
    layout = grid_layout(frame)
    slot = layout["order"].index(channel)
    px = (slot % layout["cols"]) * (layout["cellW"] + layout["gap"]) + int((x + 0.5) * layout["cellW"] / layout["mapW"])
    py = (slot // layout["cols"]) * (layout["cellH"] + layout["gap"]) + int((y + 0.5) * layout["cellH"] / layout["mapH"])
    return frame.evaluate(PIXEL_JS, ["#fm-grid", px, py])


GRID_JS = """([selector, layout]) => {
  const canvas = document.querySelector(selector);
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const { cols, cellW, cellH, gap, mapW, mapH, order } = layout;
  const out = [];
  for (let c = 0; c < order.length; c++) {
    const slot = order.indexOf(c);
    const ox = (slot % cols) * (cellW + gap);
    const oy = Math.floor(slot / cols) * (cellH + gap);
    for (let y = 0; y < mapH; y++) {
      for (let x = 0; x < mapW; x++) {
        const px = ox + Math.floor(((x + 0.5) * cellW) / mapW);
        const py = oy + Math.floor(((y + 0.5) * cellH) / mapH);
        const i = 4 * (py * canvas.width + px);
        out.push(data[i], data[i + 1], data[i + 2], data[i + 3]);
      }
    }
  }
  return out;
}"""


def grid_rgb(frame, selector="#fm-grid"):
    """The colour a canvas shows at the centre of every data pixel, [C, H, W, 3] by channel.

    Places the cells by the main grid's layout; the compare grid has the same one (asserted).
    """
    layout = grid_layout(frame)
    assert layout["cellW"] >= 2 * layout["mapW"] and layout["cellH"] >= 2 * layout["mapH"]
    width = frame.evaluate(f"document.querySelector({json.dumps(selector)}).width")
    assert width == layout["width"], f"{selector} is {width} wide, the main grid {layout['width']}"
    rgba = np.array(frame.evaluate(GRID_JS, [selector, layout]), dtype=np.uint8)
    rgba = rgba.reshape(len(layout["order"]), layout["mapH"], layout["mapW"], 4)
    assert (rgba[..., 3] == 255).all()
    return rgba[..., :3]


def mismatch(shown, expected):
    """A short account of where two [C, H, W, 3] pictures differ ('' when they agree)."""
    bad = np.argwhere((shown != expected).any(axis=-1))
    if not len(bad):
        return ""
    c, y, x = bad[0]
    return (f"{len(bad)} of {shown.shape[0] * shown.shape[1] * shown.shape[2]} pixels differ; "
            f"first: channel {c} x {x} y {y}: shown {shown[c, y, x].tolist()}, "
            f"expected {expected[c, y, x].tolist()}")
