"""``tb-featmap export`` with the tab's insight choices: --overlay/--alpha, --top/--by, --channels.

Each export is compared with tb_featmap.render drawing the same records read back with
tb_featmap.read, and with the statistics it ranks by, computed here from the values.
"""

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.tensorboard import SummaryWriter

from tb_featmap import render
from tb_featmap.cli import main
from tb_featmap.reader import read
from tb_featmap.summary import log_feature_maps

STEPS = (0, 10)
C = 6


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_insight") / "logs"
    with SummaryWriter(str(root / "train")) as writer:
        for step in STEPS:
            g = torch.Generator().manual_seed(step)
            spread = torch.randperm(C, generator=g).float() + 1
            conv = torch.randn(1, C, 4, 4, generator=g) * spread.view(1, C, 1, 1)
            image = torch.rand(1, 3, 8, 8, generator=g)
            log_feature_maps(writer, {"input": image, "conv": conv, "wide": torch.rand(1, 1, 4, 8)}, step)
    return root


def _export(logdir, tmp_path, *args):
    out = tmp_path / "out.png"
    code = main(["export", str(logdir), "--run", "train", "--layer", "conv", "-q", "--scale", "1",
                 "-o", str(out), *args])
    assert code == 0
    return np.asarray(Image.open(out).convert("RGB"))


def _records(logdir, layer):
    return {r.step: r for r in read(str(logdir), run="train", layer=layer)}


def test_channels_draws_only_the_listed_channels(logdir, tmp_path):
    conv = _records(logdir, "conv")[STEPS[-1]]
    image = _export(logdir, tmp_path, "--channels", "1,3-4")
    assert image.shape == (4 + 1 + 4, 4 + 1 + 4, 3)  # three maps: a 2 x 2 grid
    assert np.array_equal(image, render.render_record(conv, channels=[1, 3, 4]))
    assert not np.array_equal(image, render.render_record(conv, channels=[0, 1, 2]))


@pytest.mark.parametrize("by", ["std", "mean", "zero_fraction", "change"])
def test_top_k_draws_the_k_highest_by_the_statistic(logdir, tmp_path, by):
    records = _records(logdir, "conv")
    now, before = records[STEPS[-1]].values[0], records[STEPS[0]].values[0]
    key = {"std": now.std(axis=(1, 2)), "mean": now.mean(axis=(1, 2)),
           "zero_fraction": (now == 0).mean(axis=(1, 2)),
           "change": np.abs(now.astype(np.float64) - before).mean(axis=(1, 2))}[by]
    expected = sorted(range(C), key=lambda c: (-key[c], c))[:3]
    if by == "zero_fraction":  # no map has zeros: every key ties and index order decides
        assert expected == [0, 1, 2]
    image = _export(logdir, tmp_path, "--top", "3", "--by", by)
    assert np.array_equal(image, render.render_record(records[STEPS[-1]], channels=expected))


def test_overlay_draws_the_input_under_the_maps_at_alpha(logdir, tmp_path):
    conv = _records(logdir, "conv")[STEPS[-1]]
    under = _records(logdir, "input")[STEPS[-1]]
    image = _export(logdir, tmp_path, "--overlay", "input", "--alpha", "0.3", "--channels", "0-1")
    assert image.shape == (8, 8 + 1 + 8, 3)  # the maps stretched to the input's 8 x 8
    assert np.array_equal(image, render.render_record(conv, channels=[0, 1], background=under, alpha=0.3))
    other = _export(logdir, tmp_path, "--overlay", "input", "--alpha", "0.7", "--channels", "0-1")
    assert not np.array_equal(image, other)
    # Opacity 0 leaves the input alone in every cell.
    bare = _export(logdir, tmp_path, "--overlay", "input", "--alpha", "0", "--channels", "0-1")
    assert np.array_equal(bare[:, :8], render.background_rgb(under.values[0]))
    assert np.array_equal(bare[:, :8], bare[:, 9:])


@pytest.mark.parametrize("args, message", [
    (["--channels", "3-x"], "'3-x' is not a channel"),
    (["--channels", "9"], "channel 9 does not exist: this layer has 0-5"),
    (["--top", "0"], "--top must be a positive integer"),
    (["--overlay", "input", "--alpha", "1.5"], "--alpha must be in 0..1"),
    (["--overlay", "nosuch"], "unknown layer 'nosuch'"),
    (["--overlay", "wide"], "does not have the aspect of the maps"),
    (["--by", "max", "--top", "2"], "invalid choice: 'max'"),
])
def test_bad_choices_are_one_line_and_exit_2(logdir, tmp_path, capsys, args, message):
    out = tmp_path / "out.png"
    assert main(["export", str(logdir), "--run", "train", "--layer", "conv", "-o", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()

