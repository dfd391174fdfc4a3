import { describe, expect, test } from "bun:test";
import { clipImageConfig } from "../../../src/models/preprocessor-config.ts";
import type { ClipEncoder } from "../../../src/models/index.ts";
import { countItems, probeClip, relationItems } from "../../../demo/recipes/clip-probes.ts";
import { generateScenes } from "../../../demo/world/index.ts";

/** A CLIP that sees nothing and reads one word: every image is [1, 0]; a text is [1, 0] iff it says `word`. */
function wordClip(word: string): ClipEncoder {
  return {
    embedDim: 2, imageSize: 32, contextLength: 32, logitScale: 100, preprocess: clipImageConfig(32),
    tokenizer: null as never,
    encodeImages: async (_p, n) => Float32Array.from({ length: 2 * n }, (_, i) => (i % 2 === 0 ? 1 : 0)),
    encodeIds: async () => { throw new Error("unused"); },
    encodeTexts: async (texts) => Float32Array.from(texts.flatMap((t) => (t.includes(word) ? [1, 0] : [0, 1]))),
  };
}

describe("CLIP probes", () => {
  test("relation items: two distinguishable objects with a clear relation on the axis; the altered text flips it", () => {
    const scenes = generateScenes("heldout", 60, { seed: 4, config: { minObjects: 2, maxObjects: 2, textProb: 0 } });
    const lr = relationItems(scenes, "x");
    expect(lr.length).toBeGreaterThan(5);
    for (const it of lr) {
      expect(/left of|right of/.test(it.truth)).toBe(true);
      expect(it.altered).toBe(it.truth.includes("left of") ? it.truth.replace("left of", "right of") : it.truth.replace("right of", "left of"));
    }
    for (const it of relationItems(scenes, "y")) expect(/ (above|below) /.test(it.truth)).toBe(true);
  });

  test("count items: the layout made uniform, two vs three", () => {
    const items = countItems(generateScenes("heldout", 20, { seed: 4, config: { minObjects: 2, maxObjects: 3, textProb: 0 } }));
    expect(items.length).toBe(20);
    for (const it of items) {
      const o = it.scene.objects;
      expect(new Set(o.map((x) => `${x.kind}:${x.colour}`)).size).toBe(1);
      expect(it.truth.startsWith(`There are ${o.length === 2 ? "two" : "three"} `)).toBe(true);
      expect(it.altered.startsWith(`There are ${o.length === 2 ? "three" : "two"} `)).toBe(true);
    }
  });

  test("accuracy is the share of items whose true text wins; a CLIP that only reads 'left of' is right exactly on the left-of items", async () => {
    const r = await probeClip(wordClip("left of"), { scenes: 80, seed: 2, resamples: 300 });
    const scenes = generateScenes("heldout", 80, { seed: 2, config: { minObjects: 2, maxObjects: 2, textProb: 0 } });
    const lr = relationItems(scenes, "x");
    const left = lr.filter((x) => x.truth.includes("left of")).length;
    expect(r.leftRight.items).toBe(lr.length);
    expect(r.leftRight.accuracy.value).toBeCloseTo(left / lr.length, 12);
    expect(r.leftRight.meanMargin).toBeCloseTo((100 * (2 * left - lr.length)) / lr.length, 6);
    // It never reads "above"/"three": ties are not wins.
    expect(r.aboveBelow.accuracy.value).toBe(0);
    expect(r.twoThree.accuracy.value).toBe(0);
    const three = await probeClip(wordClip("three"), { scenes: 80, seed: 2, resamples: 300 });
    const counts = countItems(generateScenes("heldout", 80, { seed: 3, config: { minObjects: 2, maxObjects: 3, textProb: 0 } }));
    expect(three.twoThree.accuracy.value).toBeCloseTo(counts.filter((c) => c.truth.includes("three")).length / counts.length, 12);
  }, 30_000);
});
