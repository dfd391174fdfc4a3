import { describe, expect, test } from "bun:test";
import { evaluateAnswer, hallucinationMetrics, type SceneObject } from "../../../demo/world/index.ts";

// Truth: two red circles (left, right), a large blue square at the bottom, a small yellow star bottom-right.
const objects: SceneObject[] = [
  { kind: "circle", colour: "red", size: "large", x: 0.2, y: 0.3, r: 0.18 },
  { kind: "circle", colour: "red", size: "small", x: 0.7, y: 0.3, r: 0.11 },
  { kind: "square", colour: "blue", size: "large", x: 0.45, y: 0.75, r: 0.18 },
  { kind: "star", colour: "yellow", size: "small", x: 0.85, y: 0.8, r: 0.11 },
];
const scene = { objects };

// Hand count per caption: kinds mentioned / hallucinated / covered (of 3), attribute pairs / wrong, relations / wrong.
const captions = [
  // circle, square, star; 0 hallucinated; covers 3; pairs: circle red ✓, circle ×2 ✓, square large ✓, square blue ✓, star small ✓, star yellow ✓
  "There are two red circles, a large blue square and a small yellow star.",
  // circle, square, heart; heart hallucinated; covers 2; pairs: circle red ✓, square green ✗; relation heart-above-circle ✗
  "A red ball, a green box and a heart. The heart is above the red ball.",
  // circle, star, square; 0 hallucinated; covers 3; pairs: circle ×3 ✗, star purple ✗, square blue ✓, circle red ✓; relation square-below-circle ✓
  "Three circles and a purple star. The blue square is below the red circle.",
  // heart negated; diamond, moon hallucinated; covers 0
  "There is no heart. I can see a diamond and a moon.",
];

describe("hallucination metrics", () => {
  test("per-answer evaluation matches the hand count", () => {
    const e = captions.map((c) => evaluateAnswer(c, scene));
    expect(e.map((x) => x.mentionedKinds.length)).toEqual([3, 3, 3, 2]);
    expect(e.map((x) => x.hallucinatedKinds)).toEqual([[], ["heart"], [], ["diamond", "moon"]]);
    expect(e.map((x) => x.coveredKinds.length)).toEqual([3, 2, 3, 0]);
    expect(e.map((x) => x.attributes.length)).toEqual([6, 2, 4, 0]);
    expect(e.map((x) => x.attributes.filter((a) => !a.correct).map((a) => `${a.kind}:${a.attribute}:${a.value}`))).toEqual([[], ["square:colour:green"], ["circle:count:3", "star:colour:purple"], []]);
    expect(e.map((x) => x.relations.map((r) => r.correct))).toEqual([[], [false], [true], []]);
  });

  test("aggregates: CHAIR_i 3/11, CHAIR_s 2/4, Cover 8/12, attributes 3/12, relations 1/2", () => {
    const m = hallucinationMetrics(captions.map((text) => ({ text, scene })));
    expect(m.answers).toBe(4);
    expect(m.chairI).toBeCloseTo(3 / 11, 12);
    expect(m.chairS).toBeCloseTo(0.5, 12);
    expect(m.cover).toBeCloseTo(8 / 12, 12);
    expect(m.attributeHallucination).toBeCloseTo(3 / 12, 12);
    expect(m.attributeHallucinationOnPresent).toBeCloseTo(3 / 12, 12);
    expect(m.relationHallucination).toBeCloseTo(0.5, 12);
    expect(m.counts).toEqual({
      mentions: 11, hallucinated: 3, answersWithHallucination: 2, sceneKinds: 12, covered: 8,
      attributePairs: 12, attributeWrong: 3, attributePairsOnPresent: 12, attributeWrongOnPresent: 3, relations: 2, relationWrong: 1,
    });
  });

  test("kind-level dedup, attribute rules on absent kinds, size with colour context", () => {
    // circle mentioned twice → one mention; "red heart": heart absent so its colour pair is wrong but not on-present.
    const e = evaluateAnswer("A red circle, a red heart and a small blue square. The red circle is left of the red circle.", scene);
    expect(e.mentionedKinds).toEqual(["circle", "heart", "square"]);
    expect(e.attributes.map((a) => [a.kind, a.attribute, a.value, a.correct, a.kindPresent])).toEqual([
      ["circle", "colour", "red", true, true],
      ["heart", "colour", "red", false, false],
      ["square", "colour", "blue", true, true],
      ["square", "size", "small", false, true], // the only blue square is large
    ]);
    // two distinct red circles exist, the first left of the second
    expect(e.relations.map((r) => r.correct)).toEqual([true]);
    const m = hallucinationMetrics([{ text: "A red heart and a small blue square.", scene }]);
    expect([m.counts.attributePairs, m.counts.attributeWrong, m.counts.attributePairsOnPresent, m.counts.attributeWrongOnPresent]).toEqual([3, 2, 2, 1]);
  });

  test("relations are checked by centre order on matching objects", () => {
    const rel = (t: string) => evaluateAnswer(t, scene).relations.map((r) => r.correct);
    expect(rel("The yellow star is right of the blue square.")).toEqual([true]);
    expect(rel("The yellow star is left of the blue square.")).toEqual([false]);
    expect(rel("The star is below the circle.")).toEqual([true]);
    expect(rel("The small circle is left of the large circle.")).toEqual([false]);
    expect(rel("The large circle is left of the small circle.")).toEqual([true]);
  });

  test("empty sets give zero rates and zero counts", () => {
    const m = hallucinationMetrics([]);
    expect([m.answers, m.chairI, m.chairS, m.cover, m.counts.mentions]).toEqual([0, 0, 0, 0, 0]);
    const none = hallucinationMetrics([{ text: "Nothing to see.", scene }]);
    expect([none.chairI, none.chairS, none.cover]).toEqual([0, 0, 0]);
  });
});
