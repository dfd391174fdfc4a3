/**
 * Faults, each against a private nats-server (file storage) and the tiny build-pairs pipeline:
 * a worker killed with SIGKILL mid-batch, the server restarted mid-run, a poison batch that
 * kills every worker that takes it. Pairs are compared, as sorted rows, with the single-process
 * run of the same pipeline.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { runClusterFlow } from "../../src/cluster/run-cluster.ts";
import { readDeadLetter } from "../../src/flow/index.ts";
import { reconcile } from "../../src/pipeline/report.ts";
import { demoSourceBatches as sourceBatches } from "../../demo/stages/index.ts";
import { startNatsServer, type NatsServer } from "./nats-server.ts";
import { readPairs, root, singleProcessPairs, spawnWorker, tinyPipeline, tmp } from "./fixtures.ts";

let srv: NatsServer;
let reference: string[];
beforeAll(async () => {
  srv = await startNatsServer();
  reference = await singleProcessPairs();
}, 120_000);
afterAll(async () => {
  await srv.stop();
});

const faultWorker = join(root, "test/cluster/fault-worker.ts");

describe("cluster faults", () => {
  test("kill -9 a worker mid-batch: its batches are redelivered; same pairs as one process", async () => {
    const out = tmp("kill-worker");
    const p = tinyPipeline(out);
    const run = "t-kill-worker";
    const a = spawnWorker([srv.url, "wA", run, "--hold-ms", "60000"], faultWorker);
    let b: ReturnType<typeof spawnWorker> | null = null;
    try {
      const done = runClusterFlow(p, { servers: srv.url, run, ackWaitMs: 1500, maxDeliver: 4 });
      await a.waitFor(/^hold \w+ delivery 1$/);
      a.proc.kill("SIGKILL");
      await a.proc.exited;
      b = spawnWorker(["--cluster", srv.url, "--id", "wB", "--run", run, "--once", "--progress-ms", "0"]);
      const { flow, cluster } = await done;
      expect(await b.proc.exited).toBe(0);
      expect(await readPairs(join(out, "pairs.parquet"))).toEqual(reference);
      expect(reconcile(flow.stages, flow.deadLettered).balanced).toBe(true);
      expect(flow.deadLettered).toBe(0);
      // every batch answered once, by wB; the one(s) wA held came back as redeliveries
      expect(cluster.workers.map((w) => [w.worker, w.batches])).toEqual([["wB", 4]]);
      expect(cluster.redeliveries).toBeGreaterThanOrEqual(1);
      expect(b.lines.some((l) => l.includes("serving run t-kill-worker"))).toBe(true);
    } finally {
      a.proc.kill("SIGKILL");
      b?.proc.kill("SIGKILL");
    }
  }, 60_000);

  test("batches longer than AckWait are not redelivered: in-progress acks keep them", async () => {
    const out = tmp("slow");
    const p = tinyPipeline(out);
    const run = "t-slow";
    // Each batch is held 2.5 s before it runs: 2.5× AckWait; only working() keeps it with this worker.
    const w = spawnWorker([srv.url, "wSlow", run, "--hold-ms", "2500"], faultWorker);
    try {
      const { cluster } = await runClusterFlow(p, { servers: srv.url, run, ackWaitMs: 1000, maxDeliver: 4 });
      expect(await w.proc.exited).toBe(0);
      expect([cluster.batchesDone, cluster.redeliveries, cluster.duplicateResults, cluster.batchesDeadLettered]).toEqual([4, 0, 0, 0]);
      expect(w.lines.filter((l) => l.startsWith("hold ")).every((l) => l.endsWith("delivery 1"))).toBe(true);
      expect(await readPairs(join(out, "pairs.parquet"))).toEqual(reference);
    } finally {
      w.proc.kill("SIGKILL");
    }
  }, 60_000);

  test("restart nats-server mid-run: the run completes with the same pairs", async () => {
    const out = tmp("restart-server");
    const p = tinyPipeline(out);
    const run = "t-restart";
    // A worker process whose batches take ≥ 0.6 s, so the restart lands with batches left.
    const w = spawnWorker([srv.url, "wR", run, "--hold-ms", "600"], faultWorker);
    let doneAtRestart = -1;
    let restarted = false;
    try {
      const { flow, cluster } = await runClusterFlow(p, {
        servers: srv.url,
        run,
        ackWaitMs: 3000,
        onStart: (_ctx, c) => {
          // Restart once the first batch is answered (the others are queued or running).
          const t = setInterval(() => {
            if (c.report().batchesDone >= 1) {
              clearInterval(t);
              doneAtRestart = c.report().batchesDone;
              void srv.restart().then(() => (restarted = true));
            }
          }, 5);
        },
      });
      expect(await w.proc.exited).toBe(0);
      expect(restarted).toBe(true);
      expect(doneAtRestart).toBeGreaterThanOrEqual(1);
      expect(doneAtRestart).toBeLessThan(4);
      expect(await readPairs(join(out, "pairs.parquet"))).toEqual(reference);
      expect(reconcile(flow.stages, flow.deadLettered).balanced).toBe(true);
      expect([cluster.batchesDone, cluster.batchesDeadLettered]).toEqual([4, 0]);
    } finally {
      w.proc.kill("SIGKILL");
    }
  }, 60_000);

  test("a poison batch that kills its worker every time: dead-lettered after MaxDeliver, the rest completes, counts reconcile", async () => {
    const out = tmp("poison");
    const p = tinyPipeline(out);
    const run = "t-poison";
    // The poison: the third image (second batch of two).
    const ids: string[] = [];
    const src = p.stages[0]!;
    for await (const b of sourceBatches(src.options as never, () => {})) for (let i = 0; i < b.numRows; i++) ids.push(String(b.getChild("id")!.get(i)));
    const poison = ids[2]!;
    const maxDeliver = 2;
    let stop = false;
    const spawned: ReturnType<typeof spawnWorker>[] = [];
    // A supervisor restarting the worker each time it dies (as a cluster manager would).
    const supervise = (async () => {
      let n = 0;
      while (!stop) {
        const w = spawnWorker([srv.url, `w${++n}`, run, "--poison-id", poison], faultWorker);
        spawned.push(w);
        await w.proc.exited;
      }
    })();
    try {
      const { flow, cluster } = await runClusterFlow(p, { servers: srv.url, run, ackWaitMs: 1000, maxDeliver });
      stop = true;
      expect(cluster.batchesDeadLettered).toBe(1);
      expect(cluster.batchesDone).toBe(3);
      const dead = readDeadLetter(join(out, "dead-letter.arrow"));
      expect(dead.map((d) => d.id).sort()).toEqual([ids[2]!, ids[3]!].sort());
      expect(dead[0]!.reason).toContain(`MaxDeliver ${maxDeliver}`);
      expect(dead.map((d) => [d.stage, d.code])).toEqual([["cluster", "max deliveries"], ["cluster", "max deliveries"]]);
      expect(flow.deadLettered).toBe(2);
      const r = reconcile(flow.stages, flow.deadLettered);
      expect(r.balanced).toBe(true);
      expect([r.sourceRows, r.deadLettered]).toEqual([8, 2]);
      // the poison was taken exactly MaxDeliver times, each time by a worker that then died
      expect(spawned.flatMap((w) => w.lines).filter((l) => l.startsWith("poison ")).length).toBe(maxDeliver);
      expect(existsSync(join(out, "pairs.parquet"))).toBe(true);
      // the other images' pairs are the single-process ones
      const got = await readPairs(join(out, "pairs.parquet"));
      expect(got.every((row) => reference.includes(row))).toBe(true);
    } finally {
      stop = true;
      for (const w of spawned) w.proc.kill("SIGKILL");
      await supervise;
    }
  }, 60_000);
});
