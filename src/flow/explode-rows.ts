/**
 * `explodeRows`: repeat each input row `counts[i]` times (0 drops it), e.g. one image row into
 * `samples` candidate rows before generation. The outputs carry the input's credits; rows
 * created beyond the input count as `expanded`, rows with count 0 as `filtered`.
 *
 * @example
 * explodeRows("samples", (b) => new Int32Array(b.numRows).fill(8)); // 8 rows per image
 */
import type { RecordBatch } from "apache-arrow";
import { takeRows } from "../arrow/take.ts";
import { operate, type BatchScope, type FlowOperator, type StageOptions } from "./operate.ts";

export function explodeRows(
  name: string,
  counts: (batch: RecordBatch, scope: BatchScope) => ArrayLike<number>,
  opts: Omit<StageOptions, "name" | "sink"> = {},
): FlowOperator {
  return operate({ ...opts, name }, () => ({
    process: (fb, scope) => {
      const b = fb.batch;
      const k = counts(b, scope);
      if (k.length !== b.numRows) throw new Error(`counts has ${k.length} entries for ${b.numRows} rows`);
      let total = 0;
      let dropped = 0;
      for (let i = 0; i < k.length; i++) {
        const c = k[i]!;
        if (!Number.isInteger(c) || c < 0) throw new Error(`row ${i}: count must be a non-negative integer, got ${c}`);
        if (scope.isRejected(i)) continue;
        total += c;
        if (c === 0) dropped++;
      }
      const idx = new Int32Array(total);
      let at = 0;
      for (let i = 0; i < k.length; i++) if (!scope.isRejected(i)) for (let j = 0; j < k[i]!; j++) idx[at++] = i;
      scope.filtered(dropped); // so a mix of 0s and >1s is not netted out
      return total === 0 ? null : takeRows(b, idx);
    },
  }));
}
