/**
 * Typed record-batch builders: from plain row objects (copies, once) and from columns
 * (typed arrays and single-chunk Arrow vectors pass through without a copy).
 *
 * Every builder checks the input against the schema and fails with one line naming the
 * schema, column and row: a missing or unknown column, a wrong type, a null in a
 * non-nullable column, a tensor of the wrong size, columns of different lengths.
 *
 * @example
 * const b = buildCandidates([{ id: "c0", image_id: "i0", prompt: "p", text: "a cat", logp: -3.5, n_tokens: 3 }]);
 * const p = pixelsFromColumns({ id, image, prompt, reference, meta, pixels: f32 }, [3, 8, 8]); // f32 is viewed
 */
import {
  Data,
  DataType,
  FixedSizeList,
  Float32,
  RecordBatch,
  Schema,
  Struct,
  Vector,
  makeBuilder,
  makeData,
  util,
  type Field,
} from "apache-arrow";
import { InputError, type ClipflowErrorOptions } from "../util/errors.ts";
import {
  candidatesSchema,
  imagesSchema,
  metricsSchema,
  pairsSchema,
  pixelsSchema,
  refPairsSchema,
  scoredSchema,
  type CandidateRow,
  type ImageRow,
  type MetricsRow,
  type PairRow,
  type PixelsRow,
  type RefPairRow,
  type ScoredRow,
} from "./schemas.ts";

type NumericArray = Float32Array | Float64Array | Int32Array;

/** One column given to a from-columns builder. */
export type ColumnInput = Vector | Data | NumericArray | readonly unknown[];

/** Columns keyed by the row type's field names. */
export type Columns<Row> = { [K in keyof Row]-?: ColumnInput };

/** Columns that do not make a batch of the schema (length, type, missing field): a caller's input error. */
export class BatchBuildError extends InputError {
  override name = "BatchBuildError";
  constructor(message: string, opts: ClipflowErrorOptions = {}) {
    super(message, { code: "batch build", ...opts });
  }
}

const numericCtor = (t: DataType): (new (n: number) => NumericArray) | null => {
  if (DataType.isFloat(t)) return t.precision === 1 ? Float32Array : t.precision === 2 ? Float64Array : null;
  if (DataType.isInt(t) && t.bitWidth === 32 && t.isSigned) return Int32Array;
  return null;
};

/** A FixedSizeList<Float32> type, or null. */
function fslFloat32(t: DataType): FixedSizeList<Float32> | null {
  return DataType.isFixedSizeList(t) && DataType.isFloat(t.children[0]!.type) && t.children[0]!.type.precision === 1
    ? (t as FixedSizeList<Float32>)
    : null;
}

function columnLength(c: ColumnInput, field: Field): number {
  if (c instanceof Vector || c instanceof Data) return c.length;
  const fsl = fslFloat32(field.type);
  if (fsl && c instanceof Float32Array) {
    if (c.length % fsl.listSize !== 0) {
      throw new BatchBuildError(`column '${field.name}': Float32Array length ${c.length} is not a multiple of the list size ${fsl.listSize}`);
    }
    return c.length / fsl.listSize;
  }
  return c.length;
}

/** Turn one column input into a single Data of exactly the field's type. */
function toData(c: ColumnInput, field: Field, length: number, where: string): Data {
  const t = field.type as DataType;
  if (c instanceof Vector && c.data.length === 1) c = c.data[0]!;
  if (c instanceof Data) {
    if (!util.compareTypes(c.type, t)) {
      throw new BatchBuildError(`${where} column '${field.name}': Arrow type ${c.type} does not match schema type ${t}`);
    }
    return checkNulls(c, field, where);
  }
  if (c instanceof Vector) c = c.toArray() as unknown[]; // multi-chunk vector: one copy into a fresh column
  const fsl = fslFloat32(t);
  if (fsl) return checkNulls(fixedSizeListData(c, fsl, field, length, where), field, where);
  const Ctor = numericCtor(t);
  if (Ctor) {
    if (ArrayBuffer.isView(c)) {
      if (!(c instanceof Ctor)) {
        throw new BatchBuildError(`${where} column '${field.name}': expected ${Ctor.name} for ${t}, got ${c.constructor.name}`);
      }
      return makeData({ type: t, length, nullCount: 0, data: c } as never); // zero-copy
    }
    const arr = new Ctor(length);
    for (let i = 0; i < length; i++) {
      const v = (c as readonly unknown[])[i];
      if (typeof v !== "number") {
        throw new BatchBuildError(`${where} column '${field.name}' row ${i}: expected a number, got ${describe(v)}`);
      }
      arr[i] = v;
    }
    return makeData({ type: t, length, nullCount: 0, data: arr } as never);
  }
  if (ArrayBuffer.isView(c)) throw new BatchBuildError(`${where} column '${field.name}': a typed array cannot fill ${t}`);
  return checkNulls(genericData(c as readonly unknown[], field, where), field, where);
}

function checkNulls(d: Data, field: Field, where: string): Data {
  if (!field.nullable && d.nullCount > 0) {
    throw new BatchBuildError(`${where} column '${field.name}': ${d.nullCount} null(s) in a non-nullable column`);
  }
  return d;
}

function fixedSizeListData(c: NumericArray | readonly unknown[], type: FixedSizeList<Float32>, field: Field, length: number, where: string): Data {
  const size = type.listSize;
  let values: Float32Array;
  if (c instanceof Float32Array) {
    values = c; // zero-copy: the column *is* this memory
  } else if (ArrayBuffer.isView(c)) {
    throw new BatchBuildError(`${where} column '${field.name}': expected Float32Array, got ${c.constructor.name}`);
  } else {
    values = new Float32Array(length * size);
    for (let i = 0; i < length; i++) {
      const row = (c as readonly unknown[])[i] as ArrayLike<number> | null | undefined;
      if (row == null || typeof row !== "object" || typeof row.length !== "number") {
        throw new BatchBuildError(`${where} column '${field.name}' row ${i}: expected ${size} numbers, got ${describe(row)}`);
      }
      if (row.length !== size) {
        throw new BatchBuildError(`${where} column '${field.name}' row ${i}: expected ${size} values, got ${row.length}`);
      }
      values.set(row, i * size);
    }
  }
  const child = makeData({ type: type.children[0]!.type, length: length * size, nullCount: 0, data: values });
  return makeData({ type, length, nullCount: 0, child });
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return `array(${v.length})`;
  if (ArrayBuffer.isView(v)) return v.constructor.name;
  return typeof v === "string" ? `string "${v.length > 20 ? v.slice(0, 20) + "…" : v}"` : typeof v;
}

/** Strings, binaries, lists: through Arrow's builders with strict per-value checks. */
function genericData(values: readonly unknown[], field: Field, where: string): Data {
  const t = field.type as DataType;
  const check = DataType.isUtf8(t)
    ? (v: unknown) => typeof v === "string"
    : DataType.isBinary(t)
      ? (v: unknown) => v instanceof Uint8Array
      : DataType.isList(t)
        ? (v: unknown) => Array.isArray(v) || ArrayBuffer.isView(v)
        : () => true;
  const b = makeBuilder({ type: t, nullValues: [null, undefined] });
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v != null && !check(v)) {
      throw new BatchBuildError(`${where} column '${field.name}' row ${i}: ${describe(v)} does not fit ${t}`);
    }
    if (v == null && !field.nullable) throw new BatchBuildError(`${where} column '${field.name}' row ${i}: null in a non-nullable column`);
    b.append(v as never);
  }
  return b.finish().flush();
}

/**
 * Build a RecordBatch of `schema` from columns. Float32/Float64/Int32 typed arrays, a
 * Float32Array of `rows * listSize` for a FixedSizeList<Float32>, and single-chunk Arrow
 * Vectors/Data are used as-is (no copy); JS arrays are copied once into Arrow buffers.
 */
export function batchFromColumns(schema: Schema, columns: Record<string, ColumnInput>, name = "batch"): RecordBatch {
  const where = `${name}:`;
  for (const k of Object.keys(columns)) {
    if (!schema.fields.some((f) => f.name === k)) {
      throw new BatchBuildError(`${where} unknown column '${k}' (schema has ${schema.fields.map((f) => f.name).join(", ")})`);
    }
  }
  let length = -1;
  let lengthFrom = "";
  for (const f of schema.fields) {
    const c = columns[f.name];
    if (c === undefined) {
      if (f.nullable) continue;
      throw new BatchBuildError(`${where} missing column '${f.name}'`);
    }
    const n = columnLength(c, f);
    if (length < 0) [length, lengthFrom] = [n, f.name];
    else if (n !== length) {
      throw new BatchBuildError(`${where} column '${f.name}' has ${n} rows but '${lengthFrom}' has ${length}`);
    }
  }
  if (length < 0) length = 0;
  const children = schema.fields.map((f) => {
    const c = columns[f.name];
    return c === undefined ? makeBuilderNulls(f, length) : toData(c, f, length, where);
  });
  const data = makeData({ type: new Struct(schema.fields), length, nullCount: 0, children });
  return new RecordBatch(schema, data);
}

function makeBuilderNulls(f: Field, length: number): Data {
  const b = makeBuilder({ type: f.type, nullValues: [null] });
  for (let i = 0; i < length; i++) b.append(null);
  return b.finish().flush();
}

/** Build a RecordBatch of `schema` from plain row objects (one copy into Arrow buffers). */
export function batchFromRows(schema: Schema, rows: readonly object[], name = "batch"): RecordBatch {
  const cols: Record<string, unknown[]> = {};
  for (const f of schema.fields) cols[f.name] = new Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i] as Record<string, unknown>;
    for (const k in r) {
      const col = cols[k];
      if (!col) throw new BatchBuildError(`${name}: row ${i} has unknown column '${k}'`);
      col[i] = r[k];
    }
  }
  for (const f of schema.fields) {
    const col = cols[f.name]!;
    for (let i = 0; i < rows.length; i++) {
      if (col[i] === undefined && !f.nullable) throw new BatchBuildError(`${name}: row ${i} is missing column '${f.name}'`);
    }
  }
  return batchFromColumns(schema, cols, name);
}

/** images batch from rows. @example buildImages([{ id: "i0", image: png, prompt: "Describe." }]) */
export const buildImages = (rows: readonly ImageRow[]): RecordBatch => batchFromRows(imagesSchema, rows, "images");
/** images batch from columns. */
export const imagesFromColumns = (c: Partial<Columns<ImageRow>> & Pick<Columns<ImageRow>, "id" | "image" | "prompt">): RecordBatch =>
  batchFromColumns(imagesSchema, c as Record<string, ColumnInput>, "images");

/** pixels batch from rows; `shape` is [C, H, W] of every row's `pixels`. */
export const buildPixels = (rows: readonly PixelsRow[], shape: readonly [number, number, number]): RecordBatch =>
  batchFromRows(pixelsSchema(...shape), rows, "pixels");
/** pixels batch from columns; a `pixels` Float32Array of rows*C*H*W is used without a copy. */
export const pixelsFromColumns = (
  c: Partial<Columns<PixelsRow>> & Pick<Columns<PixelsRow>, "id" | "image" | "prompt" | "pixels">,
  shape: readonly [number, number, number],
): RecordBatch => batchFromColumns(pixelsSchema(...shape), c as Record<string, ColumnInput>, "pixels");

/** candidates batch from rows. */
export const buildCandidates = (rows: readonly CandidateRow[]): RecordBatch => batchFromRows(candidatesSchema, rows, "candidates");
/** candidates batch from columns. */
export const candidatesFromColumns = (c: Columns<CandidateRow>): RecordBatch =>
  batchFromColumns(candidatesSchema, c as Record<string, ColumnInput>, "candidates");

/** scored batch from rows. */
export const buildScored = (rows: readonly ScoredRow[]): RecordBatch => batchFromRows(scoredSchema, rows, "scored");
/** scored batch from columns. */
export const scoredFromColumns = (c: Columns<ScoredRow>): RecordBatch =>
  batchFromColumns(scoredSchema, c as Record<string, ColumnInput>, "scored");

/** pairs batch from rows. */
export const buildPairs = (rows: readonly PairRow[]): RecordBatch => batchFromRows(pairsSchema, rows, "pairs");
/** pairs batch from columns. */
export const pairsFromColumns = (c: Columns<PairRow>): RecordBatch =>
  batchFromColumns(pairsSchema, c as Record<string, ColumnInput>, "pairs");

/** pairs-with-reference-logps batch from rows. */
export const buildRefPairs = (rows: readonly RefPairRow[]): RecordBatch => batchFromRows(refPairsSchema, rows, "refPairs");
/** pairs-with-reference-logps batch from columns. */
export const refPairsFromColumns = (c: Columns<RefPairRow>): RecordBatch =>
  batchFromColumns(refPairsSchema, c as Record<string, ColumnInput>, "refPairs");

/** metrics batch from rows. */
export const buildMetrics = (rows: readonly MetricsRow[]): RecordBatch => batchFromRows(metricsSchema, rows, "metrics");
/** metrics batch from columns. */
export const metricsFromColumns = (c: Columns<MetricsRow>): RecordBatch =>
  batchFromColumns(metricsSchema, c as Record<string, ColumnInput>, "metrics");
