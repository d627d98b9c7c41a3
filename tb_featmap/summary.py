"""The writer side: ``log_feature_maps`` turns activations into feature-map summaries.

Together with ``recorder.py`` this is the only part of tb_featmap that imports torch.
"""

import math
import warnings
import weakref
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

from tb_featmap import metadata, payload

try:
    from isal import isal_zlib
except ImportError:  # optional speed-up, see _compressor
    isal_zlib = None
from tb_featmap._writers import sink_for
from tb_featmap.recorder import _select

__all__ = ["log_feature_maps", "MAX_VALUES_PER_LAYER", "MAX_MAPS_PER_LAYER", "MAX_STEP"]

# Hard bounds on what one layer stores, whatever the options say: at most 16 MiB of uint8
# codes (32 MiB as float16) plus 24 bytes of statistics per map (1.5 MiB). A call writes one
# event, so its record is the sum over its layers; see MAX_RECORD_BYTES.
MAX_VALUES_PER_LAYER = 1 << 24
MAX_MAPS_PER_LAYER = 1 << 16
# Well below protobuf's 2 GiB message limit and the data server's 256 MiB reply limit
# (which applies per blob, and a blob holds one layer's maps).
MAX_RECORD_BYTES = 512 << 20
# The largest step the tab can address: JavaScript's Number.MAX_SAFE_INTEGER.
MAX_STEP = 2**53 - 1

_DEFAULT_LAYOUT_BY_RANK = {2: "NF", 4: "NCHW", 5: "NCDHW"}
_RANK_OF_LAYOUT = {"HW": 2, "NF": 2, "CHW": 3, "NCL": 3, "NTD": 3, "NCHW": 4, "NCDHW": 5}
_PRECISIONS = ("uint8", "float16")


def _compressor():
    """A zlib (RFC 1950) stream compressor, the way the browser's DecompressionStream reads
    it. Quantised activations are close to noise, so LZ77 matching finds little: ISA-L at
    level 1 is ~5x faster than zlib for the same size (benchmarks/). zlib's Huffman-only
    mode, the fallback, is the next fastest. Fed block by block while each block is still
    in the CPU cache."""
    if isal_zlib is not None:
        return isal_zlib.compressobj(1)
    return zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_HUFFMAN_ONLY)


# Per writer, per tag: how many steps this process has logged (the header's `seq`). The
# plugin compares it with the steps TensorBoard kept, to tell the user what was dropped.
_SEQ: "weakref.WeakKeyDictionary[Any, Dict[str, int]]" = weakref.WeakKeyDictionary()
_WARNED: set = set()


def log_feature_maps(
    writer,
    outputs: Union[Mapping, Sequence],
    step: int,
    *,
    names: Optional[Sequence[str]] = None,
    prefix: str = "",
    layout: Union[None, str, Mapping[str, str]] = None,
    max_samples: Optional[int] = 1,
    max_channels: Optional[int] = None,
    max_size: Optional[int] = 64,
    precision: str = "uint8",
    walltime: Optional[float] = None,
    all_ranks: bool = False,
    keep_class_token: bool = False,
) -> Dict[str, Tuple[int, ...]]:
    """Log every channel of each layer output as a feature-map summary.

    All layers of one call go into a single event, so a step is either there whole or not
    at all. Everything is validated before anything is written.

    How each layout maps to a grid of 2-D maps (``N`` samples by ``C`` channels):

    - ``NCHW``: the main case, maps of ``H x W``. ``CHW``: one sample. ``HW``: one map.
    - ``NCL`` (1-D convs): each channel a ``1 x L`` strip.
    - ``NCDHW`` (3-D convs): each channel its ``D`` depth slices stacked vertically.
    - ``NF`` (linear layers): each feature a channel with a ``1 x 1`` map.
    - ``NTD`` (token sequences, e.g. a ViT's): each of the ``D`` dimensions a channel, its map
      the tokens on a ``sqrt(T)`` square; when only ``T - 1`` is square, the first (class)
      token is dropped and counted in ``dropped`` (with ``keep_class_token=True`` every
      token is kept, as a ``1 x T`` strip, class token first); otherwise ``1 x T``.

    The header of each layer records ``order``, its place among the layers this writer has
    logged, in the order it first logged them (one call's: the order of its outputs; the
    recorder's: model order): the tab, ``tb-featmap ls`` and ``read`` list layers in that
    order.

    Args:
        writer: A ``torch.utils.tensorboard.SummaryWriter`` or ``tensorboardX.SummaryWriter``.
        outputs: A mapping of layer name to tensor (what ``FeatureMapRecorder.outputs`` and
            ``create_feature_extractor`` return), or a sequence of tensors. Tensors may be on
            any device, of any real dtype, with or without grad; numpy arrays work too. They
            are never modified.
        step: The global step, an integer from 0 to ``2**53 - 1`` (``MAX_STEP``, the
            largest the tab can address).
        names: Names for a sequence of outputs. Default: ``layer0``, ``layer1``, ...
        prefix: Put the tags under ``feature_maps/<prefix>/``. Default: none.
        layout: One layout name for all outputs, or a mapping of layer name or glob (the
            recorder's dotted rule: ``*`` stays within one part of a name, ``**`` crosses
            dots) to layout; a name matches its own entry first, else the first pattern that
            matches it. Default: the layouts ``outputs.layouts`` carries
            (``FeatureMapRecorder.outputs`` does, from each module's type), else by rank:
            2 is ``NF``, 4 is ``NCHW``, 5 is ``NCDHW``. Rank 3 means ``CHW``, ``NCL`` or
            ``NTD`` equally often, so it must be known. ``layout=`` wins over
            ``outputs.layouts``.
        max_samples: Keep the first this many batch samples. Default 1; ``None`` keeps all.
            Log a fixed probe batch and set this to its size.
        max_channels: Keep the first this many channels. Default ``None``: all.
        max_size: Downsample (area average) maps whose height or width exceeds this, by an
            integer factor recorded as ``downsample``. A map one value high (``NCL``, ``NF``,
            a token strip) is capped by its number of values instead: its length is
            downsampled only beyond ``max_size ** 2`` (4096 for the default), as many values
            as a square map keeps. Default 64; ``None``: never.
        precision: ``"uint8"`` (default): per-map 8-bit quantisation, error at most
            ``(max - min) / 508``; every non-finite value is one code (NaN when read: the
            sign of an infinity is lost). ``"float16"``: the values as IEEE half, infinities
            with their sign. A layer with finite values that float16 would make infinite
            (``|x| >= 65520``) is stored as uint8 at that step instead, which its header's
            ``encoding`` records, with a warning once per layer.
        keep_class_token: For ``NTD`` layers whose ``T - 1`` tokens make a square patch
            grid, keep the first (class) token: all ``T`` tokens are stored as one ``1 x T``
            strip instead of the patch grid. Default False: the class token is dropped and
            counted in the header's ``dropped``.
        walltime: Event time in seconds since the epoch, finite. Default: now.
        all_ranks: In a ``torch.distributed`` job, by default only rank 0 writes and the
            other ranks return ``{}`` after checking their arguments. With ``True``, every
            rank writes into a run of its own, ``<writer's logdir>/rank<r>``, through a
            writer of the same kind that tb_featmap opens and flushes after each call.

    Returns:
        The stored ``[N, C, H, W]`` of each tag written; ``{}`` when nothing was written
        (a rank other than 0, or the writer failed: see below).

    Writer failures (the disk is full, the log directory was removed) do not stop
    training: the call warns once, writes nothing and returns ``{}``. TensorBoard's writers
    write in a background thread, so a full disk shows at a later call: the events still
    queued then (at most the writer's ``max_queue``, 10 by default) are lost too, though
    their calls had returned their shapes. A lost event is lost whole: no step is ever
    half on disk. In a job where only rank 0 has a writer, call this on
    rank 0 only (``writer=None`` is a ``TypeError`` on every rank).

    Statistics are exact for every finite float32 input (sums run in float64 where float32
    could overflow). float64 values beyond float32's range become infinities, are counted
    in ``nonfinite`` and warned about once per layer.

    The call's cost does not depend on how busy the machine is: after one device-to-host
    copy per layer (for CUDA tensors, waiting for that tensor's stream only), the encoding
    is numpy on the calling thread and never uses torch's intra-op thread pool. With a
    tensorboardX writer whose thread has died, the call never waits on its full queue and
    marks that event writer closed, so that neither later ``add_*`` calls nor interpreter
    exit block on it.

    Raises:
        TypeError: If ``writer``, ``outputs``, a tensor, ``step`` or an option has the
            wrong type, or a tensor is sparse, quantized or on the meta device (the error
            names the layer).
        ValueError: On an empty tensor, an unsupported rank, a step outside 0 to
            ``2**53 - 1``, a non-finite ``walltime``, duplicate names, a tag longer than
            the plugin serves (4096 characters), an unknown layout or precision, or a
            closed writer.

    Examples::

        >>> writer = SummaryWriter("runs/demo")
        >>> with FeatureMapRecorder(model, ["features.*"]) as rec:
        ...     model(probe)
        >>> log_feature_maps(writer, rec.outputs, step=100)
        {'feature_maps/features.0': (1, 64, 55, 55), 'feature_maps/features.3': (1, 192, 27, 27), ...}
    """
    sink = sink_for(writer)
    if sink.closed():
        raise ValueError("writer is closed: log_feature_maps needs an open SummaryWriter")
    step = _check_step(step)
    prefix = _check_prefix(prefix)
    if precision not in _PRECISIONS:
        raise ValueError(f"precision must be one of {_PRECISIONS}, got {precision!r}")
    max_samples = _check_cap("max_samples", max_samples)
    max_channels = _check_cap("max_channels", max_channels)
    max_size = _check_cap("max_size", max_size)
    if walltime is not None:
        if isinstance(walltime, bool) or not isinstance(walltime, (int, float)):
            raise TypeError(f"walltime must be a number of seconds, got {type(walltime).__name__}")
        if not math.isfinite(walltime):
            # TensorBoard's loader stops reading an event file at such a record.
            raise ValueError(f"walltime must be a finite number of seconds, got {walltime}")
    if not isinstance(all_ranks, bool):
        raise TypeError(f"all_ranks must be a bool, got {type(all_ranks).__name__}")
    if not isinstance(keep_class_token, bool):
        raise TypeError(f"keep_class_token must be a bool, got {type(keep_class_token).__name__}")

    items = _named_items(outputs, names)
    layouts = _layouts(items, layout, getattr(outputs, "layouts", None))
    rank = _rank()
    if rank is not None:
        if all_ranks:
            sink = sink.child(f"rank{rank}")
        elif rank != 0:
            return {}

    # Validate and encode everything first: a call that raises writes nothing.
    summary = summary_pb2.Summary()
    result = {}
    counts = _SEQ.setdefault(sink.writer, {})
    record_bytes = 0
    max_tag = metadata.MAX_NAME_LENGTH
    tags = {name: metadata.make_tag(name, prefix) for name, _ in items}
    for name, tag in tags.items():
        if len(tag) > max_tag:
            raise ValueError(
                f"layer {name[:60]!r}... gives the tag {tag[:60]!r}... of {len(tag)} characters; "
                f"the plugin serves tags of at most {max_tag}: use a shorter name or prefix"
            )
    # A layer's order: its place among the layers this writer has logged, in the order it
    # first logged them (counts keeps that order), so that separate calls into one run (one
    # prefix per model) list their layers call by call, each call's in its outputs' order.
    first = {tag: i for i, tag in enumerate(counts)}
    with torch.no_grad():
        for name, value in items:
            tag = tags[name]
            order = first.setdefault(tag, len(first))
            blobs, stored = _encode(
                tag, value, layouts[name], max_samples, max_channels, max_size,
                precision, counts.get(tag, 0), order=order, keep_class_token=keep_class_token,
            )
            record_bytes += sum(len(b) for b in blobs)
            summary.value.append(_summary_value(tag, blobs))
            result[tag] = stored
    if record_bytes > MAX_RECORD_BYTES:
        raise ValueError(
            f"outputs: this call would write {record_bytes >> 20} MiB in one event, more "
            f"than {MAX_RECORD_BYTES >> 20} MiB; log fewer layers per call or lower the caps"
        )
    try:
        if not sink.logdir_exists():
            raise FileNotFoundError(f"log directory {sink.logdir()!r} no longer exists")
        sink.add_summary(summary, step, walltime)
        if all_ranks and rank is not None:
            sink.flush()
    except OSError as e:
        _warn_once(
            ("write", id(sink.writer)),
            f"tb_featmap: could not write feature maps, training goes on without them: {e}",
        )
        return {}
    for tag in result:
        counts[tag] = counts.get(tag, 0) + 1
    return result


def _rank() -> Optional[int]:
    """This process's rank in an initialised torch.distributed job, else None."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return None


def _check_step(step) -> int:
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
        if isinstance(step, torch.Tensor) and step.numel() == 1 and not step.is_floating_point():
            step = int(step.item())
        else:
            raise TypeError(f"step must be a non-negative int, got {type(step).__name__}")
    if not 0 <= step <= MAX_STEP:
        raise ValueError(
            f"step must be a non-negative int of at most 2**53 - 1 (the largest step the "
            f"TensorBoard tab can address), got {step}"
        )
    return int(step)


def _check_prefix(prefix) -> str:
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
    return prefix.strip("/")


def _check_cap(name: str, value) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive int or None, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int or None, got {value}")
    return int(value)


def _named_items(outputs, names) -> List[Tuple[str, Any]]:
    if isinstance(outputs, Mapping):
        if names is not None:
            raise TypeError("names is only for a sequence of outputs; a mapping has its own")
        items = list(outputs.items())
    elif isinstance(outputs, Sequence) and not isinstance(outputs, (str, bytes)):
        items_values = list(outputs)
        if names is None:
            names = [f"layer{i}" for i in range(len(items_values))]
        elif isinstance(names, (str, bytes)) or not isinstance(names, Sequence):
            raise TypeError(f"names must be a sequence of str, got {type(names).__name__}")
        elif len(names) != len(items_values):
            raise ValueError(f"names has {len(names)} entries for {len(items_values)} outputs")
        items = list(zip(names, items_values))
    else:
        hint = " (wrap a single tensor: {'conv1': x})" if _is_array(outputs) else ""
        raise TypeError(
            "outputs must be a mapping of name to tensor or a sequence of tensors, "
            f"got {type(outputs).__name__}{hint}"
        )
    if not items:
        raise ValueError("outputs is empty: nothing to log")
    seen = set()
    for name, value in items:
        if not isinstance(name, str) or not name.strip("/"):
            raise TypeError(f"layer names must be non-empty str, got {name!r}")
        if name in seen:
            raise ValueError(f"duplicate layer name in outputs: {name!r}")
        seen.add(name)
        if not _is_array(value):
            raise TypeError(
                f"outputs[{name!r}] must be a torch.Tensor or numpy.ndarray, "
                f"got {type(value).__name__}"
            )
    return items


def _is_array(value) -> bool:
    return isinstance(value, (torch.Tensor, np.ndarray))


def _layouts(items, layout, known) -> Dict[str, str]:
    """Each item's layout: ``layout`` (a name, or a mapping of names and globs), else
    ``known`` (``outputs.layouts``), else the rank rules."""
    if layout is not None and not isinstance(layout, (str, Mapping)):
        raise TypeError(f"layout must be a str or a mapping of name to str, got {type(layout).__name__}")
    if not isinstance(known, Mapping):
        known = {}
    names = [name for name, _ in items]
    matches: Dict[str, str] = {}
    if isinstance(layout, Mapping):
        unknown = []
        for pattern, value in layout.items():
            if not isinstance(pattern, str):
                raise TypeError(
                    f"layout keys must be str, got {type(pattern).__name__}: {pattern!r}"
                )
            matched = _select(names, pattern)
            if not matched:
                unknown.append(pattern)
            for name in matched:
                if name == pattern or name not in matches:
                    matches[name] = value
        if unknown:
            raise ValueError(
                f"layout names layers that are not in outputs: {sorted(unknown)}; "
                f"the layers are {names[:20]}"
            )
    result = {}
    for name, value in items:
        given = layout if isinstance(layout, str) else matches.get(name)
        rank = value.ndim
        if given is None and isinstance(known.get(name), str) and known[name] in _RANK_OF_LAYOUT:
            if _RANK_OF_LAYOUT[known[name]] == rank:
                given = known[name]
        if given is None:
            given = _DEFAULT_LAYOUT_BY_RANK.get(rank)
            if given is None:
                hint = (
                    "; rank 3 is ambiguous: pass layout='NCL' (1-D conv, [N, C, L]), 'NTD' "
                    "(tokens on a patch grid, [N, T, D]) or 'CHW' (one image); a batch-first "
                    "sequence [N, T, H] (an LSTM's output) is best logged as "
                    "output.transpose(1, 2) with layout='NCL': one row per feature across time"
                    if rank == 3 else ""
                )
                raise ValueError(
                    f"outputs[{name!r}] has shape {tuple(value.shape)}, rank {rank}, which "
                    f"has no default layout{hint}; supported ranks are 2 to 5"
                )
        if given not in _RANK_OF_LAYOUT:
            raise ValueError(f"layout for {name!r} must be one of {sorted(_RANK_OF_LAYOUT)}, got {given!r}")
        if _RANK_OF_LAYOUT[given] != rank:
            raise ValueError(
                f"outputs[{name!r}] has shape {tuple(value.shape)}, rank {rank}, but layout "
                f"{given!r} needs rank {_RANK_OF_LAYOUT[given]}"
            )
        result[name] = given
    return result


def _as_tensor(name: str, value) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "fiub":
            raise TypeError(f"outputs[{name!r}] must hold real numbers, got dtype {value.dtype}")
        value = torch.from_numpy(np.ascontiguousarray(value))
    if value.layout != torch.strided:
        raise TypeError(
            f"outputs[{name!r}] must be a dense tensor, got layout {value.layout}; "
            "call .to_dense() first"
        )
    if value.is_quantized:
        raise TypeError(
            f"outputs[{name!r}] is a quantized tensor ({value.dtype}); call .dequantize() first"
        )
    if value.is_meta:
        raise TypeError(f"outputs[{name!r}] is on the meta device and holds no values")
    if value.is_complex():
        raise TypeError(f"outputs[{name!r}] must hold real numbers, got dtype {value.dtype}")
    if value.numel() == 0:
        raise ValueError(f"outputs[{name!r}] is empty, shape {tuple(value.shape)}")
    return value.detach()


def _to_grid(
    x: torch.Tensor, layout: str, keep_class_token: bool = False
) -> Tuple[torch.Tensor, int]:
    """Map a tensor to [N, C, H, W] maps; returns the maps and the tokens dropped."""
    if layout == "NCHW":
        return x, 0
    if layout == "CHW":
        return x[None], 0
    if layout == "HW":
        return x[None, None], 0
    if layout == "NCL":
        return x[:, :, None, :], 0
    if layout == "NF":
        return x[:, :, None, None], 0
    if layout == "NCDHW":
        n, c, d, h, w = x.shape
        return x.reshape(n, c, d * h, w), 0
    # NTD
    n, t, d = x.shape
    x = x.transpose(1, 2)
    side = math.isqrt(t)
    if side * side == t:
        return x.reshape(n, d, side, side), 0
    side = math.isqrt(t - 1)
    if t > 1 and side * side == t - 1 and not keep_class_token:
        return x[:, :, 1:].reshape(n, d, side, side), 1
    return x[:, :, None, :], 0


def _host_float32(name: str, maps: torch.Tensor) -> Tuple[np.ndarray, int]:
    """The maps as a C-contiguous float32 numpy array on the host, and how many finite
    values were beyond float32's range (float64 input: they become infinities).

    The only device-to-host copy of a layer is here (``.cpu()`` of the kept maps, which waits
    for that tensor's stream only). Everything after it is numpy, which runs on the calling
    thread: torch's intra-op thread pool, slow to wake up on busy cores, is never used.
    """
    if maps.device.type != "cpu":
        maps = maps.cpu()
    if maps.dtype == torch.bfloat16:  # numpy has no bfloat16: widen its bits
        bits = maps.view(torch.int16).numpy().view(np.uint16)
        return (bits.astype(np.uint32) << 16).view(np.float32), 0
    array = maps.numpy()
    if array.dtype == np.float32:
        return np.ascontiguousarray(array), 0
    with np.errstate(over="ignore"):
        result = np.ascontiguousarray(array, dtype=np.float32)
    overflowed = 0
    if array.dtype.kind == "f" and array.dtype.itemsize > 4:
        overflowed = int(np.count_nonzero(np.isinf(result)) - np.count_nonzero(np.isinf(array)))
    return result, overflowed


def _plan_downsample(h: int, w: int, max_size: Optional[int]) -> Tuple[int, Tuple[int, int]]:
    """The integer factor that brings an h x w map within max_size, and the size it gives.

    A map one value high (1-D: ``NCL``, ``NF``, token strips) is capped by its number of
    values, ``max_size ** 2``, not by its length: a square map keeps as many."""
    if h == 1 and max_size is not None:
        cap = max_size * max_size
        if w <= cap:
            return 1, (h, w)
        factor = -(-w // cap)
        return factor, (1, -(-w // factor))
    if max_size is None or max(h, w) <= max_size:
        return 1, (h, w)
    factor = -(-max(h, w) // max_size)
    return factor, (-(-h // factor), -(-w // factor))


def _pool_axis(a: np.ndarray, axis: int, out: int) -> np.ndarray:
    """Adaptive average along one axis, as torch's adaptive_avg_pool2d bins it: output ``i``
    averages inputs ``floor(i * n / out)`` to ``ceil((i + 1) * n / out)``. Sums in float64,
    so that values near float32's limits do not overflow."""
    n = a.shape[axis]
    if n == out:
        return a
    if n % out == 0:
        shape = a.shape[:axis] + (out, n // out) + a.shape[axis + 1:]
        return a.reshape(shape).mean(axis=axis + 1, dtype=np.float64).astype(np.float32)
    before = (slice(None),) * axis
    parts = [
        a[before + (slice(i * n // out, -(-(i + 1) * n // out)),)].mean(
            axis=axis, dtype=np.float64
        )
        for i in range(out)
    ]
    return np.stack(parts, axis=axis).astype(np.float32)


def _downsample(block: np.ndarray, depth: int, out: Tuple[int, int]) -> np.ndarray:
    """Area-average each map (each depth slice of a 3-D map) of ``[rows, H, W]`` to ``out``."""
    rows, h, w = block.shape
    h //= depth
    if (h, w) == out:
        return block
    slices = block.reshape(rows * depth, h, w)
    pooled = _pool_axis(_pool_axis(slices, 1, out[0]), 2, out[1])
    return pooled.reshape(rows, depth * out[0], out[1])


def _block_stats(flat: np.ndarray) -> np.ndarray:
    """Per row of ``[rows, size]`` float32: min, max, mean, std, zero_fraction, nonfinite.

    min/max/mean/std use the finite values only (NaN for a row without any). Every finite
    float32 input gives finite statistics, exact to float32 rounding: numpy's pairwise
    float32 sums where no partial sum or square can overflow or vanish (the common case,
    and the fast one), float64 sums otherwise (rows of +-3e38, say, or of 1e-30).
    """
    rows, size = flat.shape
    stats = np.empty((rows, 6), np.float32)
    lo, hi = flat.min(axis=1), flat.max(axis=1)  # NaN propagates through both
    # Faster than np.count_nonzero(axis=1), which widens a bool copy first.
    zeros = np.add.reduce(np.equal(flat, 0).view(np.uint8), axis=1, dtype=np.int64)
    stats[:, 4] = zeros / size
    if np.isfinite(lo).all() and np.isfinite(hi).all():
        count = np.full(rows, size, np.float64)
        finite = None
        span = hi.astype(np.float64) - lo
        if max(-lo.min(), hi.max()) <= 2.0**50 and ((span == 0) | (span >= 2.0**-50)).all():
            mean = flat.sum(axis=1, dtype=np.float32).astype(np.float64) / size
            deviation = flat - mean.astype(np.float32)[:, None]
            offset = deviation.sum(axis=1, dtype=np.float32) / size  # rounding of mean
            np.square(deviation, out=deviation)
            variance = deviation.sum(axis=1, dtype=np.float32) / size
            stats[:, 0], stats[:, 1], stats[:, 2] = lo, hi, mean + offset
            stats[:, 3] = np.sqrt(np.maximum(variance.astype(np.float64) - offset**2, 0))
            stats[:, 5] = 0
            return stats
        deviation = flat.astype(np.float64)
    else:
        finite = np.isfinite(flat)
        count = finite.sum(axis=1).astype(np.float64)
        lo = np.where(finite, flat, np.inf).min(axis=1)
        hi = np.where(finite, flat, -np.inf).max(axis=1)
        deviation = np.where(finite, flat, 0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):  # rows with nothing finite: NaN
        mean = deviation.sum(axis=1) / count
        deviation -= mean[:, None]
        if finite is not None:
            deviation[~finite] = 0
        std = np.sqrt(np.einsum("ij,ij->i", deviation, deviation) / count)
    empty = count == 0
    stats[:, 0], stats[:, 1] = np.where(empty, np.nan, lo), np.where(empty, np.nan, hi)
    stats[:, 2], stats[:, 3] = mean, std
    stats[:, 5] = size - count
    return stats


def _quantize(maps: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """uint8 codes (see payload.py) of ``[rows, h, w]`` maps, each row delta-coded.

    ``(x - min) * 254 / (max - min)``, in float32 when that is exact enough and cannot
    overflow (the common case), else in float64: a span beyond float32's range, or so small
    that its reciprocal is.
    """
    rows, h, w = maps.shape
    flat = maps.reshape(rows, h * w)
    lo = stats[:, 0:1]
    span = stats[:, 1:2].astype(np.float64) - lo
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        scale = np.where(span > 0, payload.LEVELS / span, 0.0)
        if ((span == 0) | np.isnan(span) | ((span >= 2.0**-100) & (span <= 2.0**100))).all():
            scaled = np.subtract(flat, lo)  # rows without finite values: NaN
            scaled *= scale.astype(np.float32)
        else:
            scaled = (flat - lo.astype(np.float64)) * scale
        np.rint(scaled, out=scaled)
        codes = scaled.astype(np.uint8)  # non-finite values: overwritten below
    if stats[:, 5].any():
        codes[~np.isfinite(flat)] = payload.NONFINITE_CODE
    codes = codes.reshape(rows * h, w)
    delta = np.empty_like(codes)
    delta[:, 0] = codes[:, 0]
    np.subtract(codes[:, 1:], codes[:, :-1], out=delta[:, 1:])  # uint8 wraps mod 256
    return delta


# Values per block of maps that log_feature_maps encodes in one go: 1 MiB of float32, so
# that a block stays in the CPU cache from its statistics to its compression.
_BLOCK_VALUES = 1 << 18
# float16 turns values of this magnitude or more into infinities.
_FLOAT16_OVERFLOW = 65520.0


def _encode_maps(maps: np.ndarray, depth: int, out: Tuple[int, int], precision: str):
    """Statistics, and data blob, of ``[n, c, H, W]`` float32 maps, block by block.

    Returns:
        The ``[n * c, 6]`` statistics, the compressed data, and the encoding used: float16
        falls back to uint8 for a layer whose finite values float16 would make infinite.
    """
    n, c, h, w = maps.shape
    rows = n * c
    blocks = maps.reshape(rows, h, w)
    step = max(1, _BLOCK_VALUES // (h * w))
    stats = np.empty((rows, 6), np.float32)
    encoding = precision
    compressor = _compressor()
    parts = []
    for start in range(0, rows, step):
        block = blocks[start:start + step]
        block_stats = _block_stats(block.reshape(len(block), h * w))
        stats[start:start + step] = block_stats
        if encoding == "float16" and (
            (np.abs(block_stats[:, :2]) >= _FLOAT16_OVERFLOW).any()
        ):
            encoding = "uint8"  # encoded below, once all statistics are known
        if encoding == "float16":
            parts.append(compressor.compress(_downsample(block, depth, out).astype("<f2")))
        elif precision == "uint8":
            stored = _downsample(block, depth, out)
            parts.append(compressor.compress(_quantize(stored, block_stats)))
    if encoding != precision:
        compressor, parts = _compressor(), []
        for start in range(0, rows, step):
            stored = _downsample(blocks[start:start + step], depth, out)
            parts.append(compressor.compress(_quantize(stored, stats[start:start + step])))
    parts.append(compressor.flush())
    return stats, b"".join(parts), encoding


def _encode(
    tag, value, layout, max_samples, max_channels, max_size, precision, seq, *,
    order=0, keep_class_token=False,
):
    name = metadata.layer_name(tag)
    x = _as_tensor(name, value)
    shape, dtype = list(x.shape), str(x.dtype)
    has_batch = layout not in ("CHW", "HW")
    dropped = {"samples": 0, "channels": 0, "tokens": 0}
    if has_batch and max_samples is not None and x.shape[0] > max_samples:
        dropped["samples"] = x.shape[0] - max_samples
        x = x[:max_samples]
    maps, dropped["tokens"] = _to_grid(x, layout, keep_class_token)
    if max_channels is not None and maps.shape[1] > max_channels:
        dropped["channels"] = maps.shape[1] - max_channels
        maps = maps[:, :max_channels]
    depth = shape[2] if layout == "NCDHW" else 1
    factor, out = _plan_downsample(maps.shape[2] // depth, maps.shape[3], max_size)
    maps, hard = _apply_hard_bounds(maps, depth * out[0] * out[1])
    if hard:
        dropped["samples"] += hard[0]
        dropped["channels"] += hard[1]
        _warn_once(
            tag,
            f"tb_featmap: {name!r} is too large to store whole; dropped {hard[0]} samples and "
            f"{hard[1]} channels to stay under {MAX_VALUES_PER_LAYER} values per layer",
            stacklevel=4,
        )
    host, overflowed = _host_float32(name, maps)
    if overflowed:
        _warn_once(
            (tag, "float32"),
            f"tb_featmap: {name!r} has {overflowed} {dtype} values beyond float32's range "
            "(+-3.4e38); they are stored as infinities and counted in 'nonfinite'",
            stacklevel=4,
        )
    stats, data, encoding = _encode_maps(host, depth, out, precision)
    if encoding != precision:
        _warn_once(
            (tag, "float16"),
            f"tb_featmap: {name!r} has values beyond float16's range (+-65504); such steps "
            "of it are stored as uint8 (the header's 'encoding' says so)",
            stacklevel=4,
        )
    n, c = host.shape[:2]
    stored = (n, c, depth * out[0], out[1])
    header = payload.encode_header({
        "layout": layout,
        "shape": shape,
        "dtype": dtype,
        "stored": list(stored),
        "downsample": factor,
        "encoding": encoding,
        "compression": payload.COMPRESSION[encoding],
        "dropped": dropped,
        "seq": seq,
        "order": order,
    })
    return (header, stats.astype("<f4", copy=False).tobytes(), data), stored


def _apply_hard_bounds(maps: torch.Tensor, per_map: int):
    """Keep at most MAX_VALUES_PER_LAYER stored values and MAX_MAPS_PER_LAYER maps:
    fewer samples first, then fewer channels. Returns the maps and what was dropped."""
    n, c = maps.shape[:2]
    if n * c * per_map <= MAX_VALUES_PER_LAYER and n * c <= MAX_MAPS_PER_LAYER:
        return maps, None
    budget = min(MAX_VALUES_PER_LAYER // per_map, MAX_MAPS_PER_LAYER)
    if budget < 1:
        raise ValueError(f"one stored map of {per_map} values exceeds {MAX_VALUES_PER_LAYER}; set max_size")
    keep_n = max(1, min(n, budget // c))
    keep_c = min(c, budget // keep_n)
    return maps[:keep_n, :keep_c], (n - keep_n, c - keep_c)


def _warn_once(key, message: str, stacklevel: int = 3) -> None:
    """Warn once per key, pointing at the caller of log_feature_maps."""
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=stacklevel)


def _summary_value(tag: str, blobs) -> summary_pb2.Summary.Value:
    tensor = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(blobs))]
        ),
        string_val=list(blobs),
    )
    return summary_pb2.Summary.Value(
        tag=tag, metadata=metadata.create_summary_metadata(), tensor=tensor
    )
