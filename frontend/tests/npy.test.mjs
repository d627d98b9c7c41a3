import assert from 'node:assert/strict';
import { test } from 'node:test';

import { NpyError, parseNpy2D } from '../npy.js';

/** A .npy as numpy.save writes it (version 1.0, header padded to a multiple of 64). */
function npy(header, values) {
  let text = header;
  while ((10 + text.length + 1) % 64) text += ' ';
  text += '\n';
  const head = new Uint8Array(10 + text.length);
  head.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(head.buffer).setUint16(8, text.length, true);
  head.set(Array.from(text, (c) => c.charCodeAt(0)), 10);
  const body = new Uint8Array(new Float32Array(values).buffer);
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out.buffer;
}

const GOOD = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";

test('parses a float32 [rows, cols] array', () => {
  const { rows, cols, data } = parseNpy2D(npy(GOOD, [1, 2, 3, 4, NaN, -6]));
  assert.equal(rows, 2);
  assert.equal(cols, 3);
  assert.deepEqual(Array.from(data), [1, 2, 3, 4, NaN, -6]);
});

test('rejects what is not a float32 2-D C-order .npy of the right size', () => {
  const bad = [
    new Uint8Array([1, 2, 3]).buffer,
    npy(GOOD.replace('<f4', '<f8'), [1, 2, 3, 4, 5, 6]),
    npy(GOOD.replace('False', 'True'), [1, 2, 3, 4, 5, 6]),
    npy(GOOD.replace('(2, 3)', '(6,)'), [1, 2, 3, 4, 5, 6]),
    npy(GOOD, [1, 2, 3, 4, 5]),
    npy(GOOD.replace('(2, 3)', '(200000000, 300000000)'), [1, 2, 3, 4, 5, 6]),
  ];
  for (const buffer of bad) assert.throws(() => parseNpy2D(buffer), NpyError);
});
