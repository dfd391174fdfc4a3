/**
 * WorkerHost: ORT sessions in a Bun Worker. Several sessions per worker, results equal to an
 * in-process run, tensors transferred (not cloned), errors naming the model, clean shutdown,
 * and the main thread's timers ticking while a heavy model runs.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { failure } from "./fixtures/failure.ts";
import { createSession, runSession, type TensorValue } from "../../src/graph/runtime.ts";
import { WorkerHost } from "../../src/scheduler/model-host.ts";
import { Rng } from "../../src/util/rng.ts";
import { maskedMeanModel, mlpModel, vitModel } from "./fixtures/onnx-models.ts";

const mlp = mlpModel({ inDim: 16, hidden: 32, outDim: 4, seed: 1 });
const masked = maskedMeanModel({ dim: 8, seed: 2 });

function randTensor(rng: Rng, dims: number[]): TensorValue {
  const n = dims.reduce((a, b) => a * b, 1);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = rng.normal();
  return { dtype: "float32", dims, data: d };
}

const copy = (t: TensorValue): TensorValue => ({ ...t, dims: [...t.dims], data: t.data.slice() });

const hosts: WorkerHost[] = [];
afterAll(async () => {
  await Promise.all(hosts.map((h) => h.terminate()));
});

describe("WorkerHost", () => {
  test("hosts several named sessions; results equal an in-process run; feeds are transferred", async () => {
    const host = new WorkerHost("cpu");
    hosts.push(host);
    const [i1, i2] = await Promise.all([host.load("mlp", mlp, { intraOpThreads: 1 }), host.load("masked", masked, { intraOpThreads: 1 })]);
    expect(i1).toEqual({ inputNames: ["x"], outputNames: ["y"] });
    expect(i2).toEqual({ inputNames: ["x", "mask"], outputNames: ["mean", "scaled"] });
    const rng = new Rng(5);
    const x = randTensor(rng, [3, 16]);
    const ref = await runSession(await createSession(mlp), { x: copy(x) });
    const out = await host.run("mlp", { x });
    expect(x.data.buffer.byteLength).toBe(0); // transferred to the worker, not cloned
    expect(out.y!.dims).toEqual([3, 4]);
    expect([...(out.y!.data as Float32Array)]).toEqual([...(ref.y!.data as Float32Array)]);
    const mx = randTensor(rng, [2, 5, 8]);
    const mask: TensorValue = { dtype: "float32", dims: [2, 5], data: Float32Array.of(1, 1, 1, 0, 0, 1, 1, 1, 1, 1) };
    const ref2 = await runSession(await createSession(masked), { x: copy(mx), mask: copy(mask) });
    const out2 = await host.run("masked", { x: mx, mask });
    expect(out2.mean!.dims).toEqual([2, 8]);
    expect([...(out2.mean!.data as Float32Array)]).toEqual([...(ref2.mean!.data as Float32Array)]);
    // Only requested outputs come back.
    const only = await host.run("masked", { x: randTensor(rng, [1, 2, 8]), mask: { dtype: "float32", dims: [1, 2], data: Float32Array.of(1, 1) } }, ["mean"]);
    expect(Object.keys(only)).toEqual(["mean"]);
  });

  test("a failed run rejects that call with the model name; the worker keeps serving", async () => {
    const host = new WorkerHost("cpu");
    hosts.push(host);
    await host.load("mlp", mlp);
    const bad = host.run("mlp", { x: { dtype: "float32", dims: [1, 5], data: new Float32Array(5) } });
    expect(await failure(bad)).toMatch(/^model 'mlp' run failed: .*(dimension|Got invalid dimensions)/i);
    expect(await failure(host.run("nope", { x: { dtype: "float32", dims: [1, 16], data: new Float32Array(16) } }))).toContain("model 'nope' run failed: no session 'nope' loaded in this worker",
    );
    const ok = await host.run("mlp", { x: { dtype: "float32", dims: [1, 16], data: new Float32Array(16) } });
    expect(ok.y!.dims).toEqual([1, 4]);
    expect(await failure(host.load("junk", Uint8Array.of(1, 2, 3)))).toMatch(/^load model 'junk' on cpu: cannot load ONNX model <3 bytes of ONNX>/);
  });

  test("a missing CUDA provider is a clear error, never a CPU fallback", async () => {
    const host = new WorkerHost("cuda:0");
    hosts.push(host);
    // runtime.ts rejects cuda:N itself when the binary lists no CUDA backend; this CPU build lists
    // one but lacks its shared library, so ORT's own provider error comes through instead.
    expect(await failure(host.load("mlp", mlp))).toMatch(
      /^load model 'mlp' on cuda:0: .*(no CUDA execution provider|Cuda: Failed to load shared library)/,
    );
  });

  test("terminate lets calls already sent finish (never stops ORT mid-call), then rejects later calls", async () => {
    const host = new WorkerHost("cpu");
    const loading = host.load("mlp", mlp);
    const closed = host.terminate();
    expect(await failure(host.run("mlp", { x: { dtype: "float32", dims: [1, 16], data: new Float32Array(16) } }))).toBe(
      "model 'mlp' run failed: worker(cpu) terminated",
    );
    expect(await loading).toEqual({ inputNames: ["x"], outputNames: ["y"] }); // sent before terminate: it completes
    await closed;
    expect(await failure(host.run("mlp", { x: { dtype: "float32", dims: [1, 16], data: new Float32Array(16) } }))).toContain("terminated");
  });

  test("the main thread's timers keep ticking while a heavy model runs in the worker", async () => {
    // ~1.3 GFLOP per image: long enough to see a blocked event loop on any machine.
    const cfg = { image: 224, patch: 16, width: 256, layers: 4, heads: 4, mlp: 1024, embed: 64, seed: 3 };
    const bytes = vitModel(cfg);
    const pixels = (): TensorValue => ({ dtype: "float32", dims: [2, 3, 224, 224], data: new Float32Array(2 * 3 * 224 * 224).fill(0.1) });
    const ticksDuring = async (run: () => Promise<unknown>) => {
      let ticks = 0;
      const iv = setInterval(() => ticks++, 1);
      const t0 = performance.now();
      await run();
      const ms = performance.now() - t0;
      clearInterval(iv);
      return { ticks, ms };
    };
    const host = new WorkerHost("cpu");
    hosts.push(host);
    await host.load("vit", bytes, { intraOpThreads: 1 });
    const inWorker = await ticksDuring(() => host.run("vit", { pixels: pixels() }));
    const local = await createSession(bytes, { intraOpThreads: 1 });
    const inMain = await ticksDuring(() => runSession(local, { pixels: pixels() }));
    await local.release();
    // Blocking ORT on the main thread: the 1 ms timer cannot fire while the model runs.
    expect(inMain.ms).toBeGreaterThan(30);
    expect(inMain.ticks).toBeLessThanOrEqual(2);
    // In the worker: the timer keeps firing through the run.
    expect(inWorker.ticks).toBeGreaterThanOrEqual(Math.max(10, inWorker.ms / 20));
  });
});
