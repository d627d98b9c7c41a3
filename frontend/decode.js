// Decoding of the /maps wire payload (see tb_featmap/payload.py). No DOM: Node tests import it.
//
//   "TBFM" | uint32 LE header length L | header JSON (L bytes, space padded) |
//   float32 LE stats [N, C, 6] | zlib data: uint8 codes delta-coded per row, or float16 LE.

export const STAT_FIELDS = ['min', 'max', 'mean', 'std', 'zero_fraction', 'nonfinite'];
export const NSTATS = STAT_FIELDS.length;
export const NONFINITE_CODE = 255;
export const LEVELS = 254;
const MAGIC = [0x54, 0x42, 0x46, 0x4d]; // "TBFM"

/** A payload that cannot be decoded. */
export class PayloadError extends Error {}

/**
 * Splits a wire payload into its parts without decompressing.
 * @param {ArrayBuffer} buffer the /maps response body
 * @returns {{header: object, stats: Float32Array, compressed: Uint8Array}}
 */
export function splitPayload(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length < 8 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new PayloadError('not a feature-map payload (no TBFM magic)');
  }
  const headerLength = new DataView(buffer).getUint32(4, true);
  if (headerLength % 4 !== 0 || 8 + headerLength > bytes.length) {
    throw new PayloadError(`bad header length ${headerLength}`);
  }
  let header;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  } catch (e) {
    throw new PayloadError(`header is not JSON: ${e.message}`);
  }
  const stored = header.stored;
  const valid = (d) => Number.isInteger(d) && d >= 1;
  if (!Array.isArray(stored) || stored.length !== 4 || !stored.every(valid)) {
    throw new PayloadError('header has no valid stored shape');
  }
  if (header.encoding !== 'uint8' && header.encoding !== 'float16') {
    throw new PayloadError(`unknown encoding ${String(header.encoding)}`);
  }
  const [n, c] = stored;
  const statsStart = 8 + headerLength;
  const statsLength = n * c * NSTATS;
  if (statsStart + statsLength * 4 > bytes.length) throw new PayloadError('truncated statistics');
  // The header is padded to 4 bytes, so the stats are aligned for a Float32Array view
  // (little-endian, like every browser this runs in).
  const stats = new Float32Array(buffer.slice(statsStart, statsStart + statsLength * 4));
  return { header, stats, compressed: bytes.subarray(statsStart + statsLength * 4) };
}

/** Bytes of decoded maps the tab accepts for one step; larger steps are refused unread. */
export const MAX_DECODED_BYTES = 256 << 20;

/**
 * zlib-inflates (RFC 1950) bytes with the platform's DecompressionStream, into exactly
 * `expected` bytes: inflating stops as soon as the data would give more.
 * @param {Uint8Array} bytes
 * @param {number} expected the inflated length the header gives
 * @returns {Promise<Uint8Array>}
 */
export async function inflate(bytes, expected) {
  const out = new Uint8Array(expected);
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
  const reader = stream.getReader();
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (length + value.length > expected) {
      reader.cancel().catch(() => {});
      throw new PayloadError(`data inflates to more than the ${expected} bytes the header gives`);
    }
    out.set(value, length);
    length += value.length;
  }
  if (length !== expected) throw new PayloadError(`data has ${length} bytes, expected ${expected}`);
  return out;
}

/**
 * Undoes the per-row delta coding in place: q[i] = d[0] + ... + d[i] mod 256.
 * @param {Uint8Array} codes all rows, back to back
 * @param {number} width row length
 * @returns {Uint8Array} the same array
 */
export function undelta(codes, width) {
  for (let start = 0; start < codes.length; start += width) {
    let acc = 0;
    const end = start + width;
    for (let i = start; i < end; i++) {
      acc = (acc + codes[i]) & 255;
      codes[i] = acc;
    }
  }
  return codes;
}

/**
 * IEEE half-precision bits to a number.
 * @param {number} h 16-bit pattern
 * @returns {number}
 */
export function halfToFloat(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

let halfTable = null;

/**
 * Little-endian float16 bytes to a Float32Array.
 * @param {Uint8Array} bytes
 * @returns {Float32Array}
 */
export function halfsToFloats(bytes) {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  const out = new Float32Array(bytes.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = halfTable[bytes[2 * i] | (bytes[2 * i + 1] << 8)];
  return out;
}

/**
 * Decodes a whole /maps payload. The sizes are checked before anything is allocated.
 * @param {ArrayBuffer} buffer
 * @param {number} [maxBytes] the most bytes of decoded maps to accept
 * @returns {Promise<DecodedMaps>}
 */
export async function decodePayload(buffer, maxBytes = MAX_DECODED_BYTES) {
  const { header, stats, compressed } = splitPayload(buffer);
  const [n, c, h, w] = header.stored;
  const width = header.encoding === 'uint8' ? 1 : 2;
  const expected = n * c * h * w * width;
  const decoded = width === 1 ? expected : expected * 2; // float16 -> Float32Array
  if (!(decoded <= maxBytes)) {
    throw new PayloadError(`step of ${n}×${c}×${h}×${w} maps is larger than the tab's `
      + `${maxBytes >> 20} MiB limit`);
  }
  let raw;
  try {
    raw = await inflate(compressed, expected);
  } catch (e) {
    throw e instanceof PayloadError ? e : new PayloadError(`data does not decompress: ${e}`);
  }
  const data = width === 1 ? undelta(raw, w) : halfsToFloats(raw);
  return new DecodedMaps(header, stats, data);
}

/**
 * One decoded step: [N, C, H, W] maps, uint8 codes or float values, and their statistics
 * [N, C, 6]. The one place that knows where a (sample, channel) lies in the arrays.
 */
export class DecodedMaps {
  constructor(header, stats, data) {
    [this.n, this.c, this.h, this.w] = header.stored;
    this.header = header;
    this.stats = stats;
    this.codes = data instanceof Uint8Array ? data : null;
    this.values = data instanceof Uint8Array ? null : data;
    this.bytes = data.byteLength + stats.byteLength;
  }

  /** The index of a map among the N * C. */
  map(sample, channel) {
    return sample * this.c + channel;
  }

  /** One statistic (a STAT_FIELDS name) of one map. */
  stat(sample, channel, field) {
    return this.stats[this.map(sample, channel) * NSTATS + STAT_FIELDS.indexOf(field)];
  }

  min(sample, channel) {
    return this.stats[this.map(sample, channel) * NSTATS];
  }

  max(sample, channel) {
    return this.stats[this.map(sample, channel) * NSTATS + 1];
  }

  /** One map's uint8 codes (a view), or null for float16 data. */
  codesOf(sample, channel) {
    const size = this.h * this.w;
    const offset = this.map(sample, channel) * size;
    return this.codes && this.codes.subarray(offset, offset + size);
  }

  /** The stored value at (sample, channel, y, x), as the /npy route gives it (NaN: non-finite). */
  valueAt(sample, channel, y, x) {
    const index = this.map(sample, channel) * this.h * this.w + y * this.w + x;
    if (this.values) return this.values[index];
    return dequantise(this.codes[index], this.min(sample, channel), this.max(sample, channel));
  }

  /** One map's values as floats (NaN for non-finite): h * w values. */
  floats(sample, channel) {
    const size = this.h * this.w;
    const offset = this.map(sample, channel) * size;
    if (this.values) return this.values.subarray(offset, offset + size);
    const lo = this.min(sample, channel);
    const hi = this.max(sample, channel);
    const table = new Float32Array(256);
    for (let q = 0; q < 256; q++) table[q] = dequantise(q, lo, hi);
    const out = new Float32Array(size);
    for (let i = 0; i < size; i++) out[i] = table[this.codes[offset + i]];
    return out;
  }
}

const FLOAT32_TINY = 2 ** -126;

/**
 * The value of code q in a map with stats min/max, in float32 arithmetic exactly as
 * numpy's decode_values: lo + q * ((hi - lo) / 254). NaN for the non-finite code. Where
 * float32 cannot hold the step (a finite map whose span overflows, or whose step is
 * subnormal), in float64 rounded once, as decode_values does too.
 */
export function dequantise(q, lo, hi) {
  if (q === NONFINITE_CODE) return NaN;
  const step = Math.fround(Math.fround(hi - lo) / LEVELS);
  const exact = step === Infinity || (step > 0 && step < FLOAT32_TINY);
  if (exact && Number.isFinite(lo) && Number.isFinite(hi)) {
    return Math.fround(lo + q * ((hi - lo) / LEVELS));
  }
  return Math.fround(lo + Math.fround(q * step));
}
