/**
 * The allocation-free sampler (src/models/sampling.ts) against the original sort-everything
 * implementation, kept here verbatim as the reference: same distributions bit for bit and the
 * same token for the same uniform draw, over random logits, temperatures, top-k and top-p.
 */
import { describe, expect, test } from "bun:test";
import { sampleRng, sampleToken, samplingDistribution, type SamplingOptions } from "../../src/models/sampling.ts";
import { Rng } from "../../src/util/rng.ts";

/** The original implementation (before the packed-key sort), unchanged. */
function referenceDistribution(logits: ArrayLike<number>, opts: SamplingOptions = {}): { token: number; p: number }[] {
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

function referenceToken(logits: ArrayLike<number>, opts: SamplingOptions, rng: Rng): number {
  const dist = referenceDistribution(logits, opts);
  const u = rng.uniform();
  let c = 0;
  for (const d of dist) {
    c += d.p;
    if (u < c) return d.token;
  }
  return dist[dist.length - 1]!.token;
}

/** Random logits: smooth, peaked, heavily tied (quantised), with ±0 and -Infinity entries. */
function randomLogits(r: Rng, V: number, kind: number): Float32Array {
  const x = new Float32Array(V);
  for (let i = 0; i < V; i++) {
    if (kind === 0) x[i] = r.normal() * 3;
    else if (kind === 1) x[i] = r.normal() * 0.5 + (r.uniform() < 0.05 ? 8 : 0);
    else if (kind === 2) x[i] = Math.round(r.normal() * 2) / 2; // many exact ties, ±0
    else x[i] = r.uniform() < 0.3 ? -Infinity : r.normal() * 4;
  }
  if (kind === 2 && V > 3) {
    x[0] = -0;
    x[1] = 0;
  }
  if (kind === 3) x[r.int(V)] = r.normal(); // at least one finite logit
  return x;
}

describe("sampler == reference implementation", () => {
  test("same distribution bit for bit and the same token for the same draw, 4000 random cases", () => {
    const r = new Rng(20261126);
    let sampled = 0, truncatedByP = 0, tiedCases = 0;
    for (let c = 0; c < 4000; c++) {
      const V = 1 + r.int(c % 10 === 0 ? 600 : 120);
      const kind = c % 4;
      const logits = randomLogits(r, V, kind);
      if (new Set(logits).size < V) tiedCases++;
      const opts: SamplingOptions = {
        temperature: [1, 0.05, 0.7, 1.3, 4][r.int(5)]!,
        topK: r.uniform() < 0.5 ? 0 : 1 + r.int(V + 5),
        topP: r.uniform() < 0.3 ? 1 : [0.95, 0.5, 0.9, 1e-6, r.uniform() * 0.999 + 0.001][r.int(5)]!,
      };
      const input = c % 7 === 0 ? Array.from(logits) : logits; // plain arrays take the comparator path
      const want = referenceDistribution(input, opts);
      const got = samplingDistribution(input, opts);
      expect(got).toEqual(want); // toEqual on numbers is exact
      if (want.length < Math.min(V, opts.topK || V)) truncatedByP++;
      // same RNG stream: identical tokens and identical RNG state afterwards
      const seed = r.int(1 << 30);
      const a = sampleRng(seed, c), b = sampleRng(seed, c);
      for (let k = 0; k < 20; k++) {
        expect(sampleToken(input, opts, a)).toBe(referenceToken(input, opts, b));
        sampled++;
      }
      expect(a.state()).toEqual(b.state());
    }
    // the random cases really exercise ties and the nucleus cut
    expect(sampled).toBe(80000);
    expect(tiedCases).toBeGreaterThan(900);
    expect(truncatedByP).toBeGreaterThan(1000);
  });

  test("draws at the cumulative boundaries pick the same token (u exactly on each edge)", () => {
    const r = new Rng(7);
    for (let c = 0; c < 300; c++) {
      const logits = randomLogits(r, 2 + r.int(40), c % 4);
      const opts: SamplingOptions = { temperature: 0.9, topK: c % 3 === 0 ? 5 : 0, topP: c % 2 ? 0.8 : 1 };
      const dist = referenceDistribution(logits, opts);
      let cum = 0;
      const edges: number[] = [0];
      for (const d of dist) {
        cum += d.p;
        if (cum < 1) edges.push(cum, Math.max(0, cum - Number.EPSILON), Math.min(1 - 2 ** -53, cum + Number.EPSILON));
      }
      edges.push(1 - 2 ** -53);
      for (const u of edges) {
        const fixed = { uniform: () => u } as unknown as Rng;
        expect(sampleToken(logits, opts, fixed)).toBe(referenceToken(logits, opts, fixed));
      }
    }
  });

  test("NaN logits fall back to the reference ordering; empty logits are one clear error", () => {
    const r = new Rng(3);
    for (let c = 0; c < 50; c++) {
      const logits = randomLogits(r, 10, 0);
      logits[r.int(10)] = Number.NaN;
      expect(samplingDistribution(logits, { topK: 4 })).toEqual(referenceDistribution(logits, { topK: 4 }));
    }
    expect(() => sampleToken(new Float32Array(0), {}, new Rng(1))).toThrow("sampling: logits are empty");
  });
});
