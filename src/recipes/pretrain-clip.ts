/**
 * Recipe: pretrain the shapes-world CLIP contrastively on clean `clip-pretrain` captions, with
 * hard negatives (an absent co-occurring object added, a wrong colour, a replaced kind, a
 * flipped relation) in every batch, then evaluate on `heldout` and export the HF layout.
 *
 * @example
 * const cfg = pretrainClipOptions.parse({ steps: 20, scenes: 64, batchSize: 16 });
 * const { clip, metrics } = await pretrainClip(cfg);
 */
import type { z } from "zod";
import { applyCaptionNoise, captionDefaultsFor, captionScene, generateScenes, hardNegatives, realiseCaption, type Scene } from "../world/index.ts";
import { ClipModel, clipConfig, padIds, type ClipConfig } from "../models/index.ts";
import { Rng } from "../util/rng.ts";
import { hardNegativeClipLoss } from "./clip-contrastive.ts";
import { evaluateClip, type ClipMetrics } from "./clip-eval.ts";
import { pretrainClipOptions } from "./options.ts";
import { trainLoop, type StepLog } from "./train-loop.ts";

export { pretrainClipOptions };
import { pixelsOf, renderAll, worldTokenizer } from "./world-data.ts";

export type PretrainClipOptions = z.output<typeof pretrainClipOptions>;

/** The CLIP config a recipe's options describe (vocabulary from the world tokenizer). */
export function clipConfigOf(o: PretrainClipOptions): ClipConfig {
  const tok = worldTokenizer(o.contextLength);
  const act = "gelu" as const;
  return clipConfig({
    vision: { imageSize: o.imageSize, patchSize: o.patchSize, ...o.vision, act },
    text: { vocabSize: tok.vocabSize, contextLength: o.contextLength, ...o.text, act, bosTokenId: tok.special.bos, eosTokenId: tok.special.eos, padTokenId: tok.special.pad },
    embedDim: o.embedDim,
  });
}

/**
 * One training example: a clean caption (positive) and up to `negatives` false edits of it.
 * Order: the SFT noise exactly (an absent co-occurring kind at a random place) — what CLIP-DPO
 * must detect; then the other hard-negative types in random order — or, with `kindFirst`, a
 * replaced kind before the rest (tried to push the towers towards shape; it did not raise
 * held-out retrieval in a 1000-step run, see models/shapes-clip/MODEL_CARD.md).
 */
export function trainingTexts(scene: Scene, rng: Rng, captionVariants: number, negatives: number, kindFirst = false): { positive: string; negatives: string[] } {
  const cap = captionScene(scene, { ...captionDefaultsFor("clip-pretrain"), index: rng.int(captionVariants) });
  if (negatives === 0) return { positive: cap.text, negatives: [] };
  const pool: string[] = [];
  const added = applyCaptionNoise(scene, cap.plan, rng.fork(rng.nextU32()), { noiseProb: 1, wrongAttributeProb: 0, sizeProb: 0.5, synonymProb: 0.15 });
  if (added.noise.addedKind) pool.push(realiseCaption(added.plan));
  const hard = rng.shuffle(hardNegatives(scene, cap.plan, rng.fork(rng.nextU32())));
  const ordered = kindFirst ? [...hard.filter((h) => h.type === "replace-kind"), ...hard.filter((h) => h.type !== "replace-kind")] : hard;
  for (const h of ordered) if (h.text !== cap.text && !pool.includes(h.text)) pool.push(h.text);
  return { positive: cap.text, negatives: pool.slice(0, negatives) };
}

export interface PretrainClipResult {
  clip: ClipModel;
  metrics: ClipMetrics;
  losses: number[];
  trainSeconds: number;
  totalSeconds: number;
  params: number;
}

/**
 * Train, evaluate and return the CLIP (export is the caller's: see cli.ts).
 */
export async function pretrainClip(o: PretrainClipOptions, log: (msg: string) => void = () => {}): Promise<PretrainClipResult> {
  const t0 = performance.now();
  const cfg = clipConfigOf(o);
  const tok = worldTokenizer(o.contextLength);
  const clip = ClipModel.create(cfg, tok, o.seed);
  clip.store.trainOnly(["vision", "text", "logit_scale"]);
  const scenes = generateScenes("clip-pretrain", o.scenes, { seed: o.worldSeed });
  const rendered = await renderAll(scenes, o.imageSize);
  log(`rendered ${scenes.length} clip-pretrain scenes in ${((performance.now() - t0) / 1000).toFixed(1)} s; ${clip.store.numel()} params`);

  const { graph, outputs } = hardNegativeClipLoss(cfg);
  const step = await graph.compile({ outputs, grads: graph.grad(outputs.loss, clip.store.trainableNames()), params: clip.store, threads: o.threads });
  const rng = new Rng(o.seed).fork(0xc11b);
  let order: number[] = [];
  const batch = (_i: number) => {
    const rows: number[] = [];
    while (rows.length < o.batchSize) {
      if (order.length === 0) order = rng.shuffle(Array.from({ length: scenes.length }, (_, k) => k));
      rows.push(order.pop()!);
    }
    const pos: string[] = [], neg: string[] = [];
    for (const r of rows) {
      const t = trainingTexts(scenes[r]!, rng, o.captionVariants, o.negativesPerImage, o.kindNegativeFirst);
      pos.push(t.positive);
      neg.push(...t.negatives);
    }
    const ids = [...pos, ...neg].map((t) => tok.encode(t, { maxLength: o.contextLength }).ids);
    const b = padIds(ids, cfg.text.padTokenId);
    return {
      pixel_values: { dtype: "float32" as const, dims: [rows.length, 3, o.imageSize, o.imageSize], data: pixelsOf(rendered, rows, clip.preprocess) },
      input_ids: b.ids,
      attention_mask: b.mask,
    };
  };
  const fmt = (l: StepLog) =>
    `step ${l.step} loss ${l.loss.toFixed(4)} grad_norm ${l.gradNorm.toFixed(3)} lr ${l.lr.toExponential(2)} scale ${(l.extra.scale ?? 0).toFixed(1)} ${l.seconds.toFixed(0)} s`;
  const r = await trainLoop({ store: clip.store, step, batch, config: o.optim, logEvery: o.logEvery, extraOutputs: ["scale"], log: (l) => log(fmt(l)) });
  if (tok.truncations > 0) log(`warning: ${tok.truncations} training texts were truncated to ${o.contextLength} tokens`);
  const metrics = await evaluateClip(clip, { seed: o.worldSeed, scenes: o.eval.scenes, candidates: o.eval.candidates, imageSize: o.imageSize });
  return { clip, metrics, losses: r.losses, trainSeconds: r.seconds, totalSeconds: (performance.now() - t0) / 1000, params: clip.store.numel() };
}
