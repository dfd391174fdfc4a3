/**
 * bench/cluster.ts — the per-image stages (decode → generate → clipScore → filter) on NATS
 * JetStream workers vs in one process, same machine, same run (pipelines/build-pairs.yaml with
 * the shipped models; a private nats-server on 127.0.0.1, file storage in a temp dir).
 *
 * - `cluster-overhead`: images/s of the coordinator + 1 worker process over NATS ÷ images/s of
 *   the single-process run of the same pipeline (floor 0.9).
 * - `cluster-2-workers`: images/s with 2 worker processes ÷ with 1. On a 2-core machine expect
 *   about 1: both sides are CPU-bound on the same cores; per-process CPU is printed so the
 *   reason is visible (cores used = CPU s ÷ wall s).
 * Images/s = source images ÷ wall time of the whole run, model loading included on both sides
 * (the worker loads its models when it sees the run, the single process at set-up); worker
 * processes are started and connected before the clock starts, as a standing worker pool is.
 * Each ratio is the median over `--rounds` rounds (single, 1 worker, 2 workers back to back).
 * Also printed: work / result message sizes (bytes) and messages per second through the server.
 *
 *   bun bench/cluster.ts [--images 96] [--batch 16] [--rounds 1]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { runClusterFlow } from "../src/cluster/run-cluster.ts";
import { loadPipeline } from "../src/pipeline/loader.ts";
import { runPipeline } from "../src/pipeline/run.ts";
import { startNatsServer } from "../test/cluster/nats-server.ts";

const { values } = parseArgs({ options: { images: { type: "string", default: "96" }, batch: { type: "string", default: "16" }, rounds: { type: "string", default: "1" } } });
const images = Number(values.images), batch = Number(values.batch), rounds = Number(values.rounds);
const root = resolve(import.meta.dir, "..");
const overrides = [`stages.source.count=${images}`, `stages.source.batchSize=${batch}`, "flow.maxInFlight=4"];
const cpuS = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1e6;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function single(): Promise<{ ips: number; wallS: number; cpuS: number }> {
  const out = mkdtempSync(join(tmpdir(), "clipflow-bench-single-"));
  const p = loadPipeline("pipelines/build-pairs.yaml", { cwd: root, overrides, outDir: out });
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const { report } = await runPipeline(p, { command: "bench", resumeCommand: "bench" });
  const wallS = (performance.now() - t0) / 1000;
  if (report.status !== "completed") throw new Error(`single-process run: ${report.status} ${report.error}`);
  rmSync(out, { recursive: true, force: true });
  return { ips: images / wallS, wallS, cpuS: cpuS(process.cpuUsage(c0)) };
}

async function cluster(url: string, workers: number, run: string) {
  const out = mkdtempSync(join(tmpdir(), "clipflow-bench-cluster-"));
  const p = loadPipeline("pipelines/build-pairs.yaml", { cwd: root, overrides, outDir: out });
  // Workers are up and connected before the clock starts (a worker pool waits for runs); each
  // loads its models when it sees the run, inside the timed part, as the single process does.
  const procs = Array.from({ length: workers }, (_, i) =>
    Bun.spawn([process.execPath, join(root, "src/cluster/worker-cli.ts"), "--cluster", url, "--id", `w${i + 1}`, "--run", run, "--once", "--progress-ms", "0"], { cwd: root, stdout: "ignore", stderr: "pipe" }),
  );
  await Promise.all(procs.map(async (w) => {
    const dec = new TextDecoder();
    let text = "";
    for await (const chunk of w.stderr) {
      text += dec.decode(chunk, { stream: true });
      if (text.includes("connected to")) break;
    }
    // keep draining so the worker never blocks on a full pipe
    void (async () => { try { for await (const _ of w.stderr) void _; } catch { /* closed */ } })();
  }));
  const cpuBefore = procs.map((w) => Number(w.resourceUsage()?.cpuTime.total ?? 0));
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const { flow, cluster } = await runClusterFlow(p, { servers: url, run });
  const wallS = (performance.now() - t0) / 1000;
  const coordCpuS = cpuS(process.cpuUsage(c0));
  const workerCpuS: number[] = [];
  for (const [i, w] of procs.entries()) {
    await w.exited;
    const ru = w.resourceUsage();
    workerCpuS.push(ru ? (Number(ru.cpuTime.total) - cpuBefore[i]!) / 1e6 : NaN);
  }
  rmSync(out, { recursive: true, force: true });
  if (flow.interrupted) throw new Error("cluster run interrupted");
  const msgs = cluster.batchesPublished * 2;
  return { ips: images / wallS, wallS, coordCpuS, workerCpuS, cluster, msgsPerS: msgs / wallS };
}

const srv = await startNatsServer();
try {
  const over: number[] = [], two: number[] = [];
  let last: Record<string, unknown> = {};
  for (let r = 0; r < rounds; r++) {
    const s = await single();
    const c1 = await cluster(srv.url, 1, `bench1-${r}`);
    const c2 = await cluster(srv.url, 2, `bench2-${r}`);
    over.push(c1.ips / s.ips);
    two.push(c2.ips / c1.ips);
    last = { s, c1, c2 };
    console.error(`round ${r + 1}: single ${s.ips.toFixed(2)} img/s, 1 worker ${c1.ips.toFixed(2)}, 2 workers ${c2.ips.toFixed(2)}`);
  }
  const { s, c1, c2 } = last as { s: Awaited<ReturnType<typeof single>>; c1: Awaited<ReturnType<typeof cluster>>; c2: Awaited<ReturnType<typeof cluster>> };
  const cores = (cpu: number, wall: number) => Number((cpu / wall).toFixed(2));
  console.log(JSON.stringify({
    case: "cluster-overhead",
    ratio: Number(median(over).toFixed(3)),
    images, batch, rounds,
    single_images_per_s: Number(s.ips.toFixed(2)), single_wall_s: Number(s.wallS.toFixed(2)), single_cores_used: cores(s.cpuS, s.wallS),
    cluster1_images_per_s: Number(c1.ips.toFixed(2)), cluster1_wall_s: Number(c1.wallS.toFixed(2)),
    coordinator_cpu_s: Number(c1.coordCpuS.toFixed(2)), worker_cpu_s: c1.workerCpuS.map((x) => Number(x.toFixed(2))),
    work_bytes: c1.cluster.workBytes, result_bytes: c1.cluster.resultBytes, server_msgs_per_s: Number(c1.msgsPerS.toFixed(2)),
  }));
  console.log(JSON.stringify({
    case: "cluster-2-workers",
    ratio: Number(median(two).toFixed(3)),
    images, batch, rounds,
    cluster1_images_per_s: Number(c1.ips.toFixed(2)), cluster2_images_per_s: Number(c2.ips.toFixed(2)), cluster2_wall_s: Number(c2.wallS.toFixed(2)),
    cores_used_1_worker: cores(c1.coordCpuS + c1.workerCpuS.reduce((a, b) => a + b, 0), c1.wallS),
    cores_used_2_workers: cores(c2.coordCpuS + c2.workerCpuS.reduce((a, b) => a + b, 0), c2.wallS),
    coordinator_cpu_s: Number(c2.coordCpuS.toFixed(2)), worker_cpu_s: c2.workerCpuS.map((x) => Number(x.toFixed(2))),
    batches_per_worker: c2.cluster.workers.map((w) => [w.worker, w.batches]),
    machine_cores: navigator.hardwareConcurrency,
  }));
} finally {
  await srv.stop();
}
