/**
 * A bounded, per-stream fair queue for one model's pending items.
 *
 * - Bounded: at most `maxQueue` rows are queued. An item that does not fit waits for admission
 *   (backpressure); waiting items are admitted round-robin across streams, so a stream flooding
 *   the queue cannot lock others out of it either.
 * - Fair: a batch is seeded with the oldest head item of the highest priority (bounded wait for
 *   everyone), then filled one head item per stream per round, least recently served stream
 *   first. Each stream stays FIFO.
 * - Length-bucketed: a batch only takes items of the seed's length bucket, so padding stays small.
 */

/** What the queue needs to know about an item. */
export interface QueueItem {
  readonly stream: string;
  readonly rows: number;
  /** Length bucket; items of different buckets never share a batch. */
  readonly bucket: string;
  readonly priority: number;
  /** Time the item entered the queue proper (set on admission). */
  enqueuedAt: number;
}

interface StreamState<T> {
  queue: T[];
  waiting: { item: T; admit: () => void }[];
}

/**
 * @example
 * const q = new FairQueue<Item>(64);
 * if (!q.offer(item, now, () => onAdmitted())) { ... } // waits: onAdmitted runs once queued
 * const batch = q.take(16);
 * q.admitWaiting(now);
 */
export class FairQueue<T extends QueueItem> {
  // Map iteration order is the round-robin order: a served stream is moved to the end.
  private readonly streams = new Map<string, StreamState<T>>();
  private rows = 0;
  private waitingCount = 0;

  constructor(readonly maxQueue: number) {
    if (!(maxQueue >= 1)) throw new RangeError(`maxQueue must be >= 1 (got ${maxQueue})`);
  }

  /** Rows queued (admitted, not yet taken). Never exceeds maxQueue. */
  get queuedRows(): number {
    return this.rows;
  }

  /** Items waiting for admission. */
  get waitingItems(): number {
    return this.waitingCount;
  }

  private state(stream: string): StreamState<T> {
    let s = this.streams.get(stream);
    if (!s) {
      s = { queue: [], waiting: [] };
      this.streams.set(stream, s);
    }
    return s;
  }

  /**
   * Offer an item. Returns true if it was queued now; otherwise it waits and `admit` is called
   * once it has been queued. Nobody overtakes items already waiting.
   */
  offer(item: T, now: number, admit: () => void): boolean {
    if (item.rows > this.maxQueue) {
      throw new RangeError(`item of ${item.rows} rows can never fit a queue of ${this.maxQueue} rows`);
    }
    const s = this.state(item.stream);
    if (this.waitingCount === 0 && this.rows + item.rows <= this.maxQueue) {
      item.enqueuedAt = now;
      s.queue.push(item);
      this.rows += item.rows;
      return true;
    }
    s.waiting.push({ item, admit });
    this.waitingCount++;
    return false;
  }

  /** Admit waiting items round-robin across streams while they fit. */
  admitWaiting(now: number): void {
    let progress = true;
    while (this.waitingCount > 0 && progress) {
      progress = false;
      for (const s of [...this.streams.values()]) {
        const w = s.waiting[0];
        if (!w || this.rows + w.item.rows > this.maxQueue) continue;
        s.waiting.shift();
        this.waitingCount--;
        w.item.enqueuedAt = now;
        s.queue.push(w.item);
        this.rows += w.item.rows;
        progress = true;
        w.admit();
      }
    }
  }

  /** Oldest head item's enqueue time (heads are each stream's oldest), or undefined if empty. */
  oldestEnqueuedAt(): number | undefined {
    let t: number | undefined;
    for (const s of this.streams.values()) {
      const h = s.queue[0];
      if (h && (t === undefined || h.enqueuedAt < t)) t = h.enqueuedAt;
    }
    return t;
  }

  /** Highest priority among head items, or undefined if empty. */
  topPriority(): number | undefined {
    let p: number | undefined;
    for (const s of this.streams.values()) {
      const h = s.queue[0];
      if (h && (p === undefined || h.priority > p)) p = h.priority;
    }
    return p;
  }

  /** Take one batch of at most `maxBatch` rows (see class doc for the order). */
  take(maxBatch: number): T[] {
    let seed: T | undefined;
    let seedStream: StreamState<T> | undefined;
    for (const s of this.streams.values()) {
      const h = s.queue[0];
      if (!h) continue;
      if (!seed || h.priority > seed.priority || (h.priority === seed.priority && h.enqueuedAt < seed.enqueuedAt)) {
        seed = h;
        seedStream = s;
      }
    }
    if (!seed || !seedStream) return [];
    seedStream.queue.shift();
    const batch = [seed];
    let rows = seed.rows;
    const served: string[] = [seed.stream];
    const order = [...this.streams.entries()];
    for (let round = 0; rows < maxBatch; round++) {
      let progress = round === 0; // the seed was round 0's pick from its stream
      for (const [name, s] of order) {
        if (round === 0 && s === seedStream) continue; // the seed was this stream's item this round
        const h = s.queue[0];
        if (!h || h.bucket !== seed.bucket || rows + h.rows > maxBatch) continue;
        s.queue.shift();
        batch.push(h);
        rows += h.rows;
        if (!served.includes(name)) served.push(name);
        progress = true;
        if (rows >= maxBatch) break;
      }
      if (!progress) break;
    }
    this.rows -= rows;
    for (const name of served) {
      const s = this.streams.get(name);
      if (!s) continue;
      this.streams.delete(name);
      if (s.queue.length > 0 || s.waiting.length > 0) this.streams.set(name, s);
    }
    for (const [name, s] of this.streams) {
      if (s.queue.length === 0 && s.waiting.length === 0) this.streams.delete(name);
    }
    return batch;
  }

  /** Remove queued and waiting items matching `pred`; returns them. Call admitWaiting after. */
  remove(pred: (item: T) => boolean): T[] {
    const removed: T[] = [];
    for (const [name, s] of this.streams) {
      const keep: T[] = [];
      for (const it of s.queue) {
        if (pred(it)) {
          removed.push(it);
          this.rows -= it.rows;
        } else keep.push(it);
      }
      s.queue = keep;
      const keepW = s.waiting.filter((w) => {
        if (!pred(w.item)) return true;
        removed.push(w.item);
        this.waitingCount--;
        return false;
      });
      s.waiting = keepW;
      if (s.queue.length === 0 && s.waiting.length === 0) this.streams.delete(name);
    }
    return removed;
  }
}
