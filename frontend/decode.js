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
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  const stored = header.stored;
  if (!Array.isArray(stored) || stored.length !== 4 || !stored.every((d) => Number.isInteger(d) && d >= 1)) {
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

/**
 * zlib-inflates (RFC 1950) bytes with the platform's DecompressionStream.
 * @param {Uint8Array} bytes
 * @returns {Promise<Uint8Array>}
 */
export async function inflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
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
 * Decodes a whole /maps payload.
 * @param {ArrayBuffer} buffer
 * @returns {Promise<DecodedMaps>} header, stats, and codes (uint8) or values (float16)
 */
export async function decodePayload(buffer) {
  const { header, stats, compressed } = splitPayload(buffer);
  const [n, c, h, w] = header.stored;
  const count = n * c * h * w;
  let raw;
  try {
    raw = await inflate(compressed);
  } catch (e) {
    throw new PayloadError(`data does not decompress: ${e}`);
  }
  const maps = { header, stats, n, c, h, w, codes: null, values: null, bytes: 0 };
  if (header.encoding === 'uint8') {
    if (raw.length !== count) throw new PayloadError(`data has ${raw.length} bytes, expected ${count}`);
    maps.codes = undelta(raw, w);
    maps.bytes = raw.length + stats.byteLength;
  } else {
    if (raw.length !== count * 2) throw new PayloadError(`data has ${raw.length} bytes, expected ${count * 2}`);
    maps.values = halfsToFloats(raw);
    maps.bytes = maps.values.byteLength + stats.byteLength;
  }
  return maps;
}

/**
 * One statistic of one map.
 * @param {DecodedMaps} maps
 * @param {number} sample
 * @param {number} channel
 * @param {string} field one of STAT_FIELDS
 */
export function statOf(maps, sample, channel, field) {
  return maps.stats[(sample * maps.c + channel) * NSTATS + STAT_FIELDS.indexOf(field)];
}

/**
 * The value of code q in a map with stats min/max, in float32 arithmetic exactly as
 * numpy's decode_values: lo + q * ((hi - lo) / 254). NaN for the non-finite code.
 */
export function dequantise(q, lo, hi) {
  if (q === NONFINITE_CODE) return NaN;
  const step = Math.fround(Math.fround(hi - lo) / LEVELS);
  return Math.fround(lo + Math.fround(q * step));
}

/**
 * The stored value at (sample, channel, y, x), as the /npy route gives it (NaN: non-finite).
 * @param {DecodedMaps} maps
 */
export function valueAt(maps, sample, channel, y, x) {
  const index = ((sample * maps.c + channel) * maps.h + y) * maps.w + x;
  if (maps.values) return maps.values[index];
  const base = (sample * maps.c + channel) * NSTATS;
  return dequantise(maps.codes[index], maps.stats[base], maps.stats[base + 1]);
}

/**
 * One map's values as floats (NaN for non-finite).
 * @param {DecodedMaps} maps
 * @returns {Float32Array} h * w values
 */
export function mapValues(maps, sample, channel) {
  const size = maps.h * maps.w;
  const offset = (sample * maps.c + channel) * size;
  if (maps.values) return maps.values.subarray(offset, offset + size);
  const base = (sample * maps.c + channel) * NSTATS;
  const table = new Float32Array(256);
  for (let q = 0; q < 256; q++) table[q] = dequantise(q, maps.stats[base], maps.stats[base + 1]);
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = table[maps.codes[offset + i]];
  return out;
}
