/**
 * A cluster run (coordinator + one in-process worker over a private nats-server) writes the
 * same pairs as the single-process run of the same pipeline, and its counts reconcile.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { runClusterFlow } from "../../src/cluster/run-cluster.ts";
import { runWorker } from "../../src/cluster/worker.ts";
import { BUILTIN_MODELS_DIR } from "../../src/pipeline/resources.ts";
import { reconcile } from "../../src/pipeline/report.ts";
import { startNatsServer, type NatsServer } from "./nats-server.ts";
import { readPairs, singleProcessPairs, tinyPipeline, tmp } from "./fixtures.ts";

let srv: NatsServer;
beforeAll(async () => {
  srv = await startNatsServer();
});
afterAll(async () => {
  await srv.stop();
});

describe("cluster run", () => {
  test("coordinator + 1 worker: same pairs as one process; counts reconcile; run cleaned up", async () => {
    const reference = await singleProcessPairs();
    expect(reference.length).toBeGreaterThan(0);
    const out = tmp("one-worker");
    const p = tinyPipeline(out);
    const ac = new AbortController();
    const worker = runWorker({ servers: srv.url, id: "w1", once: true, signal: ac.signal, progressEveryMs: 0 });
    const { flow, cluster } = await runClusterFlow(p, { servers: srv.url, run: "t-one" });
    const stats = await worker;
    expect(await readPairs(join(out, "pairs.parquet"))).toEqual(reference);
    expect(flow.interrupted).toBe(false);
    expect(reconcile(flow.stages, flow.deadLettered).balanced).toBe(true);
    // 8 images in 4 batches, each answered once by w1; 4 candidates per image
    expect([cluster.batchesPublished, cluster.batchesDone, cluster.batchesDeadLettered, cluster.duplicateResults]).toEqual([4, 4, 0, 0]);
    expect(cluster.workers.map((w) => [w.worker, w.batches, w.rowsIn])).toEqual([["w1", 4, 8]]);
    expect(cluster.stageCounts.generate).toMatchObject({ rowsIn: 8, rowsOut: 32, expanded: 24 });
    const clusterStage = flow.stages.find((s) => s.stage === "cluster")!;
    expect([clusterStage.rowsIn, clusterStage.rowsOut]).toEqual([8, cluster.stageCounts.filter!.rowsOut]);
    expect(cluster.workBytes.max).toBeLessThan(1 << 20);
    expect([stats.batches, stats.redelivered, stats.failed]).toEqual([4, 0, 0]);
  }, 120_000);

  test("a policy given as a folder path reaches the workers through the object store (version 1 on every result), same pairs", async () => {
    const reference = await singleProcessPairs();
    const out = tmp("path-policy");
    const p = tinyPipeline(out, [`models.policy={path: ${join(BUILTIN_MODELS_DIR, "shapes-lvlm")}}`]);
    const lines: string[] = [];
    const ac = new AbortController();
    const worker = runWorker({ servers: srv.url, id: "w1", once: true, signal: ac.signal, progressEveryMs: 0, policyDir: tmp("policy-cache"), log: (l) => lines.push(l) });
    const { cluster } = await runClusterFlow(p, { servers: srv.url, run: "t-path-policy" });
    await worker;
    expect(cluster.policyVersions).toEqual({ "1": 4 });
    expect(lines.filter((l) => /policy version \d ready/.test(l)).map((l) => l.match(/version (\d)/)![1])).toEqual(["1"]);
    expect(await readPairs(join(out, "pairs.parquet"))).toEqual(reference);
  }, 120_000);
});
