"""Every way of installing tb_featmap gives TensorBoard the Feature Maps tab.

Each way gets a fresh venv without torch, a real `tensorboard` from that venv on a loopback
port, and three checks: the plugins listing names the tab, the tab's index.js is served
(the bytes of the checkout's frontend/index.js), and the `tags` route reads a run. The
wheel (a regular install) is tested in tests/browser/test_wheel.py, in a real browser.

- `pip install -e .` with the newest pip, TensorBoard as in requirements-dev.txt;
- `pip install -e .` with pip 23.2 and `wheel` installed (a stock Python 3.11 venv), where
  a project without pyproject.toml took the legacy `setup.py develop` path and lost the tab;
  with TensorBoard 2.14.1 and numpy 1.26, the oldest TensorBoard named in setup.py;
- a checkout on PYTHONPATH, its entry point from `python setup.py egg_info` (as the README
  says): the plugin finds the checkout's frontend/ beside tb_featmap/.

pip reaches the package index (as for `make setup`); pip's cache keeps later runs short.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
from torch.utils.tensorboard import SummaryWriter

from support import REPO, TensorBoardProcess
from tb_featmap import log_feature_maps

OLDEST_TENSORBOARD = ("tensorboard==2.14.1", "numpy==1.26.4")


def _pins(*names):
    """The requirements-dev.txt pins of these packages."""
    pins = {}
    for line in (REPO / "requirements-dev.txt").read_text().splitlines():
        name = line.split("==")[0].strip().lower()
        if name in names:
            pins[name] = line.strip()
    assert sorted(pins) == sorted(names), pins
    return list(pins.values())


def _run(*args, cwd=None):
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, env=_env())
    assert proc.returncode == 0, f"{args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _env(**extra):
    """This environment without what points Python at the test suite's own venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, **extra}


def _venv(path, *packages):
    _run(sys.executable, "-m", "venv", path)
    python = path / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", *packages)
    return python


def _checkout(path):
    """The files a fresh clone has: tracked, plus untracked ones that git does not ignore."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, path / name)
    return path


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("install") / "logs"
    with SummaryWriter(logdir / "run1") as writer:
        log_feature_maps(writer, {"conv1": torch.rand(1, 4, 8, 8)}, 0)
    return logdir


@pytest.fixture(scope="module")
def current_pip(tmp_path_factory):
    venv = tmp_path_factory.mktemp("venv_current_pip")
    python = _venv(venv, "--upgrade", "pip")
    _run(python, "-m", "pip", "install", "-q",
         *_pins("tensorboard", "numpy", "werkzeug", "google-crc32c", "isal"))
    return python


def _assert_tab(python, logdir, checkout, env=None):
    tb = TensorBoardProcess(logdir, executable=str(python.with_name("tensorboard")), env=env or _env())
    try:
        status, _, body = tb.get("/data/plugins_listing")
        assert status == 200
        listing = json.loads(body).get("feature_maps")
        assert listing and listing["tab_name"] == "Feature Maps", tb.output()[-3000:]
        status, headers, body = tb.get("/data/plugin/feature_maps/index.js")
        assert status == 200 and headers["Content-Type"].startswith("text/javascript")
        assert body == (checkout / "frontend" / "index.js").read_bytes()
        tags = json.loads(tb.wait_for(
            lambda: (lambda r: r[2] != b"{}" and r[2])(tb.get("/data/plugin/feature_maps/tags"))
        ))
        assert tags["run1"]["feature_maps/conv1"]["stored"] == [1, 4, 8, 8]
        assert "Failed to load plugin" not in tb.output() and "Traceback" not in tb.output()
    finally:
        tb.stop()


def test_editable_install_with_current_pip(current_pip, logdir, tmp_path):
    checkout = _checkout(tmp_path / "tb_featmap")
    _run(current_pip, "-m", "pip", "uninstall", "-q", "-y", "tb_featmap")
    _run(current_pip, "-m", "pip", "install", "-e", checkout)
    _assert_tab(current_pip, logdir, checkout)


def test_editable_install_with_pip_23_2_and_wheel(logdir, tmp_path):
    python = _venv(tmp_path / "venv", "pip==23.2.1")
    _run(python, "-m", "pip", "install", "-q", "wheel", *OLDEST_TENSORBOARD)
    versions = _run(python, "-m", "pip", "list", "--format=json").stdout
    versions = {p["name"].lower(): p["version"] for p in json.loads(versions)}
    assert versions["pip"] == "23.2.1" and "wheel" in versions
    assert versions["tensorboard"] == "2.14.1" and versions["numpy"].startswith("1.26.")
    checkout = _checkout(tmp_path / "tb_featmap")
    install = _run(python, "-m", "pip", "install", "-e", checkout)
    # pyproject.toml makes pip build an editable wheel (PEP 660), not run setup.py develop.
    assert "setup.py develop" not in install.stdout, install.stdout
    _assert_tab(python, logdir, checkout)


def test_checkout_on_pythonpath(current_pip, logdir, tmp_path):
    _run(current_pip, "-m", "pip", "uninstall", "-q", "-y", "tb_featmap")
    checkout = _checkout(tmp_path / "tb_featmap")
    _run(current_pip, "setup.py", "-q", "egg_info", cwd=checkout)
    env = _env(PYTHONPATH=str(checkout))
    where = subprocess.run(
        [str(current_pip), "-c", "import importlib.util as u, tb_featmap; "
         "print(tb_featmap.__file__, u.find_spec('tb_featmap.frontend'))"],
        capture_output=True, text=True, env=env, cwd=tmp_path,  # not the suite's own checkout
    )
    # Imported from the checkout, where frontend/ is no package of tb_featmap.
    assert where.stdout.split() == [str(checkout / "tb_featmap" / "__init__.py"), "None"], where.stderr
    _assert_tab(current_pip, logdir, checkout, env=env)


def test_setup_py_names_the_oldest_tensorboard_tested():
    setup = (REPO / "setup.py").read_text()
    oldest = re.search(r'"tensorboard>=([\d.]+)"', setup).group(1)
    assert OLDEST_TENSORBOARD[0].split("==")[1].startswith(oldest + ".")


def test_make_test_without_root_says_what_is_missing_in_one_line(tmp_path):
    make = ["make", "-s", "-C", str(REPO), "chromium", f"CHROMIUM={tmp_path / 'no-chromium'}"]
    if os.geteuid() == 0:  # run it as nobody, as a user without root would
        make = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *make]
    proc = subprocess.run(make, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    make_own = ("make: ", "make[")
    ours = [line for line in proc.stderr.splitlines() if not line.startswith(make_own)]
    assert len(ours) == 1, proc.stderr
    assert "chromium" in ours[0] and "root" in ours[0] and "apt-get install" in ours[0]
    assert not proc.stdout
    # With chromium there, the target is silent and succeeds, root or not.
    present = make[:-1] + [f"CHROMIUM={shutil.which('sh')}"]
    done = subprocess.run(present, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stdout and not done.stderr, done.stderr
