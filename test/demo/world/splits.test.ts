import { describe, expect, test } from "bun:test";
import {
  SPLITS, TEXT_STRIP_TOP, generateScenes, sceneAt, sceneContentHash, splitOfContentHash, sceneKinds, sizeRadius, fnv1a64, mixSeed,
  type Scene, type Split,
} from "../../../demo/world/index.ts";

const N = 300;
const bySplit = new Map<Split, Scene[]>(SPLITS.map((s) => [s, generateScenes(s, N, { seed: 1 })]));

describe("scene generation", () => {
  test("scene i is the same whatever else is generated, and repeatable", () => {
    const s = bySplit.get("sft")!;
    expect(sceneAt("sft", 137, { seed: 1 })).toEqual(s[137]!);
    expect(generateScenes("sft", 3, { seed: 1, start: 136 })[1]).toEqual(s[137]!);
    expect(generateScenes("sft", 1, { seed: 1, start: 137 })[0]).toEqual(s[137]!);
    expect(s[137]!.id).toBe("sft/1/137");
  });

  test("different seeds and indices give different scenes", () => {
    const a = generateScenes("heldout", 50, { seed: 1 }).map(sceneContentHash);
    const b = generateScenes("heldout", 50, { seed: 2 }).map(sceneContentHash);
    expect(new Set(a).size).toBe(50);
    expect(a.filter((h) => b.includes(h)).length).toBe(0);
  });

  test("splits are disjoint by content hash, and each scene's hash maps to its own split", () => {
    const seen = new Map<string, Split>();
    for (const [split, scenes] of bySplit) {
      for (const s of scenes) {
        const h = sceneContentHash(s);
        expect(splitOfContentHash(h)).toBe(split);
        expect(seen.get(h) ?? split).toBe(split);
        seen.set(h, split);
      }
    }
    expect(seen.size).toBe(SPLITS.length * N);
  });

  test("content hash ignores object order and ids but not content", () => {
    const s = bySplit.get("dpo")!.find((x) => x.objects.length >= 2)!;
    const reversed = { ...s, id: "other", objects: [...s.objects].reverse() };
    expect(sceneContentHash(reversed)).toBe(sceneContentHash(s));
    const moved = { ...s, objects: s.objects.map((o, i) => (i === 0 ? { ...o, x: o.x + 1 / 256 } : o)) };
    expect(sceneContentHash(moved)).not.toBe(sceneContentHash(s));
  });

  test("1–4 objects, inside the image, never overlapping; painted words stay in their strip", () => {
    const counts = [0, 0, 0, 0, 0];
    let withText = 0;
    for (const scenes of bySplit.values())
      for (const s of scenes) {
        counts[s.objects.length]!++;
        const yMax = s.text ? TEXT_STRIP_TOP : 1;
        if (s.text) {
          withText++;
          expect(s.text.y).toBeGreaterThanOrEqual(TEXT_STRIP_TOP);
          expect(s.text.y + s.text.height).toBeLessThanOrEqual(1);
        }
        for (const [i, o] of s.objects.entries()) {
          expect(o.r).toBe(sizeRadius(o.size));
          expect(o.x - o.r).toBeGreaterThanOrEqual(0);
          expect(o.x + o.r).toBeLessThanOrEqual(1);
          expect(o.y - o.r).toBeGreaterThanOrEqual(0);
          expect(o.y + o.r).toBeLessThanOrEqual(yMax);
          for (const p of s.objects.slice(i + 1)) expect(Math.hypot(o.x - p.x, o.y - p.y)).toBeGreaterThan(o.r + p.r);
        }
      }
    expect(counts[0]).toBe(0);
    for (let k = 1; k <= 4; k++) expect(counts[k]!).toBeGreaterThan(0.15 * SPLITS.length * N);
    // textProb 0.05 over 1200 scenes: sd ≈ 0.0063
    expect(withText / (SPLITS.length * N)).toBeGreaterThan(0.025);
    expect(withText / (SPLITS.length * N)).toBeLessThan(0.08);
  });

  test("co-occurrence is skewed: a heart is far more likely with a star than without", () => {
    const scenes = generateScenes("clip-pretrain", 1500, { seed: 3, config: { minObjects: 2 } });
    const p = (cond: (s: Scene) => boolean): number => {
      const sel = scenes.filter(cond);
      return sel.filter((s) => sceneKinds(s).includes("heart")).length / sel.length;
    };
    const withStar = p((s) => s.objects[0]!.kind === "star");
    const withCross = p((s) => s.objects[0]!.kind === "cross");
    expect(withStar).toBeGreaterThan(0.4);
    expect(withCross).toBeLessThan(0.15);
    // coOccurrence 0 removes the skew
    const flat = generateScenes("clip-pretrain", 1500, { seed: 3, config: { minObjects: 2, coOccurrence: 0 } });
    const flatStar = flat.filter((s) => s.objects[0]!.kind === "star");
    expect(flatStar.filter((s) => sceneKinds(s).includes("heart")).length / flatStar.length).toBeLessThan(0.35);
  });

  test("config bounds are honoured and bad input is a one-line error", () => {
    const one = generateScenes("sft", 40, { seed: 1, config: { minObjects: 1, maxObjects: 1, textProb: 0 } });
    expect(one.every((s) => s.objects.length === 1 && s.text === null)).toBe(true);
    const all = generateScenes("sft", 40, { seed: 1, config: { minObjects: 4, maxObjects: 4, textProb: 1 } });
    expect(all.every((s) => s.objects.length === 4 && s.text !== null)).toBe(true);
    expect(() => sceneAt("train" as Split, 0)).toThrow(/unknown split "train"/);
    expect(() => sceneAt("sft", -1)).toThrow(/index/);
    expect(() => sceneAt("sft", 0, { config: { maxObjects: 5 } })).toThrow(/maxObjects/);
    expect(() => sceneAt("sft", 0, { config: { textProb: 2 } })).toThrow(/textProb/);
    expect(() => sceneAt("sft", 0, { config: { colours: 3 } as never })).toThrow(/unknown key "colours"/);
  });
});

describe("hashes", () => {
  test("FNV-1a 64 matches the published test vectors", () => {
    expect(fnv1a64("")).toBe("cbf29ce484222325");
    expect(fnv1a64("a")).toBe("af63dc4c8601ec8c");
    expect(fnv1a64("foobar")).toBe("85944171f73967e8");
  });
  test("mixSeed is deterministic and separates nearby inputs", () => {
    expect(mixSeed(1, 2, 3)).toBe(mixSeed(1, 2, 3));
    const xs = new Set<number>();
    for (let s = 0; s < 4; s++) for (let i = 0; i < 500; i++) xs.add(mixSeed(1, s, i));
    expect(xs.size).toBe(2000);
    expect(mixSeed(1, 0, 2 ** 32)).not.toBe(mixSeed(1, 0, 0));
    expect(() => mixSeed(1.5)).toThrow(/not an integer/);
  });
});
