/**
 * Zero-copy views between `FixedSizeList<Float32>` columns, `Float32Array`s and plain
 * `{ dtype, dims, data }` tensors (what ORT wraps without a copy: src/graph/ort-view.ts).
 *
 * All three share one buffer: a column's child Float32 values *are* the tensor data, so
 * writing through one view is visible through the others. This holds for a column backed by a
 * single contiguous chunk (every RecordBatch column, and any Vector with one Data chunk,
 * including slices). A multi-chunk Vector (e.g. a Table column spanning several batches) has
 * no single buffer: viewing it throws unless `allowCopy` is set, in which case the chunks are
 * concatenated into a new Float32Array and the view reports `copied: true` — writes to that
 * copy do not reach the column.
 *
 * Null rows of a FixedSizeList still occupy `listSize` slots; their values are whatever the
 * buffer holds (clipflow's builders never write null tensor rows).
 *
 * @example
 * const t = columnTensor(batch, "pixels");    // { dtype: "float32", dims: [rows, 3, 32, 32], data }
 * const ort = columnOrt(batch, "pixels");      // src/graph/ort-view.ts: an ORT tensor over the same memory
 * const col = tensorToColumn(outputs.embeds);  // [rows, 512] ORT output -> FixedSizeList column, no copy
 */
import { Data, DataType, Field, FixedSizeList, Float32, Vector, makeData, makeVector, type RecordBatch } from "apache-arrow";
// Type only: the Arrow layer never loads the native ORT add-on (columnOrt lives in src/graph/ort-view.ts).
import type { TensorValue } from "../graph/runtime.ts";
import { SHAPE_KEY } from "./schemas.ts";
import { InputError, type ClipflowErrorOptions } from "../util/errors.ts";

/** A column that cannot be viewed as asked (wrong type, several chunks, a bad shape): a caller's input error. */
export class TensorViewError extends InputError {
  override name = "TensorViewError";
  constructor(message: string, opts: ClipflowErrorOptions = {}) {
    super(message, { code: "tensor view", ...opts });
  }
}

/** A float32 tensor view of a column: `data` has `rows * prod(dims.slice(1))` elements. */
export interface Float32TensorView extends TensorValue {
  dtype: "float32";
  data: Float32Array;
  /** [rows, ...rowShape] */
  dims: number[];
  /** True only when a multi-chunk column was concatenated (allowCopy); writes then stay in the copy. */
  copied: boolean;
}

export interface ViewOptions {
  /** Per-row shape (product must equal the list size); default from field metadata or [listSize]. */
  rowShape?: readonly number[];
  /** Concatenate a multi-chunk column into a new buffer instead of throwing. */
  allowCopy?: boolean;
  /** Used in error messages. */
  name?: string;
}

function fslType(t: DataType, name: string): FixedSizeList<Float32> {
  if (!DataType.isFixedSizeList(t) || !DataType.isFloat(t.children[0]!.type) || t.children[0]!.type.precision !== 1) {
    throw new TensorViewError(`column '${name}' is ${t}, expected FixedSizeList<Float32>`);
  }
  return t as FixedSizeList<Float32>;
}

/** The Float32 values of one FixedSizeList<Float32> chunk, exactly rows*listSize long, no copy. */
function chunkValues(d: Data, size: number, name: string): Float32Array {
  const child = d.children[0];
  const values = child?.values as Float32Array | undefined;
  if (!child || !(values instanceof Float32Array)) throw new TensorViewError(`column '${name}': no Float32 child buffer`);
  const n = d.length * size;
  // Arrow already offsets `values` to the slice; the buffer may be padded past the end.
  if (values.length < n) throw new TensorViewError(`column '${name}': child buffer has ${values.length} values, need ${n}`);
  return values.length === n ? values : values.subarray(0, n);
}

function resolveShape(size: number, name: string, rowShape?: readonly number[], field?: Field): number[] {
  let shape = rowShape ? [...rowShape] : undefined;
  const meta = field?.metadata.get(SHAPE_KEY);
  if (!shape && meta) shape = meta.split(",").map(Number);
  shape ??= [size];
  const prod = shape.reduce((a, b) => a * b, 1);
  if (prod !== size || shape.some((d) => !Number.isInteger(d) || d <= 0)) {
    throw new TensorViewError(`column '${name}': row shape [${shape.join(",")}] does not match list size ${size}`);
  }
  return shape;
}

/**
 * View a FixedSizeList<Float32> column (Vector or Data) as a `[rows, ...rowShape]` tensor.
 * Zero-copy for a single chunk; see the module note for multi-chunk columns.
 */
export function float32View(column: Vector | Data, opts: ViewOptions = {}, field?: Field): Float32TensorView {
  const name = opts.name ?? field?.name ?? "column";
  const type = fslType(column.type as DataType, name);
  const size = type.listSize;
  const shape = resolveShape(size, name, opts.rowShape, field);
  const chunks = column instanceof Data ? [column] : column.data;
  const rows = column.length;
  if (chunks.length === 1) {
    return { dtype: "float32", dims: [rows, ...shape], data: chunkValues(chunks[0]!, size, name), copied: false };
  }
  if (chunks.length === 0) return { dtype: "float32", dims: [0, ...shape], data: new Float32Array(0), copied: false };
  if (!opts.allowCopy) {
    throw new TensorViewError(
      `column '${name}' has ${chunks.length} chunks; a zero-copy view needs one contiguous chunk (pass allowCopy to concatenate)`,
    );
  }
  const out = new Float32Array(rows * size);
  let at = 0;
  for (const c of chunks) {
    const v = chunkValues(c, size, name);
    out.set(v, at);
    at += v.length;
  }
  return { dtype: "float32", dims: [rows, ...shape], data: out, copied: true };
}

/** View a batch's FixedSizeList<Float32> column by name as a tensor (row shape from the schema). */
export function columnTensor(batch: RecordBatch, name: string, opts: Omit<ViewOptions, "name"> = {}): Float32TensorView {
  const idx = batch.schema.fields.findIndex((f) => f.name === name);
  if (idx < 0) throw new TensorViewError(`batch has no column '${name}' (has ${batch.schema.fields.map((f) => f.name).join(", ")})`);
  return float32View(batch.getChildAt(idx)!, { ...opts, name }, batch.schema.fields[idx]);
}

/**
 * Wrap a Float32Array `[rows, ...rowShape]` as a FixedSizeList<Float32> Vector without copying;
 * the vector's child buffer is `data` itself.
 */
export function float32ToColumn(data: Float32Array, rowShape: readonly number[]): Vector<FixedSizeList<Float32>> {
  const size = rowShape.reduce((a, b) => a * b, 1);
  if (size <= 0 || data.length % size !== 0) {
    throw new TensorViewError(`Float32Array of ${data.length} values does not split into rows of [${rowShape.join(",")}]`);
  }
  const type = new FixedSizeList(size, new Field("item", new Float32(), false));
  const child = makeData({ type: new Float32(), length: data.length, nullCount: 0, data });
  return makeVector(makeData({ type, length: data.length / size, nullCount: 0, child }));
}

/** A float32 tensor (e.g. an ORT output, dims [rows, ...]) as a FixedSizeList column, no copy. */
export function tensorToColumn(t: TensorValue): Vector<FixedSizeList<Float32>> {
  if (t.dtype !== "float32" || !(t.data instanceof Float32Array)) {
    throw new TensorViewError(`tensorToColumn needs a float32 tensor, got ${t.dtype}`);
  }
  if (t.dims.length < 2) throw new TensorViewError(`tensorToColumn needs dims [rows, ...], got [${t.dims.join(",")}]`);
  return float32ToColumn(t.data, t.dims.slice(1));
}
