/**
 * The runner: wires a credit-gated source through stages into a sink, runs it to the end and
 * returns a report (per-stage metrics, credit stats, dead-letter counts).
 *
 * - An error anywhere rejects with a `StageError` naming the stage; everything is torn down.
 * - `signal` (AbortSignal) and SIGINT stop the run: the source stops pulling, every stage
 *   releases what it holds, the dead-letter file is closed, and the report says `interrupted`.
 * - Stage names must be unique (they key metrics and dead-letter rows).
 *
 * @example
 * const report = await runFlow({
 *   source: batches, maxInFlight: 8, onError: "skip", deadLetterPath: "out/dead.arrow",
 *   stages: [filterRows("keep", keep), rebatch("b64", { size: 64 })],
 *   sink: (b) => { rows += b.numRows; },
 * });
 */
import type { RecordBatch } from "apache-arrow";
import type { Subscription } from "rxjs";
import { createFlowContext, type FlowContext } from "./context.ts";
import type { CreditStats } from "./credits.ts";
import { consume } from "./consume.ts";
import type { OnError } from "./errors.ts";
import type { StageSnapshot } from "./metrics.ts";
import type { DeadLetterGroup } from "./dead-letter.ts";
import type { FlowOperator } from "./operate.ts";
import { fromSource } from "./source.ts";
import { ConfigError } from "../util/errors.ts";

export interface RunFlowOptions {
  source: AsyncIterable<RecordBatch> | Iterable<RecordBatch>;
  stages: readonly FlowOperator[];
  /** Consumes each final batch; the batch's credits return when it resolves. */
  sink?: (batch: RecordBatch) => void | PromiseLike<void>;
  sinkName?: string;
  sinkConcurrency?: number;
  maxInFlight?: number;
  onError?: OnError;
  deadLetterPath?: string;
  signal?: AbortSignal;
  /** Stop cleanly on SIGINT (default true). */
  handleSigint?: boolean;
  now?: () => number;
  /** Wall-clock period at which the source yields to macrotasks (default SOURCE_YIELD_MS = 10). */
  yieldEveryMs?: number;
  /** Called with a fresh context before the run starts (e.g. to sample metrics while it runs). */
  onStart?: (ctx: FlowContext) => void;
}

export interface RunReport {
  stages: StageSnapshot[];
  credits: CreditStats;
  deadLettered: number;
  /** Dead rows by (stage, reason code), largest first, with a few example ids (bounded). */
  deadLetterGroups: DeadLetterGroup[];
  deadLetterPath: string | undefined;
  interrupted: boolean;
  elapsedMs: number;
}

export function runFlow(opts: RunFlowOptions): Promise<RunReport> {
  const names = new Set<string>(["source", opts.sinkName ?? "sink"]);
  for (const s of opts.stages) {
    if (names.has(s.stageName)) throw new ConfigError(`runFlow: duplicate stage name "${s.stageName}"`, { code: "duplicate stage" });
    names.add(s.stageName);
  }
  const ctx = createFlowContext({
    maxInFlight: opts.maxInFlight,
    onError: opts.onError,
    deadLetterPath: opts.deadLetterPath,
    now: opts.now,
  });
  // Register metrics in pipeline order so the report lists stages as wired.
  ctx.metrics("source");
  for (const s of opts.stages) ctx.metrics(s.stageName);
  const sinkName = opts.sinkName ?? "sink";
  ctx.metrics(sinkName);
  opts.onStart?.(ctx);

  const t0 = ctx.now();
  return new Promise<RunReport>((resolve, reject) => {
    let sub: Subscription | null = null;
    let finished = false;
    const report = (interrupted: boolean): RunReport => ({
      stages: ctx.snapshot(),
      credits: ctx.pool.stats(),
      deadLettered: ctx.deadLetter.count,
      deadLetterGroups: ctx.deadLetter.summary(),
      deadLetterPath: ctx.deadLetter.path,
      interrupted,
      elapsedMs: ctx.now() - t0,
    });
    const end = (err: unknown, interrupted = false): void => {
      if (finished) return;
      finished = true;
      opts.signal?.removeEventListener("abort", onAbort);
      if (sigint) process.off("SIGINT", onSigint);
      sub?.unsubscribe(); // tears every stage down; releases what they hold
      try {
        ctx.deadLetter.close();
      } catch (e) {
        err ??= e;
      }
      if (err !== undefined) reject(err);
      else resolve(report(interrupted));
    };
    const onAbort = (): void => end(undefined, true);
    const onSigint = (): void => end(undefined, true);
    const sigint = opts.handleSigint ?? true;
    if (opts.signal?.aborted) return end(undefined, true);
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    if (sigint) process.on("SIGINT", onSigint);

    const sinkFn = opts.sink ?? (() => {});
    let flow = fromSource(opts.source, ctx, "source", opts.yieldEveryMs);
    for (const s of opts.stages) flow = flow.pipe(s);
    const s = flow.pipe(consume(sinkName, sinkFn, { concurrency: opts.sinkConcurrency ?? 1 })).subscribe({
      error: (e) => end(e),
      complete: () => end(undefined),
    });
    sub = s;
    if (finished) s.unsubscribe();
  });
}
