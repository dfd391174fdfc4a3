/**
 * Executors and work sources. An executor is one model host (one worker = one replica slot on
 * one device) running one call at a time. A work source is anything that produces batches for
 * executors: the dynamic batcher of a registered model (batched-model.ts) today, the
 * continuous-batching decoder (decoder.ts) next. When an executor is idle, the scheduler asks
 * every source it serves for ready work and runs the one of highest priority (ties: oldest).
 */
import type { Device } from "../graph/runtime.ts";
import type { ModelHost } from "./model-host.ts";

export interface Executor {
  readonly host: ModelHost;
  readonly device: Device;
  /** Index among the device's executors. */
  readonly index: number;
  readonly label: string;
  busy: boolean;
}

/** Ready work offered by a source: its priority and when its oldest item started waiting. */
export interface ReadyWork {
  priority: number;
  since: number;
}

export interface WorkSource {
  readonly name: string;
  /** Whether this source's sessions are loaded on `executor`. */
  servesOn(executor: Executor): boolean;
  /** Ready work at `now`, or undefined when nothing should be dispatched yet. */
  readyWork(now: number): ReadyWork | undefined;
  /** The earliest time queued work becomes ready by timeout, if any is queued. */
  nextDeadline(): number | undefined;
  /**
   * Take the ready work and run it on `executor`. Resolves (never rejects) when done.
   * `release` (idempotent) hands the executor back before that, e.g. as soon as the worker call
   * returned while the source still post-processes on the main thread; after it the source must
   * not use `executor` again in this dispatch, and must not offer the same work twice meanwhile.
   */
  dispatch(executor: Executor, now: number, release: () => void): Promise<void>;
  /** Reject everything queued (scheduler shutdown). */
  close(reason: Error): void;
}

/**
 * Pick the ready source of highest priority (ties: the one waiting longest) for `executor`.
 * @example const src = pickWork(sources.values(), idleExecutor, clock.now());
 */
export function pickWork(sources: Iterable<WorkSource>, executor: Executor, now: number): WorkSource | undefined {
  let best: WorkSource | undefined;
  let bestWork: ReadyWork | undefined;
  for (const s of sources) {
    if (!s.servesOn(executor)) continue;
    const w = s.readyWork(now);
    if (!w) continue;
    if (!bestWork || w.priority > bestWork.priority || (w.priority === bestWork.priority && w.since < bestWork.since)) {
      best = s;
      bestWork = w;
    }
  }
  return best;
}
