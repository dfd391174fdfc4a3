/**
 * Policy versions through the object store: batches published after `publishPolicy` carry the
 * new version; the worker downloads it between batches and every result records the version it
 * was sampled with. The version here is the shipped policy folder itself, so the results of
 * v1 must equal those of v0 (the downloaded folder is the same model).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { RecordBatch } from "apache-arrow";
import { ClusterCoordinator } from "../../src/cluster/coordinator.ts";
import { clusterSplit } from "../../src/cluster/run-cluster.ts";
import { runWorker } from "../../src/cluster/worker.ts";
import { BUILTIN_MODELS_DIR } from "../../src/pipeline/resources.ts";
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

const texts = (bs: RecordBatch[]): string[] => bs.flatMap((b) => Array.from({ length: b.numRows }, (_, i) => `${b.getChild("id")!.get(i)} ${b.getChild("text")!.get(i)} ${b.getChild("clip_score")!.get(i)}`));

test("a published policy version reaches the workers between batches; results record it", async () => {
  const p = tinyPipeline(tmp("policy"));
  const batches: RecordBatch[] = [];
  for await (const b of sourceBatches(p.stages[0]!.options as never, () => {})) batches.push(b);
  const run = "t-policy";
  const policyRoot = tmp("policy-cache");
  const lines: string[] = [];
  const ac = new AbortController();
  const c = await ClusterCoordinator.start({ servers: srv.url, run, pipeline: p, stages: clusterSplit(p).workerStages, maxInFlight: 2, ackWaitMs: 5000 });
  const worker = runWorker({ servers: srv.url, id: "w1", run, once: true, signal: ac.signal, progressEveryMs: 0, policyDir: policyRoot, log: (l) => lines.push(l) });
  try {
    const a0 = await c.submit(batches[0]!);
    const v = await c.publishPolicy(join(BUILTIN_MODELS_DIR, "shapes-lvlm"));
    expect(v).toBe(1);
    const b1 = await c.submit(batches[1]!);
    const a1 = await c.submit(batches[0]!); // the same images again, sampled with v1
    expect([a0.head.policyVersion, b1.head.policyVersion, a1.head.policyVersion]).toEqual([0, 1, 1]);
    expect(c.report().policyVersions).toEqual({ "0": 1, "1": 2 });
    // same weights under another name: identical samples and scores
    expect(texts(a1.batches)).toEqual(texts(a0.batches));
    expect(lines.filter((l) => /policy version \d ready/.test(l)).map((l) => l.match(/version (\d)/)![1])).toEqual(["0", "1"]);
    // the worker's copy is byte for byte the published folder
    const got = join(policyRoot, run, "v1");
    const src = join(BUILTIN_MODELS_DIR, "shapes-lvlm");
    for (const f of ["config.json", "model.safetensors", ...readdirSync(join(src, "onnx")).map((x) => join("onnx", x))])
      expect(Buffer.compare(readFileSync(join(got, f)), readFileSync(join(src, f)))).toBe(0);
    await c.finish();
  } finally {
    await c.close();
    const t = setTimeout(() => ac.abort(), 5000); // a failed expectation leaves the run open: stop the worker anyway
    const stats = await worker;
    clearTimeout(t);
    expect(stats.policyVersion).toBe(1);
  }
}, 60_000);
