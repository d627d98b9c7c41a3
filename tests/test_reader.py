"""tb_featmap.reader: real event files written by log_feature_maps, read back through
TensorBoard's EventMultiplexer and data provider, without a server."""

import io
import os
import subprocess
import sys
import textwrap
import warnings

import google_crc32c
import numpy as np
import pytest
import torch
from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from torch.utils.tensorboard import SummaryWriter

from support import REPO, wsgi_client
from tb_featmap import metadata, payload
from tb_featmap.reader import FeatureMapReader, FeatureMapRecord, read, to_dataframe
from tb_featmap.summary import log_feature_maps

STEPS = (0, 5, 10)


def _activations(step: int) -> dict:
    g = torch.Generator().manual_seed(step)
    conv = torch.randn(2, 3, 6, 5, generator=g) * torch.arange(1, 4).view(1, 3, 1, 1) + step
    return {"conv": conv, "fc": torch.randn(2, 7, generator=g)}


@pytest.fixture
def logdir(tmp_path):
    """Run "a" (conv and fc at STEPS, both samples) and run "b/sub" (a prefixed layer)."""
    with SummaryWriter(str(tmp_path / "a")) as writer:
        for step in STEPS:
            log_feature_maps(writer, _activations(step), step, max_samples=None)
    with SummaryWriter(str(tmp_path / "b" / "sub")) as writer:
        log_feature_maps(writer, {"conv": torch.rand(1, 2, 4, 4)}, 3, prefix="probe")
    return tmp_path


def _max_error(source: np.ndarray) -> np.ndarray:
    """The uint8 format's bound, (max - min) / 508 per map, plus float32 rounding."""
    span = source.max(axis=(-2, -1), keepdims=True) - source.min(axis=(-2, -1), keepdims=True)
    return span / 508 + 1e-5 * (1 + np.abs(source).max())


def test_read_returns_every_step_with_values_within_the_quantisation_error(logdir):
    records = read(logdir, run="a", layer="conv")
    assert [r.step for r in records] == list(STEPS)
    for record in records:
        assert isinstance(record, FeatureMapRecord)
        assert (record.run, record.layer, record.tag) == ("a", "conv", "feature_maps/conv")
        assert isinstance(record.wall_time, float) and record.wall_time > 1e9
        source = _activations(record.step)["conv"].numpy()
        assert record.values.dtype == np.float32 and record.values.shape == (2, 3, 6, 5)
        assert np.all(np.abs(record.values - source) <= _max_error(source))
        assert set(record.stats) == set(payload.STAT_FIELDS)
        np.testing.assert_allclose(record.stats["min"], source.min(axis=(2, 3)), rtol=1e-6)
        np.testing.assert_allclose(record.stats["max"], source.max(axis=(2, 3)), rtol=1e-6)
        np.testing.assert_allclose(record.stats["mean"], source.mean(axis=(2, 3)), rtol=1e-4, atol=1e-5)
        assert record.stats["nonfinite"].shape == (2, 3)
        assert record.header["layout"] == "NCHW" and record.header["shape"] == [2, 3, 6, 5]


def test_records_are_read_only(logdir):
    record = read(logdir, run="a", layer="conv", step=5)[0]
    with pytest.raises(ValueError):
        record.values[0, 0, 0, 0] = 1.0
    with pytest.raises(ValueError):
        record.stats["min"][0, 0] = 1.0
    with pytest.raises(AttributeError):
        record.step = 6


def test_selection_by_run_layer_prefixed_layer_and_full_tag(logdir):
    everything = read(logdir)
    assert sorted({(r.run, r.layer) for r in everything}) == [
        ("a", "conv"), ("a", "fc"), ("b/sub", "probe/conv"),
    ]
    assert len(everything) == 2 * len(STEPS) + 1
    assert [r.run for r in read(logdir, layer="conv")] == ["a"] * len(STEPS)
    (prefixed,) = read(logdir, layer="probe/conv")
    assert (prefixed.run, prefixed.tag, prefixed.step) == ("b/sub", "feature_maps/probe/conv", 3)
    assert [r.step for r in read(logdir, layer="feature_maps/fc")] == list(STEPS)
    fc = read(logdir, run="a", layer="fc", step=10)[0]
    assert fc.values.shape == (2, 7, 1, 1) and fc.header["layout"] == "NF"


def test_step_selection(logdir):
    assert [r.step for r in read(logdir, run="a", step=5)] == [5, 5]
    assert [r.step for r in read(logdir, run="a", layer="fc", step=[10, 0])] == [0, 10]
    assert [r.step for r in read(logdir, run="a", layer="fc", step=np.int64(10))] == [10]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"run": "nope"}, "valid runs: 'a', 'b/sub'"),
        ({"layer": "nope"}, "valid layers: 'conv', 'fc', 'probe/conv'"),
        ({"run": "a", "layer": "probe/conv"}, "valid layers: 'conv', 'fc'"),
        ({"run": "a", "step": 7}, "valid steps: 0, 5, 10"),
        ({"run": "a", "step": [0, 7]}, "step 7"),
        ({"step": -1}, "step -1 is not among the kept steps"),  # negative steps exist
    ],
)
def test_unknown_names_list_the_valid_ones(logdir, kwargs, message):
    with pytest.raises(ValueError, match=message):
        read(logdir, **kwargs)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"run": 1}, "run"), ({"layer": b"conv"}, "layer"), ({"step": 1.5}, "step"),
     ({"step": True}, "step"), ({"values": 1}, "values"), ({"as_dataframe": "yes"}, "as_dataframe")],
)
def test_bad_argument_types(logdir, kwargs, name):
    with pytest.raises(TypeError, match=name):
        read(logdir, **kwargs)


def test_bad_logdir(tmp_path):
    with pytest.raises(TypeError, match="logdir"):
        read(42)
    with pytest.raises(FileNotFoundError, match="missing"):
        read(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="file"):
        read(tmp_path / "file")
    assert read(tmp_path) == []  # a directory without feature maps


def test_keeps_every_step_beyond_the_multiplexers_default_of_500(tmp_path):
    count = 520  # EventMultiplexer keeps 500 tensor events per tag unless told otherwise
    with SummaryWriter(str(tmp_path)) as writer:
        for step in range(count):
            log_feature_maps(writer, {"x": torch.full((1, 1, 2, 2), float(step))}, step)
    records = read(tmp_path, values=False)
    assert [r.step for r in records] == list(range(count))
    assert all(r.values is None for r in records)
    assert [float(r.stats["max"][0, 0]) for r in records] == [float(s) for s in range(count)]
    info = FeatureMapReader(tmp_path).layers()
    assert [(i.run, i.layer, len(i.steps), i.header["stored"]) for i in info] == [(".", "x", count, [1, 1, 2, 2])]


def test_nonfinite_values_and_float16(tmp_path):
    x = torch.randn(1, 2, 4, 4)
    x[0, 1, 2, 3] = float("nan")
    x[0, 0, 0, 0] = float("inf")
    with SummaryWriter(str(tmp_path / "u8")) as writer:
        log_feature_maps(writer, {"x": x}, 0)
    with SummaryWriter(str(tmp_path / "f16")) as writer:
        log_feature_maps(writer, {"x": x}, 0, precision="float16")
    u8 = read(tmp_path, run="u8")[0]
    assert np.isnan(u8.values[0, 1, 2, 3]) and np.isnan(u8.values[0, 0, 0, 0])
    assert int(np.isnan(u8.values).sum()) == 2
    assert u8.stats["nonfinite"][0].tolist() == [1.0, 1.0]
    f16 = read(tmp_path, run="f16")[0]
    assert f16.header["encoding"] == "float16"
    np.testing.assert_array_equal(f16.values, x.numpy().astype(np.float16).astype(np.float32))


def test_reader_and_the_npy_route_both_give_the_logged_values(logdir):
    """Each checked against the source tensor within the quantisation bound, not against the
    other: both decode through payload.py, so agreeing with each other would prove nothing."""
    client = wsgi_client(logdir)
    response = client.get("/data/plugin/feature_maps/npy?run=a&tag=feature_maps/conv&step=10")
    assert response.status_code == 200
    served = np.load(io.BytesIO(response.get_data()), allow_pickle=False)
    source = _activations(10)["conv"].numpy()
    for values in (served, read(logdir, run="a", layer="conv", step=10)[0].values):
        assert values.dtype == np.float32 and values.shape == source.shape == (2, 3, 6, 5)
        error = np.abs(values - source)
        assert np.all(error <= _max_error(source)), (error / _max_error(source)).max()
        assert error.max() > 0  # the maps have a spread: quantised, not stored exactly


def test_newer_payload_version_is_skipped_with_one_warning(tmp_path, monkeypatch):
    with SummaryWriter(str(tmp_path)) as writer:
        log_feature_maps(writer, {"x": torch.rand(1, 1, 3, 3), "y": torch.rand(1, 1, 3, 3)}, 0)
        with monkeypatch.context() as m:
            m.setattr(payload, "FORMAT_VERSION", payload.FORMAT_VERSION + 1)
            for step in (1, 2):
                log_feature_maps(writer, {"x": torch.rand(1, 1, 3, 3), "y": torch.rand(1, 1, 3, 3)}, step)
        log_feature_maps(writer, {"x": torch.rand(1, 1, 3, 3), "y": torch.rand(1, 1, 3, 3)}, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = read(tmp_path)
    assert [(r.layer, r.step) for r in records] == [("x", 0), ("x", 3), ("y", 0), ("y", 3)]
    assert len(caught) == 1
    assert "newer" in str(caught[0].message) and "upgrade tb_featmap" in str(caught[0].message)


def test_newer_series_version_is_skipped_with_one_warning(tmp_path, monkeypatch):
    with SummaryWriter(str(tmp_path)) as writer:
        log_feature_maps(writer, {"old": torch.rand(1, 1, 3, 3)}, 0)
        with monkeypatch.context() as m:
            m.setattr(payload, "FORMAT_VERSION", payload.FORMAT_VERSION + 1)
            log_feature_maps(writer, {"new1": torch.rand(1, 1, 3, 3), "new2": torch.rand(1, 1, 3, 3)}, 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = read(tmp_path)
    assert [r.layer for r in records] == ["old"]
    assert len(caught) == 1 and "upgrade tb_featmap" in str(caught[0].message)


def _raw_value(tag: str, blobs) -> summary_pb2.Summary.Value:
    """A summary value under this plugin's name with arbitrary blobs, as any tool could write."""
    tensor = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(blobs))]),
        string_val=list(blobs),
    )
    return summary_pb2.Summary.Value(
        tag=tag, metadata=metadata.create_summary_metadata(), tensor=tensor
    )


def test_damaged_steps_are_skipped_with_one_warning(tmp_path):
    with SummaryWriter(str(tmp_path)) as writer:
        log_feature_maps(writer, {"x": torch.rand(1, 2, 3, 3)}, 0)
        file_writer = writer._get_file_writer()
        good = payload.encode_header({
            "layout": "NCHW", "shape": [1, 2, 3, 3], "dtype": "torch.float32", "stored": [1, 2, 3, 3],
            "downsample": 1, "encoding": "uint8", "compression": "deflate-delta", "dropped": {}, "seq": 1,
        })
        damaged = {
            1: [b"not json", b"", b""],              # header
            2: [good, b"\0" * 5, b""],                # stats of the wrong length
            3: [good, b"\0" * 48, b"not zlib"],       # data
            4: [good, b"\0" * 48],                    # too few blobs
        }
        for step, blobs in damaged.items():
            file_writer.add_summary(summary_pb2.Summary(value=[_raw_value("feature_maps/x", blobs)]), step)
        log_feature_maps(writer, {"x": torch.rand(1, 2, 3, 3)}, 5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [r.step for r in read(tmp_path)] == [0, 5]
    assert len(caught) == 1 and "unreadable" in str(caught[0].message)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (info,) = FeatureMapReader(tmp_path).layers()
    assert info.steps == (0, 1, 2, 3, 4, 5) and info.header["seq"] == 1  # newest readable: 5


def test_to_dataframe_has_one_row_per_map(logdir):
    pandas = pytest.importorskip("pandas")
    records = read(logdir, run="a", layer="conv")
    frame = to_dataframe(records)
    assert isinstance(frame, pandas.DataFrame)
    assert len(frame) == len(STEPS) * 2 * 3
    assert list(frame.columns[:7]) == ["run", "layer", "tag", "step", "wall_time", "sample", "channel"]
    row = frame[(frame.step == 10) & (frame["sample"] == 1) & (frame.channel == 2)].iloc[0]
    assert row["max"] == pytest.approx(float(records[2].stats["max"][1, 2]))
    np.testing.assert_array_equal(row["map"], records[2].values[1, 2])
    same = read(logdir, run="a", layer="conv", as_dataframe=True)
    assert same.drop(columns="map").equals(frame.drop(columns="map"))
    with pytest.raises(TypeError, match="FeatureMapRecord"):
        to_dataframe([{"step": 1}])


def test_dataframe_without_pandas_is_a_clear_import_error(logdir, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        read(logdir, as_dataframe=True)
    with pytest.raises(ImportError, match="pip install pandas"):
        to_dataframe([])


# The TensorBoard side must work where torch is not installed. A meta-path finder that
# refuses torch (and records who asked) stands in for an environment without it.
_BLOCK_TORCH = textwrap.dedent(
    """
    import sys
    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")
    sys.meta_path.insert(0, _NoTorch())
    """
)


def test_reader_cli_and_render_work_without_torch(logdir, tmp_path):
    script = _BLOCK_TORCH + textwrap.dedent(
        f"""
        import tb_featmap.reader, tb_featmap.cli, tb_featmap.render
        from tb_featmap.cli import main
        assert main(["ls", {str(logdir)!r}]) == 0
        assert main(["export", {str(logdir)!r}, "--run", "a", "--layer", "conv", "-q",
                     "-o", {str(tmp_path / "grid.png")!r}]) == 0
        records = tb_featmap.reader.read({str(logdir)!r}, run="a", layer="fc")
        assert [r.step for r in records] == [0, 5, 10]
        assert "torch" not in sys.modules
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=str(REPO), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")
    assert os.path.getsize(tmp_path / "grid.png") > 0


def test_the_torch_block_works():
    script = _BLOCK_TORCH + "import tb_featmap.summary\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "torch is blocked" in result.stderr


# --- checksums: TensorBoard's pure-Python CRC32C swapped for google-crc32c -----------------


def _pure_python_masked_crc32c(data: bytes) -> int:
    from tensorboard.compat.tensorflow_stub import pywrap_tensorflow as stub

    x = stub.u32(stub.crc32c(data))
    return stub.u32(((x >> 15) | stub.u32(x << 17)) + 0xA282EAD8)


def test_tensorboards_record_reader_still_checks_through_the_module_function():
    """Fails loudly if TensorBoard stops looking up `masked_crc32c` at call time."""
    from tensorboard.compat.tensorflow_stub import pywrap_tensorflow as stub

    assert callable(stub.masked_crc32c) and callable(stub.crc32c)
    assert "masked_crc32c" in stub.PyRecordReader_New.GetNext.__code__.co_names


def test_native_checksum_is_installed_and_agrees_with_tensorboards(logdir):
    from tensorboard.compat.tensorflow_stub import pywrap_tensorflow as stub
    from tb_featmap import _crc

    # make test installs google-crc32c's C build: the pure-Python fallback would leave
    # TensorBoard's slow checksum in place, a broken install that must fail here.
    assert google_crc32c.implementation == "c"
    FeatureMapReader(logdir)
    assert stub.masked_crc32c is _crc.masked_crc32c
    assert _crc.install_for_reader() is True
    rng = np.random.default_rng(0)
    for size in (0, 1, 7, 8, 1000, 4097):
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        assert _crc.masked_crc32c(data) == _pure_python_masked_crc32c(data)


def test_a_corrupted_record_is_rejected_as_with_tensorboards_checksum(tmp_path, monkeypatch):
    from tensorboard.compat.tensorflow_stub import pywrap_tensorflow as stub

    with SummaryWriter(str(tmp_path)) as writer:
        for step in range(4):
            log_feature_maps(writer, {"x": torch.rand(1, 2, 8, 8)}, step)
    (path,) = tmp_path.glob("events.out.tfevents.*")
    data = bytearray(open(path, "rb").read())
    data[-200] ^= 0xFF  # inside the last record's payload
    open(path, "wb").write(bytes(data))

    native = [r.step for r in read(tmp_path, values=False)]
    with monkeypatch.context() as m:
        m.setattr(stub, "masked_crc32c", _pure_python_masked_crc32c)
        m.setattr("tb_featmap._crc.install_for_reader", lambda: False)
        pure = [r.step for r in read(tmp_path, values=False)]
    assert native == pure == [0, 1, 2]


def test_steps_logged_twice_follow_the_default_loaders_rule(tmp_path):
    """A restart from an older checkpoint: the newer writer's steps replace the older ones
    from the step it restarted at (the Rust data server's rule; tests/test_reliability.py
    checks the same against a real one)."""
    for seed, steps in ((0, range(6)), (100, range(2, 4))):
        with SummaryWriter(str(tmp_path / "run"), filename_suffix=f".{seed}") as writer:
            for step in steps:
                log_feature_maps(writer, {"x": torch.full((1, 1, 2, 2), float(seed + step))}, step)
    records = read(tmp_path, layer="x")
    assert [(r.step, float(r.values.max())) for r in records] == [(0, 0.0), (1, 1.0), (2, 102.0), (3, 103.0)]
