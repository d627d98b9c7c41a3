// Grid geometry and hit-testing, in canvas pixels. No DOM: Node tests import it.

/**
 * Where the cells of a grid of maps go.
 * @param {object} o
 * @param {number} o.count number of maps
 * @param {number} o.mapW map width in data pixels
 * @param {number} o.mapH map height in data pixels
 * @param {number} o.cellSize canvas pixels of a cell's longer side
 * @param {number} o.maxWidth the width available
 * @param {number} [o.gap=2] canvas pixels between cells
 * @returns {{count:number, cols:number, rows:number, cellW:number, cellH:number, gap:number,
 *   width:number, height:number, mapW:number, mapH:number}}
 */
export function gridLayout({ count, mapW, mapH, cellSize, maxWidth, gap = 2 }) {
  for (const [name, v] of Object.entries({ count, mapW, mapH, cellSize, maxWidth })) {
    if (!Number.isFinite(v) || v < (name === 'count' ? 0 : 1)) {
      throw new RangeError(`${name} must be positive, got ${v}`);
    }
  }
  const longer = Math.max(mapW, mapH);
  // A 1 x L map (a 1-D layer) stays at least 4 pixels high.
  const cellW = Math.max(1, Math.round((cellSize * mapW) / longer));
  const cellH = Math.max(Math.min(4, cellSize), Math.round((cellSize * mapH) / longer));
  const cols = Math.max(1, Math.min(count, Math.floor((maxWidth + gap) / (cellW + gap))));
  const rows = count === 0 ? 0 : Math.ceil(count / cols);
  return {
    count, cols, rows, cellW, cellH, gap, mapW, mapH,
    width: cols * cellW + (cols - 1) * gap,
    height: Math.max(0, rows * cellH + (rows - 1) * gap),
  };
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
  return {
    slot,
    x: Math.min(layout.mapW - 1, Math.floor((inX * layout.mapW) / layout.cellW)),
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
