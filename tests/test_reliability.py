"""Damaged and foreign data, and a live training run: the plugin serves what it can read.

Every case starts from real event files written by log_feature_maps (or TensorBoard's own
writers), then damages bytes on disk or rewrites the events with a field changed, and
reads the result through TensorBoard's Python data provider and through a real
tensorboard process with the Rust data server (and, for the live run, both loaders).
"""

import io
import json
import logging
import os
import struct
import time
import urllib.parse
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.compat.proto import event_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from torch.utils.tensorboard import SummaryWriter

from support import start_live_trainer, TensorBoardProcess, wsgi_client
from tb_featmap import log_feature_maps
from tb_featmap.reader import read

ROUTE = "/data/plugin/feature_maps/"
TAG = "feature_maps/conv"
STEPS = list(range(6))


def activation(step: int) -> torch.Tensor:
    return torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(step)) + step


def write_run(run_dir: Path, steps=STEPS, seed=0) -> None:
    """A real run: log_feature_maps at each step, then a clean close."""
    writer = SummaryWriter(run_dir)
    for step in steps:
        log_feature_maps(writer, {"conv": activation(seed + step), "fc": torch.rand(1, 5)}, step)
    writer.close()


def event_files(run_dir: Path):
    return sorted(run_dir.glob("events.out.tfevents.*"))


def records(path: Path):
    """(offset, length) of each TFRecord in an event file, and its parsed Event."""
    data, offset, result = path.read_bytes(), 0, []
    while offset + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[offset:offset + 8])
        event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
        result.append((offset, 16 + length, event))
        offset += 16 + length
    return result


def rewrite(source: Path, target: Path, mutate) -> None:
    """Copy source's feature-map events into a new event file under target, each passed
    through mutate(event) first (which edits it in place), with TensorBoard's own writer."""
    writer = EventFileWriter(str(target))
    for path in event_files(source):
        for event in event_file_loader.EventFileLoader(str(path)).Load():
            if event.HasField("summary"):
                mutate(event)
                writer.add_event(event)
    writer.close()


def blobs_of(event, tag=TAG):
    for value in event.summary.value:
        if value.tag == tag:
            return value.tensor
    raise KeyError(tag)


def at_step(step, change):
    """A mutate function that applies change(tensor) to TAG at one step only."""
    def mutate(event):
        if event.step == step:
            change(blobs_of(event))
    return mutate


def set_blob(index, make):
    def change(tensor):
        tensor.string_val[index] = make(tensor.string_val[index])
    return change


def header_with(**fields):
    def make(blob):
        header = json.loads(blob)
        header.update(fields)
        return json.dumps(header).encode()
    return make


def newer_metadata(event):
    for value in event.summary.value:
        value.metadata.plugin_data.content = b'{"version": 2}'


def drop_last_blob(tensor):
    del tensor.string_val[2]
    tensor.tensor_shape.dim[0].size = 2


def as_float_tensor(tensor):
    tensor.Clear()
    tensor.dtype = 1  # DT_FLOAT, under this plugin's name and blob-sequence data class
    tensor.float_val.extend([1.0, 2.0, 3.0])


# name -> (how it is made, steps /steps lists, steps whose maps can be read). Where
# TensorBoard's two loaders differ, steps is {"python": [...], "rust": [...]}.
CASES = {}


def case(name, steps, readable):
    def register(make):
        CASES[name] = (make, steps, readable)
        return make
    return register


@case("good", STEPS, STEPS)
def _good(root, good):
    write_run(root / "good")


@case("truncated", STEPS[:-1], STEPS[:-1])
def _truncated(root, good):
    write_run(root / "truncated")
    (path,) = event_files(root / "truncated")
    offset, length, event = records(path)[-1]
    assert event.step == STEPS[-1]
    os.truncate(path, offset + length // 2)  # the last record cut in half


# Both loaders stop reading a file at a record whose checksum fails (as at a truncated one):
# the steps before it are served.
@case("flipped_bytes", [0, 1, 2], [0, 1, 2])
def _flipped(root, good):
    write_run(root / "flipped_bytes")
    (path,) = event_files(root / "flipped_bytes")
    offset, length, event = next(r for r in records(path) if r[2].step == 3)
    data = bytearray(path.read_bytes())
    for i in range(offset + 40, offset + length - 8, 97):
        data[i] ^= 0xFF  # the record's checksum no longer matches
    path.write_bytes(bytes(data))


@case("other_plugins_only", None, [])
def _foreign(root, good):
    writer = SummaryWriter(root / "other_plugins_only")
    for step in STEPS:
        writer.add_scalar("conv", 0.5 * step, step)
        writer.add_image(TAG, torch.rand(3, 8, 8), step)
    writer.close()


# Left out of /tags (and warned about). The step routes judge each step by its header,
# which here still says version 1, so they serve it.
@case("metadata_version_2", STEPS, STEPS)
def _metadata_v2(root, good):
    rewrite(good, root / "metadata_version_2", newer_metadata)


@case("header_version_2", STEPS, STEPS[:-1])
def _header_v2(root, good):
    rewrite(good, root / "header_version_2", at_step(5, set_blob(0, header_with(version=2))))


@case("bad_zlib", STEPS, [0, 1, 3, 4, 5])
def _bad_zlib(root, good):
    rewrite(good, root / "bad_zlib", at_step(2, set_blob(2, lambda b: b[:2] + b"\x00garbage" * 9)))


@case("wrong_stats_length", STEPS, [0, 1, 3, 4, 5])
def _bad_stats(root, good):
    rewrite(good, root / "wrong_stats_length", at_step(2, set_blob(1, lambda b: b[:-4])))


@case("garbage_header", STEPS, [0, 1, 2, 3, 4])
def _garbage_header(root, good):
    rewrite(good, root / "garbage_header", at_step(5, set_blob(0, lambda b: b"\xff\xfe<html>" + b[:5])))


@case("header_bad_fields", STEPS, [0, 1, 2, 3, 4])
def _bad_fields(root, good):
    rewrite(good, root / "header_bad_fields", at_step(5, set_blob(0, header_with(seq="x", dropped=[1]))))


@case("two_blobs", STEPS, [0, 1, 2, 3, 4])
def _two_blobs(root, good):
    rewrite(good, root / "two_blobs", at_step(5, drop_last_blob))


# The Rust data server drops a non-string tensor; the Python provider lists it, unreadable.
@case("float_tensor", {"python": STEPS, "rust": [0, 1, 2, 4, 5]}, [0, 1, 2, 4, 5])
def _float_tensor(root, good):
    rewrite(good, root / "float_tensor", at_step(3, as_float_tensor))


@case("restarted", list(range(10)), list(range(10)))
def _restarted(root, good):
    write_run(root / "restarted", range(5))
    time.sleep(1.1)  # event file names carry whole seconds; keep them in order
    write_run(root / "restarted", range(5, 10))


# The Rust data server drops the first writer's steps 8 and 9 (orphaned by the restart); the
# Python loader keeps them. Either way each step appears once, steps 3-7 the second writer's.
@case("restarted_back", {"python": list(range(10)), "rust": list(range(8))}, list(range(10)))
def _restarted_back(root, good):
    write_run(root / "restarted_back", range(10))
    time.sleep(1.1)
    write_run(root / "restarted_back", range(3, 8), seed=100)  # resumed from an older checkpoint


# Issue 10's adversarial pass: each of these made /tags (both loaders) or the step routes a 500.
@case("encoding_list", STEPS, STEPS[:-1])
def _encoding_list(root, good):
    rewrite(good, root / "encoding_list", at_step(5, set_blob(0, header_with(encoding=["uint8"]))))


def nested(depth):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


@case("nested_layout", STEPS, STEPS[:-1])
def _nested_layout(root, good):
    # Deep enough for a RecursionError in TensorBoard's JSON cleansing, within json's limit.
    rewrite(good, root / "nested_layout", at_step(5, set_blob(0, header_with(layout=nested(900)))))


def bool_sizes(tensor):
    header = json.loads(tensor.string_val[0])
    header["stored"] = [True, True, True, True]  # 1 x 1 x 1 x 1 to Python, but not ints
    tensor.string_val[0] = json.dumps(header).encode()
    tensor.string_val[1] = tensor.string_val[1][:24]  # stats of one map: consistent sizes
    tensor.string_val[2] = zlib.compress(b"\0")


@case("bool_stored", STEPS, [0, 1, 3, 4, 5])
def _bool_stored(root, good):
    rewrite(good, root / "bool_stored", at_step(2, bool_sizes))


def nested_metadata(event):
    for value in event.summary.value:
        value.metadata.plugin_data.content = b"[" * 50000 + b"]" * 50000


# Left out of /tags, like metadata_version_2; the step routes judge each step by its header.
@case("nested_metadata", STEPS, STEPS)
def _nested_metadata(root, good):
    rewrite(good, root / "nested_metadata", nested_metadata)


def bomb(blob):
    return zlib.compress(b"\0" * (256 << 20), 9)  # 256 KiB that inflates to 256 MiB


@case("zip_bomb", STEPS, [0, 1, 3, 4, 5])
def _zip_bomb(root, good):
    rewrite(good, root / "zip_bomb", at_step(2, set_blob(2, bomb)))


NEGATIVE = [step - 3 for step in STEPS]


# Hand-written negative steps: listed by /steps, so /maps and /npy serve them too.
@case("negative_steps", NEGATIVE, NEGATIVE)
def _negative_steps(root, good):
    def shift(event):
        event.step -= 3
    rewrite(good, root / "negative_steps", shift)


SERIES_SKIPPED = {"metadata_version_2", "nested_metadata"}


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("damaged")
    good = tmp_path_factory.mktemp("source") / "run"
    write_run(good)
    for make, _, _ in CASES.values():
        make(root, good)
    return root


def expected_values(case_name, step, loader):
    if case_name == "restarted_back" and 3 <= step < 8 and loader == "rust":
        return activation(100 + step)  # the second writer's values replace the first's
    if case_name == "negative_steps":
        return activation(step + 3)
    # TensorBoard's Python provider addresses a blob by run, tag and step, and finds the
    # first writer's: its /steps lists the step once, with the second writer's wall time.
    return activation(step)


def check_body(status, headers, body):
    assert status in (200, 400, 404), (status, body[:300])
    assert b"Traceback" not in body
    if status != 200:
        assert headers["Content-Type"].startswith("text/plain") and len(body) < 400, body


def checked(get):
    """get(path) -> (status, headers, body), each reply checked by check_body as it arrives:
    no response a test makes, not even a poll that waits for data, may be a 500."""
    def checked_get(path):
        status, headers, body = get(path)
        assert status in (200, 400, 404), (path, status, body[:300])
        check_body(status, headers, body)
        return status, headers, body
    return checked_get


def assert_no_server_error(tb):
    """TensorBoard's log names no failed request. A handler's exception is logged by werkzeug
    as "Error on request" with a traceback; the status 500 itself is not logged, so the
    status of every reply is checked where it arrives (`checked`)."""
    output = tb.output()
    assert "Traceback" not in output and "Error on request" not in output, output[-3000:]


# /maps checks the header and the stats but passes the compressed maps on undecoded (the
# browser inflates them and shows an error for that step); /npy inflates them and says 404.
MAPS_UNCHECKED = {"bad_zlib": [2], "zip_bomb": [2]}
# /stats reads only the header and the stats, so it also counts these steps.
STATS_READABLE = {"bad_zlib": [2], "two_blobs": [5], "zip_bomb": [2]}


def expected_steps(name, loader):
    steps = CASES[name][1]
    return steps[loader] if isinstance(steps, dict) else steps


def check_case(get, name, loader):
    """Assert one case through get(path) -> (status, headers, body)."""
    steps = expected_steps(name, loader)
    readable = [s for s in CASES[name][2] if s in (steps or [])]
    status, headers, body = get(ROUTE + f"steps?run={name}&tag={TAG}")
    check_body(status, headers, body)
    if steps is None:
        assert status == 404, body
        return
    assert status == 200, body
    listed = [s["step"] for s in json.loads(body)]
    assert listed == steps, f"{name}: {listed}"
    for step in steps:
        for route in ("maps", "npy"):
            status, headers, body = get(ROUTE + f"{route}?run={name}&tag={TAG}&step={step}")
            check_body(status, headers, body)
            ok = step in readable or (route == "maps" and step in MAPS_UNCHECKED.get(name, []))
            assert status == (200 if ok else 404), (name, route, step, body)
        if step in readable:
            got = np.load(io.BytesIO(body))
            want = expected_values(name, step, loader).numpy()
            assert np.abs(got - want).max() <= (want.max() - want.min()) / 500, (name, step)
    status, headers, body = get(ROUTE + f"stats?run={name}&tag={TAG}")
    check_body(status, headers, body)
    counted = len(readable) + len(STATS_READABLE.get(name, []))
    assert status == 200 and json.loads(body)["steps"] == counted, (name, body)
    # The other layer of the same steps is untouched by damage to this one.
    status, _, body = get(ROUTE + f"npy?run={name}&tag=feature_maps/fc&step={steps[0]}")
    assert status == 200


def unreadable(name, loader):
    """Steps whose header or statistics do not decode: what /tags lists as `skipped`."""
    readable = CASES[name][2] + STATS_READABLE.get(name, [])
    return [s for s in expected_steps(name, loader) or [] if s not in readable]


def check_tags(tags, loader, complete=False):
    """`complete`: after /stats read every step, `skipped` names each unreadable one."""
    for name, (_, _, readable) in CASES.items():
        steps = expected_steps(name, loader)
        if readable and name not in SERIES_SKIPPED:
            info = tags[name][TAG]
            assert info["steps"] == len(steps) and info["maxStep"] == steps[-1], (name, info)
            assert info["stored"] == [1, 3, 8, 8]
            assert tags[name]["feature_maps/fc"]["stored"] == [1, 5, 1, 1]
            bad = unreadable(name, loader)
            newer = [s for s in bad if s > max(set(steps) - set(bad))]  # met by /tags itself
            assert set(newer) <= set(info["skipped"]) <= set(bad), (name, info["skipped"])
            if complete:
                assert info["skipped"] == bad, (name, info["skipped"])
        else:
            assert name not in tags, name


@pytest.fixture(scope="module")
def client(logdir):
    return wsgi_client(logdir)


def wsgi_get(client):
    def get(path):
        response = client.get(path)
        return response.status_code, response.headers, response.get_data()
    return checked(get)


def test_tags_lists_every_readable_layer_and_warns_once(client, caplog):
    with caplog.at_level(logging.WARNING, logger="tb_featmap.plugin"):
        for _ in range(3):
            status, headers, body = wsgi_get(client)(ROUTE + "tags")
            check_body(status, headers, body)
            assert status == 200
            check_tags(json.loads(body), "python")
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == len(set(warnings)), warnings  # each problem once, not per request
    assert any("format version 2" in w for w in warnings)
    assert any("header_version_2" in w and "newer" in w for w in warnings)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_case_through_the_python_data_provider(client, name):
    check_case(wsgi_get(client), name, "python")


def test_tags_says_which_steps_were_skipped_once_stats_read_them(client):
    for name in CASES:
        wsgi_get(client)(ROUTE + f"stats?run={name}&tag={TAG}")
    status, _, body = wsgi_get(client)(ROUTE + "tags")
    assert status == 200
    check_tags(json.loads(body), "python", complete=True)


@pytest.fixture(scope="module")
def rust_tensorboard(logdir):
    tb = TensorBoardProcess(logdir)
    yield tb, checked(tb.get)
    tb.stop()


def test_each_case_through_a_real_tensorboard_with_the_rust_data_server(rust_tensorboard):
    tb, get = rust_tensorboard

    def loaded():
        status, _, body = get(ROUTE + "tags")
        tags = json.loads(body) if status == 200 else {}
        return all(
            name in tags and tags[name][TAG]["steps"] == len(expected_steps(name, "rust"))
            for name, (_, _, readable) in CASES.items() if readable and name not in SERIES_SKIPPED
        ) and tags

    check_tags(tb.wait_for(loaded, timeout=90), "rust")
    for name in CASES:
        check_case(get, name, "rust")
    check_tags(json.loads(get(ROUTE + "tags")[2]), "rust", complete=True)
    for _ in range(2):
        assert get(ROUTE + "tags")[0] == 200
    assert_no_server_error(tb)
    output = tb.output()
    warnings = [line.split("] ", 1)[1] for line in output.splitlines() if "plugin.py" in line]
    assert warnings and len(warnings) == len(set(warnings)), warnings  # each once


def test_read_gives_what_the_default_loader_serves_for_steps_logged_twice(logdir, rust_tensorboard):
    """After a restart from an older checkpoint, read() (and so the CLI) follow TensorBoard's
    default loader, the Rust data server: the same steps, with the newer writer's maps."""
    (tb, get), name = rust_tensorboard, "restarted_back"
    want_steps = expected_steps(name, "rust")
    steps_url = ROUTE + f"steps?run={name}&tag={TAG}"
    tb.wait_for(lambda: [s["step"] for s in json.loads(get(steps_url)[2])] == want_steps)
    records = read(logdir, run=name, layer="conv")
    assert [r.step for r in records] == want_steps
    for record in records:
        status, _, body = get(ROUTE + f"npy?run={name}&tag={TAG}&step={record.step}")
        assert status == 200
        np.testing.assert_array_equal(np.load(io.BytesIO(body)), record.values)
    want = activation(100 + 4).numpy()  # the second writer's step 4, not the first's
    assert np.abs(records[4].values - want).max() <= (want.max() - want.min()) / 500


# --- live training ----------------------------------------------------------------------

@pytest.mark.parametrize("loader_flags", [[], ["--load_fast=false"]], ids=["rust", "python"])
def test_live_training_is_read_while_it_writes(tmp_path, tensorboard_process, loader_flags):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    trainer = start_live_trainer(logdir / "live", 15)
    try:
        tb = tensorboard_process(logdir, *loader_flags)
        get = checked(tb.get)
        seen, polls = [], 0
        while trainer.poll() is None:
            polls += 1
            status, headers, body = get(ROUTE + "tags")
            check_body(status, headers, body)
            assert status == 200, body
            tags = json.loads(body)
            if "live" in tags:
                steps = [s["step"] for s in json.loads(get(ROUTE + f"steps?run=live&tag={TAG}")[2])]
                assert steps == list(range(len(steps))), steps  # complete steps, in order
                seen.append(len(steps))
                status, headers, body = get(ROUTE + f"npy?run=live&tag={TAG}&step={steps[-1]}")
                check_body(status, headers, body)
                assert status == 200 and np.load(io.BytesIO(body)).shape == (2, 8, 32, 32)
                status, _, body = get(ROUTE + f"maps?run=live&tag={TAG}&step={steps[-1]}")
                assert status == 200 and body[:4] == b"TBFM"
            time.sleep(0.4)
        out, err = trainer.communicate()
        assert trainer.returncode == 0, err
        logged = len(out.split())
        # The series grew while training ran: seen at several different lengths.
        assert len(set(seen)) >= 3 and seen == sorted(seen), seen
        final = tb.wait_for(
            lambda: (lambda t: t.get("live", {}).get(TAG, {}).get("steps") == logged and t)(
                json.loads(get(ROUTE + "tags")[2])
            ),
            timeout=30,
        )
        assert final["live"][TAG]["logged"] == logged
        assert_no_server_error(tb)
    finally:
        if trainer.poll() is None:
            trainer.kill()
            trainer.wait()


@pytest.mark.parametrize("loader_flags", [[], ["--load_fast=false"]], ids=["rust", "python"])
def test_a_half_written_record_waits_until_it_is_complete(tmp_path, tensorboard_process, loader_flags):
    source = tmp_path / "source"
    write_run(source)
    (path,) = event_files(source)
    data = path.read_bytes()
    offset, length, event = records(path)[-1]
    assert event.step == STEPS[-1]
    live = tmp_path / "logs" / "live"
    live.mkdir(parents=True)
    target = live / path.name
    target.write_bytes(data[:offset + length // 2])  # the writer is in the middle of step 5
    tb = tensorboard_process(tmp_path / "logs", *loader_flags)
    get = checked(tb.get)

    def steps():
        status, headers, body = get(ROUTE + f"steps?run=live&tag={TAG}")
        check_body(status, headers, body)
        return [s["step"] for s in json.loads(body)] if status == 200 else []

    assert tb.wait_for(lambda: steps() == STEPS[:-1])
    time.sleep(2.5)  # a few reload cycles over the half record change nothing
    assert steps() == STEPS[:-1]
    status, _, body = get(ROUTE + f"npy?run=live&tag={TAG}&step={STEPS[-1]}")
    assert status == 404 and b"no step 5" in body
    with open(target, "ab") as f:
        f.write(data[offset + length // 2:])
    assert tb.wait_for(lambda: steps() == STEPS)
    status, _, body = get(ROUTE + f"npy?run=live&tag={TAG}&step={STEPS[-1]}")
    want = activation(STEPS[-1]).numpy()
    assert status == 200 and np.abs(np.load(io.BytesIO(body)) - want).max() <= (want.max() - want.min()) / 500
    assert_no_server_error(tb)


ODD_NAMES = {"plain": True, "é😀 ünï": True, 'a"quote': False, "back\\slash": False, "tab\tand\x01": False}


@pytest.mark.parametrize("loader_flags", [[], ["--load_fast=false"]], ids=["rust", "python"])
def test_names_the_rust_data_server_cannot_read_cost_only_their_layer(tmp_path, tensorboard_process, loader_flags):
    """The Rust data server rejects its own blob keys for names that JSON escapes (a quote, a
    backslash, a control character): those layers are left out, the rest is served."""
    writer = SummaryWriter(tmp_path / "logs" / "run")
    log_feature_maps(writer, {name: activation(i) for i, name in enumerate(ODD_NAMES)}, 0)
    writer.close()
    tb = tensorboard_process(tmp_path / "logs", *loader_flags)
    get = checked(tb.get)
    readable = {name for name, ok in ODD_NAMES.items() if ok or loader_flags}
    tags = tb.wait_for(lambda: (lambda r: r[0] == 200 and json.loads(r[2]))(get(ROUTE + "tags")))
    assert {info["layer"] for info in tags["run"].values()} == readable
    for i, name in enumerate(ODD_NAMES):
        query = urllib.parse.urlencode({"run": "run", "tag": f"feature_maps/{name}", "step": 0})
        status, headers, body = get(ROUTE + "npy?" + query)
        check_body(status, headers, body)
        assert status == (200 if name in readable else 404), (name, body)
        if name in readable:
            want = activation(i).numpy()
            assert np.abs(np.load(io.BytesIO(body)) - want).max() <= (want.max() - want.min()) / 500
    assert_no_server_error(tb)


def test_stats_over_a_restart_that_logged_fewer_samples(tmp_path):
    """Steps 0-2 logged 2 samples, steps 3-5 (after a restart) 1: sample 1 has stats for
    the steps that hold it, instead of the whole layer failing."""
    writer = SummaryWriter(tmp_path / "run")
    for step in range(6):
        x = torch.cat([activation(step), activation(100 + step)])
        log_feature_maps(writer, {"conv": x}, step, max_samples=2 if step < 3 else 1)
    writer.close()
    client = wsgi_client(tmp_path)

    def stats(sample):
        response = client.get(ROUTE + "stats", query_string={"run": "run", "tag": TAG, "sample": sample})
        return response.status_code, response.get_data()

    status, body = stats(1)
    assert status == 200 and json.loads(body)["steps"] == 3
    want = torch.stack([activation(100 + s)[0] for s in range(3)]).amax(dim=(0, 2, 3))
    np.testing.assert_allclose(json.loads(body)["max"], want.numpy(), rtol=1e-6)
    status, body = stats(0)
    assert status == 200 and json.loads(body)["steps"] == 6
    status, body = stats(2)
    assert status == 404 and b"sample 2 not stored; this layer has 2" in body
