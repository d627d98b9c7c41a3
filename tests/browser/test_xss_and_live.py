"""In the browser: hostile run and layer names show as text and run nothing, hostile event
files never blank or freeze the tab, and a tab left open picks up the steps of a training run
still in progress, without a page reload.

All against a real tensorboard and Debian's chromium.
"""

import base64
import json
import zlib
import time
import urllib.parse

import pytest
import torch
from torch.utils.tensorboard import SummaryWriter

from support import start_live_trainer, TensorBoardProcess
from tab_driver import paint
from tb_featmap import log_feature_maps
from test_reliability import at_step, header_with, rewrite, set_blob, write_run

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
        frame.select_option("#fm-run", value=run)
        # This run's grid, not a late repaint of the run shown before (see tab_driver.choose).
        frame.wait_for_function("([run]) => fmApp.lastPainted.run === run", arg=[run], timeout=30000)
        layers = frame.eval_on_selector_all("#fm-layer option", "os => os.map(o => o.textContent)")
        assert len(layers) == len(PAYLOADS)
        assert all(any(name in text for text in layers) for name in PAYLOADS), layers
        assert run in frame.inner_text("#fm-title")
        for name in PAYLOADS:  # show each layer too: its name goes into more of the page
            option = next(o for o in frame.eval_on_selector_all("#fm-layer option", "os => os.map(o => o.value)") if o.endswith(name))
            frame.select_option("#fm-layer", value=option)
            frame.wait_for_function("([tag]) => fmApp.lastPainted.tag === tag", arg=[option],
                                    timeout=30000)
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


# Hostile event files, written with TensorBoard's own record writer (test_reliability's helpers).
RTL_RUN = "rtl_\u202egpj.exe"  # shows as "rtl_exe.jpg" unless the override is made visible
HIDDEN_LAYER = "conv\u200b1"  # a zero-width space
CLAIMS = {"claims_1e7": 10**7, "claims_2e31": 2**31}  # samples the newest header claims
GOOD_TAG = "feature_maps/conv"


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    root = tmp_path_factory.mktemp("damaged_tab") / "logs"
    good = tmp_path_factory.mktemp("good") / "run"
    write_run(good)  # steps 0..5 of "conv" [1, 3, 8, 8] and "fc"
    rewrite(good, root / "bad_step", at_step(2, set_blob(2, lambda b: b[:2] + b"\x00garbage" * 9)))
    for run, samples in CLAIMS.items():
        rewrite(good, root / run, at_step(5, set_blob(0, header_with(stored=[samples, 3, 8, 8]))))
    with SummaryWriter(root / RTL_RUN) as writer:
        log_feature_maps(writer, {HIDDEN_LAYER: torch.rand(1, 2, 4, 4)}, 0)
    server = TensorBoardProcess(root)
    try:
        server.wait_for(lambda: len(json.loads(server.get(ROUTE + "tags")[2])) == 4)
        yield server
    finally:
        server.stop()


def _poll(page, frame):
    """Make the tab poll now (as when it gets focus); returns once the poll asked for steps."""
    with page.expect_response(lambda r: "/feature_maps/steps?" in r.url, timeout=30000):
        frame.evaluate("window.dispatchEvent(new Event('focus'))")


def _choose(frame, run, tag=GOOD_TAG):
    frame.wait_for_function("window.fmApp && fmApp.paintCount > 0", timeout=60000)
    if frame.input_value("#fm-run") != run:
        frame.select_option("#fm-run", value=run)
    if frame.input_value("#fm-layer") != tag:
        frame.select_option("#fm-layer", value=tag)
    frame.wait_for_function("fmApp.steps.length > 0", timeout=30000)


def _notice(frame):
    return frame.evaluate("(() => { const n = document.querySelector('#fm-notice');"
                          " return n.checkVisibility() ? n.innerText : ''; })()")


def _steps(server, run):
    query = urllib.parse.urlencode({"run": run, "tag": GOOD_TAG})
    return [s["step"] for s in json.loads(server.get(f"{ROUTE}steps?{query}")[2])]


@pytest.mark.parametrize("run", list(CLAIMS))
def test_a_header_claiming_huge_sizes_neither_freezes_nor_breaks_the_tab(damaged, page, open_tab, run):
    """The newest step claims 10^7 or 2^31 samples over a stats blob of one: the sample menu
    follows what the statistics hold, the step gets a notice, the other steps still paint."""
    frame = open_tab(page, damaged.url)
    _choose(frame, run)
    steps = _steps(damaged, run)
    frame.wait_for_function("document.querySelector('#fm-notice').innerText.includes('Could not load step')"
                            " || fmApp.paintCount > 0", timeout=30000)
    assert frame.evaluate("document.querySelectorAll('#fm-sample option').length") <= 1
    if 5 in steps:  # listed: it cannot be read, and the tab says so
        frame.wait_for_function("document.querySelector('#fm-notice').innerText.includes('step 5')")
        assert "Could not load step 5" in _notice(frame)
    paint(frame, lambda: frame.evaluate("fmApp.goTo(0)"))
    assert frame.input_value("#fm-step-input") == str(steps[0])
    assert "Could not load step" not in _notice(frame)
    assert frame.evaluate("document.querySelectorAll('#fm-sample option').length") <= 1
    _poll(page, frame)  # polls go on, with no error at each
    # the browser logs the 404 of step 5; nothing else, no "Invalid array length" at any poll
    errors = [e for e in page.console_errors if "Failed to load resource" not in e]
    assert not errors, errors


def test_could_not_load_step_stays_until_a_later_load_succeeds(damaged, page, open_tab):
    frame = open_tab(page, damaged.url)
    _choose(frame, "bad_step")
    steps = _steps(damaged, "bad_step")
    assert 2 in steps
    frame.evaluate(f"fmApp.goTo({steps.index(2)})")
    frame.wait_for_function("document.querySelector('#fm-notice').innerText.includes('Could not load step 2')")
    grid = frame.evaluate("document.querySelector('#fm-grid').toDataURL()")
    for _ in range(2):  # polls come and go; the notice stays while the grid shows another step
        _poll(page, frame)
        assert "Could not load step 2" in _notice(frame)
    assert frame.evaluate("document.querySelector('#fm-grid').toDataURL()") == grid
    paint(frame, lambda: frame.evaluate(f"fmApp.goTo({steps.index(3)})"))
    assert "Could not load step" not in _notice(frame)


def test_a_layer_list_that_fails_to_load_is_a_visible_notice_not_a_blank_page(damaged, page, open_tab):
    """The first /tags answers 500 (the browser's network layer, as a broken plugin would);
    the notice says so on screen, and the next poll brings the tab up and clears it."""
    failed = []

    def fail_once(route):
        if failed:
            return route.continue_()
        failed.append(route.request.url)
        return route.fulfill(status=500, content_type="text/plain", body="tags broke")

    page.route("**/data/plugin/feature_maps/tags*", fail_once)
    frame = open_tab(page, damaged.url)
    frame.wait_for_function("document.querySelector('#fm-notice') && "
                            "document.querySelector('#fm-notice').checkVisibility()", timeout=60000)
    assert failed and "500 tags broke" in _notice(frame)
    assert "Could not load the layer list" in _notice(frame)
    frame.evaluate("window.dispatchEvent(new Event('focus'))")
    frame.wait_for_function("fmApp.paintCount > 0", timeout=30000)
    assert "tags broke" not in _notice(frame)
    assert frame.is_visible("#fm-grid")


def test_bidi_and_invisible_characters_in_names_are_shown(damaged, page, open_tab):
    frame = open_tab(page, damaged.url)
    _choose(frame, RTL_RUN, f"feature_maps/{HIDDEN_LAYER}")
    frame.wait_for_function("document.querySelector('#fm-title').textContent.startsWith('rtl_')")
    runs = frame.eval_on_selector_all("#fm-run option", "os => os.map(o => o.textContent)")
    assert "rtl_⟨U+202E⟩gpj.exe" in runs and RTL_RUN not in runs
    layers = frame.eval_on_selector_all("#fm-layer option", "os => os.map(o => o.textContent)")
    assert layers == ["conv⟨U+200B⟩1 · 2×4×4"]
    assert frame.text_content("#fm-title").startswith("rtl_⟨U+202E⟩gpj.exe · step 0")
    assert frame.input_value("#fm-run") == RTL_RUN  # the name itself still reaches the routes


def test_a_blob_that_inflates_past_its_header_is_cut_off_in_the_browser(damaged, page, open_tab):
    """A real payload of a 3x8x8 step with its data swapped for 64 MiB of zeros, decoded by
    the tab's own module in chromium: inflation stops at the header's 192 bytes."""
    frame = open_tab(page, damaged.url)
    _choose(frame, "bad_step")
    bomb = base64.b64encode(zlib.compress(bytes(64 << 20), 9)).decode()
    result = frame.evaluate("""async (bomb) => {
      const base = '/data/plugin/feature_maps/';
      const { decodePayload, splitPayload } = await import(`${base}decode.js`);
      const url = `${base}maps?run=bad_step&tag=feature_maps%2Fconv&step=0`;
      const good = new Uint8Array(await (await fetch(url)).arrayBuffer());
      const { compressed } = splitPayload(good.buffer);
      const head = good.subarray(0, good.length - compressed.length);
      const data = Uint8Array.from(atob(bomb), (c) => c.charCodeAt(0));
      const payload = new Uint8Array(head.length + data.length);
      payload.set(head);
      payload.set(data, head.length);
      try {
        await decodePayload(payload.buffer);
        return 'decoded';
      } catch (e) {
        return `${e.name} ${e.constructor.name}: ${e.message}`;
      }
    }""", bomb)
    assert "more than the 192 bytes the header gives" in result, result
