/**
 * bench/pairs.ts — the preference-data half of CLIP-DPO, streaming vs stage by stage, and one vs
 * four flows sharing a scheduler: source → decode → generate → clipScore → filter → pairs on the
 * shipped tiny models (shapes-clip scores, the shapes-world policy captions).
 *
 * - `pairs-overlap`: images/s of the streaming flow ÷ images/s implied by running each stage
 *   alone, one after the other, over the same images: the source renders every image and the
 *   batches are kept, then decode runs over all of them and its output is kept, then generate,
 *   and so on; the reference time is the sum of the stage times. Same scheduler, same models,
 *   same batch / in-flight / decoder settings in both.
 * - `pairs-4-streams`: total images/s of 4 flows at once on one scheduler (each its own stages,
 *   image store and scheduler streams; one shared CLIP and one shared decoder) ÷ images/s of
 *   one flow (the streaming run of the same round).
 * Each ratio is the median of per-round ratios over `--rounds` rounds (each round: one flow,
 * stage by stage, four flows, back to back, so slow phases of the shared machine hit both sides).
 *
 * Also printed, to say where the time goes: the stage-alone times, per-executor utilisation
 * (wall time a worker has a call outstanding ÷ elapsed; bench/lib/busy-host.ts), busy time per
 * ONNX session, cores used as "total = main thread + workers + other threads"
 * (bench/lib/thread-cpu.ts), CPU ms per image on both sides of each ratio (`cpu_per_image_ratio`:
 * the part of a gain that is less work rather than more cores in use), the machine's load
 * average, the decoder's fill (rows per decode step ÷ maxBatch, prompts per prefill call) and
 * the batch fill of the policy's vision model and of both CLIP towers.
 *
 * `--cases cost` adds `pairs-batch-cost` (see batchCost): CPU per row of each model by batch size.
 *
 * And the ceilings, since every heavy stage is CPU-bound on the same cores (ratio =
 * cpu_per_image_ratio × cores_ratio, and no flow can use more than the machine's cores):
 * `overlap_ceiling_all_cores` and `four_ceiling_all_cores` are the ratios had the streaming side
 * kept every core busy all the time at its measured CPU per image. Also the threads runnable on
 * average in each phase (schedstat run + run-queue wait ÷ wall; above the core count = the phase
 * alone already asks for every core, though the wait includes waiting behind other processes).
 *
 * Settings (defaults): 48 images per flow in source batches of 8, the 5 caption prompts × 4
 * samples at temperature 1 / top-p 0.95, ≤ 32 new tokens; 8 batches in flight per flow and 4
 * input batches generating at once (more than the operator's default 2: the next batches'
 * prompts keep the decode lanes full while a batch's last samples finish); 2 workers with one
 * ORT thread each shared by every model (the machine has 2 cores); CLIP maxBatch 64 and decoder
 * maxBatch 64 per lane with a KV budget of a full row per sequence, maxDelayMs 4.
 *
 * Policy: models/shapes-lvlm when shipped, else random weights of the same shape (samples then mostly run to maxNewTokens);
 * `--policy DIR` picks one, `--random` forces the random one. The JSON line's `policy` says
 * which ran.
 *
 * Run: npx bun bench/pairs.ts [--images 48] [--rounds 5] [--batch 8] [--samples 4]
 *        [--max-new-tokens 32] [--in-flight 8] [--gen-concurrency 4] [--decoder-batch 64]
 *        [--max-tokens N] [--workers 2] [--decoder-replicas N] [--policy DIR | --random]
 *        [--cases overlap,four[,cost]]
 */
import { existsSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { join } from "node:path";
import type { RecordBatch } from "apache-arrow";
import { runFlow, type FlowOperator } from "../src/flow/index.ts";
import { ImageStore } from "../src/io/image-store.ts";
import { loadLvlm } from "../src/models/lvlm-io.ts";
import { lvlmPresets } from "../src/models/lvlm-config.ts";
import { LvlmModel } from "../src/models/lvlm-model.ts";
import { WordTokenizer } from "../src/models/word-tokenizer.ts";
import { createSession, runSession, type TensorValue } from "../src/graph/runtime.ts";
import { imageTokens } from "../src/models/lvlm-config.ts";
import { LVLM_IO, lvlmDecodeGraph, lvlmPrefillGraph, lvlmVisionGraph } from "../src/models/lvlm.ts";
import { Scheduler } from "../src/scheduler/scheduler.ts";
import { CAPTION_PROMPTS } from "../demo/world/captions.ts";
import { worldVocabulary } from "../demo/world/index.ts";
import { clipScore, decode, filterCandidates as filter, pairCandidates as pairs, ScheduledClip } from "../operators/index.ts";
import { generateCandidates as generate } from "../operators/generate.ts";
import { shapesWorldBatches } from "../demo/stages/index.ts";
import { BusyMeter, type BusySnapshot } from "./lib/busy-host.ts";
import { threadCpu, threadCpuSince } from "./lib/thread-cpu.ts";

const argv = process.argv;
const arg = (name: string, dflt: number): number => {
  const i = argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(argv[i + 1]) : dflt;
  if (!Number.isInteger(v) || v < 1) throw new Error(`bench/pairs: --${name} expects a positive integer (got ${i >= 0 ? argv[i + 1] : v})`);
  return v;
};
const IMAGES = arg("images", 48);
const ROUNDS = arg("rounds", 5);
const BATCH = arg("batch", 8);
const SAMPLES = arg("samples", 4);
const MAX_NEW = arg("max-new-tokens", 32);
const IN_FLIGHT = arg("in-flight", 8);
const DEC_BATCH = arg("decoder-batch", 64);
const GEN_CONCURRENCY = arg("gen-concurrency", 4);
const CASES = (argv.includes("--cases") ? argv[argv.indexOf("--cases") + 1] ?? "" : "overlap,four").split(",");
const STREAMS = 4;
const WORKERS = arg("workers", 2); // CLIP replicas; default = the machine's 2 cores; one ORT thread each
// Decoder lanes = replicas, each on its own executor (worker); more lanes than cores lets one lane
// run while another samples its step on the main thread (the executor is held meanwhile).
const DEC_REPLICAS = arg("decoder-replicas", WORKERS);
const EXECUTORS = Math.max(WORKERS, DEC_REPLICAS);
const CLIP_BATCH = 64;
const DELAY_MS = 4;
const ROOT = join(import.meta.dir, "..");

// ---- models ---------------------------------------------------------------------------------

const meter = new BusyMeter();
const sched = new Scheduler({ createHost: meter.createHost });
const clipDir = join(ROOT, "models", "shapes-clip");
if (!existsSync(join(clipDir, "config.json"))) throw new Error(`bench/pairs: ${clipDir} is missing (train it with pipelines/pretrain-clip.yaml)`);
const clip = await ScheduledClip.fromDir(sched, clipDir, "clip", { maxBatch: CLIP_BATCH, maxDelayMs: DELAY_MS, replicas: WORKERS });

async function policy(): Promise<{ model: LvlmModel; source: string }> {
  const at = argv.indexOf("--policy");
  if (at > 0) {
    const dir = argv[at + 1];
    if (!dir) throw new Error("bench/pairs: --policy needs a folder");
    return { model: await loadLvlm(dir), source: dir };
  }
  for (const dir of argv.includes("--random") ? [] : [join(ROOT, "models", "shapes-lvlm")]) {
    if (existsSync(join(dir, "config.json"))) return { model: await loadLvlm(dir), source: "models/shapes-lvlm" };
  }
  // The shape pipelines/sft-policy.yaml trains: the shapes-clip ViT, LM width 128 × 3 layers.
  const tok = WordTokenizer.fromWords(worldVocabulary());
  const cfg = lvlmPresets.shapesPolicy(tok.vocabSize);
  return { model: LvlmModel.create({ ...cfg, lm: { ...cfg.lm, layers: 3 } }, tok, 0), source: "random weights, shapes-lvlm shape" };
}
const { model: lvlm, source: policySource } = await policy();
// Every admitted sample may reserve a full KV row (image tokens + prompt + answer ≤ maxPositions),
// so the token budget lets both lanes fill up (--max-tokens overrides it).
const TOKENS = arg("max-tokens", DEC_REPLICAS * DEC_BATCH * lvlm.cfg.lm.maxPositions);
const decoder = sched.decoder("policy", lvlm, { maxBatch: DEC_BATCH, maxTokensInFlight: TOKENS, replicas: DEC_REPLICAS, intraOpThreads: 1, vision: { maxBatch: 32, maxDelayMs: DELAY_MS } });
await decoder.ready;

// ---- the flow -------------------------------------------------------------------------------

const stagesOf = (store: ImageStore, tag: string): FlowOperator[] => [
  decode({ preprocess: clip.preprocess, store, name: `decode${tag}` }),
  generate({ decoder, name: `generate${tag}`, concurrency: GEN_CONCURRENCY, prompts: [...CAPTION_PROMPTS], samples: SAMPLES, temperature: 1, topP: 0.95, maxNewTokens: MAX_NEW, seed: 0 }),
  clipScore({ clip, store, name: `clipScore${tag}`, sentences: true }),
  filter({ minScore: 20, maxWords: 40, dropTextImages: true, clip, store, name: `filter${tag}` }),
  pairs({ minMargin: 2, maxPairsPerImage: 2, maxLengthRatio: 1.5, strategy: "best-vs-worst", name: `pairs${tag}` }),
];

const src = (seed: number, count = IMAGES) => shapesWorldBatches({ kind: "shapes-world", split: "dpo", count, seed, batchSize: BATCH });

interface Probe {
  t0: number;
  cpu: NodeJS.CpuUsage;
  busy: BusySnapshot;
  models: ReturnType<Scheduler["stats"]>["models"];
  dec: ReturnType<typeof decoder.stats>;
  threads: ReturnType<typeof threadCpu>;
}
const probe = (): Probe => ({ t0: performance.now(), cpu: process.cpuUsage(), threads: threadCpu(), busy: meter.snapshot(), models: sched.stats().models, dec: decoder.stats() });

type Use = ReturnType<typeof usage>;

/** What happened on the machine since `p`: wall ms, cores used, executor utilisation, fills. */
function usage(p: Probe) {
  const ms = performance.now() - p.t0;
  const cpu = process.cpuUsage(p.cpu);
  const busy = meter.since(p.busy);
  const models = sched.stats().models;
  const dec = decoder.stats();
  const rows = (m: string) => {
    const a = models[m]!, b = p.models[m]!;
    return (a.items - b.items) / Math.max(1, a.batches - b.batches);
  };
  const steps = dec.decodeSteps - p.dec.decodeSteps;
  const th = threadCpuSince(p.threads);
  return {
    ms,
    cpuMs: (cpu.user + cpu.system) / 1000,
    cores: (cpu.user + cpu.system) / 1000 / ms,
    /** Cores used by the main thread / the workers / other threads. */
    mainCores: th.run.main / ms,
    workerCores: th.run.workers / ms,
    otherCores: th.run.other / ms,
    /** Share of the wall time the workers (on average) were runnable but waiting for a core. */
    workerWait: th.wait.workers / (EXECUTORS * ms),
    mainWait: th.wait.main / ms,
    /**
     * This process's threads runnable on average (on a CPU, or ready and waiting for one, behind
     * this process's other threads or other processes): what the phase asks of the cores.
     */
    runnable: (th.run.main + th.run.workers + th.run.other + th.wait.main + th.wait.workers + th.wait.other) / ms,
    util: Object.values(busy.executors).reduce((a, b) => a + b, 0) / (EXECUTORS * ms),
    sessions: busy.sessions,
    /** Mean idle ms of an executor after a call of each session, before its next call. */
    gapAfterMs: Object.fromEntries(Object.entries(busy.gapsAfter).map(([k, v]) => [k, v / Math.max(1, busy.calls[k] ?? 0)])),
    /** Mean ms per call of each session (call outstanding: message, ORT run, reply). */
    callMs: Object.fromEntries(Object.entries(busy.sessions).map(([k, v]) => [k, v / Math.max(1, busy.calls[k] ?? 0)])),
    clipImageRows: rows("clip.image"),
    clipTextRows: rows("clip.text"),
    visionRows: rows("policy.vision"),
    decodeRows: (dec.decodeRows - p.dec.decodeRows) / Math.max(1, steps),
    prefillPrompts: (dec.prefillPrompts - p.dec.prefillPrompts) / Math.max(1, dec.prefillCalls - p.dec.prefillCalls),
    tokens: dec.tokens - p.dec.tokens,
  };
}

/** One streaming flow over `count` images. */
async function streaming(seed: number, tag = "", count = IMAGES): Promise<{ ms: number; pairs: number; candidates: number; deadLettered: number }> {
  const store = new ImageStore();
  let made = 0;
  const t0 = performance.now();
  const report = await runFlow({ source: src(seed, count), stages: stagesOf(store, tag), sink: (b) => void (made += b.numRows), maxInFlight: IN_FLIGHT, onError: "skip", handleSigint: false });
  const ms = performance.now() - t0;
  const gen = report.stages.find((s) => s.stage === `generate${tag}`);
  return { ms, pairs: made, candidates: gen?.rowsOut ?? 0, deadLettered: report.deadLettered };
}

/** Each stage alone over all the images, one after the other (outputs kept in memory between stages). */
async function stageByStage(seed: number): Promise<{ ms: number; cpuMs: number; use: Record<string, Use>; pairs: number }> {
  const store = new ImageStore();
  let data: RecordBatch[] = [];
  const use: Record<string, Use> = {};
  let p = probe();
  for await (const b of src(seed)) data.push(b); // the source alone (scene rendering + PNG encoding)
  use.source = usage(p);
  for (const st of stagesOf(store, "-seq")) {
    const out: RecordBatch[] = [];
    p = probe();
    await runFlow({ source: data, stages: [st], sink: (b) => void out.push(b), maxInFlight: IN_FLIGHT, onError: "skip", handleSigint: false });
    use[st.stageName.replace(/-seq$/, "")] = usage(p);
    data = out;
  }
  const ms = Object.values(use).reduce((a, u) => a + u.ms, 0);
  const cpuMs = Object.values(use).reduce((a, u) => a + u.cpuMs, 0);
  return { ms, cpuMs, use, pairs: data.reduce((a, b) => a + b.numRows, 0) };
}

const CORES = availableParallelism();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const r1 = (x: number) => Math.round(x * 10) / 10;
const r2 = (x: number) => Math.round(x * 100) / 100;
const r3 = (x: number) => Math.round(x * 1000) / 1000;
const round = (o: Record<string, number>, f = Math.round) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v)]));
const pick = <T, R>(o: Record<string, T>, f: (v: T) => R) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v)]));
/** "total = main + workers + other" cores. */
const cores = (u: Use) => `${r2(u.cores)} = ${r2(u.mainCores)} + ${r2(u.workerCores)} + ${r2(u.otherCores)}`;

await streaming(99, "-warm", 2 * BATCH); // warm-up: workers, sessions, sharp, JIT

interface Round {
  stream: number;
  useOne: Use;
  pairs: number;
  candidates: number;
  deadLettered: number;
  seq?: { ips: number; ms: number; cpuMs: number; use: Record<string, Use>; pairs: number };
  four?: { ips: number; use: Use };
  /** 1-minute load average of the machine after the round. */
  load: number;
}
const rounds: Round[] = [];
const doOverlap = CASES.includes("overlap"), doFour = CASES.includes("four");
for (let r = 0; r < ROUNDS; r++) {
  let p = probe();
  const s = await streaming(r + 1);
  const round: Round = { stream: IMAGES / (s.ms / 1000), useOne: usage(p), pairs: s.pairs, candidates: s.candidates, deadLettered: s.deadLettered, load: 0 };
  let line = `round ${r + 1}/${ROUNDS}: one flow ${r2(s.ms / 1000)} s`;
  if (doOverlap) {
    const q = await stageByStage(r + 1);
    round.seq = { ips: IMAGES / (q.ms / 1000), ...q };
    line += `, stage by stage ${r2(q.ms / 1000)} s`;
  }
  if (doFour) {
    p = probe();
    await Promise.all(Array.from({ length: STREAMS }, (_, k) => streaming(100 * (r + 1) + k, `-${k}`)));
    const use = usage(p);
    round.four = { ips: (STREAMS * IMAGES) / (use.ms / 1000), use };
    line += `, ${STREAMS} flows ${r2(use.ms / 1000)} s`;
  }
  round.load = loadavg()[0]!;
  rounds.push(round);
  console.error(`${line} (load average ${r2(round.load)})`);
}

const last = rounds.at(-1)!;
const settings = {
  images: IMAGES, batch: BATCH, prompts: CAPTION_PROMPTS.length, samples: SAMPLES, max_new_tokens: MAX_NEW, temperature: 1, top_p: 0.95,
  max_in_flight: IN_FLIGHT, gen_concurrency: GEN_CONCURRENCY, workers: EXECUTORS, clip_replicas: WORKERS, decoder_replicas: DEC_REPLICAS, decoder_max_batch: DEC_BATCH, max_tokens_in_flight: TOKENS,
  clip_max_batch: CLIP_BATCH, max_delay_ms: DELAY_MS, rounds: ROUNDS,
  machine_cores: CORES, load_average: r2(median(rounds.map((o) => o.load))),
};
const one = last.useOne;
if (doOverlap) {
  const overlap = rounds.map((o) => o.stream / o.seq!.ips);
  const seq = last.seq!;
  console.log(JSON.stringify({
    case: "pairs-overlap",
    ratio: r3(median(overlap)),
    round_ratios: overlap.map(r3),
    streaming_images_per_s: r2(median(rounds.map((o) => o.stream))),
    stage_by_stage_images_per_s: r2(median(rounds.map((o) => o.seq!.ips))),
    // ratio = cpu_per_image_ratio × cores_ratio: less CPU work per image (batching) × more cores kept busy (overlap)
    cpu_per_image_ratio: r3(median(rounds.map((o) => o.seq!.cpuMs / o.useOne.cpuMs))),
    cores_ratio: r3(median(rounds.map((o) => o.useOne.cores / (o.seq!.cpuMs / o.seq!.ms)))),
    streaming_cpu_ms_per_image: r1(median(rounds.map((o) => o.useOne.cpuMs / IMAGES))),
    stage_by_stage_cpu_ms_per_image: r1(median(rounds.map((o) => o.seq!.cpuMs / IMAGES))),
    stage_by_stage_cores: r2(median(rounds.map((o) => o.seq!.cpuMs / o.seq!.ms))),
    candidates_per_run: last.candidates,
    tokens_per_candidate: r1(one.tokens / Math.max(1, last.candidates)),
    pairs_per_run: last.pairs,
    dead_lettered_per_run: last.deadLettered, // rows set aside under onError: skip (e.g. an empty caption)
    pairs_stage_by_stage: seq.pairs, // same images and seeds: equal unless a float tie sits at the margin
    // the ratio if the streaming flow had kept every core of the machine busy all the time at its
    // measured CPU per image (an upper bound: cpu_per_image_ratio × machine cores ÷ stage_by_stage_cores)
    overlap_ceiling_all_cores: r3(median(rounds.map((o) => (o.seq!.cpuMs / o.useOne.cpuMs) * (CORES / (o.seq!.cpuMs / o.seq!.ms))))),
    stage_alone_ms_last_round: pick(seq.use, (u) => Math.round(u.ms)),
    stage_alone_cpu_ms_last_round: pick(seq.use, (u) => Math.round(u.cpuMs)),
    // threads runnable on average while the stage ran alone (≥ the core count: it alone asks for every core)
    stage_alone_runnable_threads_last_round: pick(seq.use, (u) => r2(u.runnable)),
    streaming_runnable_threads: r2(one.runnable),
    decode_rows_per_step_generate_alone: r1(seq.use.generate!.decodeRows),
    decode_rows_per_step_streaming: r1(one.decodeRows),
    stage_alone_worker_util_last_round: pick(seq.use, (u) => r2(u.util)),
    stage_alone_worker_cpu_wait_last_round: pick(seq.use, (u) => r2(u.workerWait)),
    // cores used while the stage ran alone: main thread / workers / other threads
    stage_alone_cores_last_round: pick(seq.use, cores),
    generate_alone_mean_call_ms: round(seq.use.generate!.callMs, r2),
    generate_alone_mean_gap_after_call_ms: round(seq.use.generate!.gapAfterMs, r2),
    streaming_ms_last_round: Math.round(one.ms),
    streaming_worker_util: r2(one.util),
    streaming_cores: cores(one),
    // share of the wall time a worker / the main thread was runnable but had no core (other processes)
    streaming_worker_cpu_wait: r2(one.workerWait), streaming_main_cpu_wait: r2(one.mainWait),
    streaming_session_busy_ms: round(one.sessions),
    streaming_mean_call_ms: round(one.callMs, r2),
    // executor idle after a call of the session, before its next call (main-thread work on the outputs, or nothing ready)
    streaming_mean_gap_after_call_ms: round(one.gapAfterMs, r2),
    policy: policySource,
    ...settings,
  }));
}
if (doFour) {
  const four = rounds.map((o) => o.four!.ips / o.stream);
  const f = last.four!.use;
  console.log(JSON.stringify({
    case: "pairs-4-streams",
    ratio: r3(median(four)),
    round_ratios: four.map(r3),
    one_flow_images_per_s: r2(median(rounds.map((o) => o.stream))),
    four_flows_images_per_s: r2(median(rounds.map((o) => o.four!.ips))),
    // ratio = cpu_per_image_ratio × cores_ratio: less CPU per image (fuller batches) × more cores kept busy
    cpu_per_image_ratio: r3(median(rounds.map((o) => o.useOne.cpuMs / (o.four!.use.cpuMs / STREAMS)))),
    cores_ratio: r3(median(rounds.map((o) => o.four!.use.cores / o.useOne.cores))),
    batch_fill_decode: r3(f.decodeRows / DEC_BATCH), mean_rows_decode_step: r1(f.decodeRows), mean_rows_decode_step_one_flow: r1(one.decodeRows),
    mean_prompts_per_prefill: r1(f.prefillPrompts), mean_prompts_per_prefill_one_flow: r1(one.prefillPrompts),
    batch_fill_policy_vision: r3(f.visionRows / 32), mean_rows_policy_vision: r1(f.visionRows),
    batch_fill_clip_image: r3(f.clipImageRows / CLIP_BATCH), mean_rows_clip_image: r1(f.clipImageRows),
    batch_fill_clip_text: r3(f.clipTextRows / CLIP_BATCH), mean_rows_clip_text: r1(f.clipTextRows),
    worker_util_four: r2(f.util), worker_util_one: r2(one.util),
    // threads runnable on average: one flow ≥ the core count means it alone already asks for every core
    runnable_threads_one: r2(median(rounds.map((o) => o.useOne.runnable))), runnable_threads_four: r2(median(rounds.map((o) => o.four!.use.runnable))),
    // the ratio if 4 flows had kept every core busy all the time at their measured CPU per image
    // (an upper bound: cpu_per_image_ratio × machine cores ÷ cores of one flow)
    four_ceiling_all_cores: r3(median(rounds.map((o) => (o.useOne.cpuMs / (o.four!.use.cpuMs / STREAMS)) * (CORES / o.useOne.cores)))),
    cores_four: cores(f), cores_one: cores(one),
    worker_cpu_wait_four: r2(f.workerWait), worker_cpu_wait_one: r2(one.workerWait),
    session_busy_ms_four: round(f.sessions),
    policy: policySource,
    streams: STREAMS,
    ...settings,
  }));
}
/**
 * `pairs-batch-cost`: CPU ms per row of each model the flow runs, by batch size (main thread, one
 * ORT thread, the workers idle): how much CPU fuller batches (e.g. 4 flows sharing the scheduler)
 * could save. Ratio = decode CPU per row at the decoder's maxBatch ÷ at a quarter of it.
 */
async function batchCost(): Promise<void> {
  const o = { intraOpThreads: 1 };
  const cfg = lvlm.cfg;
  const bake = (g: ReturnType<typeof lvlmPrefillGraph>) => g.graph.toOnnx({ outputs: g.outputs, bake: lvlm.store }).bytes;
  const rnd = (dims: number[]): TensorValue => ({ dtype: "float32", dims, data: Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i) * 0.1) });
  const ints = (dims: number[], v: number): TensorValue => ({ dtype: "int64", dims, data: new BigInt64Array(dims.reduce((a, b) => a * b, 1)).fill(BigInt(v)) });
  const H = cfg.lm.heads, T = cfg.lm.maxPositions, Dh = cfg.lm.width / H, S = cfg.vision.imageSize;
  const prompt = lvlm.promptIds(CAPTION_PROMPTS[0]!);
  const clipDirOnnx = (f: string) => join(clipDir, "onnx", f);
  const textLen = 24; // about the sampled captions' mean CLIP length (+ bos/eos)
  const models: Record<string, { model: Uint8Array | string; sizes: number[]; feeds: (n: number) => Record<string, TensorValue> }> = {
    "policy.decode": {
      model: bake(lvlmDecodeGraph(cfg)),
      sizes: [DEC_BATCH / 8, DEC_BATCH / 4, DEC_BATCH / 2, DEC_BATCH].map((x) => Math.max(1, Math.round(x))),
      feeds: (B) => {
        const f: Record<string, TensorValue> = { [LVLM_IO.inputIds]: ints([B, 1], 5), [LVLM_IO.positions]: ints([B], T >> 1) };
        for (let l = 0; l < cfg.lm.layers; l++) (f[LVLM_IO.pastKey(l)] = rnd([B, H, T, Dh])), (f[LVLM_IO.pastValue(l)] = rnd([B, H, T, Dh]));
        return f;
      },
    },
    "policy.prefill": {
      model: bake(lvlmPrefillGraph(cfg, "features")),
      sizes: [1, 2, 4, 8, 16],
      feeds: (R) => ({ [LVLM_IO.imageFeatures]: rnd([R, imageTokens(cfg), cfg.vision.width]), [LVLM_IO.inputIds]: ints([R, prompt.length], 5), [LVLM_IO.attentionMask]: ints([R, prompt.length], 1) }),
    },
    "policy.vision": { model: bake(lvlmVisionGraph(cfg)), sizes: [1, 8, 32], feeds: (N) => ({ [LVLM_IO.pixelValues]: rnd([N, 3, S, S]) }) },
    "clip.image": { model: clipDirOnnx("vision_model.onnx"), sizes: [1, 8, 32, 64], feeds: (N) => ({ pixel_values: rnd([N, 3, clip.imageSize, clip.imageSize]) }) },
    "clip.text": { model: clipDirOnnx("text_model.onnx"), sizes: [8, 16, 32, 64], feeds: (N) => ({ input_ids: ints([N, textLen], 5), attention_mask: ints([N, textLen], 1) }) },
  };
  const perRow: Record<string, Record<number, number>> = {};
  for (const [name, m] of Object.entries(models)) {
    const session = await createSession(m.model, o);
    perRow[name] = {};
    for (const n of m.sizes) {
      await runSession(session, m.feeds(n)); // warm
      const reps = Math.max(8, Math.ceil(256 / n));
      const feeds = Array.from({ length: reps }, () => m.feeds(n));
      const c0 = process.cpuUsage();
      for (const f of feeds) await runSession(session, f);
      const c = process.cpuUsage(c0);
      perRow[name]![n] = r3((c.user + c.system) / 1000 / reps / n);
    }
    await session.release();
  }
  const d = perRow["policy.decode"]!;
  const full = d[DEC_BATCH]!, quarter = d[Math.max(1, Math.round(DEC_BATCH / 4))]!;
  console.log(JSON.stringify({ case: "pairs-batch-cost", ratio: r3(full / quarter), cpu_ms_per_row: perRow, clip_text_tokens: textLen, policy: policySource, decoder_max_batch: DEC_BATCH, machine_cores: CORES }));
}
if (CASES.includes("cost")) await batchCost();

await sched.close();
