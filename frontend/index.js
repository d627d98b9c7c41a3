// The Feature Maps tab. TensorBoard imports this ES module in an iframe and calls render().
// Wiring only: each part of the screen is a module of its own that gets callbacks; model.js
// fetches and caches, color.js decides every colour.

import { rankingKey, shownChannels } from './channels.js';
import { Coloring, onSharedScale } from './color.js';
import { Controls } from './controls.js';
import { Detail } from './detail.js';
import { Focus } from './focus.js';
import { Grid } from './grid.js';
import { expose, painted } from './hooks.js';
import { channelOrder } from './layout.js';
import { sliceOf } from './volume.js';
import { Latest, Model } from './model.js';
import { OverTime } from './overtime.js';
import { Overlay } from './overlay.js';
import { Player, nearestIndex } from './player.js';
import { Poller } from './poller.js';
import { Notices, el, emptyState, layerNotes, visibleName } from './views.js';

function addStyles() {
  if (document.getElementById('fm-styles')) return;
  const href = new URL('./style.css', import.meta.url).href;
  document.head.appendChild(el('link', { id: 'fm-styles', rel: 'stylesheet', href }));
}

/** Entry point called by TensorBoard. */
export function render() {
  addStyles();
  const root = el('div', { id: 'fm-root' });
  document.body.appendChild(root);
  const model = new Model();
  const state = { fixed: null, compareFixed: null, dead: null, compareSteps: [] };
  const paints = new Latest();
  const notices = new Notices();
  const controls = new Controls({
    selection: onSelection, compare: onCompare, settings: () => paint(),
  });
  const player = new Player({ step: (t0) => paint(t0) });
  const focus = new Focus({ change: () => paint() });
  const overlay = new Overlay({
    change: () => paint(), steps: (run, tag) => model.steps(run, tag),
  });
  const grid = new Grid({ pick: (channel) => { detail.channel = channel; paint(); } });
  const detail = new Detail({
    coloring: coloringOf, goTo: (i) => player.goTo(i), close: () => paint(),
  });
  const overTime = new OverTime(model, {
    selection: () => controls.selection(),
    player,
    shown: () => grid.current,
    width: () => Math.max(200, root.clientWidth - 48),
    notices,
    open: (i, channel) => { detail.channel = channel; player.goTo(i); },
  });
  const poller = new Poller(model, {
    selection: () => controls.selection(),
    tags: onTags,
    steps: onSteps,
    compareSteps: (steps) => { state.compareSteps = steps; },
    stats: (stats) => { Object.assign(state, stats); paint(); },
    loaded(key, error) {
      if (!error) return notices.ok(key);
      loading.hidden = true; // what loaded before stays on screen, under the notice
      const what = key === 'tags' ? 'layer list' : key;
      return notices.error(key, `Could not load the ${what}: ${error.message}`);
    },
  });
  const loading = el('div', { class: 'fm-muted fm-loading', text: 'Loading…' });
  const empty = emptyState();
  empty.hidden = true;
  const content = el('div', { class: 'fm-content', hidden: true },
    el('div', { class: 'fm-controls' }, controls.node,
      el('div', { class: 'fm-toolbar' }, focus.node, overlay.node), player.node,
      overTime.scalars.node, grid.info),
    el('div', { class: 'fm-main' }, grid.panels, detail.node),
    overTime.timeline.node);
  root.replaceChildren(el('div', { class: 'fm-app' }, loading, notices.node, empty, content));
  window.addEventListener('resize', () => paint());

  function onTags(tags) {
    const runs = Object.keys(tags);
    loading.hidden = true;
    empty.hidden = runs.length > 0;
    content.hidden = runs.length === 0;
    const changed = controls.setTags(tags);
    notices.note(layerNotes(controls.info()));
    showOverlays();
    return changed;
  }

  function onSelection() {
    player.leave();
    detail.close();
    paints.drop(); // drop replies for the old layer
    overTime.reset();
    notices.note(layerNotes(controls.info()));
    showOverlays();
    poller.steps(true);
  }

  /** The layers that can go under the one selected. */
  function showOverlays() {
    const { run, tag } = controls.selection();
    overlay.setLayers(run, controls.tags[run] || {}, tag);
  }

  async function onCompare() {
    await poller.compareSteps();
    const newest = player.steps[player.steps.length - 1];
    if (newest) poller.stats(newest);
    paint();
  }

  function onSteps(steps, selectionChanged) {
    if (!player.setSteps(steps, selectionChanged)) return false;
    if (!selectionChanged && overlay.wanted(0)) overlay.reload(); // its new steps too
    Object.assign(state, { fixed: null, compareFixed: null, dead: null });
    if (selectionChanged) {
      const height = Math.max(300, window.innerHeight - 260);
      controls.fitCellSize(Math.max(200, root.clientWidth - 24), height);
    }
    paint().then(() => overTime.showTimeline());
    overTime.loadScalars();
    return true;
  }

  /** How the grid colours kept step `i` (the filmstrip's frames). */
  async function coloringOf(i) {
    const { run, tag, sample } = controls.selection();
    const { mode, colormap, diff } = controls.settings();
    const load = (entry) => model.load(run, tag, entry.step, entry.wall_time);
    const { depthIndex } = controls.settings();
    const maps = sliceOf(await load(player.steps[i]), depthIndex);
    const before = diff && i > 0 ? sliceOf(await load(player.steps[i - 1]), depthIndex) : null;
    const prev = before && sameShape(before, maps) ? before : null;
    const s = Math.min(sample, maps.n - 1);
    return new Coloring(maps, s, { mode, colormap, diff, prev, fixed: state.fixed });
  }

  /** Paints the step shown; whatever fails is said in the notice, the tab stays up. */
  async function paint(t0 = performance.now()) {
    try {
      await paintStep(t0);
    } catch (e) {
      notices.error('step', `Could not show this step: ${e.message}`);
    }
  }

  async function paintStep(t0) {
    const current = paints.take();
    const ticket = paints.count; // what this paint answers: the newest request when it began
    const { run, tag, sample, compare } = controls.selection();
    const entry = player.entry();
    if (!entry) return;
    player.showPosition();
    const index = player.index();
    const { mode, colormap, diff, sharedScale, ...settings } = controls.settings();
    const chosen = focus.choice(controls.info() ? controls.info().stored[1] : 0);
    const change = chosen.top > 0 && chosen.by === 'change';
    const before = (diff || change) && index > 0 ? player.steps[index - 1] : null;
    const other = compare && state.compareSteps.length
      ? state.compareSteps[nearestIndex(state.compareSteps, entry.step)] : null;
    const wanted = [[run, entry], [run, before], [compare, other]];
    const under = overlay.wanted(entry.step);
    const mine = model.mapsOf(tag, wanted);
    const theirs = model.mapsOf(under && under.tag, [[run, under && under.entry]]);
    const cached = mine.cached && theirs.cached;
    let loaded;
    try {
      loaded = cached ? [...mine.maps, theirs.maps[0]]
        : [...await mine.maps, (await theirs.maps)[0]];
    } catch (e) {
      if (current()) notices.error('step', `Could not load step ${entry.step}: ${e.message}`);
      return;
    }
    if (!current()) return; // a newer selection was made meanwhile
    notices.ok('step');
    // A 3-D layer: the grid draws the depth slice the depth control picks.
    const [maps, prevMaps, otherMaps] = loaded.slice(0, 3)
      .map((m) => sliceOf(m, settings.depthIndex));
    const underMaps = loaded[3];
    // A previous step of another shape has nothing to subtract: say so, draw this step.
    const reshaped = Boolean(prevMaps) && !sameShape(prevMaps, maps);
    const prev = reshaped ? null : prevMaps;
    controls.setSamples(maps.n);
    const s = Math.min(sample, maps.n - 1);
    let coloring = new Coloring(maps, s,
      { mode, colormap, diff, prev: diff ? prev : null, fixed: state.fixed });
    const sorted = channelOrder(maps.c, settings.sort, (c, f) => maps.stat(s, c, f));
    const { top, by, filter } = focus.choice(maps.c);
    const order = shownChannels(sorted, filter, top, () => rankingKey(maps, s, by, prev));
    const background = underMaps ? overlay.background(underMaps, sample) : null;
    let view = null;
    if (compare) {
      let theirs = null;
      if (otherMaps && otherMaps.c === maps.c) {
        const s = Math.min(sample, otherMaps.n - 1);
        const o = { mode, colormap: coloring.colormap, fixed: state.compareFixed };
        theirs = new Coloring(otherMaps, s, o);
      }
      const shared = Boolean(theirs) && sharedScale && !coloring.diffs;
      if (shared) [coloring, theirs] = onSharedScale(coloring, theirs);
      const name = visibleName(compare);
      const title = theirs ? `${name} · step ${other.step}`
        : `${name}: no matching step of this layer`;
      view = { coloring: theirs, shared, title };
    }
    let title = `${visibleName(run)} · step ${entry.step}`;
    if (diff && reshaped) {
      title += ` (step ${before.step} has another shape: nothing to subtract)`;
    } else if (diff) {
      title += prev ? ` − step ${before.step}` : ' (no previous step: nothing to subtract)';
    }
    const width = Math.max(200, root.clientWidth - 24 - (detail.channel !== null ? 312 : 0));
    const selected = detail.channel;
    const { layout } = controls.info() || {};
    grid.draw({
      coloring, title, compare: view, settings, order, background, width,
      deadAll: state.dead, selected, layout,
    });
    if (detail.channel !== null) {
      const stepOf = (i) => player.steps[i].step;
      detail.show(detail.channel, coloring, player.steps.length, index, stepOf, background);
    }
    const timing = cached ? {} : maps.timing;
    overTime.draw();
    painted({
      ms: performance.now() - t0, cached, run, tag, step: entry.step, index, ticket, ...timing,
    });
    model.prefetchAround(run, tag, player.steps, index, maps.bytes);
  }

  expose({
    model,
    goTo: (i) => player.goTo(i),
    get steps() { return player.steps; },
    get paintTicket() { return paints.count; }, // a paint done with it shows what is chosen
    get fixed() { return state.fixed; },
    get zoom() { return detail.zoom.view; },
    get overlaid() { return Boolean(overlay.wanted(0)); },
    get current() { return grid.current && { maps: grid.current.coloring.maps, ...grid.current }; },
    set prefetch(on) { model.prefetch = on; },
    timeline: overTime.timeline,
    scalars: overTime.scalars,
  });
  poller.start();
}

/** Whether two decoded steps hold maps of one shape (a difference needs it). */
function sameShape(a, b) {
  return a.n === b.n && a.c === b.c && a.h === b.h && a.w === b.w;
}
