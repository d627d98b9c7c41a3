// The overlay control: which layer (1 or 3 channels, of the shown layer's aspect: the input
// image logged as a layer) is drawn under the maps, and at what opacity the maps cover it.

import { backgroundColors, overlayWeight, scaleColors } from './color.js';
import { Latest } from './model.js';
import { nearestIndex } from './player.js';
import { el, field, setOptions, visibleName } from './views.js';

/** Whether a layer of /tags `stored` shape [N, C, H, W] can be drawn under maps of h x w. */
export function canUnderlay(stored, h, w) {
  const [, c, bh, bw] = stored;
  return (c === 1 || c === 3) && bh * w === bw * h;
}

export class Overlay {
  /**
   * @param {object} on callbacks
   * @param {() => void} on.change the background or opacity changed, or its steps loaded
   * @param {(run: string, tag: string) => Promise<object[]>} on.steps a layer's kept steps
   */
  constructor(on) {
    this.on = on;
    this.layer = el('select', { id: 'fm-overlay' });
    this.opacity = el('input', {
      id: 'fm-opacity', type: 'range', min: 0, max: 100, step: 1, value: 60,
    });
    this.opacityField = field('Opacity', this.opacity);
    this.node = el('span', { class: 'fm-toolbar-group' },
      field('Overlay on', this.layer), this.opacityField);
    this.steps = [];
    this.key = '';
    this.loads = new Latest();
    this.cache = { maps: null, sample: -1, weight: -1, colors: null };
    this.layer.addEventListener('change', () => this.reload());
    this.opacity.addEventListener('input', () => on.change());
    this.run = '';
    this.showing();
  }

  /**
   * Offers the layers of `run` that fit under `tag`'s maps (keeping the choice if it still fits).
   * @param {string} run
   * @param {object} layers /tags entries of the run
   * @param {string} tag the layer shown
   */
  setLayers(run, layers, tag) {
    this.run = run;
    const info = layers[tag];
    const [, , h, w] = info ? info.stored : [0, 0, 0, 0];
    const fits = Object.keys(layers).sort()
      .filter((t) => t !== tag && info && canUnderlay(layers[t].stored, h, w))
      .map((t) => ({ value: t, text: visibleName(layers[t].layer) }));
    setOptions(this.layer, [{ value: '', text: '(none)' }, ...fits], this.layer.value);
    if (JSON.stringify([run, this.layer.value]) !== this.key) this.reload();
  }

  /** Fetches the background layer's kept steps (again: new steps come while training runs). */
  async reload() {
    const current = this.loads.take();
    const tag = this.layer.value;
    const key = JSON.stringify([this.run, tag]);
    // New steps of the same background keep the old list until the new one arrives: clearing
    // it would paint the maps without their background in between (live training).
    if (key !== this.key) this.steps = [];
    this.key = key;
    this.showing();
    if (!tag) {
      this.on.change();
      return;
    }
    try {
      const steps = await this.on.steps(this.run, tag);
      if (!current()) return;
      this.steps = steps;
    } catch (e) {
      if (!current()) return;
    }
    this.on.change();
  }

  showing() {
    this.opacityField.hidden = !this.layer.value;
  }

  /** The background's tag and kept step to draw under `step`, or null for none. */
  wanted(step) {
    if (!this.layer.value || !this.steps.length) return null;
    return { tag: this.layer.value, entry: this.steps[nearestIndex(this.steps, step)] };
  }

  /** The weight of the maps over the background, 0..256. */
  weight() {
    return overlayWeight(Number(this.opacity.value) / 100);
  }

  /**
   * The background to draw: its colours scaled by 256 - weight (see color.scaleColors),
   * cached while the step, sample and opacity stay.
   * @param {DecodedMaps} maps the background layer's step
   * @param {number} sample
   * @returns {{colors: Uint32Array, w: number, h: number, weight: number}}
   */
  background(maps, sample) {
    const weight = this.weight();
    const c = this.cache;
    if (c.maps !== maps || c.sample !== sample || c.weight !== weight) {
      const colors = scaleColors(backgroundColors(maps, sample), 256 - weight);
      Object.assign(c, { maps, sample, weight, colors });
    }
    return { colors: c.colors, w: maps.w, h: maps.h, weight };
  }
}
