// Hand-made /maps payloads, for what the Python writer never writes: truncated or lying
// payloads, and delta coding of chosen codes. Every test of decoding real data uses the
// fixtures the writer made (fixtures.mjs), not these.
import { deflateSync } from 'node:zlib';

/** Delta-codes each row: d[0] = q[0], d[i] = q[i] - q[i-1] mod 256. */
export function deltaRows(codes, width) {
  const out = new Uint8Array(codes.length);
  for (let i = 0; i < codes.length; i++) {
    out[i] = i % width === 0 ? codes[i] : (codes[i] - codes[i - 1] + 256) & 255;
  }
  return out;
}

/**
 * A uint8 wire payload of the given codes, with any header fields overridden (for payloads
 * that lie about themselves). Statistics: min 0, max 1 for every map.
 * @param {number[]} stored [N, C, H, W]
 * @param {number[]} codes N*C*H*W uint8 codes
 * @param {object} [header] fields to override
 */
export function handMadePayload(stored, codes, header = {}) {
  const [n, c, , w] = stored;
  const json = Buffer.from(JSON.stringify({ version: 1, layout: 'NCHW', shape: stored, stored,
    encoding: 'uint8', compression: 'deflate-delta', dropped: {}, seq: 0, downsample: 1, ...header }));
  const padded = Buffer.concat([json, Buffer.alloc((4 - (json.length % 4)) % 4, 0x20)]);
  const stats = new Float32Array(n * c * 6);
  for (let m = 0; m < n * c; m++) stats.set([0, 1], m * 6);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(padded.length);
  const data = deflateSync(deltaRows(Uint8Array.from(codes), w));
  const bytes = Buffer.concat([Buffer.from('TBFM'), length, padded, Buffer.from(stats.buffer), data]);
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
}
