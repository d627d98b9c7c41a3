// 3-D layers (NCDHW): the writer stacks each channel's D depth slices vertically into one
// stored map of D*H x W. The grid draws one slice at a time, picked by the depth control.

/** Depth slices drawn at most (render.MAX_DEPTH): a deeper layer is drawn as 2-D maps. */
export const MAX_DEPTH = 4096;

/**
 * How many depth slices a layer's stored maps hold: 1 unless it is a 3-D layer of at most
 * MAX_DEPTH slices (render.depth_of; tests/layout_cases.json runs both).
 */
export function depthOf(info) {
  if (!info || info.layout !== 'NCDHW' || !Array.isArray(info.shape) || info.shape.length !== 5
    || !Array.isArray(info.stored) || info.stored.length !== 4) {
    return 1;
  }
  const depth = info.shape[2];
  const stackedH = info.stored[2];
  const ok = Number.isInteger(depth) && depth > 1 && depth <= MAX_DEPTH;
  return ok && Number.isInteger(stackedH) && stackedH % depth === 0 ? depth : 1;
}

/**
 * Depth slice `d` of every map of a DecodedMaps: the same accessor with h the slice height.
 * Statistics stay those of the whole volume, so every slice of a channel shares its scale.
 */
export class DepthSlice {
  /**
   * @param {import('./decode.js').DecodedMaps} maps
   * @param {number} depth the slices stacked in each map
   * @param {number} d the slice shown, 0..depth-1
   */
  constructor(maps, depth, d) {
    if (!(Number.isInteger(d) && d >= 0 && d < depth) || maps.h % depth !== 0) {
      throw new RangeError(`depth slice ${d} of ${depth} does not fit maps of height ${maps.h}`);
    }
    this.base = maps;
    this.depth = depth;
    this.d = d;
    this.n = maps.n;
    this.c = maps.c;
    this.h = maps.h / depth;
    this.w = maps.w;
    this.header = maps.header;
    this.stats = maps.stats;
    this.bytes = maps.bytes;
    this.timing = maps.timing;
  }

  map(sample, channel) { return this.base.map(sample, channel); }

  stat(sample, channel, field) { return this.base.stat(sample, channel, field); }

  min(sample, channel) { return this.base.min(sample, channel); }

  max(sample, channel) { return this.base.max(sample, channel); }

  codesOf(sample, channel) {
    const codes = this.base.codesOf(sample, channel);
    const size = this.h * this.w;
    return codes && codes.subarray(this.d * size, (this.d + 1) * size);
  }

  valueAt(sample, channel, y, x) {
    return this.base.valueAt(sample, channel, this.d * this.h + y, x);
  }

  floats(sample, channel) {
    const size = this.h * this.w;
    return this.base.floats(sample, channel).subarray(this.d * size, (this.d + 1) * size);
  }
}

/**
 * `maps` as the grid draws it: slice `d` (at most its last) of a step of a 3-D layer, else
 * itself. Each step's own header says whether it is 3-D, and of how many slices: a run
 * whose layer changed shape is drawn step by step as each step was logged.
 */
export function sliceOf(maps, d) {
  const depth = maps ? depthOf(maps.header) : 1;
  if (depth <= 1) return maps;
  return new DepthSlice(maps, depth, Math.min(Math.max(0, d), depth - 1));
}
