// Painting a grid of maps into a packed-RGBA pixel buffer (an ImageData's Uint32Array view).
// No DOM: Node tests import it.

import { OPAQUE } from './color.js';
import { slotOrigin } from './layout.js';

/**
 * Paints every slot of a grid, nearest-neighbour scaled to the cell size: each cell shows
 * columns viewX .. viewX + viewW - 1 of its map (all of them but in long 1-D rows).
 * @param {Uint32Array} pixels layout.width * layout.height, row-major
 * @param {object} layout from layout.gridLayout
 * @param {(slot:number, out:Uint32Array) => void} tileColors fills one map's mapW * mapH colours
 * @param {number} [gapColor=0] packed colour of the gaps between cells (0: transparent);
 *   the empty slots after the last map stay transparent
 * @param {{colors: Uint32Array, w: number, h: number}|null} [background] an overlay: colours
 *   (scaled, see color.scaleColors) of a w x h background stretched over every cell, added to
 *   the tiles' colours (which tileColors then gives scaled too)
 */
export function paintGrid(pixels, layout, tileColors, gapColor = 0, background = null) {
  const { cellW, cellH, mapW, mapH, width, viewX, viewW } = layout;
  if (gapColor) {
    pixels.fill(gapColor);
    const step = cellW + layout.gap;
    for (let slot = layout.count; slot < layout.cols * layout.rows; slot++) {
      const { x, y } = slotOrigin(layout, slot);
      for (let row = Math.max(0, y - layout.gap); row < y + cellH; row++) {
        pixels.fill(0, row * width + x - layout.gap, row * width + Math.min(width, x + step));
      }
    }
  }
  const xmap = new Int32Array(cellW);
  for (let x = 0; x < cellW; x++) xmap[x] = viewX + Math.floor((x * viewW) / cellW);
  const tile = new Uint32Array(mapW * mapH);
  const under = background && stretch(background, layout);
  for (let slot = 0; slot < layout.count; slot++) {
    tileColors(slot, tile);
    const { x: ox, y: oy } = slotOrigin(layout, slot);
    if (under) {
      for (let y = 0; y < cellH; y++) {
        const src = Math.floor((y * mapH) / cellH) * mapW;
        let dst = (oy + y) * width + ox;
        const row = y * cellW;
        for (let x = 0; x < cellW; x++) pixels[dst++] = (tile[src + xmap[x]] + under[row + x]) | OPAQUE;
      }
      continue;
    }
    let previous = -1;
    for (let y = 0; y < cellH; y++) {
      const src = Math.floor((y * mapH) / cellH) * mapW;
      const start = (oy + y) * width + ox;
      if (src === previous) {
        // the same map row as the canvas row above: copy it
        pixels.copyWithin(start, start - width, start - width + cellW);
        continue;
      }
      previous = src;
      let dst = start;
      for (let x = 0; x < cellW; x++) pixels[dst++] = tile[src + xmap[x]];
    }
  }
  return pixels;
}

/**
 * A background's colours resampled (nearest) to cellW x cellH: stretched over the whole
 * map, the part under the columns a cell shows (integer arithmetic: exact at every edge).
 */
function stretch({ colors, w, h }, { cellW, cellH, mapW, viewX, viewW }) {
  const out = new Uint32Array(cellW * cellH);
  const xs = new Int32Array(cellW);
  for (let x = 0; x < cellW; x++) {
    xs[x] = Math.floor(((viewX * cellW + x * viewW) * w) / (cellW * mapW));
  }
  for (let y = 0; y < cellH; y++) {
    const src = Math.floor((y * h) / cellH) * w;
    for (let x = 0; x < cellW; x++) out[y * cellW + x] = colors[src + xs[x]];
  }
  return out;
}
