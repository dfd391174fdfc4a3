/**
 * Per-stage counters. Row accounting reconciles at every quiet point:
 *
 *   rowsIn + expanded = rowsOut + filtered + deadLettered + buffered
 *
 * `filtered` are rows a stage dropped on purpose, `deadLettered` rows it rejected (onError:
 * skip), `expanded` rows it created beyond its inputs (explode, generate), `buffered` rows it
 * holds right now (re-batch). A sink's `rowsOut` are the rows it consumed.
 *
 * @example
 * const m = new StageMetrics("filter", () => performance.now());
 * m.snapshot(); // { stage, rowsIn, rowsOut, ..., rowsPerSec, inFlight }
 */
export interface StageSnapshot {
  stage: string;
  rowsIn: number;
  rowsOut: number;
  batchesIn: number;
  batchesOut: number;
  filtered: number;
  deadLettered: number;
  expanded: number;
  buffered: number;
  /** Batches inside the stage now: queued, being processed, or held in a buffer. */
  inFlight: number;
  /** Largest inFlight seen. */
  maxInFlight: number;
  /** Rows in per second between the first input and the last output (0 before any). */
  rowsPerSec: number;
  /** Milliseconds between the first input and the last activity. */
  activeMs: number;
}

export class StageMetrics {
  rowsIn = 0;
  rowsOut = 0;
  batchesIn = 0;
  batchesOut = 0;
  filtered = 0;
  deadLettered = 0;
  expanded = 0;
  buffered = 0;
  inFlight = 0;
  maxInFlight = 0;
  firstAt = -1;
  lastAt = -1;

  constructor(
    readonly stage: string,
    private readonly now: () => number,
  ) {}

  /** A batch arrived. */
  in(rows: number): void {
    const t = this.now();
    if (this.firstAt < 0) this.firstAt = t;
    this.lastAt = t;
    this.rowsIn += rows;
    this.batchesIn++;
    if (++this.inFlight > this.maxInFlight) this.maxInFlight = this.inFlight;
  }

  /** A batch left. */
  out(rows: number): void {
    this.lastAt = this.now();
    this.rowsOut += rows;
    this.batchesOut++;
  }

  /** The difference between the two sides of the reconciliation (0 when counts reconcile). */
  imbalance(): number {
    return this.rowsIn + this.expanded - (this.rowsOut + this.filtered + this.deadLettered + this.buffered);
  }

  snapshot(): StageSnapshot {
    const activeMs = this.firstAt < 0 ? 0 : Math.max(0, this.lastAt - this.firstAt);
    return {
      stage: this.stage,
      rowsIn: this.rowsIn,
      rowsOut: this.rowsOut,
      batchesIn: this.batchesIn,
      batchesOut: this.batchesOut,
      filtered: this.filtered,
      deadLettered: this.deadLettered,
      expanded: this.expanded,
      buffered: this.buffered,
      inFlight: this.inFlight,
      maxInFlight: this.maxInFlight,
      rowsPerSec: activeMs > 0 ? (this.rowsIn * 1000) / activeMs : 0,
      activeMs,
    };
  }
}
