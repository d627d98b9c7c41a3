// The player: the step bar (play, slider, step number) and which kept step is shown.

import { el, field } from './views.js';

const PLAY_MS = 250;

/** The index of the kept step closest to `step`. */
export function nearestIndex(steps, step) {
  let best = 0;
  for (let i = 1; i < steps.length; i++) {
    if (Math.abs(steps[i].step - step) < Math.abs(steps[best].step - step)) best = i;
  }
  return best;
}

export class Player {
  /**
   * @param {object} on callbacks
   * @param {(t0: number) => void} on.step another step was chosen at time t0 (performance.now)
   */
  constructor(on) {
    this.on = on;
    this.steps = [];
    this.timer = null;
    this.pending = null; // the step to stay near while another layer's steps load
    this.button = el('button', {
      id: 'fm-play', type: 'button', class: 'fm-button', text: '▶', title: 'Play / pause',
    });
    this.slider = el('input', { id: 'fm-step', type: 'range', min: 0, max: 0, step: 1, value: 0 });
    this.input = el('input', {
      id: 'fm-step-input', type: 'number', min: 0, step: 1, class: 'fm-step-input',
    });
    this.info = el('span', { id: 'fm-step-info', class: 'fm-muted' });
    this.node = el('div', { class: 'fm-stepbar' },
      this.button, this.slider, field('Step', this.input), this.info);
    this.slider.addEventListener('input', () => this.goTo(Number(this.slider.value)));
    this.input.addEventListener('change', () => {
      if (this.steps.length) this.goTo(nearestIndex(this.steps, Number(this.input.value)));
    });
    this.button.addEventListener('click', () => this.toggle());
    document.addEventListener('keydown', (e) => this.onKey(e));
  }

  index() {
    return Math.min(Number(this.slider.value) || 0, Math.max(0, this.steps.length - 1));
  }

  /** The kept step shown, or undefined when there is none. */
  entry() {
    return this.steps[this.index()];
  }

  /** Another layer was chosen: its steps load next; stay near the step shown unless at the end. */
  leave() {
    const index = this.index();
    if (this.steps.length) {
      this.pending = index === this.steps.length - 1 ? null : this.steps[index].step;
    }
    this.steps = [];
  }

  /**
   * The layer's kept steps, as polled. Stays on the step shown (or near it, for another
   * layer) unless the newest was shown: then follows the newest.
   * @returns {boolean} whether the list changed
   */
  setSteps(steps, changed) {
    const selectionChanged = changed || this.steps.length === 0;
    const atEnd = this.steps.length === 0 ? this.pending == null
      : this.index() === this.steps.length - 1;
    const current = this.steps.length ? this.entry().step : this.pending;
    this.pending = null;
    const same = !selectionChanged && steps.length === this.steps.length
      && steps.every((s, i) => s.step === this.steps[i].step
        && s.wall_time === this.steps[i].wall_time);
    if (same) return false;
    this.steps = steps;
    this.slider.max = String(Math.max(0, steps.length - 1));
    let index = steps.length - 1;
    if (current != null && !atEnd) {
      const found = selectionChanged ? -1 : steps.findIndex((s) => s.step === current);
      if (found >= 0) index = found;
      else if (selectionChanged) index = nearestIndex(steps, current);
    }
    this.slider.value = String(Math.max(0, index));
    return true;
  }

  goTo(index) {
    const t0 = performance.now();
    this.slider.value = String(Math.max(0, Math.min(this.steps.length - 1, index)));
    this.on.step(t0);
  }

  /** Shows where the step shown is. */
  showPosition() {
    const entry = this.entry();
    if (!entry) return;
    this.input.value = String(entry.step);
    this.info.textContent = `${this.index() + 1} of ${this.steps.length} kept steps`;
  }

  onKey(e) {
    const target = e.target;
    const typing = target && (target.tagName === 'SELECT'
      || (target.tagName === 'INPUT' && target.type !== 'checkbox'));
    if (typing) return;
    if (e.key === 'ArrowLeft' || e.key === 'ArrowRight') {
      e.preventDefault();
      this.goTo(this.index() + (e.key === 'ArrowRight' ? 1 : -1));
    } else if (e.key === ' ') {
      e.preventDefault();
      this.toggle();
    }
  }

  toggle() {
    if (this.timer) {
      clearInterval(this.timer);
      this.timer = null;
      this.button.textContent = '▶';
      return;
    }
    if (this.index() >= this.steps.length - 1) this.goTo(0);
    this.button.textContent = '❚❚';
    this.timer = setInterval(() => {
      if (this.index() >= this.steps.length - 1) this.toggle();
      else this.goTo(this.index() + 1);
    }, PLAY_MS);
  }
}
