/**
 * A worker process for the fault tests: the real runWorker with fault injection.
 *   bun test/cluster/fault-worker.ts URL ID RUN [--hold-ms N] [--poison-id IMAGE]
 * --hold-ms: before each batch, print "hold <batch> delivery <d>" and wait N ms (so a test
 *   can kill -9 the process while it holds the batch unacked);
 * --poison-id: a batch containing that image id kills this process (SIGKILL) every time.
 */
import { runWorker } from "../../src/cluster/worker.ts";

const [url, id, run, ...rest] = process.argv.slice(2);
if (!url || !id || !run) {
  console.error("usage: fault-worker.ts URL ID RUN [--hold-ms N] [--poison-id IMAGE]");
  process.exit(2);
}
const opt = (name: string): string | undefined => {
  const i = rest.indexOf(name);
  return i >= 0 ? rest[i + 1] : undefined;
};
const holdMs = Number(opt("--hold-ms") ?? "0");
const poison = opt("--poison-id");
const ac = new AbortController();
process.on("SIGTERM", () => ac.abort());
await runWorker({
  servers: url,
  id,
  run,
  once: true,
  signal: ac.signal,
  progressEveryMs: 0,
  log: (l) => console.error(l),
  beforeBatch: async ({ batch, delivery, ids }) => {
    if (poison !== undefined && ids.includes(poison)) {
      console.error(`poison ${batch} delivery ${delivery}`);
      process.kill(process.pid, "SIGKILL");
    }
    if (holdMs > 0) {
      console.error(`hold ${batch} delivery ${delivery}`);
      await Bun.sleep(holdMs);
    }
  },
});
process.exit(0);
