// The Feature Maps tab. TensorBoard imports this ES module in an iframe and calls render().
// model.js fetches and caches, views.js builds DOM, the pure modules compute; this wires them.

import { COLORMAPS, NONFINITE_RGBA, lut, lutRGBA, packRGBA } from './colormaps.js';
import { NSTATS, mapValues, statOf, valueAt } from './decode.js';
import { channelOrder, gridLayout, hitTest, sampleIndices, slotOrigin } from './layout.js';
import { Model } from './model.js';
import { MODES, codeColors, rangeFor, spanOf, symmetric } from './normalize.js';
import { colorCodes, colorValues, paintGrid } from './paint.js';
import { colorBar, el, emptyState, field, filmFrame, formatValue, setNotice, setOptions } from './views.js';

const POLL_MS = 10000;
const PLAY_MS = 250;
const FILMSTRIP_FRAMES = 40;
const GAP_RGBA = packRGBA(200, 200, 200);
const SORTS = { index: 'index', mean: 'mean', std: 'std', sparsity: 'sparsity' };

/** Colours of one slot's map for the current settings. */
function tileSource(maps, sample, channel, settings, fixed, luts) {
  const diverging = settings.colormap === 'diverging';
  const flat = diverging ? 128 : 0;
  let range = rangeFor(settings.norm, maps, sample, channel, fixed);
  if (diverging) range = symmetric(range);
  const base = (sample * maps.c + channel) * NSTATS;
  if (maps.codes) {
    const table = codeColors(maps.stats[base], maps.stats[base + 1], range, luts.rgba, NONFINITE_RGBA, flat);
    const size = maps.h * maps.w;
    const codes = maps.codes.subarray((sample * maps.c + channel) * size, (sample * maps.c + channel + 1) * size);
    return (out) => colorCodes(codes, table, out);
  }
  const values = mapValues(maps, sample, channel);
  return (out) => colorValues(values, range, luts.rgba, NONFINITE_RGBA, flat, out);
}

/** this step minus the previous one, per channel, as floats; and its symmetric range. */
function differenceOf(maps, prev, sample) {
  const channels = [];
  let layerMax = 0;
  for (let c = 0; c < maps.c; c++) {
    const a = mapValues(maps, sample, c);
    const b = mapValues(prev, sample, c);
    const d = new Float32Array(a.length);
    let m = 0;
    for (let i = 0; i < a.length; i++) {
      d[i] = a[i] - b[i];
      if (Number.isFinite(d[i]) && Math.abs(d[i]) > m) m = Math.abs(d[i]);
    }
    channels.push({ values: d, max: m });
    layerMax = Math.max(layerMax, m);
  }
  return { channels, layerMax };
}

class App {
  constructor(root) {
    this.root = root;
    this.model = new Model();
    this.prefetch = true;
    this.tagsData = {};
    this.steps = [];
    this.compareSteps = [];
    this.fixed = null;
    this.deadAll = null;
    this.paintGen = 0;
    this.paintCount = 0; // grids painted so far (tests wait on it)
    this.pollGen = 0;
    this.inputTime = null;
    this.selected = null; // channel shown in the detail view
    this.current = null; // what the grid shows: {maps, layout, order, diff}
    this.playTimer = null;
    this.pendingStep = null; // the step to stay near while another layer's steps load
    this.prefetching = null; // the layer whose steps are being prefetched
    this.build();
  }

  build() {
    const select = (id) => el('select', { id });
    this.runSelect = select('fm-run');
    this.layerSelect = select('fm-layer');
    this.sampleSelect = select('fm-sample');
    this.colormapSelect = select('fm-colormap');
    this.normSelect = select('fm-norm');
    this.sortSelect = select('fm-sort');
    this.compareSelect = select('fm-compare');
    setOptions(this.colormapSelect, COLORMAPS.map((c) => ({ value: c, text: c === 'diverging' ? 'diverging (RdBu)' : c })), 'viridis');
    setOptions(this.normSelect, Object.entries(MODES).map(([value, text]) => ({ value, text })), 'channel');
    setOptions(this.sortSelect, Object.keys(SORTS).map((value) => ({ value, text: value })), 'index');
    this.sizeInput = el('input', { id: 'fm-size', type: 'range', min: 8, max: 256, step: 4, value: 64 });
    this.diffInput = el('input', { id: 'fm-diff', type: 'checkbox' });
    this.playButton = el('button', { id: 'fm-play', type: 'button', class: 'fm-button', text: '▶', title: 'Play / pause' });
    this.stepSlider = el('input', { id: 'fm-step', type: 'range', min: 0, max: 0, step: 1, value: 0 });
    this.stepInput = el('input', { id: 'fm-step-input', type: 'number', min: 0, step: 1, class: 'fm-step-input' });
    this.stepInfo = el('span', { id: 'fm-step-info', class: 'fm-muted' });
    this.notice = el('div', { id: 'fm-notice', class: 'fm-notice', hidden: true });
    this.summary = el('div', { id: 'fm-summary', class: 'fm-summary' });
    this.hover = el('div', { id: 'fm-hover', class: 'fm-hover', text: 'Hover a map to read its values; click one to enlarge it.' });
    this.canvas = el('canvas', { id: 'fm-grid', class: 'fm-grid', width: 1, height: 1 });
    this.compareCanvas = el('canvas', { id: 'fm-grid-compare', class: 'fm-grid', width: 1, height: 1 });
    this.title = el('div', { class: 'fm-panel-title', id: 'fm-title' });
    this.compareTitle = el('div', { class: 'fm-panel-title', id: 'fm-compare-title' });
    this.colorBarSlot = el('div', { class: 'fm-colorbar-slot' });
    this.panel = el('div', { class: 'fm-panel' }, this.title, this.canvas);
    this.comparePanel = el('div', { class: 'fm-panel', hidden: true }, this.compareTitle, this.compareCanvas);
    this.detail = el('div', { id: 'fm-detail', class: 'fm-detail', hidden: true });
    this.sampleField = field('Sample', this.sampleSelect);
    this.sampleField.hidden = true;

    this.controls = el('div', { class: 'fm-controls' },
      el('div', { class: 'fm-toolbar' },
        field('Run', this.runSelect), field('Layer', this.layerSelect, 'fm-wide'), this.sampleField,
        field('Compare with', this.compareSelect)),
      el('div', { class: 'fm-toolbar' },
        field('Colormap', this.colormapSelect), field('Normalise', this.normSelect),
        field('Sort', this.sortSelect), field('Cell size', this.sizeInput),
        el('label', { class: 'fm-field fm-check' }, this.diffInput, el('span', { text: 'Difference from previous step' }))),
      el('div', { class: 'fm-stepbar' },
        this.playButton, this.stepSlider, field('Step', this.stepInput), this.stepInfo),
      this.notice,
      el('div', { class: 'fm-infobar' }, this.colorBarSlot, this.summary),
      this.hover);
    this.content = el('div', { class: 'fm-content' },
      this.controls,
      el('div', { class: 'fm-main' }, el('div', { class: 'fm-panels' }, this.panel, this.comparePanel), this.detail));
    this.empty = emptyState();
    this.empty.hidden = true;
    this.content.hidden = true;
    this.loading = el('div', { class: 'fm-muted fm-loading', text: 'Loading…' });
    this.root.replaceChildren(el('div', { class: 'fm-app' }, this.loading, this.empty, this.content));

    this.runSelect.addEventListener('change', () => this.onLayerChange());
    this.layerSelect.addEventListener('change', () => this.onLayerChange());
    this.sampleSelect.addEventListener('change', () => this.onLayerChange());
    this.compareSelect.addEventListener('change', () => this.onCompareChange());
    for (const control of [this.colormapSelect, this.normSelect, this.sortSelect, this.diffInput]) {
      control.addEventListener('change', () => this.paint());
    }
    this.sizeInput.addEventListener('input', () => this.paint());
    this.stepSlider.addEventListener('input', () => this.goTo(Number(this.stepSlider.value)));
    this.stepInput.addEventListener('change', () => this.goToStep(Number(this.stepInput.value)));
    this.playButton.addEventListener('click', () => this.togglePlay());
    document.addEventListener('keydown', (e) => this.onKey(e));
    this.canvas.addEventListener('mousemove', (e) => this.onHover(e));
    this.canvas.addEventListener('mouseleave', () => { this.hover.textContent = 'Hover a map to read its values; click one to enlarge it.'; });
    this.canvas.addEventListener('click', (e) => this.onClick(e));
    window.addEventListener('resize', () => this.paint());
  }

  // ---- data: tags and steps, polled -------------------------------------------------

  async refresh() {
    const gen = ++this.pollGen;
    let tags;
    try {
      tags = await this.model.tags();
    } catch (e) {
      this.showError(`Could not load tags: ${e.message}`);
      return;
    }
    if (gen !== this.pollGen) return;
    this.tagsData = tags;
    this.loading.hidden = true;
    const runs = Object.keys(tags).sort();
    this.empty.hidden = runs.length > 0;
    this.content.hidden = runs.length === 0;
    if (runs.length === 0) return;
    const runBefore = this.runSelect.value;
    const layerBefore = this.layerSelect.value;
    setOptions(this.runSelect, runs.map((r) => ({ value: r, text: r })), runBefore);
    this.fillLayers();
    const changed = runBefore !== this.runSelect.value || layerBefore !== this.layerSelect.value;
    await this.loadSteps(changed);
  }

  fillLayers() {
    const run = this.runSelect.value;
    const tags = this.tagsData[run] || {};
    const options = Object.keys(tags).sort().map((tag) => {
      const info = tags[tag];
      const [, c, h, w] = info.stored;
      return { value: tag, text: `${info.layer} · ${c}×${h}×${w}` };
    });
    setOptions(this.layerSelect, options, this.layerSelect.value);
    const info = this.info();
    const n = info ? info.stored[0] : 1;
    setOptions(this.sampleSelect, Array.from({ length: n }, (_, i) => ({ value: String(i), text: String(i) })), this.sampleSelect.value);
    this.sampleField.hidden = n <= 1;
    const others = Object.keys(this.tagsData).sort().filter((r) => r !== run && this.tagsData[r][this.layerSelect.value]);
    setOptions(this.compareSelect, [{ value: '', text: '(none)' }, ...others.map((r) => ({ value: r, text: r }))], this.compareSelect.value);
    this.updateNotice();
  }

  info() {
    return (this.tagsData[this.runSelect.value] || {})[this.layerSelect.value];
  }

  updateNotice() {
    const info = this.info();
    const lines = [];
    if (info) {
      if (info.logged > info.steps) {
        lines.push(`TensorBoard kept ${info.steps} of the ${info.logged} steps logged for this layer. `
          + `Restart it with ${info.samplesFlag} to keep them all.`);
      }
      const dropped = info.dropped || {};
      const why = {
        samples: 'beyond max_samples',
        channels: 'beyond max_channels',
        tokens: 'the class token of a token layout',
      };
      const parts = Object.entries(dropped).filter(([, count]) => count > 0)
        .map(([what, count]) => `${count} ${count === 1 ? what.replace(/s$/, '') : what} (${why[what] || 'by the writer'})`);
      if (parts.length) lines.push(`Not stored: ${parts.join(', ')}.`);
      if (info.downsample > 1) lines.push(`Maps were downsampled ${info.downsample}× to fit the writer's max_size.`);
    }
    setNotice(this.notice, lines);
  }

  async loadSteps(selectionChanged) {
    const run = this.runSelect.value;
    const tag = this.layerSelect.value;
    const gen = this.pollGen;
    let steps;
    try {
      steps = await this.model.steps(run, tag);
    } catch (e) {
      this.showError(`Could not load steps: ${e.message}`);
      return;
    }
    if (gen !== this.pollGen || run !== this.runSelect.value || tag !== this.layerSelect.value) return;
    const atEnd = this.steps.length === 0 ? this.pendingStep == null : this.index() === this.steps.length - 1;
    const currentStep = this.steps.length ? this.steps[this.index()].step : this.pendingStep ?? null;
    this.pendingStep = null;
    const same = !selectionChanged && steps.length === this.steps.length
      && steps.every((s, i) => s.step === this.steps[i].step && s.wall_time === this.steps[i].wall_time);
    if (same) {
      await this.loadCompareSteps();
      return;
    }
    this.steps = steps;
    this.stepSlider.max = String(Math.max(0, steps.length - 1));
    let index = steps.length - 1;
    if (!selectionChanged && !atEnd && currentStep !== null) {
      const found = steps.findIndex((s) => s.step === currentStep);
      if (found >= 0) index = found;
    } else if (selectionChanged && currentStep !== null && !atEnd) {
      index = nearestIndex(steps, currentStep);
    }
    this.stepSlider.value = String(Math.max(0, index));
    this.fixed = null;
    this.deadAll = null;
    if (selectionChanged) this.fitCellSize();
    await this.loadCompareSteps();
    this.loadStats();
    this.paint();
  }

  /** A cell size that lets the layer's grid fill the visible area, within 16..160 pixels. */
  fitCellSize() {
    const info = this.info();
    if (!info) return;
    const [, c, h, w] = info.stored;
    const width = Math.max(200, this.root.clientWidth - 24);
    const height = Math.max(300, window.innerHeight - 260);
    const perCell = Math.sqrt((width * height) / c) * Math.min(1, Math.max(h, w) / Math.min(h, w)) - 2;
    this.sizeInput.value = String(Math.max(16, Math.min(160, Math.floor(perCell / 4) * 4)));
  }

  async loadCompareSteps() {
    const run = this.compareSelect.value;
    const tag = this.layerSelect.value;
    this.comparePanel.hidden = !run;
    if (!run) {
      this.compareSteps = [];
      return;
    }
    try {
      const steps = await this.model.steps(run, tag);
      if (run === this.compareSelect.value && tag === this.layerSelect.value) this.compareSteps = steps;
    } catch (e) {
      this.compareSteps = [];
    }
  }

  async loadStats() {
    const run = this.runSelect.value;
    const tag = this.layerSelect.value;
    const sample = Number(this.sampleSelect.value || 0);
    const last = this.steps[this.steps.length - 1];
    if (!last) return;
    try {
      const stats = await this.model.stats(run, tag, sample, last.wall_time);
      if (run !== this.runSelect.value || tag !== this.layerSelect.value || sample !== Number(this.sampleSelect.value || 0)) return;
      this.fixed = spanOf(stats.min, stats.max);
      this.deadAll = stats.dead;
      this.paint();
    } catch (e) {
      // The grid works without them; fixed falls back to per layer.
    }
  }

  showError(text) {
    this.loading.hidden = true;
    setNotice(this.notice, [text]);
  }

  // ---- selection -------------------------------------------------------------------

  index() {
    return Math.min(Number(this.stepSlider.value) || 0, Math.max(0, this.steps.length - 1));
  }

  onLayerChange() {
    const index = this.index();
    if (this.steps.length) {
      this.pendingStep = index === this.steps.length - 1 ? null : this.steps[index].step;
    }
    this.steps = [];
    this.fillLayers();
    this.selected = null;
    this.detail.hidden = true;
    this.paintGen++; // drop replies for the old layer
    this.loadSteps(true);
  }

  async onCompareChange() {
    await this.loadCompareSteps();
    this.paint();
  }

  goTo(index) {
    this.inputTime = performance.now();
    const clamped = Math.max(0, Math.min(this.steps.length - 1, index));
    this.stepSlider.value = String(clamped);
    this.paint();
  }

  goToStep(step) {
    if (this.steps.length) this.goTo(nearestIndex(this.steps, step));
  }

  onKey(e) {
    const target = e.target;
    if (target && (target.tagName === 'SELECT' || (target.tagName === 'INPUT' && target.type !== 'checkbox'))) return;
    if (e.key === 'ArrowLeft' || e.key === 'ArrowRight') {
      e.preventDefault();
      this.goTo(this.index() + (e.key === 'ArrowRight' ? 1 : -1));
    } else if (e.key === ' ') {
      e.preventDefault();
      this.togglePlay();
    }
  }

  togglePlay() {
    if (this.playTimer) {
      clearInterval(this.playTimer);
      this.playTimer = null;
      this.playButton.textContent = '▶';
      return;
    }
    if (this.index() >= this.steps.length - 1) this.goTo(0);
    this.playButton.textContent = '❚❚';
    this.playTimer = setInterval(() => {
      if (this.index() >= this.steps.length - 1) this.togglePlay();
      else this.goTo(this.index() + 1);
    }, PLAY_MS);
  }

  settings() {
    return {
      colormap: this.diffInput.checked ? 'diverging' : this.colormapSelect.value,
      norm: this.normSelect.value,
      sort: this.sortSelect.value,
      size: Number(this.sizeInput.value),
      diff: this.diffInput.checked,
      sample: Number(this.sampleSelect.value || 0),
    };
  }

  // ---- painting --------------------------------------------------------------------

  /** Maps of one step: synchronously when in memory (so scrubbing cached steps is instant). */
  mapsOf(run, tag, entry) {
    const hit = this.model.peek(run, tag, entry.step, entry.wall_time);
    return hit ? { maps: hit, cached: true } : { promise: this.model.load(run, tag, entry.step, entry.wall_time), cached: false };
  }

  async paint() {
    const gen = ++this.paintGen;
    const t0 = this.inputTime ?? performance.now();
    this.inputTime = null;
    const run = this.runSelect.value;
    const tag = this.layerSelect.value;
    const index = this.index();
    const entry = this.steps[index];
    if (!entry) return;
    this.stepInput.value = String(entry.step);
    this.stepInfo.textContent = `${index + 1} of ${this.steps.length} kept steps`;
    const settings = this.settings();
    const wanted = [this.mapsOf(run, tag, entry)];
    if (settings.diff && index > 0) wanted.push(this.mapsOf(run, tag, this.steps[index - 1]));
    const compareRun = this.compareSelect.value;
    const compareEntry = compareRun && this.compareSteps.length ? this.compareSteps[nearestIndex(this.compareSteps, entry.step)] : null;
    if (compareEntry) wanted.push(this.mapsOf(compareRun, tag, compareEntry));
    const cached = wanted.every((w) => w.maps);
    let loaded;
    try {
      loaded = cached ? wanted.map((w) => w.maps) : await Promise.all(wanted.map((w) => w.maps || w.promise));
    } catch (e) {
      if (gen === this.paintGen) setNotice(this.notice, [`Could not load step ${entry.step}: ${e.message}`]);
      return;
    }
    if (gen !== this.paintGen) return; // a newer selection was made meanwhile
    const maps = loaded[0];
    const prev = settings.diff && index > 0 ? loaded[1] : null;
    const compareMaps = compareEntry ? loaded[loaded.length - 1] : null;

    const detailWidth = this.selected !== null ? 312 : 0; // .fm-detail and its gap
    const width = Math.max(200, this.root.clientWidth - 24 - detailWidth);
    const panelWidth = compareMaps ? Math.floor((width - 16) / 2) : width;
    this.current = this.drawGrid(this.canvas, maps, prev, settings, panelWidth, true);
    this.title.textContent = `${run} · step ${entry.step}${settings.diff ? (prev ? ` − step ${this.steps[index - 1].step}` : ' (no previous step: nothing to subtract)') : ''}`;
    if (compareRun) {
      this.comparePanel.hidden = false;
      if (compareMaps && compareMaps.c === maps.c) {
        this.drawGrid(this.compareCanvas, compareMaps, null, { ...settings, diff: false }, panelWidth, false, this.current.order);
        this.compareTitle.textContent = `${compareRun} · step ${compareEntry.step}`;
      } else {
        this.compareCanvas.width = 1;
        this.compareTitle.textContent = `${compareRun}: no matching step of this layer`;
      }
    } else {
      this.comparePanel.hidden = true;
    }
    this.updateInfo(maps, settings);
    if (this.selected !== null) this.showDetail();
    const ms = performance.now() - t0;
    this.paintCount++;
    document.dispatchEvent(new CustomEvent('fm-painted', { detail: { ms, cached, run, tag, step: entry.step, index, ...(cached ? {} : maps.timing) } }));
    if (this.prefetch) {
      this.prefetchAround(run, tag, index);
      this.prefetchLayer(run, tag, index, maps.bytes);
    }
  }

  drawGrid(canvas, maps, prev, settings, maxWidth, markDead, order) {
    const sample = Math.min(settings.sample, maps.n - 1);
    const stat = (c, f) => statOf(maps, sample, c, f);
    order = order || channelOrder(maps.c, settings.sort, stat);
    const layout = gridLayout({ count: maps.c, mapW: maps.w, mapH: maps.h, cellSize: settings.size, maxWidth });
    if (canvas.width !== layout.width || canvas.height !== layout.height) {
      canvas.width = layout.width;
      canvas.height = layout.height;
    }
    const luts = { rgba: lutRGBA(settings.colormap) };
    const ctx = canvas.getContext('2d');
    // One ImageData per canvas size, reused while scrubbing (no 4-byte-per-pixel allocation per step).
    let image = canvas.fmImage;
    if (!image || image.width !== layout.width || image.height !== layout.height) {
      image = ctx.createImageData(layout.width, layout.height);
      canvas.fmImage = image;
    }
    const pixels = new Uint32Array(image.data.buffer);
    let diff = null;
    if (prev && prev.c === maps.c && prev.h === maps.h && prev.w === maps.w) {
      diff = differenceOf(maps, prev, sample);
      paintGrid(pixels, layout, (slot, out) => {
        const d = diff.channels[order[slot]];
        const m = settings.norm === 'channel' ? d.max : diff.layerMax;
        colorValues(d.values, [-m, m], luts.rgba, NONFINITE_RGBA, 128, out);
      }, GAP_RGBA);
    } else {
      paintGrid(pixels, layout, (slot, out) => tileSource(maps, sample, order[slot], settings, this.fixed, luts)(out), GAP_RGBA);
    }
    ctx.putImageData(image, 0, 0);
    if (markDead) this.drawMarkers(ctx, layout, order, maps, sample);
    return { maps, layout, order, diff, sample };
  }

  drawMarkers(ctx, layout, order, maps, sample) {
    ctx.save();
    ctx.lineWidth = 2;
    for (let slot = 0; slot < order.length; slot++) {
      const c = order[slot];
      const deadNow = statOf(maps, sample, c, 'zero_fraction') === 1;
      const deadAll = this.deadAll && this.deadAll[c] === true;
      if (!deadNow && !deadAll && c !== this.selected) continue;
      const { x, y } = slotOrigin(layout, slot);
      if (deadAll) {
        ctx.strokeStyle = '#e53935';
        ctx.strokeRect(x + 1, y + 1, layout.cellW - 2, layout.cellH - 2);
      }
      if (deadNow) {
        const s = Math.max(4, Math.min(12, Math.floor(Math.min(layout.cellW, layout.cellH) / 3)));
        ctx.fillStyle = '#e53935';
        ctx.beginPath();
        ctx.moveTo(x + layout.cellW - s, y);
        ctx.lineTo(x + layout.cellW, y);
        ctx.lineTo(x + layout.cellW, y + s);
        ctx.closePath();
        ctx.fill();
      }
      if (c === this.selected) {
        ctx.strokeStyle = '#ff9800';
        ctx.strokeRect(x + 1, y + 1, layout.cellW - 2, layout.cellH - 2);
      }
    }
    ctx.restore();
  }

  updateInfo(maps, settings) {
    const sample = Math.min(settings.sample, maps.n - 1);
    let low;
    let high;
    let caption;
    if (settings.diff) {
      const m = this.current.diff ? (settings.norm === 'channel' ? null : this.current.diff.layerMax) : 0;
      caption = m === null ? 'Δ, each map: ±its max |Δ|' : 'Δ, all channels, symmetric';
      low = m === null ? '−max' : formatValue(-m);
      high = m === null ? '+max' : formatValue(m);
    } else if (settings.norm === 'channel') {
      caption = settings.colormap === 'diverging' ? 'each map: ±max |value|' : 'each map: its own min → max';
      low = settings.colormap === 'diverging' ? '−max' : 'min';
      high = 'max';
    } else {
      let range = rangeFor(settings.norm, maps, sample, 0, this.fixed);
      if (settings.colormap === 'diverging') range = symmetric(range);
      caption = settings.norm === 'fixed' ? 'all channels, every kept step' : 'all channels, this step';
      low = formatValue(range[0]);
      high = formatValue(range[1]);
    }
    this.colorBarSlot.replaceChildren(colorBar(lut(settings.colormap), low, high, caption));
    let deadNow = 0;
    for (let c = 0; c < maps.c; c++) if (statOf(maps, sample, c, 'zero_fraction') === 1) deadNow++;
    const deadAll = this.deadAll ? this.deadAll.filter((d) => d === true).length : null;
    const parts = [`${maps.c} channels of ${maps.h}×${maps.w}`, `${deadNow} zero at this step ◥`];
    if (deadAll !== null) parts.push(`${deadAll} dead at every kept step ▢`);
    this.summary.textContent = parts.join(' · ');
  }

  prefetchAround(run, tag, index) {
    const order = [index + 1, index + 2, index - 1, index + 3, index + 4, index - 2];
    for (const i of order) {
      const entry = this.steps[i];
      if (entry && !this.model.peek(run, tag, entry.step, entry.wall_time)) {
        this.model.load(run, tag, entry.step, entry.wall_time).catch(() => {});
      }
    }
  }

  /**
   * In the background, one request at a time, nearest steps first: every kept step of the
   * layer, when they fit in half the memory cache. Then scrubbing anywhere is instant.
   */
  async prefetchLayer(run, tag, index, bytes) {
    const key = JSON.stringify([run, tag, this.steps.length]);
    if (this.prefetching === key || this.steps.length * bytes > this.model.maps.budget / 2) return;
    this.prefetching = key;
    const entries = this.steps.map((entry, i) => ({ entry, distance: Math.abs(i - index) }))
      .sort((a, b) => a.distance - b.distance);
    for (const { entry } of entries) {
      if (this.prefetching !== key || !this.prefetch) return;
      if (!this.model.peek(run, tag, entry.step, entry.wall_time)) {
        await this.model.load(run, tag, entry.step, entry.wall_time).catch(() => {});
      }
    }
  }

  // ---- hover and detail ---------------------------------------------------------------

  locate(event) {
    if (!this.current) return null;
    const rect = this.canvas.getBoundingClientRect();
    const px = ((event.clientX - rect.left) * this.canvas.width) / rect.width;
    const py = ((event.clientY - rect.top) * this.canvas.height) / rect.height;
    const hit = hitTest(this.current.layout, Math.floor(px), Math.floor(py));
    return hit && { ...hit, channel: this.current.order[hit.slot] };
  }

  onHover(event) {
    const hit = this.locate(event);
    if (!hit) return;
    const { maps, diff, sample } = this.current;
    const value = diff
      ? diff.channels[hit.channel].values[hit.y * maps.w + hit.x]
      : valueAt(maps, sample, hit.channel, hit.y, hit.x);
    const text = Number.isNaN(value) ? 'non-finite' : String(Number(value.toPrecision(7)));
    this.hover.textContent = `channel ${hit.channel} · x ${hit.x}, y ${hit.y} · ${diff ? 'Δ ' : ''}${text}`;
    Object.assign(this.hover.dataset, {
      channel: String(hit.channel), x: String(hit.x), y: String(hit.y), value: String(value), diff: diff ? '1' : '0',
    });
  }

  onClick(event) {
    const hit = this.locate(event);
    if (!hit) return;
    this.selected = hit.channel;
    this.paint();
  }

  async showDetail() {
    const channel = this.selected;
    const run = this.runSelect.value;
    const tag = this.layerSelect.value;
    const { maps, sample } = this.current;
    if (channel >= maps.c) return;
    const settings = this.settings();
    const luts = { rgba: lutRGBA(settings.colormap) };
    const big = this.tileCanvas(maps, sample, channel, { ...settings, diff: false }, luts, 256);
    const close = el('button', { type: 'button', class: 'fm-button', id: 'fm-detail-close', text: 'Close' });
    close.addEventListener('click', () => {
      this.selected = null;
      this.detail.hidden = true;
      this.paint();
    });
    const stats = ['mean', 'std', 'zero_fraction'].map((f) => `${f.replace('_', ' ')} ${formatValue(statOf(maps, sample, channel, f))}`);
    const strip = el('div', { class: 'fm-filmstrip', id: 'fm-filmstrip' });
    this.detail.replaceChildren(
      el('div', { class: 'fm-detail-head' }, el('strong', { text: `Channel ${channel}` }), close),
      big,
      el('div', { class: 'fm-muted', text: stats.join(' · ') }),
      el('div', { class: 'fm-label', text: 'Across kept steps (click to go there)' }),
      strip);
    this.detail.hidden = false;
    const picks = sampleIndices(this.steps.length, FILMSTRIP_FRAMES);
    const gen = this.paintGen;
    const current = this.steps[this.index()];
    for (const i of picks) {
      const entry = this.steps[i];
      let frameMaps;
      try {
        frameMaps = await this.model.load(run, tag, entry.step, entry.wall_time);
      } catch (e) {
        continue;
      }
      if (gen !== this.paintGen || channel !== this.selected) return;
      const canvas = this.tileCanvas(frameMaps, Math.min(sample, frameMaps.n - 1), channel, { ...settings, diff: false }, luts, 56);
      const frame = filmFrame(canvas, entry.step, entry === current);
      frame.addEventListener('click', () => this.goTo(i));
      strip.appendChild(frame);
    }
  }

  tileCanvas(maps, sample, channel, settings, luts, size) {
    const layout = gridLayout({ count: 1, mapW: maps.w, mapH: maps.h, cellSize: size, maxWidth: size });
    const canvas = el('canvas', { width: layout.width, height: layout.height, class: 'fm-tile' });
    const ctx = canvas.getContext('2d');
    const image = ctx.createImageData(layout.width, layout.height);
    const source = tileSource(maps, sample, channel, settings, this.fixed, luts);
    paintGrid(new Uint32Array(image.data.buffer), layout, (slot, out) => source(out));
    ctx.putImageData(image, 0, 0);
    return canvas;
  }

  start() {
    this.refresh();
    setInterval(() => this.refresh(), POLL_MS);
    // TensorBoard's reload button re-fetches data in the parent; when the tab is shown
    // again or gets focus, look for new steps at once.
    document.addEventListener('visibilitychange', () => { if (!document.hidden) this.refresh(); });
    window.addEventListener('focus', () => this.refresh());
  }
}

/** The index of the kept step closest to `step`. */
function nearestIndex(steps, step) {
  let best = 0;
  for (let i = 1; i < steps.length; i++) {
    if (Math.abs(steps[i].step - step) < Math.abs(steps[best].step - step)) best = i;
  }
  return best;
}

function addStyles() {
  if (document.getElementById('fm-styles')) return;
  const link = el('link', { id: 'fm-styles', rel: 'stylesheet', href: new URL('./style.css', import.meta.url).href });
  document.head.appendChild(link);
}

/** Entry point called by TensorBoard. */
export function render() {
  addStyles();
  const root = el('div', { id: 'fm-root' });
  document.body.appendChild(root);
  const app = new App(root);
  window.fmApp = app; // for measurements and tests: the app and its model
  app.start();
  return app;
}
