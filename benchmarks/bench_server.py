"""Server benchmark: the Feature Maps routes of a real ``tensorboard`` process vs its images plugin.

Writes two log directories, then for each TensorBoard loader (the default Rust data server
and ``--load_fast=false``) starts ``tensorboard`` on a free loopback port, waits until it
has loaded everything, measures over HTTP, and stops it by its process id:

- **latency**: run ``alexnet`` holds, per step, ``log_feature_maps`` of the tutorial's AlexNet
  activations and, in the same run, ``writer.add_image`` of the ``make_grid`` of features.3
  (an image of similar size to that layer's maps). Requests alternate between
  ``/data/plugin/feature_maps/maps`` for ``feature_maps/features.3`` and TensorBoard's own
  ``/data/plugin/images/individualImage`` for the same step. Each request opens a new
  connection (TensorBoard answers HTTP/1.0) and sends ``Accept-Encoding: gzip`` like a browser.
- **listing**: run ``listing`` holds 5 layers x 1000 steps of small ``(1, 8, 8, 8)`` maps, with
  the plugin's default sampling (1000 steps kept). Times ``/tags``, ``/steps`` and ``/stats``.
- **blob reads**: the same three blobs per step read straight from a Rust data server through
  TensorBoard's ``GrpcDataProvider``, one after the other and all at once: the data server's
  share of ``/maps``.
- **memory**: resident memory (VmRSS) of the tensorboard process plus its children (the Rust
  data server), for an empty logdir and for each logdir above, after loading and after the
  requests.

Usage::

    python benchmarks/bench_server.py            # 20 steps, 5 passes
    python benchmarks/bench_server.py --quick    # fewer steps and passes
"""

import argparse
import http.client
import json
import os
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import common

__all__ = ["rss_kib", "write_latency_logdir", "write_listing_logdir", "main"]

REPO = Path(__file__).resolve().parent.parent
LATENCY_LAYER = "features.3"
MAPS_TAG = f"feature_maps/{LATENCY_LAYER}"
IMAGE_TAG = f"grid/{LATENCY_LAYER}"
LISTING_LAYERS = 5
LISTING_STEPS = 1000
LOADERS = (("Rust data server (default)", ()), ("--load_fast=false", ("--load_fast=false",)))


def _tensorboard_process():
    """tests/support.py's ``TensorBoardProcess``: a real tensorboard on a free loopback port,
    stopped by its process id (the helper the tests use, not a second copy)."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from support import TensorBoardProcess
    finally:
        sys.path.remove(str(REPO / "tests"))
    return TensorBoardProcess


def write_latency_logdir(logdir: str, steps: int) -> None:
    """Run ``alexnet``: per step, log_feature_maps of all five layers and one add_image.

    The activations are scaled a little per step so that no two steps are identical.
    """
    import torchvision
    from torch.utils.tensorboard import SummaryWriter

    from tb_featmap import log_feature_maps

    outputs = common.alexnet_outputs(seed=0)
    writer = SummaryWriter(os.path.join(logdir, "alexnet"))
    for step in range(steps):
        scaled = {name: x * (1 + 0.01 * step) for name, x in outputs.items()}
        log_feature_maps(writer, scaled, step)
        grid = torchvision.utils.make_grid(scaled[LATENCY_LAYER][0][:, None], normalize=True)
        writer.add_image(IMAGE_TAG, grid, step)
    writer.close()


def write_listing_logdir(logdir: str, layers: int = LISTING_LAYERS, steps: int = LISTING_STEPS) -> None:
    """Run ``listing``: ``layers`` small (1, 8, 8, 8) layers logged at each of ``steps`` steps."""
    import torch
    from torch.utils.tensorboard import SummaryWriter

    from tb_featmap import log_feature_maps

    generator = torch.Generator().manual_seed(0)
    writer = SummaryWriter(os.path.join(logdir, "listing"))
    for step in range(steps):
        outputs = {f"layer{i}": torch.randn(1, 8, 8, 8, generator=generator) for i in range(layers)}
        log_feature_maps(writer, outputs, step)
    writer.close()


def rss_kib(pid: int) -> int:
    """VmRSS of a process and all its descendants, in KiB (0 for a process that is gone)."""
    total = 0
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            total += int(line.split()[1])
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        total += sum(rss_kib(int(child)) for child in children)
    return total


def get(port: int, path: str) -> Tuple[int, bytes, float]:
    """GET over a new loopback connection, like a browser; (status, body, seconds)."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("GET", path, headers={"Accept-Encoding": "gzip"})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    return response.status, body, time.perf_counter() - start


def get_ok(port: int, path: str) -> Tuple[bytes, float]:
    status, body, seconds = get(port, path)
    if status != 200:
        raise RuntimeError(f"GET {path} answered {status}: {body[:200]!r}")
    return body, seconds


def get_json(port: int, path: str):
    status, body, _ = get(port, path)
    if status != 200:
        return None
    if body[:2] == b"\x1f\x8b":
        import gzip

        body = gzip.decompress(body)
    return json.loads(body)


def query(route: str, **params) -> str:
    return f"{route}?{urllib.parse.urlencode(params)}"


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 120) -> float:
    """Poll until ``predicate()``; the seconds it took. Raises RuntimeError on timeout."""
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > timeout:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)
    return time.perf_counter() - start


def steps_loaded(port: int, run: str, tag: str) -> int:
    steps = get_json(port, query("/data/plugin/feature_maps/steps", run=run, tag=tag))
    return len(steps) if isinstance(steps, list) else 0


def image_steps(port: int, run: str, tag: str) -> int:
    images = get_json(port, query("/data/plugin/images/images", run=run, tag=tag, sample=0))
    return len(images) if isinstance(images, list) else 0


def summarize(times: List[float]) -> Dict[str, float]:
    return {"p50": common.median(times), "p90": common.p90(times), "n": len(times)}


def bench_latency(tb, steps: int, passes: int) -> Dict[str, Dict[str, float]]:
    """Alternate /maps and the images plugin's individualImage over the same steps."""
    port = tb.port
    wait_until(lambda: steps_loaded(port, "alexnet", MAPS_TAG) >= steps, "feature maps to load")
    wait_until(lambda: image_steps(port, "alexnet", IMAGE_TAG) >= steps, "images to load")
    kept = get_json(port, query("/data/plugin/feature_maps/steps", run="alexnet", tag=MAPS_TAG))
    wall = {entry["step"]: entry["wall_time"] for entry in kept}
    images = get_json(port, query("/data/plugin/images/images", run="alexnet", tag=IMAGE_TAG, sample=0))
    blob = {}
    for entry in images:
        params = urllib.parse.parse_qs(entry["query"])
        blob[entry["step"]] = params["blob_key"][0]
    maps_times, image_times, maps_bytes, image_bytes = [], [], [], []
    for _ in range(passes):
        for step in range(steps):
            body, seconds = get_ok(port, query(
                "/data/plugin/feature_maps/maps", run="alexnet", tag=MAPS_TAG, step=step,
                wall_time=wall[step],
            ))
            maps_times.append(seconds)
            maps_bytes.append(len(body))
            body, seconds = get_ok(port, query("/data/plugin/images/individualImage", blob_key=blob[step]))
            image_times.append(seconds)
            image_bytes.append(len(body))
    return {
        "maps": {**summarize(maps_times), "bytes": common.median(maps_bytes)},
        "image": {**summarize(image_times), "bytes": common.median(image_bytes)},
    }


def bench_listing(tb, repeats: int) -> Dict[str, Dict[str, float]]:
    """p50/p90 of /tags, /steps and /stats on the 5 x 1000-step run."""
    port = tb.port
    tag = "feature_maps/layer0"
    wait_until(lambda: steps_loaded(port, "listing", tag) >= LISTING_STEPS, "1000 steps to load")
    tags = get_json(port, "/data/plugin/feature_maps/tags")
    listed = tags.get("listing", {})
    if len(listed) != LISTING_LAYERS or listed[tag]["steps"] != LISTING_STEPS:
        raise RuntimeError(f"/tags does not list {LISTING_LAYERS} layers of {LISTING_STEPS} steps: {listed}")
    routes = {
        "tags": "/data/plugin/feature_maps/tags",
        "steps": query("/data/plugin/feature_maps/steps", run="listing", tag=tag),
        "stats": query("/data/plugin/feature_maps/stats", run="listing", tag=tag),
    }
    times: Dict[str, List[float]] = {name: [] for name in routes}
    for _ in range(repeats):
        for name, path in routes.items():
            times[name].append(get_ok(port, path)[1])
    return {name: summarize(values) for name, values in times.items()}


def bench_blob_reads(logdir: str, steps: int, repeats: int) -> Dict[str, Dict[str, float]]:
    """Read each step's three feature-map blobs straight from a Rust data server.

    Uses TensorBoard's own ``SubprocessServerDataIngester`` and ``GrpcDataProvider`` (what
    ``tensorboard`` does on start), to tell the data server's latency from the plugin's:
    per blob, and the three of a step one after the other vs all at once from threads.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tensorboard import context
    from tensorboard.data import provider, server_ingester
    from tensorboard.util import grpc_util

    ingester = server_ingester.SubprocessServerDataIngester(
        server_binary=server_ingester.get_server_binary(),
        logdir=logdir,
        reload_interval=0,
        channel_creds_type=grpc_util.ChannelCredsType.LOCAL,
        samples_per_plugin={"feature_maps": 0},
    )
    ingester.start()  # the data server exits when this process ends (--die-after-stdin)
    data = ingester.data_provider
    ctx = context.RequestContext()

    def series():
        return data.read_blob_sequences(
            ctx, experiment_id="", plugin_name="feature_maps", downsample=2**31 - 1,
            run_tag_filter=provider.RunTagFilter(runs=["alexnet"], tags=[MAPS_TAG]),
        ).get("alexnet", {}).get(MAPS_TAG, [])

    wait_until(lambda: len(series()) >= steps, "the data server to load")
    keys = [[ref.blob_key for ref in datum.values] for datum in series()[:steps]]
    times: Dict[str, List[float]] = {
        "header blob": [], "stats blob": [], "maps blob": [], "3 blobs, one after the other": [],
        "3 blobs, at once (3 threads)": [],
    }
    names = list(times)
    with ThreadPoolExecutor(3) as pool:
        for _ in range(repeats):
            for step_keys in keys:
                for name, key in zip(names, step_keys):
                    start = time.perf_counter()
                    data.read_blob(ctx, blob_key=key)
                    times[name].append(time.perf_counter() - start)
                start = time.perf_counter()
                for key in step_keys:
                    data.read_blob(ctx, blob_key=key)
                times[names[3]].append(time.perf_counter() - start)
                start = time.perf_counter()
                list(pool.map(lambda key: data.read_blob(ctx, blob_key=key), step_keys))
                times[names[4]].append(time.perf_counter() - start)
    return {name: summarize(values) for name, values in times.items()}


def with_tensorboard(logdir: str, flags, body: Callable) -> Tuple[object, Dict[str, int]]:
    """Start tensorboard on ``logdir``, run ``body(tb)``, measure RSS, stop it by pid."""
    TensorBoardProcess = _tensorboard_process()
    started = time.perf_counter()
    tb = TensorBoardProcess(logdir, "--reload_interval", "5", *flags)
    try:
        startup = time.perf_counter() - started
        result = body(tb)
        memory = {"rss_after_kib": rss_kib(tb.proc.pid), "startup_s": startup}
    finally:
        tb.stop()
    return result, memory


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="steps in the latency run (default 20)")
    parser.add_argument("--passes", type=int, default=5,
                        help="passes over the steps per route (default 5)")
    parser.add_argument("--repeats", type=int, default=20,
                        help="requests per listing route (default 20)")
    parser.add_argument("--quick", action="store_true", help="10 steps, 3 passes, 8 repeats")
    parser.add_argument("--loader", choices=("both", "fast", "slow"), default="both",
                        help="which TensorBoard loader(s): the Rust data server, --load_fast=false")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.passes, args.repeats = 10, 3, 8
    if min(args.steps, args.passes, args.repeats) < 1:
        parser.error("--steps, --passes and --repeats must be positive")
    loaders = [loader for loader in LOADERS
               if args.loader == "both" or (args.loader == "slow") == bool(loader[1])]

    import torch

    torch.set_num_threads(1)
    print(f"# bench_server: {common.machine()}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_server-") as root:
        dirs = {name: os.path.join(root, name) for name in ("empty", "latency", "listing")}
        for path in dirs.values():
            os.makedirs(path)
        write_latency_logdir(dirs["latency"], args.steps)
        write_listing_logdir(dirs["listing"])
        sizes = {name: common.event_bytes(os.path.join(path, run)) >> 10
                 for name, path, run in (("latency", dirs["latency"], "alexnet"),
                                         ("listing", dirs["listing"], "listing"))}
        print(f"wrote the logdirs in {time.perf_counter() - started:.0f} s: latency run "
              f"{sizes['latency']} KiB ({args.steps} steps), listing run {sizes['listing']} KiB "
              f"({LISTING_LAYERS} layers x {LISTING_STEPS} steps of (1, 8, 8, 8))\n")

        results = []
        for label, flags in loaders:
            _, empty = with_tensorboard(dirs["empty"], flags, lambda tb: None)
            # TensorBoard keeps 10 images per tag by default; keep every step of both. (The
            # images plugin passes `images=0` on to the data provider as "keep none".)
            latency, lat_mem = with_tensorboard(
                dirs["latency"], (*flags, "--samples_per_plugin", f"images={max(args.steps, 10)}"),
                lambda tb: bench_latency(tb, args.steps, args.passes))
            listing, list_mem = with_tensorboard(
                dirs["listing"], flags, lambda tb: bench_listing(tb, args.repeats))
            results.append((label, latency, listing, empty, lat_mem, list_mem))
        blob_reads = None
        if any(not flags for _, flags in loaders):
            blob_reads = bench_blob_reads(dirs["latency"], args.steps, args.passes)

    print("Latency of one step of features.3 (192 maps of 27 x 27) vs one image of the images "
          "plugin, same run, same steps, alternating:\n")
    print("| loader | route | p50 ms | p90 ms | KB | requests |\n|---|---|---:|---:|---:|---:|")
    for label, latency, *_ in results:
        for name, route in (("maps", "feature_maps/maps"), ("image", "images/individualImage")):
            r = latency[name]
            print(f"| {label} | {route} | {r['p50'] * 1e3:.1f} | {r['p90'] * 1e3:.1f} | "
                  f"{r['bytes'] / 1024:.0f} | {r['n']} |")
    print()
    for label, latency, *_ in results:
        ratio = latency["maps"]["p50"] / latency["image"]["p50"]
        print(f"maps/image p50 ({label}): {ratio:.2f}x -> target <= 1.5x "
              f"{'met' if ratio <= 1.5 else 'NOT met'}")

    if blob_reads:
        print("\nThe same blobs read straight from a Rust data server through TensorBoard's "
              "GrpcDataProvider (no HTTP, no plugin):\n")
        print("| read | p50 ms | p90 ms | reads |\n|---|---:|---:|---:|")
        for name, r in blob_reads.items():
            print(f"| {name} | {r['p50'] * 1e3:.1f} | {r['p90'] * 1e3:.1f} | {r['n']} |")

    print(f"\nListing: {LISTING_LAYERS} layers x {LISTING_STEPS} steps:\n")
    print("| loader | route | p50 ms | p90 ms | requests |\n|---|---|---:|---:|---:|")
    for label, _, listing, *_ in results:
        for name, r in listing.items():
            print(f"| {label} | /{name} | {r['p50'] * 1e3:.1f} | {r['p90'] * 1e3:.1f} | {r['n']} |")
    print()
    for label, _, listing, *_ in results:
        worst = max(listing["tags"]["p50"], listing["steps"]["p50"])
        print(f"/tags and /steps p50 ({label}): {listing['tags']['p50'] * 1e3:.1f} ms and "
              f"{listing['steps']['p50'] * 1e3:.1f} ms -> target <= 100 ms "
              f"{'met' if worst <= 0.1 else 'NOT met'}")

    print("\nResident memory, tensorboard + its child processes (VmRSS), after the requests:\n")
    print("| loader | empty logdir MiB | latency logdir MiB | listing logdir MiB |\n|---|---:|---:|---:|")
    for label, _, _, empty, lat_mem, list_mem in results:
        print(f"| {label} | {empty['rss_after_kib'] / 1024:.0f} | {lat_mem['rss_after_kib'] / 1024:.0f} | "
              f"{list_mem['rss_after_kib'] / 1024:.0f} |")
    print(f"\ntotal wall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
