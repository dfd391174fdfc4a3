/**
 * One DPO micro-batch as the step graph wants it: B pairs tokenised into a concatenated
 * [2B, T] text batch (chosen rows first, then rejected; see dpo-step-graph.ts), the pairs'
 * pixels [B, 3, S, S] and the reference log-probs. Plain typed arrays, so a batch can be
 * transferred to the trainer worker without a copy.
 */
import type { TensorValue } from "../graph/runtime.ts";
import type { ScoredText } from "../models/lvlm-model.ts";
import { padIds } from "../models/text-batch.ts";
import { DPO_IO } from "./dpo-step-graph.ts";

/** One preference pair with its reference log-probs (a row of the Arrow pairs schema after refLogps). */
export interface PairRecord {
  imageId: string;
  prompt: string;
  chosen: string;
  rejected: string;
  refChosen: number;
  refRejected: number;
}

/** Turns (prompt, answer) into ids + answer mask; LvlmModel.scoredText implements it. */
export interface TextScorer {
  scoredText(prompt: string, answer: string): ScoredText;
  readonly cfg: { padTokenId: number; vision: { imageSize: number } };
}

export interface DpoBatch {
  /** Pairs B. */
  pairs: number;
  /** Padded text length T. */
  textLen: number;
  /** [B, 3, S, S]. */
  pixels: Float32Array;
  /** [2B, T] each (int64). */
  ids: BigInt64Array;
  mask: BigInt64Array;
  answerMask: BigInt64Array;
  /** [B] each. */
  refChosen: Float32Array;
  refRejected: Float32Array;
  /** Answer token count of every row, [2B] (chosen then rejected). */
  nTokens: Int32Array;
}

/**
 * Tokenises pairs and gathers their pixels (one copy per image into the batch buffer).
 *
 * @example
 * const b = buildDpoBatch(pairs, policy, (id) => cache.get(id));
 */
export function buildDpoBatch(pairs: readonly PairRecord[], scorer: TextScorer, pixelsOf: (imageId: string) => Float32Array): DpoBatch {
  const B = pairs.length;
  if (B === 0) throw new Error("buildDpoBatch: no pairs");
  const S = scorer.cfg.vision.imageSize;
  const img = 3 * S * S;
  const texts: ScoredText[] = [];
  for (const p of pairs) texts.push(scorer.scoredText(p.prompt, p.chosen));
  for (const p of pairs) texts.push(scorer.scoredText(p.prompt, p.rejected));
  const ids = padIds(texts.map((t) => t.ids), scorer.cfg.padTokenId);
  const am = padIds(texts.map((t) => t.answerMask), 0);
  const pixels = new Float32Array(B * img);
  pairs.forEach((p, i) => {
    const px = pixelsOf(p.imageId);
    if (px.length !== img) throw new Error(`buildDpoBatch: image '${p.imageId}' has ${px.length} pixel values, the policy wants 3x${S}x${S} = ${img}`);
    pixels.set(px, i * img);
  });
  return {
    pairs: B,
    textLen: ids.ids.dims[1]!,
    pixels,
    ids: ids.ids.data as BigInt64Array,
    mask: ids.mask.data as BigInt64Array,
    answerMask: am.ids.data as BigInt64Array,
    refChosen: Float32Array.from(pairs, (p) => p.refChosen),
    refRejected: Float32Array.from(pairs, (p) => p.refRejected),
    nTokens: Int32Array.from(texts, (t) => t.answerMask.reduce((a, b) => a + b, 0)),
  };
}

/** Graph feeds of a batch (views, no copies). */
export function dpoBatchFeeds(b: DpoBatch, imageSize: number): Record<string, TensorValue> {
  const B = b.pairs, T = b.textLen, S = imageSize;
  return {
    [DPO_IO.pixelValues]: { dtype: "float32", dims: [B, 3, S, S], data: b.pixels },
    [DPO_IO.inputIds]: { dtype: "int64", dims: [2 * B, T], data: b.ids },
    [DPO_IO.attentionMask]: { dtype: "int64", dims: [2 * B, T], data: b.mask },
    [DPO_IO.answerMask]: { dtype: "int64", dims: [2 * B, T], data: b.answerMask },
    [DPO_IO.refChosen]: { dtype: "float32", dims: [B], data: b.refChosen },
    [DPO_IO.refRejected]: { dtype: "float32", dims: [B], data: b.refRejected },
  };
}

/** The buffers of a batch, for a postMessage transfer list. */
export function dpoBatchBuffers(b: DpoBatch): ArrayBuffer[] {
  const bufs = new Set<ArrayBuffer>();
  for (const a of [b.pixels, b.ids, b.mask, b.answerMask, b.refChosen, b.refRejected, b.nTokens]) {
    if (a.buffer instanceof ArrayBuffer) bufs.add(a.buffer);
  }
  return [...bufs];
}
