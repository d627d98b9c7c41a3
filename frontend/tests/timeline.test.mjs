import assert from 'node:assert/strict';
import { test } from 'node:test';

import { defaultTag, positionOf } from '../scalars.js';
import { deadOnsets, stripRows } from '../timeline.js';

test('a channel dies at the first step from which it is zero at every later step', () => {
  // 5 steps x 3 channels: 0 dies at step 2 (an unreadable NaN step in between is passed
  // over), 1 is zero at step 1 only, 2 is never zero.
  const data = Float32Array.from([
    0.5, 0.1, 0.0,
    0.2, 1.0, 0.0,
    1.0, 0.3, 0.0,
    NaN, NaN, NaN,
    1.0, 0.3, 0.0,
  ]);
  assert.deepEqual(Array.from(deadOnsets({ rows: 5, cols: 3, data })), [2, -1, -1]);
});

test('rows follow the order given and bin when there are too many', () => {
  const data = Float32Array.from([1, 2, 3, 4, 5, 6]); // 2 steps x 3 channels
  const one = stripRows({ rows: 2, cols: 3, data }, [2, 0, 1]);
  assert.equal(one.bin, 1);
  assert.deepEqual(Array.from(one.values), [3, 6, 1, 4, 2, 5]);
  const binned = stripRows({ rows: 2, cols: 3, data }, [0, 1, 2], 2);
  assert.equal(binned.bin, 2);
  assert.deepEqual(binned.rows, [[0, 1], [2]]);
  assert.deepEqual(Array.from(binned.values), [1.5, 4.5, 3, 6]);
});

test('scalars lie on the slider axis; the default scalar is the first with "loss"', () => {
  const steps = [0, 10, 20, 40];
  assert.equal(positionOf(steps, 10), 1);
  assert.equal(positionOf(steps, 30), 2.5);
  assert.equal(positionOf(steps, -5), 0);
  assert.equal(positionOf(steps, 99), 3);
  assert.equal(defaultTag(['acc', 'train/Loss', 'val/loss']), 'train/Loss');
  assert.equal(defaultTag(['acc', 'lr']), 'acc');
  assert.equal(defaultTag([]), '');
});
