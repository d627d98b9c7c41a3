"""Train a small CNN on generated shapes and watch its feature maps in TensorBoard.

Offline and CPU-only: the data set is drawn on the fly (four classes: horizontal stripes,
vertical stripes, blobs and rings, with noise), and the probe batch adds matplotlib's bundled
photo of Grace Hopper. Every few steps the activations of ``conv1``, ``relu1``, ``conv2`` and
``conv3`` on that fixed probe batch are logged with tb_featmap, so the Feature Maps tab shows
edge and blob detectors taking shape in the first layer as the loss falls. The probe images
themselves are logged as the layer ``input`` (1 channel of 48 x 48, the aspect of every conv
layer), so the tab's "Overlay on" draws each map over the image it responds to.

Usage::

    python demo/train.py                     # train (~1-2 min on 2 cores), then serve on :6006
    python demo/train.py --no-serve --steps 300 --logdir /tmp/fm

Also importable, like TensorBoard's own demos: ``run_all(logdir, steps=30)`` writes a real
demo log directory for tests.
"""

import argparse
import errno
import math
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from tb_featmap import FeatureMapRecorder, log_feature_maps

__all__ = [
    "CLASSES",
    "IMAGE_SIZE",
    "RECORDED_LAYERS",
    "RUN_NAME",
    "ShapesCNN",
    "make_batch",
    "probe_batch",
    "run_all",
    "serve",
    "main",
    "port_in_use",
]

CLASSES = ("horizontal stripes", "vertical stripes", "blobs", "rings")
IMAGE_SIZE = 48
RECORDED_LAYERS = ("conv1", "relu1", "conv2", "conv3")
RUN_NAME = "shapes_cnn"
DEFAULT_LOGDIR = "runs/demo"
DEFAULT_STEPS = 2000
DEFAULT_PORT = 6006
BATCH_SIZE = 32
NOISE = 0.8


class ShapesCNN(nn.Module):
    """Three conv layers and a linear classifier over 1 x 48 x 48 images.

    Each stage is a named attribute (``conv1``, ``relu1``, ...) so that
    ``FeatureMapRecorder`` can select it by name.
    """

    def __init__(self, num_classes: int = len(CLASSES)):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, kernel_size=5, padding=2)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, kernel_size=3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.relu3 = nn.ReLU()
        self.head = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.relu3(self.conv3(x))
        return self.head(x.mean(dim=(2, 3)))


def make_batch(
    labels: torch.Tensor, generator: torch.Generator, *, size: int = IMAGE_SIZE, noise: float = NOISE
) -> torch.Tensor:
    """Draw one image per label, shape ``[len(labels), 1, size, size]``, values around 0..1.

    Args:
        labels: int64 class indices into ``CLASSES``.
        generator: The random source; the same seed gives the same images.
        size: Side of the square images. Default ``IMAGE_SIZE``.
        noise: Standard deviation of the added Gaussian noise. Default ``NOISE``.

    Returns:
        A float32 tensor of images.

    Raises:
        ValueError: If a label is not a class index.
    """
    if labels.numel() and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise ValueError(f"labels must be in 0..{len(CLASSES) - 1}, got {labels.tolist()}")
    n = labels.shape[0]

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, *shape, generator=generator)

    coords = torch.linspace(0.0, 1.0, size)
    y = coords.view(1, size, 1).expand(n, size, size)
    x = coords.view(1, 1, size).expand(n, size, size)
    freq = uniform(2.5, 6.0, 1, 1)
    phase = uniform(0.0, 2 * math.pi, 1, 1)
    # Stripes tilted up to 35 degrees off horizontal (or vertical): the two classes differ
    # by orientation only, which the first layer must learn to detect.
    tilt = uniform(-math.radians(35), math.radians(35), 1, 1)
    across = y * torch.cos(tilt) + x * torch.sin(tilt)
    along = x * torch.cos(tilt) - y * torch.sin(tilt)
    horizontal = 0.5 + 0.5 * torch.sin(2 * math.pi * freq * across + phase)
    vertical = 0.5 + 0.5 * torch.sin(2 * math.pi * freq * along + phase)
    # Blobs: four Gaussian spots of random place and width.
    cy, cx = uniform(0.1, 0.9, 4, 1, 1), uniform(0.1, 0.9, 4, 1, 1)
    sigma = uniform(0.05, 0.12, 4, 1, 1)
    d2 = (y[:, None] - cy) ** 2 + (x[:, None] - cx) ** 2
    blobs = torch.exp(-d2 / (2 * sigma**2)).amax(dim=1)
    # Rings: concentric around a random centre.
    ry, rx = uniform(0.3, 0.7, 1, 1), uniform(0.3, 0.7, 1, 1)
    radius = torch.sqrt((y - ry) ** 2 + (x - rx) ** 2)
    rings = 0.5 + 0.5 * torch.sin(2 * math.pi * freq * radius * 1.5 + phase)
    shapes = torch.stack([horizontal, vertical, blobs, rings], dim=1)
    images = shapes[torch.arange(n), labels]
    contrast = uniform(0.3, 1.0, 1, 1)
    images = 0.5 + contrast * (images - 0.5)
    images = images + noise * torch.randn(n, size, size, generator=generator)
    return images[:, None].float()


def probe_batch(size: int = IMAGE_SIZE, seed: int = 1234) -> Tuple[torch.Tensor, List[str]]:
    """The fixed batch whose feature maps are logged: Grace Hopper, then one image per class.

    Args:
        size: Side of the square images. Default ``IMAGE_SIZE``.
        seed: Seed of the generated samples. Default 1234.

    Returns:
        The images ``[1 + len(CLASSES), 1, size, size]`` and a caption for each.
    """
    generator = torch.Generator().manual_seed(seed)
    # Less noise than in training, so that the shapes (and what each map picks up) are clear.
    shapes = make_batch(torch.arange(len(CLASSES)), generator, size=size, noise=0.1)
    photo = _grace_hopper(size)[None, None]
    return torch.cat([photo, shapes]), ["grace_hopper.jpg", *CLASSES]


def _grace_hopper(size: int) -> torch.Tensor:
    """matplotlib's bundled photo, grayscale, centre-cropped and resized, values 0..1."""
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as image:
        gray = image.convert("L")
        side = min(gray.size)
        left, top = (gray.width - side) // 2, (gray.height - side) // 2
        gray = gray.crop((left, top, left + side, top + side)).resize(
            (size, size), Image.Resampling.LANCZOS
        )
        return torch.from_numpy(np.asarray(gray, dtype=np.float32) / 255.0)


def run_all(
    logdir,
    *,
    steps: int = DEFAULT_STEPS,
    maps_every: Optional[int] = None,
    scalars_every: int = 10,
    seed: int = 0,
    progress: bool = False,
    threads: Optional[int] = 1,
) -> Path:
    """Train the demo model and write its run under ``logdir/shapes_cnn``.

    Old event files of that run are removed first, so a second run does not mix with the
    first. Feature maps are logged before the first step, every ``maps_every`` steps and
    after the last one.

    Args:
        logdir: The TensorBoard log directory.
        steps: Training steps (batches of 32). Default 2000, about 1-2 minutes on 2 cores.
        maps_every: Steps between feature-map snapshots. Default ``steps // 40`` (at least 1).
        scalars_every: Steps between loss/accuracy points. Default 10.
        seed: Seed of the weights and the training data. Default 0.
        progress: Show a progress bar on stderr. Default False.
        threads: torch's intra-op threads while training, restored after. Default 1: the
            model is so small that a second thread gains little, and on a busy machine two
            threads were 6-10x slower than one. ``None`` keeps torch's setting.

    Returns:
        The run directory.

    Raises:
        TypeError: If ``steps``, ``maps_every`` or ``scalars_every`` is not an int.
        ValueError: If one of them is below 1.
    """
    steps = _positive_int("steps", steps)
    if threads is not None:
        threads = _positive_int("threads", threads)
    maps_every = _positive_int("maps_every", maps_every if maps_every is not None else max(1, steps // 40))
    scalars_every = _positive_int("scalars_every", scalars_every)
    run_dir = Path(logdir) / RUN_NAME
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in run_dir.glob("events.out.tfevents.*"):
        stale.unlink()

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = ShapesCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    probe, captions = probe_batch()
    eval_labels = torch.arange(256) % len(CLASSES)
    eval_images = make_batch(eval_labels, torch.Generator().manual_seed(seed + 1))

    writer = SummaryWriter(str(run_dir))
    writer.add_text("probe", "Probe samples, in order: " + ", ".join(captions), 0)
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        _log_maps(writer, model, probe, 0)
        running_loss, running_correct, seen = 0.0, 0, 0
        for step in _progress(range(1, steps + 1), enabled=progress):
            labels = torch.randint(len(CLASSES), (BATCH_SIZE,), generator=generator)
            images = make_batch(labels, generator)
            logits = model(images)
            loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running_loss += loss.item() * BATCH_SIZE
            running_correct += int((logits.argmax(dim=1) == labels).sum())
            seen += BATCH_SIZE
            if step % scalars_every == 0 or step == steps:
                writer.add_scalar("train/loss", running_loss / seen, step)
                writer.add_scalar("train/accuracy", running_correct / seen, step)
                running_loss, running_correct, seen = 0.0, 0, 0
            if step % maps_every == 0 or step == steps:
                writer.add_scalar("eval/accuracy", _accuracy(model, eval_images, eval_labels), step)
                _log_maps(writer, model, probe, step)
    finally:
        torch.set_num_threads(previous_threads)
        writer.close()
    return run_dir


def _log_maps(writer: SummaryWriter, model: nn.Module, probe: torch.Tensor, step: int) -> None:
    """Run the probe batch through the model and log the input and RECORDED_LAYERS."""
    # eval_mode: the probe runs in eval mode and every module gets its own flag back after.
    with torch.no_grad(), FeatureMapRecorder(model, RECORDED_LAYERS, eval_mode=True) as rec:
        model(probe)
    log_feature_maps(writer, {"input": probe, **rec.outputs}, step, max_samples=len(probe))


def _accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return float((model(images).argmax(dim=1) == labels).float().mean())
    finally:
        model.train(was_training)


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value


def _progress(iterable: Sequence[int], *, enabled: bool) -> Iterable[int]:
    """tqdm when it is installed, else a plain bar; nothing when disabled."""
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return _plain_progress(iterable)
    tty = sys.stderr.isatty()
    return tqdm(iterable, desc="training", unit="step", file=sys.stderr, mininterval=0.2 if tty else 15)


def _plain_progress(iterable: Sequence[int]) -> Iterator[int]:
    total = len(iterable)
    tty = sys.stderr.isatty()
    every = max(1, total // (100 if tty else 10))
    start = time.monotonic()
    for i, item in enumerate(iterable, 1):
        yield item
        if i % every == 0 or i == total:
            filled = 30 * i // total
            line = f"training [{'#' * filled}{'.' * (30 - filled)}] {i}/{total} {time.monotonic() - start:.0f}s"
            sys.stderr.write(("\r" + line) if tty else (line + "\n"))
            sys.stderr.flush()
    if tty:
        sys.stderr.write("\n")


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something already listens on ``host:port``."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as e:
            return e.errno == errno.EADDRINUSE
    return False


def serve_unless(no_serve: bool, logdir, port: int) -> int:
    """Serve `logdir` with TensorBoard, or with `no_serve` say how to; the exit code."""
    if no_serve:
        print(f"view them with: tensorboard --logdir {logdir}")
        return 0
    return serve(logdir, port)


def serve(logdir, port: int = DEFAULT_PORT, *, host: str = "127.0.0.1") -> int:
    """Run TensorBoard over ``logdir`` until it exits or Ctrl-C (or SIGTERM) arrives.

    Prints the URL once TensorBoard answers.

    Args:
        logdir: The log directory to serve.
        port: The port. Default 6006.
        host: The address to bind. Default 127.0.0.1.

    Returns:
        TensorBoard's exit status (0 after Ctrl-C).
    """
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir),
           "--host", host, "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)  # its log goes to our stderr
    # Stop TensorBoard too when this process is told to stop.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    url = f"http://{host}:{port}/"
    try:
        if _wait_ready(proc, url):
            print(f"TensorBoard (pid {proc.pid}) serves {logdir} at {url}", flush=True)
            print("Open the Feature Maps tab. Ctrl-C stops it.", flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _wait_ready(proc: subprocess.Popen, url: str, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(url + "data/plugins_listing", timeout=2).read()
            return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    return False


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", default=DEFAULT_LOGDIR, help=f"default: {DEFAULT_LOGDIR}")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"default: {DEFAULT_STEPS}")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default: {DEFAULT_PORT}")
    parser.add_argument("--no-serve", action="store_true", help="train only, do not start TensorBoard")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    if not args.no_serve and not 0 < args.port < 65536:
        parser.error(f"--port must be in 1..65535, got {args.port}")
    if not args.no_serve and port_in_use(args.port):
        parser.error(f"port {args.port} is in use; pick another with --port (make demo PORT=...)")

    start = time.monotonic()
    run_dir = run_all(args.logdir, steps=args.steps, progress=True)
    print(f"trained {args.steps} steps in {time.monotonic() - start:.0f}s; logs in {run_dir}", flush=True)
    return serve_unless(args.no_serve, args.logdir, args.port)


if __name__ == "__main__":
    sys.exit(main())
