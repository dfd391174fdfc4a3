/**
 * The scheduler on real ONNX models in worker threads: batched results equal unbatched ones
 * (fixed-shape MLP; variable-length masked mean with padding, bucketing and per-token outputs
 * cut back), errors name the model, a missing device provider fails loudly.
 *
 * Tolerance: batching changes only which rows share an ORT call, so each output row should be
 * computed by the same kernels; we allow 1e-5 absolute for reduction-order differences.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createSession, runSession, type Device, type TensorValue } from "../../src/graph/runtime.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { WorkerHost, type ModelHost } from "../../src/scheduler/model-host.ts";
import { Rng } from "../../src/util/rng.ts";
import { failure } from "./fixtures/failure.ts";
import { maskedMeanModel, mlpModel } from "./fixtures/onnx-models.ts";

const TOL = 1e-5;
const schedulers: Scheduler[] = [];
afterAll(async () => {
  await Promise.all(schedulers.map((s) => s.close()));
});

function randTensor(rng: Rng, dims: number[]): TensorValue {
  const n = dims.reduce((a, b) => a * b, 1);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = rng.normal();
  return { dtype: "float32", dims, data: d };
}

function expectClose(got: TensorValue | undefined, want: TensorValue | undefined): void {
  expect(got?.dims).toEqual(want?.dims);
  const g = got!.data as Float32Array;
  const w = want!.data as Float32Array;
  let maxErr = 0;
  for (let i = 0; i < w.length; i++) maxErr = Math.max(maxErr, Math.abs(g[i]! - w[i]!));
  expect(maxErr).toBeLessThanOrEqual(TOL);
}

/** A WorkerHost that records the dims of every batch it is sent. */
function spyingHost(log: Record<string, number[]>[]) {
  return (device: Device, i: number): ModelHost => {
    const h = new WorkerHost(device, `worker(${device}#${i})`);
    const run = h.run.bind(h);
    h.run = (name, feeds, outputs) => {
      const dims: Record<string, number[]> = {};
      for (const [k, v] of Object.entries(feeds)) dims[k] = [...v.dims];
      log.push(dims);
      return run(name, feeds, outputs);
    };
    return h;
  };
}

describe("scheduler on real ONNX models", () => {
  test("MLP: items from 3 streams batched together equal unbatched runs", async () => {
    const bytes = mlpModel({ inDim: 16, hidden: 32, outDim: 4, seed: 11 });
    const log: Record<string, number[]>[] = [];
    const s = new Scheduler({ createHost: spyingHost(log) });
    schedulers.push(s);
    const m = s.register("mlp", { model: bytes }, { maxBatch: 8, maxDelayMs: 20, maxQueue: 16, replicas: 2 });
    await m.ready;
    const rng = new Rng(3);
    const calls = Array.from({ length: 18 }, (_, i) => ({ stream: `s${i % 3}`, x: randTensor(rng, [1 + (i % 3), 16]) }));
    const ref = await createSession(bytes);
    const want: (TensorValue | undefined)[] = [];
    for (const c of calls) want.push((await runSession(ref, { x: { ...c.x, data: c.x.data.slice() } })).y);
    const got = await Promise.all(calls.map((c) => m.run({ x: c.x }, { stream: c.stream })));
    got.forEach((g, i) => expectClose(g.y, want[i]));
    const rows = calls.reduce((n, c) => n + c.x.dims[0]!, 0);
    expect(log.reduce((n, d) => n + d.x![0]!, 0)).toBe(rows);
    expect(Math.max(...log.map((d) => d.x![0]!))).toBe(8); // at least one full batch formed
    const st = s.stats().models.mlp!;
    expect(st.items).toBe(rows);
    expect(st.batches).toBe(log.length);
    expect(st.batches).toBeLessThan(calls.length);
    expect(Object.keys(st.streams).sort()).toEqual(["s0", "s1", "s2"]);
  });

  test("masked mean: variable lengths padded per batch, bucketed, per-token outputs cut back", async () => {
    const dim = 8;
    const bytes = maskedMeanModel({ dim, seed: 5 });
    const log: Record<string, number[]>[] = [];
    const s = new Scheduler({ createHost: spyingHost(log) });
    schedulers.push(s);
    const m = s.register(
      "masked",
      {
        model: bytes,
        inputs: { x: { variableAxis: 1, padValue: 0 }, mask: { variableAxis: 1, padValue: 0 } },
        outputs: { scaled: { variableAxis: 1 } },
        lengthBuckets: [4, 8, 16],
      },
      { maxBatch: 6, maxDelayMs: 20 },
    );
    await m.ready;
    const rng = new Rng(9);
    const lengths = [1, 3, 4, 2, 7, 5, 8, 6, 11, 16, 9, 2, 3, 13];
    const items = lengths.map((len, i) => {
      const rows = 1 + (i % 2);
      // Pad-like noise beyond the mask would be wrong to see; real items have all-ones masks.
      return { len, x: randTensor(rng, [rows, len, dim]), mask: { dtype: "float32" as const, dims: [rows, len], data: new Float32Array(rows * len).fill(1) } };
    });
    const ref = await createSession(bytes);
    const want: Record<string, TensorValue>[] = [];
    for (const it of items) {
      want.push(await runSession(ref, { x: { ...it.x, data: it.x.data.slice() }, mask: { ...it.mask, data: it.mask.data.slice() } }));
    }
    const got = await Promise.all(items.map((it, i) => m.run({ x: it.x, mask: it.mask }, { stream: `s${i % 4}` })));
    got.forEach((g, i) => {
      expectClose(g.mean, want[i]!.mean);
      expectClose(g.scaled, want[i]!.scaled); // [rows, len, dim], cut back from the padded batch
    });
    // Every batch holds one length bucket (≤4, ≤8, ≤16) and is padded to its longest item only.
    const bucket = (l: number) => (l <= 4 ? 0 : l <= 8 ? 1 : 2);
    for (const d of log) expect(d.x![1]).toBe(d.mask![1]!);
    const paddedLens = log.map((d) => d.x![1]!);
    expect(new Set(paddedLens.map(bucket)).size).toBe(3);
    // Bucket ≤4 holds 4 distinct lengths in fewer batches: some batch mixed lengths (was padded).
    expect(paddedLens.filter((l) => bucket(l) === 0).length).toBeLessThan(4);
    expect(paddedLens.every((l) => lengths.includes(l))).toBe(true);
    expect(log.reduce((n, d) => n + d.x![0]!, 0)).toBe(items.reduce((n, it) => n + it.x.dims[0]!, 0));
    expect(log.length).toBeLessThan(items.length);
  });

  test("a failing batch rejects its calls with the model name; other shapes are unaffected", async () => {
    const s = new Scheduler();
    schedulers.push(s);
    const m = s.register("mlp", { model: mlpModel({ inDim: 16, hidden: 8, outDim: 2, seed: 1 }) }, { maxBatch: 4, maxDelayMs: 5 });
    const good = m.run({ x: { dtype: "float32", dims: [1, 16], data: new Float32Array(16) } });
    // Loading is still under way, so the input names cannot be checked yet: ORT rejects it.
    const bad = m.run({ x: { dtype: "float32", dims: [1, 5], data: new Float32Array(5) } });
    expect(await failure(bad)).toMatch(/^model 'mlp' run failed: Got invalid dimensions for input: x/);
    expect((await good).y!.dims).toEqual([1, 2]);
    expect(s.stats().models.mlp!.failed).toBe(1);
  });

  test("a device without its provider fails loudly at load and on every call", async () => {
    const s = new Scheduler({ devices: ["cuda:0"] });
    schedulers.push(s);
    const m = s.register("mlp", { model: mlpModel({ inDim: 4, hidden: 4, outDim: 2, seed: 1 }) }, { maxBatch: 4 });
    const queued = m.run({ x: { dtype: "float32", dims: [1, 4], data: new Float32Array(4) } });
    const re = /^model 'mlp': load model 'mlp' on cuda:0: .*(no CUDA execution provider|Cuda: Failed to load shared library)/;
    expect(await failure(m.ready)).toMatch(re);
    expect(await failure(queued)).toMatch(re);
    expect(await failure(m.run({ x: { dtype: "float32", dims: [1, 4], data: new Float32Array(4) } }))).toMatch(re);
    expect(() => s.register("cpu-model", { model: new Uint8Array(1) }, { device: "cpu" })).toThrow(
      "model 'cpu-model': device 'cpu' is not one of the scheduler's devices (cuda:0)",
    );
  });
});
