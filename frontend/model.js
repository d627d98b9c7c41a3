// Data access: the plugin's routes, fetched relative to this module, with caches.
// See tb_featmap/http_api.md.

import { decodePayload } from './decode.js';
import { ByteLRU } from './lru.js';
import { parseNpy2D } from './npy.js';

const BASE = new URL('./', import.meta.url);

/** The URL of a route with query parameters. */
export function routeURL(route, params = {}) {
  const url = new URL(route, BASE);
  url.search = new URLSearchParams(params).toString();
  return url;
}

async function fetchOK(url, init) {
  const response = await fetch(url, init);
  if (!response.ok) {
    const text = (await response.text()).slice(0, 200);
    throw new Error(`${response.status} ${text}`);
  }
  return response;
}

/**
 * The guard against stale responses: take() a ticket when a request starts; the reply is
 * used only while its ticket is current, i.e. no newer request of the same kind started.
 */
export class Latest {
  constructor() {
    this.count = 0;
  }

  /** @returns {() => boolean} true while no newer ticket was taken */
  take() {
    const mine = ++this.count;
    return () => mine === this.count;
  }

  /** Makes every ticket taken so far stale. */
  drop() {
    this.count++;
  }
}

/** Cached access to tags, steps, statistics and decoded maps. */
export class Model {
  /**
   * @param {number} [budget] bytes of decoded maps kept in memory
   */
  constructor(budget = 384 << 20) {
    this.maps = new ByteLRU(budget);
    this.inflight = new Map();
    this.statsCache = new Map();
    this.seriesCache = new ByteLRU(64 << 20); // decoded /series answers
    this.seriesInflight = new Map();
    this.prefetch = true; // off: only what is shown is fetched (measurements switch it off)
    this.prefetching = null; // the layer whose steps are being prefetched
  }

  /** {run: {tag: info}} from /tags (no-store: new runs appear while training runs). */
  async tags() {
    return (await fetchOK(routeURL('tags'), { cache: 'no-store' })).json();
  }

  /** [{step, wall_time}] of one layer, oldest first. */
  async steps(run, tag) {
    return (await fetchOK(routeURL('steps', { run, tag }), { cache: 'no-store' })).json();
  }

  /**
   * Per-channel statistics over the kept steps, cached per `version` (e.g. the newest step).
   */
  async stats(run, tag, sample, version) {
    const key = JSON.stringify([run, tag, sample, version]);
    if (!this.statsCache.has(key)) {
      if (this.statsCache.size > 64) this.statsCache.clear();
      const request = fetchOK(routeURL('stats', { run, tag, sample }), { cache: 'no-store' })
        .then((r) => r.json());
      request.catch(() => this.statsCache.delete(key));
      this.statsCache.set(key, request);
    }
    return this.statsCache.get(key);
  }

  /**
   * One statistic of every channel at every kept step (/series), decoded: {rows (steps),
   * cols (channels), data: Float32Array, count, first, last (the steps it covers)}.
   * Cached per `version` (the steps it should cover), up to 64 MiB.
   */
  series(run, tag, stat, sample, version) {
    const key = JSON.stringify([run, tag, stat, sample, version]);
    const hit = this.seriesCache.get(key);
    if (hit) return Promise.resolve(hit);
    let request = this.seriesInflight.get(key);
    if (!request) {
      request = fetchOK(routeURL('series', { run, tag, stat, sample }), { cache: 'no-store' })
        .then(async (r) => {
          const covers = (r.headers.get('X-Feature-Maps-Steps') || '').split(' ').map(Number);
          const series = parseNpy2D(await r.arrayBuffer());
          const [count, first, last] = covers;
          Object.assign(series, { count, first, last });
          this.seriesCache.set(key, series, series.data.byteLength);
          return series;
        })
        .finally(() => this.seriesInflight.delete(key));
      this.seriesInflight.set(key, request);
    }
    return request;
  }

  /** {run: [scalar tag]} of the runs' scalars (no-store: they grow while training runs). */
  async scalarTags() {
    return (await fetchOK(routeURL('scalar_tags'), { cache: 'no-store' })).json();
  }

  /** [{step, value}] of one scalar of one run. */
  async scalars(run, tag) {
    return (await fetchOK(routeURL('scalars', { run, tag }), { cache: 'no-store' })).json();
  }

  static key(run, tag, step, wallTime) {
    return JSON.stringify([run, tag, step, wallTime]);
  }

  /** The decoded maps of one step if they are in memory, else undefined (synchronous). */
  peek(run, tag, step, wallTime) {
    return this.maps.get(Model.key(run, tag, step, wallTime));
  }

  /**
   * The decoded maps of one step: from memory, from a request already under way, or
   * fetched with its wall_time (which lets the browser cache the reply).
   * @returns {Promise<object>}
   */
  load(run, tag, step, wallTime) {
    const key = Model.key(run, tag, step, wallTime);
    const hit = this.maps.get(key);
    if (hit) return Promise.resolve(hit);
    let request = this.inflight.get(key);
    if (!request) {
      const t0 = performance.now();
      let t1;
      request = fetchOK(routeURL('maps', { run, tag, step, wall_time: wallTime }))
        .then((r) => r.arrayBuffer())
        .then((buffer) => {
          t1 = performance.now();
          return decodePayload(buffer);
        })
        .then((maps) => {
          maps.timing = { fetch: t1 - t0, decode: performance.now() - t1 }; // for measurements
          this.maps.set(key, maps, maps.bytes);
          return maps;
        })
        .finally(() => this.inflight.delete(key));
      this.inflight.set(key, request);
    }
    return request;
  }

  /**
   * The decoded maps of several steps of one layer, given as [run, entry] pairs (entry
   * {step, wall_time}, or null for none): an array at once when all are in memory, so
   * scrubbing cached steps is instant, else a promise of it.
   * @returns {{cached: boolean, maps: Array|Promise<Array>}}
   */
  mapsOf(tag, wanted) {
    const hits = wanted.map(([run, e]) => e && this.peek(run, tag, e.step, e.wall_time));
    if (wanted.every(([, e], i) => !e || hits[i])) return { cached: true, maps: hits };
    const load = ([run, e], i) => e && (hits[i] || this.load(run, tag, e.step, e.wall_time));
    return { cached: false, maps: Promise.all(wanted.map(load)) };
  }

  /**
   * Which steps are fetched besides the one shown: first the neighbours of `index`, then,
   * in the background, one request at a time and nearest first, every kept step of the
   * layer when they fit in half the memory cache. Then scrubbing anywhere is instant.
   * @param {string} run
   * @param {string} tag
   * @param {{step:number, wall_time:number}[]} steps the layer's kept steps
   * @param {number} index the step shown
   * @param {number} bytes the size of one decoded step
   */
  prefetchAround(run, tag, steps, index, bytes) {
    if (!this.prefetch) return;
    for (const i of [index + 1, index + 2, index - 1, index + 3, index + 4, index - 2]) {
      const entry = steps[i];
      if (entry && !this.peek(run, tag, entry.step, entry.wall_time)) {
        this.load(run, tag, entry.step, entry.wall_time).catch(() => {});
      }
    }
    this.prefetchLayer(run, tag, steps, index, bytes);
  }

  async prefetchLayer(run, tag, steps, index, bytes) {
    const key = JSON.stringify([run, tag, steps.length]);
    if (this.prefetching === key || steps.length * bytes > this.maps.budget / 2) return;
    this.prefetching = key;
    const nearest = steps.map((entry, i) => ({ entry, distance: Math.abs(i - index) }))
      .sort((a, b) => a.distance - b.distance);
    for (const { entry } of nearest) {
      if (this.prefetching !== key || !this.prefetch) return;
      if (!this.peek(run, tag, entry.step, entry.wall_time)) {
        await this.load(run, tag, entry.step, entry.wall_time).catch(() => {});
      }
    }
  }
}
