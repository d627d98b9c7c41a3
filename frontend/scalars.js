// The run's scalars beside the slider: a small chart of one scalar over the same axis as
// the step slider (kept steps, evenly spaced), with the step shown as a cursor. Click or
// drag on it to move the slider.

import { el, field, formatValue, setOptions, visibleName } from './views.js';

const HEIGHT = 56;
const LINE = '#1565c0';
const CURSOR = '#ff9800';

/** The default scalar: the first tag containing "loss", else the first. */
export function defaultTag(tags) {
  return tags.find((t) => t.toLowerCase().includes('loss')) ?? tags[0] ?? '';
}

/**
 * Where `step` falls on the slider's axis: a fractional kept-step index, linear between
 * neighbouring kept steps, clamped to the ends.
 * @param {number[]} steps kept steps, ascending
 */
export function positionOf(steps, step) {
  const n = steps.length;
  if (n === 0) return 0;
  if (step <= steps[0]) return 0;
  if (step >= steps[n - 1]) return n - 1;
  let lo = 0;
  let hi = n - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (steps[mid] <= step) lo = mid;
    else hi = mid;
  }
  return lo + (step - steps[lo]) / (steps[hi] - steps[lo]);
}

export class ScalarChart {
  /**
   * @param {object} on callbacks
   * @param {() => void} on.tag another scalar was chosen
   * @param {(index: number) => void} on.goTo the chart was clicked or dragged at kept step `index`
   */
  constructor(on) {
    this.on = on;
    this.tag = el('select', { id: 'fm-scalar-tag' });
    this.tag.addEventListener('change', () => { this.chosen = this.tag.value; on.tag(); });
    this.chosen = null; // a tag the user picked, kept while the run offers it
    this.canvas = el('canvas', { id: 'fm-scalars', class: 'fm-scalars', width: 1, height: HEIGHT });
    this.readout = el('span', { id: 'fm-scalar-value', class: 'fm-muted' });
    this.node = el('div', { class: 'fm-scalar-panel', id: 'fm-scalar-panel', hidden: true },
      el('div', { class: 'fm-toolbar' }, field('Scalar', this.tag), this.readout),
      this.canvas);
    this.shown = null; // {points, steps, index, left, width}
    let dragging = false;
    const move = (e) => {
      const i = this.indexAt(e);
      if (i !== null) on.goTo(i);
    };
    this.canvas.addEventListener('mousedown', (e) => { dragging = true; move(e); });
    this.canvas.addEventListener('mousemove', (e) => { if (dragging) move(e); });
    window.addEventListener('mouseup', () => { dragging = false; });
  }

  /** The run's scalar tags: fills the menu; returns the tag selected ('' for none). */
  setTags(tags) {
    const keep = this.chosen && tags.includes(this.chosen) ? this.chosen : defaultTag(tags);
    const value = setOptions(this.tag, tags.map((t) => ({ value: t, text: visibleName(t) })), keep);
    this.node.hidden = tags.length === 0;
    return value;
  }

  selected() {
    return this.tag.value;
  }

  /**
   * Draws the points over the slider's axis.
   * @param {object} o
   * @param {{step: number, value: number}[]} o.points
   * @param {number[]} o.steps the layer's kept steps (the slider's axis)
   * @param {number} o.index the kept step shown
   * @param {{left: number, width: number}} o.axis where the slider lies, relative to the chart
   */
  draw({ points, steps, index, axis }) {
    this.node.hidden = false;
    this.shown = { points, steps, index, ...axis };
    const canvas = this.canvas;
    const width = Math.max(1, Math.round(axis.width));
    if (canvas.width !== width) canvas.width = width;
    canvas.style.marginLeft = `${Math.max(0, Math.round(axis.left))}px`;
    const ctx = canvas.getContext('2d');
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.strokeStyle = '#e0e0e0';
    ctx.strokeRect(0.5, 0.5, canvas.width - 1, canvas.height - 1);
    const finite = points.filter((p) => Number.isFinite(p.value));
    const xOf = (i) => (steps.length > 1 ? (i / (steps.length - 1)) * (width - 1) : width / 2);
    if (finite.length && steps.length) {
      let lo = Infinity;
      let hi = -Infinity;
      for (const p of finite) { lo = Math.min(lo, p.value); hi = Math.max(hi, p.value); }
      const span = hi > lo ? hi - lo : 1;
      const yOf = (v) => HEIGHT - 4 - ((v - lo) / span) * (HEIGHT - 8);
      ctx.strokeStyle = LINE;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      finite.forEach((p, k) => {
        const x = xOf(positionOf(steps, p.step));
        if (k === 0) ctx.moveTo(x, yOf(p.value));
        else ctx.lineTo(x, yOf(p.value));
      });
      ctx.stroke();
    }
    ctx.fillStyle = CURSOR;
    ctx.fillRect(Math.round(xOf(index)) - 1, 0, 2, HEIGHT);
    const step = steps[index];
    const near = nearestPoint(points, step);
    this.readout.textContent = near
      ? `${formatValue(near.value)} at step ${near.step}` : 'no value logged';
  }

  /** The kept step index under the mouse, or null. */
  indexAt(event) {
    if (!this.shown || !this.shown.steps.length) return null;
    const rect = this.canvas.getBoundingClientRect();
    const fraction = (event.clientX - rect.left) / Math.max(1, rect.width);
    const n = this.shown.steps.length;
    return Math.max(0, Math.min(n - 1, Math.round(fraction * (n - 1))));
  }
}

function nearestPoint(points, step) {
  let best = null;
  for (const p of points) {
    if (!best || Math.abs(p.step - step) < Math.abs(best.step - step)) best = p;
  }
  return best;
}
