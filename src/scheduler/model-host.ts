/**
 * Where model sessions live. `ModelHost` is what the scheduler's executors talk to; `WorkerHost`
 * is the real one: a Bun Worker owning ORT sessions, so a heavy `session.run` never blocks the
 * main thread's timers, credits or I/O.
 */
import type { Device, SessionOptions, TensorValue } from "../graph/runtime.ts";
import { transferList, type HostReply, type HostRequest, type SessionInfo } from "./protocol.ts";

export type { SessionInfo } from "./protocol.ts";

/** A place that can hold named ONNX sessions and run them one call at a time. */
export interface ModelHost {
  readonly device: Device;
  /** Create (or replace) session `name` from ONNX bytes or a file path. */
  load(name: string, model: Uint8Array | string, opts?: SessionOptions): Promise<SessionInfo>;
  /**
   * Run session `name`. The feeds' buffers are handed over (transferred) and must not be used
   * by the caller afterwards; the outputs are owned by the caller.
   */
  run(name: string, feeds: Record<string, TensorValue>, outputs?: string[]): Promise<Record<string, TensorValue>>;
  unload(name: string): Promise<void>;
  /** Stop the host; pending calls reject. */
  terminate(): Promise<void>;
}

export class HostError extends Error {
  override name = "HostError";
}

interface Pending {
  resolve: (r: HostReply & { ok: true }) => void;
  reject: (e: Error) => void;
  what: string;
}

/**
 * A ModelHost in a Bun Worker thread (src/scheduler/worker.ts).
 * @example
 * const host = new WorkerHost("cpu");
 * await host.load("mlp", onnxBytes, { intraOpThreads: 1 });
 * const { y } = await host.run("mlp", { x: { dtype: "float32", dims: [1, 16], data } });
 * await host.terminate();
 */
export class WorkerHost implements ModelHost {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private dead: Error | undefined;

  constructor(readonly device: Device = "cpu", readonly label = `worker(${device})`) {
    this.worker = new Worker(new URL("./worker.ts", import.meta.url).href);
    this.worker.onmessage = (e: MessageEvent<HostReply>) => this.onReply(e.data);
    this.worker.onerror = (e: ErrorEvent) => this.fail(new HostError(`${this.label} crashed: ${e.message}`));
  }

  private onReply(r: HostReply): void {
    const p = this.pending.get(r.id);
    if (!p) return;
    this.pending.delete(r.id);
    if (r.ok) p.resolve(r);
    else p.reject(new HostError(`${p.what}: ${r.error}`));
  }

  private fail(err: Error): void {
    this.dead ??= err;
    for (const p of this.pending.values()) p.reject(new HostError(`${p.what}: ${err.message}`));
    this.pending.clear();
  }

  private call(req: HostRequest, what: string, transfer: ArrayBuffer[] = []): Promise<HostReply & { ok: true }> {
    if (this.dead) return Promise.reject(new HostError(`${what}: ${this.dead.message}`));
    return new Promise((resolve, reject) => {
      this.pending.set(req.id, { resolve, reject, what });
      try {
        this.worker.postMessage(req, transfer);
      } catch (e) {
        this.pending.delete(req.id);
        reject(new HostError(`${what}: cannot send to ${this.label}: ${(e as Error).message}`));
      }
    });
  }

  async load(name: string, model: Uint8Array | string, opts: SessionOptions = {}): Promise<SessionInfo> {
    // Model bytes are copied (structured clone of one Uint8Array = one memcpy), not transferred:
    // the caller may load the same bytes into several replicas.
    const r = await this.call({ op: "load", id: this.nextId++, name, model, opts: { ...opts, device: this.device } }, `load model '${name}' on ${this.device}`);
    if (!r.info) throw new HostError(`load model '${name}': worker sent no session info`);
    return r.info;
  }

  async run(name: string, feeds: Record<string, TensorValue>, outputs?: string[]): Promise<Record<string, TensorValue>> {
    const req: HostRequest = { op: "run", id: this.nextId++, name, feeds };
    if (outputs) req.outputs = outputs;
    const r = await this.call(req, `model '${name}' run failed`, transferList(Object.values(feeds)));
    if (!r.outputs) throw new HostError(`model '${name}': worker sent no outputs`);
    return r.outputs;
  }

  async unload(name: string): Promise<void> {
    await this.call({ op: "unload", id: this.nextId++, name }, `unload model '${name}'`);
  }

  async terminate(): Promise<void> {
    this.fail(new HostError(`${this.label} terminated`));
    this.worker.terminate();
  }
}
