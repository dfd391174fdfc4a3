/**
 * `filterRows`: keep the rows a predicate marks. The predicate sees the whole batch and
 * returns one keep-flag per row (vectorised over columns, not called per row). Keeping all
 * rows passes the batch through unchanged; keeping none drops it (its credit can return).
 *
 * @example
 * filterRows("minScore", (b) => {
 *   const s = b.getChild("clip_score")!.toArray() as Float32Array;
 *   return s.map((x) => (x >= 20 ? 1 : 0));
 * });
 */
import type { RecordBatch } from "apache-arrow";
import { takeRows } from "../arrow/take.ts";
import { operate, type BatchScope, type FlowOperator, type StageOptions } from "./operate.ts";

export function filterRows(
  name: string,
  keep: (batch: RecordBatch, scope: BatchScope) => ArrayLike<number | boolean>,
  opts: Omit<StageOptions, "name" | "sink"> = {},
): FlowOperator {
  return operate({ ...opts, name }, () => ({
    process: (fb, scope) => {
      const b = fb.batch;
      const mask = keep(b, scope);
      if (mask.length !== b.numRows) throw new Error(`keep mask has ${mask.length} entries for ${b.numRows} rows`);
      const idx: number[] = [];
      for (let i = 0; i < mask.length; i++) if (mask[i] && !scope.isRejected(i)) idx.push(i);
      return idx.length === 0 ? null : takeRows(b, idx);
    },
  }));
}
