/**
 * Graph IR: symbolic tensors and the nodes that produce them. A node is one ONNX operator
 * (default domain) with its attributes; the builder keeps nodes in creation order, which is
 * always a topological order because a node can only consume tensors that already exist.
 */
import type { DType, Dim } from "./types.ts";
import { fmtShape } from "./shape.ts";
import type { Graph } from "./graph.ts";

/** What a tensor is: a fed input, a parameter (also fed), a constant, or a node output. */
export type TensorKind = "input" | "param" | "const" | "op";

/** An ONNX attribute value. */
export type AttrValue =
  | { i: number }
  | { f: number }
  | { ints: number[] }
  | { s: string }
  | { t: ConstData; dims: number[] };

/** Typed-array payload of a constant. Bool constants are Uint8Array. */
export type ConstData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;

export interface Node {
  id: number;
  /** ONNX op type (default domain). */
  op: string;
  /** Inputs; `undefined` marks an omitted optional input. */
  inputs: (Tensor | undefined)[];
  outputs: Tensor[];
  attrs: Record<string, AttrValue>;
  /** Gradient never flows through this node (stopGradient, shape computations). */
  noGrad: boolean;
  /** Outputs from this index on are optional and omitted from ONNX when unused. */
  optionalFrom: number;
}

/**
 * A symbolic tensor of a {@link Graph}: dtype and (possibly symbolic) shape, known at build time.
 *
 * @example
 * const x = g.input("x", "float32", ["batch", 64]);
 * x.shape; // ["batch", 64]
 */
export class Tensor {
  /** @internal created by Graph only */
  constructor(
    readonly graph: Graph,
    readonly id: number,
    readonly dtype: DType,
    readonly shape: readonly Dim[],
    readonly kind: TensorKind,
    /** ONNX value name: the given name for inputs/params, `_t<id>` otherwise. */
    readonly name: string,
    readonly producer: Node | undefined,
    readonly outputIndex: number,
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  get isFloat(): boolean {
    return this.dtype === "float32" || this.dtype === "float64";
  }

  toString(): string {
    return `${this.name}:${this.dtype}${fmtShape(this.shape)}`;
  }
}
