/**
 * Shared plumbing of the image-row readers (Arrow, Parquet, JSONL, shapes world): the hook a
 * reader calls for a bad row, reading an image file a row names, conforming foreign batches to
 * the `images` schema, and cutting a stream of batches into batches of exactly `batchSize` rows.
 */
import { readFile } from "node:fs/promises";
import { isAbsolute, join, normalize, sep } from "node:path";
import { DataType, type RecordBatch, type Vector } from "apache-arrow";
import { batchFromColumns, type ColumnInput } from "../arrow/build.ts";
import { imagesSchema } from "../arrow/schemas.ts";
import { concatBatches, takeRows } from "../arrow/take.ts";
import { ConfigError, InputError } from "../util/errors.ts";

/**
 * Called for a row a reader cannot use (missing image file, bad JSON line, null image).
 * `id` names the row for the dead-letter file: its id, or `file:line` / `file#row` when it has none.
 * Throw to stop the run (onError: fail); return to skip the row.
 */
export type BadRowHandler = (id: string, reason: string) => void;

/**
 * The default hook: stop with an InputError (code "bad row", `where.rowId` the row's id).
 * @example failOnBadRow("i7", "data/x.arrow row 3: image is null") // throws `row i7: data/x.arrow row 3: image is null`
 */
export const failOnBadRow: BadRowHandler = (id, reason) => {
  throw new InputError(reason, { code: "bad row", where: { rowId: id } });
};

export interface ReaderOptions {
  /** Rows per emitted batch (the last may be shorter). */
  batchSize?: number;
  /** Stop after this many good rows (null/undefined: all). */
  count?: number | null;
  /** Bad-row hook (default: throw). */
  onBadRow?: BadRowHandler;
  /** Parquet only: time budget of decoding one row group, ms (default 120 s). */
  decodeTimeoutMs?: number;
}

const REQUIRED = ["id", "image", "prompt"] as const;

/**
 * The bytes of an image file named by a row: a relative path resolves against `root` (the folder
 * of the file that names it) and may not leave it; an absolute path is taken as is. Returns the
 * bytes, or a one-line reason (without location: the caller prefixes file and row).
 * @example const b = await readImageFile("data", "imgs/a.png"); if (typeof b === "string") onBad(id, `${at}: ${b}`);
 */
export async function readImageFile(root: string, ref: string): Promise<Uint8Array | string> {
  if (ref === "") return "image path is empty";
  const rel = normalize(ref);
  if (!isAbsolute(ref) && (rel === ".." || rel.startsWith(`..${sep}`))) return `image path '${ref}' leaves the folder ${root}`;
  const p = isAbsolute(ref) ? rel : join(root, rel);
  try {
    const b = new Uint8Array(await readFile(p));
    return b.byteLength > 0 ? b : `image '${ref}' is empty`;
  } catch (e) {
    return `image '${ref}' cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message.split("\n")[0]})`;
  }
}

/**
 * View a batch read from a file as an `images` batch: columns are matched by name and type
 * (Utf8 id/prompt, Binary image; reference/meta optional Utf8), extra columns are ignored,
 * rows with a null id, image or prompt go to `onBadRow`. Columns are passed through, not copied.
 * A missing or mistyped column is an InputError whose detail starts with `where` (not `where.file`):
 * the source stage's wrapper puts a file before the stage, and `path: column …` must stay one phrase.
 */
export function conformImages(batch: RecordBatch, where: string, firstRow: number, onBadRow: BadRowHandler): RecordBatch {
  const cols: Record<string, ColumnInput> = {};
  for (const f of imagesSchema.fields) {
    const v = batch.getChild(f.name);
    if (!v) {
      if (f.nullable) continue;
      throw new InputError(`missing column '${f.name}' (has ${batch.schema.fields.map((x) => x.name).join(", ")})`, { code: "missing column", where: { file: where } });
    }
    const t = v.type as DataType;
    const ok = DataType.isBinary(f.type) ? DataType.isBinary(t) : DataType.isUtf8(t);
    if (!ok) throw new InputError(`column '${f.name}' is ${t}, expected ${f.type}`, { code: "bad column type", where: { file: where } });
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
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new ConfigError(`batchSize must be a positive integer, got ${batchSize}`, { code: "bad option" });
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
