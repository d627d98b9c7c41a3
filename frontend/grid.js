// The grid: the panels of maps (and the compare run's), their markers, colour bars and
// summary, and the hover readout. Click a map to pick it.

import { scaleColors } from './color.js';
import { Crosshair } from './crosshair.js';
import { lut, packRGBA } from './luts.js';
import {
  gridLayout, hitTest, hitWords, slotOrigin, viewKind,
} from './layout.js';
import { paintGrid } from './paint.js';
import { colorBar, el, formatValue } from './views.js';

const GAP_RGBA = packRGBA(200, 200, 200);
const HOVER_HINT = 'Hover a map to read its values; click one to enlarge it.';
const DEAD = '#e53935';
const PICKED = '#ff9800';

/**
 * A panel: a title, a canvas, and under it an optional note and colour bar. Over the canvas,
 * for 1-D rows longer than the panel, a scroll bar that moves the window of values shown.
 */
function panel(id, titleId) {
  const title = el('div', { class: 'fm-panel-title', id: titleId });
  const canvas = el('canvas', { id, class: 'fm-grid', width: 1, height: 1 });
  const cross = new Crosshair(canvas, `${id}-cross`);
  const note = el('div', { class: 'fm-muted fm-scale-note', id: `${id}-scale` });
  const bar = el('div', { class: 'fm-colorbar-slot' });
  const span = el('div', { class: 'fm-hscroll-span' });
  const scroll = el('div', { class: 'fm-hscroll', id: `${id}-scroll` }, span);
  const caption = el('div', { class: 'fm-muted fm-scale-note', id: `${id}-window` });
  const sideways = el('div', { hidden: true }, caption, scroll);
  const node = el('div', { class: 'fm-panel' }, title, sideways, cross.node, note, bar);
  // barAt: the window the scroll bar was last moved to (showWindow)
  return { title, canvas, cross, note, bar, node, sideways, scroll, span, caption, barAt: null };
}

/** A colour bar for a Coloring. */
function barOf(coloring, scope, id) {
  const { low, high, caption } = coloring.labels(scope, formatValue);
  return colorBar(lut(coloring.colormap), low, high, caption, id);
}

/**
 * Paints `coloring`'s maps in `order` into a canvas as a layer of `kind` is drawn (see
 * layout.viewKind), from value `scrollX` on for long rows, over `background` when given
 * (see Overlay.background); returns the layout.
 */
function paintCanvas(canvas, coloring, order, size, maxWidth, kind, scrollX, background = null) {
  const { maps } = coloring;
  const layout = gridLayout({
    count: order.length, mapW: maps.w, mapH: maps.h, cellSize: size, maxWidth, kind, scrollX,
  });
  if (canvas.width !== layout.width || canvas.height !== layout.height) {
    canvas.width = layout.width;
    canvas.height = layout.height;
  }
  const ctx = canvas.getContext('2d');
  // One ImageData per canvas size, reused while scrubbing (no allocation per step).
  let image = canvas.fmImage;
  if (!image || image.width !== layout.width || image.height !== layout.height) {
    image = ctx.createImageData(layout.width, layout.height);
    canvas.fmImage = image;
  }
  const pixels = new Uint32Array(image.data.buffer);
  const tile = background
    ? (slot, out) => scaleColors(coloring.tile(order[slot], out), background.weight, out)
    : (slot, out) => coloring.tile(order[slot], out);
  paintGrid(pixels, layout, tile, GAP_RGBA, background);
  ctx.putImageData(image, 0, 0);
  return layout;
}

export class Grid {
  /**
   * @param {object} on callbacks
   * @param {(channel: number) => void} on.pick a map was clicked
   */
  constructor(on) {
    this.main = panel('fm-grid', 'fm-title');
    this.other = panel('fm-grid-compare', 'fm-compare-title');
    this.other.node.hidden = true;
    this.barSlot = el('div', { class: 'fm-colorbar-slot' });
    this.summary = el('div', { id: 'fm-summary', class: 'fm-summary' });
    this.hover = el('div', { id: 'fm-hover', class: 'fm-hover', text: HOVER_HINT });
    const bar = el('div', { class: 'fm-infobar' }, this.barSlot, this.summary);
    this.info = el('div', {}, bar, this.hover);
    this.panels = el('div', { class: 'fm-panels' }, this.main.node, this.other.node);
    this.current = null; // what the main grid shows: {coloring, layout, order}
    this.drawn = null; // draw()'s argument, drawn again when long rows scroll
    this.scrollX = 0; // long rows: the first value shown
    this.pointer = null; // the last mouse move over the main grid, while it is there
    const canvas = this.main.canvas;
    canvas.addEventListener('mousemove', (e) => {
      this.pointer = e;
      this.onHover(e);
    });
    canvas.addEventListener('mouseleave', () => {
      this.pointer = null;
      this.hover.textContent = HOVER_HINT;
      this.unmark();
    });
    for (const where of [this.main, this.other]) {
      where.scroll.addEventListener('scroll', () => this.scrolled(where));
      // sideways wheel (a trackpad, or shift + wheel) over the rows scrolls them too
      where.canvas.addEventListener('wheel', (e) => {
        const delta = e.deltaX || (e.shiftKey ? e.deltaY : 0);
        if (where.sideways.hidden || !delta) return;
        e.preventDefault();
        where.scroll.scrollLeft += delta;
      }, { passive: false });
    }
    const compare = this.other.canvas;
    compare.addEventListener('mousemove', (e) => this.mark(this.locate(e, this.other)));
    compare.addEventListener('mouseleave', () => this.unmark());
    canvas.addEventListener('click', (e) => {
      const hit = this.locate(e);
      if (hit) on.pick(hit.channel);
    });
  }

  /**
   * Draws one step, and beside it the compare run's.
   * @param {object} o
   * @param {Coloring} o.coloring the main grid's colouring
   * @param {string} o.title
   * @param {{coloring: Coloring|null, title: string, shared: boolean}|null} o.compare
   * @param {{size: number}} o.settings
   * @param {number[]} o.order the channels shown, in display order
   * @param {object|null} o.background drawn under the main grid's maps (Overlay.background)
   * @param {string} [o.layout] the layer's layout (NCHW, NCL, NF, ...): how it is drawn
   * @param {number} o.width the width available
   * @param {boolean[]|null} o.deadAll from /stats: channels zero at every kept step
   * @param {number|null} o.selected the channel shown in the detail view
   */
  draw(drawn) {
    const {
      coloring, title, compare, settings, order, background, width, deadAll, selected,
      layout: name,
    } = drawn;
    const { maps, sample } = coloring;
    const kind = viewKind(name, maps.h, maps.w);
    if (!this.current || this.current.layout.mapW !== maps.w) this.scrollX = 0;
    this.drawn = drawn;
    const panelWidth = compare && compare.coloring ? Math.floor((width - 16) / 2) : width;
    const layout = paintCanvas(this.main.canvas, coloring, order, settings.size, panelWidth,
      kind, this.scrollX, background);
    this.main.cross.reset(layout);
    this.showWindow(this.main, layout);
    this.drawMarkers(layout, order, coloring, deadAll, selected);
    const slice = maps.depth > 1 ? maps.d : null; // a 3-D layer's depth slice
    this.current = { coloring, layout, order, kind, slice };
    this.main.title.textContent = title;
    this.other.node.hidden = !compare;
    let scope = '';
    if (compare) {
      const other = this.other;
      other.title.textContent = compare.title;
      other.bar.replaceChildren();
      if (compare.coloring) {
        const theirs = paintCanvas(other.canvas, compare.coloring, order, settings.size,
          panelWidth, kind, this.scrollX);
        other.cross.reset(theirs);
        this.showWindow(other, theirs);
        scope = compare.shared ? 'both runs' : 'this run';
        other.note.textContent = compare.shared
          ? 'Scale: shared with the run beside it (the colour bar above).'
          : 'Scale: its own (the colour bar below).';
        if (!compare.shared) {
          other.bar.replaceChildren(barOf(compare.coloring, 'this run', 'fm-colorbar-compare'));
        }
      } else {
        other.canvas.width = 1;
        other.cross.reset(null);
        other.sideways.hidden = true;
        other.note.textContent = '';
      }
    }
    this.barSlot.replaceChildren(barOf(coloring, scope));
    let deadNow = 0;
    for (let c = 0; c < maps.c; c++) if (maps.stat(sample, c, 'zero_fraction') === 1) deadNow++;
    const channels = `${maps.c} ${maps.c === 1 ? 'channel' : 'channels'} of ${maps.h}×${maps.w}`;
    const parts = [order.length === maps.c ? channels : `showing ${order.length} of ${channels}`];
    parts.push(`${deadNow} zero at this step ◥`);
    if (deadAll) {
      parts.push(`${deadAll.filter((d) => d === true).length} dead at every kept step ▢`);
    }
    this.summary.textContent = parts.join(' · ');
  }

  /**
   * Long rows: the scroll bar over a panel's canvas spans the whole length (one CSS pixel a
   * value) and stands at the window shown, which the caption states; else it is hidden.
   */
  showWindow(where, layout) {
    const long = layout.viewW < layout.mapW;
    where.sideways.hidden = !long;
    if (!long) {
      where.barAt = null;
      return;
    }
    where.scroll.style.width = `${layout.cellW}px`;
    where.span.style.width = `${layout.mapW}px`;
    const { viewX, viewW, mapW } = layout;
    // Move the bar only when the window moved: a repaint of the same window (statistics
    // arriving, a new step) must not undo a scroll whose event has not been handled yet.
    if (where.barAt !== viewX) {
      where.scroll.scrollLeft = viewX;
      where.barAt = viewX;
    }
    where.caption.textContent = `t ${viewX}–${viewX + viewW - 1} of ${mapW} (one pixel a value):`
      + ' scroll sideways for the rest';
  }

  /** A panel's long rows were scrolled: both grids draw that window, the readout follows. */
  scrolled(where) {
    const shown = where.cross.layout;
    if (!this.drawn || !shown || shown.viewW >= shown.mapW) return;
    this.scrollX = Math.round(where.scroll.scrollLeft);
    if (Math.min(this.scrollX, shown.mapW - shown.viewW) === shown.viewX) return;
    this.draw(this.drawn);
    if (this.pointer) this.onHover(this.pointer);
  }

  drawMarkers(layout, order, coloring, deadAll, selected) {
    const { maps, sample } = coloring;
    const ctx = this.main.canvas.getContext('2d');
    ctx.save();
    ctx.lineWidth = 2;
    for (let slot = 0; slot < order.length; slot++) {
      const c = order[slot];
      const deadNow = maps.stat(sample, c, 'zero_fraction') === 1;
      const deadEver = Boolean(deadAll) && deadAll[c] === true;
      if (!deadNow && !deadEver && c !== selected) continue;
      const { x, y } = slotOrigin(layout, slot);
      if (deadEver) {
        ctx.strokeStyle = DEAD;
        ctx.strokeRect(x + 1, y + 1, layout.cellW - 2, layout.cellH - 2);
      }
      if (deadNow) {
        const s = Math.max(4, Math.min(12, Math.floor(Math.min(layout.cellW, layout.cellH) / 3)));
        ctx.fillStyle = DEAD;
        ctx.beginPath();
        ctx.moveTo(x + layout.cellW - s, y);
        ctx.lineTo(x + layout.cellW, y);
        ctx.lineTo(x + layout.cellW, y + s);
        ctx.closePath();
        ctx.fill();
      }
      if (c === selected) {
        ctx.strokeStyle = PICKED;
        ctx.strokeRect(x + 1, y + 1, layout.cellW - 2, layout.cellH - 2);
      }
    }
    ctx.restore();
  }

  /** The map and data pixel under the mouse in a panel (default: the main grid), or null. */
  locate(event, where = this.main) {
    const layout = where.cross.layout;
    if (!this.current || !layout) return null;
    const canvas = where.canvas;
    const rect = canvas.getBoundingClientRect();
    const px = ((event.clientX - rect.left) * canvas.width) / rect.width;
    const py = ((event.clientY - rect.top) * canvas.height) / rect.height;
    const hit = hitTest(layout, Math.floor(px), Math.floor(py));
    return hit && { ...hit, channel: this.current.order[hit.slot] };
  }

  /**
   * Marks a hovered location in every map of both grids (or clears the marks: null); in
   * long rows, at the value hovered if the window shows it. A linear layer's 1 x 1 maps
   * have no location to mark.
   */
  mark(hit) {
    if (!hit || this.current.kind === 'features') return this.unmark();
    const { w: mapW, h: mapH } = this.current.coloring.maps;
    for (const where of [this.main, this.other]) {
      const shown = where.cross.layout;
      if (shown && shown.viewW < shown.mapW) {
        const x = hit.x - shown.viewX;
        if (x >= 0 && x < shown.viewW) where.cross.mark({ x, y: hit.y, mapW: shown.viewW, mapH });
        else where.cross.clear();
      } else {
        where.cross.mark({ x: hit.x, y: hit.y, mapW, mapH });
      }
    }
    return undefined;
  }

  unmark() {
    this.main.cross.clear();
    this.other.cross.clear();
  }

  onHover(event) {
    const hit = this.locate(event);
    this.mark(hit);
    if (!hit) return;
    const { coloring } = this.current;
    const diff = Boolean(coloring.diffs);
    const value = coloring.valueAt(hit.channel, hit.y, hit.x);
    const text = Number.isNaN(value) ? 'non-finite' : String(Number(value.toPrecision(7)));
    const where = hitWords(this.current.kind, hit, this.current.slice);
    this.hover.textContent = `${where} · ${diff ? 'Δ ' : ''}${text}`;
    Object.assign(this.hover.dataset, {
      channel: String(hit.channel), x: String(hit.x), y: String(hit.y),
      value: String(value), diff: diff ? '1' : '0',
      d: this.current.slice === null ? '' : String(this.current.slice),
    });
  }
}
