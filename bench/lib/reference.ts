/**
 * Shared benchmark helpers: the same-run reference every compute benchmark divides by (a plain
 * ORT MatMul 1024×1024×1024), and small timing utilities.
 *
 * @example
 * const ref = await matmulReference(2);
 * const ms = await timeOnce(ref.run);
 * const gflops = ref.flops / ms / 1e6;
 */
import { Graph } from "../../src/graph/index.ts";
import { Rng } from "../../src/util/rng.ts";

/** Median of a non-empty list. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error("median of an empty list");
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Wall time of one awaited call, in ms. */
export async function timeOnce(run: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await run();
  return performance.now() - t0;
}

/** Reference: a plain ORT MatMul [1024,1024] × [1024,1024] with `threads` intra-op threads. */
export async function matmulReference(threads: number): Promise<{ flops: number; run: () => Promise<unknown> }> {
  const n = 1024;
  const g = new Graph({ name: "matmul-ref" });
  const a = g.input("a", "float32", [n, n]);
  const b = g.input("b", "float32", [n, n]);
  const step = await g.compile({ outputs: { c: g.matmul(a, b) }, threads });
  const rng = new Rng(1);
  const da = Float32Array.from({ length: n * n }, () => rng.normal());
  const db = Float32Array.from({ length: n * n }, () => rng.normal());
  return { flops: 2 * n * n * n, run: () => step.run({ a: da, b: db }) };
}
