/**
 * In-process execution of a Graph: serialise, open (or reuse) an ORT session keyed by a hash of
 * the model bytes and options, and run it on plain typed arrays.
 */
import { createHash } from "node:crypto";
import { createSession, runSession, type Device, type InferenceSession, type TensorValue } from "./runtime.ts";
import { GraphError, type DType, type IOSpec, type ParamStoreLike } from "./types.ts";
import type { ToOnnxOptions, OnnxModel } from "./onnx-export.ts";
import type { Graph } from "./graph.ts";

export interface CompileOptions extends ToOnnxOptions {
  /** ORT intra-op threads (default 1). */
  threads?: number;
  device?: Device;
  optimization?: "disabled" | "basic" | "extended" | "all";
  /** Feed params from this store on every run unless a feed names them explicitly. */
  params?: ParamStoreLike;
}

type Typed = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;
/** A feed: a full TensorValue, or a bare typed array when the input's shape is static. */
export type Feed = TensorValue | Typed;

export interface CompiledGraph {
  readonly model: OnnxModel;
  readonly session: InferenceSession;
  /** Run once; returns every output by name (gradients as `grad:<param>`). */
  run(feeds: Record<string, Feed>): Promise<Record<string, TensorValue>>;
}

const sessions = new Map<string, Promise<InferenceSession>>();

/** Open a session for model bytes, reusing an existing one for identical bytes and options. */
export function cachedSession(bytes: Uint8Array, opts: { threads?: number; device?: Device; optimization?: CompileOptions["optimization"] } = {}): Promise<InferenceSession> {
  const key = `${createHash("sha256").update(bytes).digest("hex")}|${opts.threads ?? 1}|${opts.device ?? "cpu"}|${opts.optimization ?? "all"}`;
  let s = sessions.get(key);
  if (!s) {
    s = createSession(bytes, { intraOpThreads: opts.threads ?? 1, device: opts.device, optimization: opts.optimization });
    s.catch(() => sessions.delete(key));
    sessions.set(key, s);
  }
  return s;
}

/** Forget all cached sessions (sessions already handed out stay usable). */
export function clearSessionCache(): void {
  sessions.clear();
}

const ARRAY_DTYPE: [new (...a: never[]) => Typed, DType][] = [
  [Float32Array, "float32"], [Float64Array, "float64"], [BigInt64Array, "int64"], [Int32Array, "int32"], [Uint8Array, "bool"],
];

function toValue(spec: IOSpec, f: Feed): TensorValue {
  if (!ArrayBuffer.isView(f)) {
    if (f.dtype !== spec.dtype) throw new GraphError(`run: input '${spec.name}' wants ${spec.dtype}, got ${f.dtype}`);
    if (f.dims.length !== spec.shape.length || f.dims.some((d, i) => typeof spec.shape[i] === "number" && spec.shape[i] !== d)) {
      throw new GraphError(`run: input '${spec.name}' wants shape [${spec.shape}], got [${f.dims}]`);
    }
    return f;
  }
  const dt = ARRAY_DTYPE.find(([C]) => f instanceof C)?.[1];
  if (dt !== spec.dtype) throw new GraphError(`run: input '${spec.name}' wants ${spec.dtype}, got ${f.constructor.name}`);
  if (!spec.shape.every((d) => typeof d === "number")) throw new GraphError(`run: input '${spec.name}' has symbolic shape [${spec.shape}]; feed {dtype, dims, data}`);
  const dims = spec.shape as number[];
  const n = dims.reduce((a, b) => a * b, 1);
  if (f.length !== n) throw new GraphError(`run: input '${spec.name}' wants ${n} values for [${dims}], got ${f.length}`);
  return { dtype: dt, dims, data: f };
}

export async function compileGraph(g: Graph, opts: CompileOptions): Promise<CompiledGraph> {
  const model = g.toOnnx(opts);
  const session = await cachedSession(model.bytes, opts);
  const paramNames = new Set(g.params().map((p) => p.name));
  // names the graph declares; feeds for declared-but-pruned inputs are fine, others are typos
  const known = new Set([...paramNames, ...g.inputs().map((t) => t.name)]);
  return {
    model,
    session,
    async run(feeds) {
      for (const k of Object.keys(feeds)) {
        if (!known.has(k)) throw new GraphError(`run: '${k}' is not an input or param of graph '${g.name}'`);
      }
      const values: Record<string, TensorValue> = {};
      for (const spec of model.inputs) {
        let f: Feed | undefined = feeds[spec.name];
        if (f === undefined && paramNames.has(spec.name) && opts.params) {
          const p = opts.params.get(spec.name);
          if (p) f = { dtype: spec.dtype as TensorValue["dtype"], dims: p.shape, data: spec.dtype === "float64" ? Float64Array.from(p.data) : p.data };
        }
        if (f === undefined) throw new GraphError(`run: missing input '${spec.name}' of graph '${g.name}'`);
        values[spec.name] = toValue(spec, f);
      }
      return runSession(session, values);
    },
  };
}
