// A least-recently-used cache bounded by a byte budget. No DOM: Node tests import it.

export class ByteLRU {
  /**
   * @param {number} budget bytes the entries may hold together
   */
  constructor(budget) {
    if (!(budget > 0)) throw new RangeError(`budget must be positive, got ${budget}`);
    this.budget = budget;
    this.bytes = 0;
    this.entries = new Map(); // key -> {value, bytes}; Map order is use order
  }

  /** The value, marked as just used, or undefined. */
  get(key) {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  has(key) {
    return this.entries.has(key);
  }

  /** Stores a value of `bytes` size, evicting the least recently used beyond the budget. */
  set(key, value, bytes) {
    if (this.entries.has(key)) this.delete(key);
    if (bytes > this.budget) return;
    this.entries.set(key, { value, bytes });
    this.bytes += bytes;
    for (const [oldest, entry] of this.entries) {
      if (this.bytes <= this.budget) break;
      this.entries.delete(oldest);
      this.bytes -= entry.bytes;
    }
  }

  delete(key) {
    const entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key);
      this.bytes -= entry.bytes;
    }
  }

  clear() {
    this.entries.clear();
    this.bytes = 0;
  }

  get size() {
    return this.entries.size;
  }
}
