// The colormap tables of colormaps.js (generated data) as typed arrays. No DOM.

import { HEX, NONFINITE_RGB } from './colormaps.js';

const tables = new Map();

/**
 * The 256-entry RGB table of a colormap.
 * @param {string} name one of COLORMAPS
 * @returns {Uint8Array} 768 bytes, RGB per entry
 */
export function lut(name) {
  if (!Object.prototype.hasOwnProperty.call(HEX, name)) {
    throw new Error(`unknown colormap: ${name}`);
  }
  let table = tables.get(name);
  if (!table) {
    const hex = HEX[name];
    table = new Uint8Array(hex.length / 2);
    for (let i = 0; i < table.length; i++) table[i] = parseInt(hex.substr(2 * i, 2), 16);
    tables.set(name, table);
  }
  return table;
}

/** One opaque pixel as a little-endian uint32 (bytes R, G, B, A). */
export function packRGBA(r, g, b) {
  return ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0;
}

const packed = new Map();

/**
 * The table as 256 packed RGBA pixels for a little-endian Uint32Array view of ImageData
 * (shared: read it, never write to it).
 */
export function lutRGBA(name) {
  let out = packed.get(name);
  if (!out) {
    const rgb = lut(name);
    out = new Uint32Array(256);
    for (let i = 0; i < 256; i++) out[i] = packRGBA(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]);
    packed.set(name, out);
  }
  return out;
}

/** The colour of non-finite values, packed. */
export const NONFINITE_RGBA = packRGBA(...NONFINITE_RGB);
