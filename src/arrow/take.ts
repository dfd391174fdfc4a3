/**
 * Row selection and concatenation for record batches: `takeRows` (a filter's output),
 * `concatBatches` (re-batching), both on one column gatherer.
 *
 * Arrow JS has no `take` kernel. Fixed-width columns (Float32/Float64/Int32, FixedSizeList
 * <Float32>) and variable-width Utf8/Binary/List<Float32> are gathered with typed-array
 * copies (`subarray`/`set` runs, no per-value boxing); any other type falls back to Arrow's
 * builders. A selection of all rows of one batch returns that batch unchanged (no copy).
 *
 * @example
 * const kept = takeRows(batch, Int32Array.of(0, 2, 5));
 * const merged = concatBatches([a, b, c]); // same schema, rows in order
 */
import {
  Data,
  DataType,
  RecordBatch,
  Struct,
  makeBuilder,
  makeData,
  util,
  type Field,
  type Schema,
} from "apache-arrow";

/** One input to a gather: a batch and the rows to take from it (all rows when omitted). */
export interface GatherPart {
  batch: RecordBatch;
  indices?: ArrayLike<number>;
}

type Sel = { data: Data; idx: ArrayLike<number> | null; n: number };

function isFloatList(t: DataType): boolean {
  const c = t.children?.[0]?.type as DataType | undefined;
  return !!c && DataType.isFloat(c) && c.precision === 1;
}

function validity(sels: Sel[], total: number): { bitmap: Uint8Array | undefined; nulls: number } {
  if (!sels.some((s) => s.data.nullCount > 0)) return { bitmap: undefined, nulls: 0 };
  const bitmap = new Uint8Array(((total + 63) & ~63) >> 3);
  let k = 0;
  let nulls = 0;
  for (const s of sels) {
    for (let j = 0; j < s.n; j++, k++) {
      const i = s.idx ? s.idx[j]! : j;
      if (s.data.getValid(i)) bitmap[k >> 3]! |= 1 << (k & 7);
      else nulls++;
    }
  }
  return { bitmap, nulls };
}

/** Gather values of width `w` (elements per row) from primitive buffers. */
function gatherFixed(sels: Sel[], total: number, w: number, Ctor: new (n: number) => Float32Array | Float64Array | Int32Array, pick: (d: Data) => ArrayLike<number> & { subarray(a: number, b: number): ArrayLike<number> }) {
  const out = new Ctor(total * w);
  let k = 0;
  for (const s of sels) {
    const v = pick(s.data) as Float32Array;
    if (!s.idx) {
      out.set(v.subarray(0, s.n * w), k);
      k += s.n * w;
      continue;
    }
    if (w === 1) for (let j = 0; j < s.n; j++) out[k++] = v[s.idx[j]!]!;
    else for (let j = 0; j < s.n; j++, k += w) { const i = s.idx[j]!; out.set(v.subarray(i * w, i * w + w), k); }
  }
  return out;
}

/** Gather variable-width rows (offsets + values), e.g. Utf8 bytes or List<Float32> values. */
function gatherVar<V extends Uint8Array | Float32Array>(sels: Sel[], total: number, valuesOf: (d: Data) => V, Ctor: new (n: number) => V) {
  const offsets = new Int32Array(total + 1);
  let size = 0;
  let k = 0;
  for (const s of sels) {
    const o = s.data.valueOffsets as Int32Array;
    for (let j = 0; j < s.n; j++) {
      const i = s.idx ? s.idx[j]! : j;
      size += o[i + 1]! - o[i]!;
      offsets[++k] = size;
    }
  }
  const values = new Ctor(size);
  let at = 0;
  for (const s of sels) {
    const o = s.data.valueOffsets as Int32Array;
    const v = valuesOf(s.data);
    if (!s.idx) {
      const part = v.subarray(o[0]!, o[s.n]!);
      values.set(part as never, at);
      at += part.length;
      continue;
    }
    for (let j = 0; j < s.n; j++) {
      const i = s.idx[j]!;
      const part = v.subarray(o[i]!, o[i + 1]!);
      values.set(part as never, at);
      at += part.length;
    }
  }
  return { offsets, values };
}

function gatherColumn(field: Field, sels: Sel[], total: number): Data {
  const t = field.type as DataType;
  const { bitmap, nulls } = validity(sels, total);
  const base = { type: t, length: total, nullCount: nulls, nullBitmap: bitmap };
  if (DataType.isFloat(t) && (t.precision === 1 || t.precision === 2)) {
    const Ctor = t.precision === 1 ? Float32Array : Float64Array;
    return makeData({ ...base, data: gatherFixed(sels, total, 1, Ctor, (d) => d.values) } as never);
  }
  if (DataType.isInt(t) && t.bitWidth === 32 && t.isSigned) {
    return makeData({ ...base, data: gatherFixed(sels, total, 1, Int32Array, (d) => d.values) } as never);
  }
  if (DataType.isFixedSizeList(t) && isFloatList(t)) {
    const w = t.listSize;
    const values = gatherFixed(sels, total, w, Float32Array, (d) => d.children[0]!.values);
    const child = makeData({ type: t.children[0]!.type, length: total * w, nullCount: 0, data: values } as never);
    return makeData({ ...base, child } as never);
  }
  if (DataType.isUtf8(t) || DataType.isBinary(t)) {
    const { offsets, values } = gatherVar(sels, total, (d) => d.values as Uint8Array, Uint8Array);
    return makeData({ ...base, valueOffsets: offsets, data: values } as never);
  }
  if (DataType.isList(t) && isFloatList(t)) {
    const { offsets, values } = gatherVar(sels, total, (d) => d.children[0]!.values as Float32Array, Float32Array);
    const child = makeData({ type: t.children[0]!.type, length: values.length, nullCount: 0, data: values } as never);
    return makeData({ ...base, valueOffsets: offsets, child } as never);
  }
  // Reference path for any other type: Arrow's own builder, value by value.
  const b = makeBuilder({ type: t, nullValues: [null, undefined] });
  for (const s of sels) {
    const v = new RecordBatch({ x: s.data }).getChildAt(0)!;
    for (let j = 0; j < s.n; j++) b.append(v.get(s.idx ? s.idx[j]! : j));
  }
  return b.finish().flush();
}

const names = (s: Schema): string => s.fields.map((f) => f.name).join(",");
// A plain boolean wrapper: util.compareSchemas is a type guard, which would narrow `schema` to never.
const sameSchema = (a: Schema, b: Schema): boolean => a === b || util.compareSchemas(a, b);

/** Gather rows from several batches of one schema into a single new batch. */
export function gatherRows(schema: Schema, parts: readonly GatherPart[]): RecordBatch {
  const only = parts.length === 1 ? parts[0]! : undefined;
  if (only && !only.indices) return only.batch;
  let total = 0;
  for (const p of parts) {
    if (!sameSchema(p.batch.schema, schema)) {
      throw new Error(`gatherRows: batch schema (${names(p.batch.schema)}) differs from (${names(schema)})`);
    }
    const n = p.indices ? p.indices.length : p.batch.numRows;
    if (p.indices) {
      for (let j = 0; j < n; j++) {
        const i = p.indices[j]!;
        if (!(i >= 0 && i < p.batch.numRows)) throw new RangeError(`gatherRows: row index ${i} out of range [0, ${p.batch.numRows})`);
      }
    }
    total += n;
  }
  const children = schema.fields.map((f, c) =>
    gatherColumn(
      f,
      parts.map((p) => ({ data: p.batch.data.children[c]!, idx: p.indices ?? null, n: p.indices ? p.indices.length : p.batch.numRows })),
      total,
    ),
  );
  return new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: total, nullCount: 0, children }));
}

/** The rows `indices` (in that order) of `batch` as a new batch. */
export function takeRows(batch: RecordBatch, indices: ArrayLike<number>): RecordBatch {
  if (indices.length === batch.numRows) {
    let identity = true;
    for (let i = 0; i < indices.length && identity; i++) identity = indices[i] === i;
    if (identity) return batch;
  }
  return gatherRows(batch.schema, [{ batch, indices }]);
}

/** Concatenate batches of one schema, rows in order. */
export function concatBatches(batches: readonly RecordBatch[]): RecordBatch {
  if (batches.length === 0) throw new Error("concatBatches: no batches");
  if (batches.length === 1) return batches[0]!;
  return gatherRows(batches[0]!.schema, batches.map((batch) => ({ batch })));
}
