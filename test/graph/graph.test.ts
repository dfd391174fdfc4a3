import { describe, expect, test } from "bun:test";
import { Graph, GraphError, MASK_NEG, type TensorValue } from "../../src/graph/index.ts";
import { Rng } from "../../src/util/rng.ts";

function randn(rng: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return a;
}

/** Plain JS reference matmul [m,k] x [k,n]. */
function refMatmul(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let p = 0; p < k; p++) s += a[i * k + p]! * b[p * n + j]!;
    c[i * n + j] = s;
  }
  return c;
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number): void {
  expect(got.length).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
  expect(worst).toBeLessThan(tol);
}

const f32 = (v: TensorValue | undefined) => v!.data as Float32Array;

describe("forward", () => {
  test("2-layer MLP with symbolic batch matches a JS reference", async () => {
    const rng = new Rng(1);
    const g = new Graph({ name: "mlp" });
    const x = g.input("x", "float32", ["batch", 5]);
    const w1 = g.param("w1", [5, 7]);
    const b1 = g.param("b1", [7], { init: { kind: "zeros" } });
    const w2 = g.param("w2", [7, 3]);
    const h = g.relu(g.add(g.matmul(x, w1), b1)); // [batch, 7]
    const y = g.matmul(h, w2); // [batch, 3]
    expect(y.shape).toEqual(["batch", 3]);
    const step = await g.compile({ outputs: { y } });
    expect(step.model.inputs.map((s) => s.name).sort()).toEqual(["b1", "w1", "w2", "x"]);
    expect(step.model.outputs).toEqual([{ name: "y", dtype: "float32", shape: ["batch", 3] }]);

    const B = 4;
    const vx = randn(rng, B * 5), vw1 = randn(rng, 35), vb1 = randn(rng, 7), vw2 = randn(rng, 21);
    const res = await step.run({ x: { dtype: "float32", dims: [B, 5], data: vx }, w1: vw1, b1: vb1, w2: vw2 });
    const hh = refMatmul(vx, vw1, B, 5, 7).map((v, i) => Math.max(0, v + vb1[i % 7]!));
    expect(res.y!.dims).toEqual([B, 3]);
    expectClose(f32(res.y), refMatmul(hh, vw2, B, 7, 3), 1e-5);

    // params fed from a store; baking them turns them into initializers
    const store = new Map([["w1", vw1], ["b1", vb1], ["w2", vw2]].map(([k, d]) => [k as string, { data: d as Float32Array, shape: k === "w1" ? [5, 7] : k === "b1" ? [7] : [7, 3] }]));
    const baked = g.toOnnx({ outputs: { y }, bake: store });
    expect(baked.inputs.map((s) => s.name)).toEqual(["x"]);
    const viaStore = await g.compile({ outputs: { y }, params: store });
    const r2 = await viaStore.run({ x: { dtype: "float32", dims: [B, 5], data: vx } });
    expectClose(f32(r2.y), f32(res.y), 1e-7);
  });

  test("feed errors: unknown name, missing input, wrong dtype/shape, symbolic shape needs dims", async () => {
    const g = new Graph({ name: "feeds" });
    const x = g.input("x", "float32", ["batch", 2]);
    const y = g.input("y", "float32", [2]);
    const unused = g.input("unused", "float32", [1]);
    void unused;
    const step = await g.compile({ outputs: { z: g.add(x, y) } });
    const xv = { dtype: "float32" as const, dims: [1, 2], data: new Float32Array(2) };
    await expect(step.run({ x: xv, y: new Float32Array(2), yy: new Float32Array(2) })).rejects.toThrow(/run: 'yy' is not an input or param of graph 'feeds'/);
    await expect(step.run({ x: xv })).rejects.toThrow(/run: missing input 'y'/);
    await expect(step.run({ x: xv, y: new Float64Array(2) })).rejects.toThrow(/input 'y' wants float32/);
    await expect(step.run({ x: xv, y: new Float32Array(3) })).rejects.toThrow(/input 'y' wants 2 values/);
    await expect(step.run({ x: new Float32Array(2), y: new Float32Array(2) })).rejects.toThrow(/symbolic shape/);
    await expect(step.run({ x: { ...xv, dims: [1, 3] }, y: new Float32Array(2) })).rejects.toThrow(/input 'x' wants shape/);
    // a declared input pruned by DCE may still be fed
    const r = await step.run({ x: xv, y: Float32Array.from([1, 2]), unused: new Float32Array(1) });
    expect(Array.from(r.z!.data as Float32Array)).toEqual([1, 2]);
    expect(() => g.toOnnx({ outputs: { z: x }, bake: new Map() })).not.toThrow();
    const p = g.param("p", [2]);
    expect(() => g.toOnnx({ outputs: { z: g.add(x, p) }, bake: new Map() })).toThrow(/bake: param 'p' missing/);
    expect(() => g.toOnnx({ outputs: { z: p }, bake: new Map([["p", { data: new Float32Array(3), shape: [3] }]]) })).toThrow(/bake: param 'p' has shape \[3\]/);
  });

  test("session cache returns the same session for identical bytes", async () => {
    const build = () => {
      const g = new Graph();
      const x = g.input("x", "float32", [2]);
      return g.compile({ outputs: { y: g.exp(x) } });
    };
    const [a, b] = await Promise.all([build(), build()]);
    expect(a.session).toBe(b.session);
  });

  test("softmax, logSoftmax, layerNorm, gelu and gatherLogProbs against JS", async () => {
    const rng = new Rng(2);
    const g = new Graph();
    const x = g.input("x", "float32", [2, 3, 4]);
    const t = g.input("t", "int64", [2, 3]);
    const sc = g.param("sc", [4]);
    const bi = g.param("bi", [4]);
    const outs = {
      sm: g.softmax(x),
      lsm: g.logSoftmax(x, 1),
      ln: g.layerNorm(x, sc, bi, 1e-5),
      ge: g.gelu(x),
      gt: g.gelu(x, "tanh"),
      lp: g.gatherLogProbs(x, t),
      ce: g.mean(g.crossEntropy(x, t)),
    };
    const step = await g.compile({ outputs: outs });
    const vx = randn(rng, 24), vs = randn(rng, 4), vb = randn(rng, 4);
    const vt = BigInt64Array.from([0n, 3n, 2n, 1n, 1n, 0n]);
    const r = await step.run({ x: vx, t: vt, sc: vs, bi: vb });
    const sm: number[] = [], ln: number[] = [], lp: number[] = [], lsm = new Array<number>(24);
    for (let row = 0; row < 6; row++) {
      const v = Array.from(vx.slice(row * 4, row * 4 + 4));
      const m = Math.max(...v);
      const z = v.reduce((s, e) => s + Math.exp(e - m), 0);
      sm.push(...v.map((e) => Math.exp(e - m) / z));
      lp.push(v[Number(vt[row])]! - m - Math.log(z));
      const mu = v.reduce((s, e) => s + e, 0) / 4;
      const va = v.reduce((s, e) => s + (e - mu) ** 2, 0) / 4;
      ln.push(...v.map((e, i) => ((e - mu) / Math.sqrt(va + 1e-5)) * vs[i]! + vb[i]!));
    }
    for (let b = 0; b < 2; b++) for (let k = 0; k < 4; k++) {
      const col = [0, 1, 2].map((s) => vx[b * 12 + s * 4 + k]!);
      const m = Math.max(...col);
      const lz = m + Math.log(col.reduce((s, e) => s + Math.exp(e - m), 0));
      for (let s = 0; s < 3; s++) lsm[b * 12 + s * 4 + k] = col[s]! - lz;
    }
    const erf = (z: number) => { // Abramowitz-Stegun 7.1.26 is too coarse; integrate the series instead
      let sum = 0, term = z;
      for (let n = 0; n < 60; n++) { sum += term / (2 * n + 1); term *= (-z * z) / (n + 1); }
      return (2 / Math.sqrt(Math.PI)) * sum;
    };
    expectClose(f32(r.sm), sm, 1e-6);
    expectClose(f32(r.lsm), lsm, 1e-6);
    expectClose(f32(r.ln), ln, 1e-4);
    expectClose(f32(r.ge), Array.from(vx, (v) => 0.5 * v * (1 + erf(v / Math.SQRT2))), 1e-6);
    expectClose(f32(r.gt), Array.from(vx, (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))), 1e-6);
    expectClose(f32(r.lp), lp, 1e-6);
    expectClose(f32(r.ce), [-lp.reduce((s, e) => s + e, 0) / 6], 1e-6);
  });

  test("shape ops with symbolic dims: reshape/transpose/split/concat/slice/squeeze/expand/reduce", async () => {
    const g = new Graph();
    const x = g.input("x", "float32", ["batch", "seq", 6]);
    const heads = g.transpose(g.reshape(x, [0, 0, 2, 3]), [0, 2, 1, 3]); // [batch, 2, seq, 3]
    expect(heads.shape).toEqual(["batch", 2, "seq", 3]);
    const flat = g.reshape(x, [-1, 6]);
    expect(flat.shape).toEqual(["batch*seq", 6]);
    const back = g.reshape(flat, ["batch", "seq", 6]);
    expect(back.shape).toEqual(["batch", "seq", 6]);
    const [a, b] = g.split(x, [2, 4], -1);
    expect(b!.shape).toEqual(["batch", "seq", 4]);
    const cat = g.concat([b!, a!], 2);
    expect(cat.shape).toEqual(["batch", "seq", 6]);
    const sl = g.slice(x, [1], [2 ** 40], [1]);
    const sq = g.squeeze(g.reduceMax(x, [2], true), [2]); // [batch, seq]
    const ex = g.expand(g.unsqueeze(sq, [2]), ["batch", "seq", 4]);
    expect(ex.shape).toEqual(["batch", "seq", 4]);
    const step = await g.compile({ outputs: { heads, back, cat, sl, sq, ex, m: g.reduceMean(x, [0, 1]), s: g.reduceSum(x, [1]) } });
    const data = Float32Array.from({ length: 2 * 3 * 6 }, (_, i) => i);
    const r = await step.run({ x: { dtype: "float32", dims: [2, 3, 6], data } });
    expect(r.heads!.dims).toEqual([2, 2, 3, 3]);
    // heads[b, h, s, d] = x[b, s, h*3 + d]
    expect(f32(r.heads)[1 * 18 + 1 * 9 + 2 * 3 + 1]).toBe(data[1 * 18 + 2 * 6 + 3 + 1]!);
    expect(Array.from(f32(r.back))).toEqual(Array.from(data));
    expect(Array.from(f32(r.cat)).slice(0, 6)).toEqual([2, 3, 4, 5, 0, 1]);
    expect(r.sl!.dims).toEqual([2, 2, 6]);
    expect(f32(r.sl)[0]).toBe(6);
    expect(Array.from(f32(r.sq))).toEqual([5, 11, 17, 23, 29, 35]);
    expect(r.ex!.dims).toEqual([2, 3, 4]);
    expect(f32(r.ex)[5]).toBe(11);
    expect(r.m!.dims).toEqual([6]);
    expect(f32(r.m)[0]).toBe((0 + 6 + 12 + 18 + 24 + 30) / 6);
    expect(r.s!.dims).toEqual([2, 6]);
    expect(f32(r.s)[0]).toBe(0 + 6 + 12);
  });

  test("causal masks: static, symbolic and KV-cache offset agree", async () => {
    const g = new Graph();
    const q = g.input("q", "float32", ["tq", 1]);
    const k = g.input("k", "float32", ["tk", 1]);
    const dyn = g.causalMask("tq", "tk");
    const stat = g.causalMask(3, 5);
    const step = await g.compile({ outputs: { dyn, stat } });
    const r = await step.run({ q: { dtype: "float32", dims: [3, 1], data: new Float32Array(3) }, k: { dtype: "float32", dims: [5, 1], data: new Float32Array(5) } });
    const want: number[] = [];
    for (let i = 0; i < 3; i++) for (let j = 0; j < 5; j++) want.push(j <= i + 2 ? 0 : MASK_NEG);
    expect(Array.from(f32(r.stat))).toEqual(want);
    expect(r.dyn!.dims).toEqual([3, 5]);
    expect(Array.from(f32(r.dyn))).toEqual(want);
    void q; void k;
  });

  test("padding mask, where, cast and comparisons", async () => {
    const g = new Graph();
    const valid = g.input("valid", "int64", ["b", "t"]);
    const x = g.input("x", "float32", ["b", "t"]);
    const pm = g.paddingMask(valid);
    expect(pm.shape).toEqual(["b", 1, 1, "t"]);
    const w = g.where(g.greater(x, 0), x, g.neg(x));
    const c = g.cast(g.less(x, 0), "float32");
    const step = await g.compile({ outputs: { pm, w, c } });
    const r = await step.run({
      valid: { dtype: "int64", dims: [1, 3], data: BigInt64Array.from([1n, 1n, 0n]) },
      x: { dtype: "float32", dims: [1, 3], data: Float32Array.from([-2, 3, -1]) },
    });
    expect(r.pm!.dims).toEqual([1, 1, 1, 3]);
    expect(Array.from(f32(r.pm))).toEqual([0, 0, MASK_NEG]);
    expect(Array.from(f32(r.w))).toEqual([2, 3, 1]);
    expect(Array.from(f32(r.c))).toEqual([1, 0, 1]);
  });
});

describe("build-time errors name the op", () => {
  const g = new Graph();
  const x = g.input("x", "float32", ["batch", 4]);
  const y = g.input("y", "float32", ["seq", 4]);
  const i = g.input("i", "int64", ["batch"]);
  test("broadcast mismatch", () => {
    expect(() => g.add(x, g.input("z", "float32", [3]))).toThrow(/^add: cannot broadcast/);
    expect(() => g.mul(x, y)).toThrow(/mul: cannot broadcast .*batch vs seq/);
  });
  test("dtype mismatch and wrong dtype", () => {
    expect(() => g.add(x, g.cast(x, "float64"))).toThrow(/add: dtype mismatch/);
    expect(() => g.exp(i)).toThrow(/exp: input .* must be float32\|float64/);
    expect(() => g.gather(x, x)).toThrow(/gather: indices/);
  });
  test("matmul inner dims and ranks", () => {
    expect(() => g.matmul(x, g.param("w", [5, 2]))).toThrow(/matmul: inner dims differ/);
    expect(() => g.matmul(x, g.param("v", [4]))).toThrow(/matmul: operands must have rank >= 2/);
  });
  test("reshape, split, squeeze, axes", () => {
    expect(() => g.reshape(g.param("p", [2, 3]), [4, 2])).toThrow(/reshape: cannot reshape/);
    expect(() => g.split(x, [1, 2], 1)).toThrow(/split: sizes \[1,2\] sum to 3/);
    expect(() => g.squeeze(x, [1])).toThrow(/squeeze: axis 1 .* is 4, not 1/);
    expect(() => g.softmax(x, 2)).toThrow(/softmax: axis 2 out of range/);
    expect(() => g.transpose(x, [0, 0])).toThrow(/transpose: perm/);
  });
  test("names and layerNorm params", () => {
    expect(() => g.input("x", "float32", [1])).toThrow(GraphError);
    expect(() => g.layerNorm(x, g.param("s3", [3]), g.param("b3", [3]))).toThrow(/layerNorm: scale/);
  });
});

describe("param declaration", () => {
  test("init shorthand and options object give the same spec", async () => {
    const { init } = await import("../../src/graph/index.ts");
    const g = new Graph();
    g.param("a", [2, 3], init.normal(0.5));
    g.param("b", [4], { init: init.zeros(), trainable: false });
    g.param("c", [1]);
    expect(g.params()).toEqual([
      { name: "a", shape: [2, 3], init: { kind: "normal", std: 0.5 }, trainable: true },
      { name: "b", shape: [4], init: { kind: "zeros" }, trainable: false },
      { name: "c", shape: [1], init: { kind: "normal", std: 0.02 }, trainable: true },
    ]);
    expect(g.params({ trainable: true }).map((p) => p.name)).toEqual(["a", "c"]);
    expect(g.params({ trainable: false }).map((p) => p.name)).toEqual(["b"]);
    expect(() => g.param("d", [0, 2])).toThrow(/param 'd': dims must be positive/);
  });
});
