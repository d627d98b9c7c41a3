"""The timeline's data: the `series` and scalars routes, `FeatureMapReader.series`, and
`tb-featmap export --timeline` (issue 12)."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.tensorboard import SummaryWriter

from support import route_get, wsgi_client
from tb_featmap import _series, cli, log_feature_maps, render
from tb_featmap.reader import FeatureMapReader

STEPS = list(range(0, 36, 3))  # 12 steps, more than TensorBoard's default of 10
KILLED = 2  # channel 2 of conv is zero from step KILLED_FROM on
KILLED_FROM = STEPS[6]


def conv_at(step):
    x = torch.randn(2, 6, 4, 4, generator=torch.Generator().manual_seed(step)) * (1 + step)
    if step >= KILLED_FROM:
        x[:, KILLED] = 0
    return x


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("logs")
    writer = SummaryWriter(root / "train")
    for step in STEPS:
        log_feature_maps(writer, {"conv": conv_at(step), "fc": conv_at(step).mean((2, 3))}, step,
                         max_samples=2)
        writer.add_scalar("acc", step / 100, step)
        writer.add_scalar("train/loss", 1.0 / (step + 1), step)
    writer.close()
    return root


@pytest.fixture(scope="module")
def client(logdir):
    return wsgi_client(logdir)


@pytest.fixture(scope="module")
def reader(logdir):
    return FeatureMapReader(logdir)


def expected(stat, sample=0):
    """What the writer logged: the statistic of each channel, recomputed from the maps."""
    rows = []
    for step in STEPS:
        x = conv_at(step)[sample].double()
        by_stat = {
            "min": x.amin((1, 2)), "max": x.amax((1, 2)), "mean": x.mean((1, 2)),
            "std": x.std((1, 2), unbiased=False), "zero_fraction": (x == 0).double().mean((1, 2)),
            "nonfinite": torch.zeros(x.shape[0], dtype=torch.float64),
        }
        rows.append(by_stat[stat].numpy())
    return np.array(rows)


@pytest.mark.parametrize("stat", _series.SERIES_STATS)
def test_series_route_is_the_statistic_at_every_step(client, stat):
    status, headers, body = route_get(client, "series", run="train", tag="feature_maps/conv",
                                stat=stat, sample="1")
    assert status == 200 and headers["Content-Type"] == "application/octet-stream"
    array = np.load(io.BytesIO(body), allow_pickle=False)
    assert array.dtype == np.float32 and array.shape == (len(STEPS), 6)
    np.testing.assert_allclose(array, expected(stat, sample=1), rtol=1e-4, atol=1e-4)
    count, first, last = headers["X-Feature-Maps-Steps"].split()
    assert (int(count), int(first), int(last)) == (len(STEPS), STEPS[0], STEPS[-1])
    assert len(body) <= 1.25 * 4 * array.size + 128  # the .npy header is 128 bytes


def test_series_route_and_reader_give_the_same_array(client, reader):
    for stat in ("std", "zero_fraction"):
        _, _, body = route_get(client, "series", run="train", tag="feature_maps/conv", stat=stat)
        steps, array = reader.series("train", "conv", stat=stat)
        assert steps == STEPS
        np.testing.assert_array_equal(np.load(io.BytesIO(body)), array)


def test_series_shows_when_a_channel_died(reader):
    _, zero = reader.series("train", "conv", stat="zero_fraction")
    dead_rows = np.flatnonzero(zero[:, KILLED] == 1)
    assert dead_rows.tolist() == list(range(STEPS.index(KILLED_FROM), len(STEPS)))
    assert (zero[:, [c for c in range(6) if c != KILLED]] < 1).all()


def test_series_answer_is_cached_until_the_steps_change(client):
    args = dict(run="train", tag="feature_maps/conv", stat="mean")
    first = route_get(client, "series", **args)[2]
    assert route_get(client, "series", **args)[2] == first
    # Another statistic is another answer, not the cached one.
    assert route_get(client, "series", **{**args, "stat": "max"})[2] != first


@pytest.mark.parametrize("args, status, message", [
    ({"tag": "feature_maps/conv", "stat": "std"}, 400, b"missing argument: run"),
    ({"run": "train", "tag": "feature_maps/conv"}, 400, b"missing argument: stat"),
    ({"run": "train", "tag": "feature_maps/conv", "stat": "median"}, 400, b"stat must be one of"),
    ({"run": "train", "tag": "feature_maps/conv", "stat": "std", "sample": "-1"}, 400,
     b"sample must be"),
    ({"run": "train", "tag": "feature_maps/conv", "stat": "std", "sample": "1e3"}, 400,
     b"sample must be"),
    ({"run": "train", "tag": "feature_maps/conv", "stat": "std", "sample": "7"}, 404,
     b"sample 7 not stored; this layer has 2"),
    ({"run": "nope", "tag": "feature_maps/conv", "stat": "std"}, 404, b"no feature maps"),
    ({"run": "train", "tag": "\u202e<script>", "stat": "std"}, 404, b"no feature maps"),
])
def test_series_route_rejects_bad_input(client, args, status, message):
    code, _, body = route_get(client, "series", **args)
    assert code == status and message in body


def test_scalar_routes_read_the_runs_scalars(client):
    status, _, body = route_get(client, "scalar_tags")
    assert status == 200 and json.loads(body) == {"train": ["acc", "train/loss"]}
    status, _, body = route_get(client, "scalars", run="train", tag="train/loss")
    points = json.loads(body)
    assert [p["step"] for p in points] == STEPS
    np.testing.assert_allclose([p["value"] for p in points], [1 / (s + 1) for s in STEPS],
                               rtol=1e-6)
    assert route_get(client, "scalars", run="train", tag="nope")[0] == 404
    assert route_get(client, "scalars", run="train")[0] == 400


def test_reader_series_checks_its_arguments(reader):
    with pytest.raises(ValueError, match="series reads one layer; the selection holds 2"):
        reader.series("train", stat="std")
    with pytest.raises(ValueError, match="unknown statistic 'median'; valid: min, max"):
        reader.series("train", "conv", stat="median")
    with pytest.raises(ValueError, match="sample 5 is not stored; this layer has samples 0..1"):
        reader.series("train", "conv", stat="std", sample=5)
    with pytest.raises(TypeError, match="stat must be a str"):
        reader.series("train", "conv", stat=3)
    with pytest.raises(ValueError, match="layer 'nope' is not in run 'train'"):
        reader.series("train", "nope", stat="std")


def test_series_builder_leaves_rows_it_cannot_fill_nan():
    builder = _series.SeriesBuilder("mean", 1, 3)
    stats = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6)
    builder.add(2, stats)
    builder.add(0, stats[:1])  # one sample only: not counted
    builder.add(1, np.zeros((2, 5, 6), np.float32))  # another channel count: not counted
    result = builder.result()
    np.testing.assert_array_equal(result[2], stats[1, :, 2])
    assert np.isnan(result[:2]).all()
    assert _series.SeriesBuilder("std", 0, 2).result() is None


def test_export_timeline_draws_the_strip(logdir, reader, tmp_path):
    out = tmp_path / "strip.png"
    code = cli.main(["export", str(logdir), "--run", "train", "--layer", "conv", "--timeline",
                     "--stat", "std", "--colormap", "viridis", "-o", str(out), "-q"])
    assert code == 0
    image = np.asarray(Image.open(out).convert("RGB"))
    _, std = reader.series("train", "conv", stat="std")
    assert image.shape == (6 * 8, len(STEPS) * 8, 3)  # channels x steps, 8 px a value
    np.testing.assert_array_equal(image, render.render_series(std, colormap="viridis", scale=8))
    # The highest std (the last step's, scaled by 1 + step) is the colormap's top colour.
    row, col = np.unravel_index(np.nanargmax(std.T), std.T.shape)
    assert tuple(image[row * 8, col * 8]) == tuple(render.colormap_lut("viridis")[255])
    mean = tmp_path / "mean.png"
    cli.main(["export", str(logdir), "--run", "train", "--layer", "conv", "--timeline",
              "--stat", "mean", "-o", str(mean), "-q"])
    assert not np.array_equal(np.asarray(Image.open(mean).convert("RGB")), image)


def test_export_timeline_rejects_what_it_cannot_draw(logdir, tmp_path, capsys):
    base = ["export", str(logdir), "--run", "train", "--layer", "conv", "--timeline"]
    assert cli.main(base + ["-o", str(tmp_path / "s.gif")]) == 2
    assert "--timeline writes a PNG" in capsys.readouterr().err
    assert cli.main(base + ["--step", "3", "-o", str(tmp_path / "s.png")]) == 2
    assert "drop --step/--steps" in capsys.readouterr().err
    assert cli.main(base + ["--sample", "9", "-o", str(tmp_path / "s.png")]) == 2
    assert "sample 9 is not stored" in capsys.readouterr().err
    assert not (tmp_path / "s.png").exists()


def test_render_series_colours_nonfinite_and_scales():
    array = np.array([[0.0, 1.0], [np.nan, 2.0]], np.float32)
    image = render.render_series(array, colormap="gray", scale=3)
    assert image.shape == (6, 6, 3)
    assert tuple(image[0, 3]) == render.NONFINITE_RGB  # channel 0, step 1 is NaN
    assert tuple(image[0, 0]) == (0, 0, 0) and tuple(image[3, 3]) == (255, 255, 255)
    with pytest.raises(ValueError, match="steps, channels"):
        render.render_series(np.zeros(3))
