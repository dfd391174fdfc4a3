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
import { ConfigError } from "../util/errors.ts";

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

// Scratch buffers reused across calls (sampling runs once per token on the main thread): the
// sort keys / token order and the unnormalised weights of the kept tokens.
let keyBuf = new Float64Array(0);
let wBuf = new Float64Array(0);
const idxBuf: number[] = [];
// Float32 keys pack (rank of the logit, token id) into one exactly representable double.
const MAX_PACKED_VOCAB = 1 << 21; // 2^32 ranks × 2^21 ids < 2^53

function validate(opts: SamplingOptions): { t: number; topK: number; topP: number } {
  const t = opts.temperature ?? 1;
  if (!(t > 0)) throw new ConfigError(`samplingDistribution: temperature must be > 0, got ${t}`, { code: "bad option" });
  const topK = opts.topK ?? 0, topP = opts.topP ?? 1;
  if (!Number.isInteger(topK) || topK < 0) throw new ConfigError(`topK must be a non-negative integer, got ${topK}`, { code: "bad option" });
  if (!(topP > 0 && topP <= 1)) throw new ConfigError(`topP must be in (0, 1], got ${topP}`, { code: "bad option" });
  return { t, topK, topP };
}

/**
 * Token ids by descending logit, ties by ascending id, into `keyBuf[0..V)` (as numbers).
 * Float32 logits (the decoder's) sort as packed keys with the native numeric sort — no
 * comparator calls, no allocation; anything else (or a NaN, whose comparator order is
 * implementation-defined) sorts ids with the comparator, exactly as a plain Array sort.
 */
function sortedOrder(logits: ArrayLike<number>): Float64Array {
  const V = logits.length;
  if (keyBuf.length < V) keyBuf = new Float64Array(Math.max(V, 2 * keyBuf.length));
  const keys = keyBuf;
  if (logits instanceof Float32Array && V <= MAX_PACKED_VOCAB) {
    const bits = new Uint32Array(logits.buffer, logits.byteOffset, V);
    let nan = false;
    for (let i = 0; i < V; i++) {
      let u = bits[i]!;
      if (u === 0x80000000) u = 0; // -0 ties with +0, as `b - a` does
      else if ((u & 0x7fffffff) > 0x7f800000) nan = true;
      // rank: ascending in the key = descending logit (IEEE bits, sign-magnitude flipped)
      const rank = u & 0x80000000 ? u : 0x7fffffff - u;
      keys[i] = rank * V + i;
    }
    if (!nan) {
      const view = keys.subarray(0, V);
      view.sort();
      for (let j = 0; j < V; j++) view[j] = view[j]! % V;
      return keys;
    }
  }
  idxBuf.length = V;
  for (let i = 0; i < V; i++) idxBuf[i] = i;
  idxBuf.sort((a, b) => logits[b]! - logits[a]! || a - b);
  for (let j = 0; j < V; j++) keys[j] = idxBuf[j]!;
  return keys;
}

/**
 * Tokens and unnormalised weights of the sampling distribution: `order[0..n)` with weights
 * `w[0..n)`, p_j = w_j / z / s. The arithmetic (and its order) is exactly that of the original
 * sort-everything implementation, so draws land on the same tokens bit for bit.
 */
function prepare(logits: ArrayLike<number>, t: number, topK: number, topP: number): { order: Float64Array; w: Float64Array; n: number; z: number; s: number } {
  const V = logits.length;
  if (V === 0) throw new Error("sampling: logits are empty"); // internal invariant: a model has a vocabulary
  const order = sortedOrder(logits);
  const K = topK > 0 ? Math.min(topK, V) : V;
  if (wBuf.length < K) wBuf = new Float64Array(Math.max(K, 2 * wBuf.length));
  const w = wBuf;
  const m = logits[order[0]!]! / t;
  let z = 0;
  for (let j = 0; j < K; j++) {
    const e = Math.exp(logits[order[j]!]! / t - m);
    w[j] = e;
    z += e;
  }
  let n = K, s = 1;
  if (topP < 1) {
    let c = 0, k = 0;
    while (k < K && c < topP) c += w[k++]! / z;
    n = Math.max(1, k);
    s = c; // Σ of the kept p's, summed in the same order
  }
  return { order, w, n, z, s };
}

/**
 * The distribution sampling draws from after temperature, top-k and top-p, as (token, prob)
 * pairs sorted by descending probability (ties by token id). Exposed for tests.
 */
export function samplingDistribution(logits: ArrayLike<number>, opts: SamplingOptions = {}): { token: number; p: number }[] {
  const { t, topK, topP } = validate(opts);
  const { order, w, n, z, s } = prepare(logits, t, topK, topP);
  const out: { token: number; p: number }[] = [];
  for (let j = 0; j < n; j++) out.push({ token: order[j]!, p: topP < 1 ? w[j]! / z / s : w[j]! / z });
  return out;
}

/**
 * Pick the next token from logits [V]: one `rng.uniform()` draw (none when greedy) walked along
 * the cumulative distribution of `samplingDistribution`.
 * @example
 * const rng = sampleRng(42, 0);
 * const tok = sampleToken(logits, { temperature: 0.7, topP: 0.95 }, rng);
 */
export function sampleToken(logits: ArrayLike<number>, opts: SamplingOptions, rng: Rng): number {
  if ((opts.temperature ?? 1) === 0) return argmax(logits);
  const { t, topK, topP } = validate(opts);
  const { order, w, n, z, s } = prepare(logits, t, topK, topP);
  const u = rng.uniform();
  let c = 0;
  if (topP < 1) {
    for (let j = 0; j < n; j++) {
      c += w[j]! / z / s;
      if (u < c) return order[j]!;
    }
  } else {
    for (let j = 0; j < n; j++) {
      c += w[j]! / z;
      if (u < c) return order[j]!;
    }
  }
  return order[n - 1]!; // u within rounding of 1
}
