import { describe, expect, test } from "bun:test";
import { didYouMean, editDistance, suggest } from "../../src/pipeline/suggest.ts";

describe("editDistance", () => {
  test("hand-computed cases", () => {
    expect(editDistance("", "")).toBe(0);
    expect(editDistance("", "abc")).toBe(3);
    expect(editDistance("abc", "")).toBe(3);
    expect(editDistance("kitten", "sitting")).toBe(3); // k->s, e->i, +g
    expect(editDistance("flaw", "lawn")).toBe(2); // -f, +n
    expect(editDistance("ab", "ba")).toBe(1); // one adjacent swap
    expect(editDistance("minScroe", "minScore")).toBe(1);
    expect(editDistance("ca", "abc")).toBe(3); // OSA distance (no edits of a swapped pair)
  });

  test("is symmetric", () => {
    const words = ["source", "sorce", "decode", "dcoede", "x", ""];
    for (const a of words) for (const b of words) expect(editDistance(a, b)).toBe(editDistance(b, a));
  });
});

describe("suggest", () => {
  const keys = ["minScore", "maxWords", "maxTokens", "dropTextImages"];
  test("close typos and case slips map to the key", () => {
    expect(suggest("minScroe", keys)).toBe("minScore");
    expect(suggest("maxwords", keys)).toBe("maxWords");
    expect(suggest("maxToken", keys)).toBe("maxTokens");
  });
  test("unrelated words get no suggestion", () => {
    expect(suggest("banana", keys)).toBeUndefined();
    expect(suggest("x", ["y", "zz"])).toBe("y"); // one edit is always allowed
    expect(suggest("ab", ["xyz"])).toBeUndefined();
  });
  test("didYouMean formats the hint", () => {
    expect(didYouMean("filtr", ["filter", "pairs"])).toBe(' (did you mean "filter"?)');
    expect(didYouMean("qqqqq", ["filter", "pairs"])).toBe("");
  });
});
