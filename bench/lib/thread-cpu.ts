/**
 * CPU time of this process by kind of thread, from /proc/self/task/<tid>/stat (Linux): the main
 * JS thread (`bun`), the model-host workers (`Worker`: their ORT sessions run on them with one
 * intra-op thread) and the rest (GC, JIT, I/O and sharp pools). Says whether a flow is held up by
 * the main thread or by the workers. Empty where /proc is missing.
 *
 * @example
 * const before = threadCpu(); await work(); const ms = threadCpuSince(before); // { main, workers, other }
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";

export interface ThreadCpu {
  /** CPU ms of the main thread. */
  main: number;
  /** CPU ms of all worker threads. */
  workers: number;
  /** CPU ms of every other thread. */
  other: number;
}

// Clock ticks per second of utime/stime; 100 on Linux (USER_HZ).
const TICK_MS = 10;
const TASKS = "/proc/self/task";

/** CPU ms so far of each live thread, keyed `tid:name` (threads that have exited are not counted). */
export function threadCpu(): Record<string, number> {
  const out: Record<string, number> = {};
  if (!existsSync(TASKS)) return out;
  for (const tid of readdirSync(TASKS)) {
    let stat: string;
    try {
      stat = readFileSync(`${TASKS}/${tid}/stat`, "utf8");
    } catch {
      continue; // the thread exited between listing and reading
    }
    const close = stat.lastIndexOf(")");
    const comm = stat.slice(stat.indexOf("(") + 1, close);
    const f = stat.slice(close + 2).split(" "); // fields from 3 (state) on: utime = 14, stime = 15
    out[`${tid}:${comm}`] = (Number(f[11]) + Number(f[12])) * TICK_MS;
  }
  return out;
}

/** CPU ms per thread kind since `before` (a `threadCpu()` snapshot). */
export function threadCpuSince(before: Record<string, number>): ThreadCpu {
  const now = threadCpu();
  const r: ThreadCpu = { main: 0, workers: 0, other: 0 };
  for (const [key, ms] of Object.entries(now)) {
    const d = ms - (before[key] ?? 0);
    const comm = key.slice(key.indexOf(":") + 1);
    if (Number(key.slice(0, key.indexOf(":"))) === process.pid) r.main += d;
    else if (comm === "Worker") r.workers += d;
    else r.other += d;
  }
  return r;
}
