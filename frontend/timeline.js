// The timeline, under the grid: a heat strip of one statistic of every channel (rows, in the
// grid's order) at every kept step (columns), with its own colour bar. It marks the step
// shown and each channel's first step of being dead; click a cell to go to that step and
// open that channel. Colours come from color.js's rule.

import { colorValues, flatIndex, spanOf, symmetric } from './color.js';
import { STAT_FIELDS } from './decode.js';
import { NONFINITE_RGBA, lut, lutRGBA } from './luts.js';
import { colorBar, el, field, formatValue, setOptions } from './views.js';

/** Rows drawn at most; more channels are binned (each row the mean of a few channels). */
export const MAX_ROWS = 1024;
const DEAD = '#e53935';
const CURRENT = '#ff9800';
const HOVER_HINT = 'Hover the timeline to read a value; click a cell to open that step and channel.';

/**
 * Each channel's first kept step of being dead: the index of the first step from which its
 * zero fraction is 1 at every later kept step (unreadable steps, NaN, are passed over),
 * or -1 when it is alive at the newest step.
 * @param {{rows: number, cols: number, data: Float32Array}} zero the zero_fraction series
 * @returns {Int32Array} per channel
 */
export function deadOnsets(zero) {
  const { rows, cols, data } = zero;
  const out = new Int32Array(cols).fill(-1);
  for (let c = 0; c < cols; c++) {
    for (let s = rows - 1; s >= 0; s--) {
      const v = data[s * cols + c];
      if (v === 1) out[c] = s;
      else if (!Number.isNaN(v)) break;
    }
  }
  return out;
}

/**
 * The strip's rows: channels in `order`, in bins of `bin` when there are more than
 * MAX_ROWS, and the values of each row over the steps (a bin's mean of finite values).
 * @returns {{bin: number, rows: number[][], values: Float32Array}} values [rows, steps]
 */
export function stripRows(series, order, maxRows = MAX_ROWS) {
  const { rows: steps, cols, data } = series;
  const bin = Math.max(1, Math.ceil(order.length / maxRows));
  const rows = [];
  for (let i = 0; i < order.length; i += bin) rows.push(order.slice(i, i + bin));
  const values = new Float32Array(rows.length * steps);
  rows.forEach((channels, r) => {
    for (let s = 0; s < steps; s++) {
      let sum = 0;
      let count = 0;
      for (const c of channels) {
        const v = data[s * cols + c];
        if (Number.isFinite(v)) { sum += v; count++; }
      }
      values[r * steps + s] = count ? sum / count : NaN;
    }
  });
  return { bin, rows, values };
}

export class Timeline {
  /**
   * @param {object} on callbacks
   * @param {() => void} on.stat another statistic was chosen
   * @param {(index: number, channel: number) => void} on.open a cell was clicked: kept step
   *   `index`, channel `channel`
   */
  constructor(on) {
    this.on = on;
    this.stat = el('select', { id: 'fm-timeline-stat' });
    setOptions(this.stat, STAT_FIELDS.map((s) => ({ value: s, text: s })), 'std');
    this.stat.addEventListener('change', () => on.stat());
    this.note = el('span', { id: 'fm-timeline-note', class: 'fm-muted' });
    this.barSlot = el('div', { class: 'fm-colorbar-slot' });
    this.canvas = el('canvas', { id: 'fm-timeline', class: 'fm-timeline', width: 1, height: 1 });
    this.hover = el('div', { id: 'fm-timeline-hover', class: 'fm-hover', text: HOVER_HINT });
    this.base = document.createElement('canvas'); // the strip without marks, 1 px per value
    this.node = el('div', { class: 'fm-timeline-panel', id: 'fm-timeline-panel', hidden: true },
      el('div', { class: 'fm-toolbar' },
        el('span', { class: 'fm-panel-title', text: 'Timeline' }),
        field('Statistic', this.stat), this.barSlot, this.note),
      el('div', { class: 'fm-timeline-scroll' }, this.canvas),
      this.hover);
    this.shown = null; // {series, strip, onsets, index, cellW, cellH, stat}
    this.canvas.addEventListener('mousemove', (e) => this.onHover(e));
    this.canvas.addEventListener('mouseleave', () => { this.hover.textContent = HOVER_HINT; });
    this.canvas.addEventListener('click', (e) => {
      const hit = this.locate(e);
      if (hit) on.open(hit.index, hit.rowChannels[0]);
    });
  }

  /** The statistic chosen. */
  selected() {
    return this.stat.value;
  }

  hide() {
    this.node.hidden = true;
    this.shown = null;
  }

  /**
   * Paints the strip of a series (rebuilt only when the series, order or colormap change).
   * @param {object} o
   * @param {{rows: number, cols: number, data: Float32Array}} o.series [steps, channels]
   * @param {{data: Float32Array}|null} o.zero the zero_fraction series, for dead onsets
   * @param {number[]} o.order the grid's channel order
   * @param {number} o.index the kept step shown
   * @param {string} o.colormap
   * @param {number} o.width the width available, in pixels
   * @param {(i: number) => number} o.stepOf the step number of kept step i
   */
  draw({ series, zero, order, index, colormap, width, stepOf }) {
    this.node.hidden = false;
    const old = this.shown;
    const same = old && old.series === series && old.zero === zero && old.colormap === colormap
      && old.order.length === order.length && old.order.every((c, i) => c === order[i]);
    if (!same) this.build({ series, zero, order, colormap, width });
    Object.assign(this.shown, { index, stepOf });
    this.paintMarks();
  }

  build({ series, zero, order, colormap, width }) {
    const strip = stripRows(series, order);
    const steps = series.rows;
    const nrows = strip.rows.length;
    let [lo, hi] = spanOf(strip.values, strip.values);
    if (colormap === 'diverging') [lo, hi] = symmetric([lo, hi]);
    this.base.width = Math.max(1, steps);
    this.base.height = Math.max(1, nrows);
    const ctx = this.base.getContext('2d');
    const image = ctx.createImageData(this.base.width, this.base.height);
    colorValues(strip.values, lo, hi, lutRGBA(colormap), NONFINITE_RGBA, flatIndex(colormap),
      new Uint32Array(image.data.buffer));
    ctx.putImageData(image, 0, 0);
    const cellW = Math.max(1, Math.floor(width / Math.max(1, steps)));
    const cellH = Math.max(2, Math.min(12, Math.floor(360 / Math.max(1, nrows))));
    this.canvas.width = steps * cellW;
    this.canvas.height = nrows * cellH;
    const onsets = zero ? deadOnsets(zero) : null;
    this.shown = { series, zero, order, colormap, strip, onsets, cellW, cellH, lo, hi };
    const stat = this.stat.value;
    this.barSlot.replaceChildren(colorBar(lut(colormap), formatValue(lo), formatValue(hi),
      `${stat}, all channels, every kept step`, 'fm-timeline-colorbar'));
    const notes = [`${order.length} channels × ${steps} kept steps`];
    if (strip.bin > 1) notes.push(`each row is the mean of ${strip.bin} channels`);
    if (nrows * cellH > 360) notes.push('scroll to see every row');
    if (steps * cellW > width) notes.push('scroll sideways to see every step');
    if (onsets) notes.push('red: the step a channel died (zero at every later kept step)');
    this.note.textContent = notes.join(' · ');
  }

  /** The strip, then the marks: each dead channel's onset, and the step shown. */
  paintMarks() {
    const { strip, onsets, cellW, cellH, index } = this.shown;
    const ctx = this.canvas.getContext('2d');
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.base, 0, 0, this.canvas.width, this.canvas.height);
    if (onsets) {
      ctx.fillStyle = DEAD;
      const w = Math.max(3, cellW);
      strip.rows.forEach((channels, r) => {
        // A bin is marked where all its channels are dead, at the last of their onsets.
        let onset = -1;
        for (const c of channels) {
          if (onsets[c] < 0) return;
          onset = Math.max(onset, onsets[c]);
        }
        ctx.fillRect(onset * cellW, r * cellH, w, cellH);
      });
    }
    ctx.fillStyle = CURRENT;
    ctx.fillRect(index * cellW + Math.floor(cellW / 2) - 1, 0, 2, this.canvas.height);
  }

  /** The kept step and row under the mouse, or null. */
  locate(event) {
    if (!this.shown) return null;
    const rect = this.canvas.getBoundingClientRect();
    const px = ((event.clientX - rect.left) * this.canvas.width) / rect.width;
    const py = ((event.clientY - rect.top) * this.canvas.height) / rect.height;
    const index = Math.floor(px / this.shown.cellW);
    const row = Math.floor(py / this.shown.cellH);
    const { strip, series } = this.shown;
    if (index < 0 || index >= series.rows || row < 0 || row >= strip.rows.length) return null;
    return { index, row, rowChannels: strip.rows[row] };
  }

  onHover(event) {
    const hit = this.locate(event);
    if (!hit) return;
    const { strip, series, stepOf } = this.shown;
    const value = strip.values[hit.row * series.rows + hit.index];
    const channels = hit.rowChannels;
    const which = channels.length > 1
      ? `channels ${channels.join(', ')} (mean)` : `channel ${channels[0]}`;
    const text = `${which} · step ${stepOf(hit.index)} · ${this.stat.value} ${formatValue(value)}`;
    this.hover.textContent = text;
    Object.assign(this.hover.dataset, {
      channel: String(channels[0]), step: String(stepOf(hit.index)), value: String(value),
    });
  }
}
