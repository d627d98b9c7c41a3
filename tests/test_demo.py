"""The demos write real feature-map runs: demo/train.py (importable run_all, the CLI that
serves TensorBoard) and demo/alexnet.py."""

import importlib.util
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from support import REPO, free_port
from tb_featmap import metadata, payload

DEMO = REPO / "demo"
STEPS = 30


def _load_train():
    spec = importlib.util.spec_from_file_location("tb_featmap_demo_train", DEMO / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train = _load_train()


def _accumulator(run_dir):
    acc = EventAccumulator(str(run_dir), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    return acc


def _decode(event):
    """(header, stats, values) of one feature-map step, through tb_featmap.payload."""
    header_blob, stats_blob, data_blob = event.tensor_proto.string_val
    header = payload.decode_header(header_blob)
    stats = payload.decode_stats(header, stats_blob)
    return header, stats, payload.decode_values(header, stats, data_blob)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("demo")
    run_dir = train.run_all(logdir, steps=STEPS)
    return logdir, run_dir, _accumulator(run_dir)


def test_run_all_logs_the_recorded_layers_as_feature_maps(demo_run):
    logdir, run_dir, acc = demo_run
    assert run_dir == logdir / train.RUN_NAME
    expected = {metadata.make_tag(name) for name in ("input", *train.RECORDED_LAYERS)}
    tags = set(acc.Tags()["tensors"])
    assert expected <= tags
    for tag in expected:
        meta = acc.SummaryMetadata(tag)
        assert meta.plugin_data.plugin_name == metadata.PLUGIN_NAME
        assert metadata.parse_plugin_metadata(meta.plugin_data.content).version == 1
        steps = [event.step for event in acc.Tensors(tag)]
        # Before the first step, every maps_every (STEPS // 40 -> 1) steps, and the last.
        assert steps == list(range(0, STEPS + 1)), tag


def test_probe_batch_is_stored_whole_with_the_expected_shapes(demo_run):
    _, _, acc = demo_run
    probe, captions = train.probe_batch()
    assert captions[0] == "grace_hopper.jpg" and len(captions) == len(probe) == 5
    size = train.IMAGE_SIZE
    shapes = {"input": [5, 1, size, size], "conv1": [5, 8, size, size],
              "relu1": [5, 8, size, size], "conv2": [5, 16, size // 2, size // 2],
              "conv3": [5, 32, size // 4, size // 4]}
    for name, stored in shapes.items():
        header, _, _ = _decode(acc.Tensors(metadata.make_tag(name))[-1])
        assert header["stored"] == stored, name
        assert header["dropped"]["samples"] == 0
    # The logged input is the probe batch itself (up to the uint8 quantisation).
    _, stats, values = _decode(acc.Tensors(metadata.make_tag("input"))[0])
    tolerance = (stats[..., 1] - stats[..., 0]).max() / 508 + 1e-6
    np.testing.assert_allclose(values, probe.numpy(), atol=tolerance)


def test_first_layer_activations_vary_and_change_with_training(demo_run):
    _, _, acc = demo_run
    events = acc.Tensors(metadata.make_tag("conv1"))
    _, stats, first = _decode(events[0])
    _, _, last = _decode(events[-1])
    std = stats[..., payload.STAT_FIELDS.index("std")]
    assert (std > 1e-3).all(), "every conv1 map should vary across the image"
    assert all(len(np.unique(first[0, c])) > 20 for c in range(first.shape[1]))
    assert not np.allclose(first, last), "training did not change the first layer's maps"
    _, _, relu = _decode(acc.Tensors(metadata.make_tag("relu1"))[-1])
    assert relu.min() >= 0 and relu.max() > 0


def test_scalars_are_logged(demo_run):
    _, _, acc = demo_run
    assert {"train/loss", "train/accuracy", "eval/accuracy"} <= set(acc.Tags()["scalars"])
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == [10, 20, 30]
    assert all(np.isfinite(e.value) and e.value > 0 for e in loss)
    assert all(0 <= e.value <= 1 for e in acc.Scalars("eval/accuracy"))


def test_run_all_restores_torch_threads(tmp_path):
    import torch

    before = torch.get_num_threads()
    train.run_all(tmp_path, steps=1, threads=1)
    assert torch.get_num_threads() == before


def test_progress_bar_without_tqdm(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    train.run_all(tmp_path, steps=4, progress=True)
    err = capsys.readouterr().err
    assert "training [" in err and "4/4" in err


def test_a_second_run_replaces_the_first(tmp_path):
    train.run_all(tmp_path, steps=2)
    run_dir = train.run_all(tmp_path, steps=3)
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    steps = [e.step for e in _accumulator(run_dir).Tensors(metadata.make_tag("conv1"))]
    assert steps == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "kwargs, error",
    [({"steps": 0}, ValueError), ({"steps": 2.5}, TypeError), ({"steps": True}, TypeError),
     ({"maps_every": 0}, ValueError), ({"scalars_every": "10"}, TypeError),
     ({"threads": 0}, ValueError)],
)
def test_run_all_rejects_bad_arguments(tmp_path, kwargs, error):
    name = next(iter(kwargs))
    with pytest.raises(error, match=name):
        train.run_all(tmp_path, **{"steps": 1, **kwargs})
    assert not list(tmp_path.rglob("events.out.tfevents.*"))


def test_make_batch_is_seeded_and_checks_labels():
    import torch

    labels = torch.tensor([0, 1, 2, 3])
    a = train.make_batch(labels, torch.Generator().manual_seed(7))
    b = train.make_batch(labels, torch.Generator().manual_seed(7))
    assert a.shape == (4, 1, train.IMAGE_SIZE, train.IMAGE_SIZE) and torch.equal(a, b)
    with pytest.raises(ValueError, match="labels"):
        train.make_batch(torch.tensor([4]), torch.Generator())


def test_cli_errors_are_one_line_and_exit_2(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for args, message in [(["--steps", "0"], "--steps must be at least 1"),
                              (["--port", str(port)], f"port {port} is in use")]:
            proc = subprocess.run(
                [sys.executable, str(DEMO / "train.py"), "--logdir", str(tmp_path), *args],
                capture_output=True, text=True, timeout=120,
            )
            assert proc.returncode == 2
            assert message in proc.stderr.strip().splitlines()[-1]
    assert not list(tmp_path.rglob("events.out.tfevents.*")), "nothing is trained on bad arguments"


def test_cli_trains_then_serves_tensorboard_until_sigterm(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(DEMO / "train.py"), "--logdir", str(tmp_path), "--steps", "3",
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=(tmp_path / "stderr.txt").open("wb"), text=True,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        lines = _read_until(proc, lambda line: line.startswith("TensorBoard (pid "), 240)
        assert lines and lines[-1].startswith("TensorBoard (pid "), (
            lines, (tmp_path / "stderr.txt").read_text()
        )
        tensorboard_pid = int(lines[-1].split("(pid ")[1].split(")")[0])
        with urllib.request.urlopen(url + "data/plugins_listing", timeout=30) as response:
            assert metadata.PLUGIN_NAME in response.read().decode()
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        deadline = time.monotonic() + 15
        while _alive(tensorboard_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(tensorboard_pid), "TensorBoard outlived the demo"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _read_until(proc, predicate, timeout: float) -> list:
    """Lines of proc's stdout up to the first that satisfies predicate, EOF or timeout."""
    lines: "queue.Queue" = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in proc.stdout], daemon=True).start()
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if proc.poll() is not None and lines.empty():
                break
            continue
        seen.append(line)
        if predicate(line):
            break
    return seen


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_alexnet_demo_logs_its_five_conv_layers(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(DEMO / "alexnet.py"), "--no-serve", "--logdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    expected = {"features.0": (1, 64, 55, 55), "features.3": (1, 192, 27, 27),
                "features.6": (1, 384, 13, 13), "features.8": (1, 256, 13, 13),
                "features.10": (1, 256, 13, 13)}
    for name, shape in expected.items():
        assert f"{metadata.make_tag(name)}: {shape}" in proc.stdout
    acc = _accumulator(tmp_path)
    assert set(acc.Tags()["tensors"]) == {metadata.make_tag(name) for name in expected}
    events = acc.Tensors(metadata.make_tag("features.0"))
    assert [e.step for e in events] == list(range(0, 91, 10))  # the photo's angle in degrees
    header, stats, values = _decode(events[0])
    assert header["stored"] == list(expected["features.0"])
    assert values.std() > 0 and np.isfinite(stats).all()
    # Each angle is a different picture: the maps change from step to step.
    _, _, turned = _decode(events[3])
    assert not np.allclose(values, turned)
