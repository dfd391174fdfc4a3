/**
 * Where model sessions live. `ModelHost` is what the scheduler's executors talk to; `WorkerHost`
 * is the real one: a Bun Worker owning ORT sessions, so a heavy `session.run` never blocks the
 * main thread's timers, credits or I/O.
 */
import type { Device, SessionOptions, TensorValue } from "../graph/runtime.ts";
import { transferList, type HostReply, type HostRequest, type SessionInfo } from "./protocol.ts";
import { RuntimeError, type ClipflowErrorOptions } from "../util/errors.ts";

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
  /**
   * Stop the host: later calls reject at once; calls already sent finish (a worker host cannot
   * stop ORT mid-call), then the host goes. Settles once the host is really gone.
   */
  terminate(): Promise<void>;
}

/**
 * A model host call that failed: the session could not be loaded ("model load failed"), a run
 * failed ("model run failed"), or the host crashed or was terminated ("host crashed",
 * "host terminated"). A RuntimeError: ORT's own reason is in the message, a worker host sends
 * only that text, so a corrupt model and a missing GPU provider cannot be told apart here.
 * @example await host.run("m", feeds).catch((e) => e instanceof HostError && e.code === "model run failed");
 */
export class HostError extends RuntimeError {
  override name = "HostError";
  constructor(detail: string, opts: ClipflowErrorOptions = {}) {
    super(detail, { code: "host failed", ...opts });
  }
}

interface Pending {
  resolve: (r: HostReply & { ok: true }) => void;
  reject: (e: Error) => void;
  what: string;
  code: string;
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
  /** Ids of requests the worker is still working on (their callers may already have been rejected). */
  private readonly inWorker = new Set<number>();
  private idle: (() => void) | undefined;
  private exited = false;
  private terminating: Promise<void> | undefined;
  private closing: Error | undefined;

  constructor(readonly device: Device = "cpu", readonly label = `worker(${device})`) {
    this.worker = new Worker(new URL("./worker.ts", import.meta.url).href);
    this.worker.onmessage = (e: MessageEvent<HostReply>) => this.onReply(e.data);
    this.worker.onerror = (e: ErrorEvent) => {
      this.fail(new HostError(`${this.label} crashed: ${e.message}`, { code: "host crashed" }));
      this.gone();
    };
    this.worker.addEventListener("close", () => this.gone());
  }

  /** The worker thread ended by itself: no reply will come. */
  private gone(): void {
    this.exited = true;
    this.inWorker.clear();
    this.idle?.();
  }

  private onReply(r: HostReply): void {
    this.inWorker.delete(r.id);
    if (this.inWorker.size === 0) this.idle?.();
    const p = this.pending.get(r.id);
    if (!p) return;
    this.pending.delete(r.id);
    if (r.ok) p.resolve(r);
    else p.reject(new HostError(`${p.what}: ${r.error}`, { code: p.code }));
  }

  private fail(err: Error): void {
    this.dead ??= err;
    for (const p of this.pending.values()) p.reject(new HostError(`${p.what}: ${err.message}`, { code: codeOf(err), cause: err }));
    this.pending.clear();
  }

  private call(req: HostRequest, what: string, transfer: ArrayBuffer[] = []): Promise<HostReply & { ok: true }> {
    const dead = this.dead ?? this.closing;
    if (dead) return Promise.reject(new HostError(`${what}: ${dead.message}`, { code: codeOf(dead), cause: dead }));
    const code = req.op === "load" ? "model load failed" : req.op === "run" ? "model run failed" : "host failed";
    return new Promise((resolve, reject) => {
      this.pending.set(req.id, { resolve, reject, what, code });
      try {
        this.worker.postMessage(req, transfer);
        this.inWorker.add(req.id);
      } catch (e) {
        this.pending.delete(req.id);
        reject(new HostError(`${what}: cannot send to ${this.label}: ${(e as Error).message}`, { code, cause: e }));
      }
    });
  }

  async load(name: string, model: Uint8Array | string, opts: SessionOptions = {}): Promise<SessionInfo> {
    // Model bytes are copied (structured clone of one Uint8Array = one memcpy), not transferred:
    // the caller may load the same bytes into several replicas.
    const r = await this.call({ op: "load", id: this.nextId++, name, model, opts: { ...opts, device: this.device } }, `load model '${name}' on ${this.device}`);
    if (!r.info) throw new HostError(`load model '${name}': worker sent no session info`, { code: "model load failed" });
    return r.info;
  }

  async run(name: string, feeds: Record<string, TensorValue>, outputs?: string[]): Promise<Record<string, TensorValue>> {
    const req: HostRequest = { op: "run", id: this.nextId++, name, feeds };
    if (outputs) req.outputs = outputs;
    const r = await this.call(req, `model '${name}' run failed`, transferList(Object.values(feeds)));
    if (!r.outputs) throw new HostError(`model '${name}': worker sent no outputs`, { code: "model run failed" });
    return r.outputs;
  }

  async unload(name: string): Promise<void> {
    await this.call({ op: "unload", id: this.nextId++, name }, `unload model '${name}'`);
  }

  /**
   * Rejects later calls at once, lets the worker finish the calls it already has (their callers
   * get their real results), releases its sessions and only then stops the thread. Terminating a
   * Bun worker while ORT works for it (a session load or run on ORT's threads) aborts the whole
   * process (`terminate called after throwing an instance of 'Napi::Error'`), so this never
   * does that; it waits for the call instead, however long the call takes.
   */
  terminate(): Promise<void> {
    this.terminating ??= (async () => {
      this.closing = new HostError(`${this.label} terminated`, { code: "host terminated" });
      if (!this.exited) {
        if (this.inWorker.size > 0) await new Promise<void>((r) => (this.idle = r));
        this.idle = undefined;
        if (!this.exited) {
          const id = this.nextId++;
          const done = new Promise<void>((r) => (this.idle = r));
          try {
            this.worker.postMessage({ op: "shutdown", id } satisfies HostRequest);
            this.inWorker.add(id);
            await done;
          } catch {
            /* the worker is already gone */
          }
        }
      }
      this.fail(this.closing); // nothing should be left; if the worker died, its callers learn it here
      this.worker.terminate();
    })();
    return this.terminating;
  }
}

/** A host failure's code (crashed, terminated) carries over to the calls it fails. */
function codeOf(e: Error): string {
  return e instanceof HostError ? e.code : "host failed";
}
