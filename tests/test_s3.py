"""Logs on object storage: write, read, export and serve through an S3-protocol server.

One moto server (tests/s3server.py) on a free loopback port for the module, stopped by its
pid; boto3 finds it through AWS_ENDPOINT_URL, set in this process for the module and passed
to every process the tests start. The module fixture writes two runs into the bucket, one with
torch's SummaryWriter and one with tensorboardX's; the tests read them back with read(), the
CLI, and real tensorboard processes.
"""

import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import tensorboardX
import torch
from PIL import Image
from torch.utils.tensorboard import SummaryWriter

from s3server import S3Server
from support import free_port
from tb_featmap import _fs, cli, log_feature_maps, read
from tb_featmap import summary as summary_module

BUCKET = "featmaps"
LOGDIR = f"s3://{BUCKET}/runs"
STEPS = (0, 1, 2)
WRITERS = {"torch": SummaryWriter, "tbx": tensorboardX.SummaryWriter}


def outputs(seed):
    generator = torch.Generator().manual_seed(seed)
    return {
        "conv": torch.randn(2, 4, 8, 8, generator=generator),
        "fc": torch.randn(2, 6, generator=generator),
    }


def close_to(got, want):
    """Within the uint8 encoding's error of want."""
    want = np.asarray(want)
    return got.shape == want.shape and np.abs(got - want).max() <= (want.max() - want.min()) / 500


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("moto"))
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in server.env.items():
                patch.setenv(name, value)
            yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def written(s3):
    """Each writer's run in s3://featmaps/runs: its results and warnings, per step."""
    s3.client().create_bucket(Bucket=BUCKET)
    logged = {}
    for run, writer_class in WRITERS.items():
        writer = writer_class(f"{LOGDIR}/{run}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results = [log_feature_maps(writer, outputs(step), step) for step in STEPS]
        writer.close()
        logged[run] = results, [str(w.message) for w in caught]
    return logged


@pytest.fixture(autouse=True)
def fresh_warnings():
    """log_feature_maps warns once per process and writer; start each test afresh."""
    summary_module._WARNED.clear()
    yield
    summary_module._WARNED.clear()


# --- the file layer ----------------------------------------------------------------------


def test_file_layer_contract(s3, written):
    """What tb_featmap/_fs.py relies on in TensorBoard's file layer (without TensorFlow)."""
    from tensorboard.compat import tf

    gfile = tf.io.gfile
    assert gfile.isdir(LOGDIR) and gfile.isdir(f"{LOGDIR}/torch")
    assert not gfile.isdir(f"{LOGDIR}/nothing") and not gfile.exists(f"{LOGDIR}/nothing")
    with pytest.raises(_fs.layer_errors()) as caught:  # botocore's ClientError, not OSError
        gfile.isdir("s3://no-such-bucket/runs")
    assert caught.value.response["Error"]["Code"] == "NoSuchBucket"
    with pytest.raises(ValueError):  # why check_logdir refuses a bucket's root itself
        gfile.isdir(f"s3://{BUCKET}")
    assert issubclass(tf.errors.OpError, Exception)
    assert _fs.join(f"{LOGDIR}/", "rank1") == f"{LOGDIR}/rank1"
    assert _fs.join("runs", "rank1") == os.path.join("runs", "rank1")


# --- item 1: the writers -----------------------------------------------------------------


@pytest.mark.parametrize("run", list(WRITERS))
def test_writer_logs_to_the_bucket(s3, written, run):
    results, warned = written[run]
    assert warned == []
    assert results == [{"feature_maps/conv": (1, 4, 8, 8), "feature_maps/fc": (1, 6, 1, 1)}] * 3
    assert [k for k in s3.keys(BUCKET, f"runs/{run}/") if "tfevents" in k]
    records = read(LOGDIR, run=run, layer="conv")
    assert [r.step for r in records] == list(STEPS)
    for record in records:
        assert close_to(record.values, outputs(record.step)["conv"][:1].numpy())


def _worker(writer):
    """The writer's background thread, the one that uploads."""
    file_writer = writer._get_file_writer()
    if isinstance(writer, SummaryWriter):
        return file_writer.event_writer._async_writer._worker
    return file_writer.event_writer._worker


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("run", list(WRITERS))
def test_lost_bucket_warns_once_and_training_goes_on(s3, run):
    bucket = f"doomed-{run}"
    s3.client().create_bucket(Bucket=bucket)
    writer = WRITERS[run](f"s3://{bucket}/run", flush_secs=1)
    assert log_feature_maps(writer, outputs(0), 0)
    s3.delete_bucket(bucket)
    log_feature_maps(writer, outputs(1), 1)  # queued: the upload fails in the background
    worker = _worker(writer)
    worker.join(timeout=60)  # it flushes within flush_secs, fails, and stops
    assert not worker.is_alive()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [log_feature_maps(writer, outputs(step), step) for step in (2, 3, 4)]
    assert results == [{}, {}, {}]
    failures = [w for w in caught if "could not write" in str(w.message)]
    assert len(failures) == 1, [str(w.message) for w in caught]
    assert failures[0].category is RuntimeWarning and failures[0].filename == __file__
    s3.client().create_bucket(Bucket=bucket)  # so that close() can flush
    with contextlib.suppress(Exception):  # torch's writer raises its stored error again
        writer.close()


# --- item 3: all_ranks -------------------------------------------------------------------

RANKS_SCRIPT = textwrap.dedent(
    """
    import sys
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
    from torch.utils.tensorboard import SummaryWriter
    from tb_featmap import log_feature_maps

    def worker(rank, logdir, port):
        address = f"tcp://127.0.0.1:{port}"
        dist.init_process_group("gloo", init_method=address, rank=rank, world_size=2)
        writer = SummaryWriter(logdir)
        for step in range(2):
            x = torch.full((1, 2, 4, 4), float(10 * rank + step)) + torch.arange(16.0).reshape(4, 4)
            assert log_feature_maps(writer, {"conv": x}, step, all_ranks=True), rank
        dist.barrier()
        writer.close()
        dist.destroy_process_group()

    if __name__ == "__main__":
        mp.spawn(worker, args=(sys.argv[1], int(sys.argv[2])), nprocs=2, join=True)
    """
)


def test_all_ranks_gives_each_rank_its_own_run_in_the_bucket(s3, written, tmp_path):
    """Two gloo processes on CPU, each writing s3://featmaps/ranks/rank<r>."""
    script = tmp_path / "train.py"
    script.write_text(RANKS_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), f"s3://{BUCKET}/ranks", str(free_port())],
        capture_output=True, text=True, timeout=240, env={**os.environ, **s3.env},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "could not write" not in done.stderr
    records = read(f"s3://{BUCKET}/ranks")
    assert sorted({r.run for r in records}) == ["rank0", "rank1"]
    for record in records:
        rank = int(record.run[-1])
        want = np.full((1, 2, 4, 4), 10.0 * rank + record.step) + np.arange(16.0).reshape(4, 4)
        assert close_to(record.values, want), (record.run, record.step)
    assert len(records) == 4


# --- item 2: read, ls, export ------------------------------------------------------------


def test_read_ls_and_export_from_the_bucket(s3, written, tmp_path, capsys):
    got = sorted((r.run, r.step) for r in read(LOGDIR) if r.layer == "conv")
    assert got == [(run, s) for run in ("tbx", "torch") for s in STEPS]

    assert cli.main(["ls", LOGDIR, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(d["run"], d["layer"], d["steps"]) for d in listed] == [
        (run, layer, 3) for run in ("tbx", "torch") for layer in ("conv", "fc")
    ]

    # The same export from the bucket and from a local copy of its files: the same pixels.
    s3.download(BUCKET, "runs", tmp_path / "mirror")
    images = []
    for logdir, name in ((LOGDIR, "remote.gif"), (str(tmp_path / "mirror"), "local.gif")):
        out = tmp_path / name
        args = ["export", logdir, "--run", "torch", "--layer", "conv", "--steps", "all", "-q"]
        assert cli.main([*args, "-o", str(out)]) == 0, capsys.readouterr().err
        with Image.open(out) as gif:
            images.append([np.asarray(frame.convert("RGB")) for frame in _frames(gif)])
    assert len(images[0]) == len(STEPS)
    assert all(np.array_equal(a, b) for a, b in zip(*images)) and len(images[0]) == len(images[1])


def _frames(gif):
    for index in range(gif.n_frames):
        gif.seek(index)
        yield gif.copy()


def test_errors_name_the_missing_bucket_or_path(s3, written, tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="bucket 'no-such-bucket' of logdir"):
        read("s3://no-such-bucket/runs")
    with pytest.raises(FileNotFoundError, match=f"logdir '{LOGDIR}/nothing' does not exist"):
        read(f"{LOGDIR}/nothing")
    with pytest.raises(ValueError, match="whole bucket.*s3://featmaps/<folder>"):
        read(f"s3://{BUCKET}")
    with pytest.raises(ValueError, match="nosuchprotocol"):
        read("nosuchprotocol://somewhere/runs")

    assert cli.main(["ls", "s3://no-such-bucket/runs"]) == 2
    assert "bucket 'no-such-bucket'" in capsys.readouterr().err
    out = f"{LOGDIR}/x.png"
    assert cli.main(["export", LOGDIR, "--run", "torch", "--layer", "conv", "-o", out]) == 2
    assert f"export writes a local file; got {out!r}" in capsys.readouterr().err


# --- items 4: a real tensorboard on the bucket, and live -----------------------------------


def _npy(tb, run, step):
    status, _, body = tb.get(
        f"/data/plugin/feature_maps/npy?run={run}&tag=feature_maps/conv&step={step}"
    )
    assert status == 200, body
    return np.load(io.BytesIO(body))


@pytest.mark.parametrize("loader", ["default", "--load_fast=false"])
def test_tensorboard_serves_the_bucket(s3, written, tmp_path, tensorboard_process, loader):
    flags = [] if loader == "default" else [loader]
    tb = tensorboard_process(LOGDIR, *flags, env={**os.environ, **s3.env}, log_dir=tmp_path)

    def runs():
        status, _, body = tb.get("/data/plugin/feature_maps/tags")
        return status == 200 and sorted(json.loads(body)) == ["tbx", "torch"]

    tb.wait_for(runs)
    for run in ("tbx", "torch"):
        for step in STEPS:
            assert close_to(_npy(tb, run, step), outputs(step)["conv"][:1].numpy())
    # TensorBoard's Rust data server reads local and gs:// paths only: by default TensorBoard
    # falls back to its Python loader for s3://, which never prints the data-server notice.
    assert "fast data loading" not in tb.output()


def test_rust_data_server_refuses_s3(s3, written, tmp_path, tensorboard_process):
    with pytest.raises(RuntimeError, match='unknown protocol "s3"'):
        tensorboard_process(
            LOGDIR, "--load_fast=true", env={**os.environ, **s3.env}, log_dir=tmp_path
        )


def test_steps_route_follows_new_steps_in_the_bucket(s3, written, tmp_path, tensorboard_process):
    logdir = f"s3://{BUCKET}/live"
    writer = SummaryWriter(f"{logdir}/run")
    tb = tensorboard_process(logdir, env={**os.environ, **s3.env}, log_dir=tmp_path)
    query = "/data/plugin/feature_maps/steps?run=run&tag=feature_maps/conv"

    def steps():
        status, _, body = tb.get(query)
        return [d["step"] for d in json.loads(body)] if status == 200 else None

    try:
        for batch in ((0, 1), (2, 3)):
            for step in batch:
                assert log_feature_maps(writer, outputs(step), step)
            writer.flush()  # uploads the event file again, now with these steps
            tb.wait_for(lambda: steps() == list(range(batch[-1] + 1)))
        assert close_to(_npy(tb, "run", 3), outputs(3)["conv"][:1].numpy())
    finally:
        writer.close()
