// Per-layout geometry and words: 1-D rows, linear features, labels of every layout.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import {
  ROW_MIN_HEIGHT, ROWS_MIN_HEIGHT, gridLayout, hitTest, hitWords, layerLabel, viewKind,
} from '../layout.js';

const CASES = JSON.parse(readFileSync(new URL('../../tests/layout_cases.json', import.meta.url)));

test('the shared cases: viewKind and row heights as render.py draws them', () => {
  for (const { layout, h, w, kind } of CASES.view_kind) {
    assert.equal(viewKind(layout === null ? undefined : layout, h, w), kind, `${layout} ${h}x${w}`);
  }
  for (const { count, height } of CASES.row_height) {
    const l = gridLayout({ count, mapW: 100, mapH: 1, cellSize: 32, maxWidth: 900, kind: 'rows' });
    assert.equal(l.cellH, height, `count ${count}`);
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

test('1-D rows: full length, at least 4 px a channel and 128 px a layer', () => {
  for (const [count, mapW, maxWidth] of [[32, 4000, 900], [2, 300, 900], [200, 50, 900]]) {
    const l = gridLayout({ count, mapW, mapH: 1, cellSize: 32, maxWidth, kind: 'rows' });
    assert.equal(l.cols, 1);
    assert.equal(l.rows, count);
    assert.ok(l.cellH >= ROW_MIN_HEIGHT);
    assert.ok(l.height >= ROWS_MIN_HEIGHT, `height ${l.height}`);
    assert.ok(l.width <= maxWidth);
    // a length that fits is drawn at an integer zoom, one that does not fills the panel
    assert.equal(l.cellW, mapW >= maxWidth ? maxWidth : mapW * Math.floor(maxWidth / mapW));
    // the last row's last pixel is the last channel's last values
    const hit = hitTest(l, l.width - 1, l.height - 1);
    assert.deepEqual([hit.slot, hit.y], [count - 1, 0]);
    assert.ok(hit.x >= mapW - Math.ceil(mapW / l.cellW) && hit.x <= mapW - 1, `t ${hit.x}`);
    assert.equal(hitTest(l, 0, 0).x, 0);
  }
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
