"""Micro-benchmark of the writer's hot spot: per-map statistics (``tb_featmap.summary._stats``).

bench_writer.py's profile puts about half of a ``log_feature_maps`` step in ``_stats``, mostly
``torch.std_mean`` and ``torch.aminmax``. This times each torch op of ``_stats`` against a
cheaper equivalent on the same AlexNet activations, checks that they agree, and compares the whole
current ``_stats`` with candidates built from the cheaper ops, in torch and in numpy (which
never uses torch's thread pool). 1 torch thread by default; ``--threads 0`` keeps torch's
default, which on a busy machine shows what the OpenMP pool costs.

Usage::

    python benchmarks/bench_stats.py [--quick] [--repeats N] [--threads N]
"""

import argparse
import sys
import time
from typing import Callable, List, Optional

import common

__all__ = ["candidate_stats", "numpy_stats", "main"]


def candidate_stats(flat):
    """What ``summary._stats`` computes for all-finite rows, with two-pass mean/std and
    separate amin/amax. (Rows with NaN or inf still need the exact path of ``_stats``.)"""
    import torch

    size = flat.shape[1]
    zero_fraction = (flat == 0).sum(dim=1) / size
    mean = flat.mean(dim=1)
    std = (flat - mean[:, None]).square_().mean(dim=1).sqrt_()
    lo, hi = flat.amin(dim=1), flat.amax(dim=1)
    return torch.stack([lo, hi, mean, std, zero_fraction.float(), torch.zeros_like(mean)], dim=1)


def numpy_stats(flat):
    """``candidate_stats`` in numpy: single-threaded whatever torch's thread settings."""
    import numpy as np
    import torch

    a = flat.numpy()
    mean = a.mean(axis=1)
    std = np.sqrt(np.square(a - mean[:, None]).mean(axis=1))
    zero_fraction = (a == 0).sum(axis=1) / a.shape[1]
    stats = np.stack([a.min(axis=1), a.max(axis=1), mean, std, zero_fraction,
                      np.zeros_like(mean)], axis=1)
    return torch.from_numpy(stats.astype(np.float32, copy=False))


def timed(flats: List, fn: Callable, repeats: int) -> float:
    """Median seconds to apply ``fn`` to every layer once."""
    for flat in flats:
        fn(flat)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for flat in flats:
            fn(flat)
        times.append(time.perf_counter() - start)
    return common.median(times)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=60, help="timed repeats (default 60)")
    parser.add_argument("--quick", action="store_true", help="20 repeats")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads (default 1; 0 keeps torch's default)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 20
    if args.repeats < 1 or args.threads < 0:
        parser.error("--repeats must be positive and --threads at least 0")

    import torch

    from tb_featmap import summary

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# bench_stats: {common.machine()}")
    outputs = common.alexnet_outputs(seed=0)
    flats = [x.float().reshape(x.shape[0] * x.shape[1], -1) for x in outputs.values()]
    print(f"{sum(f.shape[0] for f in flats)} maps, {sum(f.numel() for f in flats)} values per step, "
          f"median of {args.repeats} repeats, ms per step (5 layers)\n")

    pairs = [
        ("mean and std", lambda f: torch.std_mean(f, dim=1, correction=0),
         lambda f: (f.mean(dim=1), (f - f.mean(dim=1)[:, None]).square_().mean(dim=1).sqrt_()),
         "torch.std_mean", "two-pass mean, std"),
        ("min and max", lambda f: torch.aminmax(f, dim=1),
         lambda f: (f.amin(dim=1), f.amax(dim=1)), "torch.aminmax", "amin, amax"),
        ("zero count", lambda f: torch.count_nonzero(f, dim=1),
         lambda f: (f == 0).sum(dim=1), "torch.count_nonzero", "(f == 0).sum"),
        ("whole _stats", lambda f: summary._stats(f), candidate_stats,
         "summary._stats", "candidate_stats"),
        ("whole _stats", lambda f: summary._stats(f), numpy_stats,
         "summary._stats", "numpy_stats"),
    ]
    print("| what | now | ms | candidate | ms | candidate/now |\n|---|---|---:|---|---:|---:|")
    for what, now, cand, now_name, cand_name in pairs:
        t_now, t_cand = timed(flats, now, args.repeats), timed(flats, cand, args.repeats)
        print(f"| {what} | `{now_name}` | {t_now * 1e3:.2f} | `{cand_name}` | {t_cand * 1e3:.2f} | "
              f"{t_cand / t_now:.2f} |")

    for candidate in (candidate_stats, numpy_stats):
        worst = max(float((summary._stats(f)[0] - candidate(f)).abs().max()) for f in flats)
        print(f"\nlargest difference between summary._stats and {candidate.__name__}: {worst:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
