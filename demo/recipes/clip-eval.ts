/**
 * Held-out evaluation of a CLIP on the shapes world, from any {@link ClipEncoder} (the trainable
 * ClipModel or the exported ONNX folder):
 * - **retrieval top-1**: each image against the clean captions of `candidates` held-out scenes
 *   (its own among them), averaged over full groups;
 * - **zero-shot accuracy**: single-object scenes classified by kind with the world's zero-shot prompts;
 * - **added-object preference**: share of scenes where the clean caption scores above the same
 *   caption with one absent, co-occurring object added (the SFT noise exactly) — the signal
 *   CLIP-DPO's pairs rely on; likewise for one wrong colour. Margins are on the ×100 cosine scale.
 */
import { applyCaptionNoise, captionDefaultsFor, captionScene, generateScenes, hardNegatives, realiseCaption, retrievalTopK, textMentionSentence, zeroShotAccuracy, zeroShotPrompts, PAINTED_WORDS, SHAPE_KINDS, type Scene } from "../world/index.ts";
import type { ClipEncoder } from "../../src/models/index.ts";
import { Rng } from "../../src/util/rng.ts";
import { pixelsOf, renderAll } from "./world-data.ts";

export interface ClipMetrics {
  readonly heldoutScenes: number;
  readonly retrievalTop1: number;
  readonly retrievalTop5: number;
  readonly retrievalCandidates: number;
  readonly retrievalGroups: number;
  readonly zeroShotAccuracy: number;
  readonly zeroShotScenes: number;
  /** Share of scenes with cos(image, clean) > cos(image, clean + absent object). */
  readonly addedObjectPreference: number;
  /** Mean of 100·(cos clean − cos with added object). */
  readonly addedObjectMargin: number;
  /** Share of those margins ≥ 2 (the default pair margin on the ×100 scale). */
  readonly addedObjectMarginAtLeast2: number;
  readonly addedObjectScenes: number;
  /** Share of scenes with cos(image, clean) > cos(image, one colour wrong). */
  readonly wrongColourPreference: number;
  readonly wrongColourScenes: number;
  /** Share of scenes with cos(image, clean) > cos(image, one kind replaced by an absent kind). */
  readonly replacedKindPreference: number;
  readonly replacedKindScenes: number;
  /**
   * Rendered text: share of scenes where the caption with the world's text-mention sentence
   * ("The word sale is written in the picture.") scores above the plain caption when the image
   * carries that word, and below it (with a random word) when it carries none.
   */
  readonly textMentionAccuracyWithText: number;
  readonly textScenes: number;
  readonly textMentionAccuracyWithoutText: number;
}

/** Row-wise L2 normalisation of [n, d] in place; returns the array. */
export function normalizeRows(x: Float32Array, d: number): Float32Array {
  for (let i = 0; i < x.length; i += d) {
    let s = 0;
    for (let j = 0; j < d; j++) s += x[i + j]! * x[i + j]!;
    const inv = 1 / Math.sqrt(s + 1e-12);
    for (let j = 0; j < d; j++) x[i + j]! *= inv;
  }
  return x;
}

/** Cosine similarity matrix [a, b] of row-normalised embeddings (evaluation sizes: ≤ 100², JS is fine). */
export function cosineMatrix(a: Float32Array, b: Float32Array, d: number): Float32Array {
  const na = a.length / d, nb = b.length / d;
  const out = new Float32Array(na * nb);
  for (let i = 0; i < na; i++) for (let j = 0; j < nb; j++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += a[i * d + k]! * b[j * d + k]!;
    out[i * nb + j] = s;
  }
  return out;
}

/** Normalised text embeddings, [n, E]. */
export async function embedTexts(clip: ClipEncoder, texts: readonly string[], chunk = 256): Promise<Float32Array> {
  const out = new Float32Array(texts.length * clip.embedDim);
  for (let i = 0; i < texts.length; i += chunk) out.set(await clip.encodeTexts(texts.slice(i, i + chunk)), i * clip.embedDim);
  return normalizeRows(out, clip.embedDim);
}

/** Normalised image embeddings of rendered scenes, [n, E]. */
export async function embedScenes(clip: ClipEncoder, scenes: readonly Scene[], chunk = 128): Promise<Float32Array> {
  const r = await renderAll(scenes, clip.imageSize);
  const out = new Float32Array(scenes.length * clip.embedDim);
  for (let i = 0; i < scenes.length; i += chunk) {
    const rows = Array.from({ length: Math.min(chunk, scenes.length - i) }, (_, k) => i + k);
    out.set(await clip.encodeImages(pixelsOf(r, rows, clip.preprocess), rows.length), i * clip.embedDim);
  }
  return normalizeRows(out, clip.embedDim);
}

function dot(a: Float32Array, i: number, b: Float32Array, j: number, d: number): number {
  let s = 0;
  for (let k = 0; k < d; k++) s += a[i * d + k]! * b[j * d + k]!;
  return s;
}

/**
 * Every metric of the module doc on `heldout` scenes 0..scenes-1 of world seed `seed`.
 * @example
 * const m = await evaluateClip(await loadClip("models/shapes-clip"), { scenes: 200, candidates: 100 });
 */
export async function evaluateClip(clip: ClipEncoder, opts: { seed?: number; scenes: number; candidates: number; imageSize?: number }): Promise<ClipMetrics> {
  const d = clip.embedDim;
  const scenes = generateScenes("heldout", opts.scenes, { seed: opts.seed ?? 1 });
  const img = await embedScenes(clip, scenes);
  const clean = scenes.map((s) => captionScene(s, { ...captionDefaultsFor("heldout"), index: 0 }));
  const txt = await embedTexts(clip, clean.map((c) => c.text));

  // retrieval in full groups of `candidates`
  const c = opts.candidates;
  const groups = Math.floor(scenes.length / c);
  if (groups === 0) throw new Error(`evaluateClip: ${scenes.length} scenes make no full group of ${c} candidates`);
  let top1 = 0, top5 = 0;
  for (let gi = 0; gi < groups; gi++) {
    const sim = cosineMatrix(img.subarray(gi * c * d, (gi + 1) * c * d), txt.subarray(gi * c * d, (gi + 1) * c * d), d);
    top1 += retrievalTopK(sim, 1, c);
    top5 += retrievalTopK(sim, Math.min(5, c), c);
  }

  // zero-shot by kind on single-object scenes
  const single = scenes.map((s, i) => [s, i] as const).filter(([s]) => s.objects.length === 1);
  const prompts = await embedTexts(clip, zeroShotPrompts());
  const zsSim = new Float32Array(single.length * SHAPE_KINDS.length);
  single.forEach(([, i], r) => SHAPE_KINDS.forEach((_, k) => (zsSim[r * SHAPE_KINDS.length + k] = dot(img, i, prompts, k, d))));
  const labels = single.map(([s]) => SHAPE_KINDS.indexOf(s.objects[0]!.kind));

  // clean vs the same caption with one absent co-occurring object / one wrong colour
  const added: { i: number; text: string }[] = [], wrong: { i: number; text: string }[] = [];
  scenes.forEach((s, i) => {
    const base = { sizeProb: 0.5, synonymProb: 0.15 };
    const a = applyCaptionNoise(s, clean[i]!.plan, new Rng(i).fork(1), { ...base, noiseProb: 1, wrongAttributeProb: 0 });
    if (a.noise.addedKind) added.push({ i, text: realiseCaption(a.plan) });
    const w = applyCaptionNoise(s, clean[i]!.plan, new Rng(i).fork(2), { ...base, noiseProb: 0, wrongAttributeProb: 1 });
    if (w.noise.wrongAttribute) wrong.push({ i, text: realiseCaption(w.plan) });
  });
  const addedEmb = await embedTexts(clip, added.map((x) => x.text));
  const wrongEmb = await embedTexts(clip, wrong.map((x) => x.text));
  let pref = 0, margin = 0, big = 0;
  added.forEach(({ i }, k) => {
    const m = 100 * (dot(img, i, txt, i, d) - dot(img, i, addedEmb, k, d));
    if (m > 0) pref++;
    if (m >= 2) big++;
    margin += m;
  });
  let wpref = 0;
  wrong.forEach(({ i }, k) => {
    if (dot(img, i, txt, i, d) > dot(img, i, wrongEmb, k, d)) wpref++;
  });
  // clean vs one kind replaced
  const replaced: { i: number; text: string }[] = [];
  scenes.forEach((s, i) => {
    const h = hardNegatives(s, clean[i]!.plan, new Rng(i).fork(3)).find((x) => x.type === "replace-kind");
    if (h) replaced.push({ i, text: h.text });
  });
  const replacedEmb = await embedTexts(clip, replaced.map((x) => x.text));
  let kpref = 0;
  replaced.forEach(({ i }, k) => {
    if (dot(img, i, txt, i, d) > dot(img, i, replacedEmb, k, d)) kpref++;
  });

  // rendered text: caption + text mention vs the plain caption
  const mentioned = scenes.map((s, i) => `${clean[i]!.text} ${textMentionSentence(s.text?.word ?? new Rng(i).fork(4).pick(PAINTED_WORDS))}`);
  const mentionEmb = await embedTexts(clip, mentioned);
  let withText = 0, withTextOk = 0, withoutOk = 0;
  scenes.forEach((s, i) => {
    const says = dot(img, i, mentionEmb, i, d) > dot(img, i, txt, i, d);
    if (s.text) {
      withText++;
      if (says) withTextOk++;
    } else if (!says) withoutOk++;
  });
  const share = (a: number, b: number) => (b === 0 ? 0 : a / b);
  return {
    heldoutScenes: scenes.length,
    retrievalTop1: top1 / groups,
    retrievalTop5: top5 / groups,
    retrievalCandidates: c,
    retrievalGroups: groups,
    zeroShotAccuracy: single.length ? zeroShotAccuracy(zsSim, labels, SHAPE_KINDS.length) : 0,
    zeroShotScenes: single.length,
    addedObjectPreference: share(pref, added.length),
    addedObjectMargin: share(margin, added.length),
    addedObjectMarginAtLeast2: share(big, added.length),
    addedObjectScenes: added.length,
    wrongColourPreference: share(wpref, wrong.length),
    wrongColourScenes: wrong.length,
    replacedKindPreference: share(kpref, replaced.length),
    replacedKindScenes: replaced.length,
    textMentionAccuracyWithText: share(withTextOk, withText),
    textScenes: withText,
    textMentionAccuracyWithoutText: share(withoutOk, scenes.length - withText),
  };
}
