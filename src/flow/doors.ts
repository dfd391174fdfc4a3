/**
 * The two doors between plain RxJS / Arrow code and clipflow stages.
 *
 * `fromBatches(input, opts)` attaches credits and lineage at the edge. It takes a `RecordBatch`
 * or `Table`, or
 * - an `AsyncIterable` / `Iterable` of `RecordBatch` or `Table` (pull: the next item is read only
 *   when a credit is free, so backpressure reaches the producer; a `Table` enters as its batches),
 * - a factory `() => AsyncIterable | Iterable` (cold: called once per subscription, so `retry()`
 *   and `repeat()` read the input again), or
 * - an `Observable<RecordBatch | Table>` (push: the producer cannot be paced, so batches wait in a
 *   bounded buffer of `bufferSize` batches; when it is full, `overflow: "error"` (the default)
 *   fails the flow and `overflow: "dead-letter"` dead-letters the rows of the arriving batch with
 *   reason code `buffer overflow`).
 *
 * `toBatches()` takes them off at the end: it hands each `RecordBatch` downstream and releases its
 * credits at hand-off, so plain `map`/`subscribe`/`toArray` after it never stall the source.
 *
 * Each subscription gets a fresh flow context (credit pool, metrics, dead letters) unless `ctx`
 * is given; `onContext` sees it (for metrics or the dead-letter count).
 *
 * @example
 * import { from, toArray } from "rxjs";
 * const out = await lastValueFrom(
 *   fromBatches(() => readBatches("in.arrow"), { maxInFlight: 4, onError: "skip" })
 *     .pipe(mapBatch("double", double), toBatches(), toArray()),
 * );
 */
import { Observable, defer, isObservable, type OperatorFunction } from "rxjs";
import { RecordBatch, Table } from "apache-arrow";
import { createFlowContext, type FlowContext, type FlowContextOptions } from "./context.ts";
import { release, sourceBatch, type FlowBatch } from "./credits.ts";
import { StageError } from "./errors.ts";
import { describeValue, isFlowBatch } from "./operate.ts";
import { fromSource, type FromSourceOptions } from "./source.ts";
import { ConfigError, InputError, RuntimeError } from "../util/errors.ts";

/** One item of a door's input: a batch, or a table entering as its batches. */
export type BatchLike = RecordBatch | Table;

/** What `fromBatches` accepts. */
export type BatchInput =
  | BatchLike
  | AsyncIterable<BatchLike>
  | Iterable<BatchLike>
  | (() => AsyncIterable<BatchLike> | Iterable<BatchLike>)
  | Observable<BatchLike>;

/** What a push input does when its buffer is full. */
export type OverflowPolicy = "error" | "dead-letter";

export interface FromBatchesOptions extends FlowContextOptions, Omit<FromSourceOptions, "yieldEveryMs"> {
  /** Share an existing flow context instead of creating one per subscription. */
  ctx?: FlowContext;
  /** Called with the context of each subscription before the first batch. */
  onContext?: (ctx: FlowContext) => void;
  /** Source name in metrics, dead letters and errors (default "source"). */
  name?: string;
  /** Push inputs only: batches waiting for a credit at most (default 16). */
  bufferSize?: number;
  /** Push inputs only: what a batch arriving at a full buffer does (default "error"). */
  overflow?: OverflowPolicy;
  /** Wall-clock period at which a pull source yields to macrotasks (see SOURCE_YIELD_MS). */
  yieldEveryMs?: number;
}

/** Default buffer of a push (Observable) input, in batches. */
export const PUSH_BUFFER_BATCHES = 16;

/** The batches of an item: a Table's batches, a RecordBatch itself; anything else is an error. */
function batchesOf(item: unknown, i: number): readonly RecordBatch[] {
  if (item instanceof RecordBatch) return [item];
  if (item instanceof Table) return item.batches;
  throw new InputError(`item ${i} is ${describeValue(item)}, expected an Arrow RecordBatch or Table`, { code: "not a record batch" });
}

/** Tables flattened to batches, lazily: the next item is read only when its predecessor's batches are taken. */
async function* flattenAsync(it: AsyncIterable<unknown>): AsyncGenerator<RecordBatch> {
  let i = 0;
  for await (const item of it) yield* batchesOf(item, i++);
}
function* flattenSync(it: Iterable<unknown>): Generator<RecordBatch> {
  let i = 0;
  for (const item of it) yield* batchesOf(item, i++);
}

const isAsyncIterable = (v: unknown): v is AsyncIterable<unknown> => v != null && typeof (v as Record<symbol, unknown>)[Symbol.asyncIterator] === "function";
const isIterable = (v: unknown): v is Iterable<unknown> =>
  v != null && typeof v !== "string" && typeof (v as Record<symbol, unknown>)[Symbol.iterator] === "function";

function checkOptions(opts: FromBatchesOptions, name: string): void {
  const b = opts.bufferSize;
  if (b !== undefined && !(Number.isInteger(b) && b >= 1)) {
    throw new ConfigError(`option bufferSize: must be a positive integer, got ${String(b)}`, { code: "bad option", where: { stage: name } });
  }
  const o = opts.overflow;
  if (o !== undefined && o !== "error" && o !== "dead-letter") {
    throw new ConfigError(`option overflow: must be "error" or "dead-letter", got ${JSON.stringify(o)}`, { code: "bad option", where: { stage: name } });
  }
}

/**
 * The entry door: a plain batch input as a credit-gated flow of FlowBatches (see the module note).
 *
 * @example
 * fromBatches([table]).pipe(filterRows("keep", (b, i) => b.getChild("v")!.get(i) > 0), toBatches()).subscribe(console.log);
 */
export function fromBatches(input: BatchInput, opts: FromBatchesOptions = {}): Observable<FlowBatch> {
  const name = opts.name ?? "source";
  checkOptions(opts, name);
  // A lone batch or table is one item (both are iterable over rows, which is never meant here).
  if (input instanceof RecordBatch || input instanceof Table) input = [input];
  const push = isObservable(input);
  if (!push && typeof input !== "function" && !isAsyncIterable(input) && !isIterable(input)) {
    throw new ConfigError(`fromBatches takes an (async) iterable, a factory () => iterable or an Observable of RecordBatch/Table, got ${describeValue(input)}`, {
      code: "bad input",
      where: { stage: name },
    });
  }
  let oneShotUsed = false;
  return defer(() => {
    const ctx = opts.ctx ?? createFlowContext(opts);
    opts.onContext?.(ctx);
    if (push) return pushSource(input as Observable<BatchLike>, ctx, name, opts);
    let it: unknown = typeof input === "function" ? (input as () => unknown)() : input;
    if (it instanceof RecordBatch || it instanceof Table) it = [it];
    if (typeof input === "function" && !isAsyncIterable(it) && !isIterable(it)) {
      throw new ConfigError(`the factory given to fromBatches returned ${describeValue(it)}, expected an (async) iterable of batches`, { code: "bad input", where: { stage: name } });
    }
    // An iterator that is its own iterable (a generator object) can be read once; a second
    // subscription would see no rows, silently. Say so and name the fix.
    const self = typeof (it as { next?: unknown }).next === "function";
    if (self) {
      if (oneShotUsed && typeof input !== "function") {
        throw new ConfigError("this input is a one-shot iterator (a generator) already read by an earlier subscription; pass a factory: fromBatches(() => gen())", { code: "one-shot input", where: { stage: name } });
      }
      oneShotUsed = true;
    }
    const batches = isAsyncIterable(it) ? flattenAsync(it) : flattenSync(it as Iterable<unknown>);
    return fromSource(batches, ctx, name, { yieldEveryMs: opts.yieldEveryMs, stallTimeoutMs: opts.stallTimeoutMs, scheduler: opts.scheduler });
  });
}

/** A push input: buffered (bounded), each batch sent on as soon as a credit is free. */
function pushSource(input: Observable<BatchLike>, ctx: FlowContext, name: string, opts: FromBatchesOptions): Observable<FlowBatch> {
  const size = opts.bufferSize ?? PUSH_BUFFER_BATCHES;
  const overflow = opts.overflow ?? "error";
  return new Observable<FlowBatch>((sub) => {
    const m = ctx.metrics(name);
    const pool = ctx.pool;
    const buffer: RecordBatch[] = [];
    let upstreamDone = false;
    let closed = false;
    let waiting: (() => void) | null = null;
    let item = 0;

    const fail = (e: unknown): void => {
      if (closed) return;
      closed = true;
      waiting?.();
      sub.error(StageError.wrap(name, e));
    };

    const send = (b: RecordBatch, credit: NonNullable<ReturnType<typeof pool.tryAcquire>>): void => {
      m.in(b.numRows);
      m.out(b.numRows);
      m.inFlight--;
      sub.next(sourceBatch(ctx, credit, b));
    };

    /** Move buffered batches out while credits are free; wait for one otherwise. */
    const pump = (): void => {
      while (!closed && buffer.length > 0 && waiting === null) {
        const c = pool.tryAcquire();
        if (c) {
          send(buffer.shift()!, c);
          continue;
        }
        const w = pool.acquire();
        waiting = w.cancel;
        w.promise.then(
          (credit) => {
            waiting = null;
            if (!credit) return;
            if (closed || buffer.length === 0) return pool.giveBack(credit);
            try {
              send(buffer.shift()!, credit);
              pump();
            } catch (e) {
              fail(e);
            }
          },
          (e: unknown) => fail(e),
        );
      }
      if (!closed && upstreamDone && buffer.length === 0 && waiting === null) {
        closed = true;
        sub.complete();
      }
    };

    const upstream = input.subscribe({
      next: (v) => {
        try {
          for (const b of batchesOf(v, item++)) {
            if (closed) return;
            if (buffer.length >= size) {
              if (overflow === "error") {
                return fail(
                  new RuntimeError(`push input overflowed its buffer of ${size} batches; raise bufferSize, set overflow: "dead-letter", or pass an AsyncIterable for true backpressure`, {
                    code: "buffer overflow",
                  }),
                );
              }
              deadLetterBatch(ctx, name, b);
              continue;
            }
            buffer.push(b);
          }
          pump();
        } catch (e) {
          fail(e);
        }
      },
      error: (e) => fail(e),
      complete: () => {
        upstreamDone = true;
        try {
          pump();
        } catch (e) {
          fail(e);
        }
      },
    });

    return () => {
      closed = true;
      upstream.unsubscribe();
      waiting?.();
      waiting = null;
      buffer.length = 0;
    };
  });
}

/** Dead-letter every row of a batch that found the push buffer full (counted as the source's). */
function deadLetterBatch(ctx: FlowContext, name: string, b: RecordBatch): void {
  const m = ctx.metrics(name);
  const ids = b.getChild("id") ?? b.getChild("image_id");
  for (let i = 0; i < b.numRows; i++) ctx.deadLetter.add(ids ? String(ids.get(i)) : `#overflow:${i}`, name, "buffer overflow");
  m.rowsIn += b.numRows;
  m.deadLettered += b.numRows;
}

/**
 * The exit door: FlowBatches -> RecordBatches, each released (its credits returned) as it is
 * handed downstream. What happens after it is plain RxJS: keep it bounded yourself.
 *
 * @example
 * fromBatches(() => batches()).pipe(decodeImages, toBatches(), toArray()).subscribe((bs) => new Table(bs));
 */
export function toBatches(name = "toBatches"): OperatorFunction<FlowBatch, RecordBatch> {
  return (source) =>
    new Observable<RecordBatch>((sub) =>
      source.subscribe({
        next: (fb: unknown) => {
          try {
            if (!isFlowBatch(fb)) {
              throw new ConfigError(`received ${describeValue(fb)} where a FlowBatch was expected; put toBatches() after clipflow stages that start at fromBatches(...)`, {
                code: "not a flow batch",
                where: { stage: name },
              });
            }
            const m = fb.lineage.ctx.metrics(name);
            const b = fb.batch;
            m.in(b.numRows);
            m.out(b.numRows);
            m.inFlight--;
            release(fb);
            sub.next(b);
          } catch (e) {
            sub.error(StageError.wrap(name, e));
          }
        },
        error: (e) => sub.error(e),
        complete: () => sub.complete(),
      }),
    );
}
