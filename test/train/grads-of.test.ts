import { expect, test } from "bun:test";
import { gradsOf } from "../../src/train/grads-of.ts";

test("strips the grad: prefix, keeps views, checks requested names", () => {
  const a = new Float32Array([1, 2]);
  const res = {
    loss: { dtype: "float32" as const, dims: [], data: new Float32Array([0.5]) },
    "grad:w": { dtype: "float32" as const, dims: [2], data: a },
    "grad:b": { dtype: "float32" as const, dims: [1], data: new Float32Array([3]) },
  };
  const g = gradsOf(res);
  expect(Object.keys(g).sort()).toEqual(["b", "w"]);
  expect(g.w).toBe(a);
  expect(Object.keys(gradsOf(res, ["w"]))).toEqual(["w"]);
  expect(() => gradsOf(res, ["emb"])).toThrow("gradsOf: step outputs have no 'grad:emb'");
  const f64 = { "grad:w": { dtype: "float64" as const, dims: [1], data: new Float64Array([1]) } };
  expect(() => gradsOf(f64)).toThrow("'grad:w' is float64, expected float32");
});
