/**
 * The dynamic batcher of one registered model: a work source that coalesces items from any
 * number of streams into one ORT call (up to `maxBatch` rows or `maxDelayMs` of waiting), pads
 * variable-length inputs per batch, and splits outputs back to each caller.
 */
import type { Device, SessionOptions, TensorValue } from "../graph/runtime.ts";
import { concatRows, rowsOf, sliceRows, split, stack, type InputBatching, type OutputBatching } from "./batch-tensors.ts";
import type { Executor, ReadyWork, WorkSource } from "./executor.ts";
import { FairQueue, type QueueItem } from "./fair-queue.ts";
import { ModelMetrics, type ModelStats } from "./metrics.ts";
import type { SessionInfo } from "./model-host.ts";
import { deferred, type Deferred } from "./deferred.ts";
import { ClipflowError, ConfigError, RuntimeError, type ClipflowErrorOptions } from "../util/errors.ts";

export type Tensors = Record<string, TensorValue>;

/** What to load and how its inputs and outputs batch. */
export interface ModelSpec {
  /** ONNX model bytes or a file path, loaded into every replica's worker. */
  model: Uint8Array | string;
  /** Inputs whose length varies between items (padded per batch). Others must agree on dims[1:]. */
  inputs?: Record<string, InputBatching>;
  /** Outputs carrying the items' variable length, cut back to each item's length. */
  outputs?: Record<string, OutputBatching>;
  /** Outputs to fetch (default: all the session's outputs). */
  outputNames?: string[];
  /** Ascending length-bucket upper bounds; default powers of two. */
  lengthBuckets?: number[];
}

/** Batching and placement options of a registered model. */
export interface BatchOptions {
  /** Most rows in one ORT call (default 32). */
  maxBatch?: number;
  /** Longest an item waits for a fuller batch before it is dispatched anyway (default 2 ms). */
  maxDelayMs?: number;
  /** Most rows queued; beyond it submissions await admission (default 4 × maxBatch). */
  maxQueue?: number;
  /** Higher runs first when models compete for an executor (default 0). */
  priority?: number;
  /** Workers holding a copy of the model, served in turn (default 1). */
  replicas?: number;
  /** ORT intra-op threads per replica (default 1). */
  intraOpThreads?: number;
  /** Device of the replicas (default: the scheduler's first device). */
  device?: Device;
}

export interface RunOptions {
  /** The submitting stream, for fair service and per-stream metrics (default "default"). */
  stream?: string;
  /** Overrides the model's priority for this call. */
  priority?: number;
  /** Aborting drops this call's queued rows; the call rejects with an AbortError. */
  signal?: AbortSignal;
}

/** An admitted call; `result` settles when its rows have run. */
export interface Ticket {
  result: Promise<Tensors>;
}

export type ResolvedBatchOptions = Required<BatchOptions>;

/**
 * A scheduler call that cannot be served: feeds that do not fit the model (code "bad input"), a
 * model that failed to load or run (the host's code, e.g. "model load failed"), a closed
 * scheduler ("scheduler closed"). Bad batching options are ConfigErrors ("bad option") instead:
 * they come from a pipeline file and are refused at registration, before any work.
 * @example await m.run({}).catch((e) => e instanceof SchedulerError && e.code === "bad input");
 */
export class SchedulerError extends RuntimeError {
  override name = "SchedulerError";
  constructor(detail: string, opts: ClipflowErrorOptions = {}) {
    super(detail, { code: "scheduler", ...opts });
  }
}

/** The code a wrapped failure keeps (a host's "model run failed", a shape's "bad shape"). */
function codeOf(e: unknown, fallback: string): string {
  return e instanceof ClipflowError ? e.code : fallback;
}

/**
 * The error an aborted or cancelled call rejects with (`name === "AbortError"`).
 * @example await m.run(x, { signal }).catch((e) => { if (e.name !== "AbortError") throw e; });
 */
export function abortError(message: string): Error {
  return new DOMException(message, "AbortError");
}


class Request {
  readonly parts: (Tensors | undefined)[];
  remaining: number;
  admittedChunks = 0;
  settled = false;
  readonly admitted = deferred<void>();
  readonly done = deferred<Tensors>();
  detach: () => void = () => {};

  constructor(
    readonly stream: string,
    readonly nChunks: number,
  ) {
    this.parts = new Array<Tensors | undefined>(nChunks);
    this.remaining = nChunks;
  }
}

interface Chunk extends QueueItem {
  readonly req: Request;
  readonly index: number;
  readonly feeds: Tensors;
  /** Length along the variable axis (0 for fixed-shape models). */
  readonly length: number;
  readonly submittedAt: number;
}

/** Default length buckets: powers of two. */
function bucketOf(len: number, bounds: readonly number[] | undefined): number {
  if (!bounds) return len <= 1 ? 0 : Math.ceil(Math.log2(len));
  const i = bounds.findIndex((b) => len <= b);
  return i < 0 ? bounds.length : i;
}

/**
 * Fill in defaults and check every batching option, naming the model in the error.
 * @example resolveOptions("clip.image", { maxBatch: 16 }, "cpu").maxQueue // 64
 */
export function resolveOptions(name: string, o: BatchOptions, defaultDevice: Device): ResolvedBatchOptions {
  const maxBatch = o.maxBatch ?? 32;
  const r: ResolvedBatchOptions = {
    maxBatch,
    maxDelayMs: o.maxDelayMs ?? 2,
    maxQueue: o.maxQueue ?? 4 * maxBatch,
    priority: o.priority ?? 0,
    replicas: o.replicas ?? 1,
    intraOpThreads: o.intraOpThreads ?? 1,
    device: o.device ?? defaultDevice,
  };
  const bad = (what: string) => new ConfigError(`model '${name}': ${what}`, { code: "bad option" });
  if (!Number.isInteger(r.maxBatch) || r.maxBatch < 1) throw bad(`maxBatch must be an integer >= 1 (got ${r.maxBatch})`);
  if (!(r.maxDelayMs >= 0)) throw bad(`maxDelayMs must be >= 0 (got ${r.maxDelayMs})`);
  if (!Number.isInteger(r.maxQueue) || r.maxQueue < r.maxBatch) throw bad(`maxQueue must be an integer >= maxBatch (got ${r.maxQueue})`);
  if (!Number.isInteger(r.replicas) || r.replicas < 1) throw bad(`replicas must be an integer >= 1 (got ${r.replicas})`);
  if (!Number.isInteger(r.intraOpThreads) || r.intraOpThreads < 1) throw bad(`intraOpThreads must be an integer >= 1 (got ${r.intraOpThreads})`);
  if (!Number.isFinite(r.priority)) throw bad(`priority must be a finite number (got ${r.priority})`);
  return r;
}

/**
 * One registered model. Created by `Scheduler.register`; users call `run`.
 * @example
 * const m = scheduler.register("clip.image", { model: bytes }, { maxBatch: 16, maxDelayMs: 4 });
 * const { embeds } = await m.run({ pixels }, { stream: "a" });
 */
export class BatchedModel implements WorkSource {
  private readonly queue: FairQueue<Chunk>;
  private metrics: ModelMetrics;
  private readonly loadedOn = new Set<Executor>();
  private info: SessionInfo | undefined;
  private failure: Error | undefined;
  private closed = false;
  /** Resolves with the session's input/output names once every replica has loaded. */
  readonly ready: Promise<SessionInfo>;
  private readonly readyD = deferred<SessionInfo>();

  constructor(
    readonly name: string,
    readonly spec: ModelSpec,
    readonly options: ResolvedBatchOptions,
    private readonly now: () => number,
    private readonly pump: () => void,
  ) {
    this.queue = new FairQueue<Chunk>(options.maxQueue);
    this.metrics = new ModelMetrics(options.maxBatch);
    this.ready = this.readyD.promise;
    for (const [k, b] of Object.entries(spec.inputs ?? {})) {
      if (!Number.isInteger(b.variableAxis) || b.variableAxis < 1) {
        throw new ConfigError(`model '${name}': input '${k}' variableAxis must be an integer >= 1 (got ${b.variableAxis})`, { code: "bad option" });
      }
    }
  }

  /** Load the model on `executors` (its replicas). Called once by the scheduler. */
  load(executors: readonly Executor[]): void {
    const opts: SessionOptions = { intraOpThreads: this.options.intraOpThreads };
    Promise.all(
      executors.map(async (ex) => {
        const info = await ex.host.load(this.name, this.spec.model, { ...opts, device: ex.device });
        this.info = info;
        this.loadedOn.add(ex);
        this.pump();
        return info;
      }),
    ).then(
      (infos) => this.readyD.resolve(infos[0]!),
      (e: unknown) => {
        const err = e instanceof Error ? e : new Error(String(e));
        this.failure = new SchedulerError(`model '${this.name}': ${err.message}`, { code: codeOf(e, "model load failed"), cause: e });
        this.readyD.reject(this.failure);
        this.dropAll(this.failure);
      },
    );
  }

  /**
   * Submit rows and wait for their outputs. Every input has the rows on axis 0 (one item or many);
   * outputs come back with the same rows. Waits for queue admission first (backpressure).
   * Inputs are read, never transferred or kept: leave them unchanged until the call settles.
   */
  async run(inputs: Tensors, opts: RunOptions = {}): Promise<Tensors> {
    const t = await this.enqueue(inputs, opts);
    return t.result;
  }

  /**
   * Submit rows; resolves once they are admitted to the queue (backpressure) with a ticket whose
   * `result` settles when they have run. Lets a producer keep several calls in flight.
   */
  enqueue(inputs: Tensors, opts: RunOptions = {}): Promise<Ticket> {
    const stream = opts.stream ?? "default";
    if (this.closed) return Promise.reject(new SchedulerError(`model '${this.name}': scheduler is closed`, { code: "scheduler closed" }));
    if (this.failure) return Promise.reject(this.failure);
    if (opts.signal?.aborted) return Promise.reject(abortError(`model '${this.name}': stream '${stream}' aborted before submitting`));
    let rows: number;
    let length: number;
    let shapeKey: string;
    try {
      ({ rows, length, shapeKey } = this.describe(inputs));
    } catch (e) {
      return Promise.reject(e);
    }
    const now = this.now();
    this.metrics.onSubmit(stream, now);
    const maxBatch = this.options.maxBatch;
    const nChunks = Math.ceil(rows / maxBatch);
    const req = new Request(stream, nChunks);
    const bucket = `${shapeKey}|${bucketOf(length, this.spec.lengthBuckets)}`;
    const priority = opts.priority ?? this.options.priority;
    const chunks: Chunk[] = [];
    for (let i = 0; i < nChunks; i++) {
      const r0 = i * maxBatch;
      const r1 = Math.min(rows, r0 + maxBatch);
      const feeds: Tensors = {};
      for (const [k, v] of Object.entries(inputs)) feeds[k] = nChunks === 1 ? v : sliceRows(v, r0, r1);
      chunks.push({ stream, rows: r1 - r0, bucket, priority, enqueuedAt: Number.NaN, req, index: i, feeds, length, submittedAt: now });
    }
    const onAdmit = () => {
      if (++req.admittedChunks === nChunks) req.admitted.resolve();
    };
    for (const c of chunks) {
      if (this.queue.offer(c, now, onAdmit)) onAdmit();
    }
    const signal = opts.signal;
    if (signal) {
      const onAbort = () => this.cancelRequest(req, abortError(`model '${this.name}': stream '${stream}' aborted`));
      signal.addEventListener("abort", onAbort, { once: true });
      req.detach = () => signal.removeEventListener("abort", onAbort);
    }
    this.pump();
    return req.admitted.promise.then(() => ({ result: req.done.promise }));
  }

  /** Drop every queued or waiting row of `stream`; their calls reject with an AbortError. */
  cancelStream(stream: string, reason = `model '${this.name}': stream '${stream}' cancelled`): number {
    const removed = this.queue.remove((c) => c.stream === stream);
    const reqs = new Set(removed.map((c) => c.req));
    for (const r of reqs) this.settleFailed(r, abortError(reason));
    const rows = removed.reduce((a, c) => a + c.rows, 0);
    this.metrics.onCancelled(rows);
    this.queue.admitWaiting(this.now());
    this.pump();
    return rows;
  }

  /** Start the metrics afresh (e.g. after a warm-up). */
  resetStats(): void {
    this.metrics = new ModelMetrics(this.options.maxBatch);
  }

  stats(): ModelStats {
    return this.metrics.snapshot(this.queue.queuedRows, this.queue.waitingItems);
  }

  // ---- WorkSource ----

  servesOn(executor: Executor): boolean {
    return this.loadedOn.has(executor);
  }

  readyWork(now: number): ReadyWork | undefined {
    return this.readyAt(now);
  }

  private readyAt(now: number): ReadyWork | undefined {
    const rows = this.queue.queuedRows;
    if (rows === 0) return undefined;
    const since = this.queue.oldestEnqueuedAt()!;
    if (rows < this.options.maxBatch && now - since < this.options.maxDelayMs) return undefined;
    return { priority: this.queue.topPriority()!, since };
  }

  nextDeadline(): number | undefined {
    const since = this.queue.oldestEnqueuedAt();
    return since === undefined ? undefined : since + this.options.maxDelayMs;
  }

  async dispatch(executor: Executor, now: number): Promise<void> {
    const chunks = this.queue.take(this.options.maxBatch);
    if (chunks.length === 0) return;
    this.queue.admitWaiting(now);
    const rows = chunks.reduce((a, c) => a + c.rows, 0);
    this.metrics.onBatch(
      rows,
      chunks.map((c) => ({ wait: now - c.submittedAt, rows: c.rows })),
    );
    try {
      const feeds = this.assemble(chunks);
      const outs = await executor.host.run(this.name, feeds, this.spec.outputNames);
      const rowCounts = chunks.map((c) => c.rows);
      const lengths = chunks.map((c) => c.length);
      const pieces: Record<string, TensorValue[]> = {};
      for (const [k, t] of Object.entries(outs)) pieces[k] = split(k, t, rowCounts, this.spec.outputs?.[k], lengths);
      const done = this.now();
      chunks.forEach((c, i) => {
        const part: Tensors = {};
        for (const [k, p] of Object.entries(pieces)) part[k] = p[i]!;
        if (this.deliver(c, part)) this.metrics.onDone(c.stream, c.rows, done);
      });
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      for (const c of chunks) {
        if (!c.req.settled) this.metrics.onFailed(c.rows);
        this.settleFailed(c.req, err.message.includes(`'${this.name}'`) ? err : new SchedulerError(`model '${this.name}': ${err.message}`, { code: codeOf(e, "model run failed"), cause: e }));
      }
    }
  }

  close(reason: Error): void {
    this.closed = true;
    this.dropAll(reason);
  }

  // ---- internals ----

  /** Rows, variable length and a shape key (items of different keys never share a batch). */
  private describe(inputs: Tensors): { rows: number; length: number; shapeKey: string } {
    const names = Object.keys(inputs).sort();
    const bad = (detail: string) => new SchedulerError(`model '${this.name}': ${detail}`, { code: "bad input" });
    if (names.length === 0) throw bad("run() needs at least one input");
    if (this.info) {
      const want = [...this.info.inputNames].sort();
      if (want.join(",") !== names.join(",")) {
        throw bad(`inputs {${names.join(", ")}} do not match the model's {${want.join(", ")}}`);
      }
    }
    let rows = -1;
    let length = -1;
    const key: string[] = [];
    for (const k of names) {
      const t = inputs[k]!;
      const r = rowsOf(t, `model '${this.name}' input '${k}'`);
      if (rows >= 0 && r !== rows) throw bad(`input '${k}' has ${r} rows, others ${rows}`);
      if (r < 1) throw bad(`input '${k}' has no rows`);
      rows = r;
      const b = this.spec.inputs?.[k];
      const dims = t.dims.slice(1).map(String);
      if (b) {
        if (b.variableAxis >= t.dims.length) {
          throw bad(`input '${k}' variableAxis ${b.variableAxis} out of range for dims [${t.dims.join(",")}]`);
        }
        const len = t.dims[b.variableAxis]!;
        if (length >= 0 && len !== length) {
          throw bad(`variable inputs disagree on length (${k} has ${len}, another ${length})`);
        }
        length = len;
        dims[b.variableAxis - 1] = "*";
      }
      key.push(`${k}:${t.dtype}[${dims.join(",")}]`);
    }
    return { rows, length: Math.max(0, length), shapeKey: key.join(";") };
  }

  /** One feed per input: the chunks stacked on axis 0, variable axes padded to the longest. */
  private assemble(chunks: readonly Chunk[]): Tensors {
    const feeds: Tensors = {};
    for (const k of Object.keys(chunks[0]!.feeds)) {
      feeds[k] = stack(
        k,
        chunks.map((c) => c.feeds[k]!),
        this.spec.inputs?.[k],
      );
    }
    return feeds;
  }

  /** Hand a chunk's outputs to its request; true if the request still wanted them. */
  private deliver(c: Chunk, part: Tensors): boolean {
    const req = c.req;
    if (req.settled) return false;
    req.parts[c.index] = part;
    if (--req.remaining > 0) return true;
    req.settled = true;
    req.detach();
    if (req.nChunks === 1) {
      req.done.resolve(part);
      return true;
    }
    const out: Tensors = {};
    for (const k of Object.keys(part)) {
      out[k] = concatRows(
        k,
        req.parts.map((p) => p![k]!),
      );
    }
    req.done.resolve(out);
    return true;
  }

  private settleFailed(req: Request, err: Error): void {
    if (req.settled) return;
    req.settled = true;
    req.detach();
    this.queue.remove((c) => c.req === req);
    req.admitted.reject(err);
    req.done.reject(err);
  }

  private cancelRequest(req: Request, err: Error): void {
    if (req.settled) return;
    const removed = this.queue.remove((c) => c.req === req);
    this.metrics.onCancelled(removed.reduce((a, c) => a + c.rows, 0));
    this.settleFailed(req, err);
    this.queue.admitWaiting(this.now());
    this.pump();
  }

  private dropAll(err: Error): void {
    const removed = this.queue.remove(() => true);
    for (const r of new Set(removed.map((c) => c.req))) this.settleFailed(r, err);
  }
}
