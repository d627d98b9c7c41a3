import assert from 'node:assert/strict';
import test from 'node:test';

import {
  PayloadError, decodePayload, dequantise, halfToFloat, inflate, splitPayload, undelta,
} from '../decode.js';
import { buildPayload, deltaRows } from './helpers.mjs';

test('undelta inverts per-row delta coding, wrapping mod 256', () => {
  const codes = [250, 3, 254, 0, 10, 255, 200, 7];
  const coded = deltaRows(codes, 4);
  assert.notDeepEqual([...coded], codes);
  assert.deepEqual([...undelta(coded, 4)], codes);
});

test('dequantise follows float32 math of numpy: lo + q * ((hi - lo) / 254)', () => {
  const lo = Math.fround(-1.3);
  const hi = Math.fround(2.7);
  const step = Math.fround(Math.fround(hi - lo) / 254);
  for (const q of [0, 1, 100, 253, 254]) {
    assert.equal(dequantise(q, lo, hi), Math.fround(lo + Math.fround(q * step)));
  }
  assert.equal(dequantise(0, lo, hi), lo);
  assert.ok(Math.abs(dequantise(254, lo, hi) - hi) < 1e-6);
  assert.ok(Number.isNaN(dequantise(255, lo, hi)));
});

test('a uint8 payload decodes to its values within half a quantisation step', async () => {
  const h = 3;
  const w = 5;
  const maps = [
    Array.from({ length: h * w }, (_, i) => Math.sin(i) * 3),
    Array.from({ length: h * w }, (_, i) => (i === 7 ? NaN : i * 0.5 - 2)),
    Array.from({ length: h * w }, () => 0),
  ];
  const { buffer } = buildPayload([1, 3, h, w], maps);
  const decoded = await decodePayload(buffer);
  assert.deepEqual([decoded.n, decoded.c, decoded.h, decoded.w], [1, 3, h, w]);
  assert.equal(decoded.header.encoding, 'uint8');
  for (let c = 0; c < 3; c++) {
    const lo = decoded.stat(0, c, 'min');
    const hi = decoded.stat(0, c, 'max');
    const tolerance = (hi - lo) / 508 + 1e-6;
    for (let i = 0; i < h * w; i++) {
      const expected = maps[c][i];
      const got = decoded.valueAt(0, c, Math.floor(i / w), i % w);
      if (Number.isNaN(expected)) assert.ok(Number.isNaN(got), `channel ${c} pixel ${i}`);
      else assert.ok(Math.abs(got - expected) <= tolerance, `channel ${c} pixel ${i}: ${got} vs ${expected}`);
    }
  }
  assert.equal(decoded.stat(0, 2, 'zero_fraction'), 1);
  assert.equal(decoded.stat(0, 1, 'nonfinite'), 1);
  assert.deepEqual([...decoded.floats(0, 0)], Array.from({ length: h * w }, (_, i) => decoded.valueAt(0, 0, Math.floor(i / w), i % w)));
});

test('a float16 payload decodes exactly', async () => {
  // 1.0, -2.0, 0.5, +inf, NaN, smallest subnormal
  const bits = [0x3c00, 0xc000, 0x3800, 0x7c00, 0x7e00, 0x0001];
  const { buffer } = buildPayload([1, 1, 2, 3], [[1, -2, 0.5, Infinity, NaN, 2 ** -24]], { encoding: 'float16', halfBits: bits });
  const decoded = await decodePayload(buffer);
  assert.equal(decoded.codes, null);
  assert.deepEqual([...decoded.values].slice(0, 4), [1, -2, 0.5, Infinity]);
  assert.ok(Number.isNaN(decoded.values[4]));
  assert.equal(decoded.values[5], halfToFloat(1));
  assert.equal(halfToFloat(1), 2 ** -24);
});

test('bad payloads raise PayloadError', async () => {
  assert.throws(() => splitPayload(new TextEncoder().encode('nope nope nope').buffer), PayloadError);
  const { buffer } = buildPayload([1, 1, 2, 2], [[1, 2, 3, 4]]);
  const truncated = buffer.slice(0, buffer.byteLength - 3);
  await assert.rejects(decodePayload(truncated), PayloadError);
  const bad = new Uint8Array(buffer.slice(0));
  bad[4] = 0xff; // header length beyond the end
  assert.throws(() => splitPayload(bad.buffer), PayloadError);
});

test('inflating stops at the size the header gives', async () => {
  const { deflateSync } = await import('node:zlib');
  const bomb = deflateSync(new Uint8Array(1 << 20)); // 1 KiB that inflates to 1 MiB
  await assert.rejects(inflate(bomb, 4096), /more than the 4096 bytes/);
  await assert.rejects(inflate(deflateSync(new Uint8Array(10)), 11), /has 10 bytes, expected 11/);
  assert.equal((await inflate(bomb, 1 << 20)).length, 1 << 20);
});

test('a step larger than the limit is refused before anything is inflated', async () => {
  const { buffer } = buildPayload([1, 1, 2, 2], [[1, 2, 3, 4]]);
  await assert.rejects(decodePayload(buffer, 3), /larger than the tab's/);
  assert.equal((await decodePayload(buffer, 4)).bytes, 4 + 6 * 4);
});

test('the decoded-maps accessor finds (sample, channel) in one place', async () => {
  const maps = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12]];
  const { buffer } = buildPayload([2, 3, 1, 2], maps);
  const decoded = await decodePayload(buffer);
  assert.equal(decoded.map(1, 2), 5);
  assert.equal(decoded.min(1, 0), 7);
  assert.equal(decoded.max(0, 2), 6);
  assert.deepEqual([...decoded.codesOf(1, 1)], [0, 254]);
  assert.equal(decoded.valueAt(1, 2, 0, 1), 12);
});
