import assert from 'node:assert/strict';
import test from 'node:test';

import {
  PayloadError, STAT_FIELDS, decodePayload, halfToFloat, inflate, splitPayload, undelta,
} from '../decode.js';
import { payloadCases } from './fixtures.mjs';
import { deltaRows, handMadePayload } from './helpers.mjs';

const CASES = payloadCases();
const UINT8 = 'uint8 NCHW: NaN, inf and a constant map';

/** Equal as float32 values: the same number, or both NaN. */
function sameValues(got, expected, what) {
  assert.equal(got.length, expected.length, `${what}: length`);
  for (let i = 0; i < got.length; i++) {
    if (Number.isNaN(expected[i])) assert.ok(Number.isNaN(got[i]), `${what}[${i}]: ${got[i]} vs NaN`);
    else assert.equal(got[i], expected[i], `${what}[${i}]`);
  }
}

test('undelta inverts per-row delta coding, wrapping mod 256', () => {
  const codes = [250, 3, 254, 0, 10, 255, 200, 7];
  const coded = deltaRows(codes, 4);
  assert.notDeepEqual([...coded], codes);
  assert.deepEqual([...undelta(coded, 4)], codes);
});

for (const [name, c] of CASES) {
  test(`the Python writer's payload decodes to numpy's values: ${name}`, async () => {
    const maps = await decodePayload(c.buffer);
    assert.deepEqual(maps.header, c.header);
    assert.deepEqual([maps.n, maps.c, maps.h, maps.w], c.header.stored);
    sameValues([...maps.stats], c.stats, 'stats');
    const values = [];
    for (let s = 0; s < maps.n; s++) {
      for (let ch = 0; ch < maps.c; ch++) {
        const floats = maps.floats(s, ch);
        for (let y = 0; y < maps.h; y++) {
          for (let x = 0; x < maps.w; x++) {
            const v = maps.valueAt(s, ch, y, x);
            assert.ok(Object.is(v, floats[y * maps.w + x]), `floats() and valueAt() at ${s} ${ch} ${y} ${x}`);
            values.push(v);
          }
        }
      }
    }
    sameValues(values, c.values, 'values');
  });
}

test('the fixture exercises quantisation, non-finite codes, a constant map and float16', async () => {
  const maps = await decodePayload(CASES.get(UINT8).buffer);
  assert.equal(maps.header.encoding, 'uint8');
  assert.ok(maps.codes.includes(255), 'a non-finite code');
  assert.deepEqual([...new Set(maps.codesOf(0, 1))], [0]); // the constant map
  assert.equal(maps.stat(0, 1, 'min'), 2.5);
  assert.equal(maps.stat(0, 1, STAT_FIELDS[4]), 0); // zero_fraction of a map of 2.5
  // the codes tools/gen_payload_fixtures.py chose: both ends, 126..128, every fifth
  const across = await decodePayload(CASES.get('uint8: codes across 0..254').buffer);
  const every5 = Array.from({ length: 51 }, (_, i) => 5 * i);
  assert.deepEqual([...across.codes], [...every5, 1, 2, 3, 126, 127, 128, 252, 253, 254]);
  const half = await decodePayload(CASES.get('float16: exact values, inf, NaN, a subnormal').buffer);
  assert.equal(half.codes, null);
  assert.deepEqual([...half.values.slice(0, 4)], [1, -2, 0.5, Infinity]);
  assert.equal(half.values[5], 2 ** -24);
  assert.equal(halfToFloat(1), 2 ** -24);
});

test('the decoded-maps accessor finds (sample, channel) in one place', async () => {
  const c = CASES.get('uint8, two samples');
  const maps = await decodePayload(c.buffer);
  assert.deepEqual([maps.n, maps.c], [2, 2]);
  const size = maps.h * maps.w;
  assert.equal(maps.map(1, 1), 3);
  assert.equal(maps.min(1, 0), c.stats[2 * 6]);
  assert.equal(maps.max(0, 1), c.stats[1 * 6 + 1]);
  assert.equal(maps.valueAt(1, 1, 1, 2), c.values[3 * size + 1 * maps.w + 2]);
  assert.equal(maps.valueAt(1, 0, 0, 0), c.values[2 * size]);
});

test('bad payloads raise PayloadError', async () => {
  const { buffer } = CASES.get(UINT8);
  assert.throws(() => splitPayload(new TextEncoder().encode('nope nope nope').buffer), PayloadError);
  await assert.rejects(decodePayload(buffer.slice(0, buffer.byteLength - 3)), PayloadError);
  await assert.rejects(decodePayload(buffer.slice(0, 100)), PayloadError); // into the stats
  const bad = new Uint8Array(buffer.slice(0));
  bad[4] = 0xff; // header length beyond the end
  assert.throws(() => splitPayload(bad.buffer), PayloadError);
  // hand-made: a header that claims more maps than the data holds
  const lying = handMadePayload([1, 1, 2, 2], [1, 2, 3, 4], { stored: [1, 1, 2, 3] });
  await assert.rejects(decodePayload(lying), /has 4 bytes, expected 6/);
  await assert.rejects(decodePayload(handMadePayload([1, 1, 2, 2], [1, 2, 3, 4], { encoding: 'int4' })),
    /unknown encoding/);
});

test('inflating stops at the size the header gives', async () => {
  const { deflateSync } = await import('node:zlib');
  const bomb = deflateSync(new Uint8Array(1 << 20)); // 1 KiB that inflates to 1 MiB
  await assert.rejects(inflate(bomb, 4096), /more than the 4096 bytes/);
  await assert.rejects(inflate(deflateSync(new Uint8Array(10)), 11), /has 10 bytes, expected 11/);
  assert.equal((await inflate(bomb, 1 << 20)).length, 1 << 20);
});

test('a step larger than the limit is refused before anything is inflated', async () => {
  const { buffer, header } = CASES.get(UINT8);
  const count = header.stored.reduce((a, b) => a * b, 1);
  await assert.rejects(decodePayload(buffer, count - 1), /larger than the tab's/);
  assert.equal((await decodePayload(buffer, count)).bytes, count + count / header.stored[2] / header.stored[3] * 6 * 4);
});
