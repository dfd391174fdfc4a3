import { describe, expect, test } from "bun:test";
import { captionScene, generateScenes, hardNegatives, renderScene, worldVocabulary, zeroShotPrompts, CAPTION_PROMPTS } from "../../../demo/world/index.ts";
import { clipImageConfig, preprocessImage } from "../../../src/models/index.ts";
import { Rng } from "../../../src/util/rng.ts";
import { pixelsOf, renderAll, worldTokenizer } from "../../../demo/recipes/world-data.ts";

describe("recipe world data", () => {
  test("pixelsOf equals CLIP preprocessing of the rendered PNG (the fast path against the reference)", async () => {
    const scenes = generateScenes("heldout", 5, { seed: 3 });
    const r = await renderAll(scenes, 64, 2);
    expect(r.rgb.length).toBe(5 * 64 * 64 * 3);
    const cfg = clipImageConfig(64);
    const rows = [4, 0, 2];
    const fast = pixelsOf(r, rows, cfg);
    expect(fast.length).toBe(3 * 3 * 64 * 64);
    for (let k = 0; k < rows.length; k++) {
      const ref = await preprocessImage(await renderScene(scenes[rows[k]!]!, { size: 64 }), cfg);
      let maxDiff = 0;
      for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ref[i]! - fast[k * ref.length + i]!));
      expect(maxDiff).toBeLessThan(1e-5);
    }
    expect(() => pixelsOf(r, [5], cfg)).toThrow("row 5 outside [0, 5)");
    expect(() => pixelsOf(r, [0], clipImageConfig(32))).toThrow("renders are 64²");
  });

  test("the world tokenizer encodes every caption, hard negative, prompt and zero-shot prompt without <unk>", () => {
    const tok = worldTokenizer(48);
    expect(tok.vocabSize).toBe(worldVocabulary().length + 5);
    expect(tok.modelMaxLength).toBe(48);
    const texts: string[] = [...CAPTION_PROMPTS, ...zeroShotPrompts()];
    const rng = new Rng(1);
    for (const s of generateScenes("sft", 40)) {
      const c = captionScene(s, { noiseProb: 0.5, wrongAttributeProb: 0.5 });
      texts.push(c.text, ...hardNegatives(s, c.plan, rng).map((h) => h.text));
    }
    for (const t of texts) expect(tok.encode(t).ids).not.toContain(tok.special.unk);
  });
});
