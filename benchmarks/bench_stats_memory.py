"""Memory and time of one ``/stats`` request on a huge linear layer (issue 10.3).

Writes one run: ``--steps`` steps (default 1,000) of a linear layer of 65,536 features
(layout NF, stored ``[1, 65536, 1, 1]``: 1.5 MiB of statistics per step). Then, for each
TensorBoard loader, starts a real ``tensorboard`` on a loopback port twice on the same
logdir: once with the plugin as it was at ``--baseline`` (a git revision, default the one
before streaming statistics; it held every step's statistics at once and stacked them), once
with this checkout's plugin. For each it measures, after loading:

- the peak resident memory (VmHWM, reset through ``/proc/PID/clear_refs`` just before) of
  the tensorboard process and of its children (the Rust data server) during one request,
  minus the resident memory before it: the request's peak growth;
- the time of the first request (nothing cached) and the median of ``--repeats`` more.

With ``--hostile``, it also measures this checkout's server (both loaders) on hostile steps:
the peak growth of one request on a step whose 1 MiB data blob inflates to 1 GiB under a
header that claims the largest size a reader accepts (``npy``, ``maps``, ``stats``); then
a bounded load test: ``--clients`` threads for ``--seconds`` seconds on loopback, each
looping over ``tags``, ``steps``, ``maps``, ``npy`` and ``stats`` of a small run and the
hostile one, with requests per second, p50/p99 latency, errors (any status >= 500 or a
failed connection) and memory before and after.

Usage::

    python benchmarks/bench_stats_memory.py            # 1,000 steps
    python benchmarks/bench_stats_memory.py --quick    # 200 steps
    python benchmarks/bench_stats_memory.py --hostile --steps 0   # only the hostile part
"""

import argparse
import concurrent.futures
import gzip
import os
import threading
import zlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

import common
from bench_server import get, rss_kib

REPO = Path(__file__).resolve().parent.parent
CHANNELS = 65536
TAG = "feature_maps/fc"
LOADERS = (("Rust data server (default)", ()), ("--load_fast=false", ("--load_fast=false",)))


def write_logdir(root: Path, steps: int) -> None:
    import torch
    from torch.utils.tensorboard import SummaryWriter

    from tb_featmap import log_feature_maps

    writer = SummaryWriter(str(root / "big"))
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(1, CHANNELS, generator=generator)
    for step in range(steps):
        log_feature_maps(writer, {"fc": base * (1 + step / steps)}, step)
    writer.close()


def step_count(port: int, path: str) -> int:
    """How many steps a `steps` route lists (0 while it is not there yet)."""
    status, body, _ = get(port, path)
    if status != 200:
        return 0
    return (gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body).count(b'"step"')


def pids(pid: int) -> List[int]:
    """A process and all its descendants."""
    result = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            result += [p for c in (task / "children").read_text().split() for p in pids(int(c))]
        except OSError:
            continue
    return result


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure(tb, steps: int, repeats: int) -> dict:
    path = f"/data/plugin/feature_maps/stats?run=big&tag={TAG}"
    everyone = pids(tb.proc.pid)
    before = {p: status_kib(p, "VmRSS") for p in everyone}
    for p in everyone:
        Path(f"/proc/{p}/clear_refs").write_text("5")  # VmHWM := VmRSS
    status, body, first = get(tb.port, path)
    assert status == 200, body[:300]
    peak = {p: status_kib(p, "VmHWM") - before[p] for p in everyone}
    times = [get(tb.port, path)[2] for _ in range(repeats)]
    return {
        "growth_tb_mib": peak[tb.proc.pid] / 1024,
        "growth_all_mib": sum(peak.values()) / 1024,
        "first_s": first,
        "median_s": common.median(times),
        "worst_s": max(times),
    }


def serve(logdir: Path, flags, steps: int, env) -> "object":
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from support import TensorBoardProcess
    finally:
        sys.path.remove(str(REPO / "tests"))
    tb = TensorBoardProcess(logdir, "--samples_per_plugin", "feature_maps=0", *flags, env=env)
    path = f"/data/plugin/feature_maps/steps?run=big&tag={TAG}"
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:  # wait until every step is loaded
        if step_count(tb.port, path) == steps:
            return tb
        time.sleep(1)
    tb.stop()
    raise RuntimeError("tensorboard did not load every step")


def write_hostile(root: Path) -> None:
    """Run ``hostile``: steps 0-3 good, step 4 a 1 MiB blob that inflates to 1 GiB."""
    import torch
    from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
    from torch.utils.tensorboard import SummaryWriter

    from tb_featmap import log_feature_maps, metadata, payload

    writer = SummaryWriter(str(root / "small"))
    for step in range(5):
        log_feature_maps(writer, {"conv": torch.rand(2, 8, 32, 32)}, step, max_samples=2)
    writer.close()
    header = payload.encode_header({
        "layout": "NCHW", "shape": [1, 1, 4096, 4096], "dtype": "torch.float32",
        "stored": [1, 1, 4096, 4096], "downsample": 1, "encoding": "float16",
        "compression": "deflate", "dropped": {}, "seq": 0,
    })
    stats = bytes(24)
    bomb = zlib.compress(bytes(1 << 30), 9)
    writer = EventFileWriter(str(root / "hostile"))
    for step in range(5):
        tensor = tensor_pb2.TensorProto(
            dtype=types_pb2.DT_STRING, string_val=[header, stats, bomb],
            tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=3)]),
        )
        value = summary_pb2.Summary.Value(
            tag="feature_maps/bomb", metadata=metadata.create_summary_metadata(), tensor=tensor
        )
        summary = summary_pb2.Summary(value=[value])
        writer.add_event(event_pb2.Event(step=step, wall_time=1.0 + step, summary=summary))
    writer.close()


def hostile_and_load(tmp: Path, clients: int, seconds: float) -> None:
    root = tmp / "hostile_logs"
    write_hostile(root)
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from support import TensorBoardProcess
    finally:
        sys.path.remove(str(REPO / "tests"))
    bomb = "run=hostile&tag=feature_maps/bomb"
    small = "run=small&tag=feature_maps/conv"
    route = "/data/plugin/feature_maps/"
    for loader, flags in LOADERS:
        tb = TensorBoardProcess(root, *flags)
        try:
            while step_count(tb.port, route + "steps?" + bomb) < 5:
                time.sleep(1)
            for path in ("npy?" + bomb + "&step=4", "maps?" + bomb + "&step=3", "stats?" + bomb):
                everyone = pids(tb.proc.pid)
                before = {p: status_kib(p, "VmRSS") for p in everyone}
                for p in everyone:
                    Path(f"/proc/{p}/clear_refs").write_text("5")
                status, body, seconds_taken = get(tb.port, route + path)
                growth = sum(status_kib(p, "VmHWM") - before[p] for p in everyone) / 1024
                print(f"{loader:28s} hostile {path.split('?')[0]:5s} -> {status}: peak growth "
                      f"{growth:6.1f} MiB (with children), {seconds_taken:.2f} s")
            paths = [route + p for p in (
                "tags", "steps?" + small, "maps?" + small + "&step=4", "npy?" + small + "&step=3",
                "stats?" + small, "npy?" + bomb + "&step=2", "maps?" + bomb + "&step=1",
                "stats?" + bomb,
            )]
            rss_before = rss_kib(tb.proc.pid) / 1024
            latencies, errors, lock = [], [0], threading.Lock()
            deadline = time.monotonic() + seconds

            def client(index):
                i = index
                while time.monotonic() < deadline:
                    try:
                        status, _, taken = get(tb.port, paths[i % len(paths)])
                        bad = status >= 500
                    except OSError:
                        status, taken, bad = 0, 0.0, True
                    with lock:
                        latencies.append(taken)
                        errors[0] += bad
                    i += 1

            start = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(clients) as pool:
                list(pool.map(client, range(clients)))
            elapsed = time.monotonic() - start
            ordered = sorted(latencies)
            p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
            print(f"{loader:28s} load: {clients} clients x {elapsed:.0f} s, "
                  f"{len(latencies)} requests "
                  f"({len(latencies) / elapsed:.0f}/s), p50 {common.ms(common.median(latencies))}, "
                  f"p99 {common.ms(p99)}, errors {errors[0]}, memory {rss_before:.0f} -> "
                  f"{rss_kib(tb.proc.pid) / 1024:.0f} MiB (with children)")
            output = tb.output()
            print(f"{loader:28s} tracebacks in the server's log: {output.count('Traceback')}, "
                  f"500s: {output.count(' 500 ')}")
        finally:
            tb.stop()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="200 steps, 1 repeat")
    parser.add_argument("--baseline", default="8181a97",
                        help="git revision of the baseline plugin ('': ours only)")
    parser.add_argument("--hostile", action="store_true", help="also hostile steps and a load test")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 200, 1
    print(common.machine())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.hostile:
            hostile_and_load(tmp, args.clients, args.seconds)
        if not args.steps:
            return
        start = time.perf_counter()
        write_logdir(tmp / "logs", args.steps)
        size = common.event_bytes(str(tmp / "logs" / "big")) >> 20
        print(f"wrote {args.steps} steps of a {CHANNELS}-feature linear layer in "
              f"{time.perf_counter() - start:.0f} s ({size} MiB)")
        baseline = tmp / "baseline"
        baseline.mkdir()
        archive = args.baseline and subprocess.run(
            ["git", "-C", str(REPO), "archive", args.baseline, "tb_featmap", "frontend"],
            check=True, capture_output=True,
        ).stdout
        if archive:
            subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive, check=True)
            (baseline / "frontend").rename(baseline / "tb_featmap" / "frontend")  # as installed
            (baseline / "tb_featmap" / "frontend" / "__init__.py").touch()
        # The baseline through PYTHONPATH; ours as installed (editable) in this environment.
        ways = (("baseline " + args.baseline, str(baseline)), ("ours", None))
        ways = ways if args.baseline else ways[1:]
        for loader, flags in LOADERS:
            results = {}
            for name, root in ways:
                env = dict(os.environ, PYTHONPATH=root) if root else None
                tb = serve(tmp / "logs", flags, args.steps, env)
                try:
                    results[name] = measure(tb, args.steps, args.repeats)
                finally:
                    tb.stop()
                r = results[name]
                print(f"{loader:28s} {name:18s} peak growth: "
                      f"tensorboard {r['growth_tb_mib']:7.1f} MiB, "
                      f"with children {r['growth_all_mib']:7.1f} MiB; first {r['first_s']:.2f} s, "
                      f"median {r['median_s']:.2f} s, worst {r['worst_s']:.2f} s")
            if not args.baseline:
                continue
            ours, base = results["ours"], results[ways[0][0]]
            print(common.ratio_line(f"{loader}: peak growth", ours["growth_all_mib"],
                                    base["growth_all_mib"], smaller="less", larger="more"))
            print(common.ratio_line(f"{loader}: first request", ours["first_s"], base["first_s"],
                                    smaller="faster", larger="slower"))


if __name__ == "__main__":
    main()
