import assert from 'node:assert/strict';
import test from 'node:test';

import { colorValues } from '../color.js';
import { gridLayout } from '../layout.js';
import { ByteLRU } from '../lru.js';
import { lutRGBA } from '../luts.js';
import { paintGrid } from '../paint.js';

test('painting fills each cell from its map, gaps stay transparent', () => {
  const lut = lutRGBA('gray');
  const layout = gridLayout({ count: 2, mapW: 2, mapH: 1, cellSize: 4, maxWidth: 100, gap: 1 });
  const pixels = new Uint32Array(layout.width * layout.height);
  const maps = [[0, 1], [1, NaN]];
  paintGrid(pixels, layout, (slot, out) => colorValues(maps[slot], 0, 1, lut, 9, 0, out));
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
