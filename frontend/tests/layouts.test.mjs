// Per-layout geometry and words: 1-D rows, linear features, labels of every layout.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import {
  MAX_CANVAS_HEIGHT, ROW_MIN_HEIGHT, ROWS_MIN_HEIGHT, gridLayout, hitTest, hitWords, layerLabel, viewKind,
} from '../layout.js';
import { paintGrid } from '../paint.js';
import { depthOf, sliceOf } from '../volume.js';

const CASES = JSON.parse(readFileSync(new URL('../../tests/layout_cases.json', import.meta.url)));

test('the shared cases: viewKind, row heights and depth as render.py draws them', () => {
  for (const { layout, h, w, kind } of CASES.view_kind) {
    assert.equal(viewKind(layout === null ? undefined : layout, h, w), kind, `${layout} ${h}x${w}`);
  }
  for (const { count, height } of CASES.row_height) {
    const l = gridLayout({ count, mapW: 100, mapH: 1, cellSize: 32, maxWidth: 900, kind: 'rows' });
    assert.equal(l.cellH, height, `count ${count}`);
  }
  for (const { header, depth } of CASES.depth) {
    assert.equal(depthOf(header), depth, JSON.stringify(header));
  }
});

test('viewKind: linear layers are features, 1 x L maps rows, the rest maps', () => {
  assert.equal(viewKind('NF', 1, 1), 'features');
  assert.equal(viewKind('NCL', 1, 4000), 'rows');
  assert.equal(viewKind('NTD', 1, 17), 'rows');
  assert.equal(viewKind('NTD', 14, 14), 'maps');
  assert.equal(viewKind('NCDHW', 64, 16), 'maps');
  assert.equal(viewKind(undefined, 8, 8), 'maps');
});

test('1-D rows that fit: whole pixels a value, at least 4 px a channel and 128 a layer', () => {
  for (const [count, mapW, maxWidth] of [[2, 300, 900], [200, 50, 900], [3, 900, 900]]) {
    const l = gridLayout({ count, mapW, mapH: 1, cellSize: 32, maxWidth, kind: 'rows' });
    assert.equal(l.cols, 1);
    assert.equal(l.rows, count);
    assert.ok(l.cellH >= ROW_MIN_HEIGHT);
    assert.ok(l.height >= ROWS_MIN_HEIGHT, `height ${l.height}`);
    assert.equal(l.cellW, mapW * Math.floor(maxWidth / mapW));
    assert.deepEqual([l.viewX, l.viewW, l.width], [0, mapW, l.cellW]);
    // the last row's last pixel is the last channel's last value
    assert.deepEqual(hitTest(l, l.width - 1, l.height - 1), { slot: count - 1, x: mapW - 1, y: 0 });
    assert.equal(hitTest(l, 0, 0).x, 0);
  }
});

test('1-D rows longer than the panel: a window of one pixel a value, every value reachable', () => {
  const [count, mapW, maxWidth] = [32, 4000, 900];
  const seen = new Uint8Array(mapW);
  for (let scrollX = 0; scrollX < mapW; scrollX += 900) {
    const l = gridLayout({ count, mapW, mapH: 1, cellSize: 32, maxWidth, kind: 'rows', scrollX });
    assert.deepEqual([l.cols, l.rows, l.cellW, l.width, l.viewW], [1, count, 900, 900, 900]);
    assert.ok(l.cellH >= ROW_MIN_HEIGHT && l.height >= ROWS_MIN_HEIGHT);
    assert.equal(l.viewX, Math.min(scrollX, mapW - 900));
    for (let px = 0; px < l.width; px++) {
      const hit = hitTest(l, px, l.height - 1);
      assert.deepEqual(hit, { slot: count - 1, x: l.viewX + px, y: 0 });
      seen[hit.x] = 1;
    }
  }
  assert.ok(seen.every((s) => s === 1), 'a value no window shows');
  // the window stays inside the map; no canvas is wider than the panel however long L is
  const at = (scrollX, w = mapW) => gridLayout({
    count, mapW: w, mapH: 1, cellSize: 32, maxWidth, kind: 'rows', scrollX,
  });
  assert.equal(at(-5).viewX, 0);
  assert.equal(at(1e9).viewX, mapW - 900);
  assert.equal(at(NaN).viewX, 0);
  assert.equal(hitTest(at(1e9), 899, 0).x, mapW - 1);
  assert.deepEqual([at(0, 1e6).width, at(1e9, 1e6).viewX], [900, 1e6 - 900]);
});

test('painting a window of long rows: each canvas column is its one value', () => {
  const l = gridLayout({
    count: 2, mapW: 3000, mapH: 1, cellSize: 32, maxWidth: 700, kind: 'rows', scrollX: 1234,
  });
  const pixels = paintGrid(new Uint32Array(l.width * l.height), l,
    (slot, out) => { for (let t = 0; t < out.length; t++) out[t] = slot * 10000 + t; }, 7);
  for (const slot of [0, 1]) {
    const y = slot * (l.cellH + l.gap) + l.cellH - 1;
    const row = [...pixels.subarray(y * l.width, (y + 1) * l.width)];
    assert.deepEqual(row, Array.from({ length: 700 }, (_, x) => slot * 10000 + 1234 + x));
  }
  // a background (a 1 x 1500 layer: half as long) under the window, at the same t
  const colors = Uint32Array.from({ length: 1500 }, (_, i) => i);
  const under = paintGrid(new Uint32Array(l.width * l.height), l, (slot, out) => out.fill(0),
    0, { colors, w: 1500, h: 1 });
  const row = [...under.subarray(0, l.width)].map((p) => p & 0xffffff);
  assert.deepEqual(row, Array.from({ length: 700 }, (_, x) => Math.floor((1234 + x) / 2)));
});

test('linear features: a near-square grid of cells at least 4 px', () => {
  const l = gridLayout({ count: 1000, mapW: 1, mapH: 1, cellSize: 64, maxWidth: 900, kind: 'features' });
  assert.equal(l.cols, 32);
  assert.equal(l.rows, 32);
  assert.ok(l.cellW >= 4 && l.cellW === l.cellH && l.width <= 900);
  const small = gridLayout({ count: 10, mapW: 1, mapH: 1, cellSize: 48, maxWidth: 900, kind: 'features' });
  assert.deepEqual([small.cols, small.rows, small.cellW], [4, 3, 48]);
  const hit = hitTest(small, 49 * 2 + 3, 49 + 3);
  assert.equal(hit.slot, 6);
  assert.equal(hitWords('features', { channel: 6, x: 0, y: 0 }), 'feature 6');
  assert.equal(hitWords('rows', { channel: 3, x: 1234, y: 0 }), 'channel 3 · t 1234');
});

test('layerLabel says each layout as its users think of it', () => {
  const label = (layout, shape, stored, tokens = 0) =>
    layerLabel({ layout, shape, stored, dropped: { tokens } });
  assert.equal(label('NCHW', [1, 64, 55, 55], [1, 64, 55, 55]), '64×55×55');
  assert.equal(label('NCL', [1, 32, 4000], [1, 32, 1, 4000]), '32 channels × 4000 t');
  assert.equal(label('NF', [1, 10], [1, 10, 1, 1]), '10 features');
  assert.equal(label('NCDHW', [1, 64, 8, 56, 56], [1, 64, 448, 56]), '64×D8×56×56');
  assert.equal(label('NTD', [1, 197, 768], [1, 768, 14, 14], 1),
    '768 dims · 14×14 patches, 1 class token dropped');
  assert.equal(label('NTD', [1, 17, 3], [1, 3, 1, 17]), '3 dims · 17 tokens');
});

test('rows of a layer with very many channels stay under the tallest canvas Chromium draws', () => {
  const rows = (count) => gridLayout({
    count, mapW: 256, mapH: 1, cellSize: 32, maxWidth: 900, kind: 'rows',
  });
  assert.equal(rows(6000).cellH, ROW_MIN_HEIGHT); // 4-pixel rows still fit
  for (const count of [7000, 16000, 20000, 32767]) {
    const l = rows(count);
    assert.ok(l.height <= MAX_CANVAS_HEIGHT && l.cellH >= 1, `${count}: ${l.height}`);
    assert.ok(l.height > MAX_CANVAS_HEIGHT / 2, `${count}: rows as tall as they can be`);
    // every channel is still hit where it is drawn
    const last = hitTest(l, 0, (count - 1) * (l.cellH + l.gap));
    assert.equal(last && last.slot, count - 1);
  }
  assert.equal(rows(20000).gap, 0);
});

test('sliceOf reads each step\'s own header: a step logged 2-D is drawn whole', () => {
  const step = (header, h) => ({ header, n: 1, c: 2, h, w: 3, stats: null, bytes: 0 });
  const volume = step({ layout: 'NCDHW', shape: [1, 2, 4, 2, 3], stored: [1, 2, 8, 3] }, 8);
  const slice = sliceOf(volume, 9); // past the last slice: the last
  assert.equal(slice.h, 2);
  assert.equal(slice.d, 3);
  const flat = step({ layout: 'NCHW', shape: [1, 2, 8, 3], stored: [1, 2, 8, 3] }, 8);
  assert.equal(sliceOf(flat, 2), flat); // the newest step may be 3-D; this one is not
  assert.equal(sliceOf(null, 0), null);
});
