import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { evaluateAnswer, generateScenes, textMentionSentence } from "../../../demo/world/index.ts";
import { exportClip, loadClip, loadClipModel } from "../../../src/models/index.ts";
import { Rng } from "../../../src/util/rng.ts";
import { pretrainClip, pretrainClipOptions, trainingTexts } from "../../../demo/recipes/pretrain-clip.ts";
import { ends, tinyClipOptions } from "./tiny.ts";

describe("pretrainClip recipe", () => {
  test("training texts: the first negative is the caption plus one absent object, the second a replaced kind, every negative is false and differs from the positive", () => {
    const rng = new Rng(7);
    for (const scene of generateScenes("clip-pretrain", 30)) {
      const t = trainingTexts(scene, rng, 8, 3, true);
      expect(evaluateAnswer(t.positive, scene).hallucinatedKinds).toEqual([]);
      expect(t.negatives.length).toBeGreaterThan(0);
      expect(t.negatives.length).toBeLessThanOrEqual(3);
      expect(new Set(t.negatives).size).toBe(t.negatives.length);
      expect(t.negatives).not.toContain(t.positive);
      const first = evaluateAnswer(t.negatives[0]!, scene);
      expect(first.hallucinatedKinds.length).toBe(1);
      expect(first.mentionedKinds.length).toBe(evaluateAnswer(t.positive, scene).mentionedKinds.length + 1);
      // second: one kind replaced (same number of mentioned groups, one absent kind)
      const second = evaluateAnswer(t.negatives[1]!, scene);
      expect(second.hallucinatedKinds.length).toBe(1);
      expect(t.negatives[1]!.split(",").length).toBe(t.positive.split(",").length);
    }
    expect(trainingTexts(generateScenes("clip-pretrain", 1)[0]!, rng, 8, 0).negatives).toEqual([]);
    // without kindFirst the same draws give the same set of negatives, in the shuffled order
    const s0 = generateScenes("clip-pretrain", 1)[0]!;
    const a = trainingTexts(s0, new Rng(9), 8, 9, false), b = trainingTexts(s0, new Rng(9), 8, 9, true);
    expect(a.positive).toBe(b.positive);
    expect([...a.negatives].sort()).toEqual([...b.negatives].sort());
  });

  test("training texts: a painted word is mentioned in the positive and every edit, and the text mention is itself an edit", () => {
    const scenes = generateScenes("clip-pretrain", 400);
    const withWord = scenes.filter((s) => s.text !== null);
    expect(withWord.length).toBeGreaterThan(5);
    for (const s of withWord) {
      const t = trainingTexts(s, new Rng(s.index), 8, 9);
      const mention = textMentionSentence(s.text!.word);
      expect(t.positive.endsWith(" " + mention)).toBe(true);
      const dropped = t.negatives.filter((n) => !n.includes("written"));
      expect(dropped).toEqual([t.positive.slice(0, -(mention.length + 1))]);
      for (const n of t.negatives) if (n.includes("written")) expect(n.endsWith(" " + mention)).toBe(true);
    }
    const plain = scenes.find((s) => s.text === null)!;
    const t = trainingTexts(plain, new Rng(1), 8, 9);
    expect(t.positive).not.toContain("written");
    const added = t.negatives.filter((n) => n.includes("written"));
    expect(added.length).toBe(1);
    expect(added[0]!.startsWith(t.positive + " The word ")).toBe(true);
  });

  test("tiny run: loss decreases, is reproducible from the seed, metrics are in range, and the export reloads with identical embeddings", async () => {
    const o = pretrainClipOptions.parse(tinyClipOptions);
    const a = await pretrainClip(o);
    expect(a.losses.length).toBe(16);
    const { first, last } = ends(a.losses);
    expect(last).toBeLessThan(first - 0.1);
    const b = await pretrainClip(o);
    expect(b.losses).toEqual(a.losses); // one ORT thread: bit-identical
    const m = a.metrics;
    expect(m.heldoutScenes).toBe(20);
    expect(m.retrievalGroups).toBe(2);
    for (const v of [m.retrievalTop1, m.retrievalTop5, m.zeroShotAccuracy, m.addedObjectPreference, m.wrongColourPreference]) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(1);
    }
    expect(m.retrievalTop5).toBeGreaterThanOrEqual(m.retrievalTop1);
    expect(m.addedObjectScenes).toBe(20);
    const dir = mkdtempSync(join(tmpdir(), "clipflow-recipe-clip-"));
    try {
      await exportClip(a.clip, dir);
      const texts = ["A red circle.", "Two blue squares and a star."];
      const want = await a.clip.encodeTexts(texts);
      const onnx = await loadClip(dir);
      const got = await onnx.encodeTexts(texts);
      expect(got.length).toBe(2 * 16);
      got.forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThan(1e-5));
      const trainable = await loadClipModel(dir);
      expect(Array.from(trainable.store.require("logit_scale").data)).toEqual(Array.from(a.clip.store.require("logit_scale").data));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("options are strict and checked", () => {
    expect(() => pretrainClipOptions.parse({ batchsize: 3 })).toThrow();
    expect(() => pretrainClipOptions.parse({ batchSize: 1 })).toThrow();
    expect(pretrainClipOptions.parse({}).contextLength).toBe(48);
  });
});
