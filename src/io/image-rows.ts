/**
 * Shared plumbing of the image-row readers (Arrow, Parquet, JSONL, shapes world): the hook a
 * reader calls for a bad row, conforming foreign batches to the `images` schema, and cutting
 * a stream of batches into batches of exactly `batchSize` rows.
 */
import { DataType, type RecordBatch, type Vector } from "apache-arrow";
import { batchFromColumns, type ColumnInput } from "../arrow/build.ts";
import { imagesSchema } from "../arrow/schemas.ts";
import { concatBatches, takeRows } from "../arrow/take.ts";

/**
 * Called for a row a reader cannot use (missing image file, bad JSON line, null image).
 * `id` names the row for the dead-letter file: its id, or `file:line` / `file#row` when it has none.
 * Throw to stop the run (onError: fail); return to skip the row.
 */
export type BadRowHandler = (id: string, reason: string) => void;

export const failOnBadRow: BadRowHandler = (id, reason) => {
  throw new Error(`${id}: ${reason}`);
};

export interface ReaderOptions {
  /** Rows per emitted batch (the last may be shorter). */
  batchSize?: number;
  /** Stop after this many good rows (null/undefined: all). */
  count?: number | null;
  /** Bad-row hook (default: throw). */
  onBadRow?: BadRowHandler;
}

const REQUIRED = ["id", "image", "prompt"] as const;

/**
 * View a batch read from a file as an `images` batch: columns are matched by name and type
 * (Utf8 id/prompt, Binary image; reference/meta optional Utf8), extra columns are ignored,
 * rows with a null id, image or prompt go to `onBadRow`. Columns are passed through, not copied.
 */
export function conformImages(batch: RecordBatch, where: string, firstRow: number, onBadRow: BadRowHandler): RecordBatch {
  const cols: Record<string, ColumnInput> = {};
  for (const f of imagesSchema.fields) {
    const v = batch.getChild(f.name);
    if (!v) {
      if (f.nullable) continue;
      throw new Error(`${where}: missing column '${f.name}' (has ${batch.schema.fields.map((x) => x.name).join(", ")})`);
    }
    const t = v.type as DataType;
    const ok = DataType.isBinary(f.type) ? DataType.isBinary(t) : DataType.isUtf8(t);
    if (!ok) throw new Error(`${where}: column '${f.name}' is ${t}, expected ${f.type}`);
    cols[f.name] = v.data.length === 1 ? v : (v.toArray() as unknown as Vector);
  }
  const bad: number[] = [];
  for (let i = 0; i < batch.numRows; i++) {
    for (const name of REQUIRED) {
      const v = batch.getChild(name)!;
      if (!v.isValid(i) || (name === "image" && (v.get(i) as Uint8Array).byteLength === 0)) {
        const id = batch.getChild("id")!.isValid(i) ? String(batch.getChild("id")!.get(i)) : `${where}#${firstRow + i}`;
        onBadRow(id, `${where} row ${firstRow + i}: ${name} is ${v.isValid(i) ? "empty" : "null"}`);
        bad.push(i);
        break;
      }
    }
  }
  if (bad.length === 0) return batchFromColumns(imagesSchema, cols, where);
  const keep: number[] = [];
  const badSet = new Set(bad);
  for (let i = 0; i < batch.numRows; i++) if (!badSet.has(i)) keep.push(i);
  // Rebuild without the bad rows: nulls in non-nullable columns cannot enter an images batch.
  const sub = takeRows(batch, keep);
  return conformImages(sub, where, firstRow, onBadRow);
}

/**
 * Re-cut batches into `batchSize` rows and stop after `count` rows. Slices are views; only
 * rows straddling two input batches are copied once.
 */
export async function* rechunk(batches: AsyncIterable<RecordBatch>, batchSize: number, count: number | null | undefined): AsyncGenerator<RecordBatch> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
  let left = count ?? Infinity;
  let pending: RecordBatch[] = [];
  let pendingRows = 0;
  for await (let b of batches) {
    if (left <= 0) return;
    if (b.numRows > left) b = b.slice(0, left);
    left -= b.numRows;
    let at = 0;
    while (at < b.numRows) {
      const take = Math.min(batchSize - pendingRows, b.numRows - at);
      pending.push(at === 0 && take === b.numRows ? b : b.slice(at, at + take));
      pendingRows += take;
      at += take;
      if (pendingRows === batchSize) {
        yield concatBatches(pending);
        pending = [];
        pendingRows = 0;
      }
    }
  }
  if (pendingRows > 0) yield concatBatches(pending);
}
