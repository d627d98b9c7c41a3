"""Helpers shared by the benchmarks: the tutorial's AlexNet activations and small statistics.

Run the benchmarks as scripts (``python benchmarks/bench_writer.py``); this module sits next
to them and is imported as ``common``.
"""

import contextlib
import glob
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Dict, Iterator, Sequence

if TYPE_CHECKING:
    import torch

__all__ = [
    "LAYERS",
    "alexnet_outputs",
    "busy_cores",
    "event_bytes",
    "machine",
    "median",
    "p90",
    "worst",
    "ms",
    "ratio_line",
]

# The classic tutorial's layers: every conv of AlexNet.features (1,152 channels in all).
LAYERS = ("features.0", "features.3", "features.6", "features.8", "features.10")


def alexnet_outputs(seed: int = 0) -> Dict[str, "torch.Tensor"]:
    """The recorded conv outputs of an untrained AlexNet on the Grace Hopper photo.

    torchvision's AlexNet with ``weights=None`` (nothing is downloaded), in eval mode, its
    weights drawn after ``torch.manual_seed(seed)``; the input is matplotlib's bundled
    ``grace_hopper.jpg`` resized to 224 x 224 and ImageNet-normalised.

    Args:
        seed: The torch seed for the weights. Default 0.

    Returns:
        Layer name to its ``[1, C, H, W]`` output, for each name in ``LAYERS``.
    """
    import numpy as np
    import torch
    import torchvision
    from matplotlib import cbook
    from PIL import Image

    from tb_featmap import FeatureMapRecorder

    torch.manual_seed(seed)
    model = torchvision.models.alexnet(weights=None).eval()
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        image = Image.open(f).convert("RGB").resize((224, 224), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    x = ((x - mean) / std)[None]
    with torch.no_grad(), FeatureMapRecorder(model, list(LAYERS)) as recorder:
        model(x)
    return dict(recorder.outputs)


@contextlib.contextmanager
def busy_cores(seconds: float = 600) -> Iterator[int]:
    """Keep every core busy while the block runs, as DataLoader workers keep a training box.

    One spinning Python process per CPU, each of which exits by itself after ``seconds`` (so
    none outlives a killed benchmark for long); all are stopped by process id on exit.

    Yields:
        The number of burner processes.
    """
    spin = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass"
    burners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(os.cpu_count() or 1)]
    try:
        time.sleep(0.5)  # let the scheduler spread them over the cores
        yield len(burners)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def worst(values: Sequence[float]) -> float:
    return max(values)


def event_bytes(logdir: str) -> int:
    """Total size of the event files directly in ``logdir``."""
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(logdir, "events.out.tfevents.*")))


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def p90(values: Sequence[float]) -> float:
    """The 90th percentile, nearest-rank (the largest value for fewer than 10)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, -(-9 * len(ordered) // 10) - 1))]


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds >= 0.01 else f"{seconds * 1e3:.2f} ms"


def ratio_line(label: str, ours: float, theirs: float, *, smaller: str, larger: str) -> str:
    """``label: 0.012 (83x faster)``: ours / theirs, and how many times better or worse."""
    r = ours / theirs
    if r == 0:
        return f"{label}: 0"
    if r <= 1:
        times = 1 / r
        return f"{label}: {r:.3f} ({times:.0f}x {smaller})" if times >= 10 else \
            f"{label}: {r:.3f} ({times:.1f}x {smaller})"
    return f"{label}: {r:.2f}x ({larger})"


def machine() -> str:
    """One line: date, CPU count, Python, torch."""
    import torch

    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()}), Python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )

