import { describe, expect, test } from "bun:test";
import { CO_OCCURRENCE_CLUSTERS, SHAPE_KINDS, coOccurrenceAffinity, coOccurrenceWeights, sampleCoOccurringKind, type ShapeKind } from "../../../demo/world/index.ts";
import { Rng } from "../../../src/util/rng.ts";

describe("co-occurrence structure", () => {
  test("symmetric; clusters partition the kinds", () => {
    for (const a of SHAPE_KINDS) for (const b of SHAPE_KINDS) expect(coOccurrenceAffinity(a, b)).toBe(coOccurrenceAffinity(b, a));
    expect(CO_OCCURRENCE_CLUSTERS.flat().sort()).toEqual([...SHAPE_KINDS].sort());
    expect(coOccurrenceAffinity("star", "heart")).toBe(1);
    expect(coOccurrenceAffinity("circle", "moon")).toBe(0.25);
    expect(coOccurrenceAffinity("circle", "hexagon")).toBe(0);
  });

  test("every multiset of 1–4 present kinds leaves an absent co-occurring kind (noise always possible)", () => {
    let sets = 0;
    const rec = (present: ShapeKind[], from: number): void => {
      if (present.length > 0) {
        sets++;
        const w = coOccurrenceWeights(present, true);
        expect(w.some((x) => x > 0)).toBe(true);
        present.forEach((k) => expect(w[SHAPE_KINDS.indexOf(k)]).toBe(0));
      }
      if (present.length === 4) return;
      for (let i = from; i < SHAPE_KINDS.length; i++) rec([...present, SHAPE_KINDS[i]!], i);
    };
    rec([], 0);
    expect(sets).toBe(9 + 45 + 165 + 495); // multisets of size 1..4 over 9 kinds
  });

  test("sampling frequencies follow the weights", () => {
    const rng = new Rng(1);
    const counts = new Map<string, number>();
    const n = 20000;
    for (let i = 0; i < n; i++) { const k = sampleCoOccurringKind(rng, ["star"], true)!; counts.set(k, (counts.get(k) ?? 0) + 1); }
    // weights: heart 1, moon 1, hexagon 0.25 → 4/9, 4/9, 1/9
    expect(Math.abs(counts.get("heart")! / n - 4 / 9)).toBeLessThan(0.015);
    expect(Math.abs(counts.get("moon")! / n - 4 / 9)).toBeLessThan(0.015);
    expect(Math.abs(counts.get("hexagon")! / n - 1 / 9)).toBeLessThan(0.01);
    expect(counts.size).toBe(3);
    expect(sampleCoOccurringKind(rng, [], true)).toBeNull();
  });
});
