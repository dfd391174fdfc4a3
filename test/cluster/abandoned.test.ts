/**
 * A coordinator that dies leaves its run "running" in the KV bucket; its heartbeat stops, so an
 * idle worker leaves that run and serves the next one instead of waiting on it forever.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { RecordBatch } from "apache-arrow";
import { ClusterCoordinator } from "../../src/cluster/coordinator.ts";
import { clusterSplit } from "../../src/cluster/run-cluster.ts";
import { runWorker } from "../../src/cluster/worker.ts";
import { demoSourceBatches as sourceBatches } from "../../demo/stages/index.ts";
import { startNatsServer, type NatsServer } from "./nats-server.ts";
import { tinyPipeline, tmp } from "./fixtures.ts";

let srv: NatsServer;
beforeAll(async () => {
  srv = await startNatsServer();
});
afterAll(async () => {
  await srv.stop();
});

test("an abandoned run is left after 6 missed heartbeats; the worker moves on to the next run", async () => {
  const p = tinyPipeline(tmp("abandoned"));
  const batches: RecordBatch[] = [];
  for await (const b of sourceBatches(p.stages[0]!.options as never, () => {})) batches.push(b);
  const stages = clusterSplit(p).workerStages;
  const lines: string[] = [];
  const ac = new AbortController();
  const worker = runWorker({ servers: srv.url, id: "w1", signal: ac.signal, progressEveryMs: 0, log: (l) => lines.push(l) });
  const dump = setTimeout(() => console.error(`abandoned.test: still running after 20 s; worker log so far:\n${lines.join("\n")}`), 20_000);
  try {
    // "a-stale": announced, one batch answered, then the coordinator goes away without finishing.
    const stale = await ClusterCoordinator.start({ servers: srv.url, run: "a-stale", pipeline: p, stages, maxInFlight: 2, heartbeatMs: 500 });
    expect((await stale.submit(batches[0]!)).head.worker).toBe("w1");
    await stale.close();
    // "b-next" starts while the worker still serves "a-stale": it must get there.
    const next = await ClusterCoordinator.start({ servers: srv.url, run: "b-next", pipeline: p, stages, maxInFlight: 2, heartbeatMs: 500 });
    const r = await next.submit(batches[1]!);
    expect([r.head.worker, r.head.rowsIn]).toEqual(["w1", 2]);
    await next.finish();
    await next.close();
    expect(lines.some((l) => l.includes("run a-stale: no heartbeat from its coordinator for 3 s; leaving it"))).toBe(true);
    expect(lines.findIndex((l) => l.includes("serving run b-next"))).toBeGreaterThan(lines.findIndex((l) => l.includes("leaving it")));
  } finally {
    clearTimeout(dump);
    ac.abort();
    const stats = await worker;
    expect([stats.runs, stats.batches]).toEqual([2, 2]);
  }
}, 30_000);
