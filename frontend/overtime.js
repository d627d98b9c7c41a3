// The views over the kept steps, wired to the rest of the tab: the timeline under the grid
// and the run's scalar chart beside the slider. Each fetches what it draws through the model
// and drops a reply that arrives after the selection changed.

import { timelinePainted } from './hooks.js';
import { Latest } from './model.js';
import { ScalarChart } from './scalars.js';
import { Timeline } from './timeline.js';

export class OverTime {
  /**
   * @param {Model} model
   * @param {object} tab what the two views read of the rest of the tab
   * @param {() => {run: string, tag: string, sample: number}} tab.selection
   * @param {Player} tab.player the step bar: its kept steps, index, slider and goTo
   * @param {() => object|null} tab.shown the grid's current view (its order and colouring)
   * @param {() => number} tab.width the width the timeline may take
   * @param {Notices} tab.notices
   * @param {(index: number, channel: number) => void} tab.open show kept step `index` with
   *   `channel` in the detail view
   */
  constructor(model, tab) {
    this.model = model;
    this.tab = tab;
    this.timeline = new Timeline({ stat: () => this.showTimeline(), open: tab.open });
    this.scalars = new ScalarChart({
      tag: () => this.loadScalars(), goTo: (i) => tab.player.goTo(i),
    });
    this.timelineReplies = new Latest();
    this.scalarReplies = new Latest();
    this.series = null; // the chosen statistic's series, and zero_fraction's (dead onsets)
    this.zero = null;
    this.points = null; // the selected scalar's points
  }

  /** Another run or layer: forget the old layer's timeline. */
  reset() {
    this.timelineReplies.drop();
    this.series = null;
    this.zero = null;
    this.timeline.hide();
  }

  /** Redraws both for the step shown. */
  draw() {
    this.drawTimeline();
    this.drawScalars();
  }

  /** Fetches the timeline's series of the steps shown (and zero_fraction, for dead onsets). */
  async showTimeline(t0 = performance.now()) {
    const current = this.timelineReplies.take();
    const { run, tag, sample } = this.tab.selection();
    const steps = this.tab.player.steps;
    if (!steps.length) return;
    const newest = steps[steps.length - 1];
    const version = [steps.length, newest.step, newest.wall_time];
    const stat = this.timeline.selected();
    const get = (s) => this.model.series(run, tag, s, sample, version);
    try {
      const [series, zero] = await Promise.all([get(stat), get('zero_fraction')]);
      if (!current()) return;
      this.tab.notices.ok('timeline');
      // Steps that changed in between: the next poll brings both up to date.
      if (series.count !== steps.length || series.last !== newest.step) return;
      Object.assign(this, { series, zero });
      this.drawTimeline();
      timelinePainted({ ms: performance.now() - t0, stat, steps: series.rows });
    } catch (e) {
      if (!current()) return;
      this.tab.notices.error('timeline', `Could not load the timeline: ${e.message}`);
    }
  }

  drawTimeline() {
    const { series, zero } = this;
    const shown = this.tab.shown();
    if (!series || !shown) return;
    const order = shown.order.length === series.cols ? shown.order
      : Array.from({ length: series.cols }, (_, c) => c);
    const { player } = this.tab;
    this.timeline.draw({
      series, zero, order, index: player.index(), colormap: shown.coloring.colormap,
      width: this.tab.width(), stepOf: (i) => player.steps[i].step,
    });
  }

  /** The run's scalar tags and the points of the one selected. */
  async loadScalars() {
    const current = this.scalarReplies.take();
    const { run } = this.tab.selection();
    try {
      const tags = (await this.model.scalarTags())[run] || [];
      if (!current()) return;
      const tag = this.scalars.setTags(tags);
      const points = tag ? await this.model.scalars(run, tag) : [];
      if (!current()) return;
      this.points = points;
      this.drawScalars();
    } catch (e) {
      if (current()) this.tab.notices.error('scalars', `Could not load the scalars: ${e.message}`);
    }
  }

  drawScalars() {
    const { player } = this.tab;
    if (!this.points || !this.scalars.selected() || !player.steps.length) return;
    const slider = player.slider.getBoundingClientRect();
    const box = this.scalars.node.getBoundingClientRect();
    const thumb = 8; // half the width of the slider's thumb: where its ends lie
    this.scalars.draw({
      points: this.points,
      steps: player.steps.map((s) => s.step),
      index: player.index(),
      axis: { left: slider.left - box.left + thumb, width: slider.width - 2 * thumb },
    });
  }
}
