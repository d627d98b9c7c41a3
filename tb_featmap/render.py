"""Draw feature maps as an RGB grid of channels, the way the Feature Maps tab draws them.

numpy only (matplotlib, imported on first use, supplies the colormap tables); no torch.
The tab's colormaps (``frontend/colormaps.js``) are generated from ``colormap_lut`` by
``tools/gen_colormaps.py``. This module and ``frontend/color.js`` are the two copies of one
colour rule; ``tests/color_cases.json`` holds the cases both test suites run, so an exported
image and the browser show the same colours.

How a value becomes a colour:

1. A range ``[lo, hi]`` per map, from the writer's statistics, by normalisation mode:

   - ``"channel"``: each map its own min and max at that step.
   - ``"layer"``: all maps of the drawn sample at that step share the smallest min and the
     largest max over the channels.
   - ``"fixed"``: one range for the layer over every kept step of that run: the smallest min
     and largest max over all steps and channels of the drawn sample (``fixed_range``).

   Minima and maxima are those of the finite values; a ``fixed`` range that is not finite
   falls back to ``"layer"``. With the ``"diverging"`` colormap the range is made symmetric
   around 0: ``m = max(|lo|, |hi|)``, range ``[-m, m]``, so that 0 is white.
2. Index ``round((v - lo) * (255 / (hi - lo)))``, rounding halves up, clipped to 0..255,
   into the 256-entry table. A map whose range is empty (a constant map) or not finite is
   drawn in colour ``flat_index(colormap)``: 128 (white, zero) for ``"diverging"``, else 0.
3. Non-finite values (NaN, infinities) are drawn in ``NONFINITE_RGB`` (magenta).
4. Difference mode draws ``d = this step - previous step`` with the ``"diverging"``
   colormap on ``[-m, m]``: ``m`` the largest finite ``|d|`` of each map for ``"channel"``,
   of the whole layer otherwise (``difference_ranges``).

Overlay on the input (``background_rgb``, ``blend``): a layer of 1 or 3 channels (the input
image logged as a layer) is drawn as gray or RGB, each value at
``round((v - lo) * 255 / (hi - lo))`` clipped to 0..255 on the span of all its channels (0 when
the span is flat or the value is not finite). Each map is stretched (nearest) to the
background's size and each colour component is ``(map * w >> 8) + (background * (256 - w) >> 8)``,
``w = round(alpha * 256)``.

The grid has ``grid_columns(C)`` columns (``ceil(sqrt(C))``: near square), channels in
row-major order, a 1-pixel gap of ``GAP_RGB`` between cells, and each map value drawn as
``scale x scale`` pixels. How a layer is drawn depends on its kind (``view_kind``, the rule of
``frontend/layout.js``'s ``viewKind``; ``tests/layout_cases.json`` holds cases both run):

- ``"maps"``: the grid above.
- ``"rows"`` (the 1 x L maps of ``NCL`` and of token strips): one column, each channel a row
  of its full length, ``row_height(C)`` pixels high (at least 4, and the layer at least 128).
- ``"features"`` (``NF``, linear layers): the near-square grid, cells at least 4 pixels;
  ``render_record`` normalises them over the layer unless told otherwise (per channel, a
  1 x 1 map is flat).

A 3-D layer (``NCDHW``, stored as each channel's ``D`` depth slices stacked vertically;
``depth_of``) is drawn as the grid of its channels, each cell the channel's ``D`` slices side
by side, ``SLICE_GAP`` pixels of ``GAP_RGB`` between two slices (as the tab's enlarged 3-D
channel); ``render_record(depth=d)`` draws slice ``d`` alone instead (as the tab's depth
control). Either way a channel's range is that of its whole volume.
"""

import functools
import math
import re
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "COLORMAPS",
    "NORMALIZATIONS",
    "NONFINITE_RGB",
    "GAP_RGB",
    "colormap_lut",
    "flat_index",
    "grid_columns",
    "view_kind",
    "row_height",
    "depth_of",
    "check_depth",
    "SLICE_GAP",
    "VIEW_KINDS",
    "value_ranges",
    "difference_ranges",
    "color_indices",
    "fixed_range",
    "render_maps",
    "render_record",
    "RANKINGS",
    "background_rgb",
    "overlay_weight",
    "blend",
    "parse_channels",
    "rank_channels",
    "pick_channels",
]

RANKINGS = ("std", "mean", "zero_fraction", "change")

COLORMAPS = ("gray", "viridis", "magma", "inferno", "diverging")
NORMALIZATIONS = ("channel", "layer", "fixed")
NONFINITE_RGB = (255, 0, 255)
GAP_RGB = (255, 255, 255)

# Our name -> matplotlib's.
_MATPLOTLIB_NAMES = {
    "gray": "gray",
    "viridis": "viridis",
    "magma": "magma",
    "inferno": "inferno",
    "diverging": "RdBu_r",
}


def colormap_lut(name: str) -> np.ndarray:
    """The 256-entry colour table of a colormap, from matplotlib.

    Args:
        name: One of ``COLORMAPS``; ``"diverging"`` is matplotlib's ``RdBu_r``.

    Returns:
        A new ``uint8`` array of shape ``(256, 3)``: RGB for index 0 (low) to 255 (high).

    Raises:
        ValueError: If ``name`` is not in ``COLORMAPS``.
        ImportError: If matplotlib is not installed.

    Examples::

        >>> colormap_lut("viridis")[[0, 255]]
        array([[ 68,   1,  84],
               [253, 231,  37]], dtype=uint8)
    """
    _check_choice("colormap", name, COLORMAPS)
    return _lut(name).copy()


@functools.lru_cache(maxsize=None)
def _lut(name: str) -> np.ndarray:
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "drawing feature maps needs matplotlib for its colormaps: pip install matplotlib"
        ) from None
    cmap = matplotlib.colormaps[_MATPLOTLIB_NAMES[name]].resampled(256)
    rgba = cmap(np.arange(256))
    lut = np.rint(rgba[:, :3] * 255).astype(np.uint8)
    lut.flags.writeable = False
    return lut


def flat_index(colormap: str) -> int:
    """The LUT index of a map whose range is empty: 128 for ``"diverging"``, else 0."""
    _check_choice("colormap", colormap, COLORMAPS)
    return 128 if colormap == "diverging" else 0


def grid_columns(count: int) -> int:
    """Columns of the channel grid for ``count`` maps: ``ceil(sqrt(count))``, at least 1."""
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)):
        raise TypeError(f"count must be an int, got {type(count).__name__}")
    if count < 0:
        raise ValueError(f"count must be non-negative, got {count}")
    return max(1, math.isqrt(count - 1) + 1) if count > 0 else 1


ROW_MIN_HEIGHT = 4
ROWS_MIN_HEIGHT = 128
VIEW_KINDS = ("maps", "rows", "features")


def view_kind(layout: Optional[str], h: int, w: int) -> str:
    """How a layer of stored ``h x w`` maps is drawn: ``"features"`` for ``NF`` (or any
    1 x 1 maps), ``"rows"`` for the 1 x L maps of ``NCL`` and ``NTD``, else ``"maps"``."""
    if layout == "NF" or (h == 1 and w == 1):
        return "features"
    return "rows" if h == 1 and layout in ("NCL", "NTD") else "maps"


def row_height(count: int) -> int:
    """Pixels of one row of a 1-D layer of ``count`` channels, 1-pixel gaps between rows:
    at least ``ROW_MIN_HEIGHT``, and the rows together at least ``ROWS_MIN_HEIGHT``."""
    return max(ROW_MIN_HEIGHT, -(-(ROWS_MIN_HEIGHT - max(0, count - 1)) // max(1, count)))


SLICE_GAP = 3  # pixels between two depth slices of a 3-D channel
SLICE_RGB = (200, 200, 200)  # their colour, the tab's (frontend/detail.js SEPARATOR_RGBA)
VOLUME_GAP = 2 * SLICE_GAP  # pixels between two channels of a 3-D layer: wider than slices
MAX_DEPTH = 4096  # depth slices drawn side by side at most; a deeper layer is drawn as 2-D
MAX_PIXELS = 2**27  # the largest image render_maps draws (384 MiB of RGB)


def depth_of(header) -> int:
    """How many depth slices each stored map of a layer holds: ``D`` of a 3-D layer
    (``layout`` ``"NCDHW"``, ``shape`` ``[N, C, D, H, W]``, its slices stacked in the stored
    height, ``D`` at most ``MAX_DEPTH``), else 1: the layer is then drawn as 2-D maps. The
    rule of ``frontend/volume.js``'s ``depthOf`` (tests/layout_cases.json runs both).

    Args:
        header: A step header (``FeatureMapRecord.header`` or ``LayerInfo.header``).
    """
    header = header or {}
    shape, stored = header.get("shape"), header.get("stored")
    if header.get("layout") != "NCDHW" or not isinstance(shape, list) or len(shape) != 5:
        return 1
    depth = shape[2]
    ok = isinstance(depth, int) and 1 < depth <= MAX_DEPTH
    ok = ok and isinstance(stored, list) and len(stored) == 4
    return depth if ok and isinstance(stored[2], int) and stored[2] % depth == 0 else 1


def check_depth(header, depth: int) -> int:
    """``depth`` if it names a depth slice of the layer whose header this is.

    Raises:
        TypeError: If ``depth`` is not an int.
        ValueError: If the layer is not 3-D (``NCDHW``) or has no slice ``depth``; the
            message names the slices there are.
    """
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)):
        raise TypeError(f"depth must be an int, got {type(depth).__name__}")
    layout = (header or {}).get("layout")
    if layout != "NCDHW":
        raise ValueError(
            f"depth {depth} picks a depth slice of a 3-D layer (NCDHW); this layer is "
            f"{layout or 'of unknown layout'}"
        )
    count = depth_of(header)
    if not 0 <= depth < count:
        raise ValueError(
            f"depth {depth} is out of range: this layer has {count} depth slices, 0..{count - 1}"
        )
    return int(depth)


def value_ranges(
    stats_min: np.ndarray,
    stats_max: np.ndarray,
    *,
    norm: str = "channel",
    colormap: str = "gray",
    fixed: Optional[Tuple[float, float]] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """The ``[lo, hi]`` range of each map, by normalisation mode (see the module docstring).

    Args:
        stats_min: Each map's minimum at this step, shape ``[C]``.
        stats_max: Each map's maximum at this step, shape ``[C]``.
        norm: One of ``NORMALIZATIONS``. Default ``None``: ``"layer"`` for linear layers
            (``NF``, whose 1 x 1 maps are flat per channel), else ``"channel"``, as the tab.
        colormap: One of ``COLORMAPS``; ``"diverging"`` makes the ranges symmetric around 0.
            Default ``"gray"``.
        fixed: The layer's ``(lo, hi)`` over all steps, required for ``norm="fixed"``
            (``fixed_range`` computes it).

    Returns:
        ``(lo, hi)``, float64 arrays of shape ``[C]``.

    Raises:
        ValueError: On an unknown ``norm`` or ``colormap``, mismatched shapes, or
            ``norm="fixed"`` without ``fixed``.
    """
    _check_choice("norm", norm, NORMALIZATIONS)
    _check_choice("colormap", colormap, COLORMAPS)
    if norm == "fixed" and (fixed is None or len(fixed) != 2):
        raise ValueError("norm='fixed' needs fixed=(lo, hi); compute it with fixed_range()")
    lo = np.asarray(stats_min, dtype=np.float64)
    hi = np.asarray(stats_max, dtype=np.float64)
    if lo.ndim != 1 or lo.shape != hi.shape:
        raise ValueError(
            f"stats_min and stats_max must both have shape [C], got {lo.shape} and {hi.shape}"
        )
    if norm != "channel":
        known = norm == "fixed" and all(math.isfinite(float(v)) for v in fixed)
        span = (float(fixed[0]), float(fixed[1])) if known else _finite_span(lo, hi)
        lo, hi = np.full_like(lo, span[0]), np.full_like(hi, span[1])
    if colormap == "diverging":
        m = np.maximum(np.abs(lo), np.abs(hi))
        lo, hi = -m, m
    return lo, hi


def difference_ranges(diff: np.ndarray, *, norm: str = "channel") -> Tuple[np.ndarray, np.ndarray]:
    """The symmetric ``[-m, m]`` ranges of differences (see the module docstring, point 4).

    Args:
        diff: ``[C, H, W]`` differences, this step minus the previous one.
        norm: One of ``NORMALIZATIONS``: ``"channel"`` gives each map its own ``m``, the
            others one ``m`` for the layer. Default ``"channel"``.

    Returns:
        ``(lo, hi)``, float64 arrays of shape ``[C]``.

    Raises:
        ValueError: On an unknown ``norm`` or a ``diff`` that is not 3-D.
    """
    _check_choice("norm", norm, NORMALIZATIONS)
    diff = np.asarray(diff, dtype=np.float64)
    if diff.ndim != 3:
        raise ValueError(f"diff must have shape [C, H, W], got {diff.shape}")
    size = np.where(np.isfinite(diff), np.abs(diff), 0.0).reshape(diff.shape[0], -1)
    m = size.max(axis=1) if size.shape[1] else np.zeros(diff.shape[0])
    if norm != "channel":
        m = np.full_like(m, m.max() if m.size else 0.0)
    return -m, m


def color_indices(
    maps: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, colormap: str = "gray"
) -> Tuple[np.ndarray, np.ndarray]:
    """The LUT index of every value (see the module docstring, point 2).

    Args:
        maps: ``[C, H, W]`` values.
        lo: The low end of each map's range, ``[C]``.
        hi: The high end, ``[C]``.
        colormap: One of ``COLORMAPS``; it decides the index of a flat map. Default ``"gray"``.

    Returns:
        ``(index, finite)``: ``uint8`` indices ``[C, H, W]`` and where the values are finite
        (the others are drawn in ``NONFINITE_RGB``; their index is meaningless).
    """
    maps = np.asarray(maps)
    span = hi - lo
    with np.errstate(invalid="ignore", over="ignore"):
        usable = np.isfinite(span) & (span > 0)
        scale = np.where(usable, 255.0 / np.where(usable, span, 1.0), 0.0)[:, None, None]
        t = (maps.astype(np.float64) - np.where(usable, lo, 0.0)[:, None, None]) * scale
    finite = np.isfinite(maps)
    t = np.where(finite, t, 0.0)
    whole = np.floor(t)
    rounded = whole + (t - whole >= 0.5)  # half up, as JavaScript's Math.round
    index = np.clip(rounded, 0, 255).astype(np.uint8)
    index[~np.broadcast_to(usable[:, None, None], index.shape)] = flat_index(colormap)
    return index, finite


def fixed_range(records: Iterable, *, sample: int = 0) -> Tuple[float, float]:
    """The ``"fixed"`` range of a layer: extremes over all given steps and channels.

    Args:
        records: The steps of one run and layer (``FeatureMapRecord`` objects from
            ``tb_featmap.reader``; ``values`` may be ``None``).
        sample: The batch sample drawn. Default 0.

    Returns:
        ``(lo, hi)``; ``(nan, nan)`` when no value is finite.

    Raises:
        ValueError: If ``records`` is empty or mixes layers, or ``sample`` is not stored.
    """
    los, his, keys = [], [], set()
    for record in records:
        keys.add((record.run, record.tag))
        _check_sample(sample, record.stats["min"].shape[0])
        los.append(record.stats["min"][sample])
        his.append(record.stats["max"][sample])
    if not los:
        raise ValueError("records is empty: fixed_range needs at least one step")
    if len(keys) > 1:
        raise ValueError(f"records must be of one run and layer, got {sorted(keys)}")
    return _finite_span(np.concatenate(los).astype(np.float64), np.concatenate(his).astype(np.float64))


def render_maps(
    maps: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    colormap: str = "gray",
    scale: int = 1,
    background: Optional[np.ndarray] = None,
    alpha: float = 0.6,
    kind: str = "maps",
    depth: int = 1,
) -> np.ndarray:
    """Colour ``C`` maps with their ranges and lay them out as a grid.

    Args:
        maps: ``[C, H, W]`` values of one sample.
        lo: The low end of each map's range, ``[C]`` (``value_ranges`` gives it).
        hi: The high end, ``[C]``.
        colormap: One of ``COLORMAPS``. Default ``"gray"``.
        scale: Pixels per map value along each axis. Default 1.
        background: An RGB ``uint8`` image ``[Hb, Wb, 3]`` (``background_rgb``) to draw under
            every map: each map is then stretched to ``Hb x Wb`` and blended over it.
        alpha: The maps' opacity over ``background``, 0..1. Default 0.6.
        kind: One of ``VIEW_KINDS`` (see the module's docstring). Default ``"maps"``.
        depth: The depth slices stacked in each map (a 3-D layer, ``depth_of``): each cell
            then shows a map's ``depth`` slices of ``H / depth`` rows side by side,
            ``SLICE_GAP`` pixels of ``SLICE_RGB`` between two (a background goes under each
            slice), and cells are ``VOLUME_GAP`` pixels apart. Default 1.

    Returns:
        A ``uint8`` RGB image ``[rows * H * scale + rows - 1, cols * W * scale + cols - 1, 3]``
        for ``"maps"`` (with ``Hb, Wb`` for ``H, W`` over a background); for ``"rows"`` one
        column of rows ``row_height(C)`` high; for ``"features"`` cells of ``max(scale, 4)``
        pixels. With ``depth`` ``D``, a cell is ``H / D * scale`` high and
        ``D * W * scale + (D - 1) * SLICE_GAP`` wide, and ``VOLUME_GAP`` takes the place of
        the 1-pixel gap between cells.

    Raises:
        TypeError: If ``scale`` or ``depth`` is not an int.
        ValueError: On mismatched shapes, an unknown colormap, ``scale`` < 1, ``depth``
            < 1 or not dividing ``H``, or an image of more than ``MAX_PIXELS`` pixels
            (checked before it is drawn).
    """
    _check_choice("colormap", colormap, COLORMAPS)
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)):
        raise TypeError(f"scale must be a positive int, got {type(scale).__name__}")
    if scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale}")
    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise ValueError(f"maps must have shape [C, H, W], got {maps.shape}")
    c, h, w = maps.shape
    lo = np.asarray(lo, dtype=np.float64).reshape(-1)
    hi = np.asarray(hi, dtype=np.float64).reshape(-1)
    if lo.shape != (c,) or hi.shape != (c,):
        raise ValueError(f"lo and hi must have shape [{c}], got {lo.shape} and {hi.shape}")

    _check_choice("kind", kind, VIEW_KINDS)
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)):
        raise TypeError(f"depth must be a positive int, got {type(depth).__name__}")
    if depth < 1 or h % depth:
        raise ValueError(f"depth must be a positive int that divides the maps' height {h}, got {depth}")
    if background is not None:
        background = np.asarray(background)
        if background.ndim != 3 or background.shape[2] != 3 or background.dtype != np.uint8:
            raise ValueError(f"background must be uint8 [H, W, 3], got {background.dtype} {background.shape}")
    slice_h = h // depth
    th, tw = background.shape[:2] if background is not None else (slice_h, w)  # a tile
    rise, run = scale, scale
    if kind == "rows":
        rise = max(1, row_height(c) // th)
    elif kind == "features":
        rise = run = max(scale, ROW_MIN_HEIGHT)
    columns = 1 if kind == "rows" else grid_columns(c)
    rows = -(-c // columns)
    cell_w = depth * (tw * run + SLICE_GAP) - SLICE_GAP
    gap = VOLUME_GAP if depth > 1 else 1
    size = (rows * (th * rise + gap) - gap, columns * (cell_w + gap) - gap)
    if size[0] * size[1] > MAX_PIXELS:  # checked before anything that size is allocated
        raise ValueError(
            f"the image would be {size[1]:,} x {size[0]:,} pixels, over the {MAX_PIXELS:,} an "
            "export draws; pick fewer channels (--channels, --top), one depth slice (--depth) "
            "or a smaller --scale"
        )
    index, finite = color_indices(maps, lo, hi, colormap=colormap)
    tiles = _lut(colormap)[index]  # [C, H, W, 3]
    tiles[~finite] = NONFINITE_RGB
    h = slice_h
    tiles = tiles.reshape(c * depth, h, w, 3)  # each depth slice a tile of its own
    if background is not None:
        tiles = tiles[:, (np.arange(th) * h) // th][:, :, (np.arange(tw) * w) // tw]
        tiles = blend(tiles, background[None], overlay_weight(alpha))
    if rise > 1 or run > 1:
        tiles = tiles.repeat(rise, axis=1).repeat(run, axis=2)

    if depth > 1:  # a channel's slices side by side, SLICE_GAP apart
        th, tw = tiles.shape[1:3]
        cells = np.empty((c, th, depth * (tw + SLICE_GAP) - SLICE_GAP, 3), dtype=np.uint8)
        cells[:] = SLICE_RGB
        for d in range(depth):
            cells[:, :, d * (tw + SLICE_GAP):d * (tw + SLICE_GAP) + tw] = tiles[d::depth]
        tiles = cells

    ch, cw = tiles.shape[1:3]
    image = np.empty((*size, 3), dtype=np.uint8)
    image[:] = GAP_RGB
    for i in range(c):
        top, left = (i // columns) * (ch + gap), (i % columns) * (cw + gap)
        image[top:top + ch, left:left + cw] = tiles[i]
    return image


def render_series(array: np.ndarray, *, colormap: str = "viridis", scale: int = 1) -> np.ndarray:
    """The timeline's heat strip: one statistic of each channel (rows) at each step (columns).

    Coloured as the tab's timeline colours it: one range for the whole strip, the finite
    span of ``array`` (symmetric around 0 for ``"diverging"``), non-finite values (and steps
    that could not be read) in ``NONFINITE_RGB``.

    Args:
        array: float ``[steps, channels]``, as ``FeatureMapReader.series`` returns it.
        colormap: One of ``COLORMAPS``. Default ``"viridis"``.
        scale: Pixels per value along each axis. Default 1.

    Returns:
        A ``uint8`` RGB image ``[channels * scale, steps * scale, 3]``.

    Raises:
        TypeError: If ``scale`` is not an int.
        ValueError: If ``array`` is not 2-D, on an unknown colormap or ``scale`` < 1.

    Examples::

        >>> render_series(np.zeros((1000, 64), np.float32), scale=2).shape
        (128, 2000, 3)
    """
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"array must have shape [steps, channels], got {array.shape}")
    with np.errstate(invalid="ignore"):
        span = _finite_span(array.reshape(-1), array.reshape(-1))
    lo, hi = value_ranges([span[0]], [span[1]], colormap=colormap)
    return render_maps(array.T[None], lo, hi, colormap=colormap, scale=scale)


def render_record(
    record,
    *,
    sample: int = 0,
    colormap: str = "gray",
    norm: Optional[str] = None,
    fixed: Optional[Tuple[float, float]] = None,
    scale: int = 1,
    previous=None,
    channels: Optional[Sequence[int]] = None,
    background=None,
    alpha: float = 0.6,
    depth: Optional[int] = None,
) -> np.ndarray:
    """Draw one step of one layer as the tab does.

    Args:
        record: A ``FeatureMapRecord`` read with its values.
        sample: The batch sample to draw. Default 0.
        colormap: One of ``COLORMAPS``. Default ``"gray"``.
        norm: One of ``NORMALIZATIONS``. Default ``None``: ``"layer"`` for linear layers
            (``NF``, whose 1 x 1 maps are flat per channel), else ``"channel"``, as the tab.
        fixed: For ``norm="fixed"``, the layer's range (``fixed_range`` over its steps).
        scale: Pixels per map value. Default 1.
        previous: The step before, read with its values: draw the difference
            ``record - previous`` as the tab's difference mode does (``colormap`` and
            ``fixed`` are then not used). Default ``None``: draw the values.
        channels: The channels to draw, in this order (``parse_channels``,
            ``rank_channels``). Default ``None``: all, by index.
        background: A record of 1 or 3 channels read with its values (the input, logged as
            a layer) of the maps' aspect, drawn under every map (``background_rgb``).
        alpha: The maps' opacity over ``background``, 0..1. Default 0.6.
        depth: For a 3-D layer (``NCDHW``), draw only this depth slice, ``0..D - 1``, as the
            tab's depth control does (a difference is then that slice's). Default ``None``:
            every slice of each channel side by side (``render_maps``'s ``depth``).

    Returns:
        A ``uint8`` RGB image ``[height, width, 3]``, see ``render_maps``; drawn as the
        layer's ``view_kind`` says.

    Raises:
        TypeError: If ``depth`` is not an int.
        ValueError: If the record (or ``previous``) has no values, ``sample`` is not stored,
            the two steps differ in shape, ``depth`` is given for a layer that is not 3-D or
            is out of range (``check_depth``), or an option is invalid.

    Examples::

        >>> records = read("runs", run="alexnet", layer="features.0")
        >>> image = render_record(records[-1], colormap="viridis", norm="fixed",
        ...                       fixed=fixed_range(records), scale=2)
        >>> image.shape  # 64 maps of 55 x 55 in 8 columns, 2 pixels per value
        (887, 887, 3)
    """
    if getattr(record, "values", None) is None:
        raise ValueError("record has no values: read it with values=True")
    _check_sample(sample, record.values.shape[0])
    header = getattr(record, "header", None) or {}
    layout = header.get("layout")
    slices = depth_of(header)
    now = record.values[sample]
    if depth is not None:
        d = check_depth(header, depth)
        height = now.shape[1] // slices
        now, slices = now[:, d * height:(d + 1) * height], 1
    kind = view_kind(layout, *record.values.shape[2:4])  # as the tab: by the stored maps
    if norm is None:
        norm = "layer" if kind == "features" else "channel"
    if previous is not None:
        if getattr(previous, "values", None) is None:
            raise ValueError("previous has no values: read it with values=True")
        _check_sample(sample, previous.values.shape[0])
        before = previous.values[sample]
        if before.shape != record.values[sample].shape:
            raise ValueError(
                f"previous has maps of shape {before.shape}, this step {record.values[sample].shape}"
            )
        if depth is not None:
            before = before[:, d * height:(d + 1) * height]
        diff = now.astype(np.float32) - before.astype(np.float32)
        lo, hi = difference_ranges(diff, norm=norm)
        maps, colormap = diff, "diverging"
    else:
        lo, hi = value_ranges(
            record.stats["min"][sample], record.stats["max"][sample],
            norm=norm, colormap=colormap, fixed=fixed,
        )
        maps = now
    under = None
    if background is not None:
        if getattr(background, "values", None) is None:
            raise ValueError("background has no values: read it with values=True")
        values = background.values[min(sample, background.values.shape[0] - 1)]
        bh, bw = values.shape[1:]
        mh, mw = maps.shape[1] // slices, maps.shape[2]
        if bh * mw != bw * mh:
            raise ValueError(
                f"background of {bh}x{bw} does not have the aspect of the maps ({mh}x{mw})"
            )
        under = background_rgb(values)
    if channels is not None:
        picked = [int(c) for c in channels]
        if any(not 0 <= c < maps.shape[0] for c in picked):
            raise ValueError(f"channels must be in 0..{maps.shape[0] - 1}, got {picked}")
        maps, lo, hi = maps[picked], lo[picked], hi[picked]
    return render_maps(
        maps, lo, hi, colormap=colormap, scale=scale, background=under, alpha=alpha, kind=kind,
        depth=slices,
    )


def background_rgb(values: np.ndarray) -> np.ndarray:
    """A layer of 1 or 3 channels as an RGB picture, normalised over the layer.

    Args:
        values: ``[1, H, W]`` (drawn gray) or ``[3, H, W]`` (drawn as R, G, B).

    Returns:
        ``uint8`` ``[H, W, 3]``; see the module docstring for the rule.

    Raises:
        ValueError: If ``values`` is not ``[1 | 3, H, W]``.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 3 or values.shape[0] not in (1, 3):
        raise ValueError(f"a background has shape [1 or 3, H, W], got {values.shape}")
    finite = np.isfinite(values)
    if finite.any() and values[finite].max() > values[finite].min():
        lo, hi = float(values[finite].min()), float(values[finite].max())
        t = np.where(finite, (values - lo) * (255.0 / (hi - lo)), 0.0)
        whole = np.floor(t)
        levels = np.clip(whole + (t - whole >= 0.5), 0, 255).astype(np.uint8)
    else:
        levels = np.zeros(values.shape, dtype=np.uint8)
    if values.shape[0] == 1:
        levels = np.repeat(levels, 3, axis=0)
    return np.ascontiguousarray(levels.transpose(1, 2, 0))


def overlay_weight(alpha: float) -> int:
    """The maps' weight over a background, 0..256: ``round(alpha * 256)``, alpha clipped to 0..1.

    Raises:
        ValueError: If ``alpha`` is not a number in 0..1.
    """
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha must be a number in 0..1, got {alpha!r}") from None
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in 0..1, got {alpha}")
    return int(math.floor(alpha * 256 + 0.5))


def blend(fg: np.ndarray, bg: np.ndarray, weight: int) -> np.ndarray:
    """``(fg * weight >> 8) + (bg * (256 - weight) >> 8)`` per component, as ``uint8``."""
    fg16 = np.asarray(fg, dtype=np.uint16)
    bg16 = np.asarray(bg, dtype=np.uint16)
    return ((fg16 * weight >> 8) + (bg16 * (256 - weight) >> 8)).astype(np.uint8)


def parse_channels(text: str, count: int) -> List[int]:
    """Channels from a list like ``"3, 17, 40-45"`` (as the tab's channel filter reads it).

    Args:
        text: Indices and inclusive ranges, separated by commas or spaces.
        count: The layer's channels.

    Returns:
        The channels, ascending and distinct.

    Raises:
        ValueError: On a part that is not an index or range, a backwards range, or a channel
            outside ``0..count - 1``.
    """
    chosen = set()
    parts = [p for p in re.split(r"[\s,]+", text) if p]
    if not parts:
        raise ValueError("channels is empty: give indices like 3, 17, 40-45")
    for part in parts:
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ValueError(f"{part!r} is not a channel or a range like 40-45")
        first = int(m.group(1))
        last = first if m.group(2) is None else int(m.group(2))
        if last < first:
            raise ValueError(f"range {part} runs backwards")
        if last >= count:
            raise ValueError(f"channel {last} does not exist: this layer has 0-{count - 1}")
        chosen.update(range(first, last + 1))
    return sorted(chosen)


def rank_channels(
    record, *, by: str = "std", top: int, sample: int = 0, previous=None,
    channels: Optional[Sequence[int]] = None,
) -> List[int]:
    """The ``top`` channels by a statistic, highest first, ties by index (as the tab's Top K).

    Args:
        record: A ``FeatureMapRecord``; ``"change"`` needs its values.
        by: One of ``RANKINGS``: the writer's ``std``, ``mean`` or ``zero_fraction``, or
            ``"change"``, the mean ``|this - previous|`` over the positions finite in both.
        top: How many channels, at least 1.
        sample: The batch sample. Default 0.
        previous: The kept step before, read with its values, for ``"change"`` (``None``:
            every channel's change is unknown and ranks last).
        channels: Rank only these. Default ``None``: all.

    Returns:
        Channel indices, at most ``top``.

    Raises:
        ValueError: On an unknown ``by`` or ``top`` < 1.
    """
    _check_choice("by", by, RANKINGS)
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ValueError(f"top must be a positive int, got {top!r}")
    count = record.stats["min"].shape[1]
    candidates = list(range(count)) if channels is None else [int(c) for c in channels]
    if by != "change":
        key = np.asarray(record.stats[by][sample], dtype=np.float64)
    else:
        key = np.full(count, np.nan)
        if previous is not None and previous.values is not None and record.values is not None:
            now = record.values[sample].astype(np.float64)
            before = previous.values[min(sample, previous.values.shape[0] - 1)].astype(np.float64)
            if now.shape == before.shape:
                d = np.abs(now - before).reshape(count, -1)
                ok = np.isfinite(d)
                with np.errstate(invalid="ignore"):
                    key = np.where(ok.any(axis=1), np.where(ok, d, 0).sum(axis=1) / ok.sum(axis=1), np.nan)
    rank = np.where(np.isnan(key), -np.inf, key)
    return sorted(candidates, key=lambda c: (-rank[c], c))[:top]


def pick_channels(
    record, *, channels: Optional[str] = None, top: Optional[int] = None, by: str = "std",
    sample: int = 0, previous=None,
) -> Optional[List[int]]:
    """The channels the tab would show: those of a filter, then the ``top`` by ``by``.

    Args:
        record: A ``FeatureMapRecord``.
        channels: A filter like ``"3, 17, 40-45"`` (``parse_channels``). Default: all.
        top: Keep the top ``top`` by ``by`` (``rank_channels``). Default: no ranking.
        by: One of ``RANKINGS``. Default ``"std"``.
        sample: The batch sample. Default 0.
        previous: The kept step before, read with its values, for ``by="change"``.

    Returns:
        Channel indices in display order, or ``None`` for all of them by index.

    Raises:
        ValueError: On an invalid filter, ``top`` or ``by``.
    """
    count = record.stats["min"].shape[1]
    picked = parse_channels(channels, count) if channels is not None else None
    if top is None:
        return picked
    return rank_channels(record, by=by, top=top, sample=sample, previous=previous, channels=picked)


def _check_choice(name: str, value, choices: Tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_sample(sample, count: int) -> None:
    if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)):
        raise TypeError(f"sample must be an int, got {type(sample).__name__}")
    if not 0 <= sample < count:
        raise ValueError(f"sample {sample} is not stored; this layer has samples 0..{count - 1}")


def _finite_span(lo: np.ndarray, hi: np.ndarray) -> Tuple[float, float]:
    """The smallest finite ``lo`` and largest finite ``hi``; ``(nan, nan)`` when there are none."""
    lo, hi = lo[np.isfinite(lo)], hi[np.isfinite(hi)]
    if not lo.size or not hi.size or lo.min() > hi.max():
        return math.nan, math.nan
    return float(lo.min()), float(hi.max())
