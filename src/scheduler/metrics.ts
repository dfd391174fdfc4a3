/**
 * Per-model scheduler metrics: batch fill, queue wait percentiles, throughput overall and per
 * stream. Times are in the scheduler clock's milliseconds.
 */

/** A snapshot of one stream's service by one model. */
export interface StreamStats {
  items: number;
  /** Items completed per second between this stream's first submission and its last completion. */
  itemsPerSec: number;
}

/** A snapshot of one model's metrics, for the run report. */
export interface ModelStats {
  batches: number;
  /** Items (rows) completed. */
  items: number;
  failed: number;
  cancelled: number;
  /** Mean of rows per batch ÷ maxBatch. */
  fillRatio: number;
  meanBatchRows: number;
  /** Queue wait (submission to dispatch) percentiles over the most recent items, ms. */
  queueWaitP50Ms: number;
  queueWaitP95Ms: number;
  /** Items completed per second between the first submission and the last completion. */
  itemsPerSec: number;
  queuedRows: number;
  waitingItems: number;
  streams: Record<string, StreamStats>;
}

/**
 * Nearest-rank percentile of `xs` (sorted in place); NaN when empty.
 * @example percentile(Float64Array.of(3, 1, 2), 50) // 2
 */
export function percentile(xs: Float64Array, p: number): number {
  if (xs.length === 0) return Number.NaN;
  xs.sort();
  const rank = Math.min(xs.length - 1, Math.max(0, Math.ceil((p / 100) * xs.length) - 1));
  return xs[rank]!;
}

const WAIT_WINDOW = 8192;

/**
 * Counters behind `ModelStats`, fed by the batcher.
 * @example
 * const m = new ModelMetrics(8);
 * m.onSubmit("a", 0); m.onBatch(2, [{ wait: 1, rows: 2 }]); m.onDone("a", 2, 5);
 * m.snapshot(0, 0).fillRatio // 0.25
 */
export class ModelMetrics {
  private batches = 0;
  private rowsDispatched = 0;
  private fillSum = 0;
  private items = 0;
  private failed = 0;
  private cancelled = 0;
  // Ring buffer of the most recent per-item queue waits.
  private readonly waits = new Float64Array(WAIT_WINDOW);
  private nWaits = 0;
  private firstSubmit = Number.NaN;
  private lastDone = Number.NaN;
  private readonly streams = new Map<string, { items: number; first: number; last: number }>();

  constructor(private readonly maxBatch: number) {}

  onSubmit(stream: string, now: number): void {
    if (Number.isNaN(this.firstSubmit)) this.firstSubmit = now;
    if (!this.streams.has(stream)) this.streams.set(stream, { items: 0, first: now, last: Number.NaN });
  }

  /** A batch of `rows` rows left the queue; `waits` are its items' queue waits (one per row). */
  onBatch(rows: number, waits: readonly { wait: number; rows: number }[]): void {
    this.batches++;
    this.rowsDispatched += rows;
    this.fillSum += rows / this.maxBatch;
    for (const w of waits) {
      for (let r = 0; r < w.rows; r++) this.waits[this.nWaits++ % WAIT_WINDOW] = w.wait;
    }
  }

  onDone(stream: string, rows: number, now: number): void {
    this.items += rows;
    this.lastDone = now;
    const s = this.streams.get(stream);
    if (s) {
      s.items += rows;
      s.last = now;
    }
  }

  onFailed(rows: number): void {
    this.failed += rows;
  }

  onCancelled(rows: number): void {
    this.cancelled += rows;
  }

  snapshot(queuedRows: number, waitingItems: number): ModelStats {
    const w = this.waits.slice(0, Math.min(this.nWaits, WAIT_WINDOW));
    const p50 = percentile(w, 50);
    const p95 = percentile(w, 95);
    const rate = (n: number, a: number, b: number) => (n > 0 && b > a ? (n * 1000) / (b - a) : 0);
    const streams: Record<string, StreamStats> = {};
    for (const [k, s] of this.streams) streams[k] = { items: s.items, itemsPerSec: rate(s.items, s.first, s.last) };
    return {
      batches: this.batches,
      items: this.items,
      failed: this.failed,
      cancelled: this.cancelled,
      fillRatio: this.batches ? this.fillSum / this.batches : 0,
      meanBatchRows: this.batches ? this.rowsDispatched / this.batches : 0,
      queueWaitP50Ms: p50,
      queueWaitP95Ms: p95,
      itemsPerSec: rate(this.items, this.firstSubmit, this.lastDone),
      queuedRows,
      waitingItems,
      streams,
    };
  }
}
