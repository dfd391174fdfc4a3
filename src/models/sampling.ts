/**
 * Next-token selection from one row of logits: greedy, or sampling with temperature, top-k and
 * top-p (nucleus). This is per-token work over a small vocabulary (the logits themselves come
 * from ORT), so it runs in JS.
 *
 * Determinism contract (the continuous batcher must reproduce it): sample i of a request with
 * seed s draws from `sampleRng(s, i)`, exactly one `uniform()` per sampled token (none when
 * greedy), so its tokens depend only on its own logits, never on how it was batched.
 * Batched ORT matmuls are not bit-identical across batch sizes (measured: logits differ by up to
 * ~5e-7), so a token can differ only when a draw lands that close to a cumulative-probability
 * boundary or the top two logits are that close.
 */
import { Rng } from "../util/rng.ts";

export interface SamplingOptions {
  /** 0 = greedy (argmax). Default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 = off). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1 = off). */
  topP?: number;
}

/** The random stream of sample `index` of a request seeded `seed`. */
export function sampleRng(seed: number, index: number): Rng {
  return new Rng(seed).fork(index);
}

/** log softmax(logits)[token], computed stably in float64. */
export function tokenLogProb(logits: ArrayLike<number>, token: number): number {
  let m = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > m) m = logits[i]!;
  let s = 0;
  for (let i = 0; i < logits.length; i++) s += Math.exp(logits[i]! - m);
  return logits[token]! - m - Math.log(s);
}

/** Index of the largest logit (lowest index on ties). */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

/**
 * The distribution sampling draws from after temperature, top-k and top-p, as (token, prob)
 * pairs sorted by descending probability (ties by token id). Exposed for tests.
 */
export function samplingDistribution(logits: ArrayLike<number>, opts: SamplingOptions = {}): { token: number; p: number }[] {
  const t = opts.temperature ?? 1;
  if (!(t > 0)) throw new Error(`samplingDistribution: temperature must be > 0, got ${t}`);
  const topK = opts.topK ?? 0, topP = opts.topP ?? 1;
  if (!Number.isInteger(topK) || topK < 0) throw new Error(`topK must be a non-negative integer, got ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new Error(`topP must be in (0, 1], got ${topP}`);
  const order = Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
  const kept = topK > 0 ? order.slice(0, topK) : order;
  const m = logits[kept[0]!]! / t;
  let z = 0;
  const w = kept.map((i) => {
    const e = Math.exp(logits[i]! / t - m);
    z += e;
    return e;
  });
  let out = kept.map((token, j) => ({ token, p: w[j]! / z }));
  if (topP < 1) {
    let c = 0, n = 0;
    while (n < out.length && c < topP) c += out[n++]!.p;
    out = out.slice(0, Math.max(1, n));
    const s = out.reduce((a, b) => a + b.p, 0);
    out = out.map((o) => ({ token: o.token, p: o.p / s }));
  }
  return out;
}

/**
 * Pick the next token from logits [V].
 * @example
 * const rng = sampleRng(42, 0);
 * const tok = sampleToken(logits, { temperature: 0.7, topP: 0.95 }, rng);
 */
export function sampleToken(logits: ArrayLike<number>, opts: SamplingOptions, rng: Rng): number {
  if ((opts.temperature ?? 1) === 0) return argmax(logits);
  const dist = samplingDistribution(logits, opts);
  const u = rng.uniform();
  let c = 0;
  for (const d of dist) {
    c += d.p;
    if (u < c) return d.token;
  }
  return dist[dist.length - 1]!.token; // u within rounding of 1
}
