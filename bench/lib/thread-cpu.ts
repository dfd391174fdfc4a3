/**
 * CPU time of this process by kind of thread, and time its threads were runnable but waited for
 * a core (other processes on the machine), from /proc/self/task/<tid>/schedstat (Linux:
 * nanoseconds on a CPU, nanoseconds waiting on a run queue, time slices). Kinds: the main JS
 * thread, the model-host workers (Bun names them `Worker`; their ORT sessions run on them with
 * one intra-op thread) and the rest (GC, JIT, I/O and sharp pools). Says whether a flow is held
 * up by the main thread, by the workers, or by the machine. All zero where /proc is missing.
 *
 * @example
 * const before = threadCpu(); await work(); const t = threadCpuSince(before); // t.run.workers, t.wait.workers
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";

export interface ByThread {
  main: number;
  workers: number;
  other: number;
}

/** Milliseconds on a CPU (`run`) and runnable but waiting for one (`wait`), by thread kind. */
export interface ThreadTimes {
  run: ByThread;
  wait: ByThread;
}

const TASKS = "/proc/self/task";

/**
 * Run and wait ms so far of each live thread, keyed `tid:name` (exited threads are not counted).
 * @example const snap = threadCpu(); // { "4711:bun": { run: 812.5, wait: 40.1 }, "4720:Worker": { ... } }
 */
export function threadCpu(): Record<string, { run: number; wait: number }> {
  const out: Record<string, { run: number; wait: number }> = {};
  if (!existsSync(TASKS)) return out;
  for (const tid of readdirSync(TASKS)) {
    let sched: string, stat: string;
    try {
      sched = readFileSync(`${TASKS}/${tid}/schedstat`, "utf8");
      stat = readFileSync(`${TASKS}/${tid}/stat`, "utf8");
    } catch {
      continue; // the thread exited between listing and reading, or no schedstat
    }
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const [run, wait] = sched.trim().split(/\s+/).map(Number);
    out[`${tid}:${comm}`] = { run: (run ?? 0) / 1e6, wait: (wait ?? 0) / 1e6 };
  }
  return out;
}

/**
 * Run and wait ms by thread kind since `before` (a `threadCpu()` snapshot).
 * @example const { run, wait } = threadCpuSince(snap); const workerCores = run.workers / elapsedMs;
 */
export function threadCpuSince(before: Record<string, { run: number; wait: number }>): ThreadTimes {
  const r: ThreadTimes = { run: { main: 0, workers: 0, other: 0 }, wait: { main: 0, workers: 0, other: 0 } };
  for (const [key, now] of Object.entries(threadCpu())) {
    const then = before[key] ?? { run: 0, wait: 0 };
    const colon = key.indexOf(":");
    const kind: keyof ByThread = Number(key.slice(0, colon)) === process.pid ? "main" : key.slice(colon + 1) === "Worker" ? "workers" : "other";
    r.run[kind] += now.run - then.run;
    r.wait[kind] += now.wait - then.wait;
  }
  return r;
}
