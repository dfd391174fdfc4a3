import { describe, expect, test } from "bun:test";
import { RATE_DEFINITIONS, addAnswerCounts, attributeAnswer, zeroCounts } from "../../../demo/world/hallucination-attribution.ts";
import type { SceneObject } from "../../../demo/world/index.ts";

// Truth: a large red circle top-left, a small blue square top-right, a small yellow star bottom-middle.
const objects: SceneObject[] = [
  { kind: "circle", colour: "red", size: "large", x: 0.2, y: 0.3, r: 0.18 },
  { kind: "square", colour: "blue", size: "small", x: 0.7, y: 0.3, r: 0.11 },
  { kind: "star", colour: "yellow", size: "small", x: 0.5, y: 0.8, r: 0.11 },
];
const scene = { objects };
// Kinds with co-occurrence affinity > 0 to {circle, square, star}: square, triangle, moon, heart (clusters/bridges),
// cross (square bridge), hexagon (star bridge). Diamond has none.

const cause = (text: string): string[] => attributeAnswer(text, scene).hallucinations.map((h) => `${h.kind}:${h.cause}${h.source ? `<${h.source}` : ""}`);

describe("hallucination attribution (hand-classified captions)", () => {
  test("a faithful caption has nothing to attribute", () => {
    expect(cause("A red circle, a blue square and a yellow star.")).toEqual([]);
  });

  test("co-occurrence addition: an absent co-occurring kind whose colour no present object has", () => {
    expect(cause("A red circle, a blue square, a yellow star and a green heart.")).toEqual(["heart:addition"]);
  });

  test("misread kind: the absent kind's colour is that of a present object the caption does not name", () => {
    expect(cause("A red circle and a blue heart.")).toEqual(["heart:misread<square"]);
  });

  test("count: the only matching present object is already named (the caption names it twice)", () => {
    expect(cause("A red circle, a blue square, a yellow star and a blue heart.")).toEqual(["heart:count<square"]);
  });

  test("other: no matching object and no co-occurrence link", () => {
    expect(cause("A red circle, a blue square, a yellow star and a green diamond.")).toEqual(["diamond:other"]);
  });

  test("ambiguous: misread wins over count when one source is unnamed and another is named", () => {
    // "small" fits the square (unnamed) and the star (named).
    expect(cause("A red circle, a yellow star and a small heart.")).toEqual(["heart:misread<square"]);
  });

  test("ambiguous: a mention with no colour, size or anchored relation has no perceptual evidence", () => {
    expect(cause("A red circle and a heart.")).toEqual(["heart:addition"]);
    expect(cause("A red circle and a diamond.")).toEqual(["diamond:other"]);
  });

  test("ambiguous: two sources unnamed, the alphabetically first kind is reported as the source", () => {
    // "small" fits the square and the star, neither named.
    expect(cause("A red circle and a small heart.")).toEqual(["heart:misread<square"]);
  });

  test("position: a relation to a present object picks the source by where it is", () => {
    // Below the red circle (y > 0.3): only the star, which is not named.
    expect(cause("A red circle, a blue square and a heart. The heart is below the red circle.")).toEqual(["heart:misread<star"]);
    // Left of the red circle (x < 0.2): nothing is; no source.
    expect(cause("A red circle, a blue square and a heart. The heart is left of the red circle.")).toEqual(["heart:addition"]);
    // Colour and position must both agree: blue fits the square, but the square is not below the circle.
    expect(cause("A red circle. The blue heart is below the red circle.")).toEqual(["heart:addition"]);
    // Each mention is judged with its own relations: the first "blue heart" (no relation) fits the square.
    expect(cause("A red circle and a blue heart. The blue heart is below the red circle.")).toEqual(["heart:misread<square"]);
  });

  test("a relation whose other side is itself hallucinated carries no position evidence", () => {
    expect(cause("A red circle. The moon is above the diamond.")).toEqual(["moon:addition", "diamond:other"]);
  });

  test("several mentions of one absent kind: any of them can carry the evidence; the kind counts once", () => {
    expect(cause("A green heart, a red circle and a blue heart.")).toEqual(["heart:misread<square"]);
  });

  test("a wrong colour of a present kind is an attribute error, not an object hallucination", () => {
    expect(cause("A green circle, a blue square and a yellow star.")).toEqual([]);
  });
});

describe("answer counts", () => {
  test("categories add up to the hallucinated mentions; attribute pairs by type on present kinds only", () => {
    const c = zeroCounts();
    const texts = [
      "A red circle, a blue square, a yellow star and a green heart.", // addition; pairs: 4 colours (3 on present, all right)
      "A red circle and a blue heart.", // misread; covers 1
      "There are two red circles and a large blue square. The blue square is left of the red circle.", // count wrong, size wrong, relation wrong
      "A red circle, a blue square, a yellow star and a green diamond.", // other
    ];
    for (const t of texts) addAnswerCounts(c, t, scene);
    expect(c.answers).toBe(4);
    expect(c.mentions).toBe(4 + 2 + 2 + 4);
    expect(c.hallucinated).toBe(3);
    expect([c.addition, c.misread, c.count, c.other]).toEqual([1, 1, 0, 1]);
    expect(c.addition + c.misread + c.count + c.other).toBe(c.hallucinated);
    expect(c.answersWithHallucination).toBe(3);
    expect(c.sceneKinds).toBe(12);
    expect(c.covered).toBe(3 + 1 + 2 + 3);
    // colour pairs on present kinds: 3 + 1 + 2 (circle red, square blue) + 3 = 9, all right
    expect([c.colourPairs, c.colourWrong]).toEqual([9, 0]);
    expect([c.sizePairs, c.sizeWrong]).toEqual([1, 1]);
    expect([c.countPairs, c.countWrong]).toEqual([1, 1]);
    expect([c.attributePairs, c.attributeWrong]).toEqual([11, 2]);
    expect([c.relations, c.relationWrong]).toEqual([1, 1]);
  });

  test("every rate is a ratio of two count keys that exist", () => {
    const keys = Object.keys(zeroCounts());
    for (const r of RATE_DEFINITIONS) {
      expect(keys).toContain(r.num);
      expect(keys).toContain(r.den);
    }
    expect(new Set(RATE_DEFINITIONS.map((r) => r.key)).size).toBe(RATE_DEFINITIONS.length);
  });
});
