/**
 * Finite-difference gradient checker for graph tests: builds a graph, takes analytic gradients
 * with g.grad, and compares every parameter element against a central difference of the loss.
 */
import { expect } from "bun:test";
import { Graph, type Tensor, type TensorValue } from "../../src/graph/index.ts";
import { Rng } from "../../src/util/rng.ts";

export type FloatType = "float32" | "float64";

export interface GradCase {
  dtype?: FloatType;
  /** parameter shapes; values are random normal (or uniform in [0.5, 1.5] when positive).
   * Params declared inside `build` (e.g. by nn.ts) are checked too. */
  params: Record<string, number[]>;
  /** std of random values for params declared inside build (default 1) */
  scale?: number;
  /** `build` returns the scalar loss itself (default: loss = sum(y ⊙ R)) */
  lossIsOutput?: boolean;
  /** directional check only: compare grad·v with a central difference along one random v */
  directional?: boolean;
  positive?: boolean;
  /** extra fed inputs */
  inputs?: Record<string, { shape: (number | string)[]; value: TensorValue }>;
  build(g: Graph, p: Record<string, Tensor>, x: Record<string, Tensor>): Tensor;
  seed?: number;
  /** override parameter values */
  values?: Record<string, number[]>;
}

export interface GradResult {
  /** worst |analytic − fd| / (1 + max |fd|) over all elements */
  worst: number;
  checked: number;
  grads: Record<string, Float64Array>;
}

/** Run the check and return the worst scaled error. */
export async function gradError(c: GradCase): Promise<GradResult> {
  const dtype = c.dtype ?? "float64";
  const rng = new Rng(c.seed ?? 7);
  const g = new Graph({ floatType: dtype });
  const p: Record<string, Tensor> = {};
  for (const [k, s] of Object.entries(c.params)) p[k] = g.param(k, s);
  const x: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(c.inputs ?? {})) x[k] = g.input(k, v.value.dtype as never, v.shape);
  const y = c.build(g, p, x);
  const shapes: Record<string, number[]> = {};
  for (const spec of g.params()) shapes[spec.name] = spec.shape;
  // loss = sum(y ⊙ R) with a fixed random R (static shapes) so every output element matters
  let loss: Tensor;
  if (c.lossIsOutput) {
    loss = y;
  } else if (y.shape.every((d) => typeof d === "number")) {
    const n = (y.shape as number[]).reduce((a, b) => a * b, 1);
    const R = dtype === "float32" ? new Float32Array(n) : new Float64Array(n);
    for (let i = 0; i < n; i++) R[i] = rng.normal();
    loss = g.sum(g.mul(y, g.constant(R, y.shape as number[])));
  } else {
    loss = g.sum(g.mul(g.mul(y, y), 0.5));
  }
  const grads = g.grad(loss, g.params());
  const full = await g.compile({ outputs: { loss }, grads });
  const fwd = await g.compile({ outputs: { loss } });
  const Arr = dtype === "float32" ? Float32Array : Float64Array;
  const vals: Record<string, Float32Array | Float64Array> = {};
  for (const [k, s] of Object.entries(shapes)) {
    const n = s.reduce((a, b) => a * b, 1);
    const v = new Arr(n);
    const own = k in c.params;
    for (let i = 0; i < n; i++) {
      v[i] = c.values?.[k] ? c.values[k]![i]! : c.positive ? 0.5 + rng.uniform() : rng.normal() * (own ? 1 : c.scale ?? 1);
    }
    vals[k] = v;
  }
  const feeds = () => {
    const f: Record<string, TensorValue> = {};
    for (const [k, s] of Object.entries(shapes)) f[k] = { dtype, dims: s, data: vals[k]! };
    for (const [k, v] of Object.entries(c.inputs ?? {})) f[k] = v.value;
    return f;
  };
  const res = await full.run(feeds());
  const lossAt = async () => Number((await fwd.run(feeds())).loss!.data[0]);
  const h = dtype === "float64" ? 1e-6 : 1e-2;
  let worst = 0, checked = 0, scale = 0;
  const out: Record<string, Float64Array> = {};
  const errs: number[] = [];
  for (const k of Object.keys(shapes)) {
    const gv = res[`grad:${k}`]!;
    expect(gv.dims).toEqual(shapes[k]!);
    out[k] = Float64Array.from(gv.data as Float64Array);
  }
  if (c.directional) {
    // one random direction v over all params: (L(p + hv) − L(p − hv)) / 2h ≈ ∇L · v
    const dir: Record<string, Float64Array> = {};
    let dot = 0;
    for (const k of Object.keys(shapes)) {
      dir[k] = Float64Array.from(vals[k]!, () => rng.normal());
      dir[k]!.forEach((d, i) => (dot += d * out[k]![i]!));
    }
    const base = Object.fromEntries(Object.keys(shapes).map((k) => [k, Float64Array.from(vals[k]!)]));
    const at = async (sgn: number) => {
      for (const k of Object.keys(shapes)) vals[k]!.forEach((_, i, a) => (a[i] = base[k]![i]! + sgn * h * dir[k]![i]!));
      return lossAt();
    };
    const fd = ((await at(1)) - (await at(-1))) / (2 * h);
    for (const k of Object.keys(shapes)) vals[k]!.set(base[k]!);
    return { worst: Math.abs(fd - dot) / (1 + Math.abs(fd)), checked: 1, grads: out };
  }
  for (const k of Object.keys(shapes)) {
    const a = out[k]!;
    const v = vals[k]!;
    for (let i = 0; i < v.length; i++) {
      const o = v[i]!;
      v[i] = o + h;
      const lp = await lossAt();
      v[i] = o - h;
      const lm = await lossAt();
      v[i] = o;
      const fd = (lp - lm) / (2 * h);
      scale = Math.max(scale, Math.abs(fd));
      errs.push(Math.abs(a[i]! - fd));
      checked++;
    }
  }
  for (const e of errs) worst = Math.max(worst, e / (1 + scale));
  return { worst, checked, grads: out };
}

/** Tolerances: float64 central differences (h = 1e-6) vs float32 (h = 1e-2, ~1e-7 rounding). */
export const TOL = { float64: 1e-6, float32: 2e-2 } as const;

export async function expectGradOk(c: GradCase): Promise<GradResult> {
  const r = await gradError(c);
  expect(r.checked).toBeGreaterThan(0);
  expect(r.worst).toBeLessThan(TOL[c.dtype ?? "float64"]);
  return r;
}
