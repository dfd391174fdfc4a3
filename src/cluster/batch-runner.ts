/**
 * Runs one work batch through a worker's stage operators (the same operator instances the single
 * process builds, from the stage registry) in a flow of its own, and collects what leaves the
 * last stage plus the per-stage counts and dead-lettered rows — everything a result message
 * carries. One flow per batch keeps a batch's accounting separate, so a redelivered batch is
 * counted once at the coordinator (which keeps the first result of each batch id).
 *
 * @example
 * const r = await runBatch(batch, ops, "skip"); // r.batches, r.stages, r.dead, r.error
 */
import type { RecordBatch } from "apache-arrow";
import { consume, createFlowContext, fromSource, type FlowOperator } from "../flow/index.ts";
import type { WireDeadRow, WireStageCounts } from "./protocol.ts";

export interface BatchRun {
  batches: RecordBatch[];
  rowsOut: number;
  stages: WireStageCounts[];
  dead: WireDeadRow[];
  expanded: number;
  filtered: number;
  /** The flow's error (onError: fail, or a failure outside the rows), else null. */
  error: string | null;
}

/** Runs `batch` through `ops` (in order) under the pipeline's bad-row policy. */
export function runBatch(batch: RecordBatch, ops: readonly FlowOperator[], onError: "skip" | "fail"): Promise<BatchRun> {
  // A source batch and everything derived from it: one credit is enough (nothing buffers across batches here).
  const ctx = createFlowContext({ maxInFlight: 1, onError });
  ctx.metrics("source");
  for (const op of ops) ctx.metrics(op.stageName);
  const out: RecordBatch[] = [];
  let flow = fromSource([batch], ctx, "source", { stallTimeoutMs: Infinity });
  for (const op of ops) flow = flow.pipe(op);
  const finish = (error: string | null): BatchRun => {
    const snaps = ctx.snapshot().filter((s) => s.stage !== "source" && s.stage !== "sink");
    const stages = snaps.map((s) => ({ stage: s.stage, rowsIn: s.rowsIn, rowsOut: s.rowsOut, filtered: s.filtered, expanded: s.expanded, deadLettered: s.deadLettered }));
    return {
      batches: out,
      rowsOut: out.reduce((a, b) => a + b.numRows, 0),
      stages,
      dead: ctx.deadLetter.rows().map((r) => ({ id: r.id, stage: r.stage, code: r.code, reason: r.reason })),
      expanded: stages.reduce((a, s) => a + s.expanded, 0),
      filtered: stages.reduce((a, s) => a + s.filtered, 0),
      error,
    };
  };
  return new Promise((resolve) => {
    flow.pipe(consume("sink", (b) => void out.push(b))).subscribe({
      error: (e: unknown) => resolve(finish(e instanceof Error ? e.message : String(e))),
      complete: () => resolve(finish(null)),
    });
  });
}
