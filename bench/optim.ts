/**
 * bench/optim.ts — AdamW update: TS kernel vs ONNX kernel, same run, same data.
 * Case `adamw-onnx-vs-ts`: ratio = TS ms/step ÷ ONNX ms/step (> 1 means ONNX is faster).
 * Run: npx bun bench/optim.ts
 */
import { ParamStore } from "../src/graph/params.ts";
import { AdamW } from "../src/train/adamw.ts";
import { adamwOnnxKernel } from "../src/train/adamw-onnx.ts";
import { Rng } from "../src/util/rng.ts";

/** A model-like param set: `mats` 1024×1024 matrices plus bias/norm vectors. */
function makeStore(mats: number, rng: Rng): { store: ParamStore; grads: Record<string, Float32Array> } {
  const store = new ParamStore();
  const grads: Record<string, Float32Array> = {};
  for (let i = 0; i < mats; i++) {
    for (const [name, shape] of [[`l${i}.w`, [1024, 1024]], [`l${i}.b`, [1024]], [`l${i}.ln`, [1024]]] as const) {
      const n = shape.reduce((a, b) => a * b, 1);
      const p = new Float32Array(n);
      const g = new Float32Array(n);
      for (let j = 0; j < n; j++) {
        p[j] = 0.02 * (rng.uniform() - 0.5);
        g[j] = 0.001 * (rng.uniform() - 0.5);
      }
      store.add(name, shape, p);
      grads[name] = g;
    }
  }
  return { store, grads };
}

async function timeSteps(opt: AdamW, grads: Record<string, Float32Array>, steps: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await opt.step(grads, { lr: 1e-3, gradScale: 0.9 });
  return (performance.now() - t0) / steps;
}

const rng = new Rng(0);
const onnxKernel = await adamwOnnxKernel({}, 1);
// Also ORT with 2 intra-op threads (the TS loop is single-threaded; reported, not the ratio).
const onnxKernel2 = await adamwOnnxKernel({}, 2);
for (const [label, mats, steps] of [["1M", 1, 20], ["10M", 10, 5]] as const) {
  const { store, grads } = makeStore(mats, rng);
  const tsStore = store.clone();
  const onnxStore = store.clone();
  const tsOpt = new AdamW(tsStore, { weightDecay: 0.01 });
  const onnxOpt = new AdamW(onnxStore, { weightDecay: 0.01 }, onnxStore.trainableNames(), onnxKernel);
  const onnx2Store = store.clone();
  const onnx2Opt = new AdamW(onnx2Store, { weightDecay: 0.01 }, onnx2Store.trainableNames(), onnxKernel2);
  // Warm up JIT and ORT allocations.
  await timeSteps(tsOpt, grads, 2);
  await timeSteps(onnxOpt, grads, 2);
  await timeSteps(onnx2Opt, grads, 2);
  // Interleave rounds so machine-load drift hits both kernels alike.
  let tsMs = 0;
  let onnxMs = 0;
  let onnx2Ms = 0;
  const rounds = 3;
  for (let r = 0; r < rounds; r++) {
    tsMs += await timeSteps(tsOpt, grads, steps);
    onnxMs += await timeSteps(onnxOpt, grads, steps);
    onnx2Ms += await timeSteps(onnx2Opt, grads, steps);
  }
  tsMs /= rounds;
  onnxMs /= rounds;
  onnx2Ms /= rounds;
  // Both kernels took the same steps from the same start: report their max disagreement.
  let maxDiff = 0;
  for (const n of tsStore.names()) {
    const a = tsStore.require(n).data;
    const b = onnxStore.require(n).data;
    for (let i = 0; i < a.length; i += 97) maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
  }
  const params = store.numel();
  console.log(
    JSON.stringify({
      case: "adamw-onnx-vs-ts",
      size: label,
      params,
      ratio: Number((tsMs / onnxMs).toFixed(3)),
      ts_ms_per_step: Number(tsMs.toFixed(2)),
      onnx_ms_per_step: Number(onnxMs.toFixed(2)),
      ts_mparams_per_s: Number((params / tsMs / 1e3).toFixed(1)),
      onnx_mparams_per_s: Number((params / onnxMs / 1e3).toFixed(1)),
      onnx_threads: 1,
      onnx_2threads_ms_per_step: Number(onnx2Ms.toFixed(2)),
      max_abs_diff: maxDiff,
    }),
  );
}
