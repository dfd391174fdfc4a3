/**
 * bench/models.ts — model throughput relative to a plain ORT MatMul 1024³ measured in the same
 * run (interleaved windows of similar length; ratio from the best window of each, the median of
 * per-round ratios printed too), 2 ORT threads everywhere.
 *
 *   npx bun bench/models.ts            # both cases
 *   npx bun bench/models.ts decode     # only cases whose name contains "decode"
 *   npx bun bench/models.ts hf-vlm-generate
 *
 * clip-vitb32-image-b16: random-weight CLIP ViT-B/32 image tower (224², patch 32, width 768,
 *   12 layers, 12 heads, MLP 3072, projection 512) at batch 16, weights baked as initializers
 *   like an HF export. FLOPs per image: 2·(patch embed + per layer qkv/out/MLP matmuls + the two
 *   attention matmuls) + projection, counted from the config.
 * lvlm-decode-b32: KV-cache decoding, batch 32, of a random LVLM shaped like the shipped
 *   shapes-world policy (lvlmPresets.shapesPolicy: LM width 128 × 4 layers, 64 image tokens,
 *   vocab 96): prefill 32 prompts of 4-10 tokens, then 48 decode steps with the decode graph
 *   baked, as a scheduler worker runs it. ratio = achieved decode GFLOP/s ÷ MatMul GFLOP/s
 *   (decode is latency-bound at this size, so the ratio is small by nature); tokens/s is the figure.
 * hf-vlm-generate: a random LVLM of the shapes policy's shape (64 image tokens, LM 128 × 4,
 *   the test fixture's BPE tokenizer and chat template) exported in the Hugging Face
 *   image-text-to-text ONNX layout (src/models/hf-vlm), loaded twice from the same folder:
 *   clipflow's hf-onnx-vlm policy through the scheduler's continuous batcher (one worker, one
 *   ORT thread, sampling on the main thread) and transformers.js's own `generate` (one ORT
 *   thread, one prompt at a time: its padded batches attend to their pads after the first step,
 *   see test/models/hf-vlm/hf-vlm.test.ts). Same prompts and images, greedy, 32 new tokens at
 *   most, rounds interleaved. ratio = clipflow tokens/s ÷ transformers.js tokens/s (median over
 *   rounds); the tokens of both are checked equal. transformers.js with the whole set as one
 *   left-padded batch is printed too (`tjs_padded_batch_tokens_per_s`; not a like-for-like
 *   reference since its tokens differ).
 */
import { Graph } from "../src/graph/index.ts";
import { ParamStore } from "../src/graph/params.ts";
import { runSession } from "../src/graph/runtime.ts";
import { cachedSession } from "../src/graph/index.ts";
import { Rng } from "../src/util/rng.ts";
import { clipConfig, clipPresets, numPatches } from "../src/models/clip-config.ts";
import { clipVisionGraph } from "../src/models/clip.ts";
import { KvCache } from "../src/models/kv-cache.ts";
import { imageTokens, lvlmConfig, lvlmPresets } from "../src/models/lvlm-config.ts";
import { LVLM_IO } from "../src/models/lvlm.ts";
import { LvlmModel } from "../src/models/lvlm-model.ts";
import { WordTokenizer } from "../src/models/word-tokenizer.ts";
import { matmulReference, median, timeOnce } from "./lib/reference.ts";

const THREADS = 2;




/**
 * Rounds of back-to-back windows of similar length: k reference runs (k calibrated so the window
 * lasts about one case run), then one case run. The ratio uses the best window of each (the least
 * disturbed by the other processes sharing the cores); the median of the per-round ratios is
 * printed too.
 */
async function measure(
  ref: () => Promise<unknown>,
  run: () => Promise<unknown>,
  rounds: number,
): Promise<{ refMs: number; runMs: number; runMedianMs: number; roundRatios: number[] }> {
  const r1 = await timeOnce(ref);
  const m1 = await timeOnce(run);
  const k = Math.max(1, Math.round(m1 / r1));
  const r: number[] = [], m: number[] = [];
  for (let i = 0; i < rounds; i++) {
    r.push((await timeOnce(async () => { for (let j = 0; j < k; j++) await ref(); })) / k);
    m.push(await timeOnce(run));
  }
  // per round: (ref flops/ms) / (case flops/ms) inverts to runMs/refMs; callers scale by flops
  return { refMs: Math.min(...r), runMs: Math.min(...m), runMedianMs: median(m), roundRatios: r.map((x, i) => x / m[i]!) };
}

async function clipImage(ref: Awaited<ReturnType<typeof matmulReference>>): Promise<void> {
  const cfg = clipConfig(clipPresets.vitB32());
  const v = cfg.vision, B = 16, T = numPatches(v) + 1, d = v.width;
  const perLayer = 2 * T * d * 3 * d + 2 * T * d * d + 2 * 2 * T * d * v.mlp + 2 * 2 * T * T * d;
  const flopsPerImage = 2 * numPatches(v) * 3 * v.patchSize ** 2 * d + v.layers * perLayer + 2 * d * cfg.embedDim;
  const { graph, outputs } = clipVisionGraph(cfg);
  const store = ParamStore.fromSpecs(graph.params(), new Rng(3));
  const model = graph.toOnnx({ outputs, bake: store });
  const session = await cachedSession(model.bytes, { threads: THREADS });
  const rng = new Rng(4);
  const pixels = Float32Array.from({ length: B * 3 * 224 * 224 }, () => rng.normal());
  const run = () => runSession(session, { pixel_values: { dtype: "float32", dims: [B, 3, 224, 224], data: pixels } });
  const { refMs, runMs, runMedianMs, roundRatios } = await measure(ref.run, run, 6);
  const refGflops = ref.flops / refMs / 1e6, gflops = (flopsPerImage * B) / runMs / 1e6;
  const perRound = roundRatios.map((q) => (q * flopsPerImage * B) / ref.flops);
  console.log(JSON.stringify({
    case: "clip-vitb32-image-b16",
    ratio: +(gflops / refGflops).toFixed(3),
    gflops: +gflops.toFixed(1),
    matmul_gflops: +refGflops.toFixed(1),
    images_per_s: +((B * 1000) / runMs).toFixed(1),
    ms_per_batch: +runMs.toFixed(1),
    ms_per_batch_median: +runMedianMs.toFixed(1),
    matmul_ms: +refMs.toFixed(2),
    ratio_median_of_rounds: +median(perRound).toFixed(3),
    gflop_per_image: +(flopsPerImage / 1e9).toFixed(3),
    threads: THREADS,
  }));
}

async function lvlmDecode(ref: Awaited<ReturnType<typeof matmulReference>>): Promise<void> {
  const words = Array.from({ length: 91 }, (_, i) => `w${i}`);
  const tok = WordTokenizer.fromCorpus([words.join(" ")]); // 5 specials + 91 words = 96
  const cfg = lvlmConfig(lvlmPresets.shapesPolicy(tok.vocabSize));
  const m = LvlmModel.create(cfg, tok, 5);
  const B = 32, steps = 48, S = cfg.vision.imageSize;
  const rng = new Rng(6);
  const pixels = Float32Array.from({ length: B * 3 * S * S }, () => rng.normal());
  const prompts = Array.from({ length: B }, () => [cfg.bosTokenId, ...Array.from({ length: 3 + rng.int(7) }, () => 5 + rng.int(91))]);
  const { cache: prefilled } = await m.prefill(pixels, prompts);
  const start = prefilled.withCapacity(Math.max(...prefilled.lengths) + steps + 1);
  const decode = await cachedSession(m.onnx("decode", true).bytes, { threads: THREADS });
  const tokens = Array.from({ length: B }, () => 5 + rng.int(91));
  const decodeAll = async () => {
    const c = start.select(start.lengths.map((_, i) => i)); // a fresh copy: append writes in place
    for (let s = 0; s < steps; s++) {
      const out = await runSession(decode, {
        [LVLM_IO.inputIds]: { dtype: "int64", dims: [B, 1], data: BigInt64Array.from(tokens, BigInt) },
        [LVLM_IO.positions]: { dtype: "int64", dims: [B], data: BigInt64Array.from(c.lengths, BigInt) },
        ...c.feeds(),
      });
      c.append(out);
    }
  };
  // FLOPs per decoded token: the LM's matmul weights (qkv, out, MLP, head) ×2, plus attention
  // over the whole cache capacity (the graph reads every slot and masks) 2·2·Tcap·d per layer.
  const L = cfg.lm, np = imageTokens(cfg);
  const perTokenWeights = L.layers * (3 * L.width ** 2 + L.width ** 2 + 2 * L.width * L.mlp) + L.width * L.vocabSize;
  const flopsPerToken = 2 * perTokenWeights + L.layers * 4 * start.capacity * L.width;
  const { refMs, runMs, runMedianMs, roundRatios } = await measure(ref.run, decodeAll, 6);
  const tokensPerS = (B * steps * 1000) / runMs;
  const refGflops = ref.flops / refMs / 1e6, gflops = (flopsPerToken * B * steps) / runMs / 1e6;
  const perRound = roundRatios.map((q) => (q * flopsPerToken * B * steps) / ref.flops);
  // the same steps through LvlmModel.decode (weights fed from the ParamStore each step)
  const fedMs = await timeOnce(async () => {
    let c = start.select(start.lengths.map((_, i) => i));
    for (let s = 0; s < steps; s++) c = (await m.decode(c, tokens)).cache;
  });
  console.log(JSON.stringify({
    case: "lvlm-decode-b32",
    ratio: +(gflops / refGflops).toFixed(4),
    tokens_per_s: Math.round(tokensPerS),
    tokens_per_s_params_fed: Math.round((B * steps * 1000) / fedMs),
    ms_per_step: +(runMs / steps).toFixed(2),
    ms_per_step_median: +(runMedianMs / steps).toFixed(2),
    ratio_median_of_rounds: +median(perRound).toFixed(4),
    gflops: +gflops.toFixed(2),
    matmul_gflops: +refGflops.toFixed(1),
    batch: B,
    steps,
    cache_capacity: start.capacity,
    image_tokens: np,
    lm: `${L.width}x${L.layers}`,
    threads: THREADS,
  }));
}

async function hfVlmGenerate(): Promise<void> {
  const { writeTinyVlm } = await import("../test/models/hf-vlm/fixture.ts");
  const { loadHfVlm } = await import("../src/models/hf-vlm/policy.ts");
  const { Decoder } = await import("../src/scheduler/decoder.ts");
  const { Scheduler } = await import("../src/scheduler/scheduler.ts");
  const tjs = await import("@huggingface/transformers");
  const { rmSync } = await import("node:fs");
  const { basename, dirname } = await import("node:path");
  const t = await writeTinyVlm({ seed: 11, eosBias: 2.5, shape: "shapes-policy", maxPositions: 160 });
  try {
    const policy = await loadHfVlm(t.dir);
    tjs.env.allowRemoteModels = false;
    tjs.env.allowLocalModels = true;
    tjs.env.localModelPath = dirname(t.dir) + "/";
    const model = await tjs.LlavaForConditionalGeneration.from_pretrained(basename(t.dir), {
      dtype: "fp32",
      device: "cpu",
      local_files_only: true,
      session_options: { intraOpNumThreads: 1, interOpNumThreads: 1 },
    });
    const prompts = ["describe the image.", "what is red?", "describe the shapes and the colors.", "where is the star?"];
    const N = 32, maxNew = 32, S = policy.imageSize;
    const rng = new Rng(12);
    const reqs = Array.from({ length: N }, (_, i) => ({ pixels: Float32Array.from({ length: 3 * S * S }, () => rng.normal()), prompt: prompts[i % prompts.length]! }));
    const ids = reqs.map((r) => policy.promptIds(r.prompt));
    const stopAt = (gen: number[]) => {
      const e = gen.findIndex((x) => policy.stopTokens.includes(x));
      return e >= 0 ? gen.slice(0, e + 1) : gen;
    };
    const runTjs = async (): Promise<number[][]> => {
      const out: number[][] = [];
      for (let i = 0; i < N; i++) {
        const p = ids[i]!;
        const seq = (await model.generate({
          input_ids: new tjs.Tensor("int64", BigInt64Array.from(p, (x) => BigInt(x)), [1, p.length]),
          attention_mask: new tjs.Tensor("int64", new BigInt64Array(p.length).fill(1n), [1, p.length]),
          pixel_values: new tjs.Tensor("float32", reqs[i]!.pixels, [1, 3, S, S]),
          max_new_tokens: maxNew,
          do_sample: false,
        })) as InstanceType<typeof tjs.Tensor>;
        out.push(stopAt((seq.tolist() as bigint[][])[0]!.slice(p.length).map(Number)));
      }
      return out;
    };
    const runTjsPadded = async (): Promise<number> => {
      const T = Math.max(...ids.map((r) => r.length));
      const idData = new BigInt64Array(N * T).fill(BigInt(policy.padTokenId));
      const mask = new BigInt64Array(N * T);
      const px = new Float32Array(N * 3 * S * S);
      ids.forEach((r, b) => {
        r.forEach((x, i) => { idData[b * T + T - r.length + i] = BigInt(x); mask[b * T + T - r.length + i] = 1n; });
        px.set(reqs[b]!.pixels, b * 3 * S * S);
      });
      const seq = (await model.generate({
        input_ids: new tjs.Tensor("int64", idData, [N, T]),
        attention_mask: new tjs.Tensor("int64", mask, [N, T]),
        pixel_values: new tjs.Tensor("float32", px, [N, 3, S, S]),
        max_new_tokens: maxNew,
        do_sample: false,
      })) as InstanceType<typeof tjs.Tensor>;
      return (seq.tolist() as bigint[][]).reduce((a, r) => a + stopAt(r.slice(T).map(Number)).length, 0);
    };
    const s = new Scheduler();
    try {
      const gen = new Decoder(s, "hf", policy, { maxBatch: N, replicas: 1, intraOpThreads: 1 });
      await gen.ready;
      const runOurs = async (): Promise<number[][]> => (await Promise.all(reqs.map((r) => gen.run(r, { maxNewTokens: maxNew, temperature: 0 })))).map((x) => x[0]!.tokens);
      await runOurs(); // warm-up
      await runTjs();
      const ours: number[] = [], theirs: number[] = [], padded: number[] = [], ratios: number[] = [];
      let tokens = 0;
      for (let r = 0; r < 3; r++) {
        let a: number[][] = [], b: number[][] = [];
        const ta = await timeOnce(async () => { a = await runOurs(); });
        const tb = await timeOnce(async () => { b = await runTjs(); });
        if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error("hf-vlm-generate: clipflow and transformers.js tokens differ");
        tokens = a.reduce((x, y) => x + y.length, 0);
        let pTokens = 0;
        const tp = await timeOnce(async () => { pTokens = await runTjsPadded(); });
        ours.push((tokens * 1000) / ta);
        theirs.push((tokens * 1000) / tb);
        padded.push((pTokens * 1000) / tp);
        ratios.push(ours[r]! / theirs[r]!);
      }
      const st = gen.stats();
      console.log(JSON.stringify({
        case: "hf-vlm-generate",
        ratio: +median(ratios).toFixed(3),
        ratios: ratios.map((x) => +x.toFixed(3)),
        clipflow_tokens_per_s: Math.round(median(ours)),
        tjs_tokens_per_s: Math.round(median(theirs)),
        tjs_padded_batch_tokens_per_s: Math.round(median(padded)),
        prompts: N,
        tokens_per_round: tokens,
        max_new_tokens: maxNew,
        mean_batch_clipflow: +(st.decodeRows / st.decodeSteps).toFixed(2),
        image_tokens: policy.imageTokenCount,
        lm: `${policy.featureDims[1]}x${policy.kv.layers}`,
        threads: 1,
      }));
    } finally {
      await s.close();
    }
  } finally {
    rmSync(t.dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const filter = process.argv[2] ?? "";
  if ("hf-vlm-generate".includes(filter)) await hfVlmGenerate();
  if (filter === "hf-vlm-generate") return;
  const ref = await matmulReference(THREADS);
  if ("clip-vitb32-image-b16".includes(filter)) await clipImage(ref);
  if ("lvlm-decode-b32".includes(filter)) await lvlmDecode(ref);
}

await main();
