"""Test helpers shared by every test module: TensorBoard's WSGI stack and real tensorboard
processes. Import them with `from support import ...` (conftest modules are not for importing)."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent
TENSORBOARD = str(Path(sys.executable).with_name("tensorboard"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wsgi_client(logdir, samples_per_plugin=None):
    """A werkzeug test client over TensorBoard's real application and Python data provider."""
    from tensorboard.backend import application
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from werkzeug import test as werkzeug_test

    from tb_featmap import plugin

    samples = {"feature_maps": plugin.DEFAULT_SAMPLES, **(samples_per_plugin or {})}
    multiplexer = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance=samples)
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
    context = base_plugin.TBContext(
        data_provider=provider, logdir=str(logdir), sampling_hints=samples
    )
    app = application.TensorBoardWSGI([plugin.FeatureMapsPlugin(context)])
    return werkzeug_test.Client(app)


class TensorBoardProcess:
    """A real `tensorboard` on a free loopback port, stopped by its process id."""

    def __init__(self, logdir, *args, env=None, executable=TENSORBOARD, log_dir=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        here = Path(log_dir or Path(logdir).parent)  # a remote logdir (s3://...) needs log_dir
        self.log = open(here / f"tensorboard-{self.port}.log", "wb")
        cmd = [executable, "--logdir", str(logdir), "--host", "127.0.0.1",
               "--port", str(self.port), "--reload_interval", "1", *args]
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self._wait_ready()

    def _wait_ready(self, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tensorboard exited early:\n{self.output()}")
            try:
                urllib.request.urlopen(self.url + "/data/plugins_listing", timeout=2).read()
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"tensorboard did not answer in {timeout}s:\n{self.output()}")

    def get(self, path, timeout=30):
        """(status, headers, body) of GET path; never raises on HTTP errors."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def wait_for(self, predicate, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.5)
        raise AssertionError(f"condition not met in {timeout}s:\n{self.output()[-3000:]}")

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the Rust data server is its child
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


# A training process for live tests: logs feature maps every 0.3 s for argv[2] seconds into
# the run argv[1], flushing each step, and prints each step it logged.
LIVE_TRAINER = textwrap.dedent(
    """
    import sys, time, torch
    from torch.utils.tensorboard import SummaryWriter
    from tb_featmap import log_feature_maps

    writer = SummaryWriter(sys.argv[1], flush_secs=1)
    steps, start = 0, time.monotonic()
    while time.monotonic() - start < float(sys.argv[2]):
        x = torch.randn(2, 8, 32, 32, generator=torch.Generator().manual_seed(steps))
        log_feature_maps(writer, {"conv": x, "fc": x.mean(dim=(2, 3))}, steps, max_samples=2)
        writer.flush()  # what TensorBoard reads next may end in a half-written record
        print(steps, flush=True)
        steps += 1
        time.sleep(0.3)
    writer.close()
    """
)


def start_live_trainer(run_dir, seconds: float) -> subprocess.Popen:
    """Run LIVE_TRAINER in its own process, logging into `run_dir` for `seconds`."""
    return subprocess.Popen(
        [sys.executable, "-c", LIVE_TRAINER, str(run_dir), str(seconds)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
