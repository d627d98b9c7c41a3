// Builds /maps wire payloads in the tests, the way tb_featmap/payload.py does.
import { deflateSync } from 'node:zlib';

/** Quantises maps like the writer: q = round((v - min) / (max - min) * 254), 255 non-finite. */
export function quantise(values, lo, hi) {
  return values.map((v) => {
    if (!Number.isFinite(v)) return 255;
    if (!(hi > lo)) return 0;
    return Math.round(((v - lo) / (hi - lo)) * 254);
  });
}

/** Delta-codes each row: d[0] = q[0], d[i] = q[i] - q[i-1] mod 256. */
export function deltaRows(codes, width) {
  const out = new Uint8Array(codes.length);
  for (let i = 0; i < codes.length; i++) {
    out[i] = i % width === 0 ? codes[i] : (codes[i] - codes[i - 1] + 256) & 255;
  }
  return out;
}

/**
 * A wire payload.
 * @param {number[]} stored [N, C, H, W]
 * @param {number[][]} maps N*C arrays of H*W values
 * @param {string} encoding 'uint8' or 'float16' (float16 needs halfBits)
 */
export function buildPayload(stored, maps, { encoding = 'uint8', halfBits = null } = {}) {
  const [, , h, w] = stored;
  const header = Buffer.from(JSON.stringify({ version: 1, layout: 'NCHW', shape: stored, stored, encoding,
    compression: encoding === 'uint8' ? 'deflate-delta' : 'deflate', dropped: {}, seq: 0, downsample: 1 }));
  const padded = Buffer.concat([header, Buffer.alloc((4 - (header.length % 4)) % 4, 0x20)]);
  const stats = new Float32Array(maps.length * 6);
  const codes = [];
  maps.forEach((values, m) => {
    const finite = values.filter(Number.isFinite);
    const lo = finite.length ? Math.fround(Math.min(...finite)) : NaN;
    const hi = finite.length ? Math.fround(Math.max(...finite)) : NaN;
    const mean = finite.reduce((a, b) => a + b, 0) / Math.max(1, finite.length);
    stats.set([lo, hi, mean, 0, values.filter((v) => v === 0).length / values.length, values.length - finite.length], m * 6);
    codes.push(...quantise(values, lo, hi));
  });
  const data = encoding === 'uint8'
    ? deltaRows(Uint8Array.from(codes), w)
    : new Uint8Array(Uint16Array.from(halfBits).buffer);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(padded.length);
  const bytes = Buffer.concat([Buffer.from('TBFM'), length, padded, Buffer.from(stats.buffer), deflateSync(data)]);
  return { buffer: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length), stats, codes, h, w };
}
