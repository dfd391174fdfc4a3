/**
 * Evaluation of policies on a shapes-world split: each policy captions the same scenes with the
 * same prompt and decoding settings, and the answers are scored against the scenes' truth with
 * the world's exact hallucination metrics (CHAIR_i, CHAIR_s, Cover, attribute and relation
 * hallucination; METHOD.md "Metrics"). Ground truth is used here only, to measure.
 *
 * Scenes render to PNG exactly as the `source` stage renders them and go through the policy's
 * own preprocessing, so a policy sees held-out images the way it saw training images.
 *
 * @example
 * const e = await evaluatePolicies([{ name: "SFT policy", model: "policy", pairs: null, policy }], evalConfig);
 * e.rows[0].chairI; // hallucinated object mentions / object mentions
 */
import type { LvlmModel } from "../models/lvlm-model.ts";
import { generateMany } from "../models/generate.ts";
import { preprocessBatch } from "../models/image-preprocess.ts";
import { CAPTION_PROMPTS, captionScene, generateScenes, hallucinationMetrics, renderScene, type PairAudit, type Scene } from "../../demo/world/index.ts";
import type { EvalExample, EvalReport, EvalRow } from "./report.ts";
import type { EvalConfig } from "./schema.ts";

/** One policy to evaluate: a row of the result table. */
export interface EvalSubject {
  /** Row label, e.g. "SFT policy", "CLIP-DPO". */
  name: string;
  /** What the row evaluates (a models entry or a checkpoint folder), for the report. */
  model: string;
  /** Preference pairs it was trained on (null: not DPO-trained). */
  pairs: number | null;
  /** Those pairs audited against the scene truth (null: none, or not shapes-world images). */
  pairAudit?: PairAudit | null;
  /** The policy itself, or a loader (called when the row's turn comes, so only one is in memory). */
  policy: LvlmModel | (() => Promise<LvlmModel>);
}

export interface EvalOptions {
  /** Source image side (the `source` stage's render size). Default 64. */
  imageSize?: number;
  /** Scenes per generation call (bounds the KV cache). Default 32. */
  chunk?: number;
  /** Scenes kept as examples in the report. Default 6. */
  examples?: number;
  signal?: AbortSignal;
  /** Called after each chunk: row name, scenes done, scenes total. */
  onProgress?: (row: string, done: number, total: number) => void;
}

/** `data:image/png;base64,…` for an image shown in the report. */
export function pngDataUri(png: Uint8Array): string {
  return `data:image/png;base64,${Buffer.from(png.buffer, png.byteOffset, png.byteLength).toString("base64")}`;
}

/** Stops with an AbortError when the signal fired. */
function checkAbort(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new DOMException("evaluation interrupted", "AbortError");
}

/** Greedy (or sampled) answers of one policy for every scene. */
export async function answerScenes(policy: LvlmModel, pngs: readonly Uint8Array[], cfg: EvalConfig, prompt: string, opts: EvalOptions = {}, name = "policy"): Promise<string[]> {
  const chunk = opts.chunk ?? 32;
  const answers: string[] = [];
  for (let start = 0; start < pngs.length; start += chunk) {
    checkAbort(opts.signal);
    const part = pngs.slice(start, start + chunk);
    const { pixels, errors } = await preprocessBatch(part, policy.preprocess);
    const bad = errors.findIndex((e) => e !== null);
    if (bad >= 0) throw new Error(`eval: scene ${start + bad}: ${errors[bad]!.message}`);
    const per = pixels.length / part.length;
    const samples = await generateMany(
      policy,
      part.map((_, i) => ({ pixels: pixels.subarray(i * per, (i + 1) * per), prompt, seed: cfg.seed + start + i })),
      { maxNewTokens: cfg.maxNewTokens, temperature: cfg.temperature, n: 1 },
    );
    for (const s of samples) answers.push(s[0]!.text);
    opts.onProgress?.(name, Math.min(pngs.length, start + chunk), pngs.length);
  }
  return answers;
}

/** Scores answers against their scenes as one result-table row. */
export function evalRow(subject: Pick<EvalSubject, "name" | "model" | "pairs" | "pairAudit">, answers: readonly string[], scenes: readonly Scene[]): EvalRow {
  if (answers.length !== scenes.length) throw new Error(`eval: ${answers.length} answers for ${scenes.length} scenes`);
  const m = hallucinationMetrics(answers.map((text, i) => ({ text, scene: scenes[i]! })));
  return {
    name: subject.name,
    model: subject.model,
    pairs: subject.pairs,
    pairAudit: subject.pairAudit ?? null,
    answers: m.answers,
    chairI: m.chairI,
    chairS: m.chairS,
    cover: m.cover,
    attributeHallucination: m.attributeHallucination,
    relationHallucination: m.relationHallucination,
    counts: { ...m.counts },
  };
}

/**
 * Evaluates every subject on `cfg.count` scenes of `cfg.split` (world seed `cfg.seed`), in order.
 * @throws an AbortError (DOMException) when `opts.signal` fires between chunks.
 */
export async function evaluatePolicies(subjects: readonly EvalSubject[], cfg: EvalConfig, opts: EvalOptions = {}): Promise<EvalReport> {
  const scenes = generateScenes(cfg.split, cfg.count, { seed: cfg.seed });
  const pngs = await Promise.all(scenes.map((s) => renderScene(s, { size: opts.imageSize ?? 64 })));
  const prompt = cfg.prompt ?? CAPTION_PROMPTS[0];
  const rows: EvalRow[] = [];
  const perRow: string[][] = [];
  for (const subject of subjects) {
    checkAbort(opts.signal);
    const policy = typeof subject.policy === "function" ? await subject.policy() : subject.policy;
    const answers = await answerScenes(policy, pngs, cfg, prompt, opts, subject.name);
    rows.push(evalRow(subject, answers, scenes));
    perRow.push(answers);
  }
  const nEx = Math.min(opts.examples ?? 6, scenes.length);
  const examples: EvalExample[] = Array.from({ length: nEx }, (_, i) => ({
    sceneId: scenes[i]!.id,
    image: pngDataUri(pngs[i]!),
    // The clean caption of the scene: what a faithful answer says.
    truth: captionScene(scenes[i]!, { noiseProb: 0, wrongAttributeProb: 0 }).text,
    answers: perRow.map((a) => a[i]!),
  }));
  return { split: cfg.split, count: scenes.length, seed: cfg.seed, prompt, metrics: [...cfg.metrics], rows, examples };
}
