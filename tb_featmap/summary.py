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
import torch.nn.functional as F
from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

from tb_featmap import metadata, payload

try:
    from isal import isal_zlib
except ImportError:  # optional speed-up, see _deflate
    isal_zlib = None
from tb_featmap._writers import sink_for

__all__ = ["log_feature_maps", "MAX_VALUES_PER_LAYER", "MAX_MAPS_PER_LAYER"]

# Hard bounds on what one layer stores, whatever the options say: at most 16 MiB of uint8
# codes (32 MiB as float16) plus 24 bytes of statistics per map (1.5 MiB). A call writes one
# event, so its record is the sum over its layers; see MAX_RECORD_BYTES.
MAX_VALUES_PER_LAYER = 1 << 24
MAX_MAPS_PER_LAYER = 1 << 16
# Well below protobuf's 2 GiB message limit and the data server's 256 MiB reply limit
# (which applies per blob, and a blob holds one layer's maps).
MAX_RECORD_BYTES = 512 << 20

_DEFAULT_LAYOUT_BY_RANK = {2: "NF", 4: "NCHW", 5: "NCDHW"}
_RANK_OF_LAYOUT = {"HW": 2, "NF": 2, "CHW": 3, "NCL": 3, "NTD": 3, "NCHW": 4, "NCDHW": 5}
_PRECISIONS = ("uint8", "float16")


def _deflate(array: np.ndarray) -> bytes:
    """zlib-compress (RFC 1950) an array's bytes, the way the browser's DecompressionStream
    reads them. Quantised activations are close to noise, so LZ77 matching finds little:
    ISA-L at level 1 is ~5x faster than zlib for the same size (benchmarks/). zlib's
    Huffman-only mode, the fallback, is the next fastest."""
    if isal_zlib is not None:
        return isal_zlib.compress(np.ascontiguousarray(array), 1)
    compressor = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_HUFFMAN_ONLY)
    return compressor.compress(np.ascontiguousarray(array)) + compressor.flush()

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
      token is dropped and counted in ``dropped``; otherwise ``1 x T``.

    Args:
        writer: A ``torch.utils.tensorboard.SummaryWriter`` or ``tensorboardX.SummaryWriter``.
        outputs: A mapping of layer name to tensor (what ``FeatureMapRecorder.outputs`` and
            ``create_feature_extractor`` return), or a sequence of tensors. Tensors may be on
            any device, of any real dtype, with or without grad; numpy arrays work too. They
            are never modified.
        step: The global step, a non-negative integer.
        names: Names for a sequence of outputs. Default: ``layer0``, ``layer1``, ...
        prefix: Put the tags under ``feature_maps/<prefix>/``. Default: none.
        layout: One layout name for all outputs, or a mapping of name to layout. Default
            by rank: 2 is ``NF``, 4 is ``NCHW``, 5 is ``NCDHW``. Rank 3 means ``CHW``,
            ``NCL`` or ``NTD`` equally often, so it must be given.
        max_samples: Keep the first this many batch samples. Default 1; ``None`` keeps all.
            Log a fixed probe batch and set this to its size.
        max_channels: Keep the first this many channels. Default ``None``: all.
        max_size: Downsample (area average) maps whose height or width exceeds this, by an
            integer factor recorded as ``downsample``. Default 64; ``None``: never.
        precision: ``"uint8"`` (default): per-map 8-bit quantisation, error at most
            ``(max - min) / 508``. ``"float16"``: the values as IEEE half.
        walltime: Event time in seconds since the epoch. Default: now.
        all_ranks: In a ``torch.distributed`` job, by default only rank 0 writes and the
            other ranks return ``{}`` after checking their arguments. With ``True``, every
            rank writes into a run of its own, ``<writer's logdir>/rank<r>``, through a
            writer of the same kind that tb_featmap opens and flushes after each call.

    Returns:
        The stored ``[N, C, H, W]`` of each tag written; ``{}`` when nothing was written
        (a rank other than 0, or the writer failed: see below).

    Writer failures (the disk is full, the log directory was removed) do not stop
    training: the call warns once, writes nothing and returns ``{}``. TensorBoard's writers
    write in a background thread, so a full disk shows at the call after the one whose
    event was lost; that call had already returned its shapes. A lost event is lost whole:
    no step is ever half on disk. In a job where only rank 0 has a writer, call this on
    rank 0 only (``writer=None`` is a ``TypeError`` on every rank).

    Raises:
        TypeError: If ``writer``, ``outputs``, a tensor, ``step`` or an option has the
            wrong type.
        ValueError: On an empty tensor, an unsupported rank, a negative step, duplicate
            names, an unknown layout or precision, or a closed writer.

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
    if walltime is not None and not isinstance(walltime, (int, float)):
        raise TypeError(f"walltime must be a number of seconds, got {type(walltime).__name__}")
    if not isinstance(all_ranks, bool):
        raise TypeError(f"all_ranks must be a bool, got {type(all_ranks).__name__}")

    items = _named_items(outputs, names)
    layouts = _layouts(items, layout)
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
    with torch.no_grad():
        for name, value in items:
            tag = metadata.make_tag(name, prefix)
            blobs, stored = _encode(
                tag, value, layouts[name], max_samples, max_channels, max_size,
                precision, counts.get(tag, 0),
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
    if step < 0:
        raise ValueError(f"step must be a non-negative int, got {step}")
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


def _layouts(items, layout) -> Dict[str, str]:
    if layout is not None and not isinstance(layout, (str, Mapping)):
        raise TypeError(f"layout must be a str or a mapping of name to str, got {type(layout).__name__}")
    if isinstance(layout, Mapping):
        unknown = sorted(set(layout) - {name for name, _ in items})
        if unknown:
            raise ValueError(f"layout names layers that are not in outputs: {unknown}")
    result = {}
    for name, value in items:
        given = layout.get(name) if isinstance(layout, Mapping) else layout
        rank = value.ndim
        if given is None:
            given = _DEFAULT_LAYOUT_BY_RANK.get(rank)
            if given is None:
                hint = (
                    "; rank 3 is ambiguous: pass layout='CHW', 'NCL' (1-D conv) or 'NTD' (tokens)"
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
    if value.is_complex():
        raise TypeError(f"outputs[{name!r}] must hold real numbers, got dtype {value.dtype}")
    if value.numel() == 0:
        raise ValueError(f"outputs[{name!r}] is empty, shape {tuple(value.shape)}")
    return value.detach()


def _to_grid(x: torch.Tensor, layout: str) -> Tuple[torch.Tensor, int]:
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
    if t > 1 and side * side == t - 1:
        return x[:, :, 1:].reshape(n, d, side, side), 1
    return x[:, :, None, :], 0


def _plan_downsample(h: int, w: int, max_size: Optional[int]) -> Tuple[int, Tuple[int, int]]:
    """The integer factor that brings an h x w map within max_size, and the size it gives."""
    if max_size is None or max(h, w) <= max_size:
        return 1, (h, w)
    factor = -(-max(h, w) // max_size)
    return factor, (-(-h // factor), -(-w // factor))


def _downsample(maps: torch.Tensor, depth: int, out: Tuple[int, int]) -> torch.Tensor:
    """Area-average each map (each depth slice of a 3-D map) to `out`."""
    n, c, h, w = maps.shape
    if (h // depth, w) == out:
        return maps
    pooled = F.adaptive_avg_pool2d(maps.reshape(n, c * depth, h // depth, w), out)
    return pooled.reshape(n, c, depth * out[0], out[1])


def _stats(flat: torch.Tensor) -> Tuple[torch.Tensor, bool]:
    """Per-row [min, max, mean, std, zero_fraction, nonfinite]; finite values only."""
    size = flat.shape[1]
    zero_fraction = (size - torch.count_nonzero(flat, dim=1)) / size
    # Two passes: about 8x faster than torch.std_mean on CPU (benchmarks/bench_stats.py).
    mean = flat.mean(dim=1)
    std = (flat - mean[:, None]).square_().mean(dim=1).sqrt_()
    # A NaN or an infinity anywhere makes its row's std non-finite; so can an overflow,
    # which the exact path below handles too. This saves a full isfinite() pass.
    all_finite = bool(torch.isfinite(std).all())
    if all_finite:
        lo, hi = flat.amin(dim=1), flat.amax(dim=1)  # faster than aminmax on CPU
        nonfinite = torch.zeros_like(mean)
    else:
        finite = torch.isfinite(flat)
        count = finite.sum(dim=1)
        kept = torch.where(finite, flat, 0.0)
        mean = kept.sum(dim=1) / count.clamp_min(1)
        dev = torch.where(finite, flat - mean[:, None], 0.0)
        std = (dev.square().sum(dim=1) / count.clamp_min(1)).sqrt()
        lo = torch.where(finite, flat, math.inf).amin(dim=1)
        hi = torch.where(finite, flat, -math.inf).amax(dim=1)
        empty = count == 0
        nan = torch.tensor(math.nan, device=flat.device)
        lo, hi, mean, std = (torch.where(empty, nan, v) for v in (lo, hi, mean, std))
        nonfinite = (size - count).float()
        all_finite = bool(finite.all())
    stats = torch.stack([lo, hi, mean, std, zero_fraction.float(), nonfinite], dim=1)
    return stats, all_finite


def _quantize(maps: torch.Tensor, stats: torch.Tensor, all_finite: bool) -> np.ndarray:
    """uint8 codes (see payload.py), row-wise delta-coded."""
    n, c, h, w = maps.shape
    flat = maps.reshape(n * c, h * w)
    lo, hi = stats[:, 0:1], stats[:, 1:2]
    span = hi - lo
    scale = torch.where(span > 0, payload.LEVELS / span, torch.zeros_like(span))
    codes = ((flat - lo) * scale).round_().clamp_(0, payload.LEVELS)
    if not all_finite:
        codes = torch.where(torch.isfinite(flat), codes, float(payload.NONFINITE_CODE))
    codes = codes.to(torch.uint8).reshape(n * c * h, w)
    delta = codes.clone()
    delta[:, 1:] -= codes[:, :-1]  # uint8 arithmetic wraps mod 256
    return delta.cpu().numpy()


def _encode(tag, value, layout, max_samples, max_channels, max_size, precision, seq):
    name = metadata.layer_name(tag)
    x = _as_tensor(name, value)
    shape, dtype = list(x.shape), str(x.dtype)
    has_batch = layout not in ("CHW", "HW")
    dropped = {"samples": 0, "channels": 0, "tokens": 0}
    if has_batch and max_samples is not None and x.shape[0] > max_samples:
        dropped["samples"] = x.shape[0] - max_samples
        x = x[:max_samples]
    maps, dropped["tokens"] = _to_grid(x, layout)
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
    maps = maps.float()
    n, c, h, w = maps.shape
    stats, all_finite = _stats(maps.reshape(n * c, h * w))
    maps = _downsample(maps, depth, out)
    if precision == "uint8":
        data = _deflate(_quantize(maps, stats, all_finite))
    else:
        data = _deflate(maps.to(torch.float16).cpu().numpy().astype("<f2", copy=False))
    stored = tuple(maps.shape)
    header = payload.encode_header({
        "layout": layout,
        "shape": shape,
        "dtype": dtype,
        "stored": list(stored),
        "downsample": factor,
        "encoding": precision,
        "compression": payload.COMPRESSION[precision],
        "dropped": dropped,
        "seq": seq,
    })
    stats_blob = stats.cpu().numpy().astype("<f4", copy=False).tobytes()
    return (header, stats_blob, data), stored


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
