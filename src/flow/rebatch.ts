/**
 * `rebatch`: regroup rows into batches of exactly `size` rows (the last may be shorter),
 * merging rows of several inputs and splitting large ones. Output batches carry the credits of
 * every input they contain rows from; an input is released once all its rows have left.
 *
 * A partial batch is emitted early when (a) upstream completes, (b) the credit pool stalls —
 * the source waits for a credit and every credit is held by parked buffers, so waiting for
 * more rows would deadlock — or (c) `maxDelayMs` passed since the oldest buffered row arrived
 * (timed on the injected RxJS `scheduler`, so tests run in virtual time).
 *
 * @example
 * rebatch("batch64", { size: 64, maxDelayMs: 50 });
 */
import { ConfigError } from "../util/errors.ts";
import { asyncScheduler, type SchedulerLike, type Subscription } from "rxjs";
import { concatBatches } from "../arrow/take.ts";
import type { FlowBatch } from "./credits.ts";
import { operate, type FlowOperator, type StageOptions } from "./operate.ts";

export interface RebatchOptions extends Omit<StageOptions, "name" | "sink" | "concurrency"> {
  /** Rows per output batch. */
  size: number;
  /** Emit a partial batch this long after its first row arrived (default: never by time). */
  maxDelayMs?: number;
  scheduler?: SchedulerLike;
}

export function rebatch(name: string, opts: RebatchOptions): FlowOperator {
  const { size, maxDelayMs, scheduler = asyncScheduler, ...stageOpts } = opts;
  if (!Number.isInteger(size) || size < 1) throw new ConfigError(`option size: must be a positive integer, got ${String(size)}`, { code: "bad option", where: { stage: name } });
  if (maxDelayMs !== undefined && !(maxDelayMs >= 0)) throw new ConfigError(`option maxDelayMs: must be >= 0, got ${String(maxDelayMs)}`, { code: "bad option", where: { stage: name } });
  return operate({ ...stageOpts, name }, (api) => {
    // Held inputs in arrival order; the head may be partly consumed (rows before `head` left already).
    const pending: FlowBatch[] = [];
    let head = 0;
    let rows = 0;
    let timer: Subscription | null = null;

    const emit = (n: number): void => {
      const parts = [];
      const from: FlowBatch[] = [];
      const done: FlowBatch[] = [];
      let need = n;
      while (need > 0) {
        const fb = pending[0]!;
        const avail = fb.batch.numRows - head;
        const take = Math.min(avail, need);
        parts.push(head === 0 && take === fb.batch.numRows ? fb.batch : fb.batch.slice(head, head + take));
        from.push(fb);
        need -= take;
        if (take === avail) {
          done.push(pending.shift()!);
          head = 0;
        } else head += take;
      }
      rows -= n;
      api.setBuffered(rows);
      api.emit(concatBatches(parts), from); // output takes every contributing input's credits…
      for (const fb of done) api.release(fb); // …before fully used inputs let theirs go
    };

    const flushAll = (): void => {
      timer?.unsubscribe();
      timer = null;
      if (rows > 0) emit(rows);
    };

    return {
      process(fb, scope) {
        scope.hold();
        if (fb.batch.numRows === 0) {
          api.release(fb);
          return;
        }
        pending.push(fb);
        api.park(fb);
        rows += fb.batch.numRows;
        api.setBuffered(rows);
        while (rows >= size) emit(size);
        if (rows === 0) {
          timer?.unsubscribe();
          timer = null;
        } else if (maxDelayMs !== undefined && !timer) {
          timer = scheduler.schedule(() => {
            timer = null;
            try {
              if (rows > 0) emit(rows);
            } catch (e) {
              api.fail(e);
            }
          }, maxDelayMs);
        }
      },
      flush: flushAll,
      stall: flushAll,
      teardown() {
        timer?.unsubscribe();
        timer = null;
        pending.length = 0;
      },
    };
  });
}
