"""The plugin's routes, through TensorBoard's WSGI stack and through real tensorboard processes."""

import argparse
import io
import json

import numpy as np
import pytest
import torch
from torch.utils.tensorboard import SummaryWriter

from support import route_get, wsgi_client
from tb_featmap import log_feature_maps, payload, plugin

ROUTE = "/data/plugin/feature_maps/"
STEPS = list(range(0, 60, 2))  # 30 steps: more than TensorBoard's default of 10 blobs


def activations(step):
    generator = torch.Generator().manual_seed(step)
    return {
        "conv1": torch.randn(2, 6, 12, 10, generator=generator) * (1 + step),
        "fc": torch.randn(2, 16, generator=generator),
    }


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("logs")
    writer = SummaryWriter(root / "train")
    for step in STEPS:
        log_feature_maps(writer, activations(step), step, max_samples=2)
        writer.add_scalar("loss", 1.0 / (step + 1), step)
    writer.close()
    writer = SummaryWriter(root / "other")
    writer.add_scalar("loss", 1.0, 0)
    writer.close()
    return root


@pytest.fixture(scope="module")
def client(logdir):
    return wsgi_client(logdir)


def test_tags_lists_runs_with_layers_shapes_and_counts(client):
    status, headers, body = route_get(client, "tags")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    tags = json.loads(body)
    assert list(tags) == ["train"]  # the run with only scalars is not listed
    conv = tags["train"]["feature_maps/conv1"]
    assert conv["layer"] == "conv1" and conv["layout"] == "NCHW"
    assert conv["shape"] == [2, 6, 12, 10] and conv["stored"] == [2, 6, 12, 10]
    assert conv["steps"] == conv["logged"] == len(STEPS) and conv["maxStep"] == STEPS[-1]
    assert tags["train"]["feature_maps/fc"]["stored"] == [2, 16, 1, 1]


def test_empty_logdir_gives_empty_object(tmp_path):
    status, _, body = route_get(wsgi_client(tmp_path), "tags")
    assert status == 200 and json.loads(body) == {}


def test_steps_lists_every_kept_step(client):
    status, _, body = route_get(client, "steps", run="train", tag="feature_maps/conv1")
    steps = json.loads(body)
    assert status == 200 and [s["step"] for s in steps] == STEPS
    assert all(isinstance(s["wall_time"], float) for s in steps)


def test_maps_payload_decodes_to_the_logged_values(client):
    status, headers, body = route_get(client, "maps", run="train", tag="feature_maps/conv1", step=10)
    assert status == 200 and headers["Content-Type"] == "application/octet-stream"
    assert "no-cache" in headers["Cache-Control"]
    assert body[:4] == b"TBFM"
    length = int.from_bytes(body[4:8], "little")
    header = payload.decode_header(body[8:8 + length])
    stats_end = 8 + length + 2 * 6 * 6 * 4
    stats = payload.decode_stats(header, body[8 + length:stats_end])
    values = payload.decode_values(header, stats, body[stats_end:])
    expected = activations(10)["conv1"].numpy()
    span = expected.max(axis=(2, 3), keepdims=True) - expected.min(axis=(2, 3), keepdims=True)
    assert (np.abs(values - expected) <= span / 508 + 1e-5).all()


def test_maps_with_wall_time_is_cached_and_checked(client):
    steps = json.loads(route_get(client, "steps", run="train", tag="feature_maps/conv1")[2])
    wall_time = repr(steps[3]["wall_time"])
    status, headers, _ = route_get(client, "maps", run="train", tag="feature_maps/conv1", step=6, wall_time=wall_time)
    assert status == 200 and "max-age=31536000" in headers["Cache-Control"]
    status, _, body = route_get(client, "maps", run="train", tag="feature_maps/conv1", step=6, wall_time="12.5")
    assert status == 404 and b"rewritten" in body


def test_stats_aggregate_over_steps(client):
    status, _, body = route_get(client, "stats", run="train", tag="feature_maps/conv1", sample=1)
    stats = json.loads(body)
    assert status == 200 and stats["steps"] == len(STEPS) and stats["channels"] == 6
    every = torch.stack([activations(s)["conv1"][1] for s in STEPS])  # [steps, C, H, W]
    np.testing.assert_allclose(stats["min"], every.amin(dim=(0, 2, 3)).numpy(), rtol=1e-6)
    np.testing.assert_allclose(stats["max"], every.amax(dim=(0, 2, 3)).numpy(), rtol=1e-6)
    np.testing.assert_allclose(stats["mean"], every.mean(dim=(2, 3)).mean(dim=0).numpy(), rtol=1e-4, atol=1e-4)
    assert stats["dead"] == [False] * 6 and stats["nonfinite"] == [0] * 6


def test_stats_marks_channels_dead_at_every_step(tmp_path):
    writer = SummaryWriter(tmp_path / "run")
    for step in range(3):
        x = torch.rand(1, 3, 4, 4)
        x[0, 1] = 0
        if step == 1:
            x[0, 2] = 0  # dead at one step only
        log_feature_maps(writer, {"relu": x}, step)
    writer.close()
    stats = json.loads(route_get(wsgi_client(tmp_path), "stats", run="run", tag="feature_maps/relu")[2])
    assert stats["dead"] == [False, True, False]
    assert stats["zero_fraction"][2] == pytest.approx(1 / 3)


def test_npy_export(client):
    """Every stored map of a step, each within its quantisation bound: (max - min) / 508 of
    the map (uint8 rounds to the nearest of 255 steps), plus float32 rounding. The maps have
    a real spread, so the values do not round-trip exactly and the rounding is exercised."""
    status, headers, body = route_get(client, "npy", run="train", tag="feature_maps/conv1", step=4)
    assert status == 200 and "step4.npy" in headers["Content-Disposition"]
    array = np.load(io.BytesIO(body))
    expected = activations(4)["conv1"].numpy()
    assert array.dtype == np.float32 and array.shape == expected.shape == (2, 6, 12, 10)
    span = expected.max(axis=(2, 3), keepdims=True) - expected.min(axis=(2, 3), keepdims=True)
    error = np.abs(array - expected)
    assert (error <= span / 508 + 1e-5 * np.abs(expected).max()).all(), (error / span).max()
    assert (error > span / 5000).any()  # quantised, not stored exact: the bound is what is tested


@pytest.mark.parametrize(
    "route, args, status, message",
    [
        ("steps", {}, 400, "missing argument: run"),
        ("steps", {"run": "train"}, 400, "missing argument: tag"),
        ("steps", {"run": "nope", "tag": "feature_maps/conv1"}, 404, "no feature maps for run 'nope'"),
        ("steps", {"run": "train", "tag": "loss"}, 404, "no feature maps"),
        ("maps", {"run": "train", "tag": "feature_maps/conv1"}, 400, "missing argument: step"),
        ("maps", {"run": "train", "tag": "feature_maps/conv1", "step": "ten"}, 400, "an integer"),
        ("maps", {"run": "train", "tag": "feature_maps/conv1", "step": "-2"}, 404, "no step -2"),
        ("maps", {"run": "train", "tag": "feature_maps/conv1", "step": "1" * 40}, 400, "an integer"),
        ("maps", {"run": "train", "tag": "feature_maps/conv1", "step": "٣"}, 400, "an integer"),
        ("maps", {"run": "train", "tag": "feature_maps/conv1", "step": "3"}, 404, "no step 3"),
        ("maps", {"run": "train", "tag": "feature_maps/conv1", "step": "2", "wall_time": "nan"}, 400, "finite"),
        ("npy", {"run": "train", "tag": "feature_maps/conv1", "step": "999"}, 404, "no step 999"),
        ("stats", {"run": "train", "tag": "feature_maps/conv1", "sample": "2"}, 404, "sample 2 not stored"),
        ("stats", {"run": "train", "tag": "feature_maps/conv1", "sample": "x"}, 400, "sample"),
        ("stats", {"run": "train", "tag": "feature_maps/conv1", "sample": "-1"}, 400, "non-negative"),
        ("stats", {"run": "<script>", "tag": "../../etc/passwd"}, 404, "no feature maps"),
        ("steps", {"run": "r" * 5000, "tag": "t"}, 400, "too long"),
    ],
)
def test_errors_are_short_plain_text(client, route, args, status, message):
    got_status, headers, body = route_get(client, route, **args)
    assert got_status == status, body
    assert headers["Content-Type"].startswith("text/plain")
    assert message in body.decode() and len(body) < 400 and b"Traceback" not in body


def test_repeated_argument_is_rejected(client):
    response = client.get(ROUTE + "steps?run=train&run=other&tag=feature_maps/conv1")
    assert response.status_code == 400 and b"more than once: run" in response.get_data()


def test_static_files_from_fixed_routes_only(client):
    status, headers, body = route_get(client, "index.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert b"export" in body
    for path in ["..%2Fsetup.py", "../setup.py", "frontend/index.js", "__init__.py", "nope.js"]:
        response = client.get(ROUTE + path)
        assert response.status_code == 404, path


def test_fix_flags_sets_the_default_only_when_the_user_did_not():
    loader = plugin.FeatureMapsLoader()
    flags = argparse.Namespace(samples_per_plugin={})
    loader.fix_flags(flags)
    assert flags.samples_per_plugin == {"feature_maps": plugin.DEFAULT_SAMPLES}
    flags = argparse.Namespace(samples_per_plugin={"feature_maps": 0, "images": 3})
    loader.fix_flags(flags)
    assert flags.samples_per_plugin == {"feature_maps": 0, "images": 3}


@pytest.mark.parametrize("loader_flags", [[], ["--load_fast=false"]], ids=["rust", "python"])
def test_real_tensorboard_keeps_every_step_by_default(logdir, tensorboard_process, loader_flags):
    tb = tensorboard_process(logdir, *loader_flags)
    listing = json.loads(tb.wait_for_body("/data/plugins_listing", lambda body: body))
    assert listing["feature_maps"]["tab_name"] == "Feature Maps"
    tags = json.loads(tb.wait_for_body(ROUTE + "tags", lambda body: body != b"{}"))
    assert tags["train"]["feature_maps/conv1"]["steps"] == len(STEPS)
    steps = json.loads(tb.get(ROUTE + "steps?run=train&tag=feature_maps/conv1")[2])
    assert [s["step"] for s in steps] == STEPS
    status, _, body = tb.get(ROUTE + "npy?run=train&tag=feature_maps/conv1&step=58")
    expected = activations(58)["conv1"].numpy()
    span = expected.max(axis=(2, 3), keepdims=True) - expected.min(axis=(2, 3), keepdims=True)
    assert status == 200 and (np.abs(np.load(io.BytesIO(body)) - expected) <= span / 508 + 1e-4).all()
    status, headers, body = tb.get(ROUTE + "maps?run=train&tag=feature_maps/conv1&step=abc")
    assert status == 400 and headers["Content-Type"].startswith("text/plain")
    assert b"Traceback" not in body and b"<html" not in body.lower()
    for path in ("index.js/", "index.js//"):  # a trailing slash was a 500
        status, headers, body = tb.get(ROUTE + path)
        assert status == 404 and headers["Content-Type"].startswith("text/plain"), (path, status)
    # Each reply's status is checked above; a handler's exception is also logged by werkzeug.
    assert "Traceback" not in tb.output() and "Error on request" not in tb.output()


@pytest.mark.parametrize("loader_flags", [[], ["--load_fast=false"]], ids=["rust", "python"])
def test_real_tensorboard_reports_dropped_steps(logdir, tensorboard_process, loader_flags):
    tb = tensorboard_process(logdir, "--samples_per_plugin", "feature_maps=5", *loader_flags)
    tags = json.loads(tb.wait_for_body(ROUTE + "tags", lambda body: body != b"{}"))
    conv = tags["train"]["feature_maps/conv1"]
    assert conv["steps"] == 5 and conv["logged"] == len(STEPS)
    assert conv["samplesFlag"] == "--samples_per_plugin=feature_maps=0"
    steps = json.loads(tb.get(ROUTE + "steps?run=train&tag=feature_maps/conv1")[2])
    assert len(steps) == 5 and steps[-1]["step"] == STEPS[-1]


def test_stats_json_is_what_tensorboards_encoder_writes():
    """/stats writes its arrays itself (no list and cleansed copy per array for 65,536
    channels); the JSON must equal what http_util.Respond makes of the same lists."""
    from tensorboard.backend import json_util

    fields = {
        "steps": 3, "channels": 4,
        "min": np.array([-1.5, np.nan, np.inf, -np.inf]), "mean": np.array([1e-300, 0.1, 2.0, -0.0]),
        "nonfinite": np.array([0, 3, 2**40, 1], np.int64), "dead": np.array([True, False, False, True]),
    }
    as_lists = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in fields.items()}
    assert json.loads(plugin._json_arrays(fields)) == json.loads(json.dumps(json_util.Cleanse(as_lists)))
