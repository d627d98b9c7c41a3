"""The per-step payload of a feature-map summary: layout, encoding and decoding.

numpy only, no torch: the TensorBoard plugin, the command-line tool and the reading API
decode with it. The writer (``tb_featmap/summary.py``) encodes with torch and describes
what it wrote with the names defined here. ``docs/format.md`` is the prose version.

Each step of a layer is one blob sequence of three blobs:

0. **header**: UTF-8 JSON object. ``version`` comes first. Fields::

       version      int    format version (FORMAT_VERSION)
       layout       str    how the logged tensor maps to a grid: NCHW, CHW, HW, NCL,
                           NCDHW, NF or NTD (see LAYOUTS)
       shape        [int]  shape of the tensor as logged
       dtype        str    its dtype, e.g. "torch.float32"
       stored       [int]  [N, C, H, W] of the stored maps: N samples, C channels
       downsample   int    spatial factor applied to fit max_size (1: none)
       encoding     str    "uint8" or "float16"
       compression  str    "deflate-delta" (uint8) or "deflate" (float16)
       dropped      {str: int}  samples, channels and tokens that were not stored
       seq          int    how many times the writer had logged this tag before
       order        int    the layer's place in the order its writer first logged its
                           layers (absent in files written before it: readers then sort
                           names naturally)

   ``decode_header`` checks each field (integers are never bools; ``stored`` is bounded by
   MAX_STORED_MAPS and MAX_STORED_VALUES) and keeps only these.

1. **stats**: little-endian float32, shape ``[N, C, 6]``, fields in STAT_FIELDS order,
   computed on the full-resolution activations before any downsampling or quantisation.
   ``min``/``max``/``mean``/``std`` use the finite values only (NaN if there are none).

2. **data**: the maps, zlib-compressed (RFC 1950, what the browser's
   ``DecompressionStream("deflate")`` reads).

   - ``uint8``: per map (one sample, one channel), code ``q`` in 0..254 stands for
     ``min + q * (max - min) / 254`` with that map's ``min``/``max`` from the stats; 255
     marks a non-finite value. A constant map is all 0. Each row is delta-coded
     (``d[0] = q[0]``, ``d[i] = q[i] - q[i-1] mod 256``) before compression, which makes
     smooth maps smaller. The largest error is ``(max - min) / 508``.
   - ``float16``: the values cast to IEEE half, little-endian, row-major.
"""

import json
import struct
import zlib

import numpy as np

__all__ = [
    "FORMAT_VERSION",
    "COMPRESSION",
    "LAYOUTS",
    "STAT_FIELDS",
    "NONFINITE_CODE",
    "LEVELS",
    "MAX_STORED_VALUES",
    "MAX_STORED_MAPS",
    "MAX_HEADER_BYTES",
    "PayloadError",
    "NewerVersionError",
    "encode_header",
    "decode_header",
    "decode_stats",
    "decode_values",
    "inflate",
    "wire_payload",
]

# The format version: the newest this code writes and reads. The plugin metadata carries
# the same number (``tb_featmap/metadata.py``). Versions this reader knows: 1.
FORMAT_VERSION = 1

# Encoding -> the compression that goes with it. The writer and the reader both use this.
COMPRESSION = {"uint8": "deflate-delta", "float16": "deflate"}

# Layout name -> how it is drawn. The writer documents the same mapping for users.
LAYOUTS = {
    "NCHW": "N samples of C channel maps of H x W",
    "CHW": "one sample of C maps of H x W",
    "HW": "one sample, one map of H x W",
    "NCL": "C maps of 1 x L per sample (1-D convolutions)",
    "NCDHW": "C maps per sample, each its D depth slices of H x W stacked vertically",
    "NF": "F channels of 1 x 1 per sample (linear layers): one square per feature",
    "NTD": "D channels per sample, each a map over the T tokens: sqrt(T) x sqrt(T) when T "
    "is square, the same after dropping the first (class) token when T - 1 is square, "
    "else 1 x T",
}

STAT_FIELDS = ("min", "max", "mean", "std", "zero_fraction", "nonfinite")

NONFINITE_CODE = 255
LEVELS = 254  # codes 0..254 are values

# What a reader accepts, checked before anything is allocated. The writer stores at most
# as much (summary.MAX_VALUES_PER_LAYER, MAX_MAPS_PER_LAYER; a test keeps them in step).
# A step then costs a reader at most 16 Mi values: 32 MiB of float16 or 16 MiB of codes
# inflated, 64 MiB of float32 maps, and 1.5 MiB of statistics.
MAX_STORED_VALUES = 1 << 24
MAX_STORED_MAPS = 1 << 16
MAX_HEADER_BYTES = 1 << 16
# A count or a dimension of the logged `shape`: at most what a JSON number holds exactly in
# the tab (a double), so no field is shown as a rounded or infinite number.
_MAX_INT = 2**53 - 1
_MAX_RANK = 8
_MAX_TEXT = 256  # characters of `dtype`, and of a `dropped` key
_MAX_DROPPED = 8  # keys of `dropped`
_WIRE_MAGIC = b"TBFM"


class PayloadError(ValueError):
    """A payload that cannot be decoded: truncated, inconsistent or unknown."""


class NewerVersionError(PayloadError):
    """A payload written by a newer tb_featmap than this reader knows."""


def encode_header(header: dict) -> bytes:
    """Serialise a step header, ``version`` first."""
    ordered = {"version": FORMAT_VERSION, **header}
    return json.dumps(ordered, separators=(",", ":")).encode("utf-8")


def decode_header(blob: bytes) -> dict:
    """Parse and check a step header: every field once, for type, range and nesting.

    The one place a header is judged; the plugin, the reader and the command line all call
    it. Integers are never bools, sizes are bounded before anything is allocated, and only
    the fields listed in this module's docstring are kept (an unknown field is dropped).

    Args:
        blob: The header blob as read from the event file.

    Returns:
        The header, with ``version``, ``stored``, ``encoding``, ``compression``,
        ``downsample`` (default 1), ``dropped`` (default ``{}``) and ``seq`` (default 0)
        always present, and ``layout``, ``shape``, ``dtype`` and ``order`` when the writer
        gave them.

    Raises:
        NewerVersionError: If the header is of a newer version.
        PayloadError: If it is not a well-formed header.
    """
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise PayloadError(f"header is not bytes but {type(blob).__name__}")
    if len(blob) > MAX_HEADER_BYTES:
        raise PayloadError(f"header has {len(blob)} bytes, more than {MAX_HEADER_BYTES}")
    try:
        raw = json.loads(bytes(blob).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise PayloadError(f"header is not JSON: {str(e):.80}") from None
    if not isinstance(raw, dict):
        raise PayloadError("header is not a JSON object")
    version = raw.get("version")
    if not _is_int(version) or version < 1:
        raise PayloadError(f"header has no valid version: {_show(version)}")
    if version > FORMAT_VERSION:
        raise NewerVersionError(
            f"format version {version} is newer than this reader's {FORMAT_VERSION}; "
            "upgrade tb_featmap"
        )
    stored = raw.get("stored")
    if (
        not isinstance(stored, list)
        or len(stored) != 4
        or not all(_is_int(d) and 1 <= d <= MAX_STORED_VALUES for d in stored)
    ):
        raise PayloadError(f"header has an invalid 'stored' shape: {_show(stored)}")
    maps = stored[0] * stored[1]
    if maps > MAX_STORED_MAPS or maps * stored[2] * stored[3] > MAX_STORED_VALUES:
        raise PayloadError(
            f"header's 'stored' {stored} is larger than a reader accepts "
            f"({MAX_STORED_MAPS} maps, {MAX_STORED_VALUES} values)"
        )
    encoding = raw.get("encoding")
    if not isinstance(encoding, str) or encoding not in COMPRESSION:
        raise PayloadError(f"unknown encoding: {_show(encoding)}")
    if raw.get("compression") != COMPRESSION[encoding]:
        raise PayloadError(f"unknown compression: {_show(raw.get('compression'))}")
    header = {
        "version": version,
        "stored": list(stored),
        "encoding": encoding,
        "compression": COMPRESSION[encoding],
        "downsample": _field(raw, "downsample", 1, lambda v: _is_int(v) and 1 <= v <= _MAX_INT),
        "seq": _field(raw, "seq", 0, lambda v: _is_int(v) and 0 <= v <= _MAX_INT),
        "dropped": _field(raw, "dropped", {}, _is_dropped),
    }
    layout = _field(raw, "layout", None, lambda v: isinstance(v, str) and v in LAYOUTS)
    shape = _field(raw, "shape", None, _is_shape)
    dtype = _field(raw, "dtype", None, lambda v: isinstance(v, str) and len(v) <= _MAX_TEXT)
    order = _field(raw, "order", None, lambda v: _is_int(v) and 0 <= v < 2**31)
    for name, value in (("layout", layout), ("shape", shape), ("dtype", dtype), ("order", order)):
        if value is not None:
            header[name] = value
    return header


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_shape(value) -> bool:
    return (
        isinstance(value, list)
        and len(value) <= _MAX_RANK
        and all(_is_int(d) and 0 <= d <= _MAX_INT for d in value)
    )


def _is_dropped(value) -> bool:
    return (
        isinstance(value, dict)
        and len(value) <= _MAX_DROPPED
        and all(len(k) <= _MAX_TEXT and _is_int(v) and 0 <= v <= _MAX_INT for k, v in value.items())
    )


def _field(raw: dict, name: str, default, valid):
    """``raw[name]`` if ``valid`` says so, ``default`` if absent; else a PayloadError."""
    if name not in raw or (raw[name] is None and default is None):
        return default
    value = raw[name]
    if not valid(value):
        raise PayloadError(f"header has an invalid {name!r}: {_show(value)}")
    return value


def _show(value) -> str:
    """A short, flat description of an untrusted value: never recurses into it."""
    if isinstance(value, (list, dict)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"{value!r:.40}"


def decode_stats(header: dict, blob: bytes) -> np.ndarray:
    """The statistics as a float32 array of shape ``[N, C, len(STAT_FIELDS)]``.

    Args:
        header: A header from ``decode_header``.
        blob: The stats blob.

    Raises:
        PayloadError: If the blob's length is not ``N * C * 6 * 4`` bytes.
    """
    n, c = header["stored"][:2]
    expected = n * c * len(STAT_FIELDS) * 4
    if not isinstance(blob, (bytes, bytearray, memoryview)) or len(blob) != expected:
        size = len(blob) if isinstance(blob, (bytes, bytearray, memoryview)) else "no"
        raise PayloadError(f"stats blob has {size} bytes, expected {expected}")
    return np.frombuffer(blob, dtype="<f4").reshape(n, c, len(STAT_FIELDS))


def inflate(blob: bytes, expected: int) -> bytes:
    """zlib-decompress ``blob``, which must inflate to exactly ``expected`` bytes.

    Never holds more than ``expected`` bytes of output: inflation stops there, and a
    stream with more to give is refused rather than read to its end.

    Raises:
        PayloadError: If the blob is not zlib data, or inflates to more or fewer bytes.
    """
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(blob, expected) if expected else b""
        if not inflater.eof and inflater.decompress(inflater.unconsumed_tail, 1):
            raise PayloadError(f"data inflates to more than the {expected} bytes expected")
    except zlib.error as e:
        raise PayloadError(f"data does not decompress: {e}") from None
    if len(raw) != expected or not inflater.eof:
        raise PayloadError(f"data is truncated: {len(raw)} bytes, expected {expected}")
    return raw


_FLOAT32_TINY = float(np.finfo(np.float32).tiny)


def decode_values(header: dict, stats: np.ndarray, blob: bytes) -> np.ndarray:
    """The stored maps, dequantised, as float32 of shape ``header["stored"]``.

    Non-finite values of a uint8 payload come back as NaN.

    Args:
        header: A header from ``decode_header``.
        stats: Its statistics from ``decode_stats``.
        blob: The data blob.

    Raises:
        PayloadError: If the data does not inflate to exactly the stored size.
    """
    n, c, h, w = header["stored"]
    count = n * c * h * w
    if header["encoding"] == "float16":
        raw = inflate(blob, count * 2)
        return np.frombuffer(raw, dtype="<f2").astype(np.float32).reshape(n, c, h, w)
    raw = inflate(blob, count)
    codes = np.cumsum(
        np.frombuffer(raw, dtype=np.uint8).reshape(n, c, h, w), axis=-1, dtype=np.uint8
    )
    lo = stats[:, :, 0, None, None]
    hi = stats[:, :, 1, None, None]
    with np.errstate(invalid="ignore", over="ignore"):
        values = lo + codes.astype(np.float32) * ((hi - lo) / LEVELS)
        # Where float32 cannot hold the step, a finite map whose span overflows (values
        # near +-3.4e38) or whose step is subnormal: those maps in float64, rounded to
        # float32 once at the end.
        step = (hi - lo) / LEVELS
        wide = (np.isinf(step) | ((step > 0) & (step < _FLOAT32_TINY)))
        wide &= np.isfinite(lo) & np.isfinite(hi)
        if wide.any():
            at = np.nonzero(wide[:, :, 0, 0])
            lo64, hi64 = lo[at].astype(np.float64), hi[at].astype(np.float64)
            values[at] = lo64 + codes[at] * ((hi64 - lo64) / LEVELS)
    values[codes == NONFINITE_CODE] = np.nan
    return values.astype(np.float32, copy=False)


def wire_payload(header_blob: bytes, stats_blob: bytes, data_blob: bytes) -> bytes:
    """One step as the frontend fetches it, in one response.

    ``b"TBFM"``, a little-endian uint32 header length, the header JSON padded with spaces
    to a multiple of 4 bytes (so that the stats that follow are aligned for a
    ``Float32Array``), the stats blob, then the still-compressed data blob.
    """
    padded = header_blob + b" " * (-len(header_blob) % 4)
    return b"".join(
        (_WIRE_MAGIC, struct.pack("<I", len(padded)), padded, stats_blob, data_blob)
    )
