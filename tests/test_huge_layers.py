"""A layer far over the hard bounds: 64 samples of 2048 channels of 112 x 112.

That batch is 6.6 GB as float32; the test passes a broadcast view of one sample (100 MB),
which log_feature_maps cannot tell from a real batch. The stored part stays under
MAX_VALUES_PER_LAYER / MAX_MAPS_PER_LAYER, the record on disk under the bound that follows,
memory stays far below the batch's size, one warning is given, and ``dropped`` says what
was left out, in the stored header and in /tags.
"""

import json
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch.utils.tensorboard import SummaryWriter

from support import wsgi_client
from tb_featmap import log_feature_maps, summary
from tb_featmap import summary as summary_module

BATCH = (64, 2048, 112, 112)
FULL_BATCH_BYTES = int(np.prod(BATCH)) * 4
SCRIPT = textwrap.dedent(
    """
    import json, resource, sys, warnings
    import torch
    from torch.utils.tensorboard import SummaryWriter
    from tb_featmap import log_feature_maps

    logdir, precision, max_size = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    x = torch.rand(1, 2048, 112, 112, generator=torch.Generator().manual_seed(0))
    batch = x.expand(64, 2048, 112, 112)
    writer = SummaryWriter(logdir)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [
            log_feature_maps(writer, {"huge": batch}, step, max_samples=64, max_size=max_size, precision=precision)
            for step in range(2)
        ]
    writer.close()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({
        "peak_increase": after - before,
        "stored": [list(r["feature_maps/huge"]) for r in results],
        "warnings": [str(w.message) for w in caught],
    }))
    """
)


def record_lengths(run_dir):
    """The data length of every record in run_dir's event files, from the record headers."""
    lengths = []
    for path in run_dir.glob("events.out.tfevents.*"):
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset:offset + 8])
            lengths.append(length)
            offset += length + 16
        assert offset == len(data)
    return lengths


@pytest.mark.parametrize(
    "precision, max_size, stored, dropped",
    [
        # Downsampled to 56 x 56: 5349 maps fit, so 2 samples of all 2048 channels.
        ("uint8", 64, [2, 2048, 56, 56], {"samples": 62, "channels": 0, "tokens": 0}),
        # Full 112 x 112: 1337 maps fit, so 1 sample of 1337 channels.
        ("float16", None, [1, 1337, 112, 112], {"samples": 63, "channels": 711, "tokens": 0}),
    ],
)
def test_huge_layer_is_cut_to_the_bounds(tmp_path, precision, max_size, stored, dropped):
    logdir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(logdir), precision, json.dumps(max_size)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)

    assert report["stored"] == [stored, stored]
    n, c, h, w = stored
    assert n * c * h * w <= summary.MAX_VALUES_PER_LAYER and n * c <= summary.MAX_MAPS_PER_LAYER
    # One warning for two calls, naming the layer and what was dropped.
    (message,) = report["warnings"]
    assert "'huge' is too large" in message and f"dropped {dropped['samples']} samples" in message

    # Each record: at most the bounded values (1 or 2 bytes each, incompressible noise plus
    # deflate's framing) and 24 bytes of statistics per map, plus the header and protos.
    value_bytes = {"uint8": 1, "float16": 2}[precision]
    bound = summary.MAX_VALUES_PER_LAYER * value_bytes * 1.01 + summary.MAX_MAPS_PER_LAYER * 24 + 65536
    lengths = record_lengths(logdir)
    assert len(lengths) == 3  # the file header and two steps
    assert max(lengths) <= bound
    assert max(lengths) >= n * c * h * w * value_bytes * 0.7  # the maps really are in it (float16 of noise deflates a little)

    # Memory: the stored part at full resolution is copied a few times, never the batch.
    kept = n * c * 112 * 112 * 4
    assert report["peak_increase"] < min(8 * kept, FULL_BATCH_BYTES // 4), report["peak_increase"]

    client = wsgi_client(tmp_path)
    info = client.get("/data/plugin/feature_maps/tags").get_json()["run"]["feature_maps/huge"]
    assert info["shape"] == list(BATCH) and info["stored"] == stored
    assert info["dropped"] == dropped and info["downsample"] == (2 if max_size else 1)
    response = client.get(
        "/data/plugin/feature_maps/maps", query_string={"run": "run", "tag": "feature_maps/huge", "step": 1}
    )
    assert response.status_code == 200 and len(response.get_data()) <= bound


def test_a_single_map_over_the_bound_is_refused_up_front(tmp_path):
    writer = SummaryWriter(tmp_path / "run")
    x = torch.zeros(1, 1, 1, 1).expand(1, 1, 4100, 4100)  # 16.8 M values in one map
    with pytest.raises(ValueError, match="max_size"):
        log_feature_maps(writer, {"map": x}, 0, max_size=None)
    assert log_feature_maps(writer, {"map": x}, 0)["feature_maps/map"] == (1, 1, 64, 64)
    writer.close()
    steps = [s["step"] for s in wsgi_client(tmp_path).get(
        "/data/plugin/feature_maps/steps", query_string={"run": "run", "tag": "feature_maps/map"}
    ).get_json()]
    assert steps == [0]  # the refused call wrote nothing, the capped one wrote step 0


def test_many_bounded_layers_over_the_record_limit_are_refused(tmp_path, monkeypatch):
    """Each layer fits, but not all of them in one event: nothing is written."""
    monkeypatch.setattr(summary_module, "MAX_RECORD_BYTES", 4 << 20)  # so that the test is small
    writer = SummaryWriter(tmp_path / "run")
    layers = {f"l{i}": torch.rand(1, 64, 64, 64) for i in range(10)}  # 0.5 MiB each as float16
    with pytest.raises(ValueError, match="one event"):
        log_feature_maps(writer, layers, 0, precision="float16")
    log_feature_maps(writer, dict(list(layers.items())[:1]), 1, precision="float16")
    writer.close()
    tags = wsgi_client(tmp_path).get("/data/plugin/feature_maps/tags").get_json()
    assert list(tags["run"]) == ["feature_maps/l0"] and tags["run"]["feature_maps/l0"]["maxStep"] == 1
