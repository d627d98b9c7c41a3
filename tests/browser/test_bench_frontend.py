"""Frontend speed, measured in the browser: from a step-slider change to the painted grid.

AlexNet (weights=None, a few SGD steps between snapshots so maps change) on matplotlib's
Grace Hopper photo, 20 steps of its five conv layers. For each layer: every step once with
nothing cached in the page (fetch + inflate + decode + paint; prefetching off), then every
step again from the page's memory cache. Times come from the tab's `fm-painted` event
(performance.now() at the slider's input event to the end of painting). The scrub rate
paints cached steps back to back, waiting for an animation frame after each.

Run: python -m pytest tests/browser/test_bench_frontend.py -m benchmark -s
"""

import json
import statistics

import numpy as np
import pytest
import torch
import torchvision
from matplotlib import cbook
from PIL import Image
from torch.utils.tensorboard import SummaryWriter

from support import TensorBoardProcess
from tb_featmap import FeatureMapRecorder, log_feature_maps

LAYERS = ["features.0", "features.3", "features.6", "features.8", "features.10"]
STEPS = 20

SCRUB_JS = """async ({indices, waitFrame}) => {
  const out = [];
  const slider = document.querySelector('#fm-step');
  const start = performance.now();
  for (const i of indices) {
    const painted = new Promise((r) => document.addEventListener('fm-painted', (e) => r(e.detail), {once: true}));
    slider.value = String(i);
    slider.dispatchEvent(new Event('input'));
    out.push(await painted);
    if (waitFrame) await new Promise((r) => requestAnimationFrame(() => r()));
  }
  return {details: out, total: performance.now() - start};
}"""


@pytest.fixture(scope="module")
def alexnet_logdir(tmp_path_factory):
    torch.manual_seed(0)
    model = torchvision.models.alexnet(weights=None)
    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as photo:
        pixels = np.asarray(photo.convert("RGB").resize((224, 224)), dtype=np.float32) / 255
    image = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    image = (image - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02)
    root = tmp_path_factory.mktemp("bench") / "logs"
    with SummaryWriter(root / "alexnet") as writer, FeatureMapRecorder(model, LAYERS) as recorder:
        for step in range(STEPS):
            logits = model(image)
            log_feature_maps(writer, recorder.outputs, step)
            loss = torch.nn.functional.cross_entropy(logits, torch.tensor([step % 10]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return root


def _p(values, q):
    return float(np.percentile(values, q)) if values else float("nan")


@pytest.mark.benchmark
def test_slider_to_painted_grid(alexnet_logdir, page, open_tab):
    server = TensorBoardProcess(alexnet_logdir)
    try:
        server.wait_for(lambda: len(json.loads(server.get("/data/plugin/feature_maps/tags")[2]).get("alexnet", {})) == 5)
        frame = open_tab(page, server.url)
        frame.wait_for_function("window.fmApp && fmApp.paintCount > 0", timeout=60000)
        frame.evaluate("fmApp.prefetch = false")
        # What was prefetched before that (the first layer's steps, one request at a time
        # until the switch) leaves the memory cache, so every layer starts alike.
        frame.wait_for_function("!fmApp.model.inflight.size")
        frame.evaluate("fmApp.model.maps.clear()")
        rows = []
        for layer in LAYERS:
            tag = f"feature_maps/{layer}"
            count = frame.evaluate("fmApp.paintCount")
            frame.select_option("#fm-layer", tag)
            frame.wait_for_function(f"fmApp.paintCount > {count} && fmApp.fixed !== null && !fmApp.model.inflight.size")
            frame.wait_for_timeout(200)  # the repaint that follows /stats
            shape = frame.evaluate("[fmApp.current.maps.c, fmApp.current.maps.h, fmApp.current.maps.w]")
            # Steps never fetched yet (the newest came with the layer).
            fresh = frame.evaluate("fmApp.steps.map((s, i) => [s, i])"
                                   ".filter(([s]) => !fmApp.model.maps.has(JSON.stringify("
                                   "[document.querySelector('#fm-run').value, document.querySelector('#fm-layer').value,"
                                   " s.step, s.wall_time])))"
                                   ".map(([, i]) => i)")
            cold = frame.evaluate(SCRUB_JS, {"indices": fresh, "waitFrame": True})["details"]
            others = list(range(STEPS))
            warm = frame.evaluate(SCRUB_JS, {"indices": others[::-1] + others, "waitFrame": True})["details"]
            fast = frame.evaluate(SCRUB_JS, {"indices": list(range(STEPS)) * 3, "waitFrame": True})
            assert not any(d["cached"] for d in cold) and all(d["cached"] for d in warm)
            assert len(cold) >= STEPS - 3 and len(fast["details"]) == 3 * STEPS
            rows.append({
                "layer": layer, "shape": "×".join(map(str, shape)),
                "cold_p50": _p([d["ms"] for d in cold], 50), "cold_p95": _p([d["ms"] for d in cold], 95),
                "warm_p50": _p([d["ms"] for d in warm], 50), "warm_p95": _p([d["ms"] for d in warm], 95),
                "fetch_p50": _p([d["fetch"] for d in cold], 50), "decode_p50": _p([d["decode"] for d in cold], 50),
                "fps": 1000 * len(fast["details"]) / fast["total"],
                "paint_p50": statistics.median(d["ms"] for d in fast["details"]),
            })
        print("\nslider change -> painted grid, ms (Debian chromium headless, software canvas)")
        print(f"{'layer':<12}{'C×H×W':>12}{'uncached p50':>14}{'p95':>8}{'cached p50':>12}{'p95':>8}{'scrub fps':>11}"
              f"{'fetch p50':>11}{'decode p50':>12}")
        for r in rows:
            print(f"{r['layer']:<12}{r['shape']:>12}{r['cold_p50']:>14.1f}{r['cold_p95']:>8.1f}"
                  f"{r['warm_p50']:>12.1f}{r['warm_p95']:>8.1f}{r['fps']:>11.1f}"
                  f"{r['fetch_p50']:>11.1f}{r['decode_p50']:>12.1f}")
        print("uncached = fetch (server + transfer) + decode (inflate, undelta) + paint; fetch and decode of uncached steps")
        assert len(rows) == len(LAYERS)
        assert not page.console_errors
    finally:
        server.stop()


# --- Insight in space: the overlay and top K on, against both off ------------------------

INSIGHT_JS = """([overlay, top]) => {
  const set = (id, value, type) => { const e = document.querySelector(id); e.value = value; e.dispatchEvent(new Event(type)); };
  set('#fm-overlay', overlay, 'change');
  set('#fm-top', top, 'input');
}"""


@pytest.fixture(scope="module")
def insight_logdir(tmp_path_factory):
    """The demo's run (its probe images logged as the layer "input") and AlexNet's features.3
    with its input image logged as a layer, STEPS steps each."""
    import sys

    from support import REPO

    sys.path.insert(0, str(REPO / "demo"))
    try:
        import train
    finally:
        sys.path.pop(0)
    root = tmp_path_factory.mktemp("bench_insight") / "logs"
    train.run_all(root, steps=STEPS * 10, maps_every=10)
    torch.manual_seed(0)
    model = torchvision.models.alexnet(weights=None)
    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as photo:
        pixels = np.asarray(photo.convert("RGB").resize((224, 224)), dtype=np.float32) / 255
    image = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02)
    with SummaryWriter(root / "alexnet") as writer, FeatureMapRecorder(model, ["features.3"]) as recorder:
        for step in range(STEPS):
            logits = model(image)
            log_feature_maps(writer, {"input": image, **recorder.outputs}, step)
            loss = torch.nn.functional.cross_entropy(logits, torch.tensor([step % 10]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return root


@pytest.mark.benchmark
def test_cached_step_to_paint_with_overlay_and_top_k(insight_logdir, page, open_tab):
    server = TensorBoardProcess(insight_logdir)
    try:
        server.wait_for(lambda: len(json.loads(server.get("/data/plugin/feature_maps/tags")[2])) == 2)
        frame = open_tab(page, server.url)
        frame.wait_for_function("window.fmApp && fmApp.paintCount > 0", timeout=60000)
        rows = []
        for run, tag in (("shapes_cnn", "feature_maps/conv1"), ("alexnet", "feature_maps/features.3")):
            for selector, value in (("#fm-run", run), ("#fm-layer", tag)):
                if frame.input_value(selector) != value:
                    count = frame.evaluate("fmApp.paintCount")
                    frame.select_option(selector, value)
                    frame.wait_for_function(f"fmApp.paintCount > {count}")
            frame.wait_for_function("fmApp.fixed !== null && !fmApp.model.inflight.size")
            indices = list(range(frame.evaluate("fmApp.steps.length")))
            shape = frame.evaluate("[fmApp.current.maps.c, fmApp.current.maps.h, fmApp.current.maps.w]")
            timings = {}
            half = shape[0] // 2
            for name, overlay, top in (("off", "", ""), ("overlay", "feature_maps/input", ""),
                                       ("on", "feature_maps/input", str(half))):
                frame.evaluate(INSIGHT_JS, [overlay, top])
                frame.wait_for_function(f"fmApp.current.order.length === {half if top else shape[0]}"
                                        f" && fmApp.overlaid === {'true' if overlay else 'false'}")
                frame.evaluate(SCRUB_JS, {"indices": indices, "waitFrame": False})  # everything cached
                rounds = frame.evaluate(SCRUB_JS, {"indices": indices[::-1] + indices * 2, "waitFrame": True})
                details = rounds["details"]
                assert all(d["cached"] for d in details)
                timings[name] = [d["ms"] for d in details]
            assert frame.evaluate("fmApp.current.order.length") == half
            frame.evaluate(INSIGHT_JS, ["", ""])
            rows.append((run, tag.split("/")[1], "×".join(map(str, shape)), timings))
        print("\ncached step -> painted grid, ms (Debian chromium headless, software canvas);"
              " on = overlay on the input + top C/2 by std")
        print(f"{'run':<12}{'layer':<12}{'C×H×W':>12}{'off p50':>9}{'max':>7}{'overlay p50':>13}{'max':>7}"
              f"{'ratio':>7}{'on p50':>9}{'max':>7}{'ratio':>7}")
        for run, layer, shape, t in rows:
            off, over, on = (statistics.median(t[k]) for k in ("off", "overlay", "on"))
            print(f"{run:<12}{layer:<12}{shape:>12}{off:>9.1f}{max(t['off']):>7.1f}{over:>13.1f}"
                  f"{max(t['overlay']):>7.1f}{over / off:>7.2f}{on:>9.1f}{max(t['on']):>7.1f}{on / off:>7.2f}")
        print("overlay = the maps over the input layer, all channels; on = overlay + top C/2 by std;"
              " ratio = p50 / off p50")
        assert not page.console_errors
    finally:
        server.stop()
