// The poller: fetches the layer list and the steps of what is selected, now and every
// POLL_MS, and when the tab is shown again. Replies to an older request are dropped.

import { spanOf } from './color.js';
import { Latest } from './model.js';

const POLL_MS = 10000;

export class Poller {
  /**
   * @param {Model} model
   * @param {object} on callbacks
   * @param {(tags: object) => boolean} on.tags new /tags; returns whether the selection changed
   * @param {() => {run: string, tag: string, compare: string}} on.selection what is selected
   * @param {(steps: object[], changed: boolean) => boolean} on.steps the selected layer's kept
   *   steps; returns whether they differ from those shown
   * @param {(s: {fixed: number[], dead: boolean[], compareFixed: number[]|null}) => void} on.stats
   *   the layer's range and dead channels over the kept steps (/stats), for the sample shown
   * @param {(steps: object[]) => void} on.compareSteps the compare run's steps of that layer
   * @param {(key: string, error: Error|null) => void} on.loaded what `key` names loaded
   *   (error null) or failed
   */
  constructor(model, on) {
    this.model = model;
    this.on = on;
    this.polls = new Latest();
    this.stepLists = new Latest();
    this.compareLists = new Latest();
    this.statsReplies = new Latest();
  }

  start() {
    this.refresh();
    setInterval(() => this.refresh(), POLL_MS);
    // TensorBoard's reload button re-fetches data in the parent; when the tab is shown
    // again or gets focus, look for new steps at once.
    document.addEventListener('visibilitychange', () => { if (!document.hidden) this.refresh(); });
    window.addEventListener('focus', () => this.refresh());
  }

  async refresh() {
    const current = this.polls.take();
    try {
      const tags = await this.model.tags();
      if (!current()) return;
      this.on.loaded('tags', null);
      await this.steps(this.on.tags(tags));
    } catch (e) {
      if (current()) this.on.loaded('tags', e);
    }
  }

  /** Fetches the selected layer's steps (and the compare run's). */
  async steps(selectionChanged) {
    const current = this.stepLists.take();
    const { run, tag } = this.on.selection();
    if (!run || !tag) return;
    let steps;
    try {
      steps = await this.model.steps(run, tag);
    } catch (e) {
      if (current()) this.on.loaded('steps', e);
      return;
    }
    if (!current()) return;
    this.on.loaded('steps', null);
    await this.compareSteps();
    if (this.on.steps(steps, selectionChanged) && steps.length) this.stats(steps[steps.length - 1]);
  }

  /** /stats of the selection, cached per newest step; the grid works without them. */
  async stats(newest) {
    const current = this.statsReplies.take();
    const { run, tag, sample, compare } = this.on.selection();
    const version = newest.wall_time;
    try {
      const stats = await this.model.stats(run, tag, sample, version);
      const theirs = compare && this.model.stats(compare, tag, sample, version).catch(() => null);
      const other = compare ? await theirs : null;
      if (!current()) return;
      this.on.stats({
        fixed: spanOf(stats.min, stats.max),
        dead: Array.isArray(stats.dead) ? stats.dead : null,
        compareFixed: other && spanOf(other.min, other.max),
      });
    } catch (e) {
      // fixed falls back to per layer
    }
  }

  async compareSteps() {
    const current = this.compareLists.take();
    const { compare, tag } = this.on.selection();
    let steps = [];
    if (compare) steps = await this.model.steps(compare, tag).catch(() => []);
    if (current()) this.on.compareSteps(steps);
  }
}
