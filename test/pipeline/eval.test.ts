/**
 * The evaluation: per-scene counts, rates with bootstrap CIs, paired differences, seed groups —
 * on hand-written answers (values checked by hand) and on a tiny random LVLM (shapes and counts).
 */
import { describe, expect, test } from "bun:test";
import { lvlmPresets } from "../../src/models/lvlm-config.ts";
import { LvlmModel } from "../../src/models/lvlm-model.ts";
import { WordTokenizer } from "../../src/models/word-tokenizer.ts";
import { evalRow, evaluatePolicies, pairedRateCis, rateCis, sceneCounts } from "../../src/pipeline/eval.ts";
import type { EvalRow } from "../../src/pipeline/report.ts";
import type { EvalConfig } from "../../src/pipeline/schema.ts";
import { bootstrapPlan } from "../../src/util/bootstrap.ts";
import { generateScenes, worldVocabulary, type Scene } from "../../demo/world/index.ts";

const scenes = generateScenes("heldout", 6, { seed: 3 });
const first = (s: Scene): string => `${s.objects[0]!.colour} ${s.objects[0]!.kind}`;
// A kind absent from scene s (the first of the list that is not in it).
const absent = (s: Scene): string => ["hexagon", "moon", "cross", "heart"].find((k) => !s.objects.some((o) => o.kind === k))!;

describe("eval statistics on hand-written answers", () => {
  test("per-scene counts sum a scene's samples; the greedy row fields equal the summed counts", () => {
    const clean = scenes.map((s) => [`There is a ${first(s)}.`, `There is a ${first(s)}.`]);
    const per = sceneCounts(clean, scenes);
    expect(per.map((c) => c.answers)).toEqual([2, 2, 2, 2, 2, 2]);
    expect(per.every((c) => c.hallucinated === 0 && c.mentions === 2)).toBe(true);
    const row = evalRow({ name: "x", model: "m", pairs: null }, scenes.map((s) => `There is a ${first(s)} and a ${absent(s)}.`), scenes);
    // One of two mentioned kinds is absent in every answer.
    expect(row.chairI).toBe(0.5);
    expect(row.chairS).toBe(1);
    expect(row.counts.hallucinated).toBe(6);
    const c = row.counts as Record<"addition" | "misread" | "count" | "other", number>;
    expect(c.addition + c.misread + c.count + c.other).toBe(6);
  });

  test("rates carry CIs that contain the value; paired difference of a row with itself is exactly 0", () => {
    const mixed = sceneCounts(scenes.map((s, i) => [i % 2 === 0 ? `There is a ${first(s)} and a ${absent(s)}.` : `There is a ${first(s)}.`]), scenes);
    const plan = bootstrapPlan(scenes.length, { resamples: 500, seed: 1 });
    const r = rateCis(plan, mixed);
    // 3 hallucinated of 9 mentions.
    expect(r.chairI!.value).toBeCloseTo(3 / 9, 12);
    expect(r.chairI!.lo).toBeLessThan(r.chairI!.value);
    expect(r.chairI!.hi).toBeGreaterThan(r.chairI!.value);
    expect(r.addition!.value + r.misread!.value + r.count!.value + r.other!.value).toBeCloseTo(r.chairI!.value, 12);
    const d = pairedRateCis(plan, mixed, mixed);
    expect(d.chairI).toEqual({ value: 0, lo: 0, hi: 0 });
  });
});

describe("evaluatePolicies on a tiny random LVLM", () => {
  const tok = WordTokenizer.fromCorpus(worldVocabulary());
  const m = LvlmModel.create(lvlmPresets.tiny(tok.vocabSize), tok, 5);
  const cfg = { model: "policy", split: "heldout", count: 5, seed: 2, prompt: null, maxNewTokens: 6, temperature: 0, metrics: ["chair"] } as EvalConfig;

  test("greedy and sampled decodings, paired CIs vs the start and the random-pairs rows; same bytes twice", async () => {
    const subjects = [
      { name: "SFT policy", model: "a", pairs: null, policy: m },
      { name: "DPO on random pairs", model: "b", pairs: 3, policy: m },
      { name: "CLIP-DPO", model: "c", pairs: 3, policy: m },
    ];
    const opts = { imageSize: 32, sampling: { temperature: 1, topP: 0.9, samples: 3 }, resamples: 200, chunk: 4, probes: null };
    const e = await evaluatePolicies(subjects, cfg, opts);
    expect(e.decodings!.map((d) => [d.name, d.samples])).toEqual([["greedy", 1], ["sampled", 3]]);
    expect(e.rows.map((r) => r.decodings!.map((d) => d.answers))).toEqual([[5, 15], [5, 15], [5, 15]]);
    expect(e.rows[0]!.decodings![0]!.vsStart).toBeNull();
    expect(e.rows[0]!.decodings![0]!.vsRandom).toBeNull();
    expect(e.rows[1]!.decodings![1]!.vsRandom).toBeNull();
    // The same weights decode the same answers (same seeds per scene), so every paired difference is exactly 0.
    expect(e.rows[2]!.decodings![1]!.vsStart!.chairI).toEqual({ value: 0, lo: 0, hi: 0 });
    expect(e.rows[2]!.decodings![1]!.vsRandom!.cover).toEqual({ value: 0, lo: 0, hi: 0 });
    expect(e.examples[0]!.sampled![2]!.length).toBe(3);
    const again = await evaluatePolicies(subjects, cfg, opts);
    expect(JSON.stringify(again.rows)).toBe(JSON.stringify(e.rows));
  }, 60_000);
});
