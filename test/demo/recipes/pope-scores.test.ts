import { expect, test } from "bun:test";
import { aucOf } from "../../../demo/recipes/pope-scores.ts";
import { Rng } from "../../../src/util/rng.ts";

/** The definition: P(a > b) + ½ P(a = b) over all (positive, negative) pairs. */
function pairwise(pos: readonly number[], neg: readonly number[]): number {
  let w = 0;
  for (const a of pos) for (const b of neg) w += a > b ? 1 : a === b ? 0.5 : 0;
  return w / (pos.length * neg.length);
}

test("aucOf equals the pairwise definition, ties included", () => {
  expect(aucOf([3, 4], [1, 2])).toBe(1);
  expect(aucOf([1, 2], [3, 4])).toBe(0);
  expect(aucOf([1], [1])).toBe(0.5);
  const rng = new Rng(5);
  for (let t = 0; t < 20; t++) {
    // Coarse values so ties are common.
    const pos = Array.from({ length: 1 + rng.int(30) }, () => rng.int(8));
    const neg = Array.from({ length: 1 + rng.int(30) }, () => rng.int(8) - 1);
    expect(aucOf(pos, neg)).toBeCloseTo(pairwise(pos, neg), 12);
  }
});
