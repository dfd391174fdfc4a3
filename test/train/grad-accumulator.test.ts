import { expect, test } from "bun:test";
import { GradAccumulator } from "../../src/train/grad-accumulator.ts";

test("weighted mean over micro-batches equals the full-batch mean gradient", () => {
  // Per-example gradients of a mean loss: full batch of 5 examples, split 2 + 3.
  const ex = [1, 2, 3, 4, 10];
  const full = ex.reduce((a, b) => a + b, 0) / 5; // 4
  const mb1 = (1 + 2) / 2; // 1.5
  const mb2 = (3 + 4 + 10) / 3; // 17/3
  const acc = new GradAccumulator(["w"]);
  acc.add({ w: new Float32Array([mb1, -mb1]) }, 2);
  acc.add({ w: { dtype: "float32", dims: [2], data: new Float32Array([mb2, -mb2]) } }, 3);
  expect(acc.microBatches).toBe(2);
  const g = acc.mean().w!;
  expect(g[0]).toBeCloseTo(full, 6);
  expect(g[1]).toBeCloseTo(-full, 6);
  // mean() is idempotent; add() needs a reset first.
  expect(acc.mean().w![0]).toBeCloseTo(full, 6);
  expect(() => acc.add({ w: new Float32Array(2) })).toThrow("call reset() first");
  acc.reset();
  acc.add({ w: new Float32Array([7, 8]) });
  expect(Array.from(acc.mean().w!)).toEqual([7, 8]);
});

test("errors: missing grad, size mismatch, bad weight, empty mean", () => {
  const acc = new GradAccumulator(["a", "b"]);
  expect(() => acc.mean()).toThrow("before any add()");
  expect(() => acc.add({ a: new Float32Array(1) })).toThrow("no gradient for 'b' in micro-batch 0");
  acc.reset();
  acc.add({ a: new Float32Array(1), b: new Float32Array(2) });
  expect(() => acc.add({ a: new Float32Array(1), b: new Float32Array(3) })).toThrow("has 3 values, expected 2");
  expect(() => acc.add({ a: new Float32Array(1), b: new Float32Array(2) }, 0)).toThrow("weight must be");
});
