import { describe, expect, test } from "bun:test";
import { captionScene, evaluateAnswer, generateScenes, hardNegatives } from "../../../demo/world/index.ts";
import { Rng } from "../../../src/util/rng.ts";

describe("hard negatives", () => {
  test("each variant is false for its scene in the way its type says, and keeps the wording", () => {
    const scenes = generateScenes("clip-pretrain", 300, { seed: 6 });
    const seen = new Set<string>();
    for (const [i, s] of scenes.entries()) {
      const c = captionScene(s, { relationProb: 1 });
      for (const h of hardNegatives(s, c.plan, new Rng(i))) {
        seen.add(h.type);
        expect(h.text).not.toBe(c.text);
        expect(h.plan.template).toBe(c.plan.template);
        const e = evaluateAnswer(h.text, s);
        if (h.type === "add-object" || h.type === "replace-kind") expect(e.hallucinatedKinds.length).toBeGreaterThan(0);
        if (h.type === "swap-colour") {
          expect(e.hallucinatedKinds).toEqual([]);
          expect(e.attributes.some((a) => a.attribute === "colour" && !a.correct)).toBe(true);
        }
        if (h.type === "flip-relation") {
          expect(e.hallucinatedKinds).toEqual([]);
          expect(e.attributes.every((a) => a.correct)).toBe(true);
          expect(e.relations.map((r) => r.correct)).toEqual([false]);
        }
      }
    }
    expect([...seen].sort()).toEqual(["add-object", "flip-relation", "replace-kind", "swap-colour"]);
  });
});
