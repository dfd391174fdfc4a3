/**
 * The two roles from the command line: `bun run worker --cluster URL` and
 * `bun run pipeline FILE --cluster URL`; report.json carries the cluster section and the pairs
 * are the single-process ones.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { startNatsServer, type NatsServer } from "./nats-server.ts";
import { readPairs, root, singleProcessPairs, spawnWorker, tinyCluster, tmp } from "./fixtures.ts";

let srv: NatsServer;
beforeAll(async () => {
  srv = await startNatsServer();
});
afterAll(async () => {
  await srv.stop();
});

test("bun run pipeline FILE --cluster URL with a worker process: completed, same pairs, cluster report", async () => {
  const reference = await singleProcessPairs();
  const out = tmp("cli");
  const worker = spawnWorker(["--cluster", srv.url, "--id", "cli-w1", "--progress-ms", "200"]);
  try {
    const p = Bun.spawn([process.execPath, join(root, "src/pipeline/cli.ts"), "pipelines/build-pairs.yaml", ...tinyCluster.flatMap((o) => ["--set", o]), "--cluster", srv.url, "--out", out, "--progress", "off"], { cwd: root, stdout: "pipe", stderr: "pipe" });
    const [code, stderr] = await Promise.all([p.exited, new Response(p.stderr).text()]);
    expect(code, stderr.slice(-1500)).toBe(0);
    const report = JSON.parse(await Bun.file(join(out, "report.json")).text());
    expect([report.status, report.reconciliation.balanced]).toEqual(["completed", true]);
    expect(report.stages.map((s: { stage: string }) => s.stage)).toEqual(["source", "images", "cluster", "pairs", "write", "sink"]);
    expect(report.cluster.batchesDone).toBe(4);
    expect(report.cluster.workers.map((w: { worker: string; batches: number }) => [w.worker, w.batches])).toEqual([["cli-w1", 4]]);
    expect(report.cluster.stageCounts.generate.rowsOut).toBe(32);
    expect(await readPairs(join(out, "pairs.parquet"))).toEqual(reference);
    // write runs in this process: its report hook's figures are in its stage entry
    const write = report.stages.find((s: { stage: string }) => s.stage === "write");
    expect(write.figures).toEqual({ rows: reference.length, path: join(out, "pairs.parquet"), committed: true });
    // the worker said who it is and how it is doing
    await worker.waitFor(/worker cli-w1: run r[0-9a-f]+ ended: 4 batches served/, 10_000);
    expect(worker.lines.some((l) => /worker cli-w1: run r[0-9a-f]+: \d+ batches, \d+ images .*load: \d\/2 batches running, CPU \d+%/.test(l))).toBe(true);
  } finally {
    worker.proc.kill("SIGTERM");
    await worker.proc.exited;
  }
}, 90_000);
