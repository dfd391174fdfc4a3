import { describe, expect, test } from "bun:test";
import { SHAPE_KINDS, retrievalTopK, zeroShotAccuracy, zeroShotPrompts } from "../../../demo/world/index.ts";

describe("zero-shot and retrieval helpers", () => {
  test("accuracy = share of rows whose argmax is the label (flat and nested agree)", () => {
    const rows = [
      [0.9, 0.1, 0.0], // → 0 ✓
      [0.2, 0.3, 0.5], // → 2, label 1 ✗
      [0.1, 0.7, 0.2], // → 1 ✓
      [0.4, 0.4, 0.1], // tie → first (0), label 1 ✗
    ];
    const labels = [0, 1, 1, 1];
    expect(zeroShotAccuracy(rows, labels)).toBe(0.5);
    expect(zeroShotAccuracy(new Float32Array(rows.flat()), Int32Array.from(labels), 3)).toBe(0.5);
    expect(() => zeroShotAccuracy(rows, [0, 1, 1])).toThrow(/3 labels for 4 images/);
    expect(() => zeroShotAccuracy(rows, [0, 1, 1, 3])).toThrow(/label 3 of image 3/);
    expect(() => zeroShotAccuracy(new Float32Array(7), [0], 3)).toThrow(/column count/);
    expect(() => zeroShotAccuracy([[1, 2], [1]], [0, 0])).toThrow(/row 1 has 1 columns/);
  });

  test("retrieval top-k over a square similarity, ties against the image", () => {
    const sim = [
      [0.9, 0.1, 0.2], // own best → top1 ✓
      [0.5, 0.4, 0.1], // own second → top2 ✓
      [0.3, 0.3, 0.3], // ties with two → rank 3
    ];
    expect(retrievalTopK(sim, 1)).toBeCloseTo(1 / 3, 12);
    expect(retrievalTopK(sim, 2)).toBeCloseTo(2 / 3, 12);
    expect(retrievalTopK(sim, 3)).toBe(1);
    expect(() => retrievalTopK([[1, 2]], 1)).toThrow(/square/);
  });

  test("one prompt per kind, in label order", () => {
    const p = zeroShotPrompts();
    expect(p.length).toBe(SHAPE_KINDS.length);
    expect(p[0]).toBe("A picture of a circle.");
    expect(zeroShotPrompts(["hexagon"])).toEqual(["A picture of a hexagon."]);
  });
});
