// The detail view's zoomable map: wheel or buttons zoom, dragging pans, "1:1" shows one
// screen pixel per value, "Fit" the whole map. Pixels are drawn nearest-neighbour, and the
// hover readout reads the value of the pixel drawn under the mouse at every zoom.

import { OPAQUE } from './color.js';
import { packRGBA } from './luts.js';
import { el } from './views.js';

const SIDE = 280; // canvas pixels of the longer side
const OUTSIDE = packRGBA(238, 238, 238);
const MAX_SCALE = 128;
const STEP = 1.25;

export class ZoomView {
  constructor() {
    this.canvas = el('canvas', { id: 'fm-detail-canvas', class: 'fm-zoom', width: SIDE, height: SIDE });
    const button = (id, text, title) => el('button', { id, type: 'button', class: 'fm-button', text, title });
    this.buttons = {
      in: button('fm-zoom-in', '+', 'Zoom in (or the wheel)'),
      out: button('fm-zoom-out', '−', 'Zoom out'),
      fit: button('fm-zoom-fit', 'Fit', 'The whole map'),
      one: button('fm-zoom-1to1', '1:1', 'One screen pixel per value'),
    };
    this.readout = el('div', { id: 'fm-detail-hover', class: 'fm-hover' });
    this.node = el('div', {},
      el('div', { class: 'fm-zoombar' }, ...Object.values(this.buttons)), this.canvas, this.readout);
    this.view = null; // {scale, ox, oy}: canvas pixels per value, the value at canvas (0, 0)
    this.image = null;
    const centre = () => [this.canvas.width / 2, this.canvas.height / 2];
    this.buttons.in.addEventListener('click', () => this.zoomAt(STEP, ...centre()));
    this.buttons.out.addEventListener('click', () => this.zoomAt(1 / STEP, ...centre()));
    this.buttons.fit.addEventListener('click', () => this.setView(null));
    this.buttons.one.addEventListener('click', () => this.zoomAt(1 / this.scale(), ...centre()));
    this.canvas.addEventListener('wheel', (e) => {
      e.preventDefault();
      this.zoomAt(e.deltaY < 0 ? STEP : 1 / STEP, ...this.at(e));
    }, { passive: false });
    this.canvas.addEventListener('mousedown', (e) => {
      this.drag = this.at(e);
      e.preventDefault();
    });
    window.addEventListener('mouseup', () => { this.drag = null; });
    this.canvas.addEventListener('mousemove', (e) => this.onMove(e));
    this.canvas.addEventListener('mouseleave', () => { this.readout.textContent = ''; });
  }

  /** Forgets the zoom (the view was closed). */
  reset() {
    this.view = null;
    this.image = null;
  }

  /**
   * Draws a map, keeping the zoom while its size stays.
   * @param {object} image
   * @param {number} image.w
   * @param {number} image.h
   * @param {Uint32Array} image.colors w * h packed (scaled when over a background)
   * @param {{colors: Uint32Array, w: number, h: number}|null} image.background
   * @param {(x: number, y: number) => number} image.valueAt
   * @param {(x: number, y: number, value: number) => string} image.describe the readout
   */
  show(image) {
    const same = this.image && this.image.w === image.w && this.image.h === image.h;
    if (!same) {
      this.view = null;
      const long = Math.max(image.w, image.h);
      this.canvas.width = Math.max(1, Math.round((SIDE * image.w) / long));
      this.canvas.height = Math.max(1, Math.round((SIDE * image.h) / long));
    }
    this.image = image;
    this.paint();
  }

  /** Canvas pixels per value now. */
  scale() {
    return this.view ? this.view.scale : this.canvas.width / this.image.w;
  }

  setView(view) {
    this.view = view;
    this.paint();
  }

  /** Zooms by `factor`, keeping what is under canvas point (px, py) where it is. */
  zoomAt(factor, px, py) {
    if (!this.image) return;
    const { scale, ox, oy } = this.view || { scale: this.scale(), ox: 0, oy: 0 };
    const least = Math.min(1, this.canvas.width / this.image.w / 4); // 1:1 is always allowed
    const next = Math.min(MAX_SCALE, Math.max(least, scale * factor));
    const x = ox + px / scale;
    const y = oy + py / scale;
    this.setView({ scale: next, ox: x - px / next, oy: y - py / next });
  }

  /** The canvas point under a mouse event. */
  at(event) {
    const rect = this.canvas.getBoundingClientRect();
    return [((event.clientX - rect.left) * this.canvas.width) / rect.width,
      ((event.clientY - rect.top) * this.canvas.height) / rect.height];
  }

  /** Where canvas pixel (cx, cy)'s centre falls on the map, in values (fractional). */
  position(cx, cy) {
    const { scale, ox, oy } = this.view || { scale: this.scale(), ox: 0, oy: 0 };
    return [ox + (cx + 0.5) / scale, oy + (cy + 0.5) / scale];
  }

  /** The value drawn at canvas pixel (cx, cy): the one whose square holds the pixel's centre. */
  valueIndex(cx, cy) {
    return this.position(cx, cy).map(Math.floor);
  }

  onMove(event) {
    const [px, py] = this.at(event);
    if (this.drag && event.buttons & 1) {
      const scale = this.scale();
      const { ox, oy } = this.view || { ox: 0, oy: 0 };
      this.setView({ scale, ox: ox - (px - this.drag[0]) / scale, oy: oy - (py - this.drag[1]) / scale });
      this.drag = [px, py];
    }
    const image = this.image;
    if (!image) return;
    const [x, y] = this.valueIndex(Math.floor(px), Math.floor(py));
    if (x < 0 || y < 0 || x >= image.w || y >= image.h) {
      this.readout.textContent = '';
      return;
    }
    const value = image.valueAt(x, y);
    this.readout.textContent = image.describe(x, y, value);
    Object.assign(this.readout.dataset, { x: String(x), y: String(y), value: String(value) });
  }

  paint() {
    const image = this.image;
    if (!image) return;
    const { width, height } = this.canvas;
    const { colors, w, h, background } = image;
    // Per canvas column and row: the value drawn, and the background's pixel under it
    // (the background stretched over the map, nearest, as the grid draws it).
    const bw = background ? background.w : 1;
    const bh = background ? background.h : 1;
    const cols = new Int32Array(width);
    const rows = new Int32Array(height);
    const bcols = new Int32Array(width);
    const brows = new Int32Array(height);
    for (let cx = 0; cx < width; cx++) {
      const x = this.position(cx, 0)[0];
      cols[cx] = Math.floor(x);
      bcols[cx] = Math.floor((x * bw) / w);
    }
    for (let cy = 0; cy < height; cy++) {
      const y = this.position(0, cy)[1];
      rows[cy] = Math.floor(y);
      brows[cy] = Math.floor((y * bh) / h) * bw;
    }
    const ctx = this.canvas.getContext('2d');
    const data = ctx.createImageData(width, height);
    const out = new Uint32Array(data.data.buffer);
    let i = 0;
    for (let cy = 0; cy < height; cy++) {
      const y = rows[cy];
      for (let cx = 0; cx < width; cx++, i++) {
        const x = cols[cx];
        if (x < 0 || y < 0 || x >= w || y >= h) out[i] = OUTSIDE;
        else if (background) out[i] = (colors[y * w + x] + background.colors[brows[cy] + bcols[cx]]) | OPAQUE;
        else out[i] = colors[y * w + x];
      }
    }
    ctx.putImageData(data, 0, 0);
    Object.assign(this.canvas.dataset, { scale: String(this.scale()) });
  }
}
