/**
 * The evaluation of an imported policy (`hf-onnx-vlm`, driven through the scheduler's decoder)
 * against an independent reference: a tiny clipflow LVLM evaluated in process, and the same
 * LVLM exported by exportHfVlm and evaluated as a ScheduledEvalPolicy. Same greedy and sampled
 * answers, same CHAIR rows, same probe existence scores (float tolerance) and probe reports.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CAPTION_PROMPTS, generateScenes, renderScene, worldVocabulary } from "../../demo/world/index.ts";
import { kindScores, policyProbes } from "../../demo/recipes/policy-probes.ts";
import { exportHfVlm } from "../../src/models/hf-vlm/export.ts";
import { loadHfVlm } from "../../src/models/hf-vlm/policy.ts";
import { preprocessBatch } from "../../src/models/image-preprocess.ts";
import { lvlmPresets } from "../../src/models/lvlm-config.ts";
import { LvlmModel } from "../../src/models/lvlm-model.ts";
import { WordTokenizer } from "../../src/models/word-tokenizer.ts";
import { answerScenesK, evaluatePolicies, scheduledEvalPolicy, type EvalPolicy, type ScheduledEvalPolicy } from "../../src/pipeline/eval.ts";
import type { EvalConfig } from "../../src/pipeline/schema.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";

/**
 * A tiny random LVLM over the world's words (so the probes' colours and nouns are single
 * tokens), 4 image tokens, LM 32 × 2. Random weights are near-uniform and blind to the image:
 * the unembedding is sharpened (greedy choices far from ties across implementations) and the
 * blocks/projector scaled (answers depend on the image), as test/models/hf-vlm/fixture.ts does.
 */
function tinyWorldLvlm(): LvlmModel {
  const tok = WordTokenizer.fromCorpus(worldVocabulary());
  const ids = { pad: tok.special.pad, bos: tok.special.bos, eos: tok.special.eos };
  const base = lvlmPresets.tiny(tok.vocabSize, ids);
  const m = LvlmModel.create({ ...base, lm: { ...base.lm, layers: 2, maxPositions: 40 } }, tok, 11);
  for (const name of m.store.names()) {
    const f = name === "lm.head.w" || name === "lm.tok" ? 8 : (name.startsWith("lm.blocks") || name.startsWith("projector")) && name.endsWith(".w") ? 3 : 1;
    const p = m.store.require(name).data;
    for (let i = 0; i < p.length; i++) p[i] = p[i]! * f;
  }
  // Never <unk>: clipflow's word decoder writes it, the exported tokenizer.json (an added special
  // token) skips it, so a random model emitting it would differ in text, not in the evaluation.
  // Feature 0 after the final norm is exactly 1 (gain 0, bias 1); its unembedding row pushes <unk> down.
  m.store.require("lm.ln_f.g").data[0] = 0;
  m.store.require("lm.ln_f.b").data[0] = 1;
  const unk = tok.special.unk;
  if (unk === undefined) throw new Error("the world's word tokenizer has no <unk>");
  m.store.require("lm.head.w").data[unk] = -100;
  return m;
}

describe("evaluation of an imported hf-onnx-vlm policy == evaluation of its source LVLM", () => {
  const lvlm = tinyWorldLvlm();
  let dir: string;
  let scheduler: Scheduler;
  let imported: ScheduledEvalPolicy;
  const cfg = { model: "policy", split: "heldout", count: 8, seed: 4, prompt: null, maxNewTokens: 10, temperature: 0, metrics: ["chair"] } as EvalConfig;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "clipflow-eval-hfvlm-"));
    await exportHfVlm(lvlm, dir);
    scheduler = new Scheduler({ devices: ["cpu"] });
    imported = scheduledEvalPolicy(scheduler, "policy.eval", await loadHfVlm(dir), { maxBatch: 16 });
    await imported.decoder.ready;
  });
  afterAll(async () => {
    await scheduler.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("greedy and sampled answers per scene are the source's (same seeds); they mention shapes", async () => {
    const scenes = generateScenes("heldout", 6, { seed: 9 });
    const pngs = await Promise.all(scenes.map((s) => renderScene(s, { size: 32 })));
    for (const d of [{ temperature: 0, topP: 1, samples: 1, seed: 4 }, { temperature: 1, topP: 0.9, samples: 3, seed: 77 }]) {
      const want = await answerScenesK(lvlm, pngs, { ...d, maxNewTokens: 10 }, CAPTION_PROMPTS[0], { chunk: 4 });
      const got = await answerScenesK(imported, pngs, { ...d, maxNewTokens: 10 }, CAPTION_PROMPTS[0], { chunk: 4 });
      expect(got).toEqual(want);
      expect(want.flat().every((t) => t.length > 0)).toBe(true);
      expect(new Set(want.flat()).size).toBeGreaterThan(1); // answers depend on the image / the seed
      expect(want.flat().some((t) => /\b(circle|square|triangle|star|heart|moon|cross|diamond|hexagon)s?\b/.test(t))).toBe(true);
    }
  }, 120_000);

  test("existence scores of the probes: teacher-forced continuations == the source's logits (1e-4)", async () => {
    const scenes = generateScenes("heldout", 5, { seed: 2 });
    const pngs = await Promise.all(scenes.map((s) => renderScene(s, { size: 32 })));
    const { pixels } = await preprocessBatch(pngs, lvlm.preprocess);
    const want = await kindScores(lvlm, pixels, pngs.length, 2);
    const got = await kindScores(imported, pixels, pngs.length, 2);
    expect(got.length).toBe(5);
    let spread = 0;
    for (const [i, w] of want.entries()) {
      for (let k = 0; k < w.length; k++) {
        expect(Number.isFinite(w[k]!)).toBe(true);
        expect(Math.abs(got[i]![k]! - w[k]!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(w[k]!)));
      }
      spread = Math.max(spread, Math.max(...w) - Math.min(...w));
    }
    expect(spread).toBeGreaterThan(0.1); // scores that differ by kind: a comparison that can fail
  }, 120_000);

  test("the decoder's additions refuse bad input in one line: a scored layout with a short mask, pixels of the wrong size", async () => {
    const S = imported.decoder.model.imageSize;
    const features = await imported.decoder.imageFeatures(new Float32Array(3 * S * S));
    const bad = imported.decoder.logps([{ prompt: "", response: "", features, scored: { ids: [1, 2, 3], answerMask: [0, 1] } }]);
    await expect(bad).rejects.toThrow("decoder 'policy.eval': score request 0: answerMask has 2 entries for 3 ids");
    await expect(imported.decoder.imageFeatures(new Float32Array(5))).rejects.toThrow(`decoder 'policy.eval': pixels have 5 floats, expected [3, ${S}, ${S}]`);
  });

  test("evaluatePolicies: the same rows (greedy and sampled, CIs), examples and probe reports", async () => {
    const opts = (): Parameters<typeof evaluatePolicies>[2] => ({
      imageSize: 32, chunk: 4, resamples: 200, sampling: { temperature: 1, topP: 0.95, samples: 2 },
      probes: policyProbes({ scenes: 6, zeroShotScenes: 6, seed: cfg.seed, split: cfg.split, imageSize: 32 }),
    });
    const run = (policy: EvalPolicy) => evaluatePolicies([{ name: "start", model: "policy", pairs: null, policy }], cfg, opts());
    const want = await run(lvlm);
    const got = await run(imported);
    expect(got.probeError).toBeNull();
    expect(want.probeError).toBeNull();
    expect(got.decodings!.map((d) => [d.name, d.samples])).toEqual([["greedy", 1], ["sampled", 2]]);
    const { probes: gotProbes, ...gotRow } = got.rows[0]!;
    const { probes: wantProbes, ...wantRow } = want.rows[0]!;
    expect(gotRow).toEqual(wantRow);
    expect(wantRow.counts.answers).toBe(8);
    expect(wantRow.counts.mentions).toBeGreaterThan(0); // CHAIR over real mentions, not 0 / 0
    expect(got.examples).toEqual(want.examples);
    // POPE / QA / zero-shot decisions from log-probs equal to float tolerance: the same reports
    expect(gotProbes).toEqual(wantProbes);
    expect(wantProbes!.qa.all!.items).toBeGreaterThan(0);
  }, 180_000);
});
