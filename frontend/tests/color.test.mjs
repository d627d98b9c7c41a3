import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import test from 'node:test';

import {
  DIFFERENCE_COLORMAP, channelRanges, codeColors, codeValueColors, colorBarLabels, colorCodes,
  colorValues, difference,
  differenceRanges, flatIndex, spanOf, symmetric, unionRanges,
} from '../color.js';
import { lutRGBA } from '../luts.js';
import { decodePayload } from '../decode.js';
import { number, payloadCases } from './fixtures.mjs';

const CASES = JSON.parse(readFileSync(new URL('../../tests/color_cases.json', import.meta.url))).cases;
const NONFINITE = 0xffffffff;
const IDENTITY = Uint32Array.from({ length: 256 }, (_, i) => i); // a "LUT" of its own indices

const finiteExtreme = (values, pick) => {
  const finite = values.filter(Number.isFinite);
  return finite.length ? pick(...finite) : NaN;
};

/** LUT indices of a case, the way the tab computes them (null: the non-finite colour). */
function indicesOf(c) {
  const maps = c.maps.map((m) => Float32Array.from(m.map(number)));
  let data = maps;
  let colormap = c.colormap;
  let ranges;
  if (c.previous) {
    data = maps.map((m, i) => difference(m, Float32Array.from(c.previous[i].map(number))));
    colormap = DIFFERENCE_COLORMAP;
    ranges = differenceRanges(c.norm, data);
  } else {
    const mins = maps.map((m) => finiteExtreme([...m], Math.min));
    const maxs = maps.map((m) => finiteExtreme([...m], Math.max));
    ranges = channelRanges(c.norm, mins, maxs, { colormap, fixed: c.fixed && c.fixed.map(number) });
  }
  return data.map((values, i) => {
    const out = new Uint32Array(values.length);
    colorValues(values, ranges.lo[i], ranges.hi[i], IDENTITY, NONFINITE, flatIndex(colormap), out);
    return [...out].map((k) => (k === NONFINITE ? null : k));
  });
}

for (const c of CASES) {
  test(`colour case: ${c.name}`, () => {
    assert.deepEqual(indicesOf(c), c.expected);
  });
}

test('the cases cover every mode, the flat rule, differences and non-finite values', () => {
  assert.deepEqual(new Set(CASES.map((c) => c.norm)), new Set(['channel', 'layer', 'fixed']));
  assert.ok(CASES.some((c) => c.previous) && CASES.some((c) => c.expected.flat().includes(null)));
  assert.ok(CASES.some((c) => c.colormap === 'diverging' && c.expected.flat().includes(128)));
});

test('indices: halves round up, an empty or unknown range gives the flat index', () => {
  const at = (v, lo, hi, flat) => colorValues([v], lo, hi, IDENTITY, NONFINITE, flat, new Uint32Array(1))[0];
  assert.equal(at(0.5, 0, 1, 0), 128);
  assert.equal(at(13, 0, 30, 0), 111); // 110.5
  assert.equal(at(5, 5, 5, flatIndex('gray')), 0);
  assert.equal(at(0, 0, 0, flatIndex('diverging')), 128);
  assert.equal(at(1, NaN, NaN, 7), 7);
  assert.equal(at(1, -Infinity, Infinity, 7), 7);
});

test('symmetric ranges and spans of /stats (NaN arrives as "NaN")', () => {
  assert.deepEqual(symmetric([-1, 3]), [-3, 3]);
  assert.deepEqual(symmetric([2, 4]), [-4, 4]);
  assert.deepEqual(spanOf([1, 'NaN', -2], [3, 'NaN', 5]), [-2, 5]);
  assert.deepEqual(spanOf(['NaN'], ['NaN']).map(Number.isNaN), [true, true]);
  assert.throws(() => channelRanges('global', [0], [1], { colormap: 'gray' }), /unknown normalisation/);
  // fixed before /stats arrives: the layer's span at this step
  assert.deepEqual([...channelRanges('fixed', [0, -1], [1, 2], { colormap: 'gray' }).lo], [-1, -1]);
});

test('a shared scale for two grids spans both, and skips an unknown range', () => {
  const a = { lo: Float64Array.from([0, NaN]), hi: Float64Array.from([1, NaN]) };
  const b = { lo: Float64Array.from([-5, 2]), hi: Float64Array.from([0.5, 3]) };
  const u = unionRanges(a, b);
  assert.deepEqual([...u.lo, ...u.hi], [-5, 2, 1, 3]);
});

test('uint8 codes get the colour of the value numpy decodes them to', async () => {
  // a step the Python writer wrote, and payload.py's values for it (fixtures.mjs)
  const c = payloadCases().get('uint8 NCHW: NaN, inf and a constant map');
  const maps = await decodePayload(c.buffer);
  const lut = lutRGBA('diverging');
  const [lo, hi] = [-3, 3];
  const table = codeColors(maps.min(0, 0), maps.max(0, 0), lo, hi, lut, 7, flatIndex('diverging'));
  const codes = maps.codesOf(0, 0);
  const numpy = c.values.slice(0, codes.length);
  const expected = colorValues(numpy, lo, hi, lut, 7, flatIndex('diverging'), new Uint32Array(codes.length));
  assert.deepEqual([...colorCodes(codes, table, new Uint32Array(codes.length))], [...expected]);
  assert.ok(expected.includes(7) && new Set(expected).size > 10); // a NaN, and many colours
  // the constant map, on its own (empty) range: white, as the export draws it
  const flat = codeColors(maps.min(0, 1), maps.max(0, 1), 2.5, 2.5, lut, 7, flatIndex('diverging'));
  assert.deepEqual([...new Set(colorCodes(maps.codesOf(0, 1), flat, new Uint32Array(24)))], [lut[128]]);
  // code by code (small maps, a linear layer's 1 x 1 features): the same colours
  const direct = (m, l, h) => [...codeValueColors(maps.codesOf(0, m), maps.min(0, m), maps.max(0, m),
    l, h, lut, 7, flatIndex('diverging'), new Uint32Array(maps.codesOf(0, m).length))];
  assert.deepEqual(direct(0, lo, hi), [...expected]);
  assert.deepEqual([...new Set(direct(1, 2.5, 2.5))], [lut[128]]);
});

test('colour-bar labels say the scale and who shares it', () => {
  const ranges = { lo: Float64Array.from([-2, -2]), hi: Float64Array.from([5, 5]) };
  const format = (v) => String(v);
  const shared = colorBarLabels({ mode: 'layer', colormap: 'gray', diff: false, ranges, scope: 'both runs', format });
  assert.deepEqual(shared, { low: '-2', high: '5', caption: 'all channels, this step (both runs)' });
  const own = colorBarLabels({ mode: 'channel', colormap: 'diverging', diff: false, ranges, format });
  assert.deepEqual([own.low, own.high], ['−max', 'max']);
  assert.match(colorBarLabels({ mode: 'fixed', colormap: 'gray', diff: true, ranges, format }).caption, /^Δ/);
});
