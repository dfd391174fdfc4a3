import { describe, expect, test } from "bun:test";
import { join, resolve } from "node:path";
import { evaluateAnswer, generateScenes } from "../../../demo/world/index.ts";
import { generate, loadClip, loadClipModel, loadLvlm } from "../../../src/models/index.ts";
import { evaluateClip } from "../../../demo/recipes/clip-eval.ts";
import { pixelsOf, renderAll } from "../../../demo/recipes/world-data.ts";

const models = resolve(import.meta.dir, "../../../models");

describe("shipped shapes models", () => {
  test("shapes-clip loads from its ONNX folder, embeds at the right shapes and retrieves held-out captions far above chance", async () => {
    const clip = await loadClip(join(models, "shapes-clip"));
    expect(clip.embedDim).toBe(128);
    expect(clip.imageSize).toBe(64);
    expect(clip.contextLength).toBe(48);
    const t = await clip.encodeTexts(["A red circle.", "Two blue squares and a star."]);
    expect(t.length).toBe(2 * 128);
    // 50 held-out scenes, each image against the 50 clean captions: chance is 2%.
    const m = await evaluateClip(clip, { scenes: 50, candidates: 50 });
    expect(m.retrievalGroups).toBe(1);
    expect(m.retrievalTop1).toBeGreaterThanOrEqual(0.8);
    // The CLIP-DPO signal: the clean caption beats the same caption plus an absent object…
    expect(m.addedObjectPreference).toBeGreaterThanOrEqual(0.9);
    // …and the same caption with one shape kind replaced (the patch warm-up's purpose).
    expect(m.replacedKindPreference).toBeGreaterThanOrEqual(0.8);
  });

  test("shapes-lvlm loads with shapes-clip's vision blocks (fine-tuned from them) and captions held-out scenes fluently", async () => {
    const policy = await loadLvlm(join(models, "shapes-lvlm"));
    const clip = await loadClipModel(join(models, "shapes-clip"));
    expect(policy.imageTokens).toBe(64);
    expect(policy.cfg.vision).toEqual(clip.cfg.vision);
    // The recipe (trainVision) fine-tunes the blocks the policy reads: same names and shapes as
    // the CLIP's, different values, and saved as trained.
    const vision = policy.store.names().filter((n) => n.startsWith("vision."));
    expect(vision.length).toBeGreaterThan(0);
    for (const n of vision) expect(policy.store.require(n).shape).toEqual(clip.store.require(n).shape);
    expect(vision.filter((n) => !Bun.deepEquals(policy.store.require(n).data, clip.store.require(n).data)).length).toBeGreaterThan(vision.length / 2);
    expect(policy.store.trainableNames().filter((n) => n.startsWith("vision.")).sort()).toEqual([...vision].sort());
    const scenes = generateScenes("heldout", 3);
    const r = await renderAll(scenes, 64);
    for (let i = 0; i < scenes.length; i++) {
      const [s] = await generate(policy, pixelsOf(r, [i], policy.preprocess), "Describe the image.", { maxNewTokens: 56, temperature: 0 });
      expect(s!.finish).toBe("stop");
      expect(s!.text).toMatch(/^[a-z].*\.$/);
      expect(s!.text).not.toContain("<unk>");
      const e = evaluateAnswer(s!.text, scenes[i]!);
      expect(e.mentionedKinds.length).toBeGreaterThan(0);
    }
    const items = [policy.scoredText("Describe the image.", "A red circle.")];
    const lp = await policy.sequenceLogps(pixelsOf(r, [0], policy.preprocess), items);
    expect(lp.logps.length).toBe(1);
    expect(lp.nTokens[0]).toBe(5); // "a red circle ." + eos
    expect(lp.logps[0]!).toBeLessThan(0);
  });
});
