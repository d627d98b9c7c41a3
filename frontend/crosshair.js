// The shared crosshair: a transparent canvas over a grid that marks one relative location
// (the hovered one) in every map of that grid.

import { CROSSHAIR } from './color.js';
import { slotOrigin } from './layout.js';
import { el } from './views.js';

export class Crosshair {
  /**
   * @param {HTMLCanvasElement} under the grid canvas it lies over
   * @param {string} id the crosshair canvas's id
   */
  constructor(under, id) {
    this.under = under;
    this.canvas = el('canvas', { id, class: 'fm-crosshair', width: 1, height: 1 });
    this.node = el('div', { class: 'fm-stack' }, under, this.canvas);
    this.layout = null;
    this.marked = null; // what is marked, kept over repaints while the mouse stays
  }

  /** The grid was painted with `layout`: the mark is drawn again on it. */
  reset(layout) {
    this.layout = layout;
    this.canvas.width = this.under.width;
    this.canvas.height = this.under.height;
    if (this.marked) this.mark(this.marked);
  }

  clear() {
    this.marked = null;
    if (this.layout) this.canvas.getContext('2d').clearRect(0, 0, this.canvas.width, this.canvas.height);
  }

  /**
   * Marks data pixel (x, y) of a mapW x mapH map, at the same relative place, in every map.
   * @param {{x: number, y: number, mapW: number, mapH: number}} at
   */
  mark({ x, y, mapW, mapH }) {
    const layout = this.layout;
    if (!layout) return;
    this.clear();
    this.marked = { x, y, mapW, mapH };
    const ctx = this.canvas.getContext('2d');
    ctx.fillStyle = CROSSHAIR;
    // The centre of the pixel, as a fraction of the map, in this grid's cells.
    const fx = (x + 0.5) / mapW;
    const fy = (y + 0.5) / mapH;
    const arm = Math.max(2, Math.floor(Math.min(layout.cellW, layout.cellH) / 6));
    for (let slot = 0; slot < layout.count; slot++) {
      const o = slotOrigin(layout, slot);
      const cx = o.x + Math.floor(fx * layout.cellW);
      const cy = o.y + Math.floor(fy * layout.cellH);
      const left = Math.max(o.x, cx - arm);
      const top = Math.max(o.y, cy - arm);
      ctx.fillRect(left, cy, Math.min(o.x + layout.cellW, cx + arm + 1) - left, 1);
      ctx.fillRect(cx, top, 1, Math.min(o.y + layout.cellH, cy + arm + 1) - top);
    }
  }
}
