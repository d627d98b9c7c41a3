"""tb_featmap.render against the colour cases the tab's tests also run (tests/color_cases.json).

frontend/tests/color.test.mjs runs the same table through frontend/color.js, so the exported
image and the tab cannot drift apart.
"""

import json
import math
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tb_featmap import render

CASES = json.loads((Path(__file__).parent / "color_cases.json").read_text())["cases"]
_WORDS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _array(maps):
    return np.array([[_WORDS.get(v, v) for v in m] for m in maps], dtype=np.float32)[:, None, :]


def _record(maps, step):
    """A FeatureMapRecord-like step of one sample: values [1, C, 1, W] and their stats."""
    values = _array(maps)[None]
    finite = np.where(np.isfinite(values), values, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN maps: NaN, as the writer gives
        stats = {"min": np.nanmin(finite, axis=(2, 3)), "max": np.nanmax(finite, axis=(2, 3))}
    return SimpleNamespace(run="r", tag="t", step=step, values=values, stats=stats)


def _indices(case):
    """LUT indices of a case through render's functions (None: the non-finite colour)."""
    record = _record(case["maps"], 1)
    if case.get("previous"):
        diff = record.values[0] - _record(case["previous"], 0).values[0]
        lo, hi = render.difference_ranges(diff, norm=case["norm"])
        index, finite = render.color_indices(diff, lo, hi, colormap="diverging")
    else:
        fixed = case.get("fixed")
        lo, hi = render.value_ranges(
            record.stats["min"][0], record.stats["max"][0], norm=case["norm"],
            colormap=case["colormap"], fixed=fixed and [_WORDS.get(v, v) for v in fixed],
        )
        index, finite = render.color_indices(record.values[0], lo, hi, colormap=case["colormap"])
    return [[int(i) if f else None for i, f in zip(row.ravel(), ok.ravel())]
            for row, ok in zip(index, finite)]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_colour_case(case):
    assert _indices(case) == case["expected"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_exported_pixels_follow_the_cases(case):
    """render_record, what `tb-featmap export` draws, paints each case's LUT entries."""
    record = _record(case["maps"], 1)
    previous = _record(case["previous"], 0) if case.get("previous") else None
    fixed = case.get("fixed") and [_WORDS.get(v, v) for v in case["fixed"]]
    colormap = "diverging" if previous else case["colormap"]
    image = render.render_record(record, colormap=case["colormap"], norm=case["norm"],
                                 fixed=fixed, previous=previous)
    lut = render.colormap_lut(colormap)
    columns = render.grid_columns(len(case["maps"]))
    width = len(case["maps"][0])
    for channel, expected in enumerate(case["expected"]):
        row, col = divmod(channel, columns)
        pixels = image[row * 2, col * (width + 1):col * (width + 1) + width]
        wanted = [render.NONFINITE_RGB if i is None else tuple(lut[i]) for i in expected]
        assert [tuple(p) for p in pixels] == [tuple(w) for w in wanted], channel


def test_flat_index_and_difference_errors():
    assert render.flat_index("diverging") == 128 and render.flat_index("gray") == 0
    with pytest.raises(ValueError, match="colormap must be one of"):
        render.flat_index("jet")
    with pytest.raises(ValueError, match="norm must be one of"):
        render.difference_ranges(np.zeros((1, 2, 2)), norm="global")
    with pytest.raises(ValueError, match=r"shape \[C, H, W\]"):
        render.difference_ranges(np.zeros((2, 2)))
    record = _record([[1, 2]], 1)
    with pytest.raises(ValueError, match="previous has maps of shape"):
        render.render_record(record, previous=_record([[1, 2, 3]], 0))
    with pytest.raises(ValueError, match="previous has no values"):
        render.render_record(record, previous=SimpleNamespace(values=None))


def test_colormaps_js_is_what_the_tool_writes_from_render():
    """frontend/colormaps.js is tools/gen_colormaps.py's output; its tables are matplotlib's."""
    import sys

    import matplotlib

    sys.path.insert(0, str(Path(__file__).parent.parent / "tools"))
    try:
        import gen_colormaps
    finally:
        sys.path.pop(0)
    assert gen_colormaps.TARGET.read_text() == gen_colormaps.render_module()
    assert f"NONFINITE_RGB = {list(render.NONFINITE_RGB)!r}" in gen_colormaps.render_module()
    names = {"gray": "gray", "viridis": "viridis", "magma": "magma", "inferno": "inferno", "diverging": "RdBu_r"}
    for name, mpl_name in names.items():
        expected = np.round(matplotlib.colormaps[mpl_name](np.linspace(0, 1, 256))[:, :3] * 255)
        assert np.array_equal(render.colormap_lut(name), expected.astype(np.uint8)), name


OVERLAY = json.loads((Path(__file__).parent / "color_cases.json").read_text())["overlay_cases"]


@pytest.mark.parametrize("case", OVERLAY, ids=[c["name"] for c in OVERLAY])
def test_overlay_case(case):
    """The overlay rule: the same table frontend/tests/insight.test.mjs runs through color.js."""
    under = render.background_rgb(_array(case["background"]))  # [1, W, 3]
    fg = np.array(case["map"], dtype=np.uint8)[None, None]
    drawn = render.blend(fg, under, render.overlay_weight(case["opacity"]))
    assert drawn[0].tolist() == case["expected"]


def test_render_record_over_a_background_with_picked_channels():
    """Maps stretched (nearest) to the background's size and blended over it, picked channels only."""
    maps = [[0, 1], [5, 5], [2, 0]]  # three maps of 1 x 2
    record = _record(maps, 1)
    # 3 x 4: not the aspect of the maps (1 x 2)
    background = SimpleNamespace(values=np.arange(12, dtype=np.float32).reshape(1, 1, 3, 4))
    with pytest.raises(ValueError, match="aspect"):
        render.render_record(record, background=background)
    background.values = np.arange(8, dtype=np.float32).reshape(1, 1, 2, 4)  # 2 x 4: the maps' aspect
    image = render.render_record(record, channels=[2, 0], background=background, alpha=0.5)
    assert image.shape == (2, 4 + 1 + 4, 3)  # two cells of 2 x 4 and a gap
    gray = render.background_rgb(background.values[0])  # [2, 4, 3]: round(v * 255 / 7)
    assert gray[:, :, 0].tolist() == [[0, 36, 73, 109], [146, 182, 219, 255]]
    lut = render.colormap_lut("gray")
    index, _ = render.color_indices(_array(maps), *render.value_ranges(
        record.stats["min"][0], record.stats["max"][0]))
    for cell, channel in enumerate([2, 0]):
        fg = lut[index[channel, 0]][[0, 0, 1, 1]]  # each value covers 2 x 2 background pixels
        expected = render.blend(fg[None], gray, 128)
        assert image[:, cell * 5:cell * 5 + 4].tolist() == expected.tolist()
    assert (image[0, 4] == render.GAP_RGB).all()
    with pytest.raises(ValueError, match="channels must be in 0..2"):
        render.render_record(record, channels=[3])
    with pytest.raises(ValueError, match="alpha must be in 0..1"):
        render.render_record(record, background=background, alpha=1.5)


def test_parse_and_rank_channels():
    assert render.parse_channels("3, 17, 40-42", 50) == [3, 17, 40, 41, 42]
    assert render.parse_channels("2 2,0", 3) == [0, 2]
    for text, message in [("3-x", "'3-x' is not a channel"), ("5-2", "runs backwards"),
                          ("0-6", "channel 6 does not exist: this layer has 0-5"), (" ", "empty")]:
        with pytest.raises(ValueError, match=message):
            render.parse_channels(text, 6)
    stats = {"min": np.zeros((1, 4)), "std": np.array([[1.0, np.nan, 3.0, 3.0]]),
             "mean": np.array([[4.0, 3.0, 2.0, 1.0]]), "zero_fraction": np.array([[0, 0.5, 0.1, 0.9]])}
    record = SimpleNamespace(stats=stats, values=np.arange(4, dtype=np.float32).reshape(1, 4, 1, 1))
    assert render.rank_channels(record, by="std", top=3) == [2, 3, 0]  # ties by index, NaN last
    assert render.rank_channels(record, by="mean", top=2, channels=[1, 3]) == [1, 3]
    assert render.rank_channels(record, by="zero_fraction", top=1) == [3]
    previous = SimpleNamespace(values=np.array([0, 5, 2, 0], dtype=np.float32).reshape(1, 4, 1, 1))
    assert render.rank_channels(record, by="change", top=4, previous=previous) == [1, 3, 0, 2]
    assert render.rank_channels(record, by="change", top=2) == [0, 1]  # no previous step: all unknown
    assert render.pick_channels(record, channels="1-3", top=2, by="std") == [2, 3]
    assert render.pick_channels(record) is None
    with pytest.raises(ValueError, match="by must be one of"):
        render.rank_channels(record, by="max", top=1)
    with pytest.raises(ValueError, match="top must be a positive int"):
        render.rank_channels(record, by="std", top=0)
