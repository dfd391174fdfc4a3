/**
 * bench/pairs.ts — the preference-data half of the pipeline, streaming vs stage by stage, and
 * one vs four flows sharing a scheduler.
 *
 * The cases (`pairs-overlap`, `pairs-4-streams`) run source → decode → generate →
 * clipScore → filter → pairs. The `generate` operator does not exist yet, so this file measures
 * the same two ratios on the pipeline without it, named `*-nogen`: candidates come from a
 * deterministic stage (`variants`) that turns each image into K world captions of its scene (K/2
 * caption phrasings + hard negatives: wrong colour, wrong count, extra object …). That is real
 * CLIP work (every candidate is tokenised and embedded; every image embedded once), but none of
 * the policy's decoding, which is the largest part of the full pipeline.
 *
 * - `pairs-overlap-nogen`: images/s of the streaming flow ÷ images/s implied by running each
 *   stage alone, one after the other, over the same data (sum of the per-stage times).
 * - `pairs-4-streams-nogen`: total images/s of 4 flows at once on one scheduler ÷ images/s of
 *   one flow. Batch fill (rows per ORT call ÷ maxBatch) of both CLIP towers is printed.
 * Each ratio is the median over `--rounds` interleaved rounds.
 *
 * The CLIP is `models/shapes-clip` when it has been trained (pipelines/pretrain-clip.yaml), else
 * a CLIP of the same shape with random weights (same compute per call).
 *
 * Run: npx bun bench/pairs.ts [--images 96] [--rounds 5] [--batch 8] [--variants 8]
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { RecordBatch } from "apache-arrow";
import { buildCandidates } from "../src/arrow/build.ts";
import type { CandidateRow } from "../src/arrow/schemas.ts";
import { mapBatch, runFlow, type FlowOperator } from "../src/flow/index.ts";
import { ImageStore } from "../src/io/image-store.ts";
import { clipConfig } from "../src/models/clip-config.ts";
import { ClipModel } from "../src/models/clip-model.ts";
import { clipImageConfig } from "../src/models/preprocessor-config.ts";
import { WordTokenizer } from "../src/models/word-tokenizer.ts";
import { Scheduler } from "../src/scheduler/scheduler.ts";
import { Rng } from "../src/util/rng.ts";
import { captionScene, hardNegatives, sceneAt, worldVocabulary, type Split } from "../src/world/index.ts";
import { clipScore, decode, filter, pairs, sourceBatches, ScheduledClip } from "../operators/index.ts";

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : dflt;
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name}: expected a positive integer`);
  return v;
};
const IMAGES = arg("images", 96);
const ROUNDS = arg("rounds", 5);
const BATCH = arg("batch", 8);
const K = arg("variants", 8);
const MAX_BATCH = 64;

const sched = new Scheduler();
const shipped = join(import.meta.dir, "..", "models", "shapes-clip");
let clip: ScheduledClip;
let modelName: string;
if (existsSync(join(shipped, "config.json"))) {
  clip = await ScheduledClip.fromDir(sched, shipped, "clip", { maxBatch: MAX_BATCH, maxDelayMs: 4, replicas: 2 });
  modelName = "models/shapes-clip";
} else {
  const tok = WordTokenizer.fromWords(worldVocabulary(), { modelMaxLength: 48 });
  const s = tok.special;
  // The shape pipelines/pretrain-clip.yaml trains (src/recipes/options.ts defaults).
  const cfg = clipConfig({
    vision: { imageSize: 64, patchSize: 8, width: 128, layers: 4, heads: 4, mlp: 512, act: "gelu" },
    text: { vocabSize: tok.vocabSize, contextLength: 48, width: 128, layers: 3, heads: 4, mlp: 512, act: "gelu", bosTokenId: s.bos, eosTokenId: s.eos, padTokenId: s.pad },
    embedDim: 128,
  });
  clip = ScheduledClip.fromModel(sched, ClipModel.create(cfg, tok, 1, clipImageConfig(64)), "clip", { maxBatch: MAX_BATCH, maxDelayMs: 4, replicas: 2 });
  modelName = "shapes-clip shape, random weights (models/shapes-clip not trained yet)";
}

/** Stand-in for `generate`: K world captions of each image's scene, all in the image's batch. */
function variants(name = "variants"): FlowOperator {
  return mapBatch(name, (b) => {
    const ids = b.getChild("id")!, prompts = b.getChild("prompt")!;
    const rows: CandidateRow[] = [];
    for (let i = 0; i < b.numRows; i++) {
      const id = String(ids.get(i));
      const [split, seed, index] = id.split("/");
      const scene = sceneAt(split as Split, Number(index), { seed: Number(seed) });
      const texts: string[] = [];
      for (let k = 0; texts.length < Math.ceil(K / 2) && k < 3 * K; k++) {
        const t = captionScene(scene, { index: k }).text;
        if (!texts.includes(t)) texts.push(t);
      }
      for (const h of hardNegatives(scene, captionScene(scene).plan, new Rng(Number(index)))) if (texts.length < K && !texts.includes(h.text)) texts.push(h.text);
      texts.forEach((text, s) => rows.push({ id: `${id}#${s}`, image_id: id, prompt: String(prompts.get(i)), text, logp: 0, n_tokens: 0 }));
    }
    return buildCandidates(rows);
  });
}

const stagesOf = (store: ImageStore, tag: string): FlowOperator[] => [
  decode({ preprocess: clip.preprocess, store, name: `decode${tag}` }),
  variants(`variants${tag}`),
  clipScore({ clip, store, name: `clipScore${tag}`, stream: `s${tag}` }),
  filter({ minScore: 0, maxWords: 60, name: `filter${tag}` }),
  pairs({ minMargin: 0.5, maxPairsPerImage: 2, maxLengthRatio: 2, name: `pairs${tag}` }),
];

const src = (seed: number) => sourceBatches({ kind: "shapes-world", split: "dpo", count: IMAGES, seed, batchSize: BATCH });

/** One streaming flow; returns images/s and the pairs made. */
async function streaming(seed: number, tag = ""): Promise<{ ips: number; pairs: number }> {
  const store = new ImageStore();
  let made = 0;
  const t0 = performance.now();
  await runFlow({ source: src(seed), stages: stagesOf(store, tag), sink: (b) => void (made += b.numRows), maxInFlight: 4, handleSigint: false });
  return { ips: IMAGES / ((performance.now() - t0) / 1000), pairs: made };
}

/** Each stage alone over the whole data set, one after the other; images/s implied by the summed times. */
async function stageByStage(seed: number): Promise<{ ips: number; ms: Record<string, number> }> {
  const store = new ImageStore();
  let data: RecordBatch[] = [];
  const ms: Record<string, number> = {};
  let t0 = performance.now();
  for await (const b of src(seed)) data.push(b); // the source alone (rendering)
  ms.source = performance.now() - t0;
  for (const st of stagesOf(store, "-seq")) {
    const out: RecordBatch[] = [];
    t0 = performance.now();
    await runFlow({ source: data, stages: [st], sink: (b) => void out.push(b), maxInFlight: 4, handleSigint: false });
    ms[st.stageName.replace(/-seq$/, "")] = performance.now() - t0;
    data = out;
  }
  const total = Object.values(ms).reduce((a, b) => a + b, 0);
  return { ips: IMAGES / (total / 1000), ms };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const r1 = (x: number) => Math.round(x * 10) / 10;
const r3 = (x: number) => Math.round(x * 1000) / 1000;

await streaming(99); // warm-up: workers, sessions, sharp
const overlap: { ratio: number; stream: number; seq: number; pairs: number; ms: Record<string, number> }[] = [];
const four: { ratio: number; one: number; four: number }[] = [];
let fill = { image: 0, text: 0, imageRows: 0, textRows: 0 };
for (let r = 0; r < ROUNDS; r++) {
  const s = await streaming(r + 1);
  const q = await stageByStage(r + 1);
  overlap.push({ ratio: s.ips / q.ips, stream: s.ips, seq: q.ips, pairs: s.pairs, ms: q.ms });

  const one = (await streaming(r + 11)).ips;
  const before = sched.stats().models; // cumulative counters: the 4-flow run's batches are the difference
  const t0 = performance.now();
  await Promise.all([0, 1, 2, 3].map((k) => streaming(r * 4 + 21 + k, `-${k}`)));
  const total = (4 * IMAGES) / ((performance.now() - t0) / 1000);
  four.push({ ratio: total / one, one, four: total });
  const after = sched.stats().models;
  const rows = (m: string) => (after[m]!.items - before[m]!.items) / Math.max(1, after[m]!.batches - before[m]!.batches);
  fill = { image: rows("clip.image") / MAX_BATCH, text: rows("clip.text") / MAX_BATCH, imageRows: rows("clip.image"), textRows: rows("clip.text") };
}

const mo = overlap.map((o) => o.ratio);
console.log(JSON.stringify({
  case: "pairs-overlap-nogen",
  ratio: r3(median(mo)),
  round_ratios: mo.map(r3),
  streaming_images_per_s: r1(median(overlap.map((o) => o.stream))),
  stage_by_stage_images_per_s: r1(median(overlap.map((o) => o.seq))),
  pairs_per_run: overlap[0]!.pairs,
  stage_alone_ms_last_round: Object.fromEntries(Object.entries(overlap.at(-1)!.ms).map(([k, v]) => [k, Math.round(v)])),
  images: IMAGES, batch: BATCH, candidates_per_image: K, model: modelName,
  missing: "generate operator (policy decoding) not in the flow yet",
}));
const mf = four.map((o) => o.ratio);
console.log(JSON.stringify({
  case: "pairs-4-streams-nogen",
  ratio: r3(median(mf)),
  round_ratios: mf.map(r3),
  one_flow_images_per_s: r1(median(four.map((o) => o.one))),
  four_flows_images_per_s: r1(median(four.map((o) => o.four))),
  batch_fill_clip_image: r3(fill.image), mean_rows_clip_image: r1(fill.imageRows),
  batch_fill_clip_text: r3(fill.text), mean_rows_clip_text: r1(fill.textRows),
  max_batch: MAX_BATCH, images: IMAGES, model: modelName,
  missing: "generate operator (policy decoding) not in the flow yet",
}));
await sched.close();
