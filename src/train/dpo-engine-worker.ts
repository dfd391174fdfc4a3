/**
 * WorkerDpoEngine: the DpoEngine in a Bun Worker (dpo-worker.ts). Design (DESIGN "ORT runs in
 * worker threads"): the worker owns the weights, the optimiser state and the step session, so
 * a step costs one transfer of the micro-batches in and a small metrics object out — the weights
 * never cross threads per step. They are copied in once at start and out on `weights()`
 * (export); checkpoints are written by the worker directly.
 */
import type { ParamStore } from "../graph/params.ts";
import { dpoBatchBuffers, type DpoBatch } from "./dpo-batch.ts";
import { DpoNonFiniteError, type DpoEngineConfig, type DpoEngineLike, type StepMetrics } from "./dpo-engine.ts";

type Weights = Record<string, { shape: number[]; data: Float32Array }>;

export type DpoWorkerRequest =
  | { op: "init"; id: number; config: DpoEngineConfig; weights: Weights }
  | { op: "step"; id: number; batches: DpoBatch[] }
  | { op: "save" | "load"; id: number; dir: string }
  | { op: "weights" | "stepCount" | "close"; id: number };

export type DpoWorkerReply =
  | { id: number; ok: true; metrics?: StepMetrics; weights?: Weights; stepCount?: number }
  | { id: number; ok: false; error: string; name: string };

type Ok = DpoWorkerReply & { ok: true };

/**
 * @example
 * const engine = await WorkerDpoEngine.create(config, policy.store);
 * const m = await engine.step([batch]);   // batch buffers are transferred (unusable afterwards)
 * await engine.close();
 */
export class WorkerDpoEngine implements DpoEngineLike {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: (r: Ok) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private dead: Error | undefined;

  private constructor() {
    this.worker = new Worker(new URL("./dpo-worker.ts", import.meta.url).href);
    this.worker.onmessage = (e: MessageEvent<DpoWorkerReply>) => {
      const r = e.data;
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (r.ok) p.resolve(r);
      else {
        const err = r.name === "DpoNonFiniteError" ? new DpoNonFiniteError(r.error) : new Error(`trainer worker: ${r.error}`);
        p.reject(err);
      }
    };
    this.worker.onerror = (e: ErrorEvent) => this.fail(new Error(`trainer worker crashed: ${e.message}`));
  }

  /** Starts the worker and copies the weights in (the caller's store is left untouched). */
  static async create(config: DpoEngineConfig, store: ParamStore): Promise<WorkerDpoEngine> {
    const w = new WorkerDpoEngine();
    const weights: Weights = {};
    for (const n of store.names()) {
      const p = store.require(n);
      weights[n] = { shape: p.shape, data: p.data };
    }
    try {
      await w.call({ op: "init", id: 0, config, weights });
    } catch (e) {
      await w.close();
      throw e;
    }
    return w;
  }

  private fail(err: Error): void {
    this.dead ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  private call(req: DpoWorkerRequest, transfer: ArrayBuffer[] = []): Promise<Ok> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...req, id }, transfer);
    });
  }

  async step(micro: DpoBatch[]): Promise<StepMetrics> {
    const r = await this.call({ op: "step", id: 0, batches: micro }, micro.flatMap(dpoBatchBuffers));
    return r.metrics!;
  }

  async saveState(dir: string): Promise<void> {
    await this.call({ op: "save", id: 0, dir });
  }

  async loadState(dir: string): Promise<void> {
    await this.call({ op: "load", id: 0, dir });
  }

  async weights(): Promise<Weights> {
    return (await this.call({ op: "weights", id: 0 })).weights!;
  }

  async stepCount(): Promise<number> {
    return (await this.call({ op: "stepCount", id: 0 })).stepCount!;
  }

  async close(): Promise<void> {
    if (this.dead) return;
    // a polite goodbye first, so the worker is idle when terminated
    await this.call({ op: "close", id: 0 }).catch(() => {});
    this.fail(new Error("trainer worker closed"));
    this.worker.terminate();
  }
}
