import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import test from 'node:test';

import { parseChannels, rankBy, shownChannels } from '../channels.js';
import { OPAQUE, backgroundColors, overlayWeight, scaleColors } from '../color.js';
import { gridLayout } from '../layout.js';
import { packRGBA } from '../luts.js';
import { paintGrid } from '../paint.js';

const TABLE = JSON.parse(readFileSync(new URL('../../tests/color_cases.json', import.meta.url)));
const num = (v) => (typeof v === 'string' ? Number(v.replace('inf', 'Infinity')) : v);

/** A 1-row layer of maps with the DecodedMaps accessors backgroundColors uses. */
function layer(planes) {
  const values = planes.map((p) => Float32Array.from(p.map(num)));
  const finite = (p) => [...p].filter(Number.isFinite);
  return {
    n: 1, c: planes.length, h: 1, w: planes[0].length,
    min: (s, c) => Math.min(...finite(values[c])),
    max: (s, c) => Math.max(...finite(values[c])),
    floats: (s, c) => values[c],
  };
}

const rgb = (v) => [v & 255, (v >>> 8) & 255, (v >>> 16) & 255];

for (const c of TABLE.overlay_cases) {
  test(`overlay case: ${c.name}`, () => {
    const weight = overlayWeight(c.opacity);
    const under = scaleColors(backgroundColors(layer(c.background), 0), 256 - weight);
    const map = scaleColors(Uint32Array.of(packRGBA(...c.map)), weight)[0];
    const got = [...under].map((b) => rgb((map + b) | OPAQUE));
    assert.deepEqual(got, c.expected);
  });
}

test('the grid paints each cell over the background stretched to the cell', () => {
  const layout = gridLayout({ count: 2, mapW: 1, mapH: 1, cellSize: 2, maxWidth: 100, gap: 1 });
  const background = { colors: Uint32Array.of(1, 2, 3, 4), w: 2, h: 2 }; // already scaled
  const pixels = paintGrid(new Uint32Array(layout.width * layout.height), layout,
    (slot, out) => out.fill(16 * (slot + 1)), 0, background);
  const at = (x, y) => pixels[y * layout.width + x] >>> 0;
  assert.deepEqual([at(0, 0), at(1, 0), at(0, 1), at(1, 1)].map((v) => (v - OPAQUE) >>> 0), [17, 18, 19, 20]);
  assert.deepEqual([at(3, 0), at(4, 1)].map((v) => (v - OPAQUE) >>> 0), [33, 36]);
  assert.equal(at(2, 0), 0); // the gap
});

test('channel filters read indices and ranges, and say what is wrong', () => {
  assert.deepEqual(parseChannels('3, 17, 40-45', 50).channels, [3, 17, 40, 41, 42, 43, 44, 45]);
  assert.deepEqual(parseChannels(' 5 2,2 ', 6), { channels: [2, 5], error: null });
  assert.deepEqual(parseChannels('  ', 6), { channels: null, error: null });
  assert.match(parseChannels('3, x', 6).error, /"x" is not a channel/);
  assert.match(parseChannels('5-2', 6).error, /runs backwards/);
  assert.match(parseChannels('0-6', 6).error, /channel 6 does not exist: this layer has 0-5/);
  assert.match(parseChannels('-1', 6).error, /not a channel/);
  assert.match(parseChannels('0-99999999', 1e9).error, /too long/);
});

test('top K ranks the filtered channels by the statistic, highest first, NaN last', () => {
  const key = [0.5, NaN, 3, 3, 1];
  assert.deepEqual(rankBy([0, 1, 2, 3, 4], key), [2, 3, 4, 0, 1]);
  assert.deepEqual(shownChannels([4, 3, 2, 1, 0], null, 2, () => key), [2, 3]);
  assert.deepEqual(shownChannels([4, 3, 2, 1, 0], [0, 1, 4], 2, () => key), [4, 0]);
  assert.deepEqual(shownChannels([4, 3, 2, 1, 0], [0, 1, 4], 0, () => { throw new Error('no'); }), [4, 1, 0]);
});
