/**
 * The process-wide inference scheduler: owns the executors (one worker per replica slot per
 * device), the registered models (dynamic batchers) and, later, decoders; dispatches ready
 * batches to idle executors by priority, replicas in turn. Time comes from an injected RxJS
 * scheduler so tests run on a virtual clock.
 */
import type { SchedulerLike, Subscription } from "rxjs";
import type { Device } from "../graph/runtime.ts";
import { BatchedModel, resolveOptions, SchedulerError, type BatchOptions, type ModelSpec } from "./batched-model.ts";
import { preciseAsyncScheduler } from "./clock.ts";
import { Decoder, type DecoderOptions } from "./decoder.ts";
import { pickWork, type Executor, type WorkSource } from "./executor.ts";
import type { ModelStats } from "./metrics.ts";
import { WorkerHost, type ModelHost } from "./model-host.ts";
import type { LvlmModel } from "../models/lvlm-model.ts";
import type { PolicyModel } from "../models/lvlm-policy.ts";

// The scheduler's public surface, importable from this one file.
export { BatchedModel, SchedulerError, abortError } from "./batched-model.ts";
export type { BatchOptions, ModelSpec, RunOptions, Tensors, Ticket } from "./batched-model.ts";
export type { InputBatching, OutputBatching } from "./batch-tensors.ts";
export type { Executor, ReadyWork, WorkSource } from "./executor.ts";
export type { ModelStats, StreamStats } from "./metrics.ts";
export { WorkerHost } from "./model-host.ts";
export { Decoder } from "./decoder.ts";
export type { DecodeOptions, DecodeRequest, DecoderOptions, DecoderStats, FinishedSequence } from "./decoder.ts";
export type { ModelHost, SessionInfo } from "./model-host.ts";
export { preciseAsyncScheduler } from "./clock.ts";

export interface SchedulerOptions {
  /** Devices models may be placed on; the first is the default (default ["cpu"]). */
  devices?: Device[];
  /** Clock and timers (default: asyncScheduler with a sub-ms clock; tests pass a VirtualTimeScheduler). */
  scheduler?: SchedulerLike;
  /** Creates the host of executor `index` on `device` (default: a WorkerHost thread). */
  createHost?: (device: Device, index: number) => ModelHost;
}

/** Everything the run report needs: one entry per registered model. */
export interface SchedulerStats {
  models: Record<string, ModelStats & { priority: number; maxBatch: number; replicas: number; device: Device }>;
  executors: { label: string; busy: boolean }[];
}

/**
 * @example
 * const s = new Scheduler({ devices: ["cpu"] });
 * const clip = s.register("clip.image", { model: bytes }, { maxBatch: 64, maxDelayMs: 4 });
 * const { embeds } = await clip.run({ pixels }, { stream: "a" });
 * await s.close();
 */
export class Scheduler {
  private readonly devices: Device[];
  private readonly clock: SchedulerLike;
  private readonly createHost: (device: Device, index: number) => ModelHost;
  private readonly executors = new Map<Device, Executor[]>();
  private readonly sources = new Map<string, WorkSource>();
  private readonly models = new Map<string, BatchedModel>();
  // Executors in creation order; `cursor` rotates the starting point so replicas take turns.
  private readonly all: Executor[] = [];
  private cursor = 0;
  /** Dispatches not yet settled (an early-released executor may already run the next one). */
  private readonly inflight = new Set<Promise<void>>();
  private timer: Subscription | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private closed = false;

  constructor(opts: SchedulerOptions = {}) {
    this.devices = opts.devices ?? ["cpu"];
    if (this.devices.length === 0) throw new SchedulerError("Scheduler needs at least one device");
    this.clock = opts.scheduler ?? preciseAsyncScheduler;
    this.createHost = opts.createHost ?? ((device, i) => new WorkerHost(device, `worker(${device}#${i})`));
  }

  /** Current time on the scheduler's clock (ms). */
  now(): number {
    return this.clock.now();
  }

  /**
   * Register a model for dynamic batching and start loading it on `replicas` executors of its
   * device. Returns at once; calls queue until a replica has loaded (`await m.ready` to wait).
   */
  register(name: string, spec: ModelSpec, opts: BatchOptions = {}): BatchedModel {
    if (this.closed) throw new SchedulerError(`cannot register '${name}': scheduler is closed`);
    if (this.sources.has(name)) throw new SchedulerError(`model '${name}' is already registered`);
    const o = resolveOptions(name, opts, this.devices[0]!);
    if (!this.devices.includes(o.device)) {
      throw new SchedulerError(`model '${name}': device '${o.device}' is not one of the scheduler's devices (${this.devices.join(", ")})`);
    }
    const m = new BatchedModel(name, spec, o, () => this.now(), () => this.pump());
    this.sources.set(name, m);
    this.models.set(name, m);
    m.load(this.executorsFor(o.device, o.replicas));
    return m;
  }

  /**
   * A continuous-batching decoder for a policy (decoder.ts): any {@link PolicyModel} (e.g. an
   * imported Hugging Face ONNX VLM from `loadHfVlm`) or a built-in LvlmModel (wrapped by
   * `lvlmPolicy`). Its sessions load on `replicas` executors of its device, its vision model
   * registers as `{name}.vision`; `scoring: true` adds teacher-forced `logps`.
   * @example
   * const gen = scheduler.decoder("policy", await loadHfVlm("models/my-vlm"), { scoring: true });
   */
  decoder(name: string, policy: PolicyModel | LvlmModel, opts: DecoderOptions = {}): Decoder {
    if (this.closed) throw new SchedulerError(`cannot create decoder '${name}': scheduler is closed`);
    return new Decoder(this, name, policy, { ...opts, device: opts.device ?? this.devices[0]! });
  }

  /**
   * Add another work source (e.g. a continuous-batching decoder) and hand it `replicas`
   * executors of `device` to load onto; it is then dispatched alongside the models.
   */
  addSource(source: WorkSource, device: Device, replicas: number, load: (executors: Executor[]) => void): void {
    if (this.sources.has(source.name)) throw new SchedulerError(`'${source.name}' is already registered`);
    this.sources.set(source.name, source);
    load(this.executorsFor(device, replicas));
    this.pump();
  }

  /** The first `n` executors of `device`, creating hosts as needed. */
  executorsFor(device: Device, n: number): Executor[] {
    let list = this.executors.get(device);
    if (!list) {
      list = [];
      this.executors.set(device, list);
    }
    while (list.length < n) {
      const index = list.length;
      const host = this.createHost(device, index);
      const ex: Executor = { host, device, index, label: `${device}#${index}`, busy: false };
      list.push(ex);
      this.all.push(ex);
    }
    return list.slice(0, n);
  }

  /** Dispatch ready work to idle executors, then arm the timer for the next deadline. */
  pump(): void {
    if (this.closed) return;
    const now = this.now();
    const n = this.all.length;
    for (let k = 0; k < n; k++) {
      const i = (this.cursor + k) % n;
      const ex = this.all[i]!;
      if (ex.busy) continue;
      const src = pickWork(this.sources.values(), ex, now);
      if (!src) continue;
      ex.busy = true;
      this.cursor = (i + 1) % n;
      // A source may release the executor early (the decoder does once its worker call returned,
      // so other models use the worker while it samples on the main thread). `held` guards
      // against freeing an executor that already runs someone else's work.
      let held = true;
      const release = () => {
        if (!held) return;
        held = false;
        ex.busy = false;
        this.pump();
      };
      // Otherwise the executor frees one event-loop turn after its batch settles: callers
      // resubmitting on their results (promise continuations) then join the next batch. Freeing
      // it at once would let an overdue straggler leave alone ahead of them, and phase-lock into
      // 7+1 batches. An early-released source still gets a pump then, for its own next work.
      const call = src.dispatch(ex, now, release);
      this.inflight.add(call);
      call.finally(() => {
        this.inflight.delete(call);
        setImmediate(() => (held ? release() : this.pump()));
      });
    }
    this.arm(now);
  }

  private arm(now: number): void {
    let next = Number.POSITIVE_INFINITY;
    for (const s of this.sources.values()) {
      const d = s.nextDeadline();
      if (d !== undefined && d > now && d < next) next = d;
    }
    if (next === this.timerAt) return;
    this.timer?.unsubscribe();
    this.timer = undefined;
    this.timerAt = next;
    if (next === Number.POSITIVE_INFINITY) return;
    this.timer = this.clock.schedule(() => {
      this.timer = undefined;
      this.timerAt = Number.POSITIVE_INFINITY;
      this.pump();
    }, next - now);
  }

  /** A snapshot of every model's metrics, for the run report. */
  stats(): SchedulerStats {
    const models: SchedulerStats["models"] = {};
    for (const [name, m] of this.models) {
      const o = m.options;
      models[name] = { ...m.stats(), priority: o.priority, maxBatch: o.maxBatch, replicas: o.replicas, device: o.device };
    }
    return { models, executors: this.all.map((e) => ({ label: e.label, busy: e.busy })) };
  }

  /**
   * Stop dispatching, let the calls and model loads running in workers finish, stop every worker,
   * then reject everything still queued. Never terminates a worker inside an ORT call: that aborts
   * the whole process (issue 17 §3; WorkerHost.terminate waits for the worker's calls).
   * Queued callers are rejected last, just before this resolves, so a caller that awaits
   * `close()` before handling its own promise does not leave an unhandled rejection meanwhile.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true; // pump() dispatches nothing from here on
    this.timer?.unsubscribe();
    await Promise.allSettled([...this.inflight]);
    await Promise.allSettled(this.all.map((e) => e.host.terminate()));
    const err = new SchedulerError("scheduler closed");
    for (const s of this.sources.values()) s.close(err);
  }
}
