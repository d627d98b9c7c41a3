import assert from 'node:assert/strict';
import test from 'node:test';

import { channelOrder, gridLayout, hitTest, sampleIndices, slotOrigin } from '../layout.js';

test('grid columns and rows fit the width', () => {
  const layout = gridLayout({ count: 10, mapW: 8, mapH: 8, cellSize: 32, maxWidth: 140, gap: 2 });
  assert.equal(layout.cols, 4); // 4 * 32 + 3 * 2 = 134 <= 140 < 5 * 32 + 4 * 2
  assert.equal(layout.rows, 3);
  assert.equal(layout.width, 134);
  assert.equal(layout.height, 3 * 32 + 2 * 2);
  assert.equal(gridLayout({ count: 3, mapW: 8, mapH: 8, cellSize: 32, maxWidth: 10000 }).cols, 3);
  assert.equal(gridLayout({ count: 3, mapW: 8, mapH: 8, cellSize: 32, maxWidth: 5 }).cols, 1);
});

test('non-square maps keep their aspect ratio', () => {
  const layout = gridLayout({ count: 1, mapW: 12, mapH: 6, cellSize: 48, maxWidth: 500 });
  assert.deepEqual([layout.cellW, layout.cellH], [48, 24]);
  const line = gridLayout({ count: 1, mapW: 100, mapH: 1, cellSize: 50, maxWidth: 500 });
  assert.deepEqual([line.cellW, line.cellH], [50, 4]);
});

test('hit-testing maps a canvas pixel to slot and data pixel', () => {
  const layout = gridLayout({ count: 5, mapW: 4, mapH: 2, cellSize: 40, maxWidth: 100, gap: 2 });
  // cells 40 x 20, 2 columns
  assert.equal(layout.cols, 2);
  assert.deepEqual(hitTest(layout, 0, 0), { slot: 0, x: 0, y: 0 });
  assert.deepEqual(hitTest(layout, 39, 19), { slot: 0, x: 3, y: 1 });
  assert.equal(hitTest(layout, 40, 5), null); // the gap
  assert.deepEqual(hitTest(layout, 42, 0), { slot: 1, x: 0, y: 0 });
  assert.deepEqual(hitTest(layout, 52, 11), { slot: 1, x: 1, y: 1 });
  assert.deepEqual(hitTest(layout, 0, 44), { slot: 4, x: 0, y: 0 });
  assert.equal(hitTest(layout, 42, 44), null); // slot 5 does not exist
  assert.equal(hitTest(layout, -1, 0), null);
  for (let slot = 0; slot < 5; slot++) {
    const { x, y } = slotOrigin(layout, slot);
    assert.equal(hitTest(layout, x, y).slot, slot);
  }
});

test('bad sizes are rejected by name', () => {
  assert.throws(() => gridLayout({ count: 1, mapW: 0, mapH: 1, cellSize: 8, maxWidth: 10 }), /mapW/);
});

test('filmstrip sampling keeps first and last, at most the limit', () => {
  assert.deepEqual(sampleIndices(3, 40), [0, 1, 2]);
  const picks = sampleIndices(1000, 40);
  assert.equal(picks.length, 40);
  assert.equal(picks[0], 0);
  assert.equal(picks[39], 999);
  assert.ok(picks.every((v, i) => i === 0 || v > picks[i - 1]));
});

test('channel order by a statistic, descending, ties by index', () => {
  const mean = [0.5, 2, NaN, 2, -1];
  const stat = (c, field) => (field === 'mean' ? mean[c] : c);
  assert.deepEqual(channelOrder(5, 'index', stat), [0, 1, 2, 3, 4]);
  assert.deepEqual(channelOrder(5, 'mean', stat), [1, 3, 0, 4, 2]);
  assert.throws(() => channelOrder(5, 'colour', stat), /unknown sort/);
});
