import { describe, expect, test } from "bun:test";
import { onnx } from "onnx-proto";
import { Graph, GraphError } from "../../src/graph/index.ts";
import { DIFFERENTIABLE_OPS } from "../../src/graph/autodiff.ts";
import { expectGradOk, gradError, TOL } from "./grad-check.ts";

// Every op's gradient against central finite differences. float64 wherever ORT's CPU provider
// has a double kernel; Erf (so exact gelu) and Softplus are float-only there, so those run in
// float32 with TOL.float32 (2e-2 of the gradient scale).

const covered = new Set<string>();
const ops = (...names: string[]) => names.forEach((n) => covered.add(n));

describe("elementwise gradients with broadcasting (float64)", () => {
  test("add / sub / mul / div", async () => {
    ops("Add", "Sub", "Mul", "Div");
    await expectGradOk({
      params: { a: [2, 3, 4], b: [3, 1], c: [4] },
      build: (g, p) => g.div(g.mul(g.sub(g.add(p.a!, p.b!), p.c!), p.b!), g.add(g.mul(p.c!, p.c!), 1)),
    });
  });
  test("pow with tensor exponent and constant exponents", async () => {
    ops("Pow");
    await expectGradOk({ positive: true, params: { a: [3, 4], e: [4] }, build: (g, p) => g.add(g.pow(p.a!, p.e!), g.add(g.pow(p.a!, 2), g.pow(p.a!, 1.5))) });
  });
  test("neg, sqrt, exp, log, tanh, sigmoid, abs", async () => {
    ops("Neg", "Sqrt", "Exp", "Log", "Tanh", "Sigmoid", "Abs");
    await expectGradOk({ positive: true, params: { a: [2, 5] }, build: (g, p) => g.add(g.add(g.neg(g.sqrt(p.a!)), g.exp(p.a!)), g.log(p.a!)) });
    await expectGradOk({ params: { a: [2, 5] }, build: (g, p) => g.add(g.add(g.tanh(p.a!), g.sigmoid(p.a!)), g.abs(p.a!)) });
  });
  test("relu, max, min (away from kinks)", async () => {
    ops("Relu", "Max", "Min");
    await expectGradOk({ params: { a: [3, 4], b: [4] }, build: (g, p) => g.add(g.relu(p.a!), g.mul(g.max(p.a!, p.b!), g.min(p.b!, p.a!))) });
  });
  test("where with broadcast branches", async () => {
    ops("Where");
    await expectGradOk({
      params: { a: [3, 4], b: [4] },
      build: (g, p) => g.where(g.greater(p.a!, 0), g.mul(p.a!, p.b!), g.exp(p.b!)),
    });
  });
});

describe("casts (float32 graph, float64 detour)", () => {
  test("cast float32 -> float64 -> float32 passes gradients", async () => {
    ops("Cast");
    await expectGradOk({ dtype: "float32", params: { a: [2, 3] }, build: (g, p) => g.cast(g.exp(g.cast(p.a!, "float64")), "float32") });
  });
});

describe("float32-only kernels", () => {
  test("erf, exact gelu, tanh gelu, softplus (float32)", async () => {
    ops("Erf", "Softplus");
    const r = await gradError({ dtype: "float32", params: { a: [3, 4] }, build: (g, p) => g.add(g.add(g.gelu(p.a!), g.erf(p.a!)), g.add(g.softplus(p.a!), g.gelu(p.a!, "tanh"))) });
    expect(r.worst).toBeLessThan(TOL.float32);
  });
  test("layerNorm in float32 reuses the kernel's mean/invstd", async () => {
    await expectGradOk({ dtype: "float32", params: { x: [2, 3, 6], s: [6], b: [6] }, build: (g, p) => g.layerNorm(p.x!, p.s!, p.b!, 1e-5) });
  });
});

describe("linear algebra", () => {
  test("matmul: linear layer [2,3,4]@[4,5], broadcast batch [2,1,3,4]@[3,4,2], [3,4]@[2,4,5]", async () => {
    ops("MatMul");
    await expectGradOk({ params: { a: [2, 3, 4], w: [4, 5] }, build: (g, p) => g.matmul(p.a!, p.w!) });
    await expectGradOk({ params: { a: [2, 1, 3, 4], b: [3, 4, 2] }, build: (g, p) => g.matmul(p.a!, p.b!) });
    await expectGradOk({ params: { a: [3, 4], b: [2, 4, 5] }, build: (g, p) => g.matmul(p.a!, p.b!) });
  });
  test("gemm with every transpose combination and alpha", async () => {
    ops("Gemm");
    for (const [tA, tB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
      await expectGradOk({
        params: { a: tA ? [4, 3] : [3, 4], b: tB ? [5, 4] : [4, 5] },
        build: (g, p) => g.gemm(p.a!, p.b!, { transA: tA, transB: tB, alpha: 0.7 }),
      });
    }
  });
});

describe("softmax family and normalisation (float64)", () => {
  test("softmax (axis 1), logSoftmax (last axis)", async () => {
    ops("Softmax", "LogSoftmax");
    await expectGradOk({ params: { a: [2, 3, 4] }, build: (g, p) => g.add(g.softmax(p.a!, 1), g.logSoftmax(p.a!, -1)) });
  });
  test("layerNorm: input, scale, bias", async () => {
    ops("LayerNormalization");
    await expectGradOk({ params: { x: [2, 3, 5], s: [5], b: [5] }, build: (g, p) => g.layerNorm(p.x!, p.s!, p.b!, 1e-5) });
  });
});

describe("indexing", () => {
  const idx = (dims: number[], v: number[]) => ({ shape: dims, value: { dtype: "int64" as const, dims, data: BigInt64Array.from(v.map(BigInt)) } });
  test("gather axis 0 with repeated indices accumulates; gather axis 1", async () => {
    ops("Gather");
    await expectGradOk({ params: { t: [5, 3] }, inputs: { i: idx([2, 3], [1, 4, 1, 0, 1, 4]) }, build: (g, p, x) => g.gather(p.t!, x.i!) });
    await expectGradOk({ params: { t: [2, 4, 3] }, inputs: { i: idx([3], [3, 0, 3]) }, build: (g, p, x) => g.gather(p.t!, x.i!, 1) });
  });
  test("gatherElements and gatherLogProbs", async () => {
    ops("GatherElements");
    await expectGradOk({ params: { t: [2, 4] }, inputs: { i: idx([2, 3], [3, 3, 0, 1, 2, 1]) }, build: (g, p, x) => g.gatherElements(p.t!, x.i!, 1) });
    await expectGradOk({ params: { l: [2, 3, 5] }, inputs: { i: idx([2, 3], [4, 0, 2, 2, 1, 3]) }, build: (g, p, x) => g.gatherLogProbs(p.l!, x.i!) });
  });
});

describe("shape ops", () => {
  test("reshape, transpose, squeeze, unsqueeze, expand", async () => {
    ops("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Expand");
    await expectGradOk({
      params: { a: [2, 6], b: [3, 1] },
      build: (g, p) => {
        const r = g.transpose(g.reshape(p.a!, [2, 3, 2]), [2, 0, 1]); // [2, 2, 3]
        const e = g.expand(g.squeeze(g.unsqueeze(p.b!, [0]), [0]), [2, 3, 4]); // [2, 3, 4]
        return g.add(g.reshape(r, [2, 6]), g.reshape(e, [2, 12]).shape[0] === 2 ? g.slice(g.reshape(e, [2, 12]), [0], [6], [1]) : r);
      },
    });
  });
  test("concat, split (one piece unused), slice with negative start and multiple axes", async () => {
    ops("Concat", "Split", "Slice");
    await expectGradOk({
      params: { a: [2, 3], b: [2, 2], c: [4, 5] },
      build: (g, p) => {
        const cat = g.concat([p.a!, p.b!, p.a!], 1); // [2, 8]
        const [, mid] = g.split(cat, [3, 4, 1], 1); // [2, 4]
        const sl = g.slice(p.c!, [-3, 1], [100, 3], [0, 1]); // [3, 2]
        expect(sl.shape).toEqual([3, 2]);
        return g.add(g.reshape(mid!, [8]), g.reshape(g.concat([sl, g.slice(p.c!, [0, 3], [1, 5])], 0), [8]));
      },
    });
  });
  test("strided slices: positive and negative steps, on several axes", async () => {
    await expectGradOk({
      params: { c: [5, 7] },
      build: (g, p) => {
        const a = g.slice(p.c!, [0, -1], [5, -100], [0, 1], [2, -3]); // rows 0,2,4; cols 6,3,0
        expect(a.shape).toEqual([3, 3]);
        const b = g.slice(p.c!, [1], [7], [1], [4]); // cols 1,5
        expect(b.shape).toEqual([5, 2]);
        return g.add(g.reshape(a, [9]), g.slice(g.reshape(b, [10]), [0], [9])); // [9]
      },
    });
  });
  test("reduceSum / reduceMean / reduceMax with and without keepdims", async () => {
    ops("ReduceSum", "ReduceMean", "ReduceMax");
    await expectGradOk({
      params: { a: [2, 3, 4] },
      build: (g, p) => g.add(g.add(g.reduceSum(p.a!, [0, 2], true), g.unsqueeze(g.reduceMean(p.a!, [2]), [2])), g.reduceMax(p.a!, [0, 2], true)),
    });
  });
  test("ties in reduceMax split the gradient evenly", async () => {
    const r = await gradError({ params: { a: [1, 4] }, values: { a: [1, 3, 3, 2] }, build: (g, p) => g.reduceMax(p.a!, [1]) });
    const gr = Array.from(r.grads.a!);
    expect(Math.abs(gr[0]!)).toBe(0);
    expect(Math.abs(gr[1]!)).toBeGreaterThan(0);
    expect(gr[1]).toBeCloseTo(gr[2]!, 12);
    expect(Math.abs(gr[3]!)).toBe(0);
  });
});

describe("autodiff machinery", () => {
  test("fan-out accumulates (p used four times)", async () => {
    ops("Sum", "Identity");
    await expectGradOk({ params: { p: [3] }, build: (g, q) => g.mul(g.add(q.p!, g.exp(q.p!)), g.add(q.p!, g.tanh(q.p!))) });
  });

  test("stopGradient blocks flow: d/dp sum(stop(p)·p) = p", async () => {
    const g = new Graph({ floatType: "float64" });
    const p = g.param("p", [3]);
    const loss = g.sum(g.mul(g.stopGradient(p), p));
    const step = await g.compile({ outputs: { loss }, grads: g.grad(loss, [p]) });
    const r = await step.run({ p: Float64Array.from([1, -2, 3]) });
    expect(Array.from(r["grad:p"]!.data as Float64Array)).toEqual([1, -2, 3]);
  });

  test("nothing flows through integer paths; unused params get zeros", async () => {
    const g = new Graph({ floatType: "float64" });
    const t = g.param("t", [4, 2]);
    const q = g.param("q", [3]);
    const unused = g.param("unused", [2, 2]);
    const idx = g.cast(g.mul(q, 1), "int64"); // q only reaches the loss through indices
    const loss = g.sum(g.gather(t, idx));
    const grads = g.grad(loss, [t, q, unused]);
    const step = await g.compile({ outputs: { loss }, grads });
    const r = await step.run({ t: new Float64Array(8).fill(1), q: Float64Array.from([1, 1, 3]), unused: new Float64Array(4) });
    expect(Array.from(r["grad:q"]!.data as Float64Array)).toEqual([0, 0, 0]);
    expect(r["grad:unused"]!.dims).toEqual([2, 2]);
    expect(Array.from(r["grad:unused"]!.data as Float64Array)).toEqual([0, 0, 0, 0]);
    expect(Array.from(r["grad:t"]!.data as Float64Array)).toEqual([0, 0, 2, 2, 0, 0, 1, 1]);
  });

  test("symbolic dims: static and run-time broadcast reduction", async () => {
    // x = reshape(p, [n, -1]) has an unknown second dim, so sumTo must find axes at run time.
    const r = await expectGradOk({
      params: { p: [3], b: [2, 1, 3] },
      inputs: { z: { shape: ["n"], value: { dtype: "float64", dims: [1], data: Float64Array.from([0]) } } },
      build: (g, q, x) => {
        const xr = g.reshape(q.p!, ["n", -1]);
        expect(typeof xr.shape[1]).toBe("string");
        void x;
        return g.mul(g.add(xr, q.b!), q.b!); // [2, n, 3]
      },
    });
    expect(r.checked).toBe(9);
  });

  test("dead-code elimination: grads for w only compute no input gradient", () => {
    const g = new Graph();
    const x = g.input("x", "float32", ["batch", 4]);
    const w = g.param("w", [4, 3]);
    const unusedBranch = g.exp(g.matmul(x, w));
    const loss = g.mean(g.matmul(x, w));
    const grads = g.grad(loss, [w]);
    const model = g.toOnnx({ outputs: { loss }, grads });
    const fwd = g.toOnnx({ outputs: { loss } });
    void unusedBranch;
    const opTypes = (b: Uint8Array) => onnx.ModelProto.decode(b).graph!.node!.map((n) => n.opType!);
    expect(opTypes(fwd.bytes).sort()).toEqual(["Identity", "MatMul", "ReduceMean"]);
    const ops = opTypes(model.bytes);
    expect(ops.includes("Exp")).toBe(false); // the unused branch is gone
    expect(ops.includes("Transpose")).toBe(false); // dx = dy @ w^T is never built
    expect(ops.filter((o) => o === "Gemm").length).toBe(1); // dw = x^T · dy as one Gemm
    expect(model.outputs.map((o) => o.name)).toEqual(["loss", "grad:w"]);
  });

  test("grad errors: non-scalar loss, non-param target", () => {
    const g = new Graph();
    const p = g.param("p", [3]);
    expect(() => g.grad(g.exp(p), [p])).toThrow(GraphError);
    expect(() => g.grad(g.sum(p), [g.exp(p)])).toThrow(/not a param/);
  });

  test("every op with a gradient rule is covered by a finite-difference check above", () => {
    for (const op of DIFFERENTIABLE_OPS) expect(`${op}:${covered.has(op)}`).toBe(`${op}:true`);
  });
});
