/**
 * A flow's shared state: its credit pool, error policy, dead-letter file, per-stage metrics
 * and clock. Operators find it through the batches they receive (`fb.lineage.ctx`), so a stage
 * needs no wiring beyond being piped after a credit source.
 *
 * @example
 * const ctx = createFlowContext({ maxInFlight: 8, onError: "skip", deadLetterPath: "out/dl.arrow" });
 * fromSource(batches, ctx).pipe(filterRows("keep", pred), consume("sink", write));
 */
import { CreditPool } from "./credits.ts";
import { DeadLetter } from "./dead-letter.ts";
import { checkOnError, type OnError } from "./errors.ts";
import { StageMetrics, type StageSnapshot } from "./metrics.ts";

export interface FlowContextOptions {
  /** Source batches alive at once anywhere in the flow (default 8). */
  maxInFlight?: number;
  /** Default policy for bad rows (default "fail"); stages may override. */
  onError?: OnError;
  /** Dead-letter Arrow IPC file; without it dead rows are kept in memory. */
  deadLetterPath?: string;
  /** Clock in milliseconds (default performance.now); inject for virtual time. */
  now?: () => number;
}

export interface FlowContext {
  readonly pool: CreditPool;
  readonly onError: OnError;
  readonly deadLetter: DeadLetter;
  readonly now: () => number;
  /** Metrics of a stage (created on first use, in order of first use). */
  metrics(stage: string): StageMetrics;
  /** Snapshots of all stages, in order of first use. */
  snapshot(): StageSnapshot[];
}

export function createFlowContext(opts: FlowContextOptions = {}): FlowContext {
  const now = opts.now ?? (() => performance.now());
  const byStage = new Map<string, StageMetrics>();
  return {
    pool: new CreditPool(opts.maxInFlight ?? 8),
    onError: checkOnError(opts.onError ?? "fail", "flow"),
    deadLetter: new DeadLetter({ path: opts.deadLetterPath }),
    now,
    metrics(stage) {
      let m = byStage.get(stage);
      if (!m) byStage.set(stage, (m = new StageMetrics(stage, now)));
      return m;
    },
    snapshot: () => [...byStage.values()].map((m) => m.snapshot()),
  };
}
