"""The SummaryWriter internals tb_featmap relies on (tb_featmap/_writers.py). If one of
these fails after an upgrade of torch, tensorboardX or TensorBoard, _writers.py needs work."""

import glob

import pytest
import torch
import tensorboardX
from tensorboard.compat.tensorflow_stub import pywrap_tensorflow
from tensorboard.summary.writer import record_writer
from torch.utils.tensorboard import SummaryWriter

from tb_featmap import _crc, log_feature_maps


@pytest.mark.parametrize("writer_class", [SummaryWriter, tensorboardX.SummaryWriter])
def test_writer_internals_exist(tmp_path, writer_class):
    writer = writer_class(str(tmp_path))
    file_writer = writer._get_file_writer()
    assert callable(file_writer.add_summary) and callable(file_writer.get_logdir)
    assert writer.all_writers is not None
    if writer_class is tensorboardX.SummaryWriter:
        event_writer = file_writer.event_writer  # what _writers._put_tensorboardx_event uses
        assert event_writer._worker.is_alive() and event_writer._closed is False
        assert callable(event_writer._event_queue.cancel_join_thread)
        from tensorboardX.proto import event_pb2

        event_writer._event_queue.put(event_pb2.Event(step=1, wall_time=1.0), timeout=1)
    writer.close()
    assert writer.all_writers is None  # what EventSink.closed() checks


def test_record_writer_still_uses_the_stub_checksum():
    assert hasattr(record_writer, "masked_crc32c")
    data = bytes(range(256)) * 100
    assert _crc.masked_crc32c(data) == pywrap_tensorflow.masked_crc32c(data)


def test_native_checksum_writes_byte_identical_files(tmp_path, monkeypatch):
    outputs = {"a": torch.rand(1, 4, 8, 8)}

    def write(logdir, crc):
        monkeypatch.setattr(record_writer, "masked_crc32c", crc)
        monkeypatch.setattr(_crc, "install_for_writer", lambda: True)
        writer = SummaryWriter(str(logdir), filename_suffix=".x")
        log_feature_maps(writer, outputs, 0, walltime=1.0)
        writer.close()
        return glob.glob(str(logdir / "*"))[0]

    python = write(tmp_path / "python", pywrap_tensorflow.masked_crc32c)
    native = write(tmp_path / "native", _crc.masked_crc32c)
    # The file's first record holds the time the file was opened; compare all the rest.
    with open(python, "rb") as f1, open(native, "rb") as f2:
        a, b = f1.read(), f2.read()
    first = 8 + 4 + int.from_bytes(a[:8], "little") + 4
    assert len(a) == len(b) > first + 500 and a[first:] == b[first:]


def test_install_is_idempotent_and_leaves_foreign_checksums(monkeypatch):
    monkeypatch.setattr(record_writer, "masked_crc32c", pywrap_tensorflow.masked_crc32c)
    assert _crc.install_for_writer() is True
    assert record_writer.masked_crc32c is _crc.masked_crc32c
    assert _crc.install_for_writer() is True

    def tensorflow_crc(data):
        return 0

    monkeypatch.setattr(record_writer, "masked_crc32c", tensorflow_crc)
    assert _crc.install_for_writer() is False
    assert record_writer.masked_crc32c is tensorflow_crc

