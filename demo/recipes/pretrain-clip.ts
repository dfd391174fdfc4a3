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
import { applyCaptionNoise, captionDefaultsFor, captionScene, generateScenes, hardNegatives, realiseCaption, textMentionSentence, PAINTED_WORDS, type Scene } from "../world/index.ts";
import { ClipModel, clipConfig, padIds, type ClipConfig } from "../../src/models/index.ts";
import { Rng } from "../../src/util/rng.ts";
import { hardNegativeClipLoss } from "./clip-contrastive.ts";
import { PATCH_LABELS, patchLabelFeed, patchLabelRows, patchWarmup, sharedStore, type PatchProbe } from "./patch-kind.ts";
import type { ParamStore } from "../../src/graph/params.ts";
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
 * replaced kind before the rest.
 *
 * A scene with a painted word gets the world's text-mention sentence appended to its caption
 * and to every negative (so negatives still differ by their one edit); the text mention is also
 * an edit of its own: dropped for a scene with a word, added (a random word) for one without.
 * That is how the CLIP learns to see rendered text, which the text-in-image filter relies on.
 */
export function trainingTexts(scene: Scene, rng: Rng, captionVariants: number, negatives: number, kindFirst = false): { positive: string; negatives: string[] } {
  const cap = captionScene(scene, { ...captionDefaultsFor("clip-pretrain"), index: rng.int(captionVariants) });
  const mention = scene.text ? " " + textMentionSentence(scene.text.word) : "";
  const positive = cap.text + mention;
  if (negatives === 0) return { positive, negatives: [] };
  const pool: string[] = [];
  const added = applyCaptionNoise(scene, cap.plan, rng.fork(rng.nextU32()), { noiseProb: 1, wrongAttributeProb: 0, sizeProb: 0.5, synonymProb: 0.15 });
  if (added.noise.addedKind) pool.push(realiseCaption(added.plan) + mention);
  const textEdit = { type: "text-mention", text: scene.text ? cap.text : `${cap.text} ${textMentionSentence(rng.pick(PAINTED_WORDS))}` };
  const hard = rng.shuffle([...hardNegatives(scene, cap.plan, rng.fork(rng.nextU32())).map((h) => ({ type: h.type as string, text: h.text + mention })), textEdit]);
  const ordered = kindFirst ? [...hard.filter((h) => h.type === "replace-kind"), ...hard.filter((h) => h.type !== "replace-kind")] : hard;
  for (const h of ordered) if (h.text !== positive && !pool.includes(h.text)) pool.push(h.text);
  return { positive, negatives: pool.slice(0, negatives) };
}

export interface PretrainClipResult {
  clip: ClipModel;
  metrics: ClipMetrics;
  losses: number[];
  /** Training seconds of both stages. */
  trainSeconds: number;
  totalSeconds: number;
  params: number;
  /** The patch warm-up stage, or null when skipped. */
  warmup: {
    steps: number;
    seconds: number;
    firstLoss: number;
    lastLoss: number;
    /** Held-out patch probe right after the warm-up. */
    probe: PatchProbe;
    /** Same probe after the contrastive stage (set at the end). */
    afterContrastive?: PatchProbe;
  } | null;
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

  let warmup: PretrainClipResult["warmup"] = null;
  let probeAgain: (() => Promise<PatchProbe>) | null = null;
  let headStore: ParamStore | undefined;
  if (o.patchWarmup.steps > 0) {
    const { steps, batchSize, probeScenes, ...optim } = o.patchWarmup;
    const held = await renderAll(generateScenes("heldout", probeScenes, { seed: o.worldSeed }), o.imageSize);
    const w = await patchWarmup(clip, rendered, held, { steps, batchSize, optim, seed: o.seed, threads: o.threads, logEvery: o.logEvery * 5 }, (l) =>
      log(`patch warm-up step ${l.step} loss ${l.loss.toFixed(4)} grad_norm ${l.gradNorm.toFixed(3)} lr ${l.lr.toExponential(2)} ${l.seconds.toFixed(0)} s`),
    );
    warmup = { steps, seconds: w.seconds, firstLoss: w.losses[0]!, lastLoss: w.losses[w.losses.length - 1]!, probe: w.probe };
    probeAgain = w.probeAgain;
    headStore = w.store;
    log(`patch warm-up: object-patch accuracy ${(w.probe.objectPatchAccuracy * 100).toFixed(1)}%, single-object kind ${(w.probe.singleObjectKindAccuracy * 100).toFixed(1)}% of ${w.probe.singleObjectScenes} held-out scenes`);
  }

  const aux = o.patchKindWeight > 0;
  const { graph, outputs } = hardNegativeClipLoss(cfg, { patchKindWeight: o.patchKindWeight });
  // With the auxiliary patch term the step also trains the head (the warm-up's when there was one).
  const store = aux ? sharedStore(clip, graph, o.seed, headStore) : clip.store;
  const grid = o.imageSize / o.patchSize;
  const labels = aux ? patchLabelRows(scenes, grid) : [];
  const step = await graph.compile({ outputs, grads: graph.grad(outputs.loss, store.trainableNames()), params: store, threads: o.threads });
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
      ...(aux ? { [PATCH_LABELS]: patchLabelFeed(labels, rows, grid * grid) } : {}),
    };
  };
  const fmt = (l: StepLog) =>
    `step ${l.step} loss ${l.loss.toFixed(4)} grad_norm ${l.gradNorm.toFixed(3)} lr ${l.lr.toExponential(2)} scale ${(l.extra.scale ?? 0).toFixed(1)}${aux ? ` patch_loss ${(l.extra.patch_loss ?? 0).toFixed(4)}` : ""} ${l.seconds.toFixed(0)} s`;
  const r = await trainLoop({ store, step, batch, config: o.optim, logEvery: o.logEvery, extraOutputs: ["scale", "patch_loss"], log: (l) => log(fmt(l)) });
  if (tok.truncations > 0) log(`warning: ${tok.truncations} training texts were truncated to ${o.contextLength} tokens`);
  const metrics = await evaluateClip(clip, { seed: o.worldSeed, scenes: o.eval.scenes, candidates: o.eval.candidates, imageSize: o.imageSize });
  // The warm-up head read again on the contrastively trained tower: does kind survive in the patch tokens?
  if (warmup && probeAgain) warmup = { ...warmup, afterContrastive: await probeAgain() };
  return { clip, metrics, losses: r.losses, trainSeconds: r.seconds + (warmup?.seconds ?? 0), totalSeconds: (performance.now() - t0) / 1000, params: clip.store.numel(), warmup };
}
