"""log_feature_maps: real event files, read back through TensorBoard's own reading stack."""

import glob
import io
import math
import os
import warnings
import zlib

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing import event_file_loader
from torch.utils.tensorboard import SummaryWriter

from support import wsgi_client
from tb_featmap import log_feature_maps, metadata, payload, read
from tb_featmap import summary as summary_module

TAGS = "/data/plugin/feature_maps/tags"


def npy(client, run, tag, step):
    response = client.get("/data/plugin/feature_maps/npy", query_string={"run": run, "tag": tag, "step": step})
    assert response.status_code == 200, response.get_data(as_text=True)
    return np.load(io.BytesIO(response.get_data()))


def tags(client):
    response = client.get(TAGS)
    assert response.status_code == 200
    return response.get_json()


def events(logdir):
    """Every event of every event file under logdir, in file order."""
    result = []
    for path in sorted(glob.glob(os.path.join(str(logdir), "**", "events.out.tfevents.*"), recursive=True)):
        result.extend(event_file_loader.EventFileLoader(path).Load())
    return result


def max_quant_error(maps: np.ndarray) -> np.ndarray:
    """Per-map bound: half a quantisation level, plus float32 rounding."""
    flat = maps.reshape(maps.shape[0], maps.shape[1], -1)
    span = flat.max(axis=2) - flat.min(axis=2)
    return (span / 508 + 1e-5 * np.abs(flat).max(axis=2) + 1e-7)[:, :, None, None]


@pytest.fixture
def writer(tmp_path):
    w = SummaryWriter(tmp_path / "run")
    yield w
    w.close()


def test_values_round_trip_within_quantisation_error(tmp_path, writer):
    torch.manual_seed(0)
    x = torch.randn(3, 16, 20, 24) * 5 + 2
    before = x.clone()
    result = log_feature_maps(writer, {"conv1": x}, 7, max_samples=3)
    writer.flush()
    assert torch.equal(x, before), "the caller's tensor was modified"
    assert result == {"feature_maps/conv1": (3, 16, 20, 24)}
    got = npy(wsgi_client(tmp_path), "run", "feature_maps/conv1", 7)
    assert got.shape == (3, 16, 20, 24) and got.dtype == np.float32
    error = np.abs(got - x.numpy())
    assert (error <= max_quant_error(x.numpy())).all(), error.max()


def test_float16_precision_is_exact_half(tmp_path, writer):
    x = torch.randn(1, 4, 9, 9)
    log_feature_maps(writer, {"a": x}, 0, precision="float16")
    writer.flush()
    got = npy(wsgi_client(tmp_path), "run", "feature_maps/a", 0)
    np.testing.assert_array_equal(got, x.half().float().numpy())


@pytest.mark.parametrize(
    "shape, layout, stored, expected",
    [
        ((2, 8, 6, 5), None, (1, 8, 6, 5), lambda x: x[:1]),
        ((8, 6, 5), "CHW", (1, 8, 6, 5), lambda x: x[None]),
        ((6, 5), "HW", (1, 1, 6, 5), lambda x: x[None, None]),
        ((2, 8, 30), "NCL", (1, 8, 1, 30), lambda x: x[:1, :, None, :]),
        ((2, 4, 3, 6, 5), None, (1, 4, 18, 5), lambda x: x[:1].reshape(1, 4, 18, 5)),
        ((2, 100), None, (1, 100, 1, 1), lambda x: x[:1, :, None, None]),
        # A ViT: a class token and 14 x 14 patches; the class token is dropped.
        ((2, 197, 12), "NTD", (1, 12, 14, 14), lambda x: x[:1, 1:].transpose(1, 2).reshape(1, 12, 14, 14)),
        ((2, 16, 12), "NTD", (1, 12, 4, 4), lambda x: x[:1].transpose(1, 2).reshape(1, 12, 4, 4)),
        ((2, 7, 12), "NTD", (1, 12, 1, 7), lambda x: x[:1].transpose(1, 2)[:, :, None, :]),
    ],
)
def test_every_layout_maps_to_a_documented_grid(tmp_path, writer, shape, layout, stored, expected):
    x = torch.randn(*shape)
    result = log_feature_maps(writer, {"t": x}, 0, layout=layout)
    writer.flush()
    assert result["feature_maps/t"] == stored
    client = wsgi_client(tmp_path)
    info = tags(client)["run"]["feature_maps/t"]
    assert info["shape"] == list(shape)
    assert info["stored"] == list(stored)
    assert info["layout"] == (layout or {2: "NF", 4: "NCHW", 5: "NCDHW"}[len(shape)])
    assert info["dropped"]["tokens"] == (1 if shape == (2, 197, 12) else 0)
    want = expected(x).numpy()
    got = npy(client, "run", "feature_maps/t", 0)
    assert got.shape == want.shape
    assert (np.abs(got - want) <= max_quant_error(want)).all()


def test_accepts_sequences_numpy_half_bfloat16_and_grad(tmp_path, writer):
    a = torch.randn(1, 3, 5, 5, requires_grad=True)
    b = torch.randn(1, 2, 4, 4).to(torch.bfloat16)
    c = np.random.default_rng(0).normal(size=(1, 2, 4, 4)).astype(np.float16)
    result = log_feature_maps(writer, [a * 2, b, c], 3)
    assert list(result) == ["feature_maps/layer0", "feature_maps/layer1", "feature_maps/layer2"]
    result = log_feature_maps(writer, [a], 4, names=["conv"], prefix="probe")
    assert list(result) == ["feature_maps/probe/conv"]
    writer.flush()
    got = npy(wsgi_client(tmp_path), "run", "feature_maps/layer2", 3)
    assert np.abs(got - c.astype(np.float32)).max() <= max_quant_error(c.astype(np.float32)).max()


def test_statistics_flag_nonfinite_constant_and_dead_channels(tmp_path, writer):
    x = torch.randn(1, 5, 6, 6)
    x[0, 0] = 0.0  # dead
    x[0, 1] = 3.5  # constant
    x[0, 2, 0, 0] = math.nan
    x[0, 2, 1, 1] = math.inf
    x[0, 3] = math.nan  # nothing finite
    x[0, 4, 2, 2] = -math.inf
    log_feature_maps(writer, {"odd": x, "single": torch.randn(1, 1, 1, 1)}, 0)
    writer.flush()
    (event,) = [e for e in events(tmp_path) if e.HasField("summary")]
    value = {v.tag: v for v in event.summary.value}["feature_maps/odd"]
    header = payload.decode_header(value.tensor.string_val[0])
    stats = payload.decode_stats(header, value.tensor.string_val[1])[0]
    fields = {name: stats[:, i] for i, name in enumerate(payload.STAT_FIELDS)}
    assert fields["zero_fraction"][0] == 1.0 and fields["std"][0] == 0
    assert fields["min"][1] == fields["max"][1] == 3.5 and fields["std"][1] == 0
    assert list(fields["nonfinite"]) == [0, 0, 2, 36, 1]
    finite = x[0, 2][torch.isfinite(x[0, 2])]
    assert fields["mean"][2] == pytest.approx(finite.mean().item(), rel=1e-5)
    assert fields["std"][2] == pytest.approx(finite.std(correction=0).item(), rel=1e-4)
    assert np.isnan(fields["min"][3]) and np.isnan(fields["mean"][3])
    assert fields["min"][4] == pytest.approx(x[0, 4][torch.isfinite(x[0, 4])].min().item())
    got = npy(wsgi_client(tmp_path), "run", "feature_maps/odd", 0)[0]
    assert (got[1] == 3.5).all() and (got[0] == 0).all()
    assert np.isnan(got[2, 0, 0]) and np.isnan(got[2, 1, 1]) and np.isnan(got[3]).all()
    assert np.isfinite(got[2]).sum() == 34


def test_caps_samples_channels_and_size_are_recorded(tmp_path, writer):
    x = torch.rand(4, 10, 128, 100)
    result = log_feature_maps(writer, {"big": x}, 0, max_samples=2, max_channels=6, max_size=64)
    writer.flush()
    assert result["feature_maps/big"] == (2, 6, 64, 50)
    info = tags(wsgi_client(tmp_path))["run"]["feature_maps/big"]
    assert info["downsample"] == 2
    assert info["dropped"] == {"samples": 2, "channels": 4, "tokens": 0}
    got = npy(wsgi_client(tmp_path), "run", "feature_maps/big", 0)
    pooled = torch.nn.functional.avg_pool2d(x[:2, :6], 2).numpy()
    assert np.abs(got - pooled).max() <= max_quant_error(x[:2, :6].numpy()).max()


def test_huge_layer_is_bounded_and_warns_once(tmp_path, writer):
    x = torch.rand(1, 70000, 1, 1)
    with pytest.warns(RuntimeWarning, match="too large"):
        result = log_feature_maps(writer, {"wide": x}, 0, layout="NCHW")
    assert result["feature_maps/wide"] == (1, summary_module.MAX_MAPS_PER_LAYER, 1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_feature_maps(writer, {"wide": x}, 1)  # second time: no warning
    writer.flush()
    info = tags(wsgi_client(tmp_path))["run"]["feature_maps/wide"]
    assert info["dropped"]["channels"] == 70000 - summary_module.MAX_MAPS_PER_LAYER


def test_one_event_per_call_with_blob_sequence_metadata(tmp_path, writer):
    log_feature_maps(writer, {"a": torch.rand(1, 2, 3, 3), "b": torch.rand(1, 4)}, 5)
    writer.flush()
    summaries = [e for e in events(tmp_path) if e.HasField("summary")]
    assert len(summaries) == 1 and summaries[0].step == 5
    for value in summaries[0].summary.value:
        assert value.metadata.plugin_data.plugin_name == metadata.PLUGIN_NAME
        assert value.metadata.data_class == 3  # DATA_CLASS_BLOB_SEQUENCE
        assert metadata.parse_plugin_metadata(value.metadata.plugin_data.content).version == 1
        assert len(value.tensor.string_val) == 3


def test_tags_never_collide_with_other_plugins(tmp_path, writer):
    writer.add_scalar("conv1", 1.0, 0)
    log_feature_maps(writer, {"conv1": torch.rand(1, 2, 3, 3)}, 0)
    writer.flush()
    assert list(tags(wsgi_client(tmp_path))["run"]) == ["feature_maps/conv1"]


def test_seq_counts_logged_steps(tmp_path, writer):
    for step in range(0, 50, 2):
        log_feature_maps(writer, {"a": torch.rand(1, 2, 3, 3)}, step)
    writer.flush()
    info = tags(wsgi_client(tmp_path, {"feature_maps": 5}))["run"]["feature_maps/a"]
    assert info["steps"] == 5 and info["logged"] == 25


BAD_CALLS = [
    (lambda w: log_feature_maps(object(), {"a": torch.rand(1, 2)}, 0), TypeError, "writer"),
    (lambda w: log_feature_maps(w, torch.rand(1, 2), 0), TypeError, "outputs"),
    (lambda w: log_feature_maps(w, {}, 0), ValueError, "outputs"),
    (lambda w: log_feature_maps(w, {"a": [1, 2]}, 0), TypeError, "outputs\\['a'\\]"),
    (lambda w: log_feature_maps(w, {"a": torch.rand(0, 3)}, 0), ValueError, "empty"),
    (lambda w: log_feature_maps(w, {"a": torch.rand(2)}, 0), ValueError, "rank 1"),
    (lambda w: log_feature_maps(w, {"a": torch.rand(1, 1, 1, 1, 1, 1)}, 0), ValueError, "rank 6"),
    (lambda w: log_feature_maps(w, {"a": torch.rand(2, 3, 4)}, 0), ValueError, "layout"),
    (lambda w: log_feature_maps(w, {"a": torch.rand(2, 3, 4)}, 0, layout="XYZ"), ValueError, "layout"),
    (lambda w: log_feature_maps(w, {"a": torch.rand(2, 3)}, 0, layout="NCHW"), ValueError, "rank 4"),
    (lambda w: log_feature_maps(w, {"a": torch.rand(1, 2)}, 1.5), TypeError, "step"),
    (lambda w: log_feature_maps(w, {"a": torch.rand(1, 2)}, "3"), TypeError, "step"),
    (lambda w: log_feature_maps(w, {"a": torch.rand(1, 2)}, True), TypeError, "step"),
    (lambda w: log_feature_maps(w, {"a": torch.rand(1, 2)}, -1), ValueError, "step"),
    (lambda w: log_feature_maps(w, [torch.rand(1, 2)] * 2, 0, names=["x", "x"]), ValueError, "duplicate"),
    (lambda w: log_feature_maps(w, [torch.rand(1, 2)], 0, names=["x", "y"]), ValueError, "names"),
    (lambda w: log_feature_maps(w, {"a": torch.rand(1, 2)}, 0, precision="int4"), ValueError, "precision"),
    (lambda w: log_feature_maps(w, {"a": torch.rand(1, 2)}, 0, max_samples=0), ValueError, "max_samples"),
    (lambda w: log_feature_maps(w, {"a": torch.rand(1, 2)}, 0, max_size=2.5), TypeError, "max_size"),
    (lambda w: log_feature_maps(w, {"a": torch.rand(1, 2, dtype=torch.cfloat)}, 0), TypeError, "real"),
    # What the format or the tab cannot hold is refused, not written wrong.
    (lambda w: log_feature_maps(w, {"a": torch.rand(1, 2)}, 2**53), ValueError, "2\\*\\*53"),
    (lambda w: log_feature_maps(w, {"a": torch.rand(1, 2)}, 2**60), ValueError, "step"),
    (lambda w: log_feature_maps(w, {"a": torch.rand(1, 2)}, 0, walltime=math.nan), ValueError, "walltime"),
    (lambda w: log_feature_maps(w, {"a": torch.rand(1, 2)}, 0, walltime=math.inf), ValueError, "walltime"),
    (lambda w: log_feature_maps(w, {"a": torch.rand(1, 2)}, 0, walltime=True), TypeError, "walltime"),
    (lambda w: log_feature_maps(w, {"a" * 5000: torch.rand(1, 2)}, 0), ValueError, "tag"),
    (lambda w: log_feature_maps(w, {"a": torch.rand(1, 4).to_sparse()}, 0), TypeError, "outputs\\['a'\\].*dense"),
    (lambda w: log_feature_maps(w, {"a": torch.quantize_per_tensor(torch.rand(1, 4), 0.1, 0, torch.quint8)}, 0),
     TypeError, "outputs\\['a'\\].*quantized"),
    (lambda w: log_feature_maps(w, {"a": torch.empty(1, 4, device="meta")}, 0), TypeError, "outputs\\['a'\\].*meta"),
]


@pytest.mark.parametrize("call, error, match", BAD_CALLS)
def test_bad_input_names_the_argument_and_writes_nothing(tmp_path, writer, call, error, match):
    with pytest.raises(error, match=match):
        call(writer)
    writer.flush()
    assert not [e for e in events(tmp_path) if e.HasField("summary")]


def test_a_bad_layer_late_in_outputs_leaves_nothing_half_written(tmp_path, writer):
    outputs = {"good": torch.rand(1, 3, 4, 4), "bad": torch.rand(0, 3, 4, 4)}
    with pytest.raises(ValueError, match="outputs\\['bad'\\]"):
        log_feature_maps(writer, outputs, 0)
    writer.flush()
    assert not [e for e in events(tmp_path) if e.HasField("summary")]


def test_closed_writer_is_an_error(tmp_path):
    w = SummaryWriter(tmp_path / "run")
    w.close()
    before = glob.glob(str(tmp_path / "run" / "*"))
    with pytest.raises(ValueError, match="writer is closed"):
        log_feature_maps(w, {"a": torch.rand(1, 2)}, 0)
    assert glob.glob(str(tmp_path / "run" / "*")) == before  # no new event file opened


def test_removed_logdir_warns_once_and_training_goes_on(tmp_path):
    import shutil

    writer = SummaryWriter(tmp_path / "run")
    log_feature_maps(writer, {"a": torch.rand(1, 2)}, 0)
    writer.flush()
    shutil.rmtree(tmp_path / "run")
    with pytest.warns(RuntimeWarning, match="no longer exists"):
        assert log_feature_maps(writer, {"a": torch.rand(1, 2)}, 1) == {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert log_feature_maps(writer, {"a": torch.rand(1, 2)}, 2) == {}
    os.makedirs(tmp_path / "run")  # so that close() can flush what TensorBoard's writer holds
    writer.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_layers_are_copied_to_the_host_once_each_with_no_device_synchronize(writer):
    outputs = {"a": torch.randn(2, 8, 16, 16, device="cuda"), "b": torch.randn(1, 4, 9, 9, device="cuda")}
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                            torch.profiler.ProfilerActivity.CUDA]) as profile:
        log_feature_maps(writer, outputs, 0)
    names = [event.name for event in profile.events()]
    assert sum("DtoH" in name for name in names) == len(outputs), names
    assert not any("DeviceSynchronize" in name for name in names)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_log_like_cpu_tensors(tmp_path, writer):
    x = torch.randn(2, 8, 16, 16)
    log_feature_maps(writer, {"gpu": x.cuda().half(), "cpu": x.half()}, 0)
    writer.flush()
    client = wsgi_client(tmp_path)
    gpu, cpu = npy(client, "run", "feature_maps/gpu", 0), npy(client, "run", "feature_maps/cpu", 0)
    # The same codes, give or take one level where the GPU rounds a half differently.
    assert (np.abs(gpu - cpu) <= 2 * max_quant_error(x.half().float().numpy())).all()


def logged(tmp_path, tag, step=0):
    """The header, stats and uint8 codes (or float16 values) of a tag's step on disk."""
    (value,) = [v for e in events(tmp_path) if e.HasField("summary") and e.step == step
                for v in e.summary.value if v.tag == tag]
    header_blob, stats_blob, data_blob = value.tensor.string_val
    header = payload.decode_header(header_blob)
    stats = payload.decode_stats(header, stats_blob)
    raw = zlib.decompress(data_blob)
    if header["encoding"] == "float16":
        return header, stats, np.frombuffer(raw, "<f2").reshape(header["stored"])
    delta = np.frombuffer(raw, np.uint8).reshape(header["stored"])
    return header, stats, np.cumsum(delta, axis=-1, dtype=np.uint8)


def dequantized(stats, codes):
    """The uint8 codes as values, in float64: ``min + q * (max - min) / 254``."""
    lo = stats[..., 0, None, None].astype(np.float64)
    hi = stats[..., 1, None, None].astype(np.float64)
    return lo + codes * ((hi - lo) / payload.LEVELS)


def test_the_longest_tag_the_plugin_serves_is_accepted_and_one_more_refused(tmp_path, writer):
    name = "n" * (metadata.MAX_NAME_LENGTH - len(metadata.make_tag("")))
    log_feature_maps(writer, {name: torch.rand(1, 2, 3, 3)}, 0)
    with pytest.raises(ValueError, match="tag"):
        log_feature_maps(writer, {name + "n": torch.rand(1, 2, 3, 3)}, 0)
    writer.flush()
    assert npy(wsgi_client(tmp_path), "run", metadata.make_tag(name), 0).shape == (1, 2, 3, 3)


def test_the_largest_step_the_tab_addresses_is_served(tmp_path, writer):
    log_feature_maps(writer, {"a": torch.rand(1, 2, 3, 3)}, 2**53 - 1)
    writer.flush()
    assert tags(wsgi_client(tmp_path))["run"]["feature_maps/a"]["maxStep"] == 2**53 - 1


@pytest.mark.parametrize("values", [
    [3e38, -3e38, 1e38, 0.0],            # the span and the sums overflow float32
    [1e38, 1e38, 1e38, 3e38],            # the sum overflows float32
    [3.4e38, 3.4e38, 3.4e38, 3.4e38],    # constant, at float32's limit
    [1000.0, 1000.0001, 1000.0002, 1000.0004],  # a small span far from zero
    [1e-42, 2e-42, 5e-42, 0.0],          # subnormal: 254 / span overflows float32
])
def test_statistics_and_codes_are_exact_for_every_finite_float32_map(tmp_path, writer, values):
    rng = np.random.default_rng(0)
    x = np.array(values, np.float32)[rng.integers(0, len(values), size=(1, 3, 8, 9))]
    x[0, :, 0, :len(values)] = values  # every value in every map
    log_feature_maps(writer, {"a": x}, 0)
    writer.flush()
    header, stats, codes = logged(tmp_path, "feature_maps/a")
    assert np.isfinite(stats[..., :4]).all(), stats
    wide = x.astype(np.float64).reshape(1, 3, -1)
    np.testing.assert_array_equal(stats[..., 0], wide.min(axis=2))
    np.testing.assert_array_equal(stats[..., 1], wide.max(axis=2))
    ulp = np.finfo(np.float32).smallest_subnormal  # the float32 rounding of a subnormal
    np.testing.assert_allclose(stats[..., 2], wide.mean(axis=2), rtol=1e-6, atol=ulp)
    np.testing.assert_allclose(stats[..., 3], wide.std(axis=2), rtol=1e-4, atol=ulp)
    assert (stats[..., 5] == 0).all()
    span = wide.max(axis=2) - wide.min(axis=2)
    error = np.abs(dequantized(stats, codes) - x).reshape(1, 3, -1).max(axis=2)
    assert (error <= span / 508 * (1 + 1e-5)).all(), (error, span)
    # What read(), the npy route and the CLI give back (payload.decode_values) is within
    # the bound too, also where max - min overflows float32.
    values = read(str(tmp_path), layer="a")[-1].values.astype(np.float64)
    error = np.abs(values - x).reshape(1, 3, -1).max(axis=2)
    assert (error <= span / 508 * (1 + 1e-5) + ulp).all(), (error, span)


def test_float16_overflow_falls_back_to_uint8_and_warns_once(tmp_path, writer):
    x = torch.randn(1, 4, 6, 6)
    x[0, 2, 1, 1] = 1e5  # float16 would make it inf
    with pytest.warns(RuntimeWarning, match="float16"):
        log_feature_maps(writer, {"a": x}, 0, precision="float16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_feature_maps(writer, {"a": x}, 1, precision="float16")  # warned once only
        log_feature_maps(writer, {"b": x / 10}, 0, precision="float16")  # in range: float16
    writer.flush()
    header, stats, codes = logged(tmp_path, "feature_maps/b")
    assert header["encoding"] == "float16"
    header, stats, codes = logged(tmp_path, "feature_maps/a")
    assert header["encoding"] == "uint8" and header["compression"] == "deflate-delta"
    assert (stats[..., 5] == 0).all() and stats[0, 2, 1] == 1e5
    got = npy(wsgi_client(tmp_path), "run", "feature_maps/a", 0)
    assert (np.abs(got - x.numpy()) <= max_quant_error(x.numpy())).all()


def test_float64_beyond_float32_is_counted_as_nonfinite_and_warned(tmp_path, writer):
    x = np.ones((1, 2, 4, 4))
    x[0, 0, 0, 0], x[0, 0, 1, 1] = 1e300, -1e300
    with pytest.warns(RuntimeWarning, match="2 torch.float64 values beyond float32"):
        log_feature_maps(writer, {"a": x}, 0, precision="float16")
    writer.flush()
    header, stats, values = logged(tmp_path, "feature_maps/a")
    assert list(stats[0, :, 5]) == [2, 0]
    assert stats[0, 0, 0] == stats[0, 0, 1] == 1.0  # the finite values' min and max
    assert values[0, 0, 0, 0] == np.inf and values[0, 0, 1, 1] == -np.inf


def test_float16_keeps_the_sign_of_infinities_and_uint8_marks_them(tmp_path, writer):
    x = torch.zeros(1, 1, 2, 2)
    x[0, 0, 0, 0], x[0, 0, 0, 1], x[0, 0, 1, 0] = math.inf, -math.inf, math.nan
    log_feature_maps(writer, {"h": x, "q": x}, 0, precision="float16")
    log_feature_maps(writer, {"q8": x}, 0)
    writer.flush()
    _, stats, values = logged(tmp_path, "feature_maps/h")
    assert values[0, 0, 0, 0] == np.inf and values[0, 0, 0, 1] == -np.inf
    assert np.isnan(values[0, 0, 1, 0]) and stats[0, 0, 5] == 3
    _, _, codes = logged(tmp_path, "feature_maps/q8")
    assert list(codes.ravel()) == [payload.NONFINITE_CODE] * 3 + [0]


def test_the_encoding_runs_no_torch_kernels(writer):
    """The per-map work is numpy on the calling thread: torch's intra-op pool, whose
    threads wait on busy cores, is never used. Only views of the caller's tensors."""
    views = {"aten::detach", "detach", "aten::to", "aten::resolve_conj", "aten::resolve_neg",
             "aten::as_strided", "aten::reshape", "aten::view", "aten::transpose",
             "aten::slice", "aten::_reshape_alias", "aten::select", "aten::unsqueeze",
             "aten::alias", "aten::lift_fresh", "aten::_unsafe_view"}
    outputs = {
        "conv": torch.randn(2, 8, 80, 80),
        "tokens": torch.randn(2, 197, 12).to(torch.bfloat16),
        "conv3d": torch.randn(2, 4, 3, 6, 5, dtype=torch.float64),
        "half": torch.randn(1, 4, 5, 5).half(),
        "int": torch.randint(0, 9, (1, 4, 5, 5)),
    }
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        log_feature_maps(writer, outputs, 0, layout={"tokens": "NTD"}, max_samples=2,
                         max_size=32)
    ran = {event.name for event in profile.events()}
    assert ran <= views, sorted(ran - views)
