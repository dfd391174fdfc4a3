/**
 * Row access on record batches: a plain object for row `i`, and lookup by an id column.
 *
 * Tensor cells (FixedSizeList<Float32>) come back as `Float32Array` subarrays of the column
 * buffer, not copies; List<Float32> cells as Float32Array; Binary as Uint8Array.
 *
 * @example
 * const row = rowById(batch, "img-7");          // { id: "img-7", prompt: "...", pixels: Float32Array, ... }
 * const i = rowIndex(batch).get("img-7");       // index of the row, from a cached id -> index map
 */
import { DataType, type RecordBatch, type Vector } from "apache-arrow";

const indexCache = new WeakMap<RecordBatch, Map<string, Map<string, number>>>();

function columnOf(batch: RecordBatch, name: string): Vector {
  const v = batch.getChild(name);
  if (!v) throw new Error(`batch has no column '${name}' (has ${batch.schema.fields.map((f) => f.name).join(", ")})`);
  return v;
}

/** Cell `i` of a column as a plain JS value. */
export function cellAt(col: Vector, i: number): unknown {
  const t = col.type as DataType;
  if (DataType.isFixedSizeList(t)) {
    if (!col.isValid(i)) return null;
    const size = t.listSize;
    // Locate the chunk holding row i, then view its child buffer (no copy).
    let r = i;
    for (const d of col.data) {
      if (r < d.length) {
        const values = d.children[0]!.values as Float32Array;
        return values.subarray(r * size, (r + 1) * size);
      }
      r -= d.length;
    }
    throw new RangeError(`row ${i} out of range`);
  }
  const v = col.get(i) as unknown;
  if (v && typeof v === "object" && "toArray" in v && typeof v.toArray === "function") return v.toArray();
  return v;
}

/** Row `i` of a batch as a plain object keyed by column name. */
export function rowAt(batch: RecordBatch, i: number): Record<string, unknown> {
  if (!Number.isInteger(i) || i < 0 || i >= batch.numRows) throw new RangeError(`row ${i} out of range [0, ${batch.numRows})`);
  const out: Record<string, unknown> = {};
  batch.schema.fields.forEach((f, j) => {
    out[f.name] = cellAt(batch.getChildAt(j)!, i);
  });
  return out;
}

/** A (cached) map from the values of `idColumn` (default "id") to row indices; duplicate ids are an error. */
export function rowIndex(batch: RecordBatch, idColumn = "id"): Map<string, number> {
  let perCol = indexCache.get(batch);
  if (!perCol) indexCache.set(batch, (perCol = new Map()));
  let m = perCol.get(idColumn);
  if (m) return m;
  const col = columnOf(batch, idColumn);
  m = new Map();
  for (let i = 0; i < batch.numRows; i++) {
    const id = String(col.get(i));
    if (m.has(id)) throw new Error(`column '${idColumn}': duplicate id '${id}' at rows ${m.get(id)} and ${i}`);
    m.set(id, i);
  }
  perCol.set(idColumn, m);
  return m;
}

/** The row whose `idColumn` equals `id`, as a plain object, or undefined. */
export function rowById(batch: RecordBatch, id: string, idColumn = "id"): Record<string, unknown> | undefined {
  const i = rowIndex(batch, idColumn).get(id);
  return i === undefined ? undefined : rowAt(batch, i);
}

/** The string ids of all rows (column `idColumn`), or row indices as strings when absent. */
export function rowIds(batch: RecordBatch, idColumn = "id"): string[] {
  const col = batch.getChild(idColumn);
  const out = new Array<string>(batch.numRows);
  for (let i = 0; i < batch.numRows; i++) out[i] = col ? String(col.get(i)) : String(i);
  return out;
}
