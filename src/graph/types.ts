/**
 * Shared types of the graph builder: element types, (symbolic) dimensions, parameter specs,
 * serialised model descriptions and the error class every build-time check throws.
 */
import { RuntimeError, type ClipflowErrorOptions } from "../util/errors.ts";

/** Element type of a graph tensor. */
export type DType = "float32" | "float64" | "int64" | "int32" | "bool";

/** A dimension: a number, or a symbolic name such as `"batch"` bound at run time. */
export type Dim = number | string;

/** A tensor shape; its rank is always known at build time. */
export type Shape = readonly Dim[];

/** How a parameter is initialised (consumed by the ParamStore). */
export type InitSpec =
  | { kind: "normal"; std: number }
  | { kind: "zeros" }
  | { kind: "ones" }
  | { kind: "uniform"; low: number; high: number }
  | { kind: "constant"; value: number };

/** A declared parameter: an ONNX graph input fed from a ParamStore on each run. */
export interface ParamSpec {
  name: string;
  shape: number[];
  init: InitSpec;
  trainable: boolean;
}

/** Name, element type and shape of a serialised model input or output. */
export interface IOSpec {
  name: string;
  dtype: DType;
  shape: Dim[];
}

/** Anything that can hand out parameter values by name (the ParamStore implements it). */
export interface ParamStoreLike {
  get(name: string): { data: Float32Array; shape: number[] } | undefined;
}

/** A build-time (or feed-time) error of the graph builder; the message names the op. */
export class GraphError extends RuntimeError {
  override name = "GraphError";
  constructor(message: string, opts: ClipflowErrorOptions = {}) {
    super(message, { code: "graph", ...opts });
  }
}
