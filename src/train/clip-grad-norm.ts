/**
 * Global-norm gradient clipping (as `torch.nn.utils.clip_grad_norm_`): the L2 norm over all
 * gradients together; if it exceeds `maxNorm`, every gradient is scaled by
 * maxNorm / (norm + 1e-6). The pre-clip norm is what trainers log as `grad_norm`.
 */
import type { TensorValue } from "../graph/runtime.ts";

type Grads = Readonly<Record<string, Float32Array | TensorValue>> | readonly Float32Array[];

function arraysOf(grads: Grads): Float32Array[] {
  const xs = Array.isArray(grads) ? (grads as readonly Float32Array[]) : Object.values(grads as Record<string, Float32Array | TensorValue>);
  return xs.map((g, i) => {
    const a = g instanceof Float32Array ? g : g.data;
    if (!(a instanceof Float32Array)) throw new Error(`gradient #${i} is not float32`);
    return a;
  });
}

/**
 * L2 norm of all gradients taken as one vector (accumulated in float64).
 *
 * @example
 * globalGradNorm([new Float32Array([3]), new Float32Array([4])]) // 5
 */
export function globalGradNorm(grads: Grads): number {
  let sq = 0;
  for (const a of arraysOf(grads)) {
    for (let i = 0; i < a.length; i++) sq += a[i]! * a[i]!;
  }
  return Math.sqrt(sq);
}

/**
 * The factor clipping applies for a given norm: min(1, maxNorm / (norm + 1e-6)).
 * A non-finite norm yields 1 (nothing is scaled; the caller must stop on NaN/Inf).
 */
export function clipCoefficient(norm: number, maxNorm: number): number {
  if (!(maxNorm > 0)) throw new Error(`clip maxNorm must be > 0, got ${maxNorm}`);
  if (!Number.isFinite(norm)) return 1;
  return Math.min(1, maxNorm / (norm + 1e-6));
}

/**
 * Scales `grads` in place so their global norm is at most `maxNorm`; returns the pre-clip norm.
 * To save a pass over memory, trainers can instead pass `clipCoefficient(norm, max)` as
 * AdamW's `gradScale`.
 *
 * @example
 * const gradNorm = clipGradNorm(grads, 1.0);
 */
export function clipGradNorm(grads: Grads, maxNorm: number): number {
  const norm = globalGradNorm(grads);
  const c = clipCoefficient(norm, maxNorm);
  if (c < 1) {
    for (const a of arraysOf(grads)) {
      for (let i = 0; i < a.length; i++) a[i] = a[i]! * c;
    }
  }
  return norm;
}
