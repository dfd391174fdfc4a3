import { describe, expect, test } from "bun:test";
import { ParamStore } from "../../src/graph/params.ts";
import { AdamW } from "../../src/train/adamw.ts";
import { adamwOnnxKernel, buildAdamWGraph } from "../../src/train/adamw-onnx.ts";
import { Rng } from "../../src/util/rng.ts";

function store1(value: number, shape: number[] = [1, 1]): ParamStore {
  const s = new ParamStore();
  s.add("w", shape, new Float32Array([value]));
  return s;
}

test("the update graph has symbolic length and per-step scalar inputs", () => {
  const { graph, outputs } = buildAdamWGraph({ beta1: 0.9, beta2: 0.999, eps: 1e-8 });
  const model = graph.toOnnx({ outputs });
  expect(model.inputs.map((i) => i.name).sort()).toEqual(["decay", "g", "grad_scale", "inv_sqrt_bc2", "m", "p", "step_size", "v"]);
  expect(model.inputs.find((i) => i.name === "p")!.shape).toEqual(["n"]);
  expect(model.outputs.map((o) => o.name).sort()).toEqual(["m_out", "p_out", "v_out"]);
});

describe("AdamW ONNX kernel (the non-default reference)", () => {
  test("hand-computed two steps, and agreement with the TS kernel over several steps", async () => {
    const cfg = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };
    const kernel = await adamwOnnxKernel(cfg);
    // Same hand-computed steps as above: 0.899000002 then 0.9347113.
    const s = store1(1);
    const opt = new AdamW(s, cfg, ["w"], kernel);
    expect(opt.kernelKind).toBe("onnx");
    await opt.step({ w: new Float32Array([0.5]) }, { lr: 0.1 });
    expect(s.require("w").data[0]).toBeCloseTo(0.899000002, 6);
    await opt.step({ w: new Float32Array([-1]) }, { lr: 0.1 });
    expect(s.require("w").data[0]).toBeCloseTo(0.9347113, 6);
    expect(opt.moments("w").v[0]).toBeCloseTo(0.00124975, 9);

    const rng = new Rng(3);
    const mk = () => {
      const st = new ParamStore();
      st.add("a", [8, 16], Float32Array.from({ length: 128 }, (_, i) => Math.sin(i)));
      st.add("b", [16], Float32Array.from({ length: 16 }, (_, i) => Math.cos(i)));
      return st;
    };
    const ts = mk();
    const ox = mk();
    const ots = new AdamW(ts, cfg);
    const oox = new AdamW(ox, cfg, ox.trainableNames(), kernel);
    for (let k = 0; k < 4; k++) {
      const grads = { a: Float32Array.from({ length: 128 }, () => rng.normal()), b: Float32Array.from({ length: 16 }, () => rng.normal()) };
      await ots.step(grads, { lr: 0.01 * (k + 1), gradScale: 0.5 });
      await oox.step(grads, { lr: 0.01 * (k + 1), gradScale: 0.5 });
    }
    for (const n of ["a", "b"]) {
      const x = ts.require(n).data;
      const y = ox.require(n).data;
      // float32 graph vs float64-accumulating TS: agree to float32 rounding.
      for (let i = 0; i < x.length; i++) expect(Math.abs(x[i]! - y[i]!)).toBeLessThan(1e-6);
      expect(Array.from(oox.moments(n).m).every((v, i) => Math.abs(v - ots.moments(n).m[i]!) < 1e-6)).toBe(true);
    }
    // A kernel built for other betas refuses to run silently wrong.
    const other = new AdamW(mk(), { ...cfg, beta2: 0.95 }, ["a", "b"], kernel);
    await expect(other.step({ a: new Float32Array(128), b: new Float32Array(16) }, { lr: 0.1 })).rejects.toThrow("was built for beta1=0.9 beta2=0.999");
  });
});
