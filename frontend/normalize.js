// Value ranges and value -> colour tables. No DOM: Node tests import it.

import { NSTATS, dequantise } from './decode.js';

/** Normalisation modes, as the menu lists them. */
export const MODES = {
  channel: 'per channel',
  layer: 'per layer',
  fixed: 'fixed (all steps)',
};

/**
 * Parses a number from TensorBoard's JSON, where NaN arrives as the string "NaN".
 * @param {number|string} v
 */
export function jsonNumber(v) {
  return typeof v === 'number' ? v : Number(v);
}

/**
 * [min, max] over the finite entries of two lists, or [NaN, NaN] when there are none.
 * @param {ArrayLike<number|string>} mins
 * @param {ArrayLike<number|string>} maxs
 */
export function spanOf(mins, maxs) {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < mins.length; i++) {
    const a = jsonNumber(mins[i]);
    const b = jsonNumber(maxs[i]);
    if (Number.isFinite(a) && a < lo) lo = a;
    if (Number.isFinite(b) && b > hi) hi = b;
  }
  return lo <= hi ? [lo, hi] : [NaN, NaN];
}

/**
 * The range of every channel of one sample at this step, from the payload's stats.
 * @param {Float32Array} stats [N, C, 6]
 * @param {number} channels C
 * @param {number} sample
 */
export function layerSpan(stats, channels, sample) {
  let lo = Infinity;
  let hi = -Infinity;
  for (let c = 0; c < channels; c++) {
    const base = (sample * channels + c) * NSTATS;
    if (Number.isFinite(stats[base]) && stats[base] < lo) lo = stats[base];
    if (Number.isFinite(stats[base + 1]) && stats[base + 1] > hi) hi = stats[base + 1];
  }
  return lo <= hi ? [lo, hi] : [NaN, NaN];
}

/**
 * The range to colour one map with.
 * @param {string} mode 'channel' (its own min/max at this step), 'layer' (all channels at
 *   this step) or 'fixed' (all channels at every kept step: the /stats span)
 * @param {{stats: Float32Array, c: number}} maps the decoded step
 * @param {number} sample
 * @param {number} channel
 * @param {number[]|null} fixed [lo, hi] from /stats, used by 'fixed'
 * @returns {number[]} [lo, hi]
 */
export function rangeFor(mode, maps, sample, channel, fixed) {
  if (mode === 'channel') {
    const base = (sample * maps.c + channel) * NSTATS;
    return [maps.stats[base], maps.stats[base + 1]];
  }
  if (mode === 'fixed' && fixed && Number.isFinite(fixed[0]) && Number.isFinite(fixed[1])) {
    return [fixed[0], fixed[1]];
  }
  if (mode === 'layer' || mode === 'fixed') return layerSpan(maps.stats, maps.c, sample);
  throw new Error(`unknown normalisation mode: ${mode}`);
}

/**
 * A range made symmetric around 0, as the diverging colormap needs: [-m, m], m = max |end|.
 * @param {number[]} range
 */
export function symmetric([lo, hi]) {
  const m = Math.max(Math.abs(lo), Math.abs(hi));
  return Number.isFinite(m) ? [-m, m] : [NaN, NaN];
}

/**
 * The LUT index 0..255 of a value in [lo, hi] (clamped). When the range is empty (a
 * constant map) every value gets `flat`: 0 (the low end), or 128 for a diverging map.
 */
export function colorIndex(v, lo, hi, flat = 0) {
  if (!(hi > lo)) return flat;
  const i = Math.round(((v - lo) / (hi - lo)) * 255);
  return i < 0 ? 0 : i > 255 ? 255 : i;
}

/**
 * For a uint8 map: the packed colour of each of the 256 codes, so painting is one lookup
 * per pixel. Code 255 (non-finite) gets `nonfinite`.
 * @param {number} mapLo the map's own min (what its codes are relative to)
 * @param {number} mapHi the map's own max
 * @param {number[]} range [lo, hi] to colour with
 * @param {Uint32Array} lut 256 packed RGBA colours
 * @param {number} nonfinite packed RGBA
 * @param {number} flat see colorIndex
 * @returns {Uint32Array} 256 packed colours
 */
export function codeColors(mapLo, mapHi, range, lut, nonfinite, flat = 0) {
  const out = new Uint32Array(256);
  for (let q = 0; q < 255; q++) out[q] = lut[colorIndex(dequantise(q, mapLo, mapHi), range[0], range[1], flat)];
  out[255] = nonfinite;
  return out;
}
