// The detail view: one channel enlarged, its statistics, and a filmstrip of that channel
// across the kept steps, each frame coloured as the grid colours that step. The enlarged map
// zooms and pans (zoom.js); its zoom stays while stepping and moving along the filmstrip.

import { scaleColors } from './color.js';
import { gridLayout, sampleIndices } from './layout.js';
import { linePlot } from './lineplot.js';
import { Latest } from './model.js';
import { DepthSlice } from './volume.js';
import { packRGBA } from './luts.js';
import { paintGrid } from './paint.js';
import { el, filmFrame, formatValue } from './views.js';
import { ZoomView } from './zoom.js';

const FILMSTRIP_FRAMES = 40;

/** One map of a Coloring, drawn at `size` pixels. */
function tileCanvas(coloring, channel, size) {
  const { w, h } = coloring.maps;
  const layout = gridLayout({ count: 1, mapW: w, mapH: h, cellSize: size, maxWidth: size });
  const canvas = el('canvas', { width: layout.width, height: layout.height, class: 'fm-tile' });
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(layout.width, layout.height);
  paintGrid(new Uint32Array(image.data.buffer), layout, (slot, out) => coloring.tile(channel, out));
  ctx.putImageData(image, 0, 0);
  return canvas;
}

const SEPARATOR_RGBA = packRGBA(200, 200, 200);
/**
 * Canvas pixels of each depth slice, and between two, in the detail view of a 3-D layer;
 * slices wrap at `width` (a canvas much wider draws nothing in Chromium).
 */
export const SLICE = { cell: 64, gap: 3, width: 16384 };

/**
 * Every depth slice of a 3-D layer's channel side by side, separated, on the scale the grid
 * uses for the slice it shows (a channel's range spans its whole volume).
 */
function volumeCanvas(coloring, channel) {
  const { base, depth, w, h } = coloring.maps;
  const slices = Array.from({ length: depth }, (_, d) => Object.assign(
    Object.create(Object.getPrototypeOf(coloring)), coloring,
    { maps: new DepthSlice(base, depth, d) }));
  const layout = gridLayout({
    count: depth, mapW: w, mapH: h, cellSize: SLICE.cell, gap: SLICE.gap, maxWidth: SLICE.width,
  });
  const canvas = el('canvas', {
    id: 'fm-volume', width: layout.width, height: layout.height, class: 'fm-tile',
  });
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(layout.width, layout.height);
  paintGrid(new Uint32Array(image.data.buffer), layout,
    (slot, out) => slices[slot].tile(channel, out), SEPARATOR_RGBA);
  ctx.putImageData(image, 0, 0);
  return canvas;
}

/**
 * The enlarged channel: a line across t for 1 x L maps (1-D layers), every depth slice for
 * a 3-D layer (but in difference mode, which has the shown slice only), else the map.
 */
/**
 * The enlarged channel of a 3-D layer (its slices side by side) or a 1-D one (a line across
 * t); null for a 2-D map, which the zoom view draws.
 */
function layoutView(coloring, channel) {
  const { h, w } = coloring.maps;
  if (coloring.maps.depth > 1 && !coloring.diffs) return volumeCanvas(coloring, channel);
  if (h !== 1 || w < 2) return null;
  return linePlot(Float64Array.from({ length: w }, (_, t) => coloring.valueAt(channel, 0, t)));
}

export class Detail {
  /**
   * @param {object} on callbacks
   * @param {(index: number) => Promise<Coloring>} on.coloring how the grid colours kept
   *   step `index`
   * @param {(index: number) => void} on.goTo show kept step `index`
   * @param {() => void} on.close the view was closed
   */
  constructor(on) {
    this.on = on;
    this.channel = null; // the channel shown, or null when closed
    this.frames = new Latest();
    this.node = el('div', { id: 'fm-detail', class: 'fm-detail', hidden: true });
    this.zoom = new ZoomView();
  }

  close() {
    this.channel = null;
    this.zoom.reset();
    this.frames.drop();
    this.node.hidden = true;
  }

  /**
   * Shows `channel` of the step the grid shows, then fills the filmstrip.
   * @param {number} channel
   * @param {Coloring} coloring the grid's
   * @param {number} stepCount kept steps of the layer
   * @param {number} index the kept step shown
   * @param {(i: number) => number} stepOf the step number of kept step i
   * @param {object|null} [background] drawn under the map (Overlay.background)
   */
  async show(channel, coloring, stepCount, index, stepOf, background = null) {
    const current = this.frames.take();
    this.channel = channel;
    const { maps, sample } = coloring;
    if (channel >= maps.c) return;
    const close = el('button', {
      type: 'button', class: 'fm-button', id: 'fm-detail-close', text: 'Close',
    });
    close.addEventListener('click', () => {
      this.close();
      this.on.close();
    });
    const stats = ['mean', 'std', 'zero_fraction']
      .map((f) => `${f.replace('_', ' ')} ${formatValue(maps.stat(sample, channel, f))}`);
    const strip = el('div', { class: 'fm-filmstrip', id: 'fm-filmstrip' });
    const what = coloring.diffs ? 'Δ from the step before, across' : 'Across';
    const special = layoutView(coloring, channel);
    this.node.replaceChildren(
      el('div', { class: 'fm-detail-head' }, el('strong', { text: `Channel ${channel}` }), close),
      special || this.zoom.node,
      el('div', { class: 'fm-muted', text: stats.join(' · ') }),
      el('div', { class: 'fm-label', text: `${what} kept steps (click to go there)` }),
      strip);
    this.node.hidden = false;
    if (!special) this.showZoomed(channel, coloring, background);
    for (const i of sampleIndices(stepCount, FILMSTRIP_FRAMES)) {
      let frame;
      try {
        frame = await this.on.coloring(i);
      } catch (e) {
        continue;
      }
      if (!current()) return;
      if (channel >= frame.maps.c) continue;
      const button = filmFrame(tileCanvas(frame, channel, 56), stepOf(i), i === index);
      button.dataset.diff = frame.diffs ? '1' : '0';
      button.addEventListener('click', () => this.on.goTo(i));
      strip.appendChild(button);
    }
    strip.dataset.filled = 'true'; // every frame drawn (tests wait on this)
  }

  /** The enlarged map, over the background when there is one. */
  showZoomed(channel, coloring, background) {
    const { w, h } = coloring.maps;
    const colors = coloring.tile(channel, new Uint32Array(w * h));
    if (background) scaleColors(colors, background.weight, colors);
    const delta = coloring.diffs ? 'Δ ' : '';
    this.zoom.show({
      w, h, colors, background,
      valueAt: (x, y) => coloring.valueAt(channel, y, x),
      describe: (x, y, v) => `x ${x}, y ${y} · ${delta}${Number.isNaN(v) ? 'non-finite'
        : String(Number(v.toPrecision(7)))}`,
    });
  }
}
