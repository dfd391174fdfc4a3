/**
 * The AdamW update as its own ONNX graph, run by ORT: one session (dynamic length `n`) applied
 * to each param. Same arithmetic as the TS kernel in adamw.ts (there in float64, here float32):
 *
 *   g' = g·gradScale
 *   m' = β1·m + (1 − β1)·g'          v' = β2·v + (1 − β2)·g'²
 *   p' = p·decay − stepSize·m' / (√v'·invSqrtBc2 + ε)
 *
 * β1, β2, ε are baked into the graph; the per-step scalars are inputs, so one session serves
 * every step. ORT returns fresh arrays, which the optimiser adopts (no copy back).
 * bench/optim.ts (case adamw-onnx-vs-ts) measures this against the TS kernel; the faster one
 * is AdamW's default and the other stays as the tested reference.
 */
import { Graph, type CompiledGraph, type Tensor } from "../graph/index.ts";
import type { AdamWKernel, AdamWScalars, AdamWSlot } from "./adamw.ts";

/** Builds the update graph; outputs `p_out`, `m_out`, `v_out`. */
export function buildAdamWGraph(hp: { beta1: number; beta2: number; eps: number }): { graph: Graph; outputs: Record<string, Tensor> } {
  const g = new Graph({ name: "adamw" });
  const p = g.input("p", "float32", ["n"]);
  const grad = g.input("g", "float32", ["n"]);
  const m = g.input("m", "float32", ["n"]);
  const v = g.input("v", "float32", ["n"]);
  const decay = g.input("decay", "float32", []);
  const stepSize = g.input("step_size", "float32", []);
  const invSqrtBc2 = g.input("inv_sqrt_bc2", "float32", []);
  const gradScale = g.input("grad_scale", "float32", []);
  const gs = g.mul(grad, gradScale); // [n]
  const m2 = g.add(g.mul(m, hp.beta1), g.mul(gs, 1 - hp.beta1)); // [n]
  const v2 = g.add(g.mul(v, hp.beta2), g.mul(g.mul(gs, gs), 1 - hp.beta2)); // [n]
  const denom = g.add(g.mul(g.sqrt(v2), invSqrtBc2), hp.eps); // [n]
  const p2 = g.sub(g.mul(p, decay), g.div(g.mul(m2, stepSize), denom)); // [n]
  return { graph: g, outputs: { p_out: p2, m_out: m2, v_out: v2 } };
}

/**
 * An AdamW kernel running the update graph in ORT.
 *
 * @example
 * const opt = new AdamW(store, cfg, store.trainableNames(), await adamwOnnxKernel(cfg));
 */
export class AdamWOnnxKernel implements AdamWKernel {
  readonly kind = "onnx" as const;
  private constructor(
    private readonly step: CompiledGraph,
    private readonly hp: { beta1: number; beta2: number; eps: number },
  ) {}

  static async create(hp: { beta1?: number; beta2?: number; eps?: number } = {}, threads = 1): Promise<AdamWOnnxKernel> {
    const full = { beta1: hp.beta1 ?? 0.9, beta2: hp.beta2 ?? 0.999, eps: hp.eps ?? 1e-8 };
    const { graph, outputs } = buildAdamWGraph(full);
    return new AdamWOnnxKernel(await graph.compile({ outputs, threads }), full);
  }

  async update(slots: AdamWSlot[], scalarsFor: (slot: AdamWSlot) => AdamWScalars): Promise<void> {
    for (const s of slots) {
      const sc = scalarsFor(s);
      if (sc.beta1 !== this.hp.beta1 || sc.beta2 !== this.hp.beta2 || sc.eps !== this.hp.eps) {
        throw new Error(
          `AdamW ONNX kernel was built for beta1=${this.hp.beta1} beta2=${this.hp.beta2} eps=${this.hp.eps}, ` +
            `optimiser uses beta1=${sc.beta1} beta2=${sc.beta2} eps=${sc.eps}`,
        );
      }
      const n = [s.p.length];
      const scalar = (x: number) => ({ dtype: "float32" as const, dims: [], data: new Float32Array([x]) });
      const r = await this.step.run({
        p: { dtype: "float32", dims: n, data: s.p },
        g: { dtype: "float32", dims: n, data: s.g },
        m: { dtype: "float32", dims: n, data: s.m },
        v: { dtype: "float32", dims: n, data: s.v },
        decay: scalar(sc.decay),
        step_size: scalar(sc.stepSize),
        inv_sqrt_bc2: scalar(sc.invSqrtBc2),
        grad_scale: scalar(sc.gradScale),
      });
      s.p = r.p_out!.data as Float32Array;
      s.m = r.m_out!.data as Float32Array;
      s.v = r.v_out!.data as Float32Array;
    }
  }
}

/** Shorthand for {@link AdamWOnnxKernel.create}. */
export function adamwOnnxKernel(hp: { beta1?: number; beta2?: number; eps?: number } = {}, threads = 1): Promise<AdamWOnnxKernel> {
  return AdamWOnnxKernel.create(hp, threads);
}
