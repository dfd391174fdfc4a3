/**
 * Gradient accumulation over micro-batches: a weighted mean of per-micro-batch gradients.
 *
 * With mean-reduced micro-batch losses, weight each micro-batch by its size (pairs or
 * tokens) and the result equals the gradient of the mean loss over the whole batch.
 *
 * Errors here are internal invariants (the DPO engine feeds the gradients its own graph
 * computed, with micro-batch sizes as weights; no user input reaches them): plain Error.
 */
import type { TensorValue } from "../graph/runtime.ts";

export class GradAccumulator {
  private readonly sums = new Map<string, Float32Array>();
  private totalWeight = 0;
  private count = 0;
  private finalized = false;

  /** @param names the params whose gradients are accumulated (every add must supply each one). */
  constructor(private readonly names: readonly string[]) {}

  /** Micro-batches added since the last reset. */
  get microBatches(): number {
    return this.count;
  }

  /**
   * Adds one micro-batch's gradients with `weight` (default 1).
   *
   * @example
   * const acc = new GradAccumulator(store.trainableNames());
   * for (const mb of microBatches) acc.add(gradsOf(await step.run(mb)), mb.pairs);
   * await opt.step(acc.mean(), { lr }); acc.reset();
   */
  add(grads: Readonly<Record<string, Float32Array | TensorValue>>, weight = 1): void {
    if (this.finalized) throw new Error("GradAccumulator.add() after mean(): call reset() first");
    if (!(weight > 0) || !Number.isFinite(weight)) throw new Error(`GradAccumulator weight must be a finite number > 0, got ${weight}`);
    for (const n of this.names) {
      const gv = grads[n];
      if (gv === undefined) throw new Error(`GradAccumulator: no gradient for '${n}' in micro-batch ${this.count}`);
      const g = gv instanceof Float32Array ? gv : gv.data;
      if (!(g instanceof Float32Array)) throw new Error(`GradAccumulator: gradient for '${n}' is not float32`);
      let s = this.sums.get(n);
      if (!s) {
        s = new Float32Array(g.length);
        this.sums.set(n, s);
      }
      if (s.length !== g.length) throw new Error(`GradAccumulator: gradient for '${n}' has ${g.length} values, expected ${s.length}`);
      if (this.count === 0) {
        for (let i = 0; i < g.length; i++) s[i] = weight * g[i]!;
      } else {
        for (let i = 0; i < g.length; i++) s[i] = s[i]! + weight * g[i]!;
      }
    }
    this.totalWeight += weight;
    this.count++;
  }

  /**
   * The weighted mean, computed in place in the accumulator's buffers (valid until the next
   * add after a reset).
   */
  mean(): Record<string, Float32Array> {
    if (this.count === 0) throw new Error("GradAccumulator.mean() before any add()");
    const out: Record<string, Float32Array> = {};
    const inv = 1 / this.totalWeight;
    for (const n of this.names) {
      const s = this.sums.get(n)!;
      // A second mean() returns the same buffers without dividing again.
      if (!this.finalized && inv !== 1) for (let i = 0; i < s.length; i++) s[i] = s[i]! * inv;
      out[n] = s;
    }
    this.finalized = true;
    return out;
  }

  /** Starts a new accumulation (buffers are reused). */
  reset(): void {
    this.totalWeight = 0;
    this.count = 0;
    this.finalized = false;
  }
}
