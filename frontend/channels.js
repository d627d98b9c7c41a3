// Which channels the grid shows: a channel filter ("3, 17, 40-45") and the top K by a
// statistic. No DOM: Node tests import it.

/** The statistics top K ranks by, as the menu lists them. */
export const RANKINGS = {
  std: 'std',
  mean: 'mean',
  zero_fraction: 'zero fraction',
  change: 'change from the step before',
};

/** The most channels a filter may name (a range like 0-999999999 is refused, not expanded). */
const MAX_LISTED = 1 << 16;

/**
 * Parses a channel filter: indices and inclusive ranges, separated by commas or spaces.
 * @param {string} text e.g. '3, 17, 40-45'; empty: no filter
 * @param {number} count the layer's channels
 * @returns {{channels: number[]|null, error: string|null}} channels ascending and distinct,
 *   null when there is no filter or it is invalid (then `error` says why)
 */
export function parseChannels(text, count) {
  const parts = String(text).split(/[\s,]+/).filter((p) => p !== '');
  if (!parts.length) return { channels: null, error: null };
  const chosen = new Set();
  for (const part of parts) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) {
      return { channels: null, error: `"${part}" is not a channel or a range like 40-45` };
    }
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    if (last < first) return { channels: null, error: `range ${part} runs backwards` };
    if (last >= count) {
      return { channels: null, error: `channel ${last} does not exist: this layer has 0-${count - 1}` };
    }
    if (last - first >= MAX_LISTED) return { channels: null, error: `range ${part} is too long` };
    for (let c = first; c <= last; c++) chosen.add(c);
  }
  return { channels: [...chosen].sort((a, b) => a - b), error: null };
}

/**
 * `candidates` ordered by `key` descending (NaN last), ties by channel index.
 * @param {number[]} candidates channel indices
 * @param {ArrayLike<number>} key one number per channel of the layer
 */
export function rankBy(candidates, key) {
  const k = (c) => (Number.isNaN(key[c]) ? -Infinity : key[c]);
  return [...candidates].sort((a, b) => k(b) - k(a) || a - b);
}

/**
 * How much each channel changed since the previous kept step: the mean |this - previous|
 * over the positions finite in both. NaN where nothing is finite or there is no previous step.
 * @param {DecodedMaps} maps
 * @param {DecodedMaps|null} prev of the same shape, or null
 * @param {number} sample
 * @returns {Float64Array}
 */
export function changeOf(maps, prev, sample) {
  const out = new Float64Array(maps.c).fill(NaN);
  if (!prev || prev.c !== maps.c || prev.h !== maps.h || prev.w !== maps.w) return out;
  const s = Math.min(sample, prev.n - 1);
  for (let c = 0; c < maps.c; c++) {
    const a = maps.floats(sample, c);
    const b = prev.floats(s, c);
    let sum = 0;
    let n = 0;
    for (let i = 0; i < a.length; i++) {
      const d = Math.abs(a[i] - b[i]);
      if (Number.isFinite(d)) {
        sum += d;
        n++;
      }
    }
    if (n) out[c] = sum / n;
  }
  return out;
}

/**
 * The statistic top K ranks by, per channel.
 * @param {DecodedMaps} maps
 * @param {number} sample
 * @param {string} by a RANKINGS key
 * @param {DecodedMaps|null} prev the previous kept step, for 'change'
 * @returns {Float64Array}
 */
export function rankingKey(maps, sample, by, prev) {
  if (!Object.prototype.hasOwnProperty.call(RANKINGS, by)) throw new Error(`unknown ranking: ${by}`);
  if (by === 'change') return changeOf(maps, prev, sample);
  return Float64Array.from({ length: maps.c }, (_, c) => maps.stat(sample, c, by));
}

/**
 * The channels to show, in display order.
 * @param {number[]} order every channel, in the order the Sort menu gives
 * @param {number[]|null} filter the channels the filter allows (null: all)
 * @param {number} top K (0: no top-K, the filtered channels in `order`)
 * @param {() => ArrayLike<number>} key the ranking statistic per channel (only called for K > 0)
 * @returns {number[]}
 */
export function shownChannels(order, filter, top, key) {
  const allowed = filter ? new Set(filter) : null;
  const candidates = allowed ? order.filter((c) => allowed.has(c)) : order;
  if (!(top > 0)) return candidates;
  return rankBy(candidates, key()).slice(0, top);
}
