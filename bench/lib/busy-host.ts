/**
 * Worker utilisation for benches: a ModelHost wrapper that adds up, per executor and per session,
 * the wall time its `run` calls are outstanding (message to the worker, ORT run, reply). The
 * scheduler runs one call per executor at a time, so busy ÷ elapsed is the executor's
 * utilisation; the rest is time the worker waited for the main thread (sampling, KV copies,
 * batching) or for work.
 *
 * @example
 * const meter = new BusyMeter();
 * const s = new Scheduler({ createHost: meter.createHost });
 * const before = meter.snapshot(); await work(); const used = meter.since(before);
 */
import type { Device, SessionOptions, TensorValue } from "../../src/graph/runtime.ts";
import { WorkerHost, type ModelHost, type SessionInfo } from "../../src/scheduler/scheduler.ts";

/** Busy milliseconds by executor label and by session name, and idle gaps by the session before them. */
export interface BusySnapshot {
  executors: Record<string, number>;
  sessions: Record<string, number>;
  /**
   * Idle ms of an executor between a call of this session ending and its next call starting
   * (while the caller post-processes the outputs on the main thread, or no work is ready).
   */
  gapsAfter: Record<string, number>;
  /** Calls per session (gaps ÷ calls = mean gap). */
  calls: Record<string, number>;
}

/**
 * Adds up the run time of every host it creates.
 * @example
 * const meter = new BusyMeter();
 * const s = new Scheduler({ createHost: meter.createHost });
 * const t = meter.snapshot(); await flow(); console.log(meter.since(t).sessions); // { "clip.text": 812, ... }
 */
export class BusyMeter {
  private readonly executors: Record<string, number> = {};
  private readonly sessions: Record<string, number> = {};
  private readonly gapsAfter: Record<string, number> = {};
  private readonly calls: Record<string, number> = {};

  /** For `new Scheduler({ createHost })`: a WorkerHost whose run calls are timed. */
  readonly createHost = (device: Device, index: number): ModelHost => {
    const inner = new WorkerHost(device, `worker(${device}#${index})`);
    const label = `${device}#${index}`;
    this.executors[label] = 0;
    let last: { session: string; end: number } | undefined;
    const add = (session: string, ms: number) => {
      this.executors[label] = (this.executors[label] ?? 0) + ms;
      this.sessions[session] = (this.sessions[session] ?? 0) + ms;
      this.calls[session] = (this.calls[session] ?? 0) + 1;
    };
    return {
      device,
      load: (name: string, model: Uint8Array | string, opts?: SessionOptions): Promise<SessionInfo> => inner.load(name, model, opts),
      run: async (name: string, feeds: Record<string, TensorValue>, outputs?: string[]) => {
        const t0 = performance.now();
        if (last) this.gapsAfter[last.session] = (this.gapsAfter[last.session] ?? 0) + (t0 - last.end);
        try {
          return await inner.run(name, feeds, outputs);
        } finally {
          const t1 = performance.now();
          add(name, t1 - t0);
          last = { session: name, end: t1 };
        }
      },
      unload: (name: string) => inner.unload(name),
      terminate: () => inner.terminate(),
    };
  };

  snapshot(): BusySnapshot {
    return { executors: { ...this.executors }, sessions: { ...this.sessions }, gapsAfter: { ...this.gapsAfter }, calls: { ...this.calls } };
  }

  /** Busy ms accumulated since `before`. */
  since(before: BusySnapshot): BusySnapshot {
    const diff = (now: Record<string, number>, then: Record<string, number>) =>
      Object.fromEntries(Object.entries(now).map(([k, v]) => [k, v - (then[k] ?? 0)]).filter(([, v]) => (v as number) > 0));
    return {
      executors: diff(this.executors, before.executors),
      sessions: diff(this.sessions, before.sessions),
      gapsAfter: diff(this.gapsAfter, before.gapsAfter),
      calls: diff(this.calls, before.calls),
    };
  }
}
