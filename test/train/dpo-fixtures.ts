/**
 * A tiny random LVLM and a fixed small preference set for the DPO trainer tests: 4 images
 * (random pixels), two prompts, chosen/rejected captions that differ in one or two words.
 */
import { Rng } from "../../src/util/rng.ts";
import { lvlmPresets } from "../../src/models/lvlm-config.ts";
import { LvlmModel } from "../../src/models/lvlm-model.ts";
import { WordTokenizer } from "../../src/models/word-tokenizer.ts";
import type { PairRecord } from "../../src/train/dpo-batch.ts";

export const CORPUS = [
  "describe the image .",
  "what is in the picture ?",
  "a red circle left of a blue square .",
  "a green triangle above a red circle .",
  "a blue square and a yellow star .",
  "two small green circles .",
];
export const tok = WordTokenizer.fromCorpus(CORPUS);
export const S = 16;
export const IMG = 3 * S * S;

/** A tiny LVLM (16² images, 4 image tokens, width 32, one LM layer); projector + LM trainable. */
export function tinyPolicy(seed = 7): LvlmModel {
  return LvlmModel.create(lvlmPresets.tiny(tok.vocabSize), tok, seed);
}

export function imagePixels(id: string): Float32Array {
  let h = 0;
  for (const c of id) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  const r = new Rng(h);
  return Float32Array.from({ length: IMG }, () => r.normal());
}

const BASE: [string, string, string, string][] = [
  ["img0", "describe the image .", "a red circle left of a blue square .", "a red circle left of a green square ."],
  ["img1", "describe the image .", "a green triangle above a red circle .", "a green star above a red circle ."],
  ["img2", "what is in the picture ?", "a blue square and a yellow star .", "a blue circle and a yellow star ."],
  ["img3", "what is in the picture ?", "two small green circles .", "two small red circles ."],
  ["img0", "what is in the picture ?", "a blue square and a red circle .", "a blue square and a red star ."],
  ["img1", "describe the image .", "a red circle above a green triangle .", "a red square above a green triangle ."],
  ["img2", "describe the image .", "a yellow star and a blue square .", "a yellow circle and a blue square ."],
  ["img3", "describe the image .", "two small green circles .", "two small green squares ."],
];

/** The preference set with reference log-probs computed by `ref` (the frozen starting policy). */
export async function preferenceSet(ref: LvlmModel): Promise<PairRecord[]> {
  const px = new Float32Array(BASE.length * 2 * IMG);
  const items = [];
  BASE.forEach(([id], i) => {
    px.set(imagePixels(id), 2 * i * IMG);
    px.set(imagePixels(id), (2 * i + 1) * IMG);
  });
  for (const [, prompt, c, r] of BASE) items.push(ref.scoredText(prompt, c), ref.scoredText(prompt, r));
  const { logps } = await ref.sequenceLogps(px, items);
  return BASE.map(([imageId, prompt, chosen, rejected], i) => ({ imageId, prompt, chosen, rejected, refChosen: logps[2 * i]!, refRejected: logps[2 * i + 1]! }));
}
