/**
 * Probes of a captioning policy beyond its captions (issue 13 item 7): POPE-style existence
 * probing, the world's QA items (count, colour, kind) and zero-shot kind classification — all
 * scored exactly from the policy's log-probabilities, never from sampled text.
 *
 * How the policy answers (the shipped shapes-lvlm is trained on the five caption prompts only,
 * never on questions, so "Yes."/"No." are tokens it never learned to emit):
 * - **Existence** of kind k in an image: s(k) = log Σ_c p(c | P) · Σ_{noun of k} p(noun | P c),
 *   where P = [caption prompt] "There is a" and c runs over the 8 colours: the probability that
 *   the policy's caption continues with a k of some colour, read off one forward pass of 8
 *   sequences per image (`textLogits`). The POPE answer is "yes" iff s(k | image) exceeds
 *   s(k | the empty grey background): the image must raise the policy's belief in k (a pointwise
 *   mutual information test with threshold 0, no tuned threshold). Negatives per scene, as many
 *   as its present kinds (≤ 3): `random` absent kinds, `popular` (the absent kinds most frequent
 *   over the probe scenes) and `adversarial` (the absent kinds that co-occur most with the
 *   present ones: the co-occurrence prior under test).
 * - **QA** (count, colour, shape items of `sceneQa`): each candidate answer (the correct one and
 *   its incorrect siblings) is restated as the caption sentence that asserts it ("The star is
 *   red." → "There is a red star."; {@link captionFormCandidates}) and scored under the caption
 *   prompt; the policy's answer is the candidate with the highest sequence log-probability.
 *   Scored under the question itself, the shipped policy is near chance (measured on 100
 *   dpo-split scenes, world seed 1: 31.4% over 287 items of mostly 4 candidates, against 90.2% in
 *   caption form): it has never seen a question, so that would measure the prompt format, not
 *   what the policy knows.
 * - **Zero-shot kind** of single-object scenes: argmax_k s(k | image).
 * A scheduled policy (an imported `hf-onnx-vlm`, src/pipeline/eval.ts ScheduledEvalPolicy) gets the
 * same quantities from its decoder's teacher-forced scoring: s(k) from the log-probs of the
 * two-token continuations "<colour> <noun>" (p(c | P) · p(noun | P c) = p(c noun | P)), QA from
 * its own prompt ‖ response layout.
 * Every rate is a ratio of sums over scenes, with a bootstrap CI over scenes; each row's
 * difference to row 0 (the starting policy) is paired (same scenes, same resamples).
 *
 * @example
 * const probes = policyProbes({ scenes: 200, seed: 0 });
 * const units = await probes.run(policy);                       // per-scene results of one policy
 * const [report] = probes.summarise([units], 0, 2000);          // ProbeReport with CIs
 */
import { preprocessBatch } from "../../src/models/image-preprocess.ts";
import { LvlmModel } from "../../src/models/lvlm-model.ts";
import { bootstrapPlan, pairedRatioDiffCi, ratioCi, type BootstrapPlan } from "../../src/util/bootstrap.ts";
import { Rng } from "../../src/util/rng.ts";
import type { EvalPolicy, ProbeRunner, ScheduledEvalPolicy } from "../../src/pipeline/eval.ts";
import type { CiValue, ProbeReport } from "../../src/pipeline/report.ts";
import {
  CAPTION_PROMPTS, COLOURS, KIND_NOUNS, SHAPE_KINDS, coOccurrenceWeights, generateScenes, renderScene, sceneKinds, sceneQa,
  worldTokenize, type QaItem, type Scene, type ShapeKind, type Split,
} from "../world/index.ts";

export const POPE_SETTINGS = ["random", "popular", "adversarial"] as const;
export type PopeSetting = (typeof POPE_SETTINGS)[number];
export const QA_PROBE_TYPES = ["count", "colour", "shape"] as const;

export const PROBE_METHOD =
  "scored by log-probability (the policy is trained on captions only): existence = caption-continuation probability of the kind after \"There is a <colour>\", " +
  "yes iff the image raises it above the empty background's; QA = most likely candidate answer restated as a caption sentence; zero-shot = most likely kind";

export interface PolicyProbeOptions {
  /** Held-out scenes for POPE and QA. Default 200. */
  scenes?: number;
  /** Single-object held-out scenes for zero-shot kind. Default 180. */
  zeroShotScenes?: number;
  /** Split of the probe scenes. Default "heldout". */
  split?: Split;
  /** World seed of the probe scenes (the evaluation's). Default 0. */
  seed?: number;
  /** Render side (the source stage's). Default 64. */
  imageSize?: number;
  /** Images per forward pass. Default 8 (× 8 colour sequences). */
  chunk?: number;
}

/** Per-scene results of one policy. */
export interface ProbeUnits {
  /** [setting][scene] → tp, fp, fn, tn. */
  pope: Record<PopeSetting, Float64Array[]>;
  /** [type][scene] → correct, items. */
  qa: Record<string, [Float64Array, Float64Array]>;
  /** [scene] correct (0/1). */
  zeroShot: Float64Array;
}

/** Token ids of every noun of each kind (canonical + synonyms), in SHAPE_KINDS order. */
function kindTokenIds(policy: EvalPolicy): number[][] {
  return SHAPE_KINDS.map((k) => KIND_NOUNS[k].map((n) => single(policy, n)).filter((id): id is number => id !== null));
}

function single(policy: EvalPolicy, word: string): number | null {
  const ids = policy instanceof LvlmModel ? policy.tokenizer.encode(word, { addSpecialTokens: false }).ids : policy.encode(word);
  return ids.length === 1 ? ids[0]! : null;
}

/** The caption prompt followed by "There is a" (module doc), as the policy lays out a prompt. */
function existencePrefix(policy: EvalPolicy): number[] {
  if (policy instanceof LvlmModel) return [...policy.promptIds(CAPTION_PROMPTS[0]), ...policy.tokenizer.encode("There is a", { addSpecialTokens: false }).ids];
  return [...policy.decoder.model.promptIds(CAPTION_PROMPTS[0]), ...policy.encode("There is a")];
}

function logSoftmaxAt(logits: Float32Array, offset: number, V: number): Float64Array {
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, logits[offset + v]!);
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(logits[offset + v]! - m);
  const lse = m + Math.log(s);
  const out = new Float64Array(V);
  for (let v = 0; v < V; v++) out[v] = logits[offset + v]! - lse;
  return out;
}

const logSumExp = (xs: readonly number[]): number => {
  const m = Math.max(...xs);
  return m === -Infinity ? m : m + Math.log(xs.reduce((s, x) => s + Math.exp(x - m), 0));
};

/**
 * Existence scores s(k | image) for every image and kind: [images][9] (module doc).
 * `pixels` holds `n` preprocessed images back to back.
 */
export async function kindScores(policy: EvalPolicy, pixels: Float32Array, n: number, chunk = 8): Promise<Float64Array[]> {
  const prefix = existencePrefix(policy);
  const colourIds = COLOURS.map((c) => single(policy, c));
  if (colourIds.some((c) => c === null)) throw new Error("probes: the policy's tokenizer does not have every colour as one token");
  const kinds = kindTokenIds(policy);
  if (!(policy instanceof LvlmModel)) return scheduledKindScores(policy, pixels, n, prefix, colourIds as number[], kinds, chunk);
  const per = pixels.length / n;
  const V = policy.cfg.lm.vocabSize;
  const out: Float64Array[] = [];
  for (let start = 0; start < n; start += chunk) {
    const m = Math.min(chunk, n - start);
    // [m * 8] sequences: image i with prefix + colour c.
    const seqs: number[][] = [];
    const px = new Float32Array(m * COLOURS.length * per);
    for (let i = 0; i < m; i++)
      for (let c = 0; c < COLOURS.length; c++) {
        seqs.push([...prefix, colourIds[c]!]);
        px.set(pixels.subarray((start + i) * per, (start + i + 1) * per), (i * COLOURS.length + c) * per);
      }
    const { logits, dims } = await policy.textLogits(px, seqs);
    const T = dims[1]!; // logits [B, T, V]; position t predicts token t + 1
    for (let i = 0; i < m; i++) {
      const row0 = i * COLOURS.length;
      const colourLp = logSoftmaxAt(logits, (row0 * T + prefix.length - 1) * V, V);
      const perKind = SHAPE_KINDS.map(() => [] as number[]);
      for (let c = 0; c < COLOURS.length; c++) {
        const nounLp = logSoftmaxAt(logits, ((row0 + c) * T + prefix.length) * V, V);
        kinds.forEach((ids, k) => perKind[k]!.push(colourLp[colourIds[c]!]! + logSumExp(ids.map((id) => nounLp[id]!))));
      }
      out.push(Float64Array.from(perKind, (xs) => logSumExp(xs)));
    }
  }
  return out;
}

/**
 * kindScores of a scheduled policy, from its teacher-forced scoring path: p(c | P) · p(noun | P c)
 * = p(c noun | P), so s(k) = log Σ_{c, noun of k} exp(log p(c noun | P)) — the same quantity the
 * built-in path reads off one pass of logits, here as 8 × (nouns) two-token continuations per
 * image (each image's features computed once and shared by its continuations).
 */
async function scheduledKindScores(policy: ScheduledEvalPolicy, pixels: Float32Array, n: number, prefix: readonly number[], colourIds: readonly number[], kinds: readonly (readonly number[])[], chunk: number): Promise<Float64Array[]> {
  const per = pixels.length / n;
  const conts: { colour: number; kind: number; ids: number[] }[] = [];
  colourIds.forEach((c) => kinds.forEach((nouns, k) => nouns.forEach((noun) => conts.push({ colour: c, kind: k, ids: [...prefix, c, noun] }))));
  const answerMask = [...prefix.map(() => 0), 1, 1];
  const out: Float64Array[] = [];
  for (let start = 0; start < n; start += chunk) {
    const m = Math.min(chunk, n - start);
    const features = await Promise.all(Array.from({ length: m }, (_, i) => policy.decoder.imageFeatures(pixels.subarray((start + i) * per, (start + i + 1) * per), { stream: "probes" })));
    const scored = await policy.decoder.logps(
      features.flatMap((f) => conts.map((c) => ({ prompt: CAPTION_PROMPTS[0], response: "", features: f, scored: { ids: c.ids, answerMask } }))),
      { stream: "probes" },
    );
    for (let i = 0; i < m; i++) {
      const perKind = SHAPE_KINDS.map(() => [] as number[]);
      conts.forEach((c, j) => perKind[c.kind]!.push(scored[i * conts.length + j]!.logp));
      out.push(Float64Array.from(perKind, (xs) => logSumExp(xs)));
    }
  }
  return out;
}

/**
 * A count / colour / shape QA item's candidates (correct first) as caption sentences: "There is
 * one star." → "There is a star."; "The star is red." → "There is a red star."; "It is a star."
 * under "What shape is the red object?" → "There is a red star.".
 * @example
 * captionFormCandidates({ type: "colour", question: "What colour is the star?", answer: "The star is red.", incorrect: ["The star is blue."] });
 * // ["There is a red star.", "There is a blue star."]
 */
export function captionFormCandidates(item: QaItem): string[] {
  const all = [item.answer, ...item.incorrect];
  switch (item.type) {
    case "count":
      return all.map((a) => a.replace(/^There is one /, "There is a "));
    case "colour":
      return all.map((a) => {
        const m = /^The (\w+) is (\w+)\.$/.exec(a);
        if (!m) throw new Error(`probes: colour answer "${a}" is not "The <noun> is <colour>."`);
        return `There is a ${m[2]} ${m[1]}.`;
      });
    case "shape": {
      const colour = worldTokenize(item.question).find((t) => (COLOURS as readonly string[]).includes(t));
      if (!colour) throw new Error(`probes: shape question "${item.question}" names no colour`);
      return all.map((a) => {
        const m = /^It is an? (\w+)\.$/.exec(a);
        if (!m) throw new Error(`probes: shape answer "${a}" is not "It is a <noun>."`);
        return `There is a ${colour} ${m[1]}.`;
      });
    }
    default:
      throw new Error(`probes: QA type "${item.type}" has no caption form`);
  }
}

/** POPE negatives of one scene for one setting (as many as its present kinds, ≤ 3). */
export function popeNegatives(scene: Scene, setting: PopeSetting, popularity: readonly ShapeKind[], seed: number): ShapeKind[] {
  const present = sceneKinds(scene);
  const absent = SHAPE_KINDS.filter((k) => !present.includes(k));
  const n = Math.min(present.length, 3, absent.length);
  if (setting === "random") return new Rng(seed).shuffle([...absent]).slice(0, n);
  if (setting === "popular") return popularity.filter((k) => absent.includes(k)).slice(0, n);
  const w = coOccurrenceWeights(present, true);
  return [...absent].sort((a, b) => w[SHAPE_KINDS.indexOf(b)]! - w[SHAPE_KINDS.indexOf(a)]! || SHAPE_KINDS.indexOf(a) - SHAPE_KINDS.indexOf(b)).slice(0, n);
}

/** Kinds by how many probe scenes contain them (most first; ties in SHAPE_KINDS order). */
function kindPopularity(scenes: readonly Scene[]): ShapeKind[] {
  const f = new Map<ShapeKind, number>(SHAPE_KINDS.map((k) => [k, 0]));
  for (const s of scenes) for (const k of sceneKinds(s)) f.set(k, f.get(k)! + 1);
  return [...SHAPE_KINDS].sort((a, b) => f.get(b)! - f.get(a)! || SHAPE_KINDS.indexOf(a) - SHAPE_KINDS.indexOf(b));
}

async function pixelsOf(policy: EvalPolicy, pngs: readonly Uint8Array[]): Promise<Float32Array> {
  const { pixels, errors } = await preprocessBatch(pngs, policy.preprocess);
  const bad = errors.findIndex((e) => e !== null);
  if (bad >= 0) throw new Error(`probes: image ${bad}: ${errors[bad]!.message}`);
  return pixels;
}

/**
 * The probes as an evaluation ProbeRunner (scenes are drawn and rendered once, on first use).
 * @example
 * await evaluatePolicies(subjects, cfg, { probes: policyProbes({ scenes: 200, seed: cfg.seed }) });
 */
export function policyProbes(opts: PolicyProbeOptions = {}): ProbeRunner & { scenes(): Promise<{ pope: Scene[]; zeroShot: Scene[] }> } {
  const seed = opts.seed ?? 0;
  const size = opts.imageSize ?? 64;
  let data: Promise<{ pope: Scene[]; zeroShot: Scene[]; pngs: Uint8Array[]; zsPngs: Uint8Array[]; empty: Uint8Array }> | null = null;
  const load = () =>
    (data ??= (async () => {
      const split = opts.split ?? "heldout";
      const pope = generateScenes(split, opts.scenes ?? 200, { seed });
      // A different world seed keeps the single-object scenes apart from the caption evaluation's.
      const zeroShot = generateScenes(split, opts.zeroShotScenes ?? 180, { seed: seed + 7919, config: { minObjects: 1, maxObjects: 1, textProb: 0 } });
      const [pngs, zsPngs, empty] = await Promise.all([
        Promise.all(pope.map((s) => renderScene(s, { size }))),
        Promise.all(zeroShot.map((s) => renderScene(s, { size }))),
        renderScene({ objects: [], text: null }, { size }),
      ]);
      return { pope, zeroShot, pngs, zsPngs, empty };
    })());

  async function run(policy: EvalPolicy, signal?: AbortSignal): Promise<ProbeUnits> {
    const d = await load();
    const chunk = opts.chunk ?? 8;
    const px = await pixelsOf(policy, d.pngs);
    const scores = await kindScores(policy, px, d.pope.length, chunk);
    const [emptyScore] = await kindScores(policy, await pixelsOf(policy, [d.empty]), 1, 1);
    if (signal?.aborted) throw new DOMException("evaluation interrupted", "AbortError");
    const popularity = kindPopularity(d.pope);
    const pope = {} as ProbeUnits["pope"];
    for (const setting of POPE_SETTINGS) {
      pope[setting] = d.pope.map((scene, i) => {
        const yes = (k: ShapeKind): boolean => scores[i]![SHAPE_KINDS.indexOf(k)]! > emptyScore![SHAPE_KINDS.indexOf(k)]!;
        const positives = new Rng(seed * 1_000_003 + i).shuffle(sceneKinds(scene)).slice(0, 3);
        const negatives = popeNegatives(scene, setting, popularity, seed * 7_919 + i);
        const tp = positives.filter(yes).length, fn = positives.length - tp;
        const fp = negatives.filter(yes).length, tn = negatives.length - fp;
        return Float64Array.of(tp, fp, fn, tn);
      });
    }

    // QA: every count / colour / shape item, candidates scored under the question.
    const qa: ProbeUnits["qa"] = {};
    for (const t of QA_PROBE_TYPES) qa[t] = [new Float64Array(d.pope.length), new Float64Array(d.pope.length)];
    const per = px.length / d.pope.length;
    const items: { scene: number; type: string; first: number; n: number }[] = [];
    const answers: string[] = [];
    const owners: number[] = [];
    d.pope.forEach((scene, i) => {
      for (const it of sceneQa(scene)) {
        if (!(QA_PROBE_TYPES as readonly string[]).includes(it.type)) continue;
        items.push({ scene: i, type: it.type, first: answers.length, n: 1 + it.incorrect.length });
        for (const a of captionFormCandidates(it)) { answers.push(a); owners.push(i); }
      }
    });
    const lps = new Float64Array(answers.length);
    const B = 64;
    if (policy instanceof LvlmModel) {
      const texts = answers.map((a) => policy.scoredText(CAPTION_PROMPTS[0], a));
      for (let s = 0; s < texts.length; s += B) {
        if (signal?.aborted) throw new DOMException("evaluation interrupted", "AbortError");
        const part = texts.slice(s, s + B);
        const ipx = new Float32Array(part.length * per);
        part.forEach((_, j) => ipx.set(px.subarray(owners[s + j]! * per, (owners[s + j]! + 1) * per), j * per));
        const r = await policy.sequenceLogps(ipx, part);
        lps.set(r.logps, s);
      }
    } else {
      // the policy's own prompt ‖ response layout (its chat template), scored in the worker threads
      const features = await Promise.all(d.pope.map((_, i) => policy.decoder.imageFeatures(px.subarray(i * per, (i + 1) * per), { stream: "probes", ...(signal ? { signal } : {}) })));
      const r = await policy.decoder.logps(answers.map((a, j) => ({ prompt: CAPTION_PROMPTS[0], response: a, features: features[owners[j]!]! })), { stream: "probes", ...(signal ? { signal } : {}) });
      r.forEach((x, j) => (lps[j] = x.logp));
    }
    for (const it of items) {
      let best = 0;
      for (let j = 1; j < it.n; j++) if (lps[it.first + j]! > lps[it.first + best]!) best = j;
      qa[it.type]![0][it.scene]! += best === 0 ? 1 : 0;
      qa[it.type]![1][it.scene]! += 1;
    }

    // Zero-shot kind of single-object scenes.
    const zs = await kindScores(policy, await pixelsOf(policy, d.zsPngs), d.zeroShot.length, chunk);
    const zeroShot = Float64Array.from(d.zeroShot, (scene, i) => {
      let best = 0;
      for (let k = 1; k < SHAPE_KINDS.length; k++) if (zs[i]![k]! > zs[i]![best]!) best = k;
      return SHAPE_KINDS[best] === scene.objects[0]!.kind ? 1 : 0;
    });
    return { pope, qa, zeroShot };
  }

  function summarise(perRow: readonly unknown[], s: number, resamples: number): ProbeReport[] {
    const rows = perRow as readonly ProbeUnits[];
    if (rows.length === 0) return [];
    const n = rows[0]!.zeroShot.length, m = rows[0]!.pope.random.length;
    const plan = bootstrapPlan(m, { resamples, seed: s });
    const zsPlan = bootstrapPlan(n, { resamples, seed: s + 1 });
    const ones = new Float64Array(n).fill(1);
    const col = (u: ProbeUnits, st: PopeSetting, f: (x: Float64Array) => number): Float64Array => Float64Array.from(u.pope[st], f);
    const popeRatio = (u: ProbeUnits, st: PopeSetting, what: string): [Float64Array, Float64Array] => {
      const tp = col(u, st, (x) => x[0]!), fp = col(u, st, (x) => x[1]!), fn = col(u, st, (x) => x[2]!), tn = col(u, st, (x) => x[3]!);
      const add = (...a: Float64Array[]) => Float64Array.from(a[0]!, (_, i) => a.reduce((acc, x) => acc + x[i]!, 0));
      const all = add(tp, fp, fn, tn);
      switch (what) {
        case "accuracy": return [add(tp, tn), all];
        case "precision": return [tp, add(tp, fp)];
        case "recall": return [tp, add(tp, fn)];
        case "f1": return [add(tp, tp), add(tp, tp, fp, fn)];
        default: return [add(tp, fp), all]; // yes ratio
      }
    };
    const qaAll = (u: ProbeUnits): [Float64Array, Float64Array] => {
      const c = new Float64Array(m), t = new Float64Array(m);
      for (const k of QA_PROBE_TYPES) for (let i = 0; i < m; i++) { c[i]! += u.qa[k]![0][i]!; t[i]! += u.qa[k]![1][i]!; }
      return [c, t];
    };
    const ci = (p: BootstrapPlan, [a, b]: [Float64Array, Float64Array]): CiValue => ratioCi(p, a, b);
    return rows.map((u, r) => {
      const pope: ProbeReport["pope"] = {};
      for (const st of POPE_SETTINGS) {
        const q = u.pope[st].reduce((acc, x) => acc + x[0]! + x[1]! + x[2]! + x[3]!, 0);
        pope[st] = { questions: q, accuracy: ci(plan, popeRatio(u, st, "accuracy")), precision: ci(plan, popeRatio(u, st, "precision")), recall: ci(plan, popeRatio(u, st, "recall")), f1: ci(plan, popeRatio(u, st, "f1")), yesRatio: ci(plan, popeRatio(u, st, "yes")) };
      }
      const qa: ProbeReport["qa"] = {};
      for (const k of QA_PROBE_TYPES) qa[k] = { items: u.qa[k]![1].reduce((a, x) => a + x, 0), accuracy: ci(plan, u.qa[k]!) };
      const all = qaAll(u);
      qa.all = { items: all[1].reduce((a, x) => a + x, 0), accuracy: ci(plan, all) };
      let vsStart: ProbeReport["vsStart"] = null;
      if (r > 0) {
        const b = rows[0]!;
        vsStart = {};
        for (const st of POPE_SETTINGS) {
          const [an, ad] = popeRatio(u, st, "f1"), [bn, bd] = popeRatio(b, st, "f1");
          vsStart[`pope ${st} f1`] = pairedRatioDiffCi(plan, an, ad, bn, bd);
        }
        const [bn, bd] = qaAll(b);
        vsStart["qa all"] = pairedRatioDiffCi(plan, all[0], all[1], bn, bd);
        vsStart["zero-shot"] = pairedRatioDiffCi(zsPlan, u.zeroShot, ones, b.zeroShot, ones);
      }
      return { method: PROBE_METHOD, pope, qa, zeroShot: { scenes: n, accuracy: ratioCi(zsPlan, u.zeroShot, ones) }, vsStart };
    });
  }

  return { run, summarise, scenes: async () => { const d = await load(); return { pope: d.pope, zeroShot: d.zeroShot }; } };
}
