/**
 * The credit-gated source: pulls the next batch from an (async) iterable only after it holds a
 * credit, wraps it as a FlowBatch owning that credit, and stops pulling when unsubscribed.
 *
 * @example
 * const ctx = createFlowContext({ maxInFlight: 4 });
 * fromSource(generateBatches(), ctx).pipe(mapBatch("score", score), consume("sink", write)).subscribe();
 */
import { Observable, asyncScheduler, type SchedulerLike, type Subscription } from "rxjs";
import { RecordBatch } from "apache-arrow";
import { sourceBatch, type FlowBatch } from "./credits.ts";
import type { FlowContext } from "./context.ts";
import { StageError } from "./errors.ts";
import { RuntimeError, InputError } from "../util/errors.ts";
import { describeValue } from "./operate.ts";

/**
 * How often (wall-clock ms) the source lets the event loop run timers, I/O and signal handlers.
 * A CPU-bound flow whose stages are synchronous only ever awaits microtasks (the iterator's
 * promises), which would starve macrotasks: SIGINT, progress timers and scheduler deadlines
 * would wait for the end of the run. One `setImmediate` per period costs microseconds.
 */
export const SOURCE_YIELD_MS = 10;

/**
 * Default time (ms) the source may wait for a credit while no clipflow stage holds any batch
 * before it fails the flow: every credit is then held by batches that left the last stage and
 * were never released (a flow ended with a plain `map` instead of `toBatches()`/`consume`).
 */
export const STALL_TIMEOUT_MS = 60_000;

export interface FromSourceOptions {
  /** Wall-clock period at which the source yields to macrotasks (default SOURCE_YIELD_MS). */
  yieldEveryMs?: number;
  /** See STALL_TIMEOUT_MS; `Infinity` disables the check. */
  stallTimeoutMs?: number;
  /** Scheduler of the stall check (default asyncScheduler; a virtual-time scheduler in tests). */
  scheduler?: SchedulerLike;
}

/** Batches held by clipflow stages right now (queued, running or buffered), over all stages of `ctx`. */
function heldByStages(ctx: FlowContext): number {
  let n = 0;
  for (const s of ctx.snapshot()) n += s.inFlight;
  return n;
}

export function fromSource(
  batches: AsyncIterable<RecordBatch> | Iterable<RecordBatch>,
  ctx: FlowContext,
  name = "source",
  options: number | FromSourceOptions = {},
): Observable<FlowBatch> {
  const o: FromSourceOptions = typeof options === "number" ? { yieldEveryMs: options } : options;
  const yieldEveryMs = o.yieldEveryMs ?? SOURCE_YIELD_MS;
  const stallTimeoutMs = o.stallTimeoutMs ?? STALL_TIMEOUT_MS;
  const scheduler = o.scheduler ?? asyncScheduler;
  return new Observable<FlowBatch>((sub) => {
    const m = ctx.metrics(name);
    const pool = ctx.pool;
    let stopped = false;
    let exhausted = false; // the iterator ended or threw: nothing to close
    let cancelWait: (() => void) | null = null;
    const it: AsyncIterator<RecordBatch> | Iterator<RecordBatch> =
      Symbol.asyncIterator in batches
        ? (batches as AsyncIterable<RecordBatch>)[Symbol.asyncIterator]()
        : (batches as Iterable<RecordBatch>)[Symbol.iterator]();

    /**
     * While the source waits for a credit: if no stage holds a batch for `stallTimeoutMs`, the
     * credits are held by batches outside the flow that nobody releases; waiting would hang.
     */
    const watchStall = (): Subscription | null => {
      if (!(stallTimeoutMs < Infinity)) return null;
      return scheduler.schedule(function (this: { schedule(s?: unknown, d?: number): void }) {
        if (stopped) return;
        if (heldByStages(ctx) > 0) return this.schedule(undefined, stallTimeoutMs);
        stopped = true;
        cancelWait?.();
        sub.error(
          StageError.wrap(
            name,
            new RuntimeError(
              `all ${pool.maxInFlight} credits are held by batches no stage has released for ${stallTimeoutMs} ms; end the flow with toBatches() or consume(...) so each batch is released`,
              { code: "credit stall" },
            ),
          ),
        );
      }, stallTimeoutMs);
    };

    const pull = async (): Promise<void> => {
      let i = 0;
      let lastYield = performance.now();
      while (!stopped) {
        if (performance.now() - lastYield >= yieldEveryMs) {
          await new Promise<void>((r) => setImmediate(r)); // let macrotasks (signals, timers) run
          lastYield = performance.now();
          if (stopped) return;
        }
        let credit = pool.tryAcquire();
        if (!credit) {
          const w = pool.acquire();
          cancelWait = w.cancel;
          const watch = watchStall();
          credit = await w.promise;
          watch?.unsubscribe();
          cancelWait = null;
          if (!credit) return; // cancelled by teardown
        }
        if (stopped) return pool.giveBack(credit);
        let r: IteratorResult<RecordBatch>;
        try {
          r = await it.next();
        } catch (e) {
          exhausted = true;
          pool.giveBack(credit);
          throw e;
        }
        if (r.done) exhausted = true;
        if (stopped || r.done) {
          pool.giveBack(credit);
          if (r.done && !stopped) {
            stopped = true;
            sub.complete();
          }
          return;
        }
        const b = r.value;
        if (!(b instanceof RecordBatch)) {
          pool.giveBack(credit);
          throw new InputError(`item ${i} is ${describeValue(b)}, expected an Arrow RecordBatch`, { code: "not a record batch" });
        }
        i++;
        m.in(b.numRows);
        m.out(b.numRows);
        m.inFlight--;
        sub.next(sourceBatch(ctx, credit, b));
      }
    };
    pull().catch((e) => {
      if (!stopped) {
        stopped = true;
        sub.error(StageError.wrap(name, e));
      }
    });

    return () => {
      stopped = true;
      cancelWait?.();
      // Let the iterable free its resources (a generator's finally, a file handle).
      if (!exhausted) {
        exhausted = true;
        void Promise.resolve()
          .then(() => it.return?.())
          .catch(() => {});
      }
    };
  });
}
