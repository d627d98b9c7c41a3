"""Writer benchmark: the classic "visualise AlexNet's feature maps" tutorial vs tb_featmap.

One process, one set of activations (untrained AlexNet, seed 0, the Grace Hopper photo,
the outputs of features.0/3/6/8/10 recorded with ``FeatureMapRecorder``), logged three ways,
each into a fresh ``torch.utils.tensorboard.SummaryWriter`` logdir, each step ending in
``writer.flush()``:

- **A** the tutorial: per layer a matplotlib figure (default figsize, Agg) of 12 channels in
  3 x 4 ``imshow`` subplots without axes, then ``writer.add_figure`` (which closes it).
- **B** ``torchvision.utils.make_grid`` of all channels of a layer (``normalize=True``, as
  ``(C, 1, H, W)``), then ``writer.add_image``.
- **C** ``tb_featmap.log_feature_maps(writer, outputs, step)``: all 1,152 channels
  (and **C16**, the same with ``precision="float16"``).

``log_feature_maps`` makes TensorBoard's record writer use a native CRC32C on first use,
which speeds A and B up too. So A and B are measured with both: first with TensorBoard's
pure-Python CRC, as users have it today, before any ``log_feature_maps`` call (phase 1); then,
in phase 2, with the native CRC, which isolates the rendering work, and again with the
pure-Python CRC swapped back in for just those steps ("interleaved"), because phase 1 ran
minutes earlier on a machine whose load changes. Within a phase ways are interleaved round
by round, so a noisy machine slows them alike.

Phase 3 repeats A, C and C16 (native CRC) with every core busy: one spinning process per
CPU (``common.busy_cores``), as DataLoader workers keep a training machine busy. torch runs
with its **default** thread count throughout: nothing here sets it. The worst call of the
busy run is reported beside its median.

Last, throughput as layers grow: ``log_feature_maps(..., max_size=None)`` of AlexNet's
features.0 on the photo at growing input sizes (0.5 to 32 MB of activations), idle and busy,
in ms per MB of activations, beside a plain copy of the same tensor.

Usage::

    python benchmarks/bench_writer.py            # 10 steps of A, 50 of B/C per phase
    python benchmarks/bench_writer.py --quick    # a smoke run, about a minute
    python benchmarks/bench_writer.py --steps 100
"""

import argparse
import cProfile
import contextlib
import io
import math
import os
import pstats
import sys
import tempfile
import time
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import common

__all__ = ["Way", "main"]

A_CHANNELS = 12  # the tutorial's 3 x 4 subplots per layer


class Way:
    """One way of logging the activations, its own writer, and what it measured."""

    def __init__(self, name: str, label: str, root: str, log_step: Callable, channels: int,
                 crc: Optional[Callable] = None):
        from torch.utils.tensorboard import SummaryWriter

        self.name = name
        self.label = label
        self.logdir = os.path.join(root, name)
        self.writer = SummaryWriter(self.logdir)
        self._log_step = log_step
        self.channels = channels
        self._crc = crc  # the record writer's checksum for this way's steps; None: leave it
        self.times: List[float] = []
        self.bytes: List[int] = []
        self._step = 0

    def step(self, measure: bool = True) -> None:
        """Log one step and flush; record its time and how much the event file grew."""
        if self._crc is not None:
            from tensorboard.summary.writer import record_writer

            record_writer.masked_crc32c = self._crc  # steps end in flush(): nothing pending
        before = common.event_bytes(self.logdir)
        start = time.perf_counter()
        self._log_step(self.writer, self._step)
        self.writer.flush()
        elapsed = time.perf_counter() - start
        self._step += 1
        if measure:
            self.times.append(elapsed)
            self.bytes.append(common.event_bytes(self.logdir) - before)

    def row(self) -> Dict[str, float]:
        return {
            "median": common.median(self.times),
            "p90": common.p90(self.times),
            "bytes": sum(self.bytes) / len(self.bytes),
            "steps": len(self.times),
        }

    def close(self) -> None:
        self.writer.close()


def tutorial_step(outputs) -> Callable:
    """Way A: per layer a figure of the first 12 channels, logged with add_figure."""
    import matplotlib.pyplot as plt

    def log(writer, step: int) -> None:
        for name, x in outputs.items():
            fig = plt.figure()
            for i in range(A_CHANNELS):
                ax = fig.add_subplot(3, 4, i + 1)
                ax.imshow(x[0, i].numpy())
                ax.axis("off")
            writer.add_figure(name, fig, step)

    return log


def grid_step(outputs) -> Callable:
    """Way B: make_grid of every channel of a layer, logged with add_image."""
    import torchvision

    def log(writer, step: int) -> None:
        for name, x in outputs.items():
            grid = torchvision.utils.make_grid(x[0][:, None], normalize=True)
            writer.add_image(name, grid, step)

    return log


def featmap_step(outputs, precision: str = "uint8") -> Callable:
    """Way C: tb_featmap.log_feature_maps, every channel."""
    from tb_featmap import log_feature_maps

    def log(writer, step: int) -> None:
        log_feature_maps(writer, outputs, step, precision=precision)

    return log


def run_rounds(ways: List[Tuple[Way, int]], rounds: int, warmup: int) -> None:
    """Warm each way up, then run ``rounds`` rounds; per round each way takes its count of steps."""
    for way, _ in ways:
        for _ in range(warmup):
            way.step(measure=False)
    for _ in range(rounds):
        for way, per_round in ways:
            for _ in range(per_round):
                way.step()


def crc_in_use() -> str:
    from tensorboard.summary.writer import record_writer

    fn = record_writer.masked_crc32c
    return f"{fn.__module__}.{fn.__name__}"


@contextlib.contextmanager
def timed_sections(totals: Dict[str, float]) -> Iterator[None]:
    """Time tb_featmap's encode stages and the event write while the block runs.

    Wraps the module-level helpers of ``tb_featmap.summary`` (looked up at call time, so
    the wrappers take effect) and ``EventSink.add_summary``; restores them afterwards.
    """
    from tb_featmap import _writers, summary

    targets = [
        (summary, "_host_float32", "to host float32"),
        (summary, "_block_stats", "stats (min/max/mean/std)"),
        (summary, "_downsample", "downsample"),
        (summary, "_quantize", "quantize + delta"),
        (_writers.EventSink, "add_summary", "serialize + enqueue event"),
    ]
    saved = []
    for owner, attr, label in targets:
        original = getattr(owner, attr)
        saved.append((owner, attr, original))
        totals.setdefault(label, 0.0)

        def wrapper(*args, _original=original, _label=label, **kwargs):
            start = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                totals[_label] += time.perf_counter() - start

        setattr(owner, attr, wrapper)
    try:
        yield
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)


def breakdown(outputs, root: str, steps: int, precision: str = "uint8") -> List[Tuple[str, float]]:
    """Where one C step goes: encode stages, event write, flush (CRC + file write)."""
    from torch.utils.tensorboard import SummaryWriter

    from tb_featmap import log_feature_maps

    writer = SummaryWriter(os.path.join(root, f"breakdown-{precision}"))
    log_feature_maps(writer, outputs, 0, precision=precision)
    writer.flush()
    totals: Dict[str, float] = {}
    call = flush = 0.0
    with timed_sections(totals):
        for step in range(1, steps + 1):
            start = time.perf_counter()
            log_feature_maps(writer, outputs, step, precision=precision)
            middle = time.perf_counter()
            writer.flush()
            end = time.perf_counter()
            call += middle - start
            flush += end - middle
    writer.close()
    stages = [(label, total / steps) for label, total in totals.items() if total > 0]
    inside = sum(t for _, t in stages)
    rows = stages + [
        ("other (deflate, checks, header, proto)", call / steps - inside),
        ("flush (CRC32C + file write)", flush / steps),
    ]
    return rows


def profile_c(outputs, root: str, steps: int, top: int = 14) -> str:
    """cProfile of C steps: the top functions by own time."""
    from torch.utils.tensorboard import SummaryWriter

    from tb_featmap import log_feature_maps

    writer = SummaryWriter(os.path.join(root, "profile"))
    log_feature_maps(writer, outputs, 0)
    writer.flush()
    profiler = cProfile.Profile()
    profiler.enable()
    for step in range(1, steps + 1):
        log_feature_maps(writer, outputs, step)
        writer.flush()
    profiler.disable()
    writer.close()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def crc_cost(sizes: Dict[str, float], python_crc: Callable, repeats: int = 3) -> str:
    """What CRC32C costs per step for records of these sizes, pure-Python vs native."""
    from tb_featmap._crc import masked_crc32c as native_crc

    parts = []
    for name, size in sizes.items():
        data = os.urandom(int(size))
        costs = []
        for crc in (python_crc, native_crc):
            start = time.perf_counter()
            for _ in range(repeats):
                crc(data)
            costs.append((time.perf_counter() - start) / repeats)
        parts.append(f"{name} {costs[0] * 1e3:.1f} ms vs {costs[1] * 1e3:.2f} ms")
    return "CRC32C of one step's bytes, pure-Python vs native: " + "; ".join(parts)


def conv1_output(megabytes: float):
    """AlexNet's features.0 (64 channels) on the photo, resized so the output is about this big."""
    import numpy as np
    import torch
    import torchvision
    from matplotlib import cbook
    from PIL import Image

    side = round(math.sqrt(megabytes * 2**20 / (64 * 4)))
    size = 4 * (side - 1) + 7  # features.0: kernel 11, stride 4, padding 2
    torch.manual_seed(0)
    conv = torchvision.models.alexnet(weights=None).features[0].eval()
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        image = Image.open(f).convert("RGB").resize((size, size), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        return conv((x - 0.45) / 0.225)


def throughput_table(root: str, repeats: int) -> str:
    """ms/MB of log_feature_maps(max_size=None) and of a copy, idle and busy."""
    from torch.utils.tensorboard import SummaryWriter

    from tb_featmap import log_feature_maps

    writer = SummaryWriter(os.path.join(root, "throughput"))
    layers = [conv1_output(mb) for mb in (0.5, 2, 8, 32)]
    step = [0]

    def per_mb(x, fn) -> float:
        megabytes = x.numel() * x.element_size() / 2**20
        times = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - start)
        return common.median(times[1:]) * 1e3 / megabytes

    def log(x) -> None:
        log_feature_maps(writer, {"features.0": x}, step[0], max_size=None)
        writer.flush()
        step[0] += 1

    rows = {}
    for load in ("idle", "busy"):
        scope = common.busy_cores() if load == "busy" else contextlib.nullcontext()
        with scope:
            for x in layers:
                rows.setdefault(tuple(x.shape), []).extend([per_mb(x, log), per_mb(x, plain_copy)])
    writer.close()
    lines = ["| layer | MB | ours idle | copy idle | ours busy | copy busy |",
             "|---|---:|---:|---:|---:|---:|"]
    for shape, (ours_i, copy_i, ours_b, copy_b) in rows.items():
        megabytes = math.prod(shape) * 4 / 2**20
        lines.append(f"| {shape} | {megabytes:.1f} | {ours_i:.2f} | {copy_i:.2f} | {ours_b:.2f} | "
                     f"{copy_b:.2f} |")
    return "\n".join(lines)


def plain_copy(x) -> None:
    x.numpy().copy()


def table(rows: List[Tuple[str, Way]]) -> str:
    lines = [
        "| way | CRC32C | median ms/step | p90 ms/step | KB/step | channels | steps |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for crc, way in rows:
        r = way.row()
        lines.append(
            f"| {way.label} | {crc} | {r['median'] * 1e3:.1f} | {r['p90'] * 1e3:.1f} | "
            f"{r['bytes'] / 1024:.0f} | {way.channels} | {r['steps']} |"
        )
    return "\n".join(lines)


def ratio_lines(prefix: str, ours: Way, theirs: Way) -> List[str]:
    o, t = ours.row(), theirs.row()
    return [
        common.ratio_line(f"{prefix} time", o["median"], t["median"], smaller="faster", larger="slower"),
        common.ratio_line(f"{prefix} bytes", o["bytes"], t["bytes"], smaller="smaller", larger="larger"),
        f"{prefix} channels: {ours.channels / theirs.channels:.1f}x "
        f"({ours.channels} vs {theirs.channels})",
    ]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50,
                        help="measured steps of B and C per CRC phase; A gets a fifth (default 50)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured steps per way (default 2)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run (10 steps, 1 warm-up, short profile): under a minute")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile section")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.warmup = 10, 1
    if args.steps < 5 or args.warmup < 0:
        parser.error("--steps must be at least 5, --warmup at least 0")
    per_round = 5  # B/C steps per A step: A is the slow one
    rounds = -(-args.steps // per_round)

    import matplotlib

    matplotlib.use("Agg")
    import torch
    import torchvision  # noqa: F401  (imported before timing starts)

    started = time.perf_counter()
    outputs = common.alexnet_outputs(seed=0)
    channels = sum(x.shape[1] for x in outputs.values())
    print(f"# bench_writer: {common.machine()}")
    print("AlexNet (weights=None, seed 0) on grace_hopper.jpg: "
          + ", ".join(f"{k} {tuple(v.shape)}" for k, v in outputs.items()))
    print(f"{rounds} rounds: per round 1 step of A, {per_round} of each other way; "
          f"warm-up {args.warmup} per way; each step includes writer.flush()\n")

    with tempfile.TemporaryDirectory(prefix="bench_writer-") as root:
        # Phase 1: TensorBoard's pure-Python CRC, before anything of tb_featmap writes.
        from tensorboard.summary.writer import record_writer

        python_crc, python_crc_fn = crc_in_use(), record_writer.masked_crc32c
        a_py = Way("A-pycrc", "A tutorial (12 ch/layer, add_figure)", root, tutorial_step(outputs),
                   A_CHANNELS * len(outputs))
        b_py = Way("B-pycrc", "B make_grid + add_image", root, grid_step(outputs), channels)
        run_rounds([(a_py, 1), (b_py, per_round)], rounds, args.warmup)

        # Phase 2: the native CRC that log_feature_maps installs. Phases 1 and 2 run minutes
        # apart on a machine whose load changes, so phase 2 also repeats A and B with the
        # pure-Python CRC, swapped back in for just their steps, interleaved with the rest.
        from tb_featmap._crc import install_for_writer

        native = install_for_writer()
        native_crc, native_crc_fn = crc_in_use(), record_writer.masked_crc32c
        a_pyi = Way("A-pycrc-interleaved", a_py.label, root, tutorial_step(outputs), a_py.channels,
                    crc=python_crc_fn)
        b_pyi = Way("B-pycrc-interleaved", b_py.label, root, grid_step(outputs), channels,
                    crc=python_crc_fn)
        a = Way("A", a_py.label, root, tutorial_step(outputs), a_py.channels, crc=native_crc_fn)
        b = Way("B", b_py.label, root, grid_step(outputs), channels, crc=native_crc_fn)
        c = Way("C", "C tb_featmap log_feature_maps", root, featmap_step(outputs), channels,
                crc=native_crc_fn)
        c16 = Way("C16", "C16 log_feature_maps float16", root, featmap_step(outputs, "float16"),
                  channels, crc=native_crc_fn)
        run_rounds([(a_pyi, 1), (a, 1), (b_pyi, per_round), (b, per_round), (c, per_round),
                    (c16, per_round)], rounds, args.warmup)

        # Phase 3: every core busy.
        a_busy = Way("A-busy", a_py.label, root, tutorial_step(outputs), a_py.channels,
                     crc=native_crc_fn)
        c_busy = Way("C-busy", c.label, root, featmap_step(outputs), channels, crc=native_crc_fn)
        c16_busy = Way("C16-busy", c16.label, root, featmap_step(outputs, "float16"), channels,
                       crc=native_crc_fn)
        with common.busy_cores() as burners:
            run_rounds([(a_busy, 1), (c_busy, per_round), (c16_busy, per_round)], rounds,
                       args.warmup)
        record_writer.masked_crc32c = native_crc_fn
        for way in (a_py, b_py, a_pyi, b_pyi, a, b, c, c16, a_busy, c_busy, c16_busy):
            way.close()

        nat_name = "native" if native else "python (native unavailable)"
        print(f"CRC32C phase 1: {python_crc}\nCRC32C phase 2: {native_crc}, and "
              f"{python_crc} swapped back in for the 'interleaved' rows\n")
        print(table([("python, phase 1", a_py), ("python, phase 1", b_py),
                     ("python, interleaved", a_pyi), ("python, interleaved", b_pyi),
                     (nat_name, a), (nat_name, b), (nat_name, c), (nat_name, c16),
                     (f"{nat_name}, busy", a_busy), (f"{nat_name}, busy", c_busy),
                     (f"{nat_name}, busy", c16_busy)]))
        print()
        lines = (
            ratio_lines("C/A (A with pure-Python CRC as users have it, interleaved)", c, a_pyi)
            + ratio_lines("C/A (A with pure-Python CRC, phase 1)", c, a_py)
            + ratio_lines("C/A (both native CRC)", c, a)
            + ratio_lines("C/B (B with pure-Python CRC, interleaved)", c, b_pyi)
            + ratio_lines("C/B (both native CRC)", c, b)
            + ratio_lines("C16/A (both native CRC)", c16, a)
            + ratio_lines(f"busy ({burners} burners): C/A (both native CRC)", c_busy, a_busy)
            + ratio_lines(f"busy ({burners} burners): C16/A (both native CRC)", c16_busy, a_busy)
        )
        print("\n".join(lines))
        print(crc_cost({w.name: w.row()["bytes"] for w in (a, b, c)}, python_crc_fn))

        c_row, a_row = c.row(), a.row()
        time_share = c_row["median"] / a_row["median"]
        bytes_ratio = c_row["bytes"] / a_row["bytes"]
        channels_ratio = c.channels / a.channels
        print("\nTargets (issue 2), against A with the native CRC (the stricter comparison):")
        print(f"- C time/step <= 2% of A's (aim 1%): {time_share:.2%} -> "
              f"{'met' if time_share <= 0.02 else 'NOT met'}"
              f"{' (aim met too)' if time_share <= 0.01 else ''}; against A with pure-Python CRC: "
              f"{c_row['median'] / a_pyi.row()['median']:.2%} interleaved, "
              f"{c_row['median'] / a_py.row()['median']:.2%} phase 1")
        print(f"- C bytes/step <= 2x A's: {bytes_ratio:.2f}x -> "
              f"{'met' if bytes_ratio <= 2 else 'NOT met'}, with {channels_ratio:.1f}x the channels")
        busy_share = c_busy.row()["median"] / a_busy.row()["median"]
        spread = common.worst(c_busy.times) / c_busy.row()["median"]
        print("\nTargets (issue 15), torch's default threads, native CRC:")
        print(f"- idle: C/A <= 0.01: {time_share:.4f} -> {'met' if time_share <= 0.01 else 'NOT met'}")
        print(f"- busy: C/A <= 0.02 (aim 0.005): {busy_share:.4f} -> "
              f"{'met' if busy_share <= 0.02 else 'NOT met'}"
              f"{' (aim met too)' if busy_share <= 0.005 else ''}")
        print(f"- busy: worst C call <= 5x its median: {common.worst(c_busy.times) * 1e3:.1f} ms "
              f"= {spread:.1f}x the median {c_busy.row()['median'] * 1e3:.1f} ms -> "
              f"{'met' if spread <= 5 else 'NOT met'}")

        print("\nThroughput, log_feature_maps(max_size=None) of AlexNet features.0 at growing "
              "input sizes (ms per MB of activations, median of the calls):\n")
        print(throughput_table(root, repeats=3 if args.quick else 7))

        profile_steps = 5 if args.quick else 20
        print(f"\nWhere a C step goes ({profile_steps} steps, perf_counter sections, ms/step):\n")
        print("| section | uint8 | float16 |\n|---|---:|---:|")
        rows8 = breakdown(outputs, root, profile_steps)
        rows16 = dict(breakdown(outputs, root, profile_steps, "float16"))
        for label, seconds in rows8:
            print(f"| {label} | {seconds * 1e3:.2f} | {rows16.get(label, 0.0) * 1e3:.2f} |")
        print(f"| **total** | {sum(t for _, t in rows8) * 1e3:.2f} | "
              f"{sum(rows16.values()) * 1e3:.2f} |")
        if not args.no_profile:
            print(f"\ncProfile of {profile_steps} C steps (uint8), top functions by own time:\n")
            print(profile_c(outputs, root, profile_steps))
    print(f"total wall time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
