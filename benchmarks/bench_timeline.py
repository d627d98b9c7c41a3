"""Timeline benchmark (issue 12): the ``series`` route and the tab's strip, on a real
``tensorboard`` and Debian's chromium.

Data: one run, one layer of ``(1, 512, 4, 4)`` maps logged at 1,000 steps (all kept:
``--samples_per_plugin feature_maps=0``), with a ``loss`` scalar. For each TensorBoard loader
(the Rust data server and ``--load_fast=false``):

- **series, cold**: the first ``/series`` of the layer after the server has loaded it (no
  cached step); then the first of each other statistic (steps' statistics cached, the
  answer not).
- **series, warm**: p50 / worst of ``--repeats`` requests of the same answer. Baseline: the
  ``/stats`` route over the same steps (the same blobs read, reduced to O(channels)). Both
  idle and with every core busy (one burner process per core, each bounded in time).
- **size**: bytes of the answer per value (4 is float32 itself).

Then, in chromium against the Rust data server:

- **statistic to strip**: from choosing a statistic in the menu to the painted strip (the
  tab's ``fm-timeline-painted`` event), each statistic once with its answer not yet in the
  tab (the server's cache warm, as after one visit).
- **scrubbing**: paint time per step with the timeline visible, every step prefetched
  (``fm-painted``'s ``ms`` for cached steps), against the frame budget of 16.7 ms.

Usage::

    python benchmarks/bench_timeline.py [--quick] [--repeats N]
"""

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

import common
import bench_server
from bench_server import get_ok, query, summarize, wait_until

REPO = Path(__file__).resolve().parent.parent
TAG = "feature_maps/wide"
STATS = ("min", "max", "mean", "std", "zero_fraction", "nonfinite")


def write_logdir(logdir: str, steps: int, channels: int = 512) -> None:
    import torch
    from torch.utils.tensorboard import SummaryWriter

    from tb_featmap import log_feature_maps

    writer = SummaryWriter(os.path.join(logdir, "run"))
    g = torch.Generator().manual_seed(0)
    for step in range(steps):
        x = torch.randn(1, channels, 4, 4, generator=g)
        x[:, : channels * step // (2 * steps)] = 0  # channels dying over training
        log_feature_maps(writer, {"wide": x}, step)
        writer.add_scalar("loss", 1.0 / (1 + step), step)
    writer.close()


def _burn(seconds: float) -> None:
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        x += 1


def busy(seconds: float) -> List[multiprocessing.Process]:
    """One burner process per core, each ending by itself after `seconds`."""
    procs = [multiprocessing.Process(target=_burn, args=(seconds,), daemon=True)
             for _ in range(os.cpu_count() or 1)]
    for p in procs:
        p.start()
    return procs


def bench_routes(tb, steps: int, repeats: int) -> None:
    port = tb.port
    series = lambda stat: query("/data/plugin/feature_maps/series", run="run", tag=TAG, stat=stat)
    stats = query("/data/plugin/feature_maps/stats", run="run", tag=TAG)
    body, cold = get_ok(port, series("std"))
    others = [get_ok(port, series(s))[1] for s in STATS if s != "std"]
    values = steps * 512
    print(f"| series, cold (first request) | {cold * 1e3:.0f} | | |")
    print(f"| series, cold (another statistic) | {common.median(others) * 1e3:.0f} | "
          f"{max(others) * 1e3:.0f} | |")
    for label, burners in (("idle", 0), ("every core busy", 1)):
        procs = busy(60) if burners else []
        try:
            ours = [get_ok(port, series("std"))[1] for _ in range(repeats)]
            theirs = [get_ok(port, stats)[1] for _ in range(repeats)]
        finally:
            for p in procs:
                p.terminate()
                p.join()
        o, t = summarize(ours), summarize(theirs)
        print(f"| series, warm, {label} | {o['p50'] * 1e3:.1f} | {max(ours) * 1e3:.1f} | "
              f"stats: {t['p50'] * 1e3:.1f} (worst {max(theirs) * 1e3:.1f}) |")
        print(common.ratio_line(f"series/stats p50 ({label})", o["p50"], t["p50"],
                                smaller="faster", larger="slower"))
    print(f"answer: {len(body)} bytes for {values} values = {len(body) / values:.3f} bytes/value "
          f"(target <= 5.0)")


def bench_browser(tb, steps: int) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    sys.path.insert(0, str(REPO / "tests" / "browser"))  # its conftest, not tests/conftest
    from playwright.sync_api import sync_playwright

    from conftest import CHROMIUM_ARGS, ensure_chromium, _open_tab

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=ensure_chromium(), headless=True,
                                             args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        frame = _open_tab(page, tb.url)
        frame.wait_for_function("window.fmApp && fmApp.timelineCount > 0", timeout=120000)
        times = []
        for stat in STATS:
            if stat == frame.input_value("#fm-timeline-stat"):
                continue
            count = frame.evaluate("fmApp.timelineCount")
            frame.evaluate("""(stat) => { window.fmLast = null;
              document.addEventListener('fm-timeline-painted',
                (e) => { window.fmLast = e.detail.ms; }, { once: true }); }""", stat)
            frame.select_option("#fm-timeline-stat", stat)
            frame.wait_for_function(f"fmApp.timelineCount > {count} && window.fmLast !== null",
                                    timeout=60000)
            times.append(frame.evaluate("window.fmLast"))
        print(f"| statistic to painted strip (chromium) | {common.median(times):.1f} | "
              f"{max(times):.1f} | target <= 100 ms |")
        frame.wait_for_function(
            "fmApp.steps.length && fmApp.steps.every(s => fmApp.model.peek('run', "
            f"'{TAG}', s.step, s.wall_time))", timeout=300000)
        scrub = frame.evaluate("""async (n) => {
          const out = [];
          for (let i = 0; i < n; i++) {
            const done = new Promise((r) => document.addEventListener('fm-painted',
              (e) => r(e.detail), { once: true }));
            fmApp.goTo((i * 37) % fmApp.steps.length);
            const d = await done;
            if (d.cached) out.push(d.ms);
          }
          return out; }""", 100)
        scrub.sort()
        print(f"| scrub one cached step, timeline visible (chromium) | "
              f"{scrub[len(scrub) // 2]:.1f} | {scrub[-1]:.1f} | frame: 16.7 ms |")
        browser.close()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 steps, 5 repeats")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args(argv)
    steps = 100 if args.quick else 1000
    repeats = 5 if args.quick else args.repeats
    print(f"# bench_timeline: {common.machine()}; {steps} steps x 512 channels")
    TensorBoardProcess = bench_server._tensorboard_process()
    with tempfile.TemporaryDirectory() as tmp:
        write_logdir(tmp, steps)
        for loader, flags in bench_server.LOADERS:
            tb = TensorBoardProcess(tmp, "--samples_per_plugin", "feature_maps=0", *flags)
            try:
                wait_until(lambda: bench_server.steps_loaded(tb.port, "run", TAG) == steps,
                           "every step loaded", timeout=600)
                print(f"\n{loader}:\n\n| measure | p50 ms | worst ms | baseline / target |")
                print("|---|---:|---:|---|")
                bench_routes(tb, steps, repeats)
                if not args.no_browser and not flags:
                    bench_browser(tb, steps)
            finally:
                tb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
