import { describe, expect, test } from "bun:test";
import { lvlmPresets } from "../../../src/models/lvlm-config.ts";
import { LvlmModel } from "../../../src/models/lvlm-model.ts";
import { WordTokenizer } from "../../../src/models/word-tokenizer.ts";
import { Rng } from "../../../src/util/rng.ts";
import { captionFormCandidates, kindScores, policyProbes, popeNegatives } from "../../../demo/recipes/policy-probes.ts";
import { CAPTION_PROMPTS, COLOURS, KIND_NOUNS, SHAPE_KINDS, worldVocabulary, type Scene, type SceneObject } from "../../../demo/world/index.ts";

const obj = (kind: SceneObject["kind"], colour: SceneObject["colour"] = "red"): SceneObject => ({ kind, colour, size: "small", x: 0.5, y: 0.5, r: 0.11 });
const scene = (...objects: SceneObject[]): Scene => ({ id: "heldout/0/0", split: "heldout", seed: 0, index: 0, objects, text: null });

describe("QA in caption form", () => {
  test("count, colour and shape answers become the caption sentence that asserts them, correct first", () => {
    expect(captionFormCandidates({ type: "count", question: "How many stars are there?", answer: "There is one star.", incorrect: ["There are two stars.", "There are three stars."] }))
      .toEqual(["There is a star.", "There are two stars.", "There are three stars."]);
    expect(captionFormCandidates({ type: "colour", question: "What colour is the star?", answer: "The star is red.", incorrect: ["The star is blue."] }))
      .toEqual(["There is a red star.", "There is a blue star."]);
    expect(captionFormCandidates({ type: "shape", question: "Which shape is green?", answer: "It is a heart.", incorrect: ["It is a moon."] }))
      .toEqual(["There is a green heart.", "There is a green moon."]);
    expect(() => captionFormCandidates({ type: "exists", question: "Is there a star?", answer: "Yes.", incorrect: ["No."] })).toThrow("no caption form");
  });
});

describe("POPE negatives", () => {
  const s = scene(obj("star"), obj("circle"));
  test("adversarial: the absent kinds that co-occur most with the present ones", () => {
    // star: heart, moon 1.0 (cluster), hexagon 0.25; circle: square, triangle 1.0, moon, heart 0.25.
    // Summed: heart 1.25, moon 1.25, square 1, triangle 1, hexagon 0.25 → heart, moon (SHAPE_KINDS order on ties).
    expect(popeNegatives(s, "adversarial", [], 0)).toEqual(["heart", "moon"]);
  });
  test("popular: the most frequent absent kinds; random: absent kinds only, as many as present kinds", () => {
    expect(popeNegatives(s, "popular", ["circle", "cross", "star", "diamond"], 0)).toEqual(["cross", "diamond"]);
    for (let seed = 0; seed < 20; seed++) {
      const r = popeNegatives(s, "random", [], seed);
      expect(r.length).toBe(2);
      expect(r.some((k) => k === "star" || k === "circle")).toBe(false);
    }
  });
});

describe("probes through a tiny random LVLM", () => {
  const tok = WordTokenizer.fromCorpus(worldVocabulary());
  const m = LvlmModel.create(lvlmPresets.tiny(tok.vocabSize), tok, 3);
  const S = m.cfg.vision.imageSize;
  const rng = new Rng(1);
  const pixels = Float32Array.from({ length: 2 * 3 * S * S }, () => rng.normal());

  test("kind scores equal log Σ over colours and nouns of the sequence probability of '<colour> <noun>' after the prefix", async () => {
    const scores = await kindScores(m, pixels, 2, 1);
    expect(scores.length).toBe(2);
    expect(scores[0]!.length).toBe(SHAPE_KINDS.length);
    const prefix = [...m.promptIds(CAPTION_PROMPTS[0]), ...tok.encode("There is a", { addSpecialTokens: false }).ids];
    const id = (w: string): number => tok.encode(w, { addSpecialTokens: false }).ids[0]!;
    for (const img of [0, 1]) {
      for (const k of ["circle", "triangle", "moon"] as const) {
        const items = COLOURS.flatMap((c) => KIND_NOUNS[k].map((n) => {
          const ids = [...prefix, id(c), id(n)];
          return { ids, answerMask: ids.map((_, i) => (i >= prefix.length ? 1 : 0)), truncated: false };
        }));
        const px = new Float32Array(items.length * 3 * S * S);
        for (let i = 0; i < items.length; i++) px.set(pixels.subarray(img * 3 * S * S, (img + 1) * 3 * S * S), i * 3 * S * S);
        const { logps } = await m.sequenceLogps(px, items);
        const mx = Math.max(...logps);
        const ref = mx + Math.log([...logps].reduce((a, x) => a + Math.exp(x - mx), 0));
        expect(scores[img]![SHAPE_KINDS.indexOf(k)]!).toBeCloseTo(ref, 4);
      }
    }
  }, 60_000);

  test("run + summarise: counts per setting, CIs, paired differences of identical rows are 0", async () => {
    const probes = policyProbes({ scenes: 6, zeroShotScenes: 5, seed: 2, imageSize: 32, chunk: 3 });
    const u = await probes.run(m);
    const [a, b] = probes.summarise([u, u], 2, 200);
    const { pope } = await probes.scenes();
    const positives = pope.reduce((acc, s) => acc + Math.min(3, new Set(s.objects.map((o) => o.kind)).size), 0);
    for (const st of ["random", "popular", "adversarial"]) {
      expect(a!.pope[st]!.questions).toBe(2 * positives);
      const f1 = a!.pope[st]!.f1;
      expect(f1.lo).toBeLessThanOrEqual(f1.value);
      expect(f1.hi).toBeGreaterThanOrEqual(f1.value);
    }
    // Recall is the same in every setting (same positives); only negatives differ.
    expect(a!.pope.random!.recall.value).toBe(a!.pope.adversarial!.recall.value);
    expect(a!.qa.all!.items).toBe(a!.qa.count!.items + a!.qa.colour!.items + a!.qa.shape!.items);
    expect(a!.qa.count!.items).toBe(6);
    expect(a!.zeroShot.scenes).toBe(5);
    expect(a!.vsStart).toBeNull();
    expect(b!.vsStart!["qa all"]).toEqual({ value: 0, lo: 0, hi: 0 });
    expect(b!.vsStart!["pope adversarial f1"]).toEqual({ value: 0, lo: 0, hi: 0 });
  }, 60_000);
});
