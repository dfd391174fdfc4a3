/**
 * Scheduler benchmarks. Run: `npx bun bench/scheduler.ts [--tower small|vit-b32] [--images N] [--max-batch B]
 * [--max-delay-ms D] [--replicas R] [--rounds K]`
 *
 * clip-image-8-streams: 8 concurrent streams each submit single images (one in flight per
 * stream) to a CLIP-style image tower through the scheduler. ratio = images/s through the
 * scheduler ÷ images/s of unbatched sequential calls, measured in the same run on the same
 * model, the reference given every core (one worker, intraOpThreads = cores).
 *
 * The towers are stand-ins with random weights built in test/scheduler/fixtures/onnx-models.ts
 * until the models helper ships the CLIP graphs: `vit-b32` has CLIP ViT-B/32's image-tower
 * shapes and FLOPs (224², patch 32, width 768, 12 layers); `small` is a shapes-world-sized tower
 * (64², patch 8, width 128, 4 layers); `tiny` is the vision shape of the CLIP test preset.
 * `direct_batched_images_per_s` (back-to-back calls of max_batch images, no scheduler) shows the
 * ceiling batching itself can reach on this machine.
 */
import { availableParallelism } from "node:os";
import type { TensorValue } from "../src/graph/runtime.ts";
import type { BatchedModel } from "../src/scheduler/batched-model.ts";
import { WorkerHost } from "../src/scheduler/model-host.ts";
import { Scheduler } from "../src/scheduler/scheduler.ts";
import { vitB32, vitFlopsPerImage, vitModel, type VitConfig } from "../test/scheduler/fixtures/onnx-models.ts";

interface TowerCase {
  tower: string;
  cfg: VitConfig;
  images: number; // per stream through the scheduler; the reference runs 8/3× this many
  maxBatch: number;
  maxDelayMs: number;
  replicas: number;
}

const CORES = Math.max(1, Math.min(availableParallelism(), 2));
const STREAMS = 8;

const cases: TowerCase[] = [
  {
    // The models helper's CLIP test preset's vision shape (clipPresets.tiny): per-call overhead dominates.
    tower: "tiny-vit-stand-in",
    cfg: { image: 32, patch: 8, width: 32, layers: 1, heads: 2, mlp: 64, embed: 16, seed: 5 },
    images: 150,
    maxBatch: 8,
    maxDelayMs: 2,
    replicas: 1,
  },
  {
    tower: "small-vit-stand-in",
    cfg: { image: 64, patch: 8, width: 128, layers: 4, heads: 4, mlp: 512, embed: 128, seed: 3 },
    images: 60,
    maxBatch: 4,
    maxDelayMs: 2,
    replicas: CORES,
  },
  { tower: "vit-b32-shaped-random", cfg: vitB32, images: 4, maxBatch: 8, maxDelayMs: 4, replicas: 1 },
];

/** A pool of deterministic images; each call takes a fresh copy (its buffer is transferred). */
function imagePool(c: VitConfig, count: number): Float32Array[] {
  const n = 3 * c.image * c.image;
  return Array.from({ length: count }, (_, k) => {
    const d = new Float32Array(n);
    for (let i = 0; i < n; i++) d[i] = Math.sin(k * 12.9898 + i * 0.001);
    return d;
  });
}

function batchOf(c: VitConfig, pool: Float32Array[], first: number, batch: number): TensorValue {
  const one = pool[0]!.length;
  const d = new Float32Array(batch * one);
  for (let b = 0; b < batch; b++) d.set(pool[(first + b) % pool.length]!, b * one);
  return { dtype: "float32", dims: [batch, 3, c.image, c.image], data: d };
}

/** Images/s of back-to-back calls of `batch` images on one host (batch 1 = the reference). */
async function direct(host: WorkerHost, c: VitConfig, pool: Float32Array[], batch: number, images: number): Promise<number> {
  const calls = Math.max(1, Math.round(images / batch));
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) await host.run("tower", { pixels: batchOf(c, pool, i * batch, batch) });
  return (calls * batch * 1000) / (performance.now() - t0);
}

/** Images/s of STREAMS streams each submitting `images` single images, one in flight each. */
async function scheduled(m: BatchedModel, c: VitConfig, pool: Float32Array[], images: number): Promise<number> {
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: STREAMS }, async (_, k) => {
      for (let i = 0; i < images; i++) await m.run({ pixels: batchOf(c, pool, k * images + i, 1) }, { stream: `s${k}` });
    }),
  );
  return (STREAMS * images * 1000) / (performance.now() - t0);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const args = process.argv.slice(2);
const arg = (flag: string) => (args.indexOf(flag) >= 0 ? args[args.indexOf(flag) + 1] : undefined);
const numArg = (flag: string) => (arg(flag) === undefined ? undefined : Number(arg(flag)));
const ROUNDS = numArg("--rounds") ?? 5;

for (const tc of cases) {
  if (arg("--tower") && !tc.tower.startsWith(arg("--tower")!)) continue;
  tc.images = numArg("--images") ?? tc.images;
  tc.maxBatch = numArg("--max-batch") ?? tc.maxBatch;
  tc.maxDelayMs = numArg("--max-delay-ms") ?? tc.maxDelayMs;
  tc.replicas = numArg("--replicas") ?? tc.replicas;
  const c = tc.cfg;
  const bytes = vitModel(c);
  const pool = imagePool(c, 16);
  // Reference host: one worker with every core; also measures the batching ceiling.
  const ref = new WorkerHost("cpu");
  await ref.load("tower", bytes, { intraOpThreads: CORES });
  const s = new Scheduler();
  const intraOpThreads = Math.max(1, Math.floor(CORES / tc.replicas));
  const m = s.register("clip.image", { model: bytes }, { maxBatch: tc.maxBatch, maxDelayMs: tc.maxDelayMs, replicas: tc.replicas, intraOpThreads });
  await m.ready;
  // Warm-up: first runs allocate and plan.
  await direct(ref, c, pool, 1, 2);
  await direct(ref, c, pool, tc.maxBatch, tc.maxBatch);
  await scheduled(m, c, pool, 1);
  // Interleaved rounds: the machine is shared, so each ratio compares phases seconds apart.
  const seqImages = Math.max(4, Math.round((STREAMS * tc.images) / 3));
  const seq: number[] = [];
  const dir: number[] = [];
  const sch: number[] = [];
  const ratios: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    seq.push(await direct(ref, c, pool, 1, seqImages));
    dir.push(await direct(ref, c, pool, tc.maxBatch, seqImages));
    m.resetStats(); // the line reports the last round's batch and wait figures
    sch.push(await scheduled(m, c, pool, tc.images));
    ratios.push(sch[r]! / seq[r]!);
  }
  const st = m.stats();
  await s.close();
  await ref.terminate();
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  console.log(
    JSON.stringify({
      case: "clip-image-8-streams",
      tower: tc.tower,
      ratio: r3(median(ratios)),
      ratios: ratios.map(r3),
      scheduler_images_per_s: r3(median(sch)),
      sequential_images_per_s: r3(median(seq)),
      // Back-to-back calls of max_batch images, no scheduler: what batching alone reaches here.
      direct_batched_images_per_s: r3(median(dir)),
      batch_fill: r3(st.fillRatio),
      mean_batch: r3(st.meanBatchRows),
      queue_wait_p50_ms: r3(st.queueWaitP50Ms),
      queue_wait_p95_ms: r3(st.queueWaitP95Ms),
      per_stream_images_per_s: Object.values(st.streams).map((v) => Math.round(v.itemsPerSec * 10) / 10),
      streams: STREAMS,
      images_per_stream: tc.images,
      rounds: ROUNDS,
      max_batch: tc.maxBatch,
      max_delay_ms: tc.maxDelayMs,
      replicas: tc.replicas,
      intra_op_threads: intraOpThreads,
      reference_intra_op_threads: CORES,
      gflop_per_image: r3(vitFlopsPerImage(c) / 1e9),
    }),
  );
}
