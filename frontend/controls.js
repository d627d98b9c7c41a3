// The controls: which run, layer, sample and compare run, and how to draw them.

import { MODES } from './color.js';
import { COLORMAPS } from './colormaps.js';
import { el, field, setOptions, visibleName } from './views.js';
import { layerLabel } from './layout.js';
import { depthOf } from './volume.js';

const SORTS = ['index', 'mean', 'std', 'sparsity'];

/** The most samples the sample menu lists. */
export const MAX_SAMPLE_OPTIONS = 256;

const named = (names) => names.map((n) => ({ value: n, text: visibleName(n) }));

export class Controls {
  /**
   * @param {object} on callbacks
   * @param {() => void} on.selection the run, layer or sample changed
   * @param {() => void} on.compare the compare run or its scale changed
   * @param {() => void} on.settings a drawing setting changed
   */
  constructor(on) {
    const select = (id) => el('select', { id });
    this.run = select('fm-run');
    this.layer = select('fm-layer');
    this.sample = select('fm-sample');
    this.compare = select('fm-compare');
    this.compareScale = select('fm-compare-scale');
    this.colormap = select('fm-colormap');
    this.norm = select('fm-norm');
    this.sort = select('fm-sort');
    this.depth = select('fm-depth');
    this.depthField = field('Depth', this.depth);
    this.depthField.hidden = true; // only for 3-D layers
    const colormaps = COLORMAPS.map((c) => ({
      value: c, text: c === 'diverging' ? 'diverging (RdBu)' : c,
    }));
    setOptions(this.colormap, colormaps, 'viridis');
    const modes = Object.entries(MODES).map(([value, text]) => ({ value, text }));
    setOptions(this.norm, modes, 'channel');
    this.chosenNorm = 'channel'; // the user's choice; fitNorm shows a linear layer per layer
    setOptions(this.sort, SORTS.map((value) => ({ value, text: value })), 'index');
    setOptions(this.compareScale, [
      { value: 'shared', text: 'shared by both runs' },
      { value: 'own', text: 'each run its own' },
    ], 'shared');
    this.size = el('input', { id: 'fm-size', type: 'range', min: 8, max: 256, step: 4, value: 64 });
    this.diff = el('input', { id: 'fm-diff', type: 'checkbox' });
    this.sampleField = field('Sample', this.sample);
    this.sampleField.hidden = true;
    this.scaleField = field('Compare scale', this.compareScale);
    this.scaleField.hidden = true;
    this.tags = {};
    const diffLabel = el('label', { class: 'fm-field fm-check' },
      this.diff, el('span', { text: 'Difference from previous step' }));
    this.node = el('div', {},
      el('div', { class: 'fm-toolbar' },
        field('Run', this.run), field('Layer', this.layer, 'fm-wide'), this.sampleField,
        field('Compare with', this.compare), this.scaleField),
      el('div', { class: 'fm-toolbar' },
        field('Colormap', this.colormap), field('Normalise', this.norm),
        field('Sort', this.sort), field('Cell size', this.size), this.depthField, diffLabel));
    for (const control of [this.run, this.layer]) {
      control.addEventListener('change', () => {
        this.fill();
        on.selection();
      });
    }
    this.sample.addEventListener('change', () => on.selection());
    for (const control of [this.compare, this.compareScale]) {
      control.addEventListener('change', () => {
        this.scaleField.hidden = !this.compare.value;
        on.compare();
      });
    }
    this.norm.addEventListener('change', () => { this.chosenNorm = this.norm.value; });
    for (const control of [this.colormap, this.norm, this.sort, this.diff, this.depth]) {
      control.addEventListener('change', () => on.settings());
    }
    this.size.addEventListener('input', () => on.settings());
  }

  /**
   * New /tags: fills the menus, keeping what is selected where it is still offered.
   * @returns {boolean} whether the run or layer selected changed
   */
  setTags(tags) {
    const before = [this.run.value, this.layer.value];
    this.tags = tags;
    setOptions(this.run, named(Object.keys(tags).sort()), this.run.value);
    this.fill();
    return before[0] !== this.run.value || before[1] !== this.layer.value;
  }

  /** The layer and compare menus for the run selected. */
  fill() {
    const run = this.run.value;
    const layers = this.tags[run] || {};
    // The server lists layers in logging order (see http_api.md); keep it.
    const options = Object.keys(layers).map((tag) => {
      const info = layers[tag];
      return { value: tag, text: `${visibleName(info.layer)} · ${layerLabel(info)}` };
    });
    setOptions(this.layer, options, this.layer.value);
    if (this.layer.value !== this.normFor) this.fitNorm();
    const depth = depthOf(this.info());
    const slices = Array.from({ length: depth },
      (_, d) => ({ value: String(d), text: `d ${d} of ${depth}` }));
    setOptions(this.depth, slices, this.depth.value);
    this.depthField.hidden = depth <= 1;
    const others = Object.keys(this.tags).sort()
      .filter((r) => r !== run && this.tags[r][this.layer.value]);
    setOptions(this.compare, [{ value: '', text: '(none)' }, ...named(others)], this.compare.value);
    this.scaleField.hidden = !this.compare.value;
  }

  /**
   * A linear layer's maps are 1 x 1: per channel each is flat, so it is shown per layer when
   * the choice is per channel, and the menu says why per channel shows nothing. Any other
   * layer is shown as chosen: leaving a linear layer gives the user's choice back.
   */
  fitNorm() {
    this.normFor = this.layer.value;
    const info = this.info();
    const linear = Boolean(info) && info.layout === 'NF';
    const option = [...this.norm.options].find((o) => o.value === 'channel');
    if (option) option.textContent = linear ? `${MODES.channel} (flat: 1×1 maps)` : MODES.channel;
    const chosen = this.chosenNorm;
    this.norm.value = linear && chosen === 'channel' ? 'layer' : chosen;
  }

  /**
   * The samples a step actually holds (its decoded statistics say how many), not what a
   * header claims; at most MAX_SAMPLE_OPTIONS of them.
   */
  setSamples(count) {
    const n = Math.max(1, Math.min(count, MAX_SAMPLE_OPTIONS));
    if (n === this.sample.options.length) return;
    const options = Array.from({ length: n }, (_, i) => ({ value: String(i), text: String(i) }));
    setOptions(this.sample, options, this.sample.value);
    this.sampleField.hidden = n <= 1;
  }

  /** The /tags entry of the layer selected. */
  info() {
    return (this.tags[this.run.value] || {})[this.layer.value];
  }

  selection() {
    return {
      run: this.run.value,
      tag: this.layer.value,
      sample: Number(this.sample.value || 0),
      compare: this.compare.value,
    };
  }

  settings() {
    return {
      colormap: this.colormap.value,
      mode: this.norm.value,
      sort: this.sort.value,
      size: Number(this.size.value),
      diff: this.diff.checked,
      depthIndex: Number(this.depth.value || 0),
      sharedScale: this.compareScale.value === 'shared',
    };
  }

  /** A cell size that lets the layer's grid fill `width` x `height`, within 16..160 pixels. */
  fitCellSize(width, height) {
    const info = this.info();
    if (!info) return;
    const [, c, h, w] = info.stored;
    const aspect = Math.min(1, Math.max(h, w) / Math.min(h, w));
    const perCell = Math.sqrt((width * height) / c) * aspect - 2;
    this.size.value = String(Math.max(16, Math.min(160, Math.floor(perCell / 4) * 4)));
  }
}
