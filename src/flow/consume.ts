/**
 * `consume`: a sink stage. Calls `fn` on each batch (sync or async, at most `concurrency` at
 * once) and releases the batch when `fn` is done — that is what returns credits to the source.
 * It emits nothing; its rowsOut are the rows consumed.
 *
 * @example
 * fromSource(src, ctx).pipe(mapBatch("score", score), consume("write", (b) => writer.write(b)));
 */
import type { RecordBatch } from "apache-arrow";
import { operate, type BatchScope, type FlowOperator, type StageOptions } from "./operate.ts";

export function consume(
  name: string,
  fn: (batch: RecordBatch, scope: BatchScope) => void | PromiseLike<void>,
  opts: Omit<StageOptions, "name" | "sink"> = {},
): FlowOperator {
  return operate({ ...opts, name, sink: true }, () => ({
    process: (fb, scope) => {
      const r = fn(fb.batch, scope);
      return r && typeof (r as PromiseLike<void>).then === "function" ? (r as PromiseLike<void>).then(() => null) : null;
    },
  }));
}
