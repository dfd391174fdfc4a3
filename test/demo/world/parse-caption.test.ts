import { describe, expect, test } from "bun:test";
import { parseCaption } from "../../../demo/world/index.ts";

const brief = (text: string) => parseCaption(text).mentions.map((m) => [m.kind, m.colour, m.size, m.count, m.plural]);

describe("parseCaption", () => {
  test("colours, sizes, numerals and plurals attach to the following noun", () => {
    expect(brief("There are two red circles and a small blue square.")).toEqual([
      ["circle", "red", null, 2, true],
      ["square", "blue", "small", null, false],
    ]);
    expect(brief("3 stars, four large yellow hearts")).toEqual([
      ["star", null, null, 3, true],
      ["heart", "yellow", "large", 4, true],
    ]);
  });

  test("synonyms map onto kinds, in singular and plural", () => {
    expect(brief("a box, two boxes, a ball, balls, a disc, a dot, a crescent, a plus, two crosses, a rhombus, a big violet rectangle").map((m) => m.slice(0, 3))).toEqual([
      ["square", null, null], ["square", null, null], ["circle", null, null], ["circle", null, null], ["circle", null, null], ["circle", null, null],
      ["moon", null, null], ["cross", null, null], ["cross", null, null], ["diamond", null, null], ["square", "purple", "large"],
    ]);
  });

  test("words between modifiers and noun break the phrase; predicate colours attach", () => {
    expect(brief("A red picture of a circle.")).toEqual([["circle", null, null, null, false]]);
    expect(brief("The star is red.")).toEqual([["star", "red", null, null, false]]);
    expect(brief("The star is red and the box is blue.")).toEqual([["star", "red", null, null, false], ["square", "blue", null, null, false]]);
    expect(brief("The star is red moon")).toEqual([["star", null, null, null, false], ["moon", "red", null, null, false]]);
  });

  test("negated nouns are kept apart", () => {
    const p = parseCaption("There is no heart, not a star and a circle without a moon.");
    expect(p.mentions.map((m) => m.kind)).toEqual(["circle"]);
    expect(p.negated.map((m) => m.kind)).toEqual(["heart", "star", "moon"]);
  });

  test("relations between adjacent mentions, in every phrasing", () => {
    const rel = (t: string) => parseCaption(t).relations.map((r) => [r.subject.kind, r.subject.colour, r.relation, r.object.kind, r.object.colour]);
    expect(rel("The red circle is to the left of the blue star.")).toEqual([["circle", "red", "left of", "star", "blue"]]);
    expect(rel("The box is right of a heart.")).toEqual([["square", null, "right of", "heart", null]]);
    expect(rel("A moon over the cross. The small hexagon is under the diamond.")).toEqual([["moon", null, "above", "cross", null], ["hexagon", null, "below", "diamond", null]]);
    expect(rel("The star lies beneath two circles.")).toEqual([["star", null, "below", "circle", null]]);
    expect(rel("The star is not above the circle.")).toEqual([]);
    expect(rel("A circle and a star above.")).toEqual([]);
    expect(rel("A circle on the left and a star.")).toEqual([]);
  });

  test("empty and unrelated text give no mentions", () => {
    expect(parseCaption("").mentions).toEqual([]);
    expect(parseCaption("Nothing here, just grey.").mentions).toEqual([]);
  });
});
