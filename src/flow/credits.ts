/**
 * Credits and lineage: the backpressure contract of a flow.
 *
 * A source takes one `Credit` from the `CreditPool` before it pulls a batch, so at most
 * `maxInFlight` source batches exist at once. Every batch travelling through a flow is a
 * `FlowBatch` — `{ batch, lineage }` — and *owns* one reference on each credit in its lineage.
 * Derived batches (filtered, exploded, re-batched from several inputs) take references on the
 * union of their parents' credits before the parents are released, so a credit's count can
 * only reach zero when no batch derived from its source batch is left anywhere; then the credit
 * returns to the pool and the source may pull again.
 *
 * Why a wrapper object and not a WeakMap keyed by RecordBatch: "dropped" must be an explicit,
 * deterministic event (a WeakMap would leave credit return to the garbage collector), and one
 * RecordBatch may legitimately travel in two FlowBatches (an identity stage, a broadcast).
 *
 * Buffering operators (re-batch) *park* the batches they hold. When a source is waiting for a
 * credit and every outstanding credit is held only by parked batches, nothing can move: the
 * pool reports a stall and buffering operators flush what they hold (partial batches). This is
 * what keeps a re-batch larger than `maxInFlight` source batches from deadlocking.
 *
 * @example
 * const pool = new CreditPool(8);
 * const credit = pool.tryAcquire() ?? (await pool.acquire().promise);
 * const fb = sourceBatch(ctx, credit, batch);   // owns credit
 * const out = derive(filtered, fb); release(fb); // out now carries the credit
 * release(out);                                  // credit back in the pool
 */
import type { RecordBatch } from "apache-arrow";
import type { FlowContext } from "./context.ts";
import { ConfigError } from "../util/errors.ts";

/** One source batch's permit to exist. Counts the live batches derived from it. */
export class Credit {
  /** Live FlowBatches holding this credit. */
  refs = 0;
  /** Of those, how many sit parked in operator buffers. */
  parked = 0;
  constructor(
    readonly pool: CreditPool,
    /** Sequence number of the source batch (0-based). */
    readonly seq: number,
  ) {}
}

/** The set of source credits a batch descends from (shared, immutable). */
export class Lineage {
  constructor(
    readonly credits: readonly Credit[],
    readonly ctx: FlowContext,
  ) {}
}

/** A record batch in flight, owning one reference on each credit of its lineage. */
export interface FlowBatch {
  readonly batch: RecordBatch;
  readonly lineage: Lineage;
  /** Set once released; releasing twice is a bug in an operator and throws. */
  released: boolean;
}

export interface CreditStats {
  maxInFlight: number;
  /** Credits handed to the source so far. */
  issued: number;
  /** Credits returned (all derived batches consumed or dropped). */
  returned: number;
  /** Currently out (issued - returned). */
  outstanding: number;
  /** Largest `outstanding` ever seen. */
  maxOutstanding: number;
  /** Stalls resolved by asking buffering operators to flush. */
  stalls: number;
}

interface Waiter {
  resolve: (c: Credit | null) => void;
}

/** A bounded pool of credits, at most `maxInFlight` out at once. */
export class CreditPool {
  private free: number;
  private seq = 0;
  private returnedCount = 0;
  private maxOut = 0;
  private stallCount = 0;
  private readonly waiters: Waiter[] = [];
  private readonly live = new Set<Credit>();
  private readonly stallHandlers = new Set<() => void>();
  private stallCheckQueued = false;

  constructor(readonly maxInFlight: number) {
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1) {
      throw new ConfigError(`option maxInFlight: must be a positive integer, got ${String(maxInFlight)}`, { code: "bad option", where: { stage: "flow" } });
    }
    this.free = maxInFlight;
  }

  /** A credit now, or null when all are out. */
  tryAcquire(): Credit | null {
    if (this.free === 0) return null;
    this.free--;
    return this.issue();
  }

  /**
   * Wait for a credit. `cancel()` withdraws the request (the promise then resolves to null);
   * a credit is never lost to a cancelled waiter.
   */
  acquire(): { promise: Promise<Credit | null>; cancel: () => void } {
    const now = this.tryAcquire();
    if (now) return { promise: Promise.resolve(now), cancel: () => {} };
    let w!: Waiter;
    const promise = new Promise<Credit | null>((resolve) => {
      w = { resolve };
    });
    this.waiters.push(w);
    this.checkStall();
    return {
      promise,
      cancel: () => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) {
          this.waiters.splice(i, 1);
          w.resolve(null);
        }
      },
    };
  }

  private issue(): Credit {
    const c = new Credit(this, this.seq++);
    this.live.add(c);
    if (this.live.size > this.maxOut) this.maxOut = this.live.size;
    return c;
  }

  /** Give back a credit that was acquired but never used for a batch (source exhausted or stopped). */
  giveBack(c: Credit): void {
    if (c.refs !== 0 || !this.live.has(c)) throw new Error(`credit ${c.seq} cannot be given back (refs ${c.refs})`);
    this.returnCredit(c);
  }

  /** @internal called when a credit's last reference is released. */
  returnCredit(c: Credit): void {
    this.live.delete(c);
    this.returnedCount++;
    const w = this.waiters.shift();
    if (w) w.resolve(this.issue());
    else this.free++;
  }

  /** Register a flush hook of a buffering operator; returns the unregister function. */
  onStall(handler: () => void): () => void {
    this.stallHandlers.add(handler);
    return () => this.stallHandlers.delete(handler);
  }

  /** True when a source waits and every live credit is held only by parked batches. */
  isStalled(): boolean {
    if (this.waiters.length === 0 || this.free > 0 || this.live.size === 0) return false;
    for (const c of this.live) if (c.parked < c.refs || c.refs === 0) return false;
    return true;
  }

  /** @internal re-check for a stall after parking or waiting (deferred to avoid re-entrancy). */
  checkStall(): void {
    if (this.stallCheckQueued || this.stallHandlers.size === 0 || this.waiters.length === 0) return;
    this.stallCheckQueued = true;
    queueMicrotask(() => {
      this.stallCheckQueued = false;
      if (!this.isStalled()) return;
      this.stallCount++;
      for (const h of [...this.stallHandlers]) h();
    });
  }

  stats(): CreditStats {
    return {
      maxInFlight: this.maxInFlight,
      issued: this.seq,
      returned: this.returnedCount,
      outstanding: this.live.size,
      maxOutstanding: this.maxOut,
      stalls: this.stallCount,
    };
  }

  /** Credits currently out (issued, not yet returned). */
  get outstanding(): number {
    return this.live.size;
  }

  /** Sources currently waiting for a credit. */
  get waiting(): number {
    return this.waiters.length;
  }
}

function retain(credits: readonly Credit[]): void {
  for (let i = 0; i < credits.length; i++) credits[i]!.refs++;
}

/** Wrap a freshly pulled source batch: the new FlowBatch owns `credit`. */
export function sourceBatch(ctx: FlowContext, credit: Credit, batch: RecordBatch): FlowBatch {
  credit.refs++;
  return { batch, lineage: new Lineage([credit], ctx), released: false };
}

/**
 * A batch derived from one or more parents: it takes its own reference on every credit of the
 * parents' lineages. Parents stay owned by the caller (release them afterwards).
 */
export function derive(batch: RecordBatch, from: FlowBatch | readonly FlowBatch[]): FlowBatch {
  if (!Array.isArray(from)) {
    const p = from as FlowBatch;
    if (p.released) throw new Error("derive: parent batch was already released");
    retain(p.lineage.credits);
    return { batch, lineage: p.lineage, released: false };
  }
  const parents = from as readonly FlowBatch[];
  if (parents.length === 0) throw new Error("derive: a derived batch needs at least one parent");
  if (parents.length === 1) return derive(batch, parents[0]!);
  const set = new Set<Credit>();
  for (const p of parents) {
    if (p.released) throw new Error("derive: parent batch was already released");
    for (const c of p.lineage.credits) set.add(c);
  }
  const credits = [...set];
  retain(credits);
  return { batch, lineage: new Lineage(credits, parents[0]!.lineage.ctx), released: false };
}

/** Drop or consume a batch: its credit references go; credits with none left return to the pool. */
export function release(fb: FlowBatch): void {
  if (fb.released) throw new Error("release: batch released twice");
  fb.released = true;
  const cs = fb.lineage.credits;
  for (let i = 0; i < cs.length; i++) {
    const c = cs[i]!;
    if (--c.refs === 0) c.pool.returnCredit(c);
    else if (c.refs === c.parked) c.pool.checkStall(); // only parked holders left: maybe stuck
  }
}

/** Mark a batch as parked in an operator buffer (it cannot move until the operator flushes). */
export function park(fb: FlowBatch): void {
  const cs = fb.lineage.credits;
  for (let i = 0; i < cs.length; i++) cs[i]!.parked++;
  cs[0]?.pool.checkStall();
}

/** Undo `park` (before the batch is released or passed on). */
export function unpark(fb: FlowBatch): void {
  const cs = fb.lineage.credits;
  for (let i = 0; i < cs.length; i++) cs[i]!.parked--;
}
