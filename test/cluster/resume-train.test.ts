/**
 * kill -9 the coordinator of a training run (clip-dpo.yaml on a tiny configuration, its
 * per-image stages on a worker process), then `--resume`: the same pairs and the same training
 * (steps and final loss) as an uninterrupted cluster run.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { startNatsServer, type NatsServer } from "./nats-server.ts";
import { readPairs, root, spawnWorker, tinyCluster, tmp } from "./fixtures.ts";

let srv: NatsServer;
beforeAll(async () => {
  srv = await startNatsServer();
});
afterAll(async () => {
  await srv.stop();
});

const train = ["dpoTrain.batchSize=2", "dpoTrain.epochs=1", "dpoTrain.checkpointEvery=1", "eval=null", "write.path=pairs.parquet"];
const args = (url: string, out: string, resume: boolean) => [
  process.execPath, join(root, "src/pipeline/cli.ts"), "pipelines/clip-dpo.yaml",
  ...[...tinyCluster, ...train].flatMap((o) => ["--set", o]),
  "--cluster", url, "--out", out, "--progress", "off", ...(resume ? ["--resume"] : []),
];
const metrics = (out: string) =>
  existsSync(join(out, "metrics.jsonl"))
    ? readFileSync(join(out, "metrics.jsonl"), "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as { step: number; loss: number })
    : [];

test("kill -9 the coordinator mid-training, then --resume: same pairs and training result as an uninterrupted run", async () => {
  const worker = spawnWorker(["--cluster", srv.url, "--id", "wt", "--progress-ms", "0"]);
  try {
    const full = tmp("train-full"), cut = tmp("train-cut");
    const ref = Bun.spawnSync(args(srv.url, full, false), { cwd: root, stdout: "pipe", stderr: "pipe" });
    expect(ref.exitCode, ref.stderr.toString().slice(-1500)).toBe(0);
    const refSteps = metrics(full);
    expect(refSteps.length).toBeGreaterThanOrEqual(3);

    const p = Bun.spawn(args(srv.url, cut, false), { cwd: root, stdout: "pipe", stderr: "pipe" });
    for (let i = 0; i < 6000 && metrics(cut).length < 2; i++) await Bun.sleep(10);
    p.kill("SIGKILL");
    expect(await p.exited).not.toBe(0);
    expect(metrics(cut).length).toBeLessThan(refSteps.length);

    const again = Bun.spawnSync(args(srv.url, cut, true), { cwd: root, stdout: "pipe", stderr: "pipe" });
    expect(again.exitCode, again.stderr.toString().slice(-1500)).toBe(0);
    const report = JSON.parse(readFileSync(join(cut, "report.json"), "utf8"));
    expect(report.status).toBe("completed");
    expect(report.cluster.batchesReused).toBeGreaterThanOrEqual(1);
    const steps = metrics(cut);
    expect(steps.map((s) => s.step)).toEqual(refSteps.map((s) => s.step));
    expect(steps.at(-1)!.loss).toBe(refSteps.at(-1)!.loss);
    expect(await readPairs(join(cut, "pairs.parquet"))).toEqual(await readPairs(join(full, "pairs.parquet")));
  } finally {
    worker.proc.kill("SIGTERM");
    await worker.proc.exited;
  }
}, 120_000);
