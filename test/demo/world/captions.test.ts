import { describe, expect, test } from "bun:test";
import {
  CAPTION_PROMPTS, captionDefaultsFor, captionScene, coOccurrenceAffinity, evaluateAnswer, generateScenes, hallucinationMetrics, sceneKinds,
  SPLITS, type Scene,
} from "../../../demo/world/index.ts";

const sft = generateScenes("sft", 2500, { seed: 1 });

describe("captions", () => {
  test("deterministic per (scene, index); indices vary phrasing; all five prompts are used", () => {
    const s = sft[11]!;
    expect(captionScene(s, { index: 2 })).toEqual(captionScene(s, { index: 2 }));
    const texts = new Set(Array.from({ length: 12 }, (_, i) => captionScene(s, { index: i }).text));
    expect(texts.size).toBeGreaterThan(3);
    const prompts = new Set(sft.slice(0, 200).map((x) => captionScene(x).prompt));
    expect([...prompts].sort()).toEqual([...CAPTION_PROMPTS].sort());
  });

  test("clean captions of every split are exactly truthful and complete under the parser", () => {
    for (const split of SPLITS) {
      const scenes = generateScenes(split, 300, { seed: 4 });
      const opts = split === "sft" ? { ...captionDefaultsFor("sft"), noiseProb: 0 } : captionDefaultsFor(split);
      const m = hallucinationMetrics(scenes.map((scene) => ({ text: captionScene(scene, opts).text, scene })));
      expect(m.chairI).toBe(0);
      expect(m.cover).toBe(1);
      expect(m.attributeHallucination).toBe(0);
      expect(m.relationHallucination).toBe(0);
      expect(m.counts.relations).toBeGreaterThan(30);
      expect(m.counts.attributePairs).toBeGreaterThan(m.counts.mentions);
    }
  });

  test("sft captions carry co-occurrence noise at rate ≈ p, and clip-pretrain captions none", () => {
    const rate = (p: number): number => sft.filter((s) => captionScene(s, { ...captionDefaultsFor("sft"), noiseProb: p }).noise.addedKind !== null).length / sft.length;
    // n = 2500: binomial sd ≤ 0.01, tolerance 0.035
    expect(Math.abs(rate(0.3) - 0.3)).toBeLessThan(0.035);
    expect(Math.abs(rate(0.6) - 0.6)).toBeLessThan(0.035);
    expect(rate(0)).toBe(0);
    expect(captionDefaultsFor("sft").noiseProb).toBe(0.3);
    const pre = generateScenes("clip-pretrain", 300, { seed: 1 });
    expect(pre.every((s) => captionScene(s, captionDefaultsFor("clip-pretrain")).noise.addedKind === null)).toBe(true);
  });

  test("the added object is absent, co-occurs with a present kind, and is a measured hallucination", () => {
    let noisy = 0, sameCluster = 0;
    for (const s of sft.slice(0, 800)) {
      const c = captionScene(s, { ...captionDefaultsFor("sft"), noiseProb: 1 });
      const k = c.noise.addedKind!;
      expect(k).not.toBeNull();
      const kinds = sceneKinds(s);
      expect(kinds).not.toContain(k);
      expect(Math.max(...kinds.map((p) => coOccurrenceAffinity(p, k)))).toBeGreaterThan(0);
      if (Math.max(...kinds.map((p) => coOccurrenceAffinity(p, k))) === 1) sameCluster++;
      expect(evaluateAnswer(c.text, s).hallucinatedKinds).toEqual([k]);
      noisy++;
    }
    expect(noisy).toBe(800);
    expect(sameCluster / noisy).toBeGreaterThan(0.6); // strong links dominate the noise
  });

  test("noise keeps the clean caption's wording: removing the added group gives the clean plan", () => {
    for (const s of sft.slice(0, 200)) {
      const clean = captionScene(s, { index: 3 });
      const noisy = captionScene(s, { index: 3, noiseProb: 1 });
      expect(noisy.plan.template).toBe(clean.plan.template);
      const kept = noisy.plan.groups.filter((g) => g.kind !== noisy.noise.addedKind);
      expect(kept).toEqual(clean.plan.groups.filter((g) => g.kind !== noisy.noise.addedKind));
      expect(noisy.prompt).toBe(clean.prompt);
    }
  });

  test("optional wrong-attribute noise names a colour no object of that kind has", () => {
    let fired = 0;
    const pairs: { text: string; scene: Scene }[] = [];
    for (const s of sft.slice(0, 600)) {
      const c = captionScene(s, { wrongAttributeProb: 0.5 });
      pairs.push({ text: c.text, scene: s });
      const w = c.noise.wrongAttribute;
      if (!w) continue;
      fired++;
      expect(s.objects.some((o) => o.kind === w.kind && o.colour === w.from)).toBe(true);
      expect(s.objects.some((o) => o.kind === w.kind && o.colour === w.to)).toBe(false);
      expect(evaluateAnswer(c.text, s).attributes.some((a) => a.kind === w.kind && a.attribute === "colour" && a.value === w.to && !a.correct)).toBe(true);
    }
    expect(Math.abs(fired / 600 - 0.5)).toBeLessThan(0.07);
    const m = hallucinationMetrics(pairs);
    expect(m.chairI).toBe(0);
    expect(m.attributeHallucinationOnPresent).toBeGreaterThan(0.1);
  });

  test("bad options are one-line errors", () => {
    expect(() => captionScene(sft[0]!, { noiseProb: 1.5 })).toThrow(/noiseProb must be in \[0, 1\]/);
    expect(() => captionScene(sft[0]!, { index: -1 })).toThrow(/index/);
    expect(() => captionScene(sft[0]!, { noise: 0.2 } as never)).toThrow(/unknown key "noise"/);
  });
});
