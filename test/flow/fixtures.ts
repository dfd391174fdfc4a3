/** Shared test fixtures for flow tests: tiny batches with string ids and a float column. */
import { Field, Float32, Schema, Utf8, type RecordBatch } from "apache-arrow";
import { batchFromColumns } from "../../src/arrow/build.ts";
import { sourceBatch, type FlowBatch, type FlowContext } from "../../src/flow/index.ts";

export const testSchema = new Schema([new Field("id", new Utf8(), false), new Field("v", new Float32(), false)]);

/** A batch with ids `${prefix}${start}`… and v = the row number. */
export function makeBatch(start: number, rows: number, prefix = "r"): RecordBatch {
  const id = Array.from({ length: rows }, (_, i) => `${prefix}${start + i}`);
  const v = Float32Array.from({ length: rows }, (_, i) => start + i);
  return batchFromColumns(testSchema, { id, v }, "test");
}

export const idsOf = (b: RecordBatch): string[] => {
  const c = b.getChild("id")!;
  return Array.from({ length: b.numRows }, (_, i) => String(c.get(i)));
};

/** A FlowBatch owning a fresh credit of ctx's pool (the pool must have one free). */
export function flowBatch(ctx: FlowContext, b: RecordBatch): FlowBatch {
  const c = ctx.pool.tryAcquire();
  if (!c) throw new Error("fixture: no free credit");
  return sourceBatch(ctx, c, b);
}

export async function* generate(batches: number, rows: number, onPull?: (i: number) => void): AsyncGenerator<RecordBatch> {
  for (let i = 0; i < batches; i++) {
    onPull?.(i);
    yield makeBatch(i * rows, rows);
  }
}
