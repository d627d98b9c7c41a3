"""The wheel: built for real, installed into a fresh venv with TensorBoard and no torch.

Proves that frontend/ ships inside the wheel as package data, that the plugin is found
through its entry point, that the TensorBoard side never imports torch, and that the tab
served from the wheel lists the layer and paints its maps.
"""

import json
import subprocess
import sys
import zipfile

import pytest
import torch
from torch.utils.tensorboard import SummaryWriter

from support import REPO
from tab_driver import expected_colours, grid_rgb, mismatch
from tb_featmap import log_feature_maps


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(REPO)],
        check=True, capture_output=True,
    )
    (path,) = out.glob("tb_featmap-*.whl")
    return path


@pytest.fixture(scope="module")
def venv_without_torch(wheel, tmp_path_factory):
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    return venv


def test_wheel_ships_the_frontend_and_the_api_doc(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "tb_featmap/frontend/index.js" in names
    assert "tb_featmap/http_api.md" in names and "tb_featmap/py.typed" in names
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))
    ).decode()
    assert "feature_maps = tb_featmap.plugin:FeatureMapsLoader" in entry_points


def test_tab_loads_from_the_wheel_without_torch(venv_without_torch, tmp_path, tensorboard_process, page, open_tab):
    python = venv_without_torch / "bin" / "python"
    probe = subprocess.run(
        [str(python), "-c", "import sys, tb_featmap.plugin, tb_featmap.payload; "
         "import importlib.util as u; print(u.find_spec('torch') is None, 'torch' in sys.modules)"],
        capture_output=True, text=True,
    )
    assert probe.stdout.split() == ["True", "False"], probe.stderr

    writer = SummaryWriter(tmp_path / "logs" / "run1")
    log_feature_maps(writer, {"conv1": torch.rand(1, 4, 8, 8)}, 0)
    writer.close()
    tb = tensorboard_process(tmp_path / "logs", executable=str(venv_without_torch / "bin" / "tensorboard"))
    tags = json.loads(tb.wait_for(lambda: (lambda r: r[2] != b"{}" and r[2])(tb.get("/data/plugin/feature_maps/tags"))))
    assert tags["run1"]["feature_maps/conv1"]["stored"] == [1, 4, 8, 8]

    # the tab itself, not TensorBoard's bar (which names the tab either way): the layer list,
    # and a grid painted with the colours of the values the torch-less server sends
    frame = open_tab(page, tb.url)
    frame.wait_for_function("window.fmApp && fmApp.paintCount > 0 && fmApp.current", timeout=60000)
    layers = frame.eval_on_selector_all("#fm-layer option", "os => os.map(o => o.textContent)")
    assert layers == ["conv1 · 4×8×8"]
    colormap = frame.input_value("#fm-colormap")
    assert frame.input_value("#fm-norm") == "channel"
    _, expected = expected_colours(tb, "run1", "feature_maps/conv1", 0, norm="channel",
                                   colormap=colormap)
    assert not mismatch(grid_rgb(frame), expected)
    assert not page.console_errors and not page.dialogs
    assert "Traceback" not in tb.output()
