"""Candidates for the writer's per-map work, side by side, idle and with every core busy.

The per-map statistics, the uint8 quantisation and the compression of the tutorial's
AlexNet conv layers (``common.alexnet_outputs``, ``max_size=64`` as by default), done three
ways on the same activations:

- **torch** (tb_featmap 0.1.0): about twenty small torch ops per layer, with torch's
  default thread count. Each is an intra-op parallel kernel whose threads wait for cores.
- **torch, 1 thread**: the same inside ``torch.set_num_threads(1)``, restored afterwards.
  That setting is process-wide: it would also slow any other thread of the training
  process that runs torch ops meanwhile, so it is measured here, not used.
- **numpy** (``summary._encode_maps``, what ``log_feature_maps`` does now): numpy on the
  calling thread, block by block in the CPU cache; float32 sums where they cannot
  overflow, float64 otherwise.

torch's default thread count throughout (nothing here sets it, except candidate 2 inside its
own scope). Each layer is timed per call; the table gives median and worst of the five-layer
step, idle and with one spinning process per core (``common.busy_cores``).

Usage::

    python benchmarks/bench_stats.py [--quick] [--repeats N]
"""

import argparse
import contextlib
import sys
import time
from typing import Callable, Dict, List, Optional

import common

__all__ = ["torch_encode", "main"]


def torch_encode(maps, max_size: Optional[int] = 64):
    """tb_featmap 0.1.0's per-layer work, in torch: stats, downsample, quantise, deflate."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from isal import isal_zlib

    maps = maps.float()
    n, c, h, w = maps.shape
    flat = maps.reshape(n * c, h * w)
    size = flat.shape[1]
    zero_fraction = (size - torch.count_nonzero(flat, dim=1)) / size
    mean = flat.mean(dim=1)
    std = (flat - mean[:, None]).square_().mean(dim=1).sqrt_()
    finite = bool(torch.isfinite(std).all())
    lo, hi = flat.amin(dim=1), flat.amax(dim=1)
    stats = torch.stack([lo, hi, mean, std, zero_fraction.float(), torch.zeros_like(mean)], 1)
    if max_size is not None and max(h, w) > max_size:
        factor = -(-max(h, w) // max_size)
        maps = F.adaptive_avg_pool2d(maps, (-(-h // factor), -(-w // factor)))
    n, c, h, w = maps.shape
    span = (hi - lo)[:, None]
    scale = torch.where(span > 0, 254 / span, torch.zeros_like(span))
    codes = ((maps.reshape(n * c, h * w) - lo[:, None]) * scale).round_().clamp_(0, 254)
    if not finite:
        codes = torch.where(torch.isfinite(maps.reshape(n * c, -1)), codes, 255.0)
    codes = codes.to(torch.uint8).reshape(n * c * h, w)
    delta = codes.clone()
    delta[:, 1:] -= codes[:, :-1]
    data = isal_zlib.compress(np.ascontiguousarray(delta.numpy()), 1)
    return stats.numpy(), data


@contextlib.contextmanager
def one_torch_thread():
    """torch.set_num_threads(1) for the block, then back: process-wide while it lasts."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def numpy_encode(maps, max_size: Optional[int] = 64):
    """What log_feature_maps does now: summary._encode_maps on the host float32 maps."""
    from tb_featmap import summary

    host, _ = summary._host_float32("x", maps)
    n, c, h, w = host.shape
    _, out = summary._plan_downsample(h, w, max_size)
    stats, data, _ = summary._encode_maps(host, 1, out, "uint8")
    return stats, data


def time_steps(layers: List, encode: Callable, repeats: int, scope=contextlib.nullcontext):
    """Seconds per five-layer step, ``repeats`` times (after one warm-up step)."""
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        with scope():
            for maps in layers:
                encode(maps)
        if i:
            times.append(time.perf_counter() - start)
    return times


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=40, help="timed steps per cell (default 40)")
    parser.add_argument("--quick", action="store_true", help="10 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 10
    if args.repeats < 1:
        parser.error("--repeats must be positive")

    import numpy as np

    print(f"# bench_stats: {common.machine()}")
    layers = list(common.alexnet_outputs(seed=0).values())
    print(f"AlexNet conv layers, {sum(x.shape[1] for x in layers)} maps a step; "
          f"{args.repeats} steps per cell, ms per step (5 layers)\n")
    candidates = [
        ("torch (0.1.0), default threads", torch_encode, contextlib.nullcontext),
        ("torch, scoped set_num_threads(1)", torch_encode, one_torch_thread),
        ("numpy, blocks (ours)", numpy_encode, contextlib.nullcontext),
    ]
    results: Dict[str, Dict[str, List[float]]] = {}
    for load in ("idle", "busy"):
        scope = common.busy_cores() if load == "busy" else contextlib.nullcontext()
        with scope:
            for _ in range(2):  # two interleaved halves: load drifts alike for all
                for name, encode, thread_scope in candidates:
                    times = time_steps(layers, encode, -(-args.repeats // 2), thread_scope)
                    results.setdefault(name, {}).setdefault(load, []).extend(times)

    print("| candidate | idle median | idle worst | busy median | busy worst |")
    print("|---|---:|---:|---:|---:|")
    for name, by_load in results.items():
        cells = [f"{f(by_load[load]) * 1e3:.2f}" for load in ("idle", "busy")
                 for f in (common.median, common.worst)]
        print(f"| {name} | " + " | ".join(cells) + " |")
    base = results[candidates[0][0]]
    print()
    for name, by_load in list(results.items())[1:]:
        for load in ("idle", "busy"):
            print(common.ratio_line(f"{name} / torch default threads, {load}, median",
                                    common.median(by_load[load]), common.median(base[load]),
                                    smaller="faster", larger="slower"))

    worst_stats = worst_size = 0.0
    for maps in layers:
        (s0, d0), (s1, d1) = torch_encode(maps), numpy_encode(maps)
        worst_stats = max(worst_stats, float(np.nanmax(np.abs(s0 - s1) / (np.abs(s0) + 1e-6))))
        worst_size = max(worst_size, len(d1) / len(d0))
    print(f"\nlargest relative difference of the statistics, torch vs numpy: {worst_stats:.1e}; "
          f"compressed size numpy/torch, largest over the layers: {worst_size:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
