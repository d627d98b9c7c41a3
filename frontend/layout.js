// Grid geometry and hit-testing, in canvas pixels. No DOM: Node tests import it.

import { depthOf } from './volume.js';

/**
 * Where the cells of a grid of maps go.
 * @param {object} o
 * @param {number} o.count number of maps
 * @param {number} o.mapW map width in data pixels
 * @param {number} o.mapH map height in data pixels
 * @param {number} o.cellSize canvas pixels of a cell's longer side
 * @param {number} o.maxWidth the width available
 * @param {number} [o.gap=2] canvas pixels between cells
 * @param {string} [o.kind='maps'] from viewKind: 'maps' (a grid of 2-D maps), 'rows' (1-D
 *   layers: each channel one row of the full width) or 'features' (linear layers: 1 x 1
 *   maps on a near-square grid)
 * @param {number} [o.scrollX=0] rows longer than maxWidth: the first value of the window shown
 * @returns {{count:number, cols:number, rows:number, cellW:number, cellH:number, gap:number,
 *   width:number, height:number, mapW:number, mapH:number, viewX:number, viewW:number}}
 *   viewX and viewW: the columns of every map a cell shows (all, 0 and mapW, but for rows
 *   longer than the panel, which show a window of them at one canvas pixel a value)
 */
export function gridLayout({
  count, mapW, mapH, cellSize, maxWidth, gap = 2, kind = 'maps', scrollX = 0,
}) {
  for (const [name, v] of Object.entries({ count, mapW, mapH, cellSize, maxWidth })) {
    if (!Number.isFinite(v) || v < (name === 'count' ? 0 : 1)) {
      throw new RangeError(`${name} must be positive, got ${v}`);
    }
  }
  if (kind === 'rows') return rowsLayout(count, mapW, mapH, maxWidth, scrollX);
  if (kind === 'features') return featuresLayout(count, mapW, mapH, cellSize, maxWidth);
  const longer = Math.max(mapW, mapH);
  // A 1 x L map (a 1-D layer) stays at least 4 pixels high.
  const cellW = Math.max(1, Math.round((cellSize * mapW) / longer));
  const cellH = Math.max(Math.min(4, cellSize), Math.round((cellSize * mapH) / longer));
  const cols = Math.max(1, Math.min(count, Math.floor((maxWidth + gap) / (cellW + gap))));
  const rows = count === 0 ? 0 : Math.ceil(count / cols);
  return {
    count, cols, rows, cellW, cellH, gap, mapW, mapH, viewX: 0, viewW: mapW,
    width: cols * cellW + (cols - 1) * gap,
    height: Math.max(0, rows * cellH + (rows - 1) * gap),
  };
}

/** The least height of a 1-D layer's rows, all together, and of one row (canvas pixels). */
export const ROWS_MIN_HEIGHT = 128;
export const ROW_MIN_HEIGHT = 4;
/** The tallest rows canvas drawn: Chromium draws nothing on a canvas much taller. */
export const MAX_CANVAS_HEIGHT = 32767;

/**
 * How a layer is drawn: 'features' for a linear layer (NF) or any 1 x 1 maps, 'rows' for
 * the 1 x L maps of NCL and token strips (NTD), else 'maps'.
 * @param {string|undefined} layout the header's layout
 * @param {number} mapH stored map height
 * @param {number} mapW stored map width
 * @returns {'maps'|'rows'|'features'}
 */
export function viewKind(layout, mapH, mapW) {
  if (layout === 'NF' || (mapH === 1 && mapW === 1)) return 'features';
  if (mapH === 1 && (layout === 'NCL' || layout === 'NTD')) return 'rows';
  return 'maps';
}

/**
 * One row per channel, as wide as the panel allows: every value whole pixels wide (an
 * integer zoom) when L fits, else one pixel a value in a window of the panel's width that
 * starts at value `scrollX` (clamped), so that no value is dropped and no canvas is wider
 * than the panel, however long L is.
 */
function rowsLayout(count, mapW, mapH, maxWidth, scrollX) {
  // More channels than 4-pixel rows fit under MAX_CANVAS_HEIGHT (about 6,500): thinner
  // rows, then no gaps, down to 1 pixel a channel (Top K or Channels show fewer).
  const gap = count * 2 - 1 <= MAX_CANVAS_HEIGHT ? 1 : 0;
  const panel = Math.floor(maxWidth);
  const fits = mapW <= panel;
  const cellW = fits ? mapW * Math.floor(panel / mapW) : panel;
  const viewW = fits ? mapW : cellW;
  const viewX = Math.min(Math.max(0, Math.round(Number(scrollX) || 0)), mapW - viewW);
  const rows = count;
  const readable = Math.max(ROW_MIN_HEIGHT,
    Math.ceil((ROWS_MIN_HEIGHT - Math.max(0, rows - 1) * gap) / Math.max(1, rows)));
  const tallest = Math.floor((MAX_CANVAS_HEIGHT + gap) / Math.max(1, rows)) - gap;
  const cellH = Math.max(1, Math.min(readable, tallest));
  return {
    count, cols: 1, rows, cellW, cellH, gap, mapW, mapH, viewX, viewW,
    width: cellW, height: Math.max(0, rows * cellH + (rows - 1) * gap),
  };
}

/** 1 x 1 maps on a near-square grid, cells of at least 4 pixels. */
function featuresLayout(count, mapW, mapH, cellSize, maxWidth) {
  const gap = 1;
  let cols = Math.max(1, Math.ceil(Math.sqrt(count)));
  const fit = Math.floor((maxWidth + gap) / cols) - gap;
  const cell = Math.max(ROW_MIN_HEIGHT, Math.min(cellSize, fit));
  cols = Math.max(1, Math.min(cols, Math.floor((maxWidth + gap) / (cell + gap))));
  const rows = count === 0 ? 0 : Math.ceil(count / cols);
  return {
    count, cols, rows, cellW: cell, cellH: cell, gap, mapW, mapH, viewX: 0, viewW: mapW,
    width: cols * cell + (cols - 1) * gap,
    height: Math.max(0, rows * cell + (rows - 1) * gap),
  };
}

/**
 * Where a hit is, in the words of its layer's kind: (channel, t) for 1-D layers, the
 * feature index for linear ones, (channel, x, y) for maps.
 * @param {string} kind from viewKind
 * @param {{channel:number, x:number, y:number}} hit
 * @param {number|null} [slice] a 3-D layer's depth slice: the words are (d, y, x)
 * @returns {string}
 */
export function hitWords(kind, hit, slice = null) {
  if (kind === 'rows') return `channel ${hit.channel} · t ${hit.x}`;
  if (kind === 'features') return `feature ${hit.channel}`;
  if (slice !== null) return `channel ${hit.channel} · d ${slice}, y ${hit.y}, x ${hit.x}`;
  return `channel ${hit.channel} · x ${hit.x}, y ${hit.y}`;
}

/**
 * Top-left corner of a slot (the slot-th map in display order).
 * @returns {{x:number, y:number}}
 */
export function slotOrigin(layout, slot) {
  const col = slot % layout.cols;
  const row = Math.floor(slot / layout.cols);
  return { x: col * (layout.cellW + layout.gap), y: row * (layout.cellH + layout.gap) };
}

/**
 * Which slot and which data pixel a canvas pixel falls on.
 * @param {object} layout from gridLayout
 * @param {number} px canvas x
 * @param {number} py canvas y
 * @returns {{slot:number, x:number, y:number}|null} null on a gap or outside
 */
export function hitTest(layout, px, py) {
  if (px < 0 || py < 0) return null;
  const col = Math.floor(px / (layout.cellW + layout.gap));
  const row = Math.floor(py / (layout.cellH + layout.gap));
  const inX = px - col * (layout.cellW + layout.gap);
  const inY = py - row * (layout.cellH + layout.gap);
  if (col >= layout.cols || inX >= layout.cellW || inY >= layout.cellH) return null;
  const slot = row * layout.cols + col;
  if (slot >= layout.count) return null;
  const { viewX, viewW } = layout; // the columns the cell shows
  return {
    slot,
    x: viewX + Math.min(viewW - 1, Math.floor((inX * viewW) / layout.cellW)),
    y: Math.min(layout.mapH - 1, Math.floor((inY * layout.mapH) / layout.cellH)),
  };
}

/**
 * Evenly spaced indices into a list of `length`, at most `limit` of them, first and last kept.
 * @returns {number[]}
 */
export function sampleIndices(length, limit) {
  if (length <= limit) return Array.from({ length }, (_, i) => i);
  if (limit <= 1) return [length - 1];
  const out = [];
  for (let i = 0; i < limit; i++) out.push(Math.round((i * (length - 1)) / (limit - 1)));
  return [...new Set(out)];
}

/**
 * Channel display order.
 * @param {number} channels
 * @param {string} by 'index', 'mean', 'std' or 'sparsity' (zero fraction); stats sort descending
 * @param {(c:number, field:string) => number} stat a channel's statistic
 * @returns {number[]}
 */
export function channelOrder(channels, by, stat) {
  const order = Array.from({ length: channels }, (_, i) => i);
  if (by === 'index') return order;
  const field = { mean: 'mean', std: 'std', sparsity: 'zero_fraction' }[by];
  if (!field) throw new Error(`unknown sort: ${by}`);
  const key = order.map((c) => {
    const v = stat(c, field);
    return Number.isNaN(v) ? -Infinity : v;
  });
  return order.sort((a, b) => key[b] - key[a] || a - b);
}

/**
 * A layer's size as its users think of it, from its `tags` description: 1-D layers by
 * channels and length, linear ones by features, 3-D ones with their depth, token layers
 * by dimensions and patch grid (saying a dropped class token).
 * @param {{layout?: string, shape?: number[], stored: number[], dropped?: object}} info
 * @returns {string}
 */
export function layerLabel(info) {
  const [, c, h, w] = info.stored;
  const tokens = (info.dropped && info.dropped.tokens) || 0;
  switch (info.layout) {
    case 'NCL':
      return `${c} channels × ${w} t`;
    case 'NF':
      return `${c} features`;
    case 'NCDHW': {
      const depth = depthOf(info); // 1: drawn as 2-D maps, and labelled so
      return depth > 1 ? `${c}×D${depth}×${h / depth}×${w}` : `${c}×${h}×${w}`;
    }
    case 'NTD': {
      const grid = h > 1 ? `${h}×${w} patches` : `${w} tokens`;
      const drop = tokens ? `, ${tokens} class token dropped` : '';
      return `${c} dims · ${grid}${drop}`;
    }
    default:
      return `${c}×${h}×${w}`;
  }
}
