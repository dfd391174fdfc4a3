import { expect, test } from "bun:test";
import { clipCoefficient, clipGradNorm, globalGradNorm } from "../../src/train/clip-grad-norm.ts";

test("global norm over several tensors: 3-4-12-84 -> 85", () => {
  // 3² + 4² + 12² + 84² = 9 + 16 + 144 + 7056 = 7225 = 85²
  expect(globalGradNorm([new Float32Array([3, 4]), new Float32Array([12]), new Float32Array([84])])).toBe(85);
  expect(globalGradNorm({ a: new Float32Array([3]), b: { dtype: "float32", dims: [1], data: new Float32Array([4]) } })).toBe(5);
});

test("clipping scales to maxNorm and returns the pre-clip norm", () => {
  const a = new Float32Array([3, 0]);
  const b = new Float32Array([4]);
  const norm = clipGradNorm({ a, b }, 1);
  expect(norm).toBe(5);
  // coefficient 1/(5 + 1e-6): the new norm is 5/(5+1e-6) ≈ 0.9999998
  expect(a[0]).toBeCloseTo(0.6, 6);
  expect(b[0]).toBeCloseTo(0.8, 6);
  expect(globalGradNorm([a, b])).toBeCloseTo(1, 6);
});

test("no clipping below maxNorm; non-finite norms are reported, not applied", () => {
  const a = new Float32Array([0.3, 0.4]);
  expect(clipGradNorm([a], 1)).toBeCloseTo(0.5, 7);
  expect(Array.from(a)).toEqual([Math.fround(0.3), Math.fround(0.4)]);
  const n = new Float32Array([NaN, 1]);
  expect(clipGradNorm([n], 1)).toBeNaN();
  expect(n[1]).toBe(1);
  expect(clipCoefficient(Infinity, 1)).toBe(1);
  expect(clipCoefficient(10, 2)).toBeCloseTo(0.2, 6);
  expect(() => clipCoefficient(1, 0)).toThrow("clip maxNorm must be > 0");
});
