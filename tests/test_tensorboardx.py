"""log_feature_maps through a tensorboardX.SummaryWriter, read back by TensorBoard's own code."""

import glob
import os

import numpy as np
import pytest
import tensorboardX
import torch
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.compat.proto import summary_pb2

from tb_featmap import metadata
from tb_featmap.reader import read
from tb_featmap.summary import log_feature_maps  # noqa: E402

STEPS = (0, 3, 7)


def _activation(step: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(100 + step)
    return torch.randn(2, 4, 9, 7, generator=g) * torch.tensor([0.01, 1.0, 10.0, 1000.0]).view(1, 4, 1, 1)


@pytest.fixture
def logdir(tmp_path):
    writer = tensorboardX.SummaryWriter(str(tmp_path / "x"))
    for step in STEPS:
        log_feature_maps(writer, {"block": _activation(step), "vec": _activation(step)[:, :, 0, 0]},
                         step, max_samples=None)
    writer.add_scalar("loss", 1.0, 0)  # other data in the same run is left alone
    writer.close()
    return tmp_path


def test_values_read_back_within_the_quantisation_error(logdir):
    records = read(logdir, run="x", layer="block")
    assert [r.step for r in records] == list(STEPS)
    for record in records:
        source = _activation(record.step).numpy()
        assert record.values.shape == source.shape
        lo = source.min(axis=(2, 3), keepdims=True)
        hi = source.max(axis=(2, 3), keepdims=True)
        error = np.abs(record.values.astype(np.float64) - source)
        bound = (hi - lo) / 508 * (1 + 1e-4)  # float32 arithmetic in the decoder
        assert np.all(error <= bound), float((error / bound).max())
        # The bound is tight: a wrong scale would break it, a right one comes close to it.
        assert (error / bound).max() > 0.5
    vec = read(logdir, run="x", layer="vec", step=3)[0]
    assert vec.header["layout"] == "NF" and vec.values.shape == (2, 4, 1, 1)
    np.testing.assert_allclose(vec.values[:, :, 0, 0], _activation(3).numpy()[:, :, 0, 0], rtol=1e-6)


def test_events_carry_blob_sequence_metadata(logdir):
    (path,) = glob.glob(os.path.join(str(logdir), "x", "events.out.tfevents.*"))
    # The raw loader: events as written, before TensorBoard migrates anything.
    seen = {}
    for event in event_file_loader.LegacyEventFileLoader(path).Load():
        for value in event.summary.value:
            if value.HasField("metadata") and value.metadata.plugin_data.plugin_name == metadata.PLUGIN_NAME:
                seen.setdefault(value.tag, []).append(event.step)
                assert value.metadata.data_class == summary_pb2.DATA_CLASS_BLOB_SEQUENCE == 3
                assert metadata.parse_plugin_metadata(value.metadata.plugin_data.content).version == 1
                assert value.tensor.tensor_shape.dim[0].size == 3
    assert seen == {"feature_maps/block": list(STEPS), "feature_maps/vec": list(STEPS)}
