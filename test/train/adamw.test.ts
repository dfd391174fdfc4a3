import { describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ParamStore } from "../../src/graph/params.ts";
import { loadSafetensors, saveSafetensors } from "../../src/graph/safetensors.ts";
import { AdamW, adamwUpdateTs } from "../../src/train/adamw.ts";
import { Rng } from "../../src/util/rng.ts";

function store1(value: number, shape: number[] = [1, 1]): ParamStore {
  const s = new ParamStore();
  s.add("w", shape, new Float32Array([value]));
  return s;
}

describe("AdamW against hand-computed steps", () => {
  // lr 0.1, β1 0.9, β2 0.999, ε 1e-8, wd 0.01, p0 = 1.
  // step 1, g = 0.5:
  //   m = 0.1·0.5 = 0.05, v = 0.001·0.25 = 0.00025
  //   m̂ = 0.05/0.1 = 0.5, v̂ = 0.00025/0.001 = 0.25, √v̂ = 0.5 → update ratio 0.5/(0.5+1e-8) ≈ 0.99999998
  //   p = 1·(1 − 0.1·0.01) − 0.1·0.99999998 = 0.999 − 0.099999998 = 0.899000002
  // step 2, g = −1:
  //   m = 0.9·0.05 − 0.1 = −0.055, v = 0.999·0.00025 + 0.001 = 0.00124975
  //   bc1 = 1 − 0.81 = 0.19, bc2 = 1 − 0.998001 = 0.001999
  //   m̂ = −0.289473684, v̂ = 0.625187594, √v̂ = 0.790688
  //   p = 0.899000002·0.999 + 0.1·0.366103 = 0.898101002 + 0.0366103 = 0.9347113
  const cfg = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

  test("two steps on a decayed (matrix) param", async () => {
    const s = store1(1);
    const opt = new AdamW(s, cfg);
    expect(opt.isDecayed("w")).toBe(true);
    await opt.step({ w: new Float32Array([0.5]) }, { lr: 0.1 });
    expect(opt.stepCount).toBe(1);
    expect(opt.moments("w").m[0]).toBeCloseTo(0.05, 7);
    expect(opt.moments("w").v[0]).toBeCloseTo(0.00025, 9);
    expect(s.require("w").data[0]).toBeCloseTo(0.899000002, 6);
    await opt.step({ w: new Float32Array([-1]) }, { lr: 0.1 });
    expect(opt.moments("w").m[0]).toBeCloseTo(-0.055, 7);
    expect(opt.moments("w").v[0]).toBeCloseTo(0.00124975, 9);
    expect(s.require("w").data[0]).toBeCloseTo(0.9347113, 6);
  });

  test("a rank-1 param is not decayed by default: step 1 gives 1 − 0.1·0.99999998", async () => {
    const s = store1(1, [1]);
    const opt = new AdamW(s, cfg);
    expect(opt.isDecayed("w")).toBe(false);
    await opt.step({ w: new Float32Array([0.5]) }, { lr: 0.1 });
    expect(s.require("w").data[0]).toBeCloseTo(0.900000002, 6);
    const all = store1(1, [1]);
    await new AdamW(all, { ...cfg, decay: "all" }).step({ w: new Float32Array([0.5]) }, { lr: 0.1 });
    expect(all.require("w").data[0]).toBeCloseTo(0.899000002, 6);
    const excluded = store1(1, [1, 1]);
    const o3 = new AdamW(excluded, { ...cfg, noDecay: ["w"] });
    expect(o3.isDecayed("w")).toBe(false);
  });

  test("gradScale multiplies the gradient (g = 1 scaled by 0.5 equals g = 0.5)", async () => {
    const a = store1(1);
    const b = store1(1);
    const oa = new AdamW(a, cfg);
    const ob = new AdamW(b, cfg);
    for (const g of [1, -2, 0.25]) {
      await oa.step({ w: new Float32Array([g]) }, { lr: 0.05, gradScale: 0.5 });
      await ob.step({ w: new Float32Array([g * 0.5]) }, { lr: 0.05 });
    }
    expect(a.require("w").data[0]).toBe(b.require("w").data[0]!);
  });

  test("only trainable params move; frozen params and missing grads", async () => {
    const s = new ParamStore();
    s.add("a", [2, 2], new Float32Array([1, 2, 3, 4]));
    s.add("frozen", [2], new Float32Array([5, 6]), false);
    const opt = new AdamW(s, cfg);
    expect(opt.names).toEqual(["a"]);
    await opt.step({ a: new Float32Array([1, 1, 1, 1]), frozen: new Float32Array([9, 9]) }, { lr: 0.1 });
    expect(Array.from(s.require("frozen").data)).toEqual([5, 6]);
    expect(s.require("a").data[0]).not.toBe(1);
    await expect(opt.step({}, { lr: 0.1 })).rejects.toThrow("AdamW: no gradient for param 'a'");
    await expect(opt.step({ a: new Float32Array(3) }, { lr: 0.1 })).rejects.toThrow("has 3 values, param has 4");
    await expect(opt.step({ a: new Float32Array(4) }, { lr: NaN })).rejects.toThrow("learning rate must be");
    expect(() => new AdamW(s, { beta1: 1 })).toThrow("beta1 must be in [0, 1)");
  });

  test("batched update over many elements equals per-element scalar updates", () => {
    const n = 257;
    const rng = new Rng(5);
    const p = Float32Array.from({ length: n }, () => rng.normal());
    const g = Float32Array.from({ length: n }, () => rng.normal());
    const m = Float32Array.from({ length: n }, () => 0.1 * rng.normal());
    const v = Float32Array.from({ length: n }, () => 0.01 * rng.uniform());
    const sc = { beta1: 0.8, beta2: 0.95, eps: 1e-6, decay: 0.99, stepSize: 0.02, invSqrtBc2: 1.3, gradScale: 0.7 };
    const [p2, m2, v2] = [p.slice(), m.slice(), v.slice()];
    adamwUpdateTs(p2, g, m2, v2, sc);
    for (let i = 0; i < n; i += 37) {
      const gi = g[i]! * 0.7;
      const mi = 0.8 * m[i]! + 0.2 * gi;
      const vi = 0.95 * v[i]! + 0.05 * gi * gi;
      expect(m2[i]).toBeCloseTo(mi, 6);
      expect(v2[i]).toBeCloseTo(vi, 6);
      expect(p2[i]).toBeCloseTo(p[i]! * 0.99 - (0.02 * mi) / (Math.sqrt(vi) * 1.3 + 1e-6), 5);
    }
  });
});

describe("AdamW state round trip", () => {
  test("save state after k steps, restore into a fresh optimiser: identical continuation", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "clipflow-adamw-"));
    const rng = new Rng(11);
    const mk = () => {
      const s = new ParamStore();
      s.add("w", [3, 4], Float32Array.from({ length: 12 }, (_, i) => Math.sin(i)));
      s.add("b", [4], Float32Array.from({ length: 4 }, (_, i) => Math.cos(i)));
      return s;
    };
    const gradsSeq = Array.from({ length: 5 }, () => ({
      w: Float32Array.from({ length: 12 }, () => rng.normal()),
      b: Float32Array.from({ length: 4 }, () => rng.normal()),
    }));
    const a = mk();
    const oa = new AdamW(a, { weightDecay: 0.1 });
    for (const g of gradsSeq) await oa.step(g, { lr: 0.01 });

    const b = mk();
    const ob = new AdamW(b, { weightDecay: 0.1 });
    for (const g of gradsSeq.slice(0, 3)) await ob.step(g, { lr: 0.01 });
    const p = join(tmp, "opt.safetensors");
    const { tensors, metadata } = ob.stateTensors();
    await saveSafetensors(p, tensors, metadata);
    await b.save(join(tmp, "w.safetensors"));

    const { store: c } = await ParamStore.load(join(tmp, "w.safetensors"));
    const oc = new AdamW(c, { weightDecay: 0.1 }, ["w", "b"]);
    oc.loadStateTensors(await loadSafetensors(p));
    expect(oc.stepCount).toBe(3);
    for (const g of gradsSeq.slice(3)) await oc.step(g, { lr: 0.01 });
    expect(Array.from(c.require("w").data)).toEqual(Array.from(a.require("w").data));
    expect(Array.from(c.require("b").data)).toEqual(Array.from(a.require("b").data));
    expect(Array.from(oc.moments("w").v)).toEqual(Array.from(oa.moments("w").v));

    const bad = await loadSafetensors(join(tmp, "w.safetensors"));
    expect(() => oc.loadStateTensors(bad)).toThrow("missing or bad 'adamw.step' metadata");
  });
});

describe("AdamW trains a graph model", () => {
  test("a 2-layer MLP's loss on a fixed batch falls ≥ 20× (warmup+cosine, clipping, grads from the graph)", async () => {
    const { Graph } = await import("../../src/graph/index.ts");
    const { clipCoefficient, globalGradNorm } = await import("../../src/train/clip-grad-norm.ts");
    const { lrSchedule } = await import("../../src/train/lr-schedule.ts");
    const { gradsOf } = await import("../../src/train/grads-of.ts");
    const g = new Graph();
    const x = g.input("x", "float32", [16, 4]);
    const y = g.input("y", "float32", [16, 1]);
    const w1 = g.param("w1", [4, 16], { init: { kind: "normal", std: 0.5 } });
    const b1 = g.param("b1", [16], { init: { kind: "zeros" } });
    const w2 = g.param("w2", [16, 1], { init: { kind: "normal", std: 0.5 } });
    const pred = g.matmul(g.tanh(g.add(g.matmul(x, w1), b1)), w2); // [16, 1]
    const d = g.sub(pred, y);
    const loss = g.mean(g.mul(d, d));
    const store = ParamStore.fromSpecs(g.params(), new Rng(4));
    const step = await g.compile({ outputs: { loss }, grads: g.grad(loss, g.params()), params: store });
    const rng = new Rng(9);
    const xs = Float32Array.from({ length: 64 }, () => rng.normal());
    const ys = Float32Array.from({ length: 16 }, (_, i) => Math.sin(xs[4 * i]!) + 0.5 * xs[4 * i + 1]! * xs[4 * i + 2]!);
    const opt = new AdamW(store, { weightDecay: 0.0 });
    const lrAt = lrSchedule({ kind: "cosine", lr: 0.05, warmupSteps: 5, totalSteps: 150, minLr: 0.005 });
    const losses: number[] = [];
    for (let s = 0; s < 150; s++) {
      const r = await step.run({ x: xs, y: ys });
      losses.push(r.loss!.data[0] as number);
      const grads = gradsOf(r, opt.names);
      const norm = globalGradNorm(grads);
      await opt.step(grads, { lr: lrAt(s), gradScale: clipCoefficient(norm, 1.0) });
    }
    expect(losses[0]!).toBeGreaterThan(0.1);
    expect(losses.at(-1)!).toBeLessThan(losses[0]! / 20);
    expect(opt.stepCount).toBe(150);
  });
});
