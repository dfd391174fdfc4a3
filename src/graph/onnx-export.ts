/**
 * Serialise a Graph to ONNX bytes (opset 17, default domain only): dead-code elimination from
 * the requested outputs, constants as initializers, params as graph inputs unless baked.
 */
import { onnx } from "onnx-proto";
import { GraphError, type DType, type Dim, type IOSpec, type ParamStoreLike } from "./types.ts";
import { isUnknown } from "./shape.ts";
import type { Tensor, Node, AttrValue, ConstData } from "./tensor.ts";
import type { Graph } from "./graph.ts";

export const OPSET = 17;
const IR_VERSION = 8; // the IR version that goes with opset 17

export const ONNX_DTYPE: Record<DType, number> = { float32: 1, int32: 6, int64: 7, bool: 9, float64: 11 };

export interface ToOnnxOptions {
  /** Named outputs; names become the ONNX output names. */
  outputs: Record<string, Tensor>;
  /** Gradients from `g.grad`, emitted as outputs named `grad:<param>`. */
  grads?: Record<string, Tensor>;
  /** Bake params found here into the model as initializers (for inference export). */
  bake?: ParamStoreLike;
}

export interface OnnxModel {
  bytes: Uint8Array;
  inputs: IOSpec[];
  outputs: IOSpec[];
}

function rawBytes(data: ConstData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function tensorProto(name: string, dtype: DType, dims: readonly number[], data: ConstData): onnx.ITensorProto {
  return { name, dataType: ONNX_DTYPE[dtype], dims: [...dims], rawData: rawBytes(data) };
}

function valueInfo(name: string, dtype: DType, shape: readonly Dim[]): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ONNX_DTYPE[dtype],
        shape: { dim: shape.map((d) => (typeof d === "number" ? { dimValue: d } : isUnknown(d) ? {} : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, v: AttrValue): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if ("i" in v) return { name, type: T.INT, i: v.i };
  if ("f" in v) return { name, type: T.FLOAT, f: v.f };
  if ("ints" in v) return { name, type: T.INTS, ints: v.ints };
  if ("s" in v) return { name, type: T.STRING, s: new TextEncoder().encode(v.s) };
  const dt = v.t instanceof Float32Array ? "float32" : v.t instanceof Float64Array ? "float64" : v.t instanceof BigInt64Array ? "int64" : v.t instanceof Int32Array ? "int32" : "bool";
  return { name, type: T.TENSOR, t: tensorProto("", dt, v.dims, v.t) };
}

/** Nodes needed for `roots`, in topological order. */
export function liveNodes(g: Graph, roots: readonly Tensor[]): Node[] {
  const live = new Set<number>();
  const stack = [...roots];
  while (stack.length) {
    const t = stack.pop()!;
    const n = t.producer;
    if (!n || live.has(n.id)) continue;
    live.add(n.id);
    for (const i of n.inputs) if (i) stack.push(i);
  }
  return g.nodes.filter((n) => live.has(n.id));
}

function toFloat(data: Float32Array, dtype: DType): ConstData {
  return dtype === "float64" ? Float64Array.from(data) : data;
}

/** Serialise `g`; see {@link ToOnnxOptions}. */
export function serialize(g: Graph, opts: ToOnnxOptions): OnnxModel {
  const outs: [string, Tensor][] = Object.entries(opts.outputs);
  for (const [name, t] of Object.entries(opts.grads ?? {})) outs.push([`grad:${name}`, t]);
  if (outs.length === 0) throw new GraphError("toOnnx: no outputs requested");
  const seen = new Set<string>();
  for (const [name, t] of outs) {
    if (!t || t.graph !== g) throw new GraphError(`toOnnx: output '${name}' is not a tensor of graph '${g.name}'`);
    if (seen.has(name)) throw new GraphError(`toOnnx: duplicate output name '${name}'`);
    seen.add(name);
  }
  const nodes = liveNodes(g, outs.map(([, t]) => t));

  // Which tensors are consumed (to drop unused optional outputs).
  const used = new Set<number>(outs.map(([, t]) => t.id));
  const leaves = new Map<number, Tensor>();
  const noteLeaf = (t: Tensor) => { if (!t.producer) leaves.set(t.id, t); };
  for (const n of nodes) for (const i of n.inputs) if (i) { used.add(i.id); noteLeaf(i); }
  for (const [, t] of outs) noteLeaf(t);

  const inputNames = new Set<string>();
  const inputs: IOSpec[] = [];
  const initializer: onnx.ITensorProto[] = [];
  const declared = [...g.inputs(), ...g.paramEntries().map((p) => p.tensor)];
  for (const t of declared) {
    if (!leaves.has(t.id)) continue;
    const baked = t.kind === "param" ? opts.bake?.get(t.name) : undefined;
    if (opts.bake && t.kind === "param" && !baked) throw new GraphError(`toOnnx: bake: param '${t.name}' missing from the store`);
    if (baked) {
      const want = t.shape as number[];
      if (baked.shape.length !== want.length || baked.shape.some((d, i) => d !== want[i]) || baked.data.length !== want.reduce((a, b) => a * b, 1)) {
        throw new GraphError(`toOnnx: bake: param '${t.name}' has shape [${baked.shape}] in the store, graph wants [${want}]`);
      }
      initializer.push(tensorProto(t.name, t.dtype, want, toFloat(baked.data, t.dtype)));
    } else {
      inputs.push({ name: t.name, dtype: t.dtype, shape: [...t.shape] });
      inputNames.add(t.name);
    }
  }
  for (const t of leaves.values()) {
    if (t.kind !== "const") continue;
    initializer.push(tensorProto(t.name, t.dtype, t.shape as number[], g.constData.get(t.id)!));
  }
  for (const [name] of outs) if (inputNames.has(name)) throw new GraphError(`toOnnx: output name '${name}' clashes with an input`);

  const nodeProtos: onnx.INodeProto[] = nodes.map((n) => {
    let outputs = n.outputs.map((t, i) => (i >= n.optionalFrom && !used.has(t.id) ? "" : t.name));
    while (outputs.length > 1 && outputs[outputs.length - 1] === "") outputs = outputs.slice(0, -1);
    return {
      name: `${n.op}_${n.id}`,
      opType: n.op,
      input: n.inputs.map((t) => (t ? t.name : "")),
      output: outputs,
      attribute: Object.entries(n.attrs).map(([k, v]) => attribute(k, v)),
    };
  });
  // Output names are given by Identity nodes so one tensor may back several outputs.
  for (const [name, t] of outs) nodeProtos.push({ name: `out:${name}`, opType: "Identity", input: [t.name], output: [name] });

  const model: onnx.IModelProto = {
    irVersion: IR_VERSION,
    producerName: "clipflow",
    opsetImport: [{ domain: "", version: OPSET }],
    graph: {
      name: g.name,
      node: nodeProtos,
      initializer,
      input: inputs.map((s) => valueInfo(s.name, s.dtype, s.shape)),
      output: outs.map(([name, t]) => valueInfo(name, t.dtype, t.shape)),
    },
  };
  const bytes = onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
  return {
    bytes,
    inputs,
    outputs: outs.map(([name, t]) => ({ name, dtype: t.dtype, shape: [...t.shape] })),
  };
}
