/**
 * Scheduler benchmarks. Run: `npx bun bench/scheduler.ts [--case clip-image-8-streams|generate-continuous]
 * [--tower tiny|shapes|vit-b32] [--images N] [--max-batch B] [--max-delay-ms D] [--replicas R] [--threads T] [--rounds K]
 * [--prompts P] [--samples N] [--gen-rounds K] [--gen-max-batch B] [--gen-threads T]`
 *
 * clip-image-8-streams: 8 concurrent streams each submit single images (one in flight per
 * stream) to a CLIP-style image tower through the scheduler. ratio = images/s through the
 * scheduler ÷ images/s of unbatched sequential calls, measured in the same run on the same
 * model, the reference given every core (one worker, intraOpThreads = cores).
 *
 * The towers are clipflow's own CLIP image tower (src/models clipVisionGraph) with random
 * weights baked in as initializers, like an HF `vision_model.onnx`: `vit-b32` is CLIP ViT-B/32
 * (224², patch 32, width 768, 12 layers); `shapes` the shapes-world tower (64², patch 8, width
 * 128, 4 layers); `tiny` the CLIP test preset (32², patch 8, width 32, 1 layer).
 * `direct_batched_images_per_s` (back-to-back calls of max_batch images, no scheduler) shows the
 * ceiling batching itself can reach on this machine.
 */
import { availableParallelism } from "node:os";
import type { TensorValue } from "../src/graph/runtime.ts";
import type { BatchedModel } from "../src/scheduler/batched-model.ts";
import { WorkerHost } from "../src/scheduler/model-host.ts";
import { Scheduler } from "../src/scheduler/scheduler.ts";
import { ParamStore } from "../src/graph/params.ts";
import { clipConfig, clipPresets, type ClipConfigInput } from "../src/models/clip-config.ts";
import { CLIP_IO, clipVisionGraph } from "../src/models/clip.ts";
import { Rng } from "../src/util/rng.ts";
import { existsSync } from "node:fs";
import { lvlmPresets } from "../src/models/lvlm-config.ts";
import { loadLvlm } from "../src/models/lvlm-io.ts";
import { LvlmModel } from "../src/models/lvlm-model.ts";
import { WordTokenizer } from "../src/models/word-tokenizer.ts";
import type { Decoder, DecodeOptions, DecodeRequest } from "../src/scheduler/decoder.ts";
import type { Sample } from "../src/models/generate.ts";
import { batchesOf, longestPerBatch, runDrain, runStatic } from "./lib/batching-baselines.ts";
import { CAPTION_PROMPTS } from "../demo/world/captions.ts";
import { worldVocabulary } from "../demo/world/vocabulary.ts";
import { vitFlopsPerImage, type VitConfig } from "../test/scheduler/fixtures/onnx-models.ts";

interface TowerCase {
  tower: string;
  clip: ClipConfigInput;
  images: number; // per stream through the scheduler; the reference runs 8/3× this many
  maxBatch: number;
  maxDelayMs: number;
  replicas: number;
  /** ORT threads per replica (default: cores ÷ replicas). */
  threads?: number;
}

const CORES = Math.max(1, Math.min(availableParallelism(), 2));
const STREAMS = 8;

const tiny = clipPresets.tiny(64);
const cases: TowerCase[] = [
  // One ORT thread: at this size a second (spinning) thread mostly steals the main thread's core.
  { tower: "tiny-clip-image", clip: tiny, images: 150, maxBatch: 8, maxDelayMs: 2, replicas: 1, threads: 1 },
  {
    tower: "shapes-clip-image",
    clip: { ...tiny, vision: { imageSize: 64, patchSize: 8, width: 128, layers: 4, heads: 4, mlp: 512, act: "gelu" }, embedDim: 64 },
    images: 60,
    maxBatch: 4,
    maxDelayMs: 2,
    replicas: CORES,
  },
  { tower: "vit-b32-clip-image", clip: clipPresets.vitB32(), images: 4, maxBatch: 8, maxDelayMs: 4, replicas: 1 },
];

/** The tower's ONNX bytes (random weights baked in) and its shape for FLOP counting. */
function buildTower(raw: ClipConfigInput, seed: number): { bytes: Uint8Array; shape: VitConfig } {
  const cfg = clipConfig(raw);
  const { graph, outputs } = clipVisionGraph(cfg);
  const store = ParamStore.fromSpecs(graph.params(), new Rng(seed));
  const v = cfg.vision;
  const shape = { image: v.imageSize, patch: v.patchSize, width: v.width, layers: v.layers, heads: v.heads, mlp: v.mlp, embed: cfg.embedDim, seed };
  return { bytes: graph.toOnnx({ outputs, bake: store }).bytes, shape };
}

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
  for (let i = 0; i < calls; i++) await host.run("tower", { [CLIP_IO.pixelValues]: batchOf(c, pool, i * batch, batch) });
  return (calls * batch * 1000) / (performance.now() - t0);
}

/** Images/s of STREAMS streams each submitting `images` single images, one in flight each. */
async function scheduled(m: BatchedModel, c: VitConfig, pool: Float32Array[], images: number): Promise<number> {
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: STREAMS }, async (_, k) => {
      for (let i = 0; i < images; i++) await m.run({ [CLIP_IO.pixelValues]: batchOf(c, pool, k * images + i, 1) }, { stream: `s${k}` });
    }),
  );
  return (STREAMS * images * 1000) / (performance.now() - t0);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const args = process.argv.slice(2);
const arg = (flag: string) => (args.indexOf(flag) >= 0 ? args[args.indexOf(flag) + 1] : undefined);
const numArg = (flag: string) => (arg(flag) === undefined ? undefined : Number(arg(flag)));
const ROUNDS = numArg("--rounds") ?? 5;

const only = arg("--case");
for (const tc of only && only !== "clip-image-8-streams" ? [] : cases) {
  if (arg("--tower") && !tc.tower.startsWith(arg("--tower")!)) continue;
  tc.images = numArg("--images") ?? tc.images;
  tc.maxBatch = numArg("--max-batch") ?? tc.maxBatch;
  tc.maxDelayMs = numArg("--max-delay-ms") ?? tc.maxDelayMs;
  tc.replicas = numArg("--replicas") ?? tc.replicas;
  const { bytes, shape: c } = buildTower(tc.clip, 7);
  const pool = imagePool(c, 16);
  // Reference host: one worker with every core; also measures the batching ceiling.
  const ref = new WorkerHost("cpu");
  await ref.load("tower", bytes, { intraOpThreads: CORES });
  const s = new Scheduler();
  const intraOpThreads = numArg("--threads") ?? tc.threads ?? Math.max(1, Math.floor(CORES / tc.replicas));
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

// ---------------------------------------------------------------------------------------------
// generate-continuous: `prompts` images × 5 caption prompts cycled, `samples` samples each, on
// the shapes policy (models/shapes-lvlm when trained, else the same shape with random weights
// whose eos logit is biased so answers stop after a varied number of tokens). Decoders with the
// same options; continuous (all requests submitted, sequences join and leave at every step)
// against the padded-batch baselines of bench/lib/batching-baselines.ts, built from submission
// order (the production decoder only batches continuously): static (classic padded batches:
// every row steps until the batch's longest sequence is done, then the next batch is formed).
// ratio = tokens/s continuous ÷ tokens/s static, median over interleaved rounds. Also: `drain`
// (fixed batches whose finished rows leave at once — a stronger baseline than padding) and
// one-by-one (maxBatch 1, on the first 4 prompts).
// One ORT thread by default: on this shared 2-core machine a second ORT thread contends with the
// main thread (sampling, KV copies) and makes step times erratic.

interface GenCase {
  prompts: number;
  samples: number;
  rounds: number;
  maxBatch: number;
  threads: number;
}

async function shapesPolicy(): Promise<{ lvlm: LvlmModel; policy: string }> {
  if (existsSync("models/shapes-lvlm/config.json")) return { lvlm: await loadLvlm("models/shapes-lvlm"), policy: "models/shapes-lvlm" };
  const tok = WordTokenizer.fromWords(worldVocabulary());
  const lvlm = LvlmModel.create(lvlmPresets.shapesPolicy(tok.vocabSize), tok, 3);
  // eos logit ≈ N(1.2, 1.5²) per position (others ≈ N(0, 0.05)): stop probability varies by
  // sample and step, answers range over 1..maxNewTokens with a mean near 20 tokens.
  const V = lvlm.cfg.lm.vocabSize;
  lvlm.store.require("lm.ln_f.b").data[0] = 0.8;
  lvlm.store.require("lm.head.w").data[0 * V + lvlm.cfg.eosTokenId] = 1.5;
  return { lvlm, policy: "random shapes-policy shape, eos-biased" };
}

async function timeGeneration(gen: Decoder, feats: Float32Array[], count: number, opts: DecodeOptions): Promise<{ tokens: number; seconds: number; lengths: number[] }> {
  const t0 = performance.now();
  const lengths: number[] = [];
  for await (const f of gen.generate(requests(feats, count), opts)) lengths.push(f.nTokens);
  const seconds = (performance.now() - t0) / 1000;
  return { tokens: lengths.reduce((a, b) => a + b, 0), seconds, lengths };
}

function requests(feats: Float32Array[], count: number): DecodeRequest[] {
  return feats.slice(0, count).map((features, i) => ({ features, prompt: CAPTION_PROMPTS[i % CAPTION_PROMPTS.length]!, seed: i }));
}

/** The padded-batch baselines (bench/lib/batching-baselines.ts) on a continuous decoder. */
async function timeBaseline(kind: "static" | "drain", gen: Decoder, batches: DecodeRequest[][], opts: DecodeOptions, longest: number[], stop: number[]): Promise<{ tokens: number; seconds: number; samples: Sample[][] }> {
  const t0 = performance.now();
  const samples = kind === "drain" ? await runDrain(gen, batches, opts) : await runStatic(gen, batches, opts, longest, stop);
  const seconds = (performance.now() - t0) / 1000;
  return { tokens: samples.flat().reduce((a, x) => a + x.nTokens, 0), seconds, samples };
}

async function generateContinuous(gc: GenCase): Promise<Record<string, unknown>> {
  const { lvlm, policy } = await shapesPolicy();
  const s = new Scheduler();
  const common = { maxBatch: gc.maxBatch, maxTokensInFlight: gc.maxBatch * lvlm.cfg.lm.maxPositions, intraOpThreads: gc.threads };
  const cont = s.decoder("continuous", lvlm, common);
  const stat = s.decoder("static", lvlm, common);
  const drain = s.decoder("drain", lvlm, common);
  const one = s.decoder("one-by-one", lvlm, { ...common, maxBatch: 1 });
  await Promise.all([cont.ready, stat.ready, drain.ready, one.ready]);
  const rng = new Rng(11);
  const S = lvlm.cfg.vision.imageSize;
  const feats: Float32Array[] = [];
  for (let i = 0; i < gc.prompts; i++) {
    const px = Float32Array.from({ length: 3 * S * S }, () => rng.normal());
    const out = await cont.vision.run({ pixel_values: { dtype: "float32", dims: [1, 3, S, S], data: px } });
    feats.push(out.image_features!.data as Float32Array);
  }
  const opts: DecodeOptions = { n: gc.samples, maxNewTokens: 48, temperature: 1, topP: 0.95 };
  const stop = [lvlm.cfg.eosTokenId];
  const batches = batchesOf(requests(feats, gc.prompts), gc.samples, gc.maxBatch);
  await timeGeneration(cont, feats, 8, opts); // warm-up: first runs allocate and plan
  // untimed drain run: each batch's longest sample, which the static baseline pads to
  const longest = longestPerBatch(batches, (await timeBaseline("drain", drain, batches, opts, [], stop)).samples);
  await timeBaseline("static", stat, batches.slice(0, 1), opts, longest, stop);
  const c: number[] = [], st: number[] = [], dr: number[] = [], ratios: number[] = [], drainRatios: number[] = [];
  let lengths: number[] = [];
  let tokens = 0;
  for (let r = 0; r < gc.rounds; r++) {
    const a = await timeGeneration(cont, feats, gc.prompts, opts);
    const b = await timeBaseline("static", stat, batches, opts, longest, stop);
    if (a.tokens !== b.tokens) throw new Error(`generate-continuous: continuous made ${a.tokens} tokens, static ${b.tokens} (same seeds)`);
    const d = await timeBaseline("drain", drain, batches, opts, longest, stop);
    if (d.tokens !== a.tokens) throw new Error(`generate-continuous: continuous made ${a.tokens} tokens, drain ${d.tokens} (same seeds)`);
    if (JSON.stringify(b.samples.map((x) => x.map((y) => y.tokens))) !== JSON.stringify(d.samples.map((x) => x.map((y) => y.tokens)))) {
      throw new Error("generate-continuous: static (padded, cut at the stop) and drain tokens differ");
    }
    c.push(a.tokens / a.seconds);
    st.push(b.tokens / b.seconds);
    dr.push(d.tokens / d.seconds);
    ratios.push(c[r]! / st[r]!);
    drainRatios.push(c[r]! / dr[r]!);
    lengths = a.lengths;
    tokens = a.tokens;
  }
  const onePrompts = Math.min(gc.prompts, 4);
  const o = await timeGeneration(one, feats, onePrompts, opts);
  const cs = cont.stats(), ss = stat.stats();
  await s.close();
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  const sorted = [...lengths].sort((x, y) => x - y);
  return {
    case: "generate-continuous",
    ratio: r3(median(ratios)),
    ratios: ratios.map(r3),
    continuous_tokens_per_s: Math.round(median(c)),
    static_tokens_per_s: Math.round(median(st)),
    drain_tokens_per_s: Math.round(median(dr)),
    ratio_vs_drain: r3(median(drainRatios)),
    one_by_one_tokens_per_s: Math.round(o.tokens / o.seconds),
    one_by_one_prompts: onePrompts,
    policy,
    prompts: gc.prompts,
    samples: gc.samples,
    tokens_per_round: tokens,
    answer_tokens_mean: r3(tokens / lengths.length),
    answer_tokens_p10_p50_p90_max: [0.1, 0.5, 0.9].map((q) => sorted[Math.floor(q * (sorted.length - 1))]).concat(sorted[sorted.length - 1]),
    mean_batch_continuous: r3(cs.decodeRows / cs.decodeSteps),
    mean_batch_static: r3(ss.decodeRows / ss.decodeSteps),
    mean_batch_drain: r3(drain.stats().decodeRows / drain.stats().decodeSteps),
    decode_steps_continuous: cs.decodeSteps,
    decode_steps_static: ss.decodeSteps,
    max_batch: gc.maxBatch,
    intra_op_threads: gc.threads,
    rounds: gc.rounds,
  };
}

if (!only || only === "generate-continuous") {
  console.log(
    JSON.stringify(
      await generateContinuous({
        prompts: numArg("--prompts") ?? 256,
        samples: numArg("--samples") ?? 8,
        rounds: numArg("--gen-rounds") ?? 3,
        maxBatch: numArg("--gen-max-batch") ?? 64,
        threads: numArg("--gen-threads") ?? 1,
      }),
    ),
  );
}
