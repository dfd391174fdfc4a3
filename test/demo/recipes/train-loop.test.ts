import { describe, expect, test } from "bun:test";
import { Graph } from "../../../src/graph/index.ts";
import { ParamStore } from "../../../src/graph/params.ts";
import { Rng } from "../../../src/util/rng.ts";
import { trainLoop, type StepLog } from "../../../demo/recipes/train-loop.ts";

async function quadratic(target: number[]) {
  const g = new Graph();
  const t = g.input("t", "float32", [target.length]);
  const w = g.param("w", [target.length], { init: { kind: "zeros" } });
  const d = g.sub(w, t);
  const loss = g.mean(g.mul(d, d));
  const store = ParamStore.fromSpecs(g.params(), new Rng(0));
  const step = await g.compile({ outputs: { loss }, grads: g.grad(loss, ["w"]), params: store });
  return { store, step };
}

describe("trainLoop", () => {
  test("minimises a quadratic with AdamW + warmup/cosine, logging every k steps and the last", async () => {
    const target = [3, -2, 0.5];
    const { store, step } = await quadratic(target);
    const logs: StepLog[] = [];
    const r = await trainLoop({
      store, step, batch: () => ({ t: Float32Array.from(target) }),
      config: { steps: 300, lr: 0.1, warmupSteps: 10, minLr: 0.001, weightDecay: 0, maxGradNorm: 100 },
      logEvery: 100, log: (l) => logs.push(l),
    });
    expect(r.losses.length).toBe(300);
    expect(r.losses[0]).toBeCloseTo((9 + 4 + 0.25) / 3, 5);
    expect(r.losses.at(-1)!).toBeLessThan(1e-3);
    Array.from(store.require("w").data).forEach((v, i) => expect(Math.abs(v - target[i]!)).toBeLessThan(0.05));
    expect(logs.map((l) => l.step)).toEqual([0, 100, 200, 299]);
    expect(logs[0]!.lr).toBeCloseTo(0.01, 10); // warmup: lr·1/10
    expect(logs[3]!.lr).toBeCloseTo(0.001, 10); // cosine ends on minLr
  });

  test("stops on a non-finite loss, naming the step", async () => {
    const g = new Graph();
    const w = g.param("w", [1], { init: { kind: "constant", value: -1 } });
    const loss = g.sum(g.sqrt(w));
    const store = ParamStore.fromSpecs(g.params(), new Rng(0));
    const step = await g.compile({ outputs: { loss }, grads: g.grad(loss, ["w"]), params: store });
    await expect(trainLoop({ store, step, batch: () => ({}), config: { steps: 3, lr: 0.1, warmupSteps: 0, minLr: 0, weightDecay: 0, maxGradNorm: 1 } })).rejects.toThrow("loss is NaN at step 0");
  });
});
