/**
 * Evaluation of policies on a shapes-world split: each policy captions the same scenes with the
 * same prompt, under two decodings — greedy (what a user deploys) and sampled at the generate
 * stage's temperature/top-p with `samples` answers per scene (the distribution pairs are built
 * from and DPO changes) — and the answers are scored against the scenes' truth with the world's
 * exact metrics (CHAIR_i, CHAIR_s, Cover, hallucinations by cause, attribute and relation
 * hallucination; METHOD.md "Metrics", docs/evaluation.md). Ground truth is used here only.
 *
 * Statistics (docs/evaluation.md): every rate is a ratio of sums over scenes, so its 95% CI is a
 * percentile bootstrap that resamples *scenes* (all samples of a scene together). One plan of
 * resampled scenes serves every row, so each DPO row's difference to the starting policy and to
 * the random-pairs row is a paired CI (same scenes, same sampling seeds, same resamples).
 *
 * Scenes render to PNG exactly as the `source` stage renders them and go through the policy's
 * own preprocessing, so a policy sees held-out images the way it saw training images.
 *
 * @example
 * const e = await evaluatePolicies([{ name: "SFT policy", model: "policy", pairs: null, policy }], evalConfig);
 * e.rows[0].decodings[1].rates.chairI; // sampled CHAIR_i { value, lo, hi }
 */
import type { LvlmModel } from "../models/lvlm-model.ts";
import { generateMany } from "../models/generate.ts";
import { preprocessBatch } from "../models/image-preprocess.ts";
import {
  CAPTION_PROMPTS, RATE_DEFINITIONS, addAnswerCounts, captionScene, generateScenes, renderScene, zeroCounts,
  type AnswerCounts, type PairAudit, type Scene,
} from "../../demo/world/index.ts";
import { policyProbes } from "../../demo/recipes/policy-probes.ts";
import { bootstrapPlan, meanCi, pairedRatioDiffCi, ratioCi, type BootstrapPlan } from "../util/bootstrap.ts";
import type { CiValue, DecodingResult, DecodingSpec, EvalExample, EvalReport, EvalRow, ProbeReport, SeedGroup } from "./report.ts";
import type { EvalConfig } from "./schema.ts";

/** What a row is in the comparison (decides its paired differences). */
export type EvalRole = "start" | "random" | "method" | "oracle";

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
  /** Default: the first row is the start, a name containing "random" the random-pairs baseline. */
  role?: EvalRole;
  /** Index of an earlier row to pair this one with as well (e.g. the previous on-policy round). */
  previous?: number;
  /** The policy itself, or a loader (called when the row's turn comes, so only one is in memory). */
  policy: LvlmModel | (() => Promise<LvlmModel>);
}

/** Probes run through each policy (POPE, QA, zero-shot); see demo/recipes/policy-probes.ts. */
export interface ProbeRunner {
  /** Per-unit results of one policy (units = the probe's scenes), kept until all rows are in. */
  run(policy: LvlmModel, signal?: AbortSignal): Promise<unknown>;
  /** Reports for every row from their per-unit results, with CIs and paired differences to row 0. */
  summarise(perRow: readonly unknown[], seed: number, resamples: number): ProbeReport[];
}

export interface EvalOptions {
  /** Source image side (the `source` stage's render size). Default 64. */
  imageSize?: number;
  /** Scenes per generation call (bounds the KV cache). Default 32. */
  chunk?: number;
  /** Scenes kept as examples in the report. Default 6. */
  examples?: number;
  /**
   * Sampled decoding (the generate stage's settings); null: greedy only. Default
   * { temperature: 1, topP: 0.95, samples: 4 }, the shipped pipelines' generate stage.
   */
  sampling?: { temperature: number; topP: number; samples: number } | null;
  /** Bootstrap resamples per CI. Default 2000. */
  resamples?: number;
  /**
   * POPE / QA / zero-shot probes; null: not run. Default: demo/recipes/policy-probes.ts on
   * min(count, 200) scenes of the evaluation's split and seed (+ min(count, 180) single-object scenes).
   */
  probes?: ProbeRunner | null;
  signal?: AbortSignal;
  /** Called after each chunk: row name, scenes done, scenes total. */
  onProgress?: (row: string, done: number, total: number) => void;
}

export const DEFAULT_SAMPLING = { temperature: 1, topP: 0.95, samples: 4 } as const;

/** `data:image/png;base64,…` for an image shown in the report. */
export function pngDataUri(png: Uint8Array): string {
  return `data:image/png;base64,${Buffer.from(png.buffer, png.byteOffset, png.byteLength).toString("base64")}`;
}

/** Stops with an AbortError when the signal fired. */
function checkAbort(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new DOMException("evaluation interrupted", "AbortError");
}

/**
 * Answers of one policy for every scene: `samples` per scene, decoded at `temperature`/`topP`
 * (0: greedy). Scene i's answers draw from seed `seed + i`, so every policy gets the same streams.
 */
export async function answerScenesK(
  policy: LvlmModel, pngs: readonly Uint8Array[], d: { temperature: number; topP: number; samples: number; seed: number; maxNewTokens: number },
  prompt: string, opts: EvalOptions = {}, name = "policy",
): Promise<string[][]> {
  // Keep about `chunk` sequences per call whatever the samples per scene (the KV cache grows with rows).
  const chunk = Math.max(1, Math.floor((opts.chunk ?? 32) / Math.max(1, d.samples / 2)));
  const answers: string[][] = [];
  for (let start = 0; start < pngs.length; start += chunk) {
    checkAbort(opts.signal);
    const part = pngs.slice(start, start + chunk);
    const { pixels, errors } = await preprocessBatch(part, policy.preprocess);
    const bad = errors.findIndex((e) => e !== null);
    if (bad >= 0) throw new Error(`eval: scene ${start + bad}: ${errors[bad]!.message}`);
    const per = pixels.length / part.length;
    const samples = await generateMany(
      policy,
      part.map((_, i) => ({ pixels: pixels.subarray(i * per, (i + 1) * per), prompt, seed: d.seed + start + i })),
      { maxNewTokens: d.maxNewTokens, temperature: d.temperature, ...(d.temperature > 0 ? { topP: d.topP } : {}), n: d.samples },
    );
    for (const s of samples) answers.push(s.map((x) => x.text));
    opts.onProgress?.(name, Math.min(pngs.length, start + chunk), pngs.length);
  }
  return answers;
}

/** Greedy (or, with cfg.temperature > 0, sampled) single answers of one policy for every scene. */
export async function answerScenes(policy: LvlmModel, pngs: readonly Uint8Array[], cfg: EvalConfig, prompt: string, opts: EvalOptions = {}, name = "policy"): Promise<string[]> {
  const a = await answerScenesK(policy, pngs, { temperature: cfg.temperature, topP: 1, samples: 1, seed: cfg.seed, maxNewTokens: cfg.maxNewTokens }, prompt, opts, name);
  return a.map((x) => x[0]!);
}

/** Per-scene counts of answers (scene i's answers summed). */
export function sceneCounts(answers: readonly (readonly string[])[], scenes: readonly Scene[]): AnswerCounts[] {
  if (answers.length !== scenes.length) throw new Error(`eval: ${answers.length} answer sets for ${scenes.length} scenes`);
  return scenes.map((scene, i) => {
    const c = zeroCounts();
    for (const t of answers[i]!) addAnswerCounts(c, t, scene);
    return c;
  });
}

function column(per: readonly AnswerCounts[], key: keyof AnswerCounts): Float64Array {
  return Float64Array.from(per, (c) => c[key]);
}

function total(per: readonly AnswerCounts[]): AnswerCounts {
  const t = zeroCounts();
  for (const c of per) for (const k of Object.keys(t) as (keyof AnswerCounts)[]) t[k] += c[k];
  return t;
}

const round = (c: CiValue): CiValue => ({ value: c.value, lo: c.lo, hi: c.hi });

/** Every rate with its CI over scenes. */
export function rateCis(plan: BootstrapPlan, per: readonly AnswerCounts[]): Record<string, CiValue> {
  const out: Record<string, CiValue> = {};
  for (const r of RATE_DEFINITIONS) out[r.key] = round(ratioCi(plan, column(per, r.num), column(per, r.den)));
  return out;
}

/** Every rate's paired difference a − b (same scenes, same resamples). */
export function pairedRateCis(plan: BootstrapPlan, a: readonly AnswerCounts[], b: readonly AnswerCounts[]): Record<string, CiValue> {
  const out: Record<string, CiValue> = {};
  for (const r of RATE_DEFINITIONS) out[r.key] = round(pairedRatioDiffCi(plan, column(a, r.num), column(a, r.den), column(b, r.num), column(b, r.den)));
  return out;
}

/** Scores answers against their scenes as one result-table row (greedy fields only). */
export function evalRow(subject: Pick<EvalSubject, "name" | "model" | "pairs" | "pairAudit">, answers: readonly string[], scenes: readonly Scene[]): EvalRow {
  if (answers.length !== scenes.length) throw new Error(`eval: ${answers.length} answers for ${scenes.length} scenes`);
  return rowFromCounts(subject, sceneCounts(answers.map((a) => [a]), scenes));
}

function rowFromCounts(subject: Pick<EvalSubject, "name" | "model" | "pairs" | "pairAudit">, per: readonly AnswerCounts[]): EvalRow {
  const c = total(per);
  const rate = (n: number, d: number): number => (d === 0 ? 0 : n / d);
  return {
    name: subject.name,
    model: subject.model,
    pairs: subject.pairs,
    pairAudit: subject.pairAudit ?? null,
    answers: c.answers,
    chairI: rate(c.hallucinated, c.mentions),
    chairS: rate(c.answersWithHallucination, c.answers),
    cover: rate(c.covered, c.sceneKinds),
    attributeHallucination: rate(c.attributeWrong, c.attributePairs),
    relationHallucination: rate(c.relationWrong, c.relations),
    counts: { ...c },
  };
}

function roleOf(s: EvalSubject, i: number): EvalRole {
  return s.role ?? (i === 0 ? "start" : /random/i.test(s.name) ? "random" : /oracle/i.test(s.name) ? "oracle" : "method");
}

const SEED_SUFFIX = /^(.*) \(seed (\d+)\)$/;

/** The random-pairs row a row is compared with: the one with the same seed suffix, else the first. */
function randomPartner(names: readonly string[], roles: readonly EvalRole[], i: number): number {
  const randoms = roles.map((r, j) => (r === "random" ? j : -1)).filter((j) => j >= 0);
  if (randoms.length === 0 || roles[i] === "random" || roles[i] === "start") return -1;
  const seed = SEED_SUFFIX.exec(names[i]!)?.[2];
  return randoms.find((j) => SEED_SUFFIX.exec(names[j]!)?.[2] === seed) ?? randoms[0]!;
}

/**
 * Rows named `"<name> (seed N)"` grouped by name, each rate summarised over seeds (mean, t 95%
 * interval, per-seed values) per decoding. A group needs at least two seeds.
 * @example
 * seedGroups(rows, ["greedy", "sampled"]); // [{ name: "CLIP-DPO", seeds: [1, 2, 3], rates: { sampled: { chairI: … } } }]
 */
export function seedGroups(rows: readonly EvalRow[], decodings: readonly string[]): SeedGroup[] {
  const groups = new Map<string, { rows: EvalRow[]; seeds: number[] }>();
  for (const r of rows) {
    const m = SEED_SUFFIX.exec(r.name);
    if (!m) continue;
    const g = groups.get(m[1]!) ?? { rows: [], seeds: [] };
    g.rows.push(r);
    g.seeds.push(Number(m[2]));
    groups.set(m[1]!, g);
  }
  const out: SeedGroup[] = [];
  for (const [name, g] of groups) {
    if (g.rows.length < 2) continue;
    const rates: SeedGroup["rates"] = {};
    decodings.forEach((d, di) => {
      const per: Record<string, CiValue & { perSeed: number[] }> = {};
      for (const def of RATE_DEFINITIONS) {
        const values = g.rows.map((r) => r.decodings?.[di]?.rates[def.key]?.value ?? Number.NaN);
        const c = meanCi(values);
        per[def.key] = { value: c.value, lo: c.lo, hi: c.hi, perSeed: values };
      }
      rates[d] = per;
    });
    out.push({ name, rows: g.rows.map((r) => r.name), seeds: g.seeds, rates });
  }
  return out;
}

/**
 * Evaluates every subject on `cfg.count` scenes of `cfg.split` (world seed `cfg.seed`), in order,
 * under greedy decoding (cfg.temperature, 0 by default) and, unless `opts.sampling` is null, the
 * sampled decoding; then computes every CI from one bootstrap plan over the scenes.
 * @throws an AbortError (DOMException) when `opts.signal` fires between chunks.
 */
export async function evaluatePolicies(subjects: readonly EvalSubject[], cfg: EvalConfig, opts: EvalOptions = {}): Promise<EvalReport> {
  const scenes = generateScenes(cfg.split, cfg.count, { seed: cfg.seed });
  const pngs = await Promise.all(scenes.map((s) => renderScene(s, { size: opts.imageSize ?? 64 })));
  const prompt = cfg.prompt ?? CAPTION_PROMPTS[0];
  const sampling = opts.sampling === undefined ? DEFAULT_SAMPLING : opts.sampling;
  const probes = opts.probes === undefined
    ? policyProbes({ scenes: Math.min(cfg.count, 200), zeroShotScenes: Math.min(cfg.count, 180), seed: cfg.seed, split: cfg.split, imageSize: opts.imageSize ?? 64 })
    : opts.probes;
  const specs: DecodingSpec[] = [{ name: cfg.temperature === 0 ? "greedy" : `T=${cfg.temperature}`, temperature: cfg.temperature, topP: 1, samples: 1 }];
  if (sampling) specs.push({ name: "sampled", temperature: sampling.temperature, topP: sampling.topP, samples: sampling.samples });
  // Sampling streams differ from the greedy ones (a distinct seed range), and are the same for every row.
  const seeds = [cfg.seed, cfg.seed + 1_000_003];
  const perRow: string[][][][] = []; // [row][decoding][scene][sample]
  const countsPerRow: AnswerCounts[][][] = []; // [row][decoding][scene]
  const probeUnits: unknown[] = [];
  let probeError: string | null = null;
  for (const subject of subjects) {
    checkAbort(opts.signal);
    const policy = typeof subject.policy === "function" ? await subject.policy() : subject.policy;
    const answers: string[][][] = [];
    for (const [di, d] of specs.entries()) {
      const label = specs.length > 1 ? `${subject.name} (${d.name})` : subject.name;
      answers.push(await answerScenesK(policy, pngs, { ...d, seed: seeds[di]!, maxNewTokens: cfg.maxNewTokens }, prompt, opts, label));
    }
    if (probes && probeError === null) {
      opts.onProgress?.(`${subject.name} (probes)`, 0, 1);
      try {
        probeUnits.push(await probes.run(policy, opts.signal));
      } catch (e) {
        if (e instanceof DOMException && e.name === "AbortError") throw e;
        // A policy the probes cannot read (e.g. a tokenizer without the world's words): no probes for any row.
        probeError = `probes not run: ${subject.name}: ${(e as Error).message}`;
      }
    }
    perRow.push(answers);
    countsPerRow.push(answers.map((a) => sceneCounts(a, scenes)));
  }

  const resamples = opts.resamples ?? 2000;
  const plan = bootstrapPlan(scenes.length, { resamples, seed: cfg.seed });
  const roles = subjects.map(roleOf);
  const names = subjects.map((s) => s.name);
  const probeReports = probes && probeError === null ? probes.summarise(probeUnits, cfg.seed, resamples) : [];
  const rows: EvalRow[] = subjects.map((subject, i) => {
    const row = rowFromCounts(subject, countsPerRow[i]![0]!);
    const start = roles.indexOf("start");
    const rnd = randomPartner(names, roles, i);
    row.decodings = specs.map((d, di): DecodingResult => {
      const per = countsPerRow[i]![di]!;
      return {
        decoding: d.name,
        answers: total(per).answers,
        counts: { ...total(per) },
        rates: rateCis(plan, per),
        vsStart: start >= 0 && start !== i ? pairedRateCis(plan, per, countsPerRow[start]![di]!) : null,
        vsRandom: rnd >= 0 ? pairedRateCis(plan, per, countsPerRow[rnd]![di]!) : null,
        ...(subject.previous !== undefined && subject.previous >= 0 && subject.previous < i ? { vsPrevious: pairedRateCis(plan, per, countsPerRow[subject.previous]![di]!) } : {}),
      };
    });
    row.probes = probeReports[i] ?? null;
    return row;
  });

  const nEx = Math.min(opts.examples ?? 6, scenes.length);
  const examples: EvalExample[] = Array.from({ length: nEx }, (_, i) => ({
    sceneId: scenes[i]!.id,
    image: pngDataUri(pngs[i]!),
    // The clean caption of the scene: what a faithful answer says.
    truth: captionScene(scenes[i]!, { noiseProb: 0, wrongAttributeProb: 0 }).text,
    answers: perRow.map((a) => a[0]![i]![0]!),
    ...(specs.length > 1 ? { sampled: perRow.map((a) => a[1]![i]!) } : {}),
  }));
  return {
    split: cfg.split, count: scenes.length, seed: cfg.seed, prompt, metrics: [...cfg.metrics], rows, examples,
    decodings: specs, resamples, seedGroups: seedGroups(rows, specs.map((s) => s.name)), probeError,
  };
}
