/**
 * The graph builder: a typed, shape-checked way to write ONNX graphs in TypeScript, with
 * reverse-mode autodiff ({@link Graph.grad}), serialisation ({@link Graph.toOnnx}) and an
 * in-process ORT session ({@link Graph.compile}).
 *
 * Every op checks dtypes and (symbolic) shapes when it is called and throws a GraphError that
 * names the op, so a wrong model fails at build time, not inside ORT.
 *
 * @example
 * const g = new Graph();
 * const x = g.input("x", "float32", ["batch", 4]);
 * const w = g.param("w", [4, 2], { init: { kind: "normal", std: 0.02 } });
 * const y = g.relu(g.matmul(x, w));                       // [batch, 2]
 * const step = await g.compile({ outputs: { y } });
 */
import {
  GraphError,
  type DType,
  type Dim,
  type InitSpec,
  type ParamSpec,
  type ParamStoreLike,
  type Shape,
} from "./types.ts";
import {
  broadcastShapes,
  dimCompatible,
  dimEq,
  dimProduct,
  dimQuotient,
  dimSymbols,
  fmtShape,
  isStatic,
  isUnknown,
  normAxis,
  unknownDim,
} from "./shape.ts";
import { Tensor, type AttrValue, type ConstData, type Node, type TensorKind } from "./tensor.ts";
import { gradients } from "./autodiff.ts";
import { serialize, type OnnxModel, type ToOnnxOptions } from "./onnx-export.ts";
import { compileGraph, type CompileOptions, type CompiledGraph } from "./compile.ts";

const FLOATS: readonly DType[] = ["float32", "float64"];
const NUMERIC: readonly DType[] = ["float32", "float64", "int64", "int32"];
const INDEX: readonly DType[] = ["int64", "int32"];
const ONNX_INT_MAX = 2 ** 62; // "to the end" for Slice; fits a float64-exact int64

/** Additive mask value for disallowed positions; finite so fully masked rows stay NaN-free. */
export const MASK_NEG = -1e9;

export interface GraphOptions {
  name?: string;
  /** Element type of params, scalars and masks (float64 is used by gradient tests). */
  floatType?: "float32" | "float64";
}

export interface ParamOptions {
  init?: InitSpec;
  trainable?: boolean;
}

type Operand = Tensor | number;

/**
 * InitSpec shorthands.
 *
 * @example
 * g.param("w", [64, 10], init.normal(0.02));
 */
export const init = {
  normal: (std: number): InitSpec => ({ kind: "normal", std }),
  zeros: (): InitSpec => ({ kind: "zeros" }),
  ones: (): InitSpec => ({ kind: "ones" }),
  uniform: (low: number, high: number): InitSpec => ({ kind: "uniform", low, high }),
  constant: (value: number): InitSpec => ({ kind: "constant", value }),
};

function dtypeArray(dtype: DType, values: readonly number[]): ConstData {
  switch (dtype) {
    case "float32": return Float32Array.from(values);
    case "float64": return Float64Array.from(values);
    case "int64": return BigInt64Array.from(values.map((v) => BigInt(Math.trunc(v))));
    case "int32": return Int32Array.from(values);
    case "bool": return Uint8Array.from(values.map((v) => (v ? 1 : 0)));
  }
}

function dataDType(data: ConstData): DType {
  if (data instanceof Float32Array) return "float32";
  if (data instanceof Float64Array) return "float64";
  if (data instanceof BigInt64Array) return "int64";
  if (data instanceof Int32Array) return "int32";
  return "bool";
}

const NAME_RE = /^[A-Za-z][A-Za-z0-9_.:/\-]*$/;

export class Graph {
  readonly name: string;
  readonly floatType: "float32" | "float64";
  /** @internal all nodes in creation (= topological) order */
  readonly nodes: Node[] = [];
  /** @internal constant payloads by tensor id */
  readonly constData = new Map<number, ConstData>();
  private nextId = 0;
  private readonly inputsList: Tensor[] = [];
  private readonly paramsList: { spec: ParamSpec; tensor: Tensor }[] = [];
  private readonly names = new Set<string>();
  /** where each symbolic dim of a graph input can be read at run time */
  private readonly symbolSources = new Map<string, { t: Tensor; axis: number }>();
  private readonly constCache = new Map<string, Tensor>();
  private readonly dimCache = new Map<string, Tensor>();

  constructor(opts: GraphOptions = {}) {
    this.name = opts.name ?? "clipflow";
    this.floatType = opts.floatType ?? "float32";
  }

  // ---------------------------------------------------------------- leaves

  /** Declare a fed graph input. String dims are symbolic (bound when the model runs). */
  input(name: string, dtype: DType, shape: Shape): Tensor {
    this.claimName("input", name);
    for (const d of shape) this.checkDim("input", name, d);
    const t = this.newTensor(dtype, shape, "input", name);
    this.inputsList.push(t);
    shape.forEach((d, axis) => {
      if (typeof d === "string" && !this.symbolSources.has(d)) this.symbolSources.set(d, { t, axis });
    });
    return t;
  }

  /**
   * Declare a parameter: an ONNX input of the graph's float type, fed from a ParamStore.
   * The third argument is `{ init?, trainable? }` or just an InitSpec (`init.normal(0.02)`).
   */
  param(name: string, shape: readonly number[], options: ParamOptions | InitSpec = {}): Tensor {
    const opts: ParamOptions = "kind" in options ? { init: options } : options;
    this.claimName("param", name);
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 1) throw new GraphError(`param '${name}': dims must be positive integers, got ${fmtShape(shape)}`);
    }
    const t = this.newTensor(this.floatType, shape, "param", name);
    const spec: ParamSpec = {
      name,
      shape: [...shape],
      init: opts.init ?? { kind: "normal", std: 0.02 },
      trainable: opts.trainable ?? true,
    };
    this.paramsList.push({ spec, tensor: t });
    return t;
  }

  /** Specs of the declared parameters in declaration order (optionally only trainable / frozen ones). */
  params(filter: { trainable?: boolean } = {}): ParamSpec[] {
    return this.paramsList
      .filter((p) => filter.trainable === undefined || p.spec.trainable === filter.trainable)
      .map((p) => ({ ...p.spec, shape: [...p.spec.shape] }));
  }

  /** The tensor of a declared parameter. */
  paramTensor(name: string): Tensor {
    const p = this.paramsList.find((q) => q.spec.name === name);
    if (!p) throw new GraphError(`paramTensor: no param named '${name}'`);
    return p.tensor;
  }

  /** Declared graph inputs (not params), in declaration order. */
  inputs(): Tensor[] {
    return [...this.inputsList];
  }

  /** A constant tensor (an ONNX initializer). Bool constants are given as Uint8Array. */
  constant(data: ConstData, shape: readonly number[], dtype?: DType): Tensor {
    const dt = dtype ?? dataDType(data);
    const n = shape.reduce((a, b) => a * b, 1);
    if (n !== data.length) throw new GraphError(`constant: ${data.length} values for shape ${fmtShape(shape)} (${n} expected)`);
    const t = this.newTensor(dt, shape, "const", "");
    this.constData.set(t.id, data);
    return t;
  }

  /** A scalar constant (rank 0) of `dtype` (default: the graph's float type). Cached. */
  scalar(value: number, dtype: DType = this.floatType): Tensor {
    return this.cachedConst(dtype, [value], []);
  }

  /** @internal small cached constants (axes, shapes, scalars) */
  cachedConst(dtype: DType, values: readonly number[], shape: readonly number[]): Tensor {
    const key = `${dtype}|${shape.join(",")}|${values.join(",")}`;
    let t = this.constCache.get(key);
    if (!t) {
      t = this.constant(dtypeArray(dtype, values), shape, dtype);
      this.constCache.set(key, t);
    }
    return t;
  }

  /** @internal int64 1-D constant */
  ints(values: readonly number[]): Tensor {
    return this.cachedConst("int64", values, [values.length]);
  }

  // ---------------------------------------------------------------- core plumbing

  private claimName(what: string, name: string): void {
    if (!NAME_RE.test(name)) throw new GraphError(`${what} '${name}': names must match ${NAME_RE}`);
    if (this.names.has(name)) throw new GraphError(`${what} '${name}': name already used in graph '${this.name}'`);
    this.names.add(name);
  }

  private checkDim(what: string, name: string, d: Dim): void {
    if (typeof d === "number" ? !Number.isInteger(d) || d < 0 : !/^[A-Za-z_][A-Za-z0-9_]*$/.test(d)) {
      throw new GraphError(`${what} '${name}': bad dim ${JSON.stringify(d)} (non-negative integer or identifier)`);
    }
  }

  private newTensor(dtype: DType, shape: Shape, kind: TensorKind, name: string, producer?: Node, idx = 0): Tensor {
    const id = this.nextId++;
    return new Tensor(this, id, dtype, [...shape], kind, name || `_t${id}`, producer, idx);
  }

  /** @internal append a node; returns its outputs */
  node(
    op: string,
    inputs: (Tensor | undefined)[],
    outs: { dtype: DType; shape: Shape }[],
    attrs: Record<string, AttrValue> = {},
    opts: { noGrad?: boolean; optionalFrom?: number } = {},
  ): Tensor[] {
    for (const t of inputs) if (t && t.graph !== this) throw new GraphError(`${op}: tensor ${t} belongs to another graph`);
    const n: Node = {
      id: this.nodes.length,
      op,
      inputs,
      outputs: [],
      attrs,
      noGrad: opts.noGrad ?? false,
      optionalFrom: opts.optionalFrom ?? outs.length,
    };
    n.outputs = outs.map((o, i) => this.newTensor(o.dtype, o.shape, "op", "", n, i));
    this.nodes.push(n);
    return n.outputs;
  }

  private node1(op: string, inputs: (Tensor | undefined)[], dtype: DType, shape: Shape, attrs: Record<string, AttrValue> = {}, noGrad = false): Tensor {
    return this.node(op, inputs, [{ dtype, shape }], attrs, { noGrad })[0]!;
  }

  private own(op: string, t: Tensor): Tensor {
    if (!(t instanceof Tensor)) throw new GraphError(`${op}: expected a Tensor, got ${typeof t}`);
    if (t.graph !== this) throw new GraphError(`${op}: tensor ${t} belongs to another graph`);
    return t;
  }

  private wantDType(op: string, t: Tensor, allowed: readonly DType[], role = "input"): void {
    if (!allowed.includes(t.dtype)) throw new GraphError(`${op}: ${role} ${t} must be ${allowed.join("|")}, got ${t.dtype}`);
  }

  private operands(op: string, a: Operand, b: Operand): [Tensor, Tensor] {
    if (typeof a === "number" && typeof b === "number") throw new GraphError(`${op}: at least one operand must be a Tensor`);
    const ta = typeof a === "number" ? this.scalar(a, (b as Tensor).dtype) : this.own(op, a);
    const tb = typeof b === "number" ? this.scalar(b, ta.dtype) : this.own(op, b);
    if (ta.dtype !== tb.dtype) throw new GraphError(`${op}: dtype mismatch ${ta} vs ${tb}`);
    return [ta, tb];
  }

  private binary(op: string, onnx: string, a: Operand, b: Operand, allowed: readonly DType[], outDType?: DType): Tensor {
    const [ta, tb] = this.operands(op, a, b);
    this.wantDType(op, ta, allowed);
    const shape = broadcastShapes(op, [ta.shape, tb.shape]);
    return this.node1(onnx, [ta, tb], outDType ?? ta.dtype, shape, {}, outDType === "bool");
  }

  private unary(op: string, onnx: string, x: Tensor, allowed: readonly DType[] = FLOATS): Tensor {
    this.own(op, x);
    this.wantDType(op, x, allowed);
    return this.node1(onnx, [x], x.dtype, x.shape);
  }

  // ---------------------------------------------------------------- elementwise

  /** Elementwise a + b with numpy broadcasting. Numbers become scalars of the other operand's dtype. */
  add(a: Operand, b: Operand): Tensor { return this.binary("add", "Add", a, b, NUMERIC); }
  sub(a: Operand, b: Operand): Tensor { return this.binary("sub", "Sub", a, b, NUMERIC); }
  mul(a: Operand, b: Operand): Tensor { return this.binary("mul", "Mul", a, b, NUMERIC); }
  div(a: Operand, b: Operand): Tensor { return this.binary("div", "Div", a, b, NUMERIC); }
  /** a ** b (float). */
  pow(a: Operand, b: Operand): Tensor { return this.binary("pow", "Pow", a, b, FLOATS); }
  /** Elementwise max of two tensors (gradient goes to the larger; ties split evenly). */
  max(a: Operand, b: Operand): Tensor { return this.binary("max", "Max", a, b, NUMERIC); }
  min(a: Operand, b: Operand): Tensor { return this.binary("min", "Min", a, b, NUMERIC); }

  neg(x: Tensor): Tensor { return this.unary("neg", "Neg", x, ["float32", "float64", "int64", "int32"]); }
  sqrt(x: Tensor): Tensor { return this.unary("sqrt", "Sqrt", x); }
  exp(x: Tensor): Tensor { return this.unary("exp", "Exp", x); }
  log(x: Tensor): Tensor { return this.unary("log", "Log", x); }
  tanh(x: Tensor): Tensor { return this.unary("tanh", "Tanh", x); }
  sigmoid(x: Tensor): Tensor { return this.unary("sigmoid", "Sigmoid", x); }
  relu(x: Tensor): Tensor { return this.unary("relu", "Relu", x); }
  erf(x: Tensor): Tensor { return this.unary("erf", "Erf", x); }
  abs(x: Tensor): Tensor { return this.unary("abs", "Abs", x, NUMERIC); }
  /** log(1 + exp(x)), numerically stable (ONNX Softplus). */
  softplus(x: Tensor): Tensor { return this.unary("softplus", "Softplus", x); }

  /**
   * GELU. `"none"` (default) is exact, x·Φ(x) via Erf, written in the pattern ORT fuses into one
   * Gelu kernel; `"tanh"` is the tanh approximation.
   */
  gelu(x: Tensor, approximate: "none" | "tanh" = "none"): Tensor {
    this.own("gelu", x);
    this.wantDType("gelu", x, FLOATS);
    if (approximate === "none") {
      const e = this.erf(this.div(x, Math.SQRT2));
      return this.mul(this.mul(x, this.add(e, 1)), 0.5);
    }
    const inner = this.mul(this.add(x, this.mul(this.mul(this.mul(x, x), x), 0.044715)), Math.sqrt(2 / Math.PI));
    return this.mul(this.mul(x, 0.5), this.add(this.tanh(inner), 1));
  }

  // ---------------------------------------------------------------- comparisons / logic

  equal(a: Operand, b: Operand): Tensor { return this.binary("equal", "Equal", a, b, [...NUMERIC, "bool"], "bool"); }
  less(a: Operand, b: Operand): Tensor { return this.binary("less", "Less", a, b, NUMERIC, "bool"); }
  greater(a: Operand, b: Operand): Tensor { return this.binary("greater", "Greater", a, b, NUMERIC, "bool"); }
  lessOrEqual(a: Operand, b: Operand): Tensor { return this.binary("lessOrEqual", "LessOrEqual", a, b, NUMERIC, "bool"); }
  greaterOrEqual(a: Operand, b: Operand): Tensor { return this.binary("greaterOrEqual", "GreaterOrEqual", a, b, NUMERIC, "bool"); }
  and(a: Tensor, b: Tensor): Tensor { return this.binary("and", "And", a, b, ["bool"], "bool"); }
  or(a: Tensor, b: Tensor): Tensor { return this.binary("or", "Or", a, b, ["bool"], "bool"); }
  not(x: Tensor): Tensor {
    this.own("not", x);
    this.wantDType("not", x, ["bool"]);
    return this.node1("Not", [x], "bool", x.shape, {}, true);
  }

  /** cond ? a : b elementwise, broadcasting all three. */
  where(cond: Tensor, a: Operand, b: Operand): Tensor {
    this.own("where", cond);
    this.wantDType("where", cond, ["bool"], "condition");
    const [ta, tb] = this.operands("where", a, b);
    const shape = broadcastShapes("where", [cond.shape, ta.shape, tb.shape]);
    return this.node1("Where", [cond, ta, tb], ta.dtype, shape);
  }

  /** Convert element type. Gradients flow only float -> float. */
  cast(x: Tensor, dtype: DType): Tensor {
    this.own("cast", x);
    if (x.dtype === dtype) return x;
    const toIdx: Record<DType, number> = { float32: 1, int32: 6, int64: 7, bool: 9, float64: 11 };
    return this.node1("Cast", [x], dtype, x.shape, { to: { i: toIdx[dtype] } }, !(x.isFloat && FLOATS.includes(dtype)));
  }

  /** Identity whose gradient is zero: nothing flows back through it. */
  stopGradient(x: Tensor): Tensor {
    this.own("stopGradient", x);
    return this.node1("Identity", [x], x.dtype, x.shape, {}, true);
  }

  /** @internal plain Identity (used for graph outputs) */
  identity(x: Tensor): Tensor {
    return this.node1("Identity", [x], x.dtype, x.shape);
  }

  // ---------------------------------------------------------------- linear algebra

  /** Batched matrix product with broadcast batch dims; both operands rank >= 2. */
  matmul(a: Tensor, b: Tensor): Tensor {
    this.own("matmul", a);
    this.own("matmul", b);
    this.wantDType("matmul", a, NUMERIC);
    if (a.dtype !== b.dtype) throw new GraphError(`matmul: dtype mismatch ${a} vs ${b}`);
    if (a.rank < 2 || b.rank < 2) throw new GraphError(`matmul: operands must have rank >= 2 (unsqueeze vectors), got ${a} and ${b}`);
    const k1 = a.shape[a.rank - 1]!;
    const k2 = b.shape[b.rank - 2]!;
    if (!dimCompatible(k1, k2)) throw new GraphError(`matmul: inner dims differ: ${a} @ ${b} (${k1} vs ${k2})`);
    const batch = broadcastShapes("matmul", [a.shape.slice(0, -2), b.shape.slice(0, -2)]);
    return this.node1("MatMul", [a, b], a.dtype, [...batch, a.shape[a.rank - 2]!, b.shape[b.rank - 1]!]);
  }

  /** 2-D matrix product with optional transposes: alpha · op(a) · op(b) (ONNX Gemm). */
  gemm(a: Tensor, b: Tensor, opts: { transA?: boolean; transB?: boolean; alpha?: number } = {}): Tensor {
    this.own("gemm", a);
    this.own("gemm", b);
    this.wantDType("gemm", a, FLOATS);
    if (a.dtype !== b.dtype) throw new GraphError(`gemm: dtype mismatch ${a} vs ${b}`);
    if (a.rank !== 2 || b.rank !== 2) throw new GraphError(`gemm: operands must be 2-D, got ${a} and ${b}`);
    const [m, k1] = opts.transA ? [a.shape[1]!, a.shape[0]!] : [a.shape[0]!, a.shape[1]!];
    const [k2, n] = opts.transB ? [b.shape[1]!, b.shape[0]!] : [b.shape[0]!, b.shape[1]!];
    if (!dimCompatible(k1, k2)) throw new GraphError(`gemm: inner dims differ: ${a} · ${b} (${k1} vs ${k2})`);
    const attrs: Record<string, AttrValue> = {};
    if (opts.transA) attrs.transA = { i: 1 };
    if (opts.transB) attrs.transB = { i: 1 };
    if (opts.alpha !== undefined && opts.alpha !== 1) attrs.alpha = { f: opts.alpha };
    return this.node1("Gemm", [a, b], a.dtype, [m, n], attrs);
  }

  // ---------------------------------------------------------------- normalisation / softmax

  /** Softmax along one axis. */
  softmax(x: Tensor, axis = -1): Tensor {
    this.own("softmax", x);
    this.wantDType("softmax", x, FLOATS);
    return this.node1("Softmax", [x], x.dtype, x.shape, { axis: { i: normAxis("softmax", axis, x.rank) } });
  }

  /** Log-softmax along one axis. */
  logSoftmax(x: Tensor, axis = -1): Tensor {
    this.own("logSoftmax", x);
    this.wantDType("logSoftmax", x, FLOATS);
    return this.node1("LogSoftmax", [x], x.dtype, x.shape, { axis: { i: normAxis("logSoftmax", axis, x.rank) } });
  }

  /** Layer normalisation over the last axis: (x - mean) / sqrt(var + eps) · scale + bias. */
  layerNorm(x: Tensor, scale: Tensor, bias: Tensor, eps = 1e-5): Tensor {
    for (const t of [x, scale, bias]) this.own("layerNorm", t);
    this.wantDType("layerNorm", x, FLOATS);
    const d = x.shape[x.rank - 1];
    for (const [role, t] of [["scale", scale], ["bias", bias]] as const) {
      if (t.dtype !== x.dtype) throw new GraphError(`layerNorm: ${role} ${t} dtype differs from input ${x}`);
      if (t.rank !== 1 || d === undefined || !dimCompatible(t.shape[0]!, d)) {
        throw new GraphError(`layerNorm: ${role} ${t} must be [${d}] to match input ${x}`);
      }
    }
    const stat = [...x.shape.slice(0, -1), 1];
    // Mean and InvStdDev are optional outputs (float32: ORT's stash type; it has no double stash
    // kernel); autodiff reuses them for float32 graphs instead of recomputing.
    return this.node(
      "LayerNormalization",
      [x, scale, bias],
      [{ dtype: x.dtype, shape: x.shape }, { dtype: "float32", shape: stat }, { dtype: "float32", shape: stat }],
      { axis: { i: -1 }, epsilon: { f: eps } },
      { optionalFrom: 1 },
    )[0]!;
  }

  // ---------------------------------------------------------------- indexing

  /** Rows of `table` picked by integer `indices` (embedding lookup along `axis`, default 0). */
  gather(table: Tensor, indices: Tensor, axis = 0): Tensor {
    this.own("gather", table);
    this.own("gather", indices);
    this.wantDType("gather", indices, INDEX, "indices");
    const ax = normAxis("gather", axis, table.rank);
    const shape = [...table.shape.slice(0, ax), ...indices.shape, ...table.shape.slice(ax + 1)];
    return this.node1("Gather", [table, indices], table.dtype, shape, { axis: { i: ax } });
  }

  /** ONNX GatherElements: out[i][j] = x[i][idx[i][j]] along `axis`; output has the indices' shape. */
  gatherElements(x: Tensor, indices: Tensor, axis: number): Tensor {
    this.own("gatherElements", x);
    this.own("gatherElements", indices);
    this.wantDType("gatherElements", indices, INDEX, "indices");
    if (indices.rank !== x.rank) throw new GraphError(`gatherElements: indices ${indices} must have the rank of ${x}`);
    const ax = normAxis("gatherElements", axis, x.rank);
    return this.node1("GatherElements", [x, indices], x.dtype, indices.shape, { axis: { i: ax } });
  }

  // ---------------------------------------------------------------- shape ops

  /**
   * Reshape. Entries: a positive size, `0` (keep the input dim at that position), `-1` (infer,
   * at most one) or a symbolic dim name (read from the inputs' shapes at run time).
   */
  reshape(x: Tensor, shape: readonly Dim[]): Tensor {
    this.own("reshape", x);
    let inferAt = -1;
    const out: Dim[] = shape.map((d, i) => {
      if (d === 0) {
        if (i >= x.rank) throw new GraphError(`reshape: 0 at position ${i} but input ${x} has rank ${x.rank}`);
        return x.shape[i]!;
      }
      if (d === -1) {
        if (inferAt >= 0) throw new GraphError(`reshape: more than one -1 in ${fmtShape(shape)}`);
        inferAt = i;
        return -1;
      }
      if (typeof d === "number" && (!Number.isInteger(d) || d < 0)) throw new GraphError(`reshape: bad dim ${d} in ${fmtShape(shape)}`);
      return d;
    });
    const total = dimProduct(x.shape);
    if (inferAt >= 0) {
      const rest = dimProduct(out.filter((_, i) => i !== inferAt));
      out[inferAt] = dimQuotient(total, rest);
      if (typeof out[inferAt] === "number" && typeof total === "number" && (out[inferAt] as number) * (rest as number) !== total) {
        throw new GraphError(`reshape: cannot reshape ${x} into ${fmtShape(shape)}`);
      }
    } else if (typeof total === "number") {
      const prod = dimProduct(out);
      if (typeof prod === "number" && prod !== total) throw new GraphError(`reshape: cannot reshape ${x} (${total} elements) into ${fmtShape(shape)} (${prod})`);
    }
    if (out.length === x.rank && out.every((d, i) => dimEq(d, x.shape[i]!))) return x;
    const target = shape.some((d) => typeof d === "string") ? this.shapeTensor(shape, [x]) : this.ints(shape as number[]);
    return this.node1("Reshape", [x, target], x.dtype, out);
  }

  /** Permute axes (default: reverse them). */
  transpose(x: Tensor, perm?: readonly number[]): Tensor {
    this.own("transpose", x);
    const p = perm ? [...perm] : x.shape.map((_, i) => x.rank - 1 - i);
    const sorted = [...p].sort((a, b) => a - b);
    if (p.length !== x.rank || sorted.some((v, i) => v !== i)) throw new GraphError(`transpose: perm [${p}] is not a permutation of ${x.rank} axes for ${x}`);
    if (p.every((v, i) => v === i)) return x;
    return this.node1("Transpose", [x], x.dtype, p.map((i) => x.shape[i]!), { perm: { ints: p } });
  }

  /** Join tensors along `axis`; other dims must agree. */
  concat(xs: readonly Tensor[], axis: number): Tensor {
    if (xs.length === 0) throw new GraphError("concat: no inputs");
    xs.forEach((t) => this.own("concat", t));
    const first = xs[0]!;
    const ax = normAxis("concat", axis, first.rank);
    const shape: Dim[] = [...first.shape];
    for (const t of xs.slice(1)) {
      if (t.dtype !== first.dtype) throw new GraphError(`concat: dtype mismatch ${first} vs ${t}`);
      if (t.rank !== first.rank) throw new GraphError(`concat: rank mismatch ${first} vs ${t}`);
      t.shape.forEach((d, i) => {
        if (i === ax) return;
        if (!dimCompatible(d, shape[i]!)) throw new GraphError(`concat: dim ${i} differs: ${first} vs ${t}`);
        if (isUnknown(shape[i]!)) shape[i] = d;
      });
    }
    const along = xs.map((t) => t.shape[ax]!);
    shape[ax] = along.every((d) => typeof d === "number") ? (along as number[]).reduce((a, b) => a + b, 0) : unknownDim();
    if (xs.length === 1) return first;
    return this.node1("Concat", [...xs], first.dtype, shape, { axis: { i: ax } });
  }

  /** Python-style slicing on the given axes (default 0..n-1); steps default to 1. */
  slice(x: Tensor, starts: readonly number[], ends: readonly number[], axes?: readonly number[], steps?: readonly number[]): Tensor {
    this.own("slice", x);
    const ax = (axes ?? starts.map((_, i) => i)).map((a) => normAxis("slice", a, x.rank));
    const st = steps ?? starts.map(() => 1);
    if (starts.length !== ends.length || ax.length !== starts.length || st.length !== starts.length) {
      throw new GraphError(`slice: starts/ends/axes/steps lengths differ (${starts.length}/${ends.length}/${ax.length}/${st.length})`);
    }
    const strided = st.map((v, i) => (v !== 1 ? i : -1)).filter((i) => i >= 0);
    if (strided.length > 0 && ax.length > 1) {
      // one node per strided axis (after one node for all unit-step axes): each keeps a simple gradient
      const unit = ax.map((_, i) => i).filter((i) => st[i] === 1);
      let y = unit.length ? this.slice(x, unit.map((i) => starts[i]!), unit.map((i) => ends[i]!), unit.map((i) => ax[i]!)) : x;
      for (const i of strided) y = this.slice(y, [starts[i]!], [ends[i]!], [ax[i]!], [st[i]!]);
      return y;
    }
    const shape: Dim[] = [...x.shape];
    ax.forEach((a, i) => {
      const step = st[i]!;
      if (step === 0 || !Number.isInteger(step)) throw new GraphError(`slice: bad step ${step}`);
      const d = x.shape[a]!;
      const s = starts[i]!;
      const e = Math.min(ends[i]!, ONNX_INT_MAX);
      if (typeof d === "number") shape[a] = sliceLen(d, s, e, step);
      else shape[a] = step === 1 && s === 0 && e >= 2 ** 31 ? d : unknownDim();
    });
    const clip = (v: number) => Math.max(-ONNX_INT_MAX, Math.min(ONNX_INT_MAX, v));
    return this.node1("Slice", [x, this.ints(starts.map(clip)), this.ints(ends.map(clip)), this.ints(ax), this.ints(st)], x.dtype, shape);
  }

  /** Split along `axis` into pieces of the given static sizes. */
  split(x: Tensor, sizes: readonly number[], axis: number): Tensor[] {
    this.own("split", x);
    const ax = normAxis("split", axis, x.rank);
    const d = x.shape[ax]!;
    const total = sizes.reduce((a, b) => a + b, 0);
    if (sizes.some((s) => !Number.isInteger(s) || s < 0)) throw new GraphError(`split: bad sizes [${sizes}]`);
    if (typeof d === "number" && total !== d) throw new GraphError(`split: sizes [${sizes}] sum to ${total} but ${x} has ${d} on axis ${ax}`);
    const outs = sizes.map((s) => ({ dtype: x.dtype, shape: x.shape.map((e, i) => (i === ax ? s : e)) }));
    return this.node("Split", [x, this.ints(sizes)], outs, { axis: { i: ax } });
  }

  /** Remove size-1 axes. */
  squeeze(x: Tensor, axes: readonly number[]): Tensor {
    this.own("squeeze", x);
    const ax = axes.map((a) => normAxis("squeeze", a, x.rank));
    for (const a of ax) {
      const d = x.shape[a]!;
      if (d !== 1 && !isUnknown(d)) throw new GraphError(`squeeze: axis ${a} of ${x} is ${d}, not 1`);
    }
    return this.node1("Squeeze", [x, this.ints(ax)], x.dtype, x.shape.filter((_, i) => !ax.includes(i)));
  }

  /** Insert size-1 axes (axes index the output). */
  unsqueeze(x: Tensor, axes: readonly number[]): Tensor {
    this.own("unsqueeze", x);
    const rank = x.rank + axes.length;
    const ax = axes.map((a) => normAxis("unsqueeze", a, rank)).sort((a, b) => a - b);
    if (new Set(ax).size !== ax.length) throw new GraphError(`unsqueeze: repeated axes [${axes}]`);
    const shape: Dim[] = [];
    let k = 0;
    for (let i = 0; i < rank; i++) shape.push(ax.includes(i) ? 1 : x.shape[k++]!);
    return this.node1("Unsqueeze", [x, this.ints(ax)], x.dtype, shape);
  }

  /** Broadcast to `shape` (numpy rules; symbolic dims are read from the input shapes at run time). */
  expand(x: Tensor, shape: readonly Dim[], refs: readonly Tensor[] = []): Tensor {
    this.own("expand", x);
    const out = broadcastShapes("expand", [x.shape, shape]);
    return this.node1("Expand", [x, this.shapeTensor(shape, [x, ...refs])], x.dtype, out);
  }

  // ---------------------------------------------------------------- reductions

  private reduce(op: string, onnx: string, x: Tensor, axes: readonly number[] | undefined, keepdims: boolean): Tensor {
    this.own(op, x);
    this.wantDType(op, x, NUMERIC);
    const ax = [...new Set((axes ?? x.shape.map((_, i) => i)).map((a) => normAxis(op, a, x.rank)))].sort((a, b) => a - b);
    if (ax.length === 0) return x;
    const shape = keepdims ? x.shape.map((d, i) => (ax.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !ax.includes(i));
    const k = { keepdims: { i: keepdims ? 1 : 0 } };
    // Opset 17: ReduceSum takes axes as an input, ReduceMean/ReduceMax as an attribute.
    if (onnx === "ReduceSum") return this.node1(onnx, [x, this.ints(ax)], x.dtype, shape, k);
    return this.node1(onnx, [x], x.dtype, shape, { ...k, axes: { ints: ax } });
  }

  /** Sum over `axes` (default: all). */
  reduceSum(x: Tensor, axes?: readonly number[], keepdims = false): Tensor { return this.reduce("reduceSum", "ReduceSum", x, axes, keepdims); }
  /** Mean over `axes` (default: all). */
  reduceMean(x: Tensor, axes?: readonly number[], keepdims = false): Tensor { return this.reduce("reduceMean", "ReduceMean", x, axes, keepdims); }
  /** Max over `axes` (default: all); the gradient is split evenly between tied maxima. */
  reduceMax(x: Tensor, axes?: readonly number[], keepdims = false): Tensor { return this.reduce("reduceMax", "ReduceMax", x, axes, keepdims); }
  /** Mean of all elements (a scalar). */
  mean(x: Tensor): Tensor { return this.reduceMean(x); }
  /** Sum of all elements (a scalar). */
  sum(x: Tensor): Tensor { return this.reduceSum(x); }

  // ---------------------------------------------------------------- shape helpers

  /** Run-time shape of `x` as int64 [rank]. */
  shapeOf(x: Tensor): Tensor {
    this.own("shapeOf", x);
    if (isStatic(x.shape)) return this.ints(x.shape);
    // one Shape node per tensor (duplicates trip ORT's CSE + reshape fusion on 1.30)
    const key = `${x.id}:*`;
    let t = this.dimCache.get(key);
    if (!t) {
      t = this.node1("Shape", [x], "int64", [x.rank], {}, true);
      this.dimCache.set(key, t);
    }
    return t;
  }

  /** Run-time size of one axis of `x` as int64 [1] (a constant when the dim is static). */
  dimOf(x: Tensor, axis: number): Tensor {
    this.own("dimOf", x);
    const a = normAxis("dimOf", axis, x.rank);
    const d = x.shape[a]!;
    if (typeof d === "number") return this.ints([d]);
    const key = `${x.id}:${a}`;
    let t = this.dimCache.get(key);
    if (!t) {
      t = this.node1("Shape", [x], "int64", [1], { start: { i: a }, end: { i: a + 1 } }, true);
      this.dimCache.set(key, t);
    }
    return t;
  }

  /** @internal run-time value of a (possibly symbolic) dim as int64 [1] */
  dimValue(d: Dim, refs: readonly Tensor[] = []): Tensor {
    if (typeof d === "number") return this.ints([d]);
    for (const r of refs) {
      const i = r.shape.indexOf(d);
      if (i >= 0) return this.dimOf(r, i);
    }
    const src = this.symbolSources.get(d);
    if (src) return this.dimOf(src.t, src.axis);
    const f = dimSymbols(d);
    if (f && f.syms.length > 1) {
      let acc = this.dimValue(f.syms[0]!, refs);
      for (const s of f.syms.slice(1)) acc = this.mul(acc, this.dimValue(s, refs));
      return f.coef === 1 ? acc : this.mul(acc, this.ints([f.coef]));
    }
    throw new GraphError(`cannot resolve dim '${d}' at run time (not found on any input or reference tensor)`);
  }

  /** @internal int64 [n] shape tensor for dims, reading symbolic dims at run time */
  shapeTensor(dims: readonly Dim[], refs: readonly Tensor[] = []): Tensor {
    if (dims.every((d) => typeof d === "number")) return this.ints(dims as number[]);
    // Reuse a reference's whole run-time shape when it matches exactly.
    for (const r of refs) if (r.rank === dims.length && r.shape.every((d, i) => dimEq(d, dims[i]!))) return this.shapeOf(r);
    const parts: Tensor[] = [];
    let run: number[] = [];
    for (const d of dims) {
      if (typeof d === "number") { run.push(d); continue; }
      if (run.length) { parts.push(this.ints(run)); run = []; }
      parts.push(this.dimValue(d, refs));
    }
    if (run.length) parts.push(this.ints(run));
    return parts.length === 1 ? parts[0]! : this.node1("Concat", parts, "int64", [dims.length], { axis: { i: 0 } }, true);
  }

  /** int64 [n] = 0, 1, ..., n-1 (n may be symbolic). */
  range(n: Dim, refs: readonly Tensor[] = []): Tensor {
    const lim = typeof n === "number" ? this.scalar(n, "int64") : this.node1("Squeeze", [this.dimValue(n, refs), this.ints([0])], "int64", [], {}, true);
    return this.node1("Range", [this.scalar(0, "int64"), lim, this.scalar(1, "int64")], "int64", [n], {}, true);
  }

  /** Zeros of `like`'s (run-time) shape and dtype. */
  zerosLike(like: Tensor): Tensor {
    if (isStatic(like.shape)) {
      const n = like.shape.reduce((a, b) => a * b, 1);
      if (n <= 1) return this.cachedConst(like.dtype, [0], like.shape);
    }
    return this.node1("ConstantOfShape", [this.shapeOf(like)], like.dtype, like.shape, { value: { t: dtypeArray(like.dtype, [0]), dims: [1] } }, true);
  }

  // ---------------------------------------------------------------- losses and masks

  /** log softmax(logits)[..., target]: logits [..., V], targets [...] int -> [...]. */
  gatherLogProbs(logits: Tensor, targets: Tensor): Tensor {
    this.own("gatherLogProbs", logits);
    this.own("gatherLogProbs", targets);
    this.wantDType("gatherLogProbs", logits, FLOATS, "logits");
    this.wantDType("gatherLogProbs", targets, INDEX, "targets");
    if (targets.rank !== logits.rank - 1 || !targets.shape.every((d, i) => dimCompatible(d, logits.shape[i]!))) {
      throw new GraphError(`gatherLogProbs: targets ${targets} must match logits ${logits} without the last axis`);
    }
    const lp = this.logSoftmax(logits, -1);
    const picked = this.gatherElements(lp, this.unsqueeze(targets, [-1]), -1);
    return this.squeeze(picked, [-1]);
  }

  /** Per-position cross-entropy −log p(target): logits [..., V], targets [...] -> [...]. */
  crossEntropy(logits: Tensor, targets: Tensor): Tensor {
    return this.neg(this.gatherLogProbs(logits, targets));
  }

  /**
   * Additive causal mask [tq, tk] of the graph's float type: 0 where key j <= query i + (tk - tq),
   * MASK_NEG elsewhere. tk >= tq covers decoding with a KV cache (queries are the last tq positions).
   */
  causalMask(tq: Dim, tk: Dim = tq, refs: readonly Tensor[] = []): Tensor {
    if (typeof tq === "number" && typeof tk === "number") {
      const m = new (this.floatType === "float32" ? Float32Array : Float64Array)(tq * tk);
      for (let i = 0; i < tq; i++) for (let j = 0; j < tk; j++) if (j > i + tk - tq) m[i * tk + j] = MASK_NEG;
      return this.constant(m, [tq, tk]);
    }
    const qi = this.unsqueeze(this.range(tq, refs), [1]); // [tq, 1]
    const kj = this.unsqueeze(this.range(tk, refs), [0]); // [1, tk]
    const shift = dimEq(tq, tk) ? qi : this.add(qi, this.sub(this.dimValue(tk, refs), this.dimValue(tq, refs)));
    return this.where(this.lessOrEqual(kj, shift), this.scalar(0), this.scalar(MASK_NEG));
  }

  /** Additive key-padding mask: valid [B, T] (bool or 0/1 ints) -> [B, 1, 1, T] of 0 / MASK_NEG. */
  paddingMask(valid: Tensor): Tensor {
    this.own("paddingMask", valid);
    if (valid.rank !== 2) throw new GraphError(`paddingMask: expected [batch, seq], got ${valid}`);
    const ok = valid.dtype === "bool" ? valid : this.cast(valid, "bool");
    return this.unsqueeze(this.where(ok, this.scalar(0), this.scalar(MASK_NEG)), [1, 2]);
  }

  // ---------------------------------------------------------------- autodiff, export, run

  /**
   * Reverse-mode gradients of a scalar `loss` with respect to `params` (tensors, specs or names).
   * Returns a record param name -> gradient tensor of the param's shape (zeros when unused).
   */
  grad(loss: Tensor, params: readonly (Tensor | ParamSpec | string)[]): Record<string, Tensor> {
    this.own("grad", loss);
    const ts = params.map((p) => (p instanceof Tensor ? this.own("grad", p) : this.paramTensor(typeof p === "string" ? p : p.name)));
    return gradients(this, loss, ts);
  }

  /** Serialise the graph (dead nodes removed) to ONNX bytes. */
  toOnnx(opts: ToOnnxOptions): OnnxModel {
    return serialize(this, opts);
  }

  /** Serialise and open an in-process ORT session (cached by model bytes). */
  compile(opts: CompileOptions): Promise<CompiledGraph> {
    return compileGraph(this, opts);
  }

  /** @internal the param tensors (for export) */
  paramEntries(): readonly { spec: ParamSpec; tensor: Tensor }[] {
    return this.paramsList;
  }
}

function sliceLen(d: number, s: number, e: number, step: number): number {
  const norm = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, v < 0 ? v + d : v));
  if (step > 0) {
    const a = norm(s, 0, d);
    const b = norm(e, 0, d);
    return Math.max(0, Math.ceil((b - a) / step));
  }
  const a = norm(s, -1, d - 1);
  const b = norm(e, -1, d - 1);
  return Math.max(0, Math.ceil((a - b) / -step));
}

export type { ParamStoreLike };
