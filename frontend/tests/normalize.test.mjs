import assert from 'node:assert/strict';
import test from 'node:test';

import { lutRGBA } from '../colormaps.js';
import { decodePayload } from '../decode.js';
import { ByteLRU } from '../lru.js';
import { codeColors, colorIndex, layerSpan, rangeFor, spanOf, symmetric } from '../normalize.js';
import { colorValues, paintGrid } from '../paint.js';
import { gridLayout } from '../layout.js';
import { buildPayload } from './helpers.mjs';

async function twoChannels() {
  const { buffer } = buildPayload([1, 2, 1, 4], [[0, 1, 2, 3], [-10, 0, 10, 20]]);
  return decodePayload(buffer);
}

test('per channel, per layer and fixed ranges', async () => {
  const maps = await twoChannels();
  assert.deepEqual(rangeFor('channel', maps, 0, 0, null), [0, 3]);
  assert.deepEqual(rangeFor('channel', maps, 0, 1, null), [-10, 20]);
  assert.deepEqual(rangeFor('layer', maps, 0, 0, null), [-10, 20]);
  assert.deepEqual(rangeFor('layer', maps, 0, 1, null), [-10, 20]);
  assert.deepEqual(rangeFor('fixed', maps, 0, 0, [-50, 70]), [-50, 70]);
  assert.deepEqual(rangeFor('fixed', maps, 0, 0, null), [-10, 20]); // before /stats arrives
  assert.throws(() => rangeFor('global', maps, 0, 0, null), /unknown normalisation/);
});

test('fixed span from /stats ignores NaN written as "NaN"', () => {
  assert.deepEqual(spanOf([1, 'NaN', -2], [3, 'NaN', 5]), [-2, 5]);
  assert.deepEqual(spanOf(['NaN'], ['NaN']).map(Number.isNaN), [true, true]);
  assert.deepEqual(layerSpan(new Float32Array([1, 2, 0, 0, 0, 0, NaN, NaN, 0, 0, 0, 0]), 2, 0), [1, 2]);
});

test('the diverging range is symmetric around zero', () => {
  assert.deepEqual(symmetric([-1, 3]), [-3, 3]);
  assert.deepEqual(symmetric([-5, 2]), [-5, 5]);
  assert.deepEqual(symmetric([2, 4]), [-4, 4]);
  assert.equal(colorIndex(0, ...symmetric([-1, 3])), 128);
  assert.equal(colorIndex(0, 0, 0, 128), 128); // all-zero map: the middle colour
});

test('colour index clamps and rounds', () => {
  assert.equal(colorIndex(-1, 0, 1), 0);
  assert.equal(colorIndex(2, 0, 1), 255);
  assert.equal(colorIndex(0.5, 0, 1), 128);
  assert.equal(colorIndex(5, 5, 5), 0);
});

test('per channel: codes map straight onto the LUT; per layer: shared scale', async () => {
  const maps = await twoChannels();
  const lut = lutRGBA('gray');
  const own = codeColors(-10, 20, [-10, 20], lut, 7);
  assert.equal(own[0], lut[0]);
  assert.equal(own[254], lut[255]);
  assert.equal(own[255], 7);
  // channel 0 (0..3) on the layer scale (-10..20) uses only part of the LUT
  const shared = codeColors(0, 3, [-10, 20], lut, 7);
  assert.equal(shared[0], lut[colorIndex(0, -10, 20)]);
  assert.equal(shared[254], lut[colorIndex(3, -10, 20)]);
  assert.ok(maps.c === 2);
});

test('painting fills each cell from its map, gaps stay transparent', () => {
  const lut = lutRGBA('gray');
  const layout = gridLayout({ count: 2, mapW: 2, mapH: 1, cellSize: 4, maxWidth: 100, gap: 1 });
  const pixels = new Uint32Array(layout.width * layout.height);
  const maps = [[0, 1], [1, NaN]];
  paintGrid(pixels, layout, (slot, out) => colorValues(maps[slot], [0, 1], lut, 9, 0, out));
  // cell 4 x 2, gap 1: row 0 = [0 0 1 1 gap 1 1 nan nan]
  assert.deepEqual([...pixels.subarray(0, 9)], [lut[0], lut[0], lut[255], lut[255], 0, lut[255], lut[255], 9, 9]);
  assert.deepEqual([...pixels.subarray(9, 18)], [...pixels.subarray(0, 9)]);
  // with a gap colour: the gaps between cells get it, the empty slots after the last map do not
  const three = gridLayout({ count: 3, mapW: 1, mapH: 1, cellSize: 2, maxWidth: 5, gap: 1 });
  assert.deepEqual([three.cols, three.rows, three.width, three.height], [2, 2, 5, 5]);
  const grid = paintGrid(new Uint32Array(25), three, (slot, out) => out.fill(slot + 1), 9);
  const rows = Array.from({ length: 5 }, (_, y) => [...grid.subarray(5 * y, 5 * y + 5)]);
  assert.deepEqual(rows, [[1, 1, 9, 2, 2], [1, 1, 9, 2, 2], [9, 9, 0, 0, 0], [3, 3, 0, 0, 0], [3, 3, 0, 0, 0]]);
});

test('the byte-bounded LRU evicts the least recently used', () => {
  const cache = new ByteLRU(10);
  cache.set('a', 1, 4);
  cache.set('b', 2, 4);
  assert.equal(cache.get('a'), 1); // a is now newer than b
  cache.set('c', 3, 4);
  assert.equal(cache.has('b'), false);
  assert.equal(cache.get('a'), 1);
  assert.equal(cache.bytes, 8);
  cache.set('huge', 4, 11);
  assert.equal(cache.has('huge'), false);
});
