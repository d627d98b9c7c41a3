"""FeatureMapCallback with a real Lightning Trainer on CPU, read back with tb_featmap.reader."""

import warnings

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch import nn

from tb_featmap.lightning import FeatureMapCallback
from tb_featmap.reader import FeatureMapReader, read

PROBE_SIZE = 3


class TinyNet(pl.LightningModule):
    """Two convs and a head; remembers the mode and grad state of every forward pass."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.frozen = nn.Dropout(0.5)  # kept in eval mode by the user, see on_train_start
        self.head = nn.Linear(6, 2)
        self.calls = []  # (module training, frozen training, grad enabled, batch size)

    def forward(self, x):
        self.calls.append((self.training, self.frozen.training, torch.is_grad_enabled(), x.shape[0]))
        x = torch.relu(self.bn(self.conv1(x)))
        x = self.frozen(torch.relu(self.conv2(x)))
        return self.head(x.mean((2, 3)))

    def on_train_start(self):
        self.frozen.eval()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader():
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(
        torch.randn(32, 1, 8, 8, generator=g), torch.randint(0, 2, (32,), generator=g)
    )
    return torch.utils.data.DataLoader(data, batch_size=4)


def _probe():
    return torch.randn(PROBE_SIZE, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def _trainer(logger, callback, max_steps=6, **kwargs):
    return pl.Trainer(
        max_steps=max_steps, logger=logger, callbacks=[callback], accelerator="cpu", devices=1,
        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
        log_every_n_steps=1, **kwargs,
    )


def test_callback_logs_the_probe_every_n_steps(tmp_path):
    probe = _probe()
    before = probe.clone()
    model = TinyNet()
    callback = FeatureMapCallback(["conv1", "conv2"], probe, every_n_steps=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's hints about workers and log intervals
        _trainer(TensorBoardLogger(str(tmp_path)), callback).fit(model, _loader())

    layers = FeatureMapReader(tmp_path).layers()
    assert [(i.run, i.layer, i.steps, i.header["stored"]) for i in layers] == [
        ("lightning_logs/version_0", "conv1", (0, 2, 4, 6), [PROBE_SIZE, 4, 8, 8]),
        ("lightning_logs/version_0", "conv2", (0, 2, 4, 6), [PROBE_SIZE, 6, 4, 4]),
    ]
    # The probe ran in eval mode without grad; training went on in train mode afterwards,
    # and a submodule the user keeps in eval stayed in eval.
    probes = [c for c in model.calls if c[3] == PROBE_SIZE]
    steps = [c for c in model.calls if c[3] != PROBE_SIZE]
    assert probes == [(False, False, False, PROBE_SIZE)] * 4
    assert len(steps) == 6 and all(c[:3] == (True, False, True) for c in steps)
    assert torch.equal(probe, before)

    # What was logged is the final model's conv1 output on the probe, in eval mode.
    model.eval()
    with torch.no_grad():
        expected = model.conv1(probe).numpy()
    last = read(tmp_path, layer="conv1", step=6)[0].values
    span = expected.max(axis=(2, 3), keepdims=True) - expected.min(axis=(2, 3), keepdims=True)
    assert np.all(np.abs(last - expected) <= span / 508 + 1e-5)


def test_log_kwargs_reach_log_feature_maps_and_steps_log_once(tmp_path):
    callback = FeatureMapCallback(
        "conv*", _probe(), every_n_steps=1, max_samples=1, max_channels=2, prefix="probe"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Two batches per optimizer step: the same global_step ends two batches, and step 0
        # (logged when training starts) ends the first batch too.
        _trainer(TensorBoardLogger(str(tmp_path), name="acc"), callback, max_steps=3,
                 accumulate_grad_batches=2).fit(TinyNet(), _loader())
    layers = FeatureMapReader(tmp_path).layers()
    assert [(i.layer, i.steps, i.header["stored"][:2]) for i in layers] == [
        ("probe/conv1", (0, 1, 2, 3), [1, 2]), ("probe/conv2", (0, 1, 2, 3), [1, 2]),
    ]
    assert layers[0].header["dropped"]["channels"] == 2


def test_a_tuple_probe_is_unpacked(tmp_path):
    callback = FeatureMapCallback(["conv1"], (_probe(),), every_n_steps=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(TensorBoardLogger(str(tmp_path)), callback).fit(TinyNet(), _loader())
    assert [r.step for r in read(tmp_path, values=False)] == [0, 3, 6]


@pytest.mark.parametrize("logger", [False, "csv"])
def test_without_a_tensorboard_logger_fit_fails_clearly(tmp_path, logger):
    logger = CSVLogger(str(tmp_path)) if logger == "csv" else logger
    callback = FeatureMapCallback(["conv1"], _probe())
    with pytest.raises(ValueError, match="needs a TensorBoardLogger"):
        _trainer(logger, callback).fit(TinyNet(), _loader())


def test_an_unknown_layer_fails_before_training(tmp_path):
    model = TinyNet()
    callback = FeatureMapCallback(["conv3"], _probe())
    with pytest.raises(ValueError, match="'conv3' matches no module"):
        _trainer(TensorBoardLogger(str(tmp_path)), callback).fit(model, _loader())
    assert model.calls == []


@pytest.mark.parametrize(
    "args, kwargs, error, message",
    [
        ((["conv1"], None), {}, TypeError, "probe_batch"),
        (([], torch.zeros(1)), {}, ValueError, "layers is empty"),
        (([1], torch.zeros(1)), {}, TypeError, "layers must hold str"),
        ((["conv1"], torch.zeros(1)), {"every_n_steps": 0}, ValueError, "every_n_steps"),
        ((["conv1"], torch.zeros(1)), {"every_n_steps": 2.0}, TypeError, "every_n_steps"),
        ((["conv1"], torch.zeros(1)), {"max_sample": 1}, TypeError, "max_sample"),
        ((["conv1"], torch.zeros(1)), {"step": 1}, TypeError, "the callback supplies"),
    ],
)
def test_bad_arguments(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        FeatureMapCallback(*args, **kwargs)
