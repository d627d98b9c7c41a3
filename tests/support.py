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
from typing import List


REPO = Path(__file__).resolve().parent.parent
TENSORBOARD = str(Path(sys.executable).with_name("tensorboard"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def route_get(client, route, **args):
    """(status, headers, body) of GET on the plugin's `route` through a `wsgi_client`.

    `args` become the query string.
    """
    response = client.get("/data/plugin/feature_maps/" + route, query_string=args)
    return response.status_code, response.headers, response.get_data()


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


class LoopbackServer:
    """A server process on a free 127.0.0.1 port: started, waited for, stopped by its process id.

    A subclass says what to run (`command()`, which may use `self.port`), its `NAME` (in errors
    and in the log file's name) and the `READY_PATH` that answers once it serves. Its output goes
    to `<log_dir>/<NAME>-<port>.log`; a failure to start stops it and raises with that output.
    """

    NAME = "server"
    READY_PATH = "/"
    READY_TIMEOUT = 60

    def __init__(self, log_dir, *, env=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(Path(log_dir) / f"{self.NAME}-{self.port}.log", "wb")
        self.proc = subprocess.Popen(
            self.command(), stdout=self.log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # stop() ends its children too (TensorBoard's data server)
        )
        self._wait_ready()

    def command(self) -> List[str]:
        """The argv to run; `self.port` is the port it must listen on."""
        raise NotImplementedError

    def _wait_ready(self):
        deadline = time.monotonic() + self.READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._fail(f"{self.NAME} exited early (status {self.proc.returncode})")
            try:
                urllib.request.urlopen(self.url + self.READY_PATH, timeout=2).read()
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        self._fail(f"{self.NAME} did not answer in {self.READY_TIMEOUT}s")

    def _fail(self, what: str):
        self.stop()
        raise RuntimeError(f"{what}:\n{self.output()}")

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


class TensorBoardProcess(LoopbackServer):
    """A real `tensorboard` on a free loopback port, stopped by its process id."""

    NAME = "tensorboard"
    READY_PATH = "/data/plugins_listing"
    READY_TIMEOUT = 90

    def __init__(self, logdir, *args, env=None, executable=TENSORBOARD, log_dir=None):
        self._argv = [executable, "--logdir", str(logdir), "--host", "127.0.0.1",
                      "--reload_interval", "1", *args]
        # A remote logdir (s3://...) needs log_dir.
        super().__init__(log_dir or Path(logdir).parent, env=env)

    def command(self) -> List[str]:
        return [*self._argv, "--port", str(self.port)]

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

    def wait_for_body(self, path, until, timeout=60) -> bytes:
        """The body of GET `path` once `until(body)` holds, asking again meanwhile.

        Every reply must be a 200: an error while waiting fails at once, never asked again.
        """
        def answered():
            status, _, body = self.get(path)
            assert status == 200, f"GET {path} while waiting: {status} {body[:300]!r}"
            return [body] if until(body) else None

        return self.wait_for(answered, timeout)[0]


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
