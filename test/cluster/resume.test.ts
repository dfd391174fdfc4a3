/**
 * kill -9 the coordinator mid-run, then run it again with --resume on the same run id: results
 * already in the results stream are reused (not recomputed), and the final pairs are the
 * single-process pairs.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { runWorker } from "../../src/cluster/worker.ts";
import { startNatsServer, type NatsServer } from "./nats-server.ts";
import { readPairs, root, singleProcessPairs, spawnWorker, tmp } from "./fixtures.ts";

let srv: NatsServer;
beforeAll(async () => {
  srv = await startNatsServer();
});
afterAll(async () => {
  await srv.stop();
});

const script = join(root, "test/cluster/coordinator-script.ts");

test("kill -9 the coordinator, then --resume: results reused, same pairs as one process", async () => {
  const reference = await singleProcessPairs();
  const out = tmp("resume");
  const run = "t-resume";
  const ac = new AbortController();
  // The worker outlives the first coordinator and serves the resumed one (the run stays "running").
  const worker = runWorker({ servers: srv.url, id: "w1", run, once: true, signal: ac.signal, progressEveryMs: 0 });
  try {
    const first = spawnWorker([srv.url, run, out, "pipelines/build-pairs.yaml"], script);
    await first.waitFor(/^batches done 2$/);
    first.proc.kill("SIGKILL");
    expect(await first.proc.exited).not.toBe(0);

    const again = spawnWorker([srv.url, run, out, "pipelines/build-pairs.yaml", "--resume"], script);
    expect(await again.proc.exited).toBe(0);
    const r = JSON.parse(await new Response(again.proc.stdout).text()) as { interrupted: boolean; cluster: { batchesReused: number; batchesDone: number; batchesDeadLettered: number } };
    expect(r.interrupted).toBe(false);
    expect(r.cluster.batchesDone).toBe(4);
    expect(r.cluster.batchesReused).toBeGreaterThanOrEqual(2);
    expect(r.cluster.batchesDeadLettered).toBe(0);
    expect(await readPairs(join(out, "pairs.parquet"))).toEqual(reference);
    const stats = await worker;
    // every batch computed once by the worker: the resumed coordinator recomputed nothing
    expect(stats.batches).toBe(4);
  } finally {
    ac.abort();
  }
}, 60_000);
