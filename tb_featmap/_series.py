"""How a feature-map series is read: the one read path of the plugin, the reader and the CLI.

Given the data of one layer (steps and their blob references, from a TensorBoard data
provider or from the event multiplexer), this module decides:

- whether a series' metadata is of a format version this code knows (``check_series``);
- how a step's blobs are read and what a failed read means (``read_blobs``);
- how a step decodes, through ``payload``'s one validated decoder (``decode_step``);
- which step describes a layer: the newest that decodes (``newest_readable``);
- what a step logged twice means (``follow_restarts``, TensorBoard's default loader's rule);
- how a layer is described (``describe_layer`` -> ``LayerInfo``);
- how the statistics of many steps reduce, step by step (``StatsReducer``);
- how one statistic of every channel at every step is gathered (``SeriesBuilder``).

No torch, no TensorBoard server: numpy and ``tb_featmap.payload`` only.
"""

import dataclasses
import re
import warnings
from typing import Any, Callable, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from tensorboard import errors

from tb_featmap import metadata, payload

__all__ = [
    "ALL",
    "LayerInfo",
    "SERIES_STATS",
    "SeriesBuilder",
    "SeriesSkipped",
    "StatsReducer",
    "Step",
    "StepError",
    "check_series",
    "decode_step",
    "describe_layer",
    "follow_restarts",
    "layer_order",
    "newest_readable",
    "read_blobs",
    "show_name",
]

ALL = 2**31 - 1  # "every step" for a data provider's `downsample`
BLOBS = 3  # header, stats, data


class SeriesSkipped(Exception):
    """A series whose metadata this code cannot use; ``newer`` if of a newer version."""

    def __init__(self, reason: str, *, newer: bool = False):
        super().__init__(reason)
        self.newer = newer


class StepError(Exception):
    """A step that cannot be read or decoded; ``newer`` if of a newer format version."""

    def __init__(self, step: int, reason: str, *, newer: bool = False):
        super().__init__(f"step {step} cannot be read: {reason}")
        self.step, self.reason, self.newer = step, reason, newer


class Step(NamedTuple):
    """A decoded step: its checked header, its statistics ``[N, C, 6]`` and, when asked
    for, its maps ``[N, C, H, W]`` (else None)."""

    header: Mapping[str, Any]
    stats: np.ndarray
    values: Optional[np.ndarray]


def check_series(content: bytes) -> None:
    """Check a series' plugin metadata content.

    Raises:
        SeriesSkipped: If it does not parse, or is of a newer format version.
    """
    try:
        version = metadata.parse_plugin_metadata(content).version
    except (TypeError, ValueError) as e:
        raise SeriesSkipped(str(e)) from None
    if version > payload.FORMAT_VERSION:
        raise SeriesSkipped(
            f"format version {version} is newer than this reader's {payload.FORMAT_VERSION}; "
            "upgrade tb_featmap",
            newer=True,
        )


def read_blobs(
    datum,
    count: int,
    read_blob: Callable[[Any], bytes],
    *,
    start: int = 0,
    map_fn: Callable = map,
) -> List[bytes]:
    """Blobs ``start`` to ``count - 1`` of a step.

    Args:
        datum: Has ``step`` and ``values`` (the step's blob references).
        count: Read the blobs up to this index (exclusive).
        read_blob: Reads one reference.
        start: The first blob to read. Default 0.
        map_fn: How to map ``read_blob`` over them (a pool's ``map`` reads them at once).

    Raises:
        StepError: If the step has too few blobs or a read fails the way a foreign tensor
            (not a 1-D string tensor) or an unreadable name makes it fail.
    """
    if len(datum.values) < count:
        raise StepError(datum.step, f"{len(datum.values)} blobs, expected {BLOBS}")
    try:
        blobs = list(map_fn(read_blob, datum.values[start:count]))
    except errors.InvalidArgumentError:
        # TensorBoard's Rust data server cannot parse its own blob keys when the run or
        # tag name holds a character that JSON escapes (a quote, a backslash, a control
        # character). The Python loader can.
        raise StepError(
            datum.step,
            "the data server rejects this run or tag name (a quote, backslash or control "
            "character); use --load_fast=false",
        ) from None
    except (errors.NotFoundError, IndexError, TypeError, ValueError) as e:
        # The Python data provider fails this way on a tensor that is not a 1-D string
        # tensor, which any tool can write under this plugin's name.
        raise StepError(datum.step, type(e).__name__) from None
    if not all(isinstance(blob, bytes) for blob in blobs):
        raise StepError(datum.step, "a blob is not bytes")
    return blobs


def decode_step(step: int, blobs: Sequence[bytes]) -> Step:
    """Decode one, two or three blobs of a step (header; + stats; + maps).

    Raises:
        StepError: If they do not decode (``newer`` set for a newer format version).
    """
    try:
        header = payload.decode_header(blobs[0])
        stats = payload.decode_stats(header, blobs[1]) if len(blobs) > 1 else None
        values = payload.decode_values(header, stats, blobs[2]) if len(blobs) > 2 else None
    except payload.NewerVersionError as e:
        raise StepError(step, str(e), newer=True) from None
    except payload.PayloadError as e:
        raise StepError(step, str(e)) from None
    return Step(header, stats, values)


def newest_readable(
    data: Sequence, read_header: Callable[[Any], Mapping[str, Any]]
) -> Tuple[Optional[Any], Optional[Mapping[str, Any]], List[StepError]]:
    """The newest step whose header decodes, trying every step, newest first.

    Args:
        data: The steps (with ``step``), in any order.
        read_header: Returns a step's checked header or raises ``StepError``.

    Returns:
        ``(datum, header, errors)``: the step found (None, None if none decodes) and the
        ``StepError`` of each newer step that did not.
    """
    failed = []
    for datum in sorted(data, key=lambda d: d.step, reverse=True):
        try:
            return datum, read_header(datum), failed
        except StepError as e:
            failed.append(e)
    return None, None, failed


def follow_restarts(data: Iterable) -> list:
    """Apply the rule of TensorBoard's default loader to steps in the order they were read.

    When a writer restarts from an older checkpoint, the event files hold some steps
    twice. The Rust data server (TensorBoard's default loader) then keeps the newer writer:
    a step that is not after the last one kept drops every kept step from it on. This
    returns the steps it serves, ascending; each step once.
    """
    kept: list = []
    for datum in data:
        while kept and kept[-1].step >= datum.step:
            kept.pop()
        kept.append(datum)
    return kept


@dataclasses.dataclass(frozen=True, eq=False)
class LayerInfo:
    """What one run holds for one layer. The one description of a layer: ``read``'s
    ``FeatureMapReader.layers()``, ``tb-featmap ls`` and the plugin's ``tags`` route.

    Attributes:
        run: The run.
        layer: The layer name (the tag without ``feature_maps/``).
        tag: The full tag.
        steps: Every kept step, ascending.
        header: The header of the newest step that decodes (shapes, layout, encoding).
        skipped: Steps found unreadable, ascending (see ``describe_layer``).
    """

    run: str
    layer: str
    tag: str
    steps: Tuple[int, ...]
    header: Mapping[str, Any]
    skipped: Tuple[int, ...] = ()

    @property
    def logged(self) -> int:
        """How many steps the writer logged, as far as the describing step tells."""
        return max(len(self.steps), int(self.header["seq"]) + 1)

    def as_dict(self) -> dict:
        """The description as JSON-ready data, snake_case (``tb-featmap ls --json``)."""
        header = self.header
        return {
            "run": self.run,
            "layer": self.layer,
            "tag": self.tag,
            "layout": header.get("layout"),
            "shape": header.get("shape"),
            "stored": header["stored"],
            "dtype": header.get("dtype"),
            "encoding": header["encoding"],
            "downsample": header["downsample"],
            "dropped": header["dropped"],
            "order": header.get("order"),
            "steps": len(self.steps),
            "logged": self.logged,
            "first_step": self.steps[0],
            "last_step": self.steps[-1],
            "skipped": list(self.skipped),
        }


def layer_order(infos: Iterable[LayerInfo]) -> List[LayerInfo]:
    """Layers in logging order: by run, then by the ``order`` their header records (the
    order in which their writer first logged them; model order for the recorder), then by
    name in natural order (``features.3`` before ``features.10``), which alone orders
    layers written before ``order`` existed."""

    def key(info: LayerInfo):
        order = info.header.get("order")
        return (info.run, order is None, order or 0, _natural(info.layer), info.layer)

    return sorted(infos, key=key)


def _natural(name: str) -> tuple:
    """A sort key that compares the digit runs of ``name`` as numbers."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", name) if part
    )


def describe_layer(
    run: str, tag: str, steps: Iterable[int], header: Mapping[str, Any],
    skipped: Iterable[int] = (),
) -> LayerInfo:
    """Describe a layer by its kept steps and the header of its newest readable step.

    Args:
        run: The run.
        tag: The full tag.
        steps: Its kept steps.
        header: A header from ``payload.decode_header``.
        skipped: Steps found unreadable; only those among ``steps`` are kept.

    Returns:
        A ``LayerInfo``.
    """
    steps = tuple(sorted(steps))
    kept = set(steps)
    return LayerInfo(
        run=run,
        layer=metadata.layer_name(tag),
        tag=tag,
        steps=steps,
        header=header,
        skipped=tuple(sorted(s for s in set(skipped) if s in kept)),
    )


class StatsReducer:
    """Per-channel statistics of one sample over many steps, reduced one step at a time.

    Memory is O(channels) whatever the number of steps. Steps whose channel count differs
    from the first added step's, or that hold too few samples, are not counted.

    Args:
        sample: The batch sample to reduce.
    """

    def __init__(self, sample: int):
        self.sample = sample
        self.steps = 0
        self.samples = 0  # the most samples any step held
        self._channels = None

    def add(self, stats: np.ndarray) -> None:
        """Add one step's statistics, float32 ``[N, C, 6]``."""
        self.samples = max(self.samples, stats.shape[0])
        if self.sample >= stats.shape[0]:
            return  # a step logged with fewer samples (max_samples changed on a restart)
        s = stats[self.sample]
        if self._channels is None:
            self._channels = s.shape[0]
            c = self._channels
            self._min = np.full(c, np.nan, np.float32)
            self._max = np.full(c, np.nan, np.float32)
            self._mean = np.zeros(c)
            self._mean_count = np.zeros(c, np.int64)
            self._var = np.zeros(c)
            self._var_count = np.zeros(c, np.int64)
            self._zero = np.zeros(c)
            self._nonfinite = np.zeros(c)
            self._dead = np.ones(c, bool)
        elif s.shape[0] != self._channels:
            return  # the channel count changed (a new run under an old name)
        with np.errstate(all="ignore"):
            np.fmin(self._min, s[:, 0], out=self._min)
            np.fmax(self._max, s[:, 1], out=self._max)
            for total, count, values in (
                (self._mean, self._mean_count, s[:, 2]),
                (self._var, self._var_count, s[:, 3].astype(np.float64) ** 2),
            ):
                finite = ~np.isnan(values)
                total += np.where(finite, values, 0.0)
                count += finite
            zero = s[:, 4]
            self._zero += zero
            self._nonfinite += s[:, 5]
            self._dead &= zero == 1
        self.steps += 1

    def result(self) -> Optional[dict]:
        """The reduced statistics, per channel as numpy arrays, or None if no step counted."""
        if not self.steps:
            return None
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return {
                "steps": self.steps,
                "channels": self._channels,
                "min": self._min.astype(np.float64),
                "max": self._max.astype(np.float64),
                "mean": self._mean / self._mean_count,
                "std": np.sqrt(self._var / self._var_count),
                "zero_fraction": self._zero / self.steps,
                "nonfinite": np.clip(np.nan_to_num(self._nonfinite), 0, 2**53).astype(np.int64),
                "dead": self._dead.copy(),
            }


SERIES_STATS = payload.STAT_FIELDS  # the statistics a series can be of


class SeriesBuilder:
    """One statistic of every channel of one sample at each step: float32 ``[steps, channels]``.

    Steps are added one at a time, in any order, by their row. The channel count is the
    first added step's (add the newest step first: it describes the layer, as in
    ``newest_readable``). A row stays NaN where its step was never added, held another
    channel count, or held too few samples. Memory is the answer's, whatever the steps hold.

    Args:
        stat: One of ``SERIES_STATS``.
        sample: The batch sample.
        steps: The number of rows.

    Raises:
        ValueError: If ``stat`` is unknown or ``sample`` or ``steps`` is negative.
    """

    def __init__(self, stat: str, sample: int, steps: int):
        if stat not in SERIES_STATS:
            raise ValueError(f"unknown statistic {stat!r}; valid: {', '.join(SERIES_STATS)}")
        if sample < 0 or steps < 0:
            raise ValueError(f"sample and steps must be non-negative, got {sample}, {steps}")
        self.stat, self.sample, self.rows = stat, sample, steps
        self.field = SERIES_STATS.index(stat)
        self.samples = 0  # the most samples any step held
        self.added = 0
        self._array: Optional[np.ndarray] = None

    def add(self, row: int, stats: np.ndarray) -> None:
        """Add the statistics, float32 ``[N, C, 6]``, of the step of ``row``."""
        self.samples = max(self.samples, stats.shape[0])
        if self.sample >= stats.shape[0]:
            return
        if self._array is None:
            self._array = np.full((self.rows, stats.shape[1]), np.nan, np.float32)
        elif stats.shape[1] != self._array.shape[1]:
            return  # the channel count changed (a new run under an old name)
        self._array[row] = stats[self.sample, :, self.field]
        self.added += 1

    def result(self) -> Optional[np.ndarray]:
        """The ``[steps, channels]`` array, or None if no step was added."""
        return self._array if self.added else None


def show_name(name: str, *, quote: bool = True) -> str:
    """A run or layer name as it should be shown in text: escaped like ``repr`` (bidi
    controls and other invisible characters become ``\\u202e`` and the like), so that a name
    can never pass for another. Quoted, unless ``quote`` is False (a table cell)."""
    shown = repr(name).translate(_INVISIBLE)
    return shown if quote else shown[1:-1]


# Bidi controls, zero-width and other format characters, and separators that are not a
# plain space: escaped by show_name. repr() already escapes C0/C1 controls.
_INVISIBLE = {
    code: f"\\u{code:04x}"
    for code in (
        [0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x3164, 0xFEFF,
         0xFFA0]
        + list(range(0x2000, 0x2010))  # spaces of other widths, zero-width, LRM/RLM
        + list(range(0x2028, 0x2030))  # separators, bidi embeddings and overrides
        + list(range(0x205F, 0x2070))  # math space, invisible operators, bidi isolates
        + list(range(0xFE00, 0xFE10))  # variation selectors
        + list(range(0xFFF9, 0xFFFC))  # interlinear annotations
    )
}
