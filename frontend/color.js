// How a value becomes a colour: the one colour rule of the tab, mirrored by
// tb_featmap/render.py. tests/color_cases.json holds the cases both test suites run.
// No DOM: Node tests import it.

import { dequantise } from './decode.js';
import { NONFINITE_RGBA, lutRGBA } from './luts.js';

/** Normalisation modes, as the menu lists them. */
export const MODES = {
  channel: 'per channel',
  layer: 'per layer',
  fixed: 'fixed (all steps)',
};

/** The colormap that difference mode draws with, whatever the menu says. */
export const DIFFERENCE_COLORMAP = 'diverging';

/**
 * The LUT index of a map whose range is empty (a constant map) or unknown: the middle
 * (white, zero) of the diverging colormap, the low end of the others.
 * @param {string} colormap
 */
export function flatIndex(colormap) {
  return colormap === 'diverging' ? 128 : 0;
}

/**
 * [min, max] over the finite entries of two lists, or [NaN, NaN] when there are none.
 * Entries may be strings: TensorBoard's JSON writes NaN as "NaN".
 */
export function spanOf(mins, maxs) {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < mins.length; i++) {
    const a = Number(mins[i]);
    const b = Number(maxs[i]);
    if (Number.isFinite(a) && a < lo) lo = a;
    if (Number.isFinite(b) && b > hi) hi = b;
  }
  return lo <= hi ? [lo, hi] : [NaN, NaN];
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
 * The [lo, hi] range of each map, as render.value_ranges gives it.
 * @param {string} mode 'channel' (each map its own min/max), 'layer' (all maps of the
 *   sample at this step) or 'fixed' (the layer over every kept step: `fixed`; the layer's
 *   span at this step until that is known)
 * @param {ArrayLike<number>} mins each map's min
 * @param {ArrayLike<number>} maxs each map's max
 * @param {{colormap: string, fixed?: number[]|null}} o
 * @returns {{lo: Float64Array, hi: Float64Array}}
 */
export function channelRanges(mode, mins, maxs, { colormap, fixed = null }) {
  if (!Object.prototype.hasOwnProperty.call(MODES, mode)) {
    throw new Error(`unknown normalisation mode: ${mode}`);
  }
  const lo = Float64Array.from(mins);
  const hi = Float64Array.from(maxs);
  if (mode !== 'channel') {
    const known = mode === 'fixed' && fixed
      && Number.isFinite(fixed[0]) && Number.isFinite(fixed[1]);
    const [a, b] = known ? fixed : spanOf(mins, maxs);
    lo.fill(a);
    hi.fill(b);
  }
  if (colormap === 'diverging') {
    for (let i = 0; i < lo.length; i++) [lo[i], hi[i]] = symmetric([lo[i], hi[i]]);
  }
  return { lo, hi };
}

/**
 * Ranges of differences d (this step minus the previous): symmetric, [-m, m], with m the
 * largest finite |d| of each map ('channel') or of the whole layer (the other modes).
 * @param {string} mode
 * @param {Float32Array[]} diffs one array per map
 * @returns {{lo: Float64Array, hi: Float64Array}}
 */
export function differenceRanges(mode, diffs) {
  const m = diffs.map((d) => {
    let top = 0;
    for (let i = 0; i < d.length; i++) {
      const a = Math.abs(d[i]);
      if (a > top && a !== Infinity) top = a; // NaN > top is false: skipped too
    }
    return top;
  });
  let layer = 0;
  for (const v of m) if (v > layer) layer = v;
  const top = mode === 'channel' ? m : m.map(() => layer);
  return { lo: Float64Array.from(top, (v) => -v), hi: Float64Array.from(top) };
}

/**
 * A scale shared by two grids (the compare view): per map, the lower low and the higher high.
 * @param {{lo: Float64Array, hi: Float64Array}} a
 * @param {{lo: Float64Array, hi: Float64Array}} b of the same length
 */
export function unionRanges(a, b) {
  const pick = (x, y, f) => (Number.isNaN(x) ? y : Number.isNaN(y) ? x : f(x, y));
  return {
    lo: a.lo.map((v, i) => pick(v, b.lo[i], Math.min)),
    hi: a.hi.map((v, i) => pick(v, b.hi[i], Math.max)),
  };
}

/** Two colourings on one scale: per map, the union of their ranges (see unionRanges). */
export function onSharedScale(a, b) {
  const ranges = unionRanges(a.ranges, b.ranges);
  return [a.withRanges(ranges), b.withRanges(ranges)];
}

/** This step minus the previous, one map. */
export function difference(a, b) {
  const d = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) d[i] = a[i] - b[i];
  return d;
}

// The LUT index of a finite value in a usable range [lo, hi], scale = 255 / (hi - lo):
// round((v - lo) * scale), halves up, clamped to 0..255. An empty or non-finite range
// gives the flat index instead (see flatIndex).
function indexAt(v, lo, scale) {
  const k = Math.round((v - lo) * scale);
  return k < 0 ? 0 : k > 255 ? 255 : k;
}

/**
 * Fills `out` with the colours of float values on [lo, hi]: `lut` (256 packed colours),
 * `nonfinite` for NaN and infinities, lut[flat] for all when the range is empty.
 */
export function colorValues(values, lo, hi, lut, nonfinite, flat, out) {
  const usable = hi > lo && Number.isFinite(hi - lo);
  const scale = usable ? 255 / (hi - lo) : 0;
  for (let i = 0; i < values.length; i++) {
    out[i] = colorOf(values[i], lo, scale, usable, lut, nonfinite, flat);
  }
  return out;
}

function colorOf(v, lo, scale, usable, lut, nonfinite, flat) {
  if (!Number.isFinite(v)) return nonfinite;
  return lut[usable ? indexAt(v, lo, scale) : flat];
}

/**
 * The colours of uint8 `codes` of a map with its own min/max mapLo/mapHi on [lo, hi] (as
 * colorValues colours the values they dequantise to), code by code. Code 255 is non-finite.
 */
export function codeValueColors(codes, mapLo, mapHi, lo, hi, lut, nonfinite, flat, out) {
  const usable = hi > lo && Number.isFinite(hi - lo);
  const scale = usable ? 255 / (hi - lo) : 0;
  for (let i = 0; i < codes.length; i++) {
    out[i] = colorOf(dequantise(codes[i], mapLo, mapHi), lo, scale, usable, lut, nonfinite, flat);
  }
  return out;
}

const ALL_CODES = Uint8Array.from({ length: 256 }, (_, q) => q);

/** The colour of each of the 256 codes (codeValueColors), so painting is a lookup a pixel. */
export function codeColors(mapLo, mapHi, lo, hi, lut, nonfinite, flat) {
  return codeValueColors(ALL_CODES, mapLo, mapHi, lo, hi, lut, nonfinite, flat,
    new Uint32Array(256));
}

/** Colours of one map from uint8 codes and a table from codeColors. */
export function colorCodes(codes, table, out) {
  for (let i = 0; i < codes.length; i++) out[i] = table[codes[i]];
  return out;
}

/**
 * What a colour bar says: its end labels (numbers, or words when each map has its own
 * range) and a caption naming the scale.
 * @param {object} o
 * @param {string} o.mode normalisation mode
 * @param {string} o.colormap the colormap drawn with
 * @param {boolean} o.diff difference mode
 * @param {{lo: Float64Array, hi: Float64Array}} o.ranges the ranges drawn with
 * @param {string} [o.scope] who shares the scale, e.g. 'this run' or 'both runs'
 * @param {(v: number) => string} o.format
 * @returns {{low: string, high: string, caption: string}}
 */
export function colorBarLabels({ mode, colormap, diff, ranges, scope = '', format }) {
  const of = scope ? ` (${scope})` : '';
  if (mode === 'channel') {
    if (diff) return { low: '−max', high: '+max', caption: `Δ, each map: ±its max |Δ|${of}` };
    const diverging = colormap === 'diverging';
    return {
      low: diverging ? '−max' : 'min',
      high: 'max',
      caption: (diverging ? 'each map: ±max |value|' : 'each map: its own min → max') + of,
    };
  }
  const lo = ranges.lo.length ? ranges.lo[0] : NaN;
  const hi = ranges.hi.length ? ranges.hi[0] : NaN;
  let caption = mode === 'fixed' ? 'all channels, every kept step' : 'all channels, this step';
  if (diff) caption = 'Δ, all channels, symmetric';
  return { low: format(lo), high: format(hi), caption: caption + of };
}

/**
 * How one grid of maps is coloured at the current settings: the colormap, each map's range
 * and the colours of each map, values or differences. The grid, the detail view and the
 * filmstrip all colour through it.
 */
export class Coloring {
  /**
   * @param {DecodedMaps} maps the step drawn
   * @param {number} sample
   * @param {object} o
   * @param {string} o.mode normalisation mode
   * @param {string} o.colormap the colormap chosen (difference mode draws DIFFERENCE_COLORMAP)
   * @param {boolean} [o.diff] difference mode
   * @param {DecodedMaps|null} [o.prev] the step before, for difference mode (values are
   *   drawn when it is missing or of another shape)
   * @param {number[]|null} [o.fixed] the layer's range over the kept steps, for 'fixed'
   */
  constructor(maps, sample, { mode, colormap, diff = false, prev = null, fixed = null }) {
    this.maps = maps;
    this.sample = sample;
    this.mode = mode;
    this.colormap = diff ? DIFFERENCE_COLORMAP : colormap;
    const same = prev && prev.c === maps.c && prev.h === maps.h && prev.w === maps.w;
    this.diffs = null;
    if (diff && same) {
      const s = Math.min(sample, prev.n - 1);
      this.diffs = Array.from({ length: maps.c },
        (_, c) => difference(maps.floats(sample, c), prev.floats(s, c)));
      this.ranges = differenceRanges(mode, this.diffs);
    } else {
      const mins = Float64Array.from({ length: maps.c }, (_, c) => maps.min(sample, c));
      const maxs = Float64Array.from({ length: maps.c }, (_, c) => maps.max(sample, c));
      this.ranges = channelRanges(mode, mins, maxs, { colormap: this.colormap, fixed });
    }
    this.rgba = lutRGBA(this.colormap);
    this.flat = flatIndex(this.colormap);
  }

  /** The same colouring on other ranges (a scale shared with another grid). */
  withRanges(ranges) {
    return Object.assign(Object.create(Coloring.prototype), this, { ranges });
  }

  /** The value drawn at a data pixel: a difference in difference mode. */
  valueAt(channel, y, x) {
    if (this.diffs) return this.diffs[channel][y * this.maps.w + x];
    return this.maps.valueAt(this.sample, channel, y, x);
  }

  /** Fills `out` (h * w packed RGBA) with the colours of one map. */
  tile(channel, out) {
    const lo = this.ranges.lo[channel];
    const hi = this.ranges.hi[channel];
    const { maps, sample, rgba, flat } = this;
    const paint = (values) => colorValues(values, lo, hi, rgba, NONFINITE_RGBA, flat, out);
    if (this.diffs) return paint(this.diffs[channel]);
    const codes = maps.codesOf(sample, channel);
    if (!codes) return paint(maps.floats(sample, channel));
    const mapLo = maps.min(sample, channel);
    const mapHi = maps.max(sample, channel);
    // A map of fewer pixels than codes (a linear layer's 1 x 1 features) is coloured value
    // by value: its 256-entry table would cost more than the map.
    if (codes.length < 256) {
      return codeValueColors(codes, mapLo, mapHi, lo, hi, rgba, NONFINITE_RGBA, flat, out);
    }
    return colorCodes(codes, codeColors(mapLo, mapHi, lo, hi, rgba, NONFINITE_RGBA, flat), out);
  }

  /** What its colour bar says; `scope` names who shares the scale. */
  labels(scope, format) {
    const { mode, colormap, ranges } = this;
    return colorBarLabels({ mode, colormap, diff: Boolean(this.diffs), ranges, scope, format });
  }
}

// --- Overlay on the input: a 1- or 3-channel layer drawn as the background ---------------

/**
 * The background a layer makes: 1 channel in gray, 3 channels as RGB, each value at
 * round((v - lo) * 255 / (hi - lo)) clamped to 0..255 on the span of all its channels
 * ([lo, hi] of the sample: "normalised over the layer"); 0 for a flat span or a non-finite
 * value. render.background_rgb is the same rule.
 * @param {DecodedMaps} maps with 1 or 3 channels
 * @param {number} sample
 * @returns {Uint32Array} h * w packed, opaque
 */
export function backgroundColors(maps, sample) {
  if (maps.c !== 1 && maps.c !== 3) throw new Error(`a background has 1 or 3 channels, not ${maps.c}`);
  const s = Math.min(sample, maps.n - 1);
  const mins = Array.from({ length: maps.c }, (_, c) => maps.min(s, c));
  const maxs = Array.from({ length: maps.c }, (_, c) => maps.max(s, c));
  const [lo, hi] = spanOf(mins, maxs);
  const usable = hi > lo && Number.isFinite(hi - lo);
  const scale = usable ? 255 / (hi - lo) : 0;
  const level = (v) => (usable && Number.isFinite(v) ? indexAt(v, lo, scale) : 0);
  const planes = Array.from({ length: maps.c }, (_, c) => maps.floats(s, c));
  const [r, g, b] = maps.c === 3 ? planes : [planes[0], planes[0], planes[0]];
  const out = new Uint32Array(maps.h * maps.w);
  for (let i = 0; i < out.length; i++) {
    out[i] = ((255 << 24) | (level(b[i]) << 16) | (level(g[i]) << 8) | level(r[i])) >>> 0;
  }
  return out;
}

/** The weight of the maps over the background, 0..256, from an opacity 0..1. */
export function overlayWeight(opacity) {
  return Math.round(Math.min(1, Math.max(0, opacity)) * 256);
}

/**
 * Colours scaled by weight/256, each of R, G, B as floor(v * weight / 256), alpha 0. An overlay
 * pixel is the sum of the map's colour scaled by the weight and the background's scaled by
 * 256 - weight, made opaque (see OPAQUE): no byte can carry into the next.
 * @param {Uint32Array} colors packed RGBA
 * @param {number} weight 0..256
 * @param {Uint32Array} [out] may be `colors`
 */
export function scaleColors(colors, weight, out = new Uint32Array(colors.length)) {
  for (let i = 0; i < colors.length; i++) {
    const v = colors[i];
    const r = ((v & 255) * weight) >> 8;
    const g = (((v >>> 8) & 255) * weight) >> 8;
    const b = (((v >>> 16) & 255) * weight) >> 8;
    out[i] = (b << 16) | (g << 8) | r;
  }
  return out;
}

/** The alpha byte an overlay pixel gets: scaled map colour + scaled background | OPAQUE. */
export const OPAQUE = 0xff000000;

/** The crosshair that marks the hovered location in every map. */
export const CROSSHAIR = '#00e5ff';
