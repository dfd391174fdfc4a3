/**
 * `mapBatch`: the simplest stage — a function from a batch to output batches (0, 1 or many;
 * now, as a Promise, or as an Observable). Outputs inherit the input's credits.
 * Fewer output rows than input rows count as filtered, more as expanded (explode).
 *
 * @example
 * mapBatch("lower", (b) => withText(b, lower(b.getChild("text"))));
 * mapBatch("score", async (b, s) => { … s.reject(3, "empty text"); return scored; }, { concurrency: 2 });
 */
import type { RecordBatch } from "apache-arrow";
import { operate, type BatchScope, type FlowOperator, type StageOptions, type StageResult } from "./operate.ts";

export function mapBatch(
  name: string,
  fn: (batch: RecordBatch, scope: BatchScope) => StageResult,
  opts: Omit<StageOptions, "name" | "sink"> = {},
): FlowOperator {
  return operate({ ...opts, name }, () => ({ process: (fb, scope) => fn(fb.batch, scope) }));
}
