import assert from 'node:assert/strict';
import test from 'node:test';

import { COLORMAPS } from '../colormaps.js';
import { NONFINITE_RGBA, lut, lutRGBA, packRGBA } from '../luts.js';

test('every colormap has 256 RGB entries', () => {
  assert.deepEqual(COLORMAPS, ['gray', 'viridis', 'magma', 'inferno', 'diverging']);
  for (const name of COLORMAPS) {
    assert.equal(lut(name).length, 768, name);
    assert.equal(lutRGBA(name).length, 256, name);
  }
});

test('endpoints match matplotlib', () => {
  const at = (name, i) => [...lut(name).subarray(3 * i, 3 * i + 3)];
  assert.deepEqual(at('gray', 0), [0, 0, 0]);
  assert.deepEqual(at('gray', 255), [255, 255, 255]);
  assert.deepEqual(at('viridis', 0), [68, 1, 84]);
  assert.deepEqual(at('viridis', 255), [253, 231, 37]);
  assert.deepEqual(at('magma', 255), [252, 253, 191]);
  assert.deepEqual(at('inferno', 0), [0, 0, 4]);
  // RdBu_r: blue at the low end, red at the high end, near white in the middle.
  const [r0, , b0] = at('diverging', 0);
  const [r1, , b1] = at('diverging', 255);
  assert.ok(b0 > r0 && r1 > b1);
  assert.ok(at('diverging', 128).every((v) => v > 230));
});

test('packed RGBA is little-endian R, G, B, A', () => {
  const bytes = new Uint8Array(new Uint32Array([packRGBA(1, 2, 3)]).buffer);
  assert.deepEqual([...bytes], [1, 2, 3, 255]);
  assert.deepEqual([...new Uint8Array(new Uint32Array([NONFINITE_RGBA]).buffer)], [255, 0, 255, 255]);
  assert.throws(() => lut('jet'), /unknown colormap/);
});
