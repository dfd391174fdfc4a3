/**
 * Messages between the main thread and a model-host worker (src/scheduler/worker.ts).
 *
 * Tensors travel as plain {dtype, dims, data}; the sender lists every tensor's buffer in the
 * transfer list, so data moves between threads without a copy.
 */
import type { SessionOptions, TensorValue } from "../graph/runtime.ts";

export type HostRequest =
  | { op: "load"; id: number; name: string; model: Uint8Array | string; opts: SessionOptions }
  | { op: "run"; id: number; name: string; feeds: Record<string, TensorValue>; outputs?: string[] }
  | { op: "unload"; id: number; name: string }
  /** Release every session; the last message a worker gets before it is terminated. */
  | { op: "shutdown"; id: number };

/** What a loaded session looks like from outside. */
export interface SessionInfo {
  inputNames: string[];
  outputNames: string[];
}

export type HostReply =
  | { id: number; ok: true; info?: SessionInfo; outputs?: Record<string, TensorValue> }
  | { id: number; ok: false; error: string };

/**
 * The distinct buffers behind a set of tensors, for a postMessage transfer list.
 * @example worker.postMessage(msg, transferList(Object.values(feeds)));
 */
export function transferList(tensors: Iterable<TensorValue>): ArrayBuffer[] {
  const seen = new Set<ArrayBuffer>();
  for (const t of tensors) {
    const b = t.data.buffer;
    // A SharedArrayBuffer is shared, not transferred.
    if (b instanceof ArrayBuffer) seen.add(b);
  }
  return [...seen];
}
