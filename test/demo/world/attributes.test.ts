import { describe, expect, test } from "bun:test";
import { BACKGROUND_RGB, COLOURS, KIND_NOUNS, SHAPE_KINDS, colourRgb, kindNoun, pluralOf, sizeRadius } from "../../../demo/world/index.ts";

describe("attribute space", () => {
  test("colours are far apart from each other and from the background", () => {
    const all = [...COLOURS.map(colourRgb), BACKGROUND_RGB];
    for (let i = 0; i < all.length; i++)
      for (let j = i + 1; j < all.length; j++) {
        const d = Math.hypot(all[i]![0] - all[j]![0], all[i]![1] - all[j]![1], all[i]![2] - all[j]![2]);
        expect(d).toBeGreaterThan(80);
      }
  });

  test("nouns: canonical first, synonyms unique across kinds, plurals", () => {
    for (const k of SHAPE_KINDS) expect(KIND_NOUNS[k][0]).toBe(k);
    const nouns = Object.values(KIND_NOUNS).flat();
    expect(new Set(nouns).size).toBe(nouns.length);
    expect([pluralOf("circle"), pluralOf("box"), pluralOf("cross"), pluralOf("rhombus")]).toEqual(["circles", "boxes", "crosses", "rhombuses"]);
    expect([kindNoun("square", true, 1), kindNoun("circle", false, 9), kindNoun("star", false, -1)]).toEqual(["boxes", "disc", "star"]);
    expect(sizeRadius("large")).toBeGreaterThan(sizeRadius("small"));
  });
});
