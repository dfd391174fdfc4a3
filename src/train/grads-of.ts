/**
 * Picks the gradients out of a training step's outputs: the graph emits them as
 * `grad:<param name>`; optimisers, clipping and accumulation key them by param name.
 */
import type { TensorValue } from "../graph/runtime.ts";

const PREFIX = "grad:";

/**
 * `{ "grad:w": t, loss: l }` → `{ w: t.data }` (views, no copies). With `names`, each must be present.
 *
 * @example
 * const res = await step.run(feeds);
 * await opt.step(gradsOf(res, opt.names), { lr });
 */
export function gradsOf(outputs: Readonly<Record<string, TensorValue>>, names?: readonly string[]): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  const want = names ?? Object.keys(outputs).filter((k) => k.startsWith(PREFIX)).map((k) => k.slice(PREFIX.length));
  for (const n of want) {
    const t = outputs[PREFIX + n];
    if (!t) throw new Error(`gradsOf: step outputs have no '${PREFIX}${n}' (is '${n}' in the graph's grads?)`);
    if (!(t.data instanceof Float32Array)) throw new Error(`gradsOf: '${PREFIX}${n}' is ${t.dtype}, expected float32`);
    out[n] = t.data;
  }
  return out;
}
