// A 1-D layer's channel in the detail view: its values as a line across t.

export const PLOT = { width: 256, height: 128, pad: 4, color: '#1565c0' };

/**
 * Where value `v` at index `t` of `count` lies on a plot of range [lo, hi] (canvas pixels).
 * A flat range puts every value on the middle line.
 * @returns {{x:number, y:number}}
 */
export function plotPoint(t, v, count, lo, hi) {
  const { width, height, pad } = PLOT;
  const x = pad + (count > 1 ? (t * (width - 2 * pad)) / (count - 1) : (width - 2 * pad) / 2);
  const y = hi > lo ? pad + ((hi - v) * (height - 2 * pad)) / (hi - lo) : height / 2;
  return { x, y };
}

/**
 * A canvas with `values` drawn as a line (gaps at non-finite values), scaled to their
 * finite range, which `dataset.lo`/`dataset.hi` state.
 * @param {ArrayLike<number>} values
 * @returns {HTMLCanvasElement}
 */
export function linePlot(values, doc = document) {
  const canvas = doc.createElement('canvas');
  canvas.id = 'fm-line';
  canvas.className = 'fm-tile';
  canvas.width = PLOT.width;
  canvas.height = PLOT.height;
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (Number.isFinite(v)) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  Object.assign(canvas.dataset, { lo: String(lo), hi: String(hi), count: String(values.length) });
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, PLOT.width, PLOT.height);
  ctx.strokeStyle = PLOT.color;
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  let drawing = false;
  for (let t = 0; t < values.length; t++) {
    if (!Number.isFinite(values[t])) {
      drawing = false;
      continue;
    }
    const { x, y } = plotPoint(t, values[t], values.length, lo, hi);
    if (drawing) ctx.lineTo(x, y);
    else ctx.moveTo(x, y);
    drawing = true;
  }
  ctx.stroke();
  return canvas;
}
