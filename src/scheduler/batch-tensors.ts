/**
 * Batch assembly for the dynamic batcher: stack items along axis 0, pad a variable axis to the
 * batch's longest item, and slice outputs back per item.
 *
 * Copies move whole contiguous blocks with `TypedArray.set` (memcpy), never element by element:
 * a block is everything after the variable axis, so an item with shape [rows, seq, dim] padded on
 * axis 1 copies `rows` blocks of `seq*dim` elements.
 */
import type { TensorDType, TensorData, TensorValue } from "../graph/runtime.ts";
import { RuntimeError, type ClipflowErrorOptions } from "../util/errors.ts";

/** How one model input batches: which axis (≥ 1) varies in length between items, and its pad. */
export interface InputBatching {
  /** Axis whose length differs between items (never 0, the batch axis). */
  variableAxis: number;
  /** Value written into padded positions (bigint for int64 inputs). Default 0. */
  padValue?: number | bigint;
}

/** How one model output comes back: the axis that carries the items' variable length. */
export interface OutputBatching {
  variableAxis: number;
}

/**
 * A tensor whose shape cannot be batched or split (a caller's feed, or a model's output):
 * a RuntimeError with code "bad shape".
 * @example throw new BatchShapeError("input 'x': nothing to stack") // e.code === "bad shape"
 */
export class BatchShapeError extends RuntimeError {
  override name = "BatchShapeError";
  constructor(detail: string, opts: ClipflowErrorOptions = {}) {
    super(detail, { code: "bad shape", ...opts });
  }
}

/**
 * Allocate a fresh, exactly-sized typed array of `dtype` (its buffer can be transferred).
 * @example allocate("int64", 4) // BigInt64Array(4)
 */
export function allocate(dtype: TensorDType, n: number): TensorData {
  switch (dtype) {
    case "float32":
      return new Float32Array(n);
    case "float64":
      return new Float64Array(n);
    case "int64":
      return new BigInt64Array(n);
    case "int32":
      return new Int32Array(n);
    case "bool":
    case "uint8":
      return new Uint8Array(n);
  }
}

function product(dims: readonly number[], from = 0, to = dims.length): number {
  let p = 1;
  for (let i = from; i < to; i++) p *= dims[i]!;
  return p;
}

function fillPad(data: TensorData, dtype: TensorDType, pad: number | bigint): void {
  if (dtype === "int64") (data as BigInt64Array).fill(typeof pad === "bigint" ? pad : BigInt(pad));
  else if (pad !== 0 && pad !== 0n) (data as Float32Array).fill(Number(pad));
}

/**
 * Rows (size of axis 0) of a tensor, checking the data length matches its dims.
 * @example rowsOf({ dtype: "float32", dims: [2, 3], data: new Float32Array(6) }, "input 'x'") // 2
 */
export function rowsOf(t: TensorValue, where: string): number {
  if (t.dims.length === 0) throw new BatchShapeError(`${where}: a scalar has no batch axis (dims [])`);
  const n = product(t.dims);
  if (t.data.length !== n) {
    throw new BatchShapeError(`${where}: data has ${t.data.length} elements but dims [${t.dims.join(",")}] need ${n}`);
  }
  return t.dims[0]!;
}

/**
 * View rows [from, to) of a tensor along axis 0 (zero-copy).
 * @example sliceRows(x, 4, 8) // x [10, 16] -> [4, 16] sharing x's buffer
 */
export function sliceRows(t: TensorValue, from: number, to: number): TensorValue {
  const row = product(t.dims, 1);
  return { dtype: t.dtype, dims: [to - from, ...t.dims.slice(1)], data: t.data.subarray(from * row, to * row) as TensorData };
}

/**
 * Stack items along axis 0. With `batching`, the variable axis is padded to the longest item
 * (or `padTo` when larger). All other dims must agree.
 * @example stack("x", [a, b]) // a [2, 8], b [1, 8] -> [3, 8]
 */
export function stack(
  name: string,
  items: readonly TensorValue[],
  batching?: InputBatching,
  padTo = 0,
): TensorValue {
  const first = items[0];
  if (!first) throw new BatchShapeError(`input '${name}': nothing to stack`);
  const { dtype } = first;
  const rank = first.dims.length;
  const va = batching?.variableAxis ?? -1;
  if (batching && (va < 1 || va >= rank)) {
    throw new BatchShapeError(`input '${name}': variableAxis ${va} out of range for rank ${rank}`);
  }
  let rows = 0;
  let maxLen = padTo;
  for (const t of items) {
    if (t.dtype !== dtype) throw new BatchShapeError(`input '${name}': dtype ${t.dtype} differs from ${dtype} in one batch`);
    if (t.dims.length !== rank) throw new BatchShapeError(`input '${name}': rank ${t.dims.length} differs from ${rank} in one batch`);
    for (let a = 1; a < rank; a++) {
      if (a !== va && t.dims[a] !== first.dims[a]) {
        throw new BatchShapeError(
          `input '${name}': dims [${t.dims.join(",")}] and [${first.dims.join(",")}] differ on axis ${a}` +
            (batching ? "" : " (declare it variable in the model spec to pad it)"),
        );
      }
    }
    rows += t.dims[0]!;
    if (va > 0) maxLen = Math.max(maxLen, t.dims[va]!);
  }
  const dims = [rows, ...first.dims.slice(1)];
  if (va > 0) dims[va] = maxLen;
  const out = allocate(dtype, product(dims));
  if (va < 0) {
    let off = 0;
    for (const t of items) {
      out.set(t.data as never, off);
      off += t.data.length;
    }
    return { dtype, dims, data: out };
  }
  fillPad(out, dtype, batching?.padValue ?? 0);
  const inner = product(first.dims, va + 1); // elements after the variable axis
  const dstBlock = maxLen * inner;
  let dstOff = 0;
  for (const t of items) {
    const len = t.dims[va]!;
    const outer = product(t.dims, 0, va); // rows × dims between batch and variable axis
    const srcBlock = len * inner;
    if (srcBlock === dstBlock) {
      out.set(t.data as never, dstOff);
    } else {
      for (let o = 0; o < outer; o++) {
        out.set(t.data.subarray(o * srcBlock, (o + 1) * srcBlock) as never, dstOff + o * dstBlock);
      }
    }
    dstOff += outer * dstBlock;
  }
  return { dtype, dims, data: out };
}

/**
 * Split a batched output back into per-item tensors of `rows[i]` rows. With `batching`, the
 * variable axis is cut back to `lengths[i]`. Unpadded pieces are zero-copy views.
 * @example split("y", y, [2, 1]) // y [3, 4] -> [2, 4], [1, 4]
 */
export function split(
  name: string,
  t: TensorValue,
  rows: readonly number[],
  batching?: OutputBatching,
  lengths?: readonly number[],
): TensorValue[] {
  const total = rows.reduce((a, b) => a + b, 0);
  if (t.dims[0] !== total) {
    throw new BatchShapeError(`output '${name}': batch axis is ${t.dims[0]} but the batch had ${total} rows`);
  }
  const va = batching?.variableAxis ?? -1;
  if (va >= t.dims.length || va === 0) {
    throw new BatchShapeError(`output '${name}': variableAxis ${va} out of range for dims [${t.dims.join(",")}]`);
  }
  const res: TensorValue[] = [];
  let r0 = 0;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    const piece = sliceRows(t, r0, r0 + r);
    r0 += r;
    const len = va > 0 ? lengths?.[i] : undefined;
    if (len === undefined || len === t.dims[va]) {
      res.push(piece);
      continue;
    }
    const full = t.dims[va]!;
    if (len > full) throw new BatchShapeError(`output '${name}': item length ${len} exceeds the padded length ${full}`);
    const inner = product(t.dims, va + 1);
    const outer = product(piece.dims, 0, va);
    const dims = [...piece.dims];
    dims[va] = len;
    const out = allocate(t.dtype, outer * len * inner);
    for (let o = 0; o < outer; o++) {
      out.set(piece.data.subarray(o * full * inner, o * full * inner + len * inner) as never, o * len * inner);
    }
    res.push({ dtype: t.dtype, dims, data: out });
  }
  return res;
}

/**
 * Concatenate per-chunk outputs of one request back along axis 0 (chunks of a large request).
 * @example concatRows("y", [y0, y1]) // [4, 2] + [2, 2] -> [6, 2]
 */
export function concatRows(name: string, parts: readonly TensorValue[]): TensorValue {
  if (parts.length === 1) return parts[0]!;
  return stack(name, parts);
}
