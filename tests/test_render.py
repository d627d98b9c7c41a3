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
