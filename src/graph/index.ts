/**
 * Public surface of the graph engine: the builder, its tensor type and the shared types.
 *
 * @example
 * import { Graph, type Tensor } from "../graph/index.ts";
 * const g = new Graph();
 * const x = g.input("x", "float32", ["batch", 8]);
 */
export { Graph, MASK_NEG, init, type GraphOptions, type ParamOptions } from "./graph.ts";
export { Tensor, type TensorKind } from "./tensor.ts";
export {
  GraphError,
  type DType,
  type Dim,
  type Shape,
  type InitSpec,
  type ParamSpec,
  type IOSpec,
  type ParamStoreLike,
} from "./types.ts";
export { OPSET, type OnnxModel, type ToOnnxOptions } from "./onnx-export.ts";
export { cachedSession, clearSessionCache, type CompileOptions, type CompiledGraph, type Feed } from "./compile.ts";
export type { TensorValue } from "./runtime.ts";
export { columnOrt } from "./ort-view.ts";
