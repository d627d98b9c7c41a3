"""tb-featmap (tb_featmap.cli) and the drawing it uses (tb_featmap.render), on real event files."""

import json
import math
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
import tqdm
from PIL import Image
from torch.utils.tensorboard import SummaryWriter

from tb_featmap import render
from tb_featmap.cli import main
from tb_featmap.summary import log_feature_maps

STEPS = (0, 10, 20)
C, H, W = 5, 4, 6  # 5 maps -> a 3 x 2 grid


def _conv(step: int) -> torch.Tensor:
    """Channel c ramps over [0, c + 1] times (step + 1): every map and step its own range."""
    ramp = torch.linspace(0, 1, H * W).view(1, 1, H, W)
    x = ramp * torch.arange(1, C + 1).view(1, C, 1, 1) * (step + 1)
    x[0, 4] = 3.0  # a constant map
    return x


@pytest.fixture
def logdir(tmp_path):
    with SummaryWriter(str(tmp_path / "logs" / "train")) as writer:
        for step in STEPS:
            log_feature_maps(writer, {"conv": _conv(step), "fc": torch.randn(1, 3)}, step)
    with SummaryWriter(str(tmp_path / "logs" / "eval")) as writer:
        x = torch.randn(1, 2, 3, 3)
        x[0, 1, 1, 1] = float("nan")
        log_feature_maps(writer, {"odd": x}, 7)
    return tmp_path / "logs"


def _export(logdir, tmp_path, name="out.png", *args) -> np.ndarray:
    out = tmp_path / name
    assert main(["export", str(logdir), "--run", "train", "--layer", "conv", "-q", "-o", str(out), *args]) == 0
    return np.asarray(Image.open(out).convert("RGB"))


def _cell(image: np.ndarray, index: int, scale: int, columns: int = 3) -> np.ndarray:
    """The pixels of map `index` in a grid image."""
    top, left = (index // columns) * (H * scale + 1), (index % columns) * (W * scale + 1)
    return image[top:top + H * scale, left:left + W * scale]


# --- ls --------------------------------------------------------------------------------


def test_ls_lists_runs_layers_shapes_and_steps(logdir, capsys):
    assert main(["ls", str(logdir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["RUN", "LAYER", "LAYOUT", "SHAPE", "STORED", "ENCODING", "STEPS", "RANGE"]
    rows = [line.split() for line in lines[1:]]
    assert rows == [
        ["eval", "odd", "NCHW", "1x2x3x3", "1x2x3x3", "uint8", "1", "7..7"],
        ["train", "conv", "NCHW", "1x5x4x6", "1x5x4x6", "uint8", "3", "0..20"],
        ["train", "fc", "NF", "1x3", "1x3x1x1", "uint8", "3", "0..20"],
    ]


def test_ls_json(logdir, capsys):
    assert main(["ls", str(logdir), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    conv = next(d for d in listing if d["layer"] == "conv")
    assert conv == {
        "run": "train", "layer": "conv", "tag": "feature_maps/conv", "layout": "NCHW",
        "shape": [1, C, H, W], "stored": [1, C, H, W], "encoding": "uint8",
        "steps": 3, "first_step": 0, "last_step": 20, "dtype": "torch.float32",
        "downsample": 1, "dropped": {"samples": 0, "channels": 0, "tokens": 0}, "logged": 3,
        "order": 0, "skipped": [],
    }


def test_names_with_bidi_controls_and_invisible_characters_are_shown_escaped(tmp_path, capsys):
    """A right-to-left override made "rtl\u202egpj.exe" display as "rtlexe.jpg"."""
    run, layer = "rtl\u202egpj.exe", "conv\u200b\u2066x"
    with SummaryWriter(str(tmp_path / run)) as writer:
        log_feature_maps(writer, {layer: torch.rand(1, 2, 3, 3)}, 0)
    assert main(["ls", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "rtl\\u202egpj.exe" in out and "conv\\u200b\\u2066x" in out
    assert not any(ch in out for ch in "\u202e\u200b\u2066")
    assert main(["ls", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["run"] == run  # JSON keeps the exact name
    assert main(["export", str(tmp_path), "--layer", "nope", "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "\\u202e" in err and "\\u200b" in err and "\u202e" not in err and "\u200b" not in err


def test_ls_of_a_directory_without_feature_maps(tmp_path, capsys):
    assert main(["ls", str(tmp_path)]) == 1
    assert "no feature maps" in capsys.readouterr().err


# --- export: PNG -------------------------------------------------------------------------


def test_export_png_grid_layout_and_channel_normalisation(logdir, tmp_path):
    image = _export(logdir, tmp_path, "g.png", "--step", "10", "--scale", "2")
    rows, columns = 2, 3
    assert image.shape == (rows * (H * 2 + 1) - 1, columns * (W * 2 + 1) - 1, 3)
    # 1-pixel gaps between cells, and the unused sixth cell, in the gap colour.
    assert (image[H * 2, :] == render.GAP_RGB).all()
    assert (image[:, W * 2] == render.GAP_RGB).all()
    assert (_cell(image, 5, 2) == render.GAP_RGB).all()
    # "channel": each ramp spans its own range, so each goes from black to white.
    for c in range(4):
        cell = _cell(image, c, 2)
        assert cell.min() == 0 and cell.max() == 255, c
        assert (cell[0, 0] == 0).all() and (cell[-1, -1] == 255).all()
    # A constant map is drawn in the low end of the colormap.
    assert (_cell(image, 4, 2) == 0).all()


def test_export_png_changes_with_colormap(logdir, tmp_path):
    gray = _export(logdir, tmp_path, "gray.png", "--step", "10", "--scale", "1")
    viridis = _export(logdir, tmp_path, "viridis.png", "--step", "10", "--scale", "1", "--colormap", "viridis")
    assert gray.shape == viridis.shape and not np.array_equal(gray, viridis)
    lut = {tuple(c) for c in render.colormap_lut("viridis")} | {render.GAP_RGB}
    assert {tuple(p) for p in viridis.reshape(-1, 3)} <= lut
    low, high = render.colormap_lut("viridis")[[0, 255]]
    cell = _cell(viridis, 0, 1)
    assert (cell[0, 0] == low).all() and (cell[-1, -1] == high).all()


def test_export_png_changes_with_norm(logdir, tmp_path):
    channel = _export(logdir, tmp_path, "c.png", "--step", "10", "--scale", "1", "--norm", "channel")
    layer = _export(logdir, tmp_path, "l.png", "--step", "10", "--scale", "1", "--norm", "layer")
    fixed = _export(logdir, tmp_path, "f.png", "--step", "10", "--scale", "1", "--norm", "fixed")
    # "layer": one range for the step, [0, 4 * 11]: map c reaches (c + 1) / 4 of it.
    for c in range(4):
        expected = round(255 * (c + 1) / 4)
        assert abs(int(_cell(layer, c, 1).max()) - expected) <= 1, c
    assert _cell(layer, 3, 1).max() == 255 and _cell(channel, 0, 1).max() == 255
    # "fixed": one range over all steps, [0, 4 * 21]: step 10 reaches 11/21 at most.
    assert abs(int(fixed[..., 0][fixed[..., 0] != 255].max()) - round(255 * 4 * 11 / (4 * 21))) <= 1
    assert not np.array_equal(layer, fixed) and not np.array_equal(channel, layer)


def test_export_diverging_is_symmetric_around_zero(logdir, tmp_path):
    image = _export(logdir, tmp_path, "d.png", "--step", "0", "--scale", "1", "--colormap", "diverging")
    lut = render.colormap_lut("diverging")
    cell = _cell(image, 0, 1)
    # Values in [0, 1]: the range is [-1, 1], so 0 is the middle (white), 1 the red end.
    assert (cell[0, 0] == lut[128]).all() and (cell[-1, -1] == lut[255]).all()


def test_export_nonfinite_values_in_magenta(logdir, tmp_path):
    out = tmp_path / "nan.png"
    assert main(["export", str(logdir), "--run", "eval", "-o", str(out), "--scale", "1", "-q"]) == 0
    image = np.asarray(Image.open(out).convert("RGB"))
    magenta = np.argwhere((image == render.NONFINITE_RGB).all(axis=-1))
    # Two maps of 3 x 3 side by side; the NaN is map 1 at (1, 1).
    assert magenta.tolist() == [[1, 3 + 1 + 1]]


def test_export_defaults_newest_step_and_default_scale(logdir, tmp_path, capsys):
    out = tmp_path / "newest.png"
    assert main(["export", str(logdir), "--layer", "conv", "-o", str(out)]) == 0
    assert "step 20" in capsys.readouterr().err  # the only run with "conv", its newest step
    scale = math.ceil(16 / max(H, W))  # default: maps at least 16 pixels
    assert Image.open(out).size == (3 * (W * scale + 1) - 1, 2 * (H * scale + 1) - 1)
    image = np.asarray(Image.open(out).convert("RGB"))
    # Each pixel against the source tensor through matplotlib's gray colormap, not against
    # render.py: the colour of index 255 * (v - min) / (max - min) of its map (the default
    # "channel" range), give or take one index for the stored value's quantisation (at most
    # half an index) and rounding (half an index); a map's min and max are stored exactly.
    lut = np.rint(matplotlib.colormaps["gray"].resampled(256)(np.arange(256))[:, :3] * 255)
    source = _conv(20)[0].numpy().astype(np.float64)
    for c in range(C):
        cell = _cell(image, c, scale).astype(np.float64)
        lo, hi = source[c].min(), source[c].max()
        for (y, x), v in np.ndenumerate(source[c]):
            pixel = cell[y * scale:(y + 1) * scale, x * scale:(x + 1) * scale].reshape(-1, 3)
            assert (pixel == pixel[0]).all(), (c, y, x)  # one value, scale x scale pixels
            if hi == lo:  # a constant map: the low end of the colormap
                allowed = [lut[0]]
            elif v in (lo, hi):  # the ends are stored exactly: the ends of the colormap
                allowed = [lut[0] if v == lo else lut[255]]
            else:
                exact = 255 * (v - lo) / (hi - lo)
                allowed = [lut[i] for i in range(256) if abs(i - exact) <= 1.01]
            assert any((pixel[0] == colour).all() for colour in allowed), (c, y, x, pixel[0])
    assert (_cell(image, 5, scale) == render.GAP_RGB).all()  # the unused sixth cell


# --- export: GIF -----------------------------------------------------------------------


def test_export_gif_over_all_steps_with_progress(logdir, tmp_path, capsys):
    """tqdm is installed (make test installs it): its bar, not the plain counter."""
    assert tqdm.__version__
    out = tmp_path / "layer.gif"
    code = main(["export", str(logdir), "--run", "train", "--layer", "conv", "--steps", "all",
                 "--norm", "fixed", "-o", str(out)])
    assert code == 0
    err = capsys.readouterr().err
    assert "100%|" in err and "3/3 [" in err and "step/s]" in err, err  # tqdm's bar
    assert "tb-featmap: 3/3 steps" not in err, err  # not the counter
    assert "3 steps" in err  # the summary line
    gif = Image.open(out)
    assert gif.n_frames == len(STEPS)
    frames = []
    for i in range(gif.n_frames):
        gif.seek(i)
        frames.append(np.asarray(gif.convert("RGB")))
    # Under "fixed", later steps (larger values) are brighter.
    brightness = [f[f != 255].mean() for f in frames]
    assert brightness[0] < brightness[1] < brightness[2]


def test_progress_without_tqdm_is_a_counter(logdir, tmp_path, capsys, monkeypatch):
    """tqdm absent: `import tqdm` raises ImportError while sys.modules maps it to None, and
    the CLI imports it when the export starts, so the counter is used."""
    monkeypatch.setitem(sys.modules, "tqdm", None)
    with pytest.raises(ImportError):
        import tqdm as _  # noqa: F401 - the simulation works
    out = tmp_path / "plain.gif"
    assert main(["export", str(logdir), "--run", "train", "--layer", "conv", "--steps", "all",
                 "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "tb-featmap: 1/3 steps" in err and "tb-featmap: 3/3 steps" in err
    assert "100%|" not in err and "step/s" not in err, err
    assert main(["export", str(logdir), "--run", "train", "--layer", "conv", "--steps", "all",
                 "-q", "-o", str(out)]) == 0
    assert capsys.readouterr().err == ""


def test_export_gif_step_range(logdir, tmp_path):
    out = tmp_path / "part.gif"
    assert main(["export", str(logdir), "--run", "train", "--layer", "conv", "--steps", "5:20",
                 "--norm", "fixed", "-q", "-o", str(out)]) == 0
    assert Image.open(out).n_frames == 2
    # Pillow merges identical consecutive frames (adding up their durations): under
    # "channel" these scaled ramps look the same at every step.
    assert main(["export", str(logdir), "--run", "train", "--layer", "conv", "--steps", "5:20",
                 "-q", "--duration", "150", "-o", str(out)]) == 0
    gif = Image.open(out)
    assert gif.n_frames == 1 and gif.info["duration"] == 300


# --- errors: one line on stderr, exit code 2 ---------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--run", "nope", "--layer", "conv"], "unknown run 'nope'; valid runs: 'eval', 'train'"),
        (["--run", "train", "--layer", "nope"], "unknown layer 'nope' in run 'train'; valid layers: 'conv', 'fc'"),
        (["--run", "train", "--layer", "conv", "--step", "5"], "unknown step 5 of layer 'conv'; valid steps: 0, 10, 20"),
        (["--layer", "fc", "--run", "train", "--steps", "50:60"], "no kept step"),
        (["--run", "train", "--layer", "conv", "--steps", "x"], "--steps must be 'all' or 'A:B'"),
        (["--run", "train"], "several layers; pick one with --layer: 'conv', 'fc'"),
        ([], "several runs; pick one with --run: 'eval', 'train'"),
        (["--run", "train", "--layer", "conv", "--sample", "3"], "--sample 3 is not stored"),
        (["--run", "train", "--layer", "conv", "--scale", "0"], "--scale must be a positive"),
    ],
)
def test_export_errors(logdir, tmp_path, capsys, args, message):
    assert main(["export", str(logdir), "-o", str(tmp_path / "x.gif"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tb-featmap: error: ")
    assert message in err
    assert not (tmp_path / "x.gif").exists()


def test_path_errors(logdir, tmp_path, capsys):
    assert main(["ls", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["export", str(logdir), "--run", "eval", "-o", str(tmp_path / "x.jpg")]) == 2
    assert "must end in .png or .gif" in capsys.readouterr().err
    assert main(["export", str(logdir), "--run", "eval", "--steps", "all", "-o", str(tmp_path / "x.png")]) == 2
    assert "give a .gif output" in capsys.readouterr().err
    assert main(["export", str(logdir), "--run", "eval", "-o", str(tmp_path / "no" / "x.png")]) == 2
    assert "output directory" in capsys.readouterr().err


def test_usage_errors_exit_2(logdir, capsys):
    assert main([]) == 2
    assert main(["export", str(logdir), "--colormap", "jet", "-o", "x.png"]) == 2
    assert "invalid choice: 'jet'" in capsys.readouterr().err
    assert main(["export", str(logdir), "--step", "1", "--steps", "all", "-o", "x.gif"]) == 2
    assert main(["--version"]) == 0


def test_console_script_and_module_run_in_a_subprocess(logdir, tmp_path):
    script = Path(sys.executable).with_name("tb-featmap")
    commands = [[sys.executable, "-m", "tb_featmap.cli"]]
    if script.exists():
        commands.append([str(script)])
    for command in commands:
        result = subprocess.run([*command, "ls", str(logdir)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "train  conv" in result.stdout
        bad = subprocess.run([*command, "ls", str(tmp_path / "missing")], capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and bad.stderr.strip().endswith("does not exist")


# --- render ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", render.COLORMAPS)
def test_colormap_luts_are_matplotlibs(name):
    lut = render.colormap_lut(name)
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    mpl = {"diverging": "RdBu_r"}.get(name, name)
    expected = np.rint(matplotlib.colormaps[mpl].resampled(256)(np.linspace(0, 1, 256))[:, :3] * 255)
    np.testing.assert_array_equal(lut, expected.astype(np.uint8))
    lut[:] = 7  # a copy: the cached table is untouched
    np.testing.assert_array_equal(render.colormap_lut(name), expected.astype(np.uint8))


def test_render_options_are_checked():
    maps = np.zeros((2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="colormap must be one of"):
        render.colormap_lut("jet")
    with pytest.raises(ValueError, match="norm must be one of"):
        render.value_ranges(np.zeros(2), np.ones(2), norm="global")
    with pytest.raises(ValueError, match="fixed_range"):
        render.value_ranges(np.zeros(2), np.ones(2), norm="fixed")
    with pytest.raises(TypeError, match="scale"):
        render.render_maps(maps, np.zeros(2), np.ones(2), scale=1.5)
    with pytest.raises(ValueError, match=r"lo and hi must have shape \[2\]"):
        render.render_maps(maps, np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="records is empty"):
        render.fixed_range([])


@pytest.mark.parametrize("count, columns", [(1, 1), (2, 2), (4, 2), (5, 3), (9, 3), (10, 4), (64, 8), (65, 9)])
def test_grid_columns_near_square(count, columns):
    assert render.grid_columns(count) == columns


def test_value_ranges():
    lo, hi = np.array([-1.0, 0.0, np.nan]), np.array([0.5, 3.0, np.nan])
    np.testing.assert_array_equal(render.value_ranges(lo, hi)[1], hi)
    layer = render.value_ranges(lo, hi, norm="layer")
    assert layer[0].tolist() == [-1.0] * 3 and layer[1].tolist() == [3.0] * 3
    diverging = render.value_ranges(lo, hi, colormap="diverging")
    assert diverging[0][:2].tolist() == [-1.0, -3.0] and diverging[1][:2].tolist() == [1.0, 3.0]
    fixed = render.value_ranges(lo, hi, norm="fixed", fixed=(-2, 5), colormap="diverging")
    assert fixed[0].tolist() == [-5.0] * 3 and fixed[1].tolist() == [5.0] * 3


# --- 3-D layers: each channel's depth slices side by side, or one slice ------------------

VC, VD, VH, VW = 3, 4, 5, 6  # 3 channels of 4 slices of 5 x 6: a 2 x 2 grid


@pytest.fixture(scope="module")
def volume_logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("volume")
    x = torch.randn(1, VC, VD, VH, VW, generator=torch.Generator().manual_seed(3))
    with SummaryWriter(str(root / "video")) as writer:
        log_feature_maps(writer, {"conv3d": x, "flat": torch.randn(1, 2, 3, 3)}, 0)
    return root


def _slice_colours(record, channel: int, d: int, scale: int) -> np.ndarray:
    """Slice `d` of `channel` as render's colour rule colours it (viridis, the channel's
    range over its whole volume), `scale` pixels a value."""
    lo, hi = render.value_ranges(record.stats["min"][0], record.stats["max"][0])
    values = record.values[0, channel:channel + 1, d * VH:(d + 1) * VH]
    index, _ = render.color_indices(values, lo[channel:channel + 1], hi[channel:channel + 1])
    rgb = render.colormap_lut("viridis")[index[0]]
    return rgb.repeat(scale, axis=0).repeat(scale, axis=1)


def _volume_export(logdir, tmp_path, *args) -> np.ndarray:
    out = tmp_path / "volume.png"
    argv = ["export", str(logdir), "--layer", "conv3d", "--colormap", "viridis", "-q",
            "-o", str(out), *args]
    assert main(argv) == 0
    return np.asarray(Image.open(out).convert("RGB"))


def test_export_3d_draws_each_channels_slices_side_by_side(volume_logdir, tmp_path):
    from tb_featmap.reader import FeatureMapReader

    (record,) = FeatureMapReader(str(volume_logdir)).records("video", "feature_maps/conv3d")
    assert record.header["layout"] == "NCDHW" and render.depth_of(record.header) == VD
    image = _volume_export(volume_logdir, tmp_path)
    scale = 3  # the default: a slice (5 x 6) at least 16 pixels
    gap = render.SLICE_GAP
    cell_h, cell_w = VH * scale, VD * VW * scale + (VD - 1) * gap
    apart = render.VOLUME_GAP  # between two channels: wider than between two slices
    assert apart > gap
    assert image.shape == (2 * cell_h + apart, 2 * cell_w + apart, 3)
    white = np.array(render.GAP_RGB, np.uint8)
    separator = np.array(render.SLICE_RGB, np.uint8)
    for channel in range(VC):
        top, left = (channel // 2) * (cell_h + apart), (channel % 2) * (cell_w + apart)
        cell = image[top:top + cell_h, left:left + cell_w]
        for d in range(VD):
            x = d * (VW * scale + gap)
            assert (cell[:, x:x + VW * scale] == _slice_colours(record, channel, d, scale)).all()
            if d:  # the separator before the slice: the tab's gray, which viridis lacks
                assert (cell[:, x - gap:x] == separator).all()
    assert (image[cell_h:cell_h + apart] == white).all()  # between the grid's rows
    assert (image[:, cell_w:cell_w + apart] == white).all()  # between its columns
    assert (image[cell_h + apart:, cell_w + apart:] == white).all()  # no 4th channel


@pytest.mark.parametrize("depth", [0, 2, VD - 1])
def test_export_3d_depth_picks_one_slice(volume_logdir, tmp_path, depth):
    from tb_featmap.reader import FeatureMapReader

    (record,) = FeatureMapReader(str(volume_logdir)).records("video", "feature_maps/conv3d")
    image = _volume_export(volume_logdir, tmp_path, "--depth", str(depth))
    scale = 3
    assert image.shape == (2 * VH * scale + 1, 2 * VW * scale + 1, 3)
    for channel in range(VC):
        top, left = (channel // 2) * (VH * scale + 1), (channel % 2) * (VW * scale + 1)
        cell = image[top:top + VH * scale, left:left + VW * scale]
        assert (cell == _slice_colours(record, channel, depth, scale)).all()
        other = _slice_colours(record, channel, (depth + 1) % VD, scale)
        assert (cell != other).any()  # the slices differ, so this is slice `depth` only


@pytest.mark.parametrize(
    "args, message",
    [
        (["--layer", "conv3d", "--depth", "4"],
         "--depth 4 is out of range: this layer has 4 depth slices, 0..3 (layer 'conv3d')"),
        (["--layer", "conv3d", "--depth", "-1"], "--depth -1 is out of range"),
        (["--layer", "flat", "--depth", "0"],
         "--depth 0 picks a depth slice of a 3-D layer (NCDHW); this layer is NCHW (layer 'flat')"),
        (["--layer", "conv3d", "--depth", "1", "--timeline"], "drop --depth"),
    ],
)
def test_export_3d_bad_depth_writes_nothing(volume_logdir, tmp_path, capsys, args, message):
    out = tmp_path / "x.png"
    assert main(["export", str(volume_logdir), "-o", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not out.exists()


def test_render_record_depth_is_checked(volume_logdir):
    from tb_featmap.reader import FeatureMapReader

    records = {r.layer: r for r in FeatureMapReader(str(volume_logdir)).records()}
    with pytest.raises(ValueError, match=r"depth 4 is out of range: .* 0\.\.3"):
        render.render_record(records["conv3d"], depth=4)
    with pytest.raises(TypeError, match="depth must be an int"):
        render.render_record(records["conv3d"], depth=1.0)
    with pytest.raises(ValueError, match="this layer is NCHW"):
        render.render_record(records["flat"], depth=0)
    with pytest.raises(ValueError, match="divides the maps' height 5"):
        render.render_maps(np.zeros((1, 5, 2)), [0], [1], depth=2)
    # a slice's difference with itself is zero everywhere: drawn white (diverging's 0)
    same = render.render_record(records["conv3d"], previous=records["conv3d"], depth=1)
    assert same.shape == (2 * VH + 1, 2 * VW + 1, 3)
    assert (same[:VH, :VW] == render.colormap_lut("diverging")[128]).all()


def test_an_image_too_large_is_refused_before_it_is_drawn(tmp_path, capsys):
    """A 1-D layer of 2**22 values (the writer keeps them with max_size=None) would be an
    export 128 rows high: 537 M pixels. render_maps refuses it before allocating anything
    that size, and export says so and writes nothing."""
    import tracemalloc

    long = np.random.default_rng(0).random((1, 1, 2**22), dtype=np.float32)
    tracemalloc.start()
    with pytest.raises(ValueError, match=r"4,194,304 x 128 pixels, over the 134,217,728"):
        render.render_maps(long[0][:, None, :], np.zeros(1), np.ones(1), kind="rows")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 << 20, peak  # the image (1.5 GiB) and its tiles were never made
    logdir = tmp_path / "logs"
    with SummaryWriter(logdir / "wave") as writer:
        log_feature_maps(writer, {"wave": torch.from_numpy(long)}, 0, max_size=None, layout="NCL")
    out = tmp_path / "wave.png"
    assert main(["export", str(logdir), "-q", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "over the 134,217,728 an export draws" in err and "--channels" in err
    assert not out.exists()


def test_a_run_with_no_readable_step_says_so(tmp_path, capsys):
    """Every step's header damaged: export names the run and says it has nothing readable,
    rather than asking to pick one of no layers."""
    from test_reliability import header_with, rewrite, write_run

    source, logdir = tmp_path / "source", tmp_path / "logs"
    write_run(source, steps=[0])

    def damage(event):
        for value in event.summary.value:
            value.tensor.string_val[0] = header_with(layout="XYZ")(value.tensor.string_val[0])

    rewrite(source, logdir / "run", damage)
    out = tmp_path / "x.png"
    with pytest.warns(RuntimeWarning, match="step 0 cannot be read: header has an invalid"):
        assert main(["export", str(logdir), "-o", str(out)]) == 2
    assert "run 'run' has no readable feature maps" in capsys.readouterr().err
    assert not out.exists()
