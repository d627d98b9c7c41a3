"""The per-step payload of a feature-map summary: layout, encoding and decoding.

numpy only, no torch: the TensorBoard plugin, the command-line tool and the reading API
decode with it. The writer (``tb_featmap/summary.py``) encodes with torch and describes
what it wrote with the names defined here. ``docs/format.md`` is the prose version.

Each step of a layer is one blob sequence of three blobs:

0. **header**: UTF-8 JSON object. ``version`` comes first. Fields::

       version      int    format version (1)
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
    "LAYOUTS",
    "STAT_FIELDS",
    "NONFINITE_CODE",
    "LEVELS",
    "PayloadError",
    "NewerVersionError",
    "encode_header",
    "decode_header",
    "decode_stats",
    "decode_values",
    "wire_payload",
]

FORMAT_VERSION = 1

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

_ENCODINGS = {"uint8": "deflate-delta", "float16": "deflate"}
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
    """Parse and check a step header.

    Raises:
        NewerVersionError: If the header is of a newer version.
        PayloadError: If it is not a well-formed header.
    """
    try:
        header = json.loads(bytes(blob).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise PayloadError(f"header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise PayloadError("header is not a JSON object")
    version = header.get("version")
    if not isinstance(version, int) or version < 1:
        raise PayloadError(f"header has no valid version: {version!r:.40}")
    if version > FORMAT_VERSION:
        raise NewerVersionError(
            f"format version {version} is newer than this reader's {FORMAT_VERSION}; "
            "upgrade tb_featmap"
        )
    stored = header.get("stored")
    if (
        not isinstance(stored, list)
        or len(stored) != 4
        or not all(isinstance(d, int) and d >= 1 for d in stored)
    ):
        raise PayloadError(f"header has an invalid 'stored' shape: {stored!r:.80}")
    if header.get("encoding") not in _ENCODINGS:
        raise PayloadError(f"unknown encoding: {header.get('encoding')!r:.40}")
    if header.get("compression") != _ENCODINGS[header["encoding"]]:
        raise PayloadError(f"unknown compression: {header.get('compression')!r:.40}")
    for name in ("seq", "downsample"):
        if name in header and not _is_count(header[name]):
            raise PayloadError(f"header has an invalid {name!r}: {header[name]!r:.40}")
    dropped = header.get("dropped", {})
    if not isinstance(dropped, dict) or not all(_is_count(v) for v in dropped.values()):
        raise PayloadError(f"header has an invalid 'dropped': {dropped!r:.80}")
    return header


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def decode_stats(header: dict, blob: bytes) -> np.ndarray:
    """The statistics as a float32 array of shape ``[N, C, len(STAT_FIELDS)]``."""
    n, c = header["stored"][:2]
    expected = n * c * len(STAT_FIELDS) * 4
    if len(blob) != expected:
        raise PayloadError(f"stats blob has {len(blob)} bytes, expected {expected}")
    return np.frombuffer(blob, dtype="<f4").reshape(n, c, len(STAT_FIELDS))


def decode_values(header: dict, stats: np.ndarray, blob: bytes) -> np.ndarray:
    """The stored maps, dequantised, as float32 of shape ``header["stored"]``.

    Non-finite values of a uint8 payload come back as NaN.
    """
    n, c, h, w = header["stored"]
    count = n * c * h * w
    try:
        raw = zlib.decompress(blob)
    except zlib.error as e:
        raise PayloadError(f"data does not decompress: {e}") from None
    if header["encoding"] == "float16":
        if len(raw) != count * 2:
            raise PayloadError(f"data has {len(raw)} bytes, expected {count * 2}")
        return np.frombuffer(raw, dtype="<f2").astype(np.float32).reshape(n, c, h, w)
    if len(raw) != count:
        raise PayloadError(f"data has {len(raw)} bytes, expected {count}")
    codes = np.cumsum(
        np.frombuffer(raw, dtype=np.uint8).reshape(n, c, h, w), axis=-1, dtype=np.uint8
    )
    lo = stats[:, :, 0, None, None]
    hi = stats[:, :, 1, None, None]
    with np.errstate(invalid="ignore"):
        values = lo + codes.astype(np.float32) * ((hi - lo) / LEVELS)
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
