/**
 * The one runtime boundary: the only module in clipflow that imports onnxruntime-node.
 *
 * Everything else talks to ONNX Runtime through these helpers, so execution providers,
 * thread counts and tensor conversion are decided in one place.
 *
 * Note: onnxruntime-node's `session.run` executes synchronously on the calling JS thread
 * (its Promise only defers the start). Long-running sessions belong in worker threads;
 * see src/scheduler.
 */
import * as ort from "onnxruntime-node";
import { ConfigError, ModelFileError } from "../util/errors.ts";

export type OrtTensor = ort.Tensor;
export type TensorDType = "float32" | "float64" | "int64" | "int32" | "bool" | "uint8";
export type TensorData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;

/** A device string as written in pipeline files: `cpu` or `cuda:N`. */
export type Device = "cpu" | `cuda:${number}`;

export interface SessionOptions {
  /** ORT intra-op threads for this session (default 1 inside workers, keep the sum at the core count). */
  intraOpThreads?: number;
  /** ORT inter-op threads (default 1). */
  interOpThreads?: number;
  /** `cpu` (default) or `cuda:N`. A missing CUDA provider is an error, never a silent CPU fallback. */
  device?: Device;
  /** ORT graph optimisation level (default "all"). */
  optimization?: "disabled" | "basic" | "extended" | "all";
}

/** A plain tensor value crossing the runtime boundary (and worker boundaries). */
export interface TensorValue {
  dtype: TensorDType;
  dims: number[];
  data: TensorData;
}


/** Providers compiled into the installed onnxruntime-node binary. */
export function supportedBackends(): string[] {
  return ort.listSupportedBackends().map((b) => b.name);
}

function providersFor(device: Device): ort.InferenceSession.ExecutionProviderConfig[] {
  if (device === "cpu") return ["cpu"];
  const m = /^cuda:(\d+)$/.exec(device);
  if (!m) throw new ConfigError(`unknown device '${device}' (expected cpu or cuda:N)`, { code: "bad device" });
  if (!supportedBackends().includes("cuda")) {
    throw new ConfigError(
      `device '${device}' requested but this onnxruntime-node build has no CUDA execution provider ` +
        `(reinstall with ONNXRUNTIME_NODE_INSTALL=cuda12 on a machine with CUDA 12)`,
      { code: "no cuda" },
    );
  }
  return [{ name: "cuda", deviceId: Number(m[1]) } as ort.InferenceSession.ExecutionProviderConfig];
}

/** Create an ORT session from ONNX model bytes or a file path. */
export async function createSession(
  model: Uint8Array | string,
  opts: SessionOptions = {},
): Promise<ort.InferenceSession> {
  const o: ort.InferenceSession.SessionOptions = {
    executionProviders: providersFor(opts.device ?? "cpu"),
    intraOpNumThreads: opts.intraOpThreads ?? 1,
    interOpNumThreads: opts.interOpThreads ?? 1,
    graphOptimizationLevel: opts.optimization ?? "all",
  };
  try {
    return typeof model === "string"
      ? await ort.InferenceSession.create(model, o)
      : await ort.InferenceSession.create(model, o);
  } catch (e) {
    const where = typeof model === "string" ? model : `<${model.byteLength} bytes of ONNX>`;
    throw new ModelFileError(`cannot load ONNX model ${where}: ${(e as Error).message.split("\n")[0]}`, { code: "bad onnx", cause: e });
  }
}

/** Wrap a typed array as an ORT tensor without copying. */
export function toOrt(t: TensorValue): ort.Tensor {
  return new ort.Tensor(t.dtype, t.data as never, t.dims);
}

/** View an ORT output tensor as a plain TensorValue (no copy). */
export function fromOrt(t: ort.Tensor): TensorValue {
  return { dtype: t.type as TensorDType, dims: [...t.dims], data: t.data as TensorData };
}

/** Run a session on plain tensor values; returns the requested outputs (all by default). */
export async function runSession(
  session: ort.InferenceSession,
  feeds: Record<string, TensorValue>,
  outputs?: readonly string[],
): Promise<Record<string, TensorValue>> {
  const f: Record<string, ort.Tensor> = {};
  for (const [k, v] of Object.entries(feeds)) f[k] = toOrt(v);
  const res = outputs ? await session.run(f, outputs as string[]) : await session.run(f);
  const out: Record<string, TensorValue> = {};
  for (const [k, v] of Object.entries(res)) out[k] = fromOrt(v);
  return out;
}

export type InferenceSession = ort.InferenceSession;
