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
 * - `cluster-server-headroom`: work messages/s the server sustains at the measured work message
 *   size (publish with Nats-Msg-Id to a file-storage work-queue stream, then pull + ack) ÷ work
 *   messages/s the 1-worker run needed: how many such workers one server could feed.
 * Also printed: work / result message sizes (bytes) and messages per second through the server.
 * Worker CPU is the process's whole CPU time (Bun reports it once the process exits), so it
 * includes the worker's start-up (imports, connecting) before the clock started.
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

/**
 * What the server itself sustains on this machine: `n` messages of `bytes` each published with
 * Nats-Msg-Id to a file-storage work-queue stream (64 unacked publishes at most), then pulled
 * and acked by one consumer. Messages/s and MB/s of both halves.
 */
async function serverCapacity(url: string, bytes: number, n: number) {
  const { connect } = await import("@nats-io/transport-node");
  const { jetstream, jetstreamManager, RetentionPolicy, StorageType, AckPolicy } = await import("@nats-io/jetstream");
  const nc = await connect({ servers: url });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "BENCH", subjects: ["bench.*"], retention: RetentionPolicy.Workqueue, storage: StorageType.File });
  await jsm.consumers.add("BENCH", { durable_name: "b", ack_policy: AckPolicy.Explicit, max_ack_pending: 1024 });
  const js = jetstream(nc);
  const body = new Uint8Array(bytes).map((_, i) => (i * 2654435761) >>> 24);
  let t0 = performance.now();
  const inflight = new Set<Promise<unknown>>();
  for (let i = 0; i < n; i++) {
    const p = js.publish("bench.work", body, { msgID: `m${i}` }).finally(() => inflight.delete(p));
    inflight.add(p);
    if (inflight.size >= 64) await Promise.race(inflight);
  }
  await Promise.all(inflight);
  const pubS = (performance.now() - t0) / 1000;
  t0 = performance.now();
  const c = await js.consumers.get("BENCH", "b");
  let got = 0;
  while (got < n) {
    const it = await c.fetch({ max_messages: 64, expires: 2000 });
    for await (const m of it) {
      m.ack();
      got++;
    }
  }
  const subS = (performance.now() - t0) / 1000;
  await jsm.streams.delete("BENCH");
  await nc.close();
  return { publishMsgsPerS: n / pubS, publishMBPerS: (n * bytes) / pubS / 1e6, consumeMsgsPerS: n / subS, consumeMBPerS: (n * bytes) / subS / 1e6 };
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
  // Headroom: work messages/s the server takes (publish, then pull + ack, at the measured work
  // message size) ÷ work messages/s the 1-worker run needed.
  const cap = await serverCapacity(srv.url, Math.round(c1.cluster.workBytes.mean), 2000);
  const workPerS = c1.cluster.batchesPublished / c1.wallS;
  const capMsgs = Math.min(cap.publishMsgsPerS, cap.consumeMsgsPerS);
  console.log(JSON.stringify({
    case: "cluster-server-headroom",
    ratio: Number((capMsgs / workPerS).toFixed(1)),
    work_msg_bytes: Math.round(c1.cluster.workBytes.mean),
    publish_msgs_per_s: Math.round(cap.publishMsgsPerS), publish_mb_per_s: Number(cap.publishMBPerS.toFixed(1)),
    consume_ack_msgs_per_s: Math.round(cap.consumeMsgsPerS), consume_mb_per_s: Number(cap.consumeMBPerS.toFixed(1)),
    run_work_msgs_per_s: Number(workPerS.toFixed(2)),
  }));
} finally {
  await srv.stop();
}
