import { describe, expect, test } from "bun:test";
import {
  CAPTION_PROMPTS, captionScene, generateScenes, hardNegatives, sceneQa, worldTokenize, worldVocabulary, zeroShotPrompts, SPLITS, SHAPE_KINDS,
} from "../../../demo/world/index.ts";
import { Rng } from "../../../src/util/rng.ts";

describe("closed vocabulary", () => {
  const vocab = worldVocabulary();
  const set = new Set(vocab);

  test("unique, lower-case, stable", () => {
    expect(set.size).toBe(vocab.length);
    expect(vocab.every((w) => w === w.toLowerCase() && w.length > 0 && !/\s/.test(w))).toBe(true);
    expect(worldVocabulary()).toEqual(vocab);
    for (const w of ["circle", "circles", "box", "boxes", "crosses", "left", "of", "above", "two", "yes", "no", ".", ",", "?"]) expect(set).toContain(w);
  });

  test("every token of every generated text is in the vocabulary", () => {
    const missing = new Set<string>();
    const check = (t: string): void => worldTokenize(t).forEach((w) => { if (!set.has(w)) missing.add(w); });
    let texts = 0;
    for (const split of SPLITS)
      for (const [i, s] of generateScenes(split, 150, { seed: 9, config: { textProb: 0.2 } }).entries()) {
        for (let k = 0; k < 3; k++) {
          const c = captionScene(s, { index: k, noiseProb: 0.5, wrongAttributeProb: 0.3, sizeProb: 0.7, synonymProb: 0.6, relationProb: 0.8 });
          check(c.text); check(c.prompt); texts += 2;
          for (const h of hardNegatives(s, c.plan, new Rng(i * 7 + k))) { check(h.text); texts++; }
        }
        for (const q of sceneQa(s, i)) { check(q.question); check(q.answer); q.incorrect.forEach(check); texts += 2 + q.incorrect.length; }
      }
    CAPTION_PROMPTS.forEach(check);
    zeroShotPrompts(SHAPE_KINDS).forEach(check);
    expect([...missing]).toEqual([]);
    expect(texts).toBeGreaterThan(5000);
  });

  test("the tokenizer lower-cases and splits punctuation; unknown symbols surface as tokens", () => {
    expect(worldTokenize("There are TWO red circles, left of it?")).toEqual(["there", "are", "two", "red", "circles", ",", "left", "of", "it", "?"]);
    expect(worldTokenize("3 stars!")).toEqual(["3", "stars", "!"]);
  });
});
