"""Browser fixtures: Debian's chromium driven by Playwright, against a real tensorboard.

Chromium comes from Debian (`/usr/bin/chromium`), installed with apt-get when missing;
Playwright never downloads a browser of its own.
"""

import shutil
import subprocess
import sys

import pytest

from support import REPO, TensorBoardProcess
from tab_driver import logged, written

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def ensure_chromium() -> str:
    """Install Debian's chromium with apt-get if it is not there yet."""
    if shutil.which(CHROMIUM) is None:
        env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, check=True, capture_output=True)
            subprocess.run(install, env=env, check=True, capture_output=True)
    return CHROMIUM


@pytest.fixture(scope="session")
def browser():
    """A headless Debian chromium, shared by the session."""
    from playwright.sync_api import sync_playwright

    executable = ensure_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh page that records console errors and dialogs (an opened dialog means script ran)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.console_errors = []
    page.dialogs = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))

    def on_dialog(dialog):
        page.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    yield page
    context.close()


@pytest.fixture
def open_tab():
    """open_tab(page, tensorboard_url) -> the frame the Feature Maps tab renders into."""
    return _open_tab


def _open_tab(page, tensorboard_url: str, timeout_ms: int = 60000):
    """Open the Feature Maps tab and return the frame its ES module renders into."""
    page.goto(f"{tensorboard_url}/#feature_maps", wait_until="domcontentloaded")
    frame_element = page.wait_for_selector(
        "iframe[src*='feature_maps'], iframe", state="attached", timeout=timeout_ms
    )
    frame = frame_element.content_frame()
    frame.wait_for_load_state("domcontentloaded")
    return frame


@pytest.fixture
def demo_tb(tmp_path):
    """A tensorboard over demo/train.py's run (200 steps, maps every 10), every step loaded."""
    sys.path.insert(0, str(REPO / "demo"))
    try:
        import train
    finally:
        sys.path.pop(0)
    logdir = tmp_path / "logs"
    train.run_all(logdir, steps=200, maps_every=10)
    server = TensorBoardProcess(logdir)
    try:
        expected = written(logdir)
        server.wait_for(lambda: logged(server) == expected)
        server.run_name = train.RUN_NAME
        yield server
    finally:
        server.stop()
