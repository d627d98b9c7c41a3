"""Logs on S3 vs local disk: a logging call, and read() of 100 steps.

An S3-protocol server on loopback (moto's standalone server, tests/s3server.py) stands in for
the bucket. The data are the tutorial's AlexNet activations (``common.alexnet_outputs``,
features.0/3/6/8/10, 1,152 channels). Measured with torch's default thread count, once on an
idle machine and once with every core busy (one burner process per CPU, each bounded in time):

- **write**: ``log_feature_maps(writer, outputs, step)`` then ``writer.flush()`` into a
  ``torch.utils.tensorboard.SummaryWriter`` on local disk and one on ``s3://``, interleaved
  step by step. The call alone and the call plus flush are timed apart: the call only queues
  the event, the flush writes (on S3, uploads) it. TensorBoard's S3 layer cannot append, so
  each flush uploads the whole event file again: the flush time grows with the file, shown
  as the first and last steps' times.
- **read**: ``tb_featmap.read(logdir)`` of the same event files (written locally, then
  uploaded byte for byte) from local disk and from the bucket, interleaved.

Usage::

    python benchmarks/bench_s3.py             # 30 write steps, read() of 100 steps, 3 repeats
    python benchmarks/bench_s3.py --quick     # a smoke run, about a minute
"""

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List

import common

__all__ = ["main"]

REPO = Path(__file__).resolve().parent.parent
BUCKET = "bench"


def _s3_server(log_dir: str):
    """tests/s3server.py's ``S3Server`` (moto on a free loopback port), env set here."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from s3server import S3Server
    finally:
        sys.path.remove(str(REPO / "tests"))
    server = S3Server(log_dir)
    os.environ.update(server.env)
    server.client().create_bucket(Bucket=BUCKET)
    return server


@contextlib.contextmanager
def busy_cores(enabled: bool, seconds: float) -> Iterator[None]:
    """One spinning process per CPU for at most ``seconds`` (each ends on its own), if enabled."""
    spin = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass"
    procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(os.cpu_count() or 1)] \
        if enabled else []
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def bench_write(outputs, root: str, steps: int, load: str) -> Dict[str, Dict[str, List[float]]]:
    """Per place (local, s3): seconds of each step's call and of its flush."""
    from torch.utils.tensorboard import SummaryWriter

    from tb_featmap import log_feature_maps

    writers = {
        "local": SummaryWriter(os.path.join(root, f"write-{load}")),
        "s3": SummaryWriter(f"s3://{BUCKET}/write-{load}"),
    }
    times = {place: {"call": [], "flush": []} for place in writers}
    for step in range(-2, steps):  # two warm-up steps
        for place, writer in writers.items():
            start = time.perf_counter()
            assert log_feature_maps(writer, outputs, step + 2)
            called = time.perf_counter()
            writer.flush()
            flushed = time.perf_counter()
            if step >= 0:
                times[place]["call"].append(called - start)
                times[place]["flush"].append(flushed - called)
    for writer in writers.values():
        writer.close()
    return times


def make_read_logdir(outputs, root: str, steps: int, server) -> Dict[str, str]:
    """``steps`` steps written locally, and the same files uploaded: {place: logdir}."""
    from torch.utils.tensorboard import SummaryWriter

    from tb_featmap import log_feature_maps

    local = os.path.join(root, "read")
    writer = SummaryWriter(os.path.join(local, "alexnet"))
    for step in range(steps):
        log_feature_maps(writer, outputs, step)
    writer.close()
    client = server.client()
    for path in Path(local).rglob("events.out.tfevents.*"):
        client.upload_file(str(path), BUCKET, f"read/{path.relative_to(local).as_posix()}")
    return {"local": local, "s3": f"s3://{BUCKET}/read"}


def bench_read(logdirs: Dict[str, str], steps: int, repeats: int) -> Dict[str, List[float]]:
    from tb_featmap import read

    times: Dict[str, List[float]] = {place: [] for place in logdirs}
    for _ in range(repeats):
        for place, logdir in logdirs.items():
            start = time.perf_counter()
            records = read(logdir)
            times[place].append(time.perf_counter() - start)
            assert len(records) == steps * len(common.LAYERS), (place, len(records))
    return times


def _summary(values: List[float]) -> str:
    return f"median {common.ms(common.median(values))}, worst {common.ms(max(values))}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--steps", type=int, help="logging calls measured (default 30, quick 5)")
    parser.add_argument("--read-steps", type=int, default=100, help="steps read() reads (100)")
    parser.add_argument("--repeats", type=int, help="read() repeats (default 3, quick 1)")
    args = parser.parse_args(argv)
    steps = args.steps or (5 if args.quick else 30)
    read_steps = 20 if args.quick and args.read_steps == 100 else args.read_steps
    repeats = args.repeats or (1 if args.quick else 3)

    print(f"bench_s3: {common.machine()}")
    outputs = common.alexnet_outputs()
    with tempfile.TemporaryDirectory() as root:
        server = _s3_server(root)
        try:
            logdirs = make_read_logdir(outputs, root, read_steps, server)
            for load in ("idle", "busy"):
                with busy_cores(load == "busy", seconds=600):
                    write = bench_write(outputs, root, steps, load)
                    reads = bench_read(logdirs, read_steps, repeats)
                print(f"\n[{load}] {steps} logging calls of 5 AlexNet layers, each then flushed")
                for place in ("local", "s3"):
                    t = write[place]
                    total = [c + f for c, f in zip(t["call"], t["flush"])]
                    print(f"  {place:5}  call {_summary(t['call'])};  flush {_summary(t['flush'])}"
                          f" (first {common.ms(t['flush'][0])}, last {common.ms(t['flush'][-1])});"
                          f"  call+flush {_summary(total)}")
                for place in write.values():
                    place["call+flush"] = [c + f for c, f in zip(place["call"], place["flush"])]
                for part in ("call", "flush", "call+flush"):
                    print("  " + common.ratio_line(
                        f"{part}: s3 / local (median)",
                        common.median(write["s3"][part]), common.median(write["local"][part]),
                        smaller="faster on s3", larger="slower on s3",
                    ))
                print(f"[{load}] read() of {read_steps} steps x {len(common.LAYERS)} layers, "
                      f"{repeats} repeats")
                for place in ("local", "s3"):
                    print(f"  {place:5}  {_summary(reads[place])}")
                print("  " + common.ratio_line(
                    "read: s3 / local (median)",
                    common.median(reads["s3"]), common.median(reads["local"]),
                    smaller="faster on s3", larger="slower on s3",
                ))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
