/**
 * The credit-gated source: pulls the next batch from an (async) iterable only after it holds a
 * credit, wraps it as a FlowBatch owning that credit, and stops pulling when unsubscribed.
 *
 * @example
 * const ctx = createFlowContext({ maxInFlight: 4 });
 * fromSource(generateBatches(), ctx).pipe(mapBatch("score", score), consume("sink", write)).subscribe();
 */
import { Observable } from "rxjs";
import { RecordBatch } from "apache-arrow";
import { sourceBatch, type FlowBatch } from "./credits.ts";
import type { FlowContext } from "./context.ts";
import { StageError } from "./errors.ts";

/**
 * How often (wall-clock ms) the source lets the event loop run timers, I/O and signal handlers.
 * A CPU-bound flow whose stages are synchronous only ever awaits microtasks (the iterator's
 * promises), which would starve macrotasks: SIGINT, progress timers and scheduler deadlines
 * would wait for the end of the run. One `setImmediate` per period costs microseconds.
 */
export const SOURCE_YIELD_MS = 10;

export function fromSource(
  batches: AsyncIterable<RecordBatch> | Iterable<RecordBatch>,
  ctx: FlowContext,
  name = "source",
  yieldEveryMs: number = SOURCE_YIELD_MS,
): Observable<FlowBatch> {
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
          credit = await w.promise;
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
          throw new Error(`item ${i} is ${b === null ? "null" : typeof b}, expected an Arrow RecordBatch`);
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
