/**
 * `operate`: the one helper every clipflow stage is built on (like RxJS's `operate` /
 * `OperatorSubscriber`). It turns a per-batch `process` function into an RxJS operator over
 * `FlowBatch`es and owns everything a stage must get right:
 *
 * - lineage: each output batch takes the credits of its input; the input is released when its
 *   processing ends (or kept, if the stage `hold()`s it to buffer), so credits flow back;
 * - bounded concurrency: at most `concurrency` inputs are processed at once (async `process`
 *   returning a Promise or an Observable); later inputs queue (bounded by the credits);
 * - errors and completion pass through; errors leave as `StageError` naming the stage;
 * - per-row errors (`scope.reject(row, reason)`) and thrown errors follow `onError`:
 *   `fail` stops the flow, `skip` writes the rows to the dead-letter file;
 * - per-stage metrics, and a row-count reconciliation check at completion;
 * - teardown (unsubscribe, error, SIGINT via the runner): queued, running and held inputs are
 *   released, so every credit returns and no buffer is kept alive.
 *
 * A synchronous `process` runs with no Promise or allocation beyond the output FlowBatch, so
 * per-batch overhead stays small next to the work on a 1,024-row batch.
 *
 * Output order is input order at any concurrency: above 1, inputs run at once but an input's
 * outputs wait (derived, holding their credits) until every earlier input has ended, and a slot
 * frees only then, so the reorder buffer holds at most `concurrency` inputs' outputs
 * (`concatMap` semantics with `concurrency`-deep look-ahead). Runs are reproducible whatever the
 * completion timing.
 *
 * @example
 * const double = operate({ name: "double" }, () => ({
 *   process: (fb) => withScores(fb.batch, 2),   // RecordBatch | RecordBatch[] | null | Promise<…> | Observable<RecordBatch>
 * }));
 */
import { Observable, isObservable, type OperatorFunction, type Subscription } from "rxjs";
import { RecordBatch, type Vector } from "apache-arrow";
import { derive, park, release, unpark, type FlowBatch } from "./credits.ts";
import type { FlowContext } from "./context.ts";
import { StageError, checkOnError, type OnError } from "./errors.ts";
import { ClipflowError, ConfigError, errorMessage } from "../util/errors.ts";
import { reasonCode } from "./dead-letter.ts";
import { Lineage } from "./credits.ts";
import type { StageMetrics } from "./metrics.ts";

/** What `process` may return: output batches now, later (Promise), or as a stream (Observable). */
export type StageOutput = RecordBatch | readonly RecordBatch[] | null | undefined | void;
export type StageResult = StageOutput | PromiseLike<StageOutput> | Observable<RecordBatch>;

/** An RxJS operator over FlowBatches that knows its stage name. */
export type FlowOperator = OperatorFunction<FlowBatch, FlowBatch> & { readonly stageName: string };

export interface StageOptions {
  /** Unique within a flow; used in errors, metrics and dead-letter rows. */
  name: string;
  /** Inputs processed at once (default 1). Bounded: a positive integer. */
  concurrency?: number;
  /** Override the flow's bad-row policy for this stage. */
  onError?: OnError;
  /** A sink consumes its inputs: their rows count as rowsOut and nothing is emitted. */
  sink?: boolean;
  /** Column naming rows in dead-letter records (default "id", then "image_id", else "#row"). */
  idColumn?: string;
}

/** Per-input handle given to `process`. */
export interface BatchScope {
  readonly input: FlowBatch;
  /**
   * Reject one input row: dead-lettered under `skip`, stops the flow under `fail`. `code` is the
   * short reason kind reports aggregate by (default: derived from `reason`, see `reasonCode`).
   */
  reject(row: number, reason: string, code?: string): void;
  /** Whether `row` was rejected already. */
  isRejected(row: number): boolean;
  /** Declare rows dropped on purpose (otherwise a shortfall of output rows counts as filtered). */
  filtered(rows: number): void;
  /** Keep the input after `process` returns (a buffering stage); it must later `api.release` or `api.pass` it. */
  hold(): void;
}

/** Stage-wide handle given to `init`. */
export interface StageApi {
  readonly name: string;
  /** The flow context (null until the first batch arrives). */
  readonly ctx: FlowContext | null;
  /** Emit a batch derived from `from` (it takes their credits; release the parents yourself). */
  emit(batch: RecordBatch, from: FlowBatch | readonly FlowBatch[]): void;
  /** Forward a held input unchanged. */
  pass(fb: FlowBatch): void;
  /** Drop a held input (after emitting what was derived from it). */
  release(fb: FlowBatch): void;
  /** Mark a held input as waiting in a buffer (lets the pool detect a stall). */
  park(fb: FlowBatch): void;
  /** Rows held in buffers right now (for the reconciliation). */
  setBuffered(rows: number): void;
  /** Fail the stage from outside `process` (a timer callback): the error leaves named after the stage. */
  fail(e: unknown): void;
  /** Expanded/filtered rows of held inputs, reported by buffering stages. */
  count(kind: "filtered" | "expanded", rows: number): void;
}

export interface StageHandlers {
  process(input: FlowBatch, scope: BatchScope): StageResult;
  /** Upstream completed and all inputs are processed: emit what is buffered. */
  flush?(): void;
  /** The credit pool is stalled on buffered batches: emit partial buffers now. */
  stall?(): void;
  /** Release stage resources (timers); held inputs are released by the helper afterwards. */
  teardown?(): void;
}

class Scope implements BatchScope {
  rejected = 0;
  explicitFiltered = 0;
  outRows = 0;
  held = false;
  cancelled = false;
  /** Processing ended (successfully or not). */
  settled = false;
  /** Outputs derived from this input, waiting for earlier inputs to end (re-sequencing). */
  readonly outbox: FlowBatch[] = [];
  inner: Subscription | null = null;
  private rejectedRows: Set<number> | null = null;
  private ids: Vector | null | undefined;

  constructor(
    readonly input: FlowBatch,
    private readonly st: StageState,
  ) {}

  idOf(row: number): string {
    if (this.ids === undefined) {
      const b = this.input.batch;
      this.ids = b.getChild(this.st.idColumn) ?? (this.st.idColumn === "id" ? b.getChild("image_id") : null) ?? null;
    }
    return this.ids ? String(this.ids.get(row)) : `#${this.input.lineage.credits[0]?.seq ?? "?"}:${row}`;
  }

  isRejected(row: number): boolean {
    return this.rejectedRows?.has(row) ?? false;
  }

  reject(row: number, reason: string, code?: string): void {
    const n = this.input.batch.numRows;
    if (!Number.isInteger(row) || row < 0 || row >= n) throw new RangeError(`reject: row ${row} out of range [0, ${n})`);
    if (this.st.policy === "fail") throw new StageError(this.st.name, reason, { kind: "input", code: code ?? reasonCode(reason), where: { rowId: this.idOf(row) } });
    this.rejectedRows ??= new Set();
    if (this.rejectedRows.has(row)) return;
    this.rejectedRows.add(row);
    this.rejected++;
    this.st.ctx!.deadLetter.add(this.idOf(row), this.st.name, reason, code);
    this.st.m!.deadLettered++;
  }

  filtered(rows: number): void {
    if (!(rows >= 0)) throw new RangeError(`filtered: bad row count ${rows}`);
    this.explicitFiltered += rows;
  }

  hold(): void {
    if (!this.held) {
      this.held = true;
      this.st.held.add(this.input);
    }
  }
}

interface StageState {
  name: string;
  idColumn: string;
  policy: OnError;
  ctx: FlowContext | null;
  m: StageMetrics | null;
  held: Set<FlowBatch>;
}

/** Whether `v` is a FlowBatch with a flow context (what every stage needs). */
export function isFlowBatch(v: unknown): v is FlowBatch {
  if (typeof v !== "object" || v === null) return false;
  const o = v as Partial<FlowBatch>;
  return o.batch instanceof RecordBatch && o.lineage instanceof Lineage && o.lineage.ctx != null && typeof o.released === "boolean";
}

/** A short description of a wrong value for an error message: "an Arrow Table", "a RecordBatch", "null". */
export function describeValue(v: unknown): string {
  if (v === null) return "null";
  if (v === undefined) return "undefined";
  if (v instanceof RecordBatch) return "a bare Arrow RecordBatch";
  if (typeof v === "object") {
    const n = (v as object).constructor?.name;
    if (n === "Table") return "an Arrow Table";
    return n && n !== "Object" ? `a ${n}` : "a plain object";
  }
  return `a ${typeof v}`;
}

const isPromiseLike = (r: unknown): r is PromiseLike<StageOutput> =>
  r != null && typeof (r as { then?: unknown }).then === "function";

/**
 * Build a stage operator. `init` runs once per subscription, so per-stage state (buffers,
 * timers) lives in its closure.
 */
export function operate(opts: StageOptions, init: (api: StageApi) => StageHandlers): FlowOperator {
  const name = opts.name;
  if (!name) throw new ConfigError("operate: a stage needs a name", { code: "bad option" });
  const concurrency = opts.concurrency ?? 1;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new ConfigError(`option concurrency: must be a positive integer, got ${String(concurrency)}`, { code: "bad option", where: { stage: name } });
  }
  if (opts.onError !== undefined) checkOnError(opts.onError, `stage "${name}"`);
  const sink = opts.sink ?? false;

  const op = (source: Observable<FlowBatch>): Observable<FlowBatch> =>
    new Observable<FlowBatch>((sub) => {
      const st: StageState = { name, idColumn: opts.idColumn ?? "id", policy: opts.onError ?? "fail", ctx: null, m: null, held: new Set() };
      const queue: FlowBatch[] = [];
      const running = new Set<Scope>();
      const parked = new Set<FlowBatch>();
      let active = 0;
      // concurrency > 1: inputs in arrival order until they and all before them have ended.
      const inOrder = concurrency > 1;
      const order: Scope[] = [];
      let upstreamDone = false;
      let closed = false;
      let draining = false;
      let unStall: (() => void) | null = null;

      const fail = (e: unknown): void => {
        if (closed) return;
        closed = true;
        sub.error(StageError.wrap(name, e));
      };

      const dropHeld = (fb: FlowBatch): void => {
        if (!st.held.delete(fb)) throw new Error(`stage "${name}": batch is not held by this stage`);
        if (parked.delete(fb)) unpark(fb);
        st.m!.inFlight--;
      };

      const api: StageApi = {
        name,
        get ctx() {
          return st.ctx;
        },
        emit(batch, from) {
          if (closed) return;
          const out = derive(batch, from);
          st.m!.out(batch.numRows);
          sub.next(out);
        },
        pass(fb) {
          dropHeld(fb);
          if (closed) return release(fb);
          st.m!.out(fb.batch.numRows);
          sub.next(fb);
        },
        release(fb) {
          dropHeld(fb);
          release(fb);
        },
        park(fb) {
          if (!st.held.has(fb)) throw new Error(`stage "${name}": park() needs a held batch`);
          if (!parked.has(fb)) {
            parked.add(fb);
            park(fb);
          }
        },
        setBuffered(rows) {
          st.m!.buffered = rows;
        },
        fail: (e) => fail(e),
        count(kind, rows) {
          st.m![kind] += rows;
        },
      };
      const h = init(api);

      const emitOutputs = (scope: Scope, r: StageOutput): void => {
        if (r == null) return;
        if (Array.isArray(r)) {
          for (const b of r as readonly RecordBatch[]) emitOne(scope, b);
        } else emitOne(scope, r as RecordBatch);
      };

      const emitOne = (scope: Scope, b: RecordBatch): void => {
        if (closed || scope.cancelled) return;
        if (!(b instanceof RecordBatch)) {
          throw new Error(`process returned ${b === null ? "null" : typeof b === "object" ? (b as object).constructor?.name ?? "object" : typeof b} in its outputs, expected an Arrow RecordBatch`);
        }
        const n = b.numRows;
        if (n === 0) return; // an empty batch carries nothing; don't make the sink see it
        scope.outRows += n;
        const out = derive(b, scope.input);
        st.m!.out(n);
        // Re-sequencing: an input's outputs wait until every earlier input has ended.
        if (inOrder && order[0] !== scope) scope.outbox.push(out);
        else sub.next(out);
      };

      /** Processing of one input ended normally: account rows and release it (unless held). */
      const finishInput = (scope: Scope): void => {
        const m = st.m!;
        if (scope.held) return; // a buffering stage accounts for held rows itself
        const n = scope.input.batch.numRows;
        if (sink) {
          m.out(n - scope.rejected - scope.explicitFiltered);
          m.filtered += scope.explicitFiltered;
        } else {
          m.filtered += scope.explicitFiltered;
          const d = n - scope.rejected - scope.explicitFiltered - scope.outRows;
          if (d > 0) m.filtered += d;
          else m.expanded -= d;
        }
        m.inFlight--;
        release(scope.input);
      };

      /** `process` threw or its Promise/Observable failed. */
      const inputFailed = (scope: Scope, e: unknown): void => {
        if (scope.cancelled) return;
        if (st.policy === "fail" || e instanceof StageError) {
          // Leave the input for teardown to release; `fail` closes the stage.
          if (!scope.held) queue.push(scope.input);
          return fail(e);
        }
        // skip: the whole input is dead-lettered (rows not already rejected).
        const reason = errorMessage(e);
        const code = e instanceof ClipflowError ? e.code : undefined;
        const n = scope.input.batch.numRows;
        let dead = 0;
        for (let i = 0; i < n; i++) {
          if (scope.isRejected(i)) continue;
          st.ctx!.deadLetter.add(scope.idOf(i), name, reason, code);
          dead++;
        }
        const m = st.m!;
        m.deadLettered += dead;
        m.expanded += scope.outRows; // outputs already streamed out before the failure
        if (scope.held) dropHeld(scope.input);
        else m.inFlight--;
        release(scope.input);
      };

      /**
       * Processing of `scope` ended (any way). Without re-sequencing the slot frees now; with it
       * (concurrency > 1) the slot frees when every earlier input has ended too, and the outputs
       * that waited behind them leave, in input order.
       */
      const settle = (scope: Scope): void => {
        running.delete(scope);
        scope.settled = true;
        if (!inOrder) {
          active--;
          return;
        }
        while (order.length > 0 && order[0]!.settled) {
          order.shift();
          active--;
          const head = order[0];
          if (!head) break;
          // The new head's outputs were held back behind the one that just left: send them now.
          for (const out of head.outbox.splice(0)) {
            if (closed || head.cancelled) release(out);
            else sub.next(out);
          }
        }
      };

      const start = (fb: FlowBatch): void => {
        active++;
        const scope = new Scope(fb, st);
        if (inOrder) order.push(scope);
        let r: StageResult;
        try {
          r = h.process(fb, scope);
        } catch (e) {
          inputFailed(scope, e);
          settle(scope);
          return;
        }
        if (r == null || !(isPromiseLike(r) || isObservable(r))) {
          try {
            emitOutputs(scope, r as StageOutput);
            finishInput(scope);
          } catch (e) {
            if (!scope.input.released && !scope.held) queue.push(scope.input); // teardown releases it
            settle(scope);
            fail(e);
            return;
          }
          settle(scope);
          return;
        }
        running.add(scope);
        if (isObservable(r)) {
          scope.inner = (r as Observable<RecordBatch>).subscribe({
            next: (b) => {
              try {
                emitOne(scope, b);
              } catch (e) {
                fail(e);
              }
            },
            error: (e) => {
              if (scope.cancelled) return;
              inputFailed(scope, e);
              settle(scope);
              drain();
            },
            complete: () => {
              if (scope.cancelled) return;
              finishInput(scope);
              settle(scope);
              drain();
            },
          });
          return;
        }
        (r as PromiseLike<StageOutput>).then(
          (out) => {
            if (scope.cancelled) return;
            try {
              emitOutputs(scope, out);
              finishInput(scope);
            } catch (e) {
              settle(scope);
              return fail(e);
            }
            settle(scope);
            drain();
          },
          (e) => {
            if (scope.cancelled) return;
            inputFailed(scope, e);
            settle(scope);
            drain();
          },
        );
      };

      const drain = (): void => {
        if (draining) return;
        draining = true;
        try {
          while (!closed && active < concurrency && queue.length > 0) start(queue.shift()!);
          if (!closed && upstreamDone && active === 0 && queue.length === 0) complete();
        } catch (e) {
          fail(e);
        } finally {
          draining = false;
        }
      };

      const complete = (): void => {
        if (closed) return;
        h.flush?.();
        if (closed) return;
        const m = st.m;
        if (m && m.imbalance() !== 0) {
          const s = m.snapshot();
          return fail(
            new Error(
              `row counts do not reconcile: in ${s.rowsIn} + expanded ${s.expanded} != out ${s.rowsOut} + filtered ${s.filtered} + dead-lettered ${s.deadLettered} + buffered ${s.buffered}`,
            ),
          );
        }
        closed = true;
        sub.complete();
      };

      const onNext = (value: unknown): void => {
        if (!isFlowBatch(value)) {
          if (closed) return;
          return fail(new ConfigError(`received ${describeValue(value)} where a FlowBatch was expected; wrap the input with fromBatches(...) before clipflow stages`, { code: "not a flow batch", where: { stage: name } }));
        }
        const fb = value;
        if (closed) {
          if (!fb.released) release(fb);
          return;
        }
        if (st.ctx === null) {
          st.ctx = fb.lineage.ctx;
          st.m = st.ctx.metrics(name);
          st.policy = opts.onError ?? st.ctx.onError;
          if (h.stall) unStall = st.ctx.pool.onStall(() => {
            if (closed) return;
            try {
              h.stall!();
            } catch (e) {
              fail(e);
            }
          });
        }
        st.m!.in(fb.batch.numRows);
        if (active < concurrency && !draining) {
          start(fb);
          if (queue.length > 0 || upstreamDone) drain();
        } else {
          queue.push(fb);
        }
      };

      const upstream = source.subscribe({
        next: (fb) => {
          // Guard the whole callback (as RxJS's OperatorSubscriber does): a throw here must reach
          // the subscriber as an error, never escape into the producer or crash the process later.
          try {
            onNext(fb);
          } catch (e) {
            fail(e);
          }
        },
        error: (e) => fail(e),
        complete: () => {
          upstreamDone = true;
          drain();
        },
      });

      return () => {
        closed = true;
        upstream.unsubscribe();
        unStall?.();
        for (const s of running) {
          s.cancelled = true;
          s.inner?.unsubscribe();
          if (!s.held) release(s.input);
        }
        running.clear();
        for (const sc of order.splice(0)) for (const out of sc.outbox.splice(0)) if (!out.released) release(out);
        for (const fb of queue.splice(0)) if (!fb.released) release(fb);
        try {
          h.teardown?.();
        } finally {
          for (const fb of st.held) {
            if (parked.delete(fb)) unpark(fb);
            if (!fb.released) release(fb);
          }
          st.held.clear();
        }
      };
    });
  return Object.assign(op, { stageName: name });
}
