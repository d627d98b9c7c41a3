"""In the browser: hostile run and layer names show as text and run nothing, and a tab left
open picks up the steps of a training run still in progress, without a page reload.

Both against a real tensorboard and Debian's chromium.
"""

import json
import time
import urllib.parse

import pytest
import torch
from torch.utils.tensorboard import SummaryWriter

from support import start_live_trainer, TensorBoardProcess
from tb_featmap import log_feature_maps

ROUTE = "/data/plugin/feature_maps/"
PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    '"><script>alert(1)</script>',
    "javascript:alert(1)",
    "<svg onload=alert(1)>",
]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("xss") / "logs"
    for run in PAYLOADS:
        # TensorBoard names a run by its path: a "/" in the name is a nested directory.
        with SummaryWriter(root / run) as writer:
            layers = {name: torch.rand(1, 3, 6, 6) for name in PAYLOADS}
            for step in range(2):
                log_feature_maps(writer, layers, step)
    # The Python loader: the Rust data server cannot read blobs whose names hold a quote
    # (test_reliability.py checks that the tab still serves the rest there).
    server = TensorBoardProcess(root, "--load_fast=false")
    try:
        server.wait_for(lambda: len(json.loads(server.get(ROUTE + "tags")[2])) == len(PAYLOADS))
        yield server
    finally:
        server.stop()


def test_hostile_names_are_shown_as_text_and_run_nothing(hostile, page, open_tab):
    frame = open_tab(page, hostile.url)
    frame.wait_for_function("window.fmApp && window.fmApp.paintCount > 0", timeout=60000)
    runs = frame.eval_on_selector_all("#fm-run option", "os => os.map(o => o.textContent)")
    assert sorted(runs) == sorted(PAYLOADS)  # each name exactly as written, as text
    for run in PAYLOADS:
        count = frame.evaluate("fmApp.paintCount")
        frame.select_option("#fm-run", value=run)
        frame.wait_for_function(f"fmApp.paintCount > {count}", timeout=30000)
        layers = frame.eval_on_selector_all("#fm-layer option", "os => os.map(o => o.textContent)")
        assert len(layers) == len(PAYLOADS)
        assert all(any(name in text for text in layers) for name in PAYLOADS), layers
        assert run in frame.inner_text("#fm-title")
        for name in PAYLOADS:  # show each layer too: its name goes into more of the page
            option = next(o for o in frame.eval_on_selector_all("#fm-layer option", "os => os.map(o => o.value)") if o.endswith(name))
            count = frame.evaluate("fmApp.paintCount")
            frame.select_option("#fm-layer", value=option)
            frame.wait_for_function(f"fmApp.paintCount > {count}", timeout=30000)
    time.sleep(1)  # an onerror fires once the image fails to load
    # Nothing the names carry became markup: no images, scripts or SVG from them, no dialog.
    for frame_ in page.frames:
        assert frame_.evaluate("document.querySelectorAll('img[src=x], svg[onload], [onerror]').length") == 0
        scripts = frame_.evaluate("[...document.scripts].map(s => s.textContent).join('\\n')")
        assert "alert(1)" not in scripts
        assert frame_.evaluate("[...document.querySelectorAll('a[href]')].filter(a => a.href.startsWith('javascript:')).length") == 0
    assert page.dialogs == []
    assert not [e for e in page.console_errors if "alert" in e], page.console_errors


@pytest.mark.parametrize("route", ["steps", "stats", "maps", "npy"])
def test_hostile_names_in_urls_come_back_as_inert_text(hostile, page, route):
    """Opening a route directly with a script in its arguments: a text/plain 404 with
    nosniff, which the browser shows as text."""
    query = urllib.parse.urlencode({"run": PAYLOADS[1], "tag": PAYLOADS[0], "step": "0"})
    response = page.goto(f"{hostile.url}{ROUTE}{route}?{query}")
    assert response.status == 404
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert page.evaluate("document.querySelectorAll('script, img, svg').length") == 0
    time.sleep(0.5)
    assert page.dialogs == []


def test_open_tab_picks_up_new_steps_without_a_reload(tmp_path, page, open_tab):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    trainer = start_live_trainer(logdir / "live", 30)
    server = None
    try:
        server = TensorBoardProcess(logdir)
        server.wait_for(lambda: "live" in json.loads(server.get(ROUTE + "tags")[2]))
        frame = open_tab(page, server.url)
        frame.wait_for_function("window.fmApp && window.fmApp.paintCount > 0", timeout=60000)
        frame.evaluate("window.__sameDocument = true")  # gone if the page reloads
        first = int(frame.get_attribute("#fm-step", "max"))
        # The tab polls ./tags and ./steps; the slider's range grows and it follows the newest.
        frame.wait_for_function(
            f"Number(document.querySelector('#fm-step').max) >= {first + 5}", timeout=45000
        )
        grown = int(frame.get_attribute("#fm-step", "max"))
        assert frame.evaluate("window.__sameDocument === true")
        assert frame.input_value("#fm-step") == str(grown)  # still at the newest step
        assert f"of {grown + 1} kept steps" in frame.inner_text("#fm-step-info")
        out, err = trainer.communicate(timeout=60)
        assert trainer.returncode == 0, err
        logged = len(out.split())
        frame.wait_for_function(
            f"Number(document.querySelector('#fm-step').max) === {logged - 1}", timeout=45000
        )
        assert frame.evaluate("window.__sameDocument === true")
        assert page.console_errors == [] and page.dialogs == []
        assert "Traceback" not in server.output()
    finally:
        if trainer.poll() is None:
            trainer.kill()
            trainer.wait()
        if server is not None:
            server.stop()
