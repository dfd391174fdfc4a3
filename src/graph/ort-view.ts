/**
 * Arrow columns as onnxruntime-node tensors, over the same memory. Lives beside the runtime
 * (src/graph/runtime.ts, the only module that loads the native ORT add-on) so the Arrow layer
 * stays free of it: `src/arrow` gives plain `{ dtype, dims, data }` views, this wraps them.
 *
 * @example
 * const t = columnOrt(batch, "pixels"); // ort.Tensor [rows, 3, H, W], no copy
 */
import type { RecordBatch } from "apache-arrow";
import { columnTensor, type ViewOptions } from "../arrow/tensor-view.ts";
import { toOrt, type OrtTensor } from "./runtime.ts";

/** A batch's FixedSizeList<Float32> column as an onnxruntime-node tensor over the same memory. */
export function columnOrt(batch: RecordBatch, name: string, opts: Omit<ViewOptions, "name"> = {}): OrtTensor {
  return toOrt(columnTensor(batch, name, opts));
}
