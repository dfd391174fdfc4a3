import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClipModel, exportClip, exportLvlm, loadLvlm } from "../../../src/models/index.ts";
import { clipConfigOf, pretrainClipOptions } from "../../../demo/recipes/pretrain-clip.ts";
import { sftPolicy, sftPolicyOptions } from "../../../demo/recipes/sft-policy.ts";
import { pixelsOf, renderAll, worldTokenizer } from "../../../demo/recipes/world-data.ts";
import { generateScenes } from "../../../demo/world/index.ts";
import { ends, tinyClipOptions, tinySftOptions } from "./tiny.ts";

describe("sftPolicy recipe", () => {
  test("tiny run: loss decreases, the adopted vision tower stays frozen (trainVision off), sampled captions are diverse, and the export reloads with identical log-probs", async () => {
    const dir = mkdtempSync(join(tmpdir(), "clipflow-recipe-sft-"));
    try {
      const clipDir = join(dir, "clip"), outDir = join(dir, "lvlm");
      const clip = ClipModel.create(clipConfigOf(pretrainClipOptions.parse(tinyClipOptions)), worldTokenizer(48), 3);
      await exportClip(clip, clipDir);
      const o = sftPolicyOptions.parse({ ...tinySftOptions, clip: clipDir });
      const r = await sftPolicy(o);
      expect(r.losses.length).toBe(16);
      const { first, last } = ends(r.losses);
      expect(last).toBeLessThan(first - 0.3);
      for (const n of r.policy.store.names().filter((x) => x.startsWith("vision."))) {
        expect(Array.from(r.policy.store.require(n).data)).toEqual(Array.from(clip.store.require(n).data));
      }
      expect(r.trainableParams).toBeLessThan(r.params);
      expect(r.noisyShare).toBeGreaterThan(0);
      const m = r.metrics;
      expect(m.greedy.answers).toBe(4);
      expect(m.sampled.answers).toBe(12);
      expect(m.distinctPerImage).toBeGreaterThan(1);
      expect(m.examples.length).toBe(4);
      await exportLvlm(r.policy, outDir);
      const back = await loadLvlm(outDir);
      const scenes = generateScenes("heldout", 2);
      const px = pixelsOf(await renderAll(scenes, 32), [0, 1], back.preprocess);
      const items = [back.scoredText("Describe the image.", "A red circle."), back.scoredText("What is in this picture?", "Two stars.")];
      const a = await r.policy.sequenceLogps(px, items), b = await back.sequenceLogps(px, items);
      expect(b.logps.length).toBe(2);
      a.logps.forEach((v, i) => expect(Math.abs(v - b.logps[i]!)).toBeLessThan(1e-4));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("options are strict and need the CLIP folder", () => {
    expect(() => sftPolicyOptions.parse({})).toThrow();
    expect(() => sftPolicyOptions.parse({ clip: "x", noiseProb: 1.5 })).toThrow();
    expect(() => sftPolicyOptions.parse({ clip: "x", lr: 1 })).toThrow();
    expect(sftPolicyOptions.parse({ clip: "x" }).noiseProb).toBe(0.3);
  });
});

describe("sftPolicy with trainVision", () => {
  test("fine-tunes the vision blocks from pixels: vision weights move, loss decreases", async () => {
    const dir = mkdtempSync(join(tmpdir(), "clipflow-recipe-sftv-"));
    try {
      const clip = ClipModel.create(clipConfigOf(pretrainClipOptions.parse(tinyClipOptions)), worldTokenizer(48), 3);
      await exportClip(clip, dir);
      const r = await sftPolicy(sftPolicyOptions.parse({ ...tinySftOptions, clip: dir, trainVision: true }));
      const { first, last } = ends(r.losses);
      expect(last).toBeLessThan(first - 0.3);
      expect(r.trainableParams).toBe(r.params);
      const moved = r.policy.store.names().filter((n) => n.startsWith("vision.") && r.policy.store.require(n).data.some((v, i) => v !== clip.store.require(n).data[i]));
      expect(moved.length).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
