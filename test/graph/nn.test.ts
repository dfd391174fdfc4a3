import { describe, expect, test } from "bun:test";
import { Graph, type Tensor, type TensorValue } from "../../src/graph/index.ts";
import { attention, layerNorm, linear, transformerBlock, transformerBlockWithCache } from "../../src/graph/nn.ts";
import { Rng } from "../../src/util/rng.ts";
import { expectGradOk, gradError, TOL } from "./grad-check.ts";

const ints = (dims: number[], v: number[]) => ({ shape: dims, value: { dtype: "int64" as const, dims, data: BigInt64Array.from(v.map(BigInt)) } as TensorValue });

/** Tiny decoder LM: embeddings + positions, pre-LN blocks, final LN, tied or untied head. */
function tinyLM(g: Graph, tokens: Tensor, o: { vocab: number; d: number; heads: number; layers: number; seq: number; tied: boolean; act: "gelu" | "gelu_tanh" }): Tensor {
  const emb = g.param("emb", [o.vocab, o.d]);
  const pos = g.param("pos", [o.seq, o.d]);
  // positions 0..T-1 looked up by a (possibly symbolic) range, so seq may be symbolic
  let h = g.add(g.gather(emb, tokens), g.gather(pos, g.range(tokens.shape[1]!, [tokens]))); // [B, T, d]
  for (let l = 0; l < o.layers; l++) h = transformerBlock(g, `b${l}`, h, { dModel: o.d, heads: o.heads, hidden: 2 * o.d, causal: true, act: o.act });
  h = layerNorm(g, "lnf", h, o.d);
  return o.tied ? g.matmul(h, g.transpose(emb)) : linear(g, "head", h, o.d, o.vocab, { bias: false }); // [B, T, V]
}

describe("model gradients against finite differences", () => {
  test("2-layer MLP with cross-entropy (float64, every parameter element)", async () => {
    const rng = new Rng(3);
    const x = Float64Array.from({ length: 4 * 5 }, () => rng.normal());
    const r = await expectGradOk({
      params: {},
      scale: 0.5,
      lossIsOutput: true,
      inputs: { x: { shape: ["batch", 5], value: { dtype: "float64", dims: [4, 5], data: x } }, y: { ...ints([4], [0, 2, 1, 2]), shape: ["batch"] } },
      build: (g, _p, i) => {
        const h = g.tanh(linear(g, "l1", i.x!, 5, 6));
        return g.mean(g.crossEntropy(linear(g, "l2", h, 6, 3), i.y!));
      },
    });
    expect(r.checked).toBe(5 * 6 + 6 + 6 * 3 + 3);
  });

  for (const tied of [false, true]) {
    test(`one-block transformer, causal attention, GELU MLP, ${tied ? "tied" : "untied"} head, gatherLogProbs loss (float64)`, async () => {
      const r = await expectGradOk({
        params: {},
        scale: 0.3,
        lossIsOutput: true,
        inputs: { t: ints([2, 4], [1, 3, 0, 5, 6, 6, 2, 4]), y: ints([2, 4], [3, 0, 5, 2, 6, 2, 4, 1]) },
        build: (g, _p, i) => {
          const logits = tinyLM(g, i.t!, { vocab: 7, d: 8, heads: 2, layers: 1, seq: 4, tied, act: "gelu_tanh" });
          return g.neg(g.mean(g.gatherLogProbs(logits, i.y!)));
        },
      });
      expect(Object.keys(r.grads).length).toBe(tied ? 20 : 21);
    });
  }

  test("same block in float32 with exact (Erf) GELU: directional derivative", async () => {
    const r = await gradError({
      dtype: "float32",
      directional: true,
      params: {},
      scale: 0.3,
      lossIsOutput: true,
      inputs: { t: ints([2, 4], [1, 3, 0, 5, 6, 6, 2, 4]), y: ints([2, 4], [3, 0, 5, 2, 6, 2, 4, 1]) },
      build: (g, _p, i) => g.neg(g.mean(g.gatherLogProbs(tinyLM(g, i.t!, { vocab: 7, d: 8, heads: 2, layers: 1, seq: 4, tied: false, act: "gelu" }), i.y!))),
    });
    expect(r.worst).toBeLessThan(TOL.float32);
  });
});

describe("training and inference behaviour", () => {
  test("loss falls on a fixed batch with plain SGD", async () => {
    const rng = new Rng(11);
    const g = new Graph();
    const B = 4, T = 6, V = 11;
    const tokens = g.input("tokens", "int64", ["batch", "seq"]);
    const targets = g.input("targets", "int64", ["batch", "seq"]);
    const logits = tinyLM(g, tokens, { vocab: V, d: 16, heads: 2, layers: 1, seq: T, tied: false, act: "gelu" });
    const loss = g.mean(g.crossEntropy(logits, targets));
    const step = await g.compile({ outputs: { loss }, grads: g.grad(loss, g.params()) });
    const params = new Map(g.params().map((p) => {
      const n = p.shape.reduce((a, b) => a * b, 1);
      const d = new Float32Array(n);
      for (let i = 0; i < n; i++) d[i] = p.init.kind === "ones" ? 1 : p.init.kind === "zeros" ? 0 : rng.normal() * 0.1;
      return [p.name, d];
    }));
    const tok = BigInt64Array.from({ length: B * T }, () => BigInt(rng.int(V)));
    const tgt = BigInt64Array.from({ length: B * T }, () => BigInt(rng.int(V)));
    const losses: number[] = [];
    for (let it = 0; it < 40; it++) {
      const feeds: Record<string, TensorValue | Float32Array> = Object.fromEntries(params);
      feeds.tokens = { dtype: "int64", dims: [B, T], data: tok };
      feeds.targets = { dtype: "int64", dims: [B, T], data: tgt };
      const r = await step.run(feeds);
      losses.push(Number(r.loss!.data[0]));
      for (const [name, w] of params) {
        const gr = r[`grad:${name}`]!.data as Float32Array;
        for (let i = 0; i < w.length; i++) w[i]! -= 0.5 * gr[i]!;
      }
    }
    expect(losses[0]).toBeGreaterThan(Math.log(V) - 0.3); // starts near uniform
    expect(losses[losses.length - 1]!).toBeLessThan(0.5 * losses[0]!);
    for (let i = 1; i < losses.length; i++) expect(Number.isFinite(losses[i])).toBe(true);
  });

  test("KV-cache decoding equals full-sequence attention; padding mask hides padded keys", async () => {
    const rng = new Rng(5);
    const d = 8, H = 2, T = 5;
    const g = new Graph();
    const x = g.input("x", "float32", ["batch", "seq", d]);
    const pk = g.input("past_k", "float32", ["batch", H, "past", d / H]);
    const pv = g.input("past_v", "float32", ["batch", H, "past", d / H]);
    const valid = g.input("valid", "int64", ["batch", "seq"]);
    const full = transformerBlock(g, "blk", x, { dModel: d, heads: H, hidden: 16, causal: true });
    const inc = transformerBlockWithCache(g, "blk2", x, { dModel: d, heads: H, hidden: 16, causal: true, past: { k: pk, v: pv } });
    const masked = attention(g, "att", x, { dModel: d, heads: H, mask: g.paddingMask(valid) }).out;
    // blk2 shares no params with blk: copy the same values into both names below
    const step = await g.compile({ outputs: { full, inc: inc.out, k: inc.k, v: inc.v, masked } });
    const feeds: Record<string, TensorValue> = {};
    const vals = new Map<string, Float32Array>();
    for (const p of g.params()) {
      const key = p.name.replace(/^blk2\./, "blk.");
      if (!vals.has(key)) vals.set(key, Float32Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, () => rng.normal() * 0.3));
      feeds[p.name] = { dtype: "float32", dims: p.shape, data: vals.get(key)! };
    }
    const xs = Float32Array.from({ length: T * d }, () => rng.normal());
    const run = (xdata: Float32Array, t: number, past: { k: Float32Array; v: Float32Array; n: number }, validMask: number[]) =>
      step.run({
        ...feeds,
        x: { dtype: "float32", dims: [1, t, d], data: xdata },
        past_k: { dtype: "float32", dims: [1, H, past.n, d / H], data: past.k },
        past_v: { dtype: "float32", dims: [1, H, past.n, d / H], data: past.v },
        valid: { dtype: "int64", dims: [1, validMask.length], data: BigInt64Array.from(validMask.map(BigInt)) },
      });
    const ref = await run(xs, T, { k: new Float32Array(0), v: new Float32Array(0), n: 0 }, [1, 1, 1, 1, 1]);
    expect(Array.from(ref.inc!.data as Float32Array)).toEqual(Array.from(ref.full!.data as Float32Array));
    // decode: first 3 positions, then 2 more one at a time
    let cache = await run(xs.slice(0, 3 * d), 3, { k: new Float32Array(0), v: new Float32Array(0), n: 0 }, [1, 1, 1]);
    let n = 3;
    const fullOut = ref.full!.data as Float32Array;
    for (let t = 3; t < T; t++) {
      const step1 = await run(xs.slice(t * d, (t + 1) * d), 1, { k: cache.k!.data as Float32Array, v: cache.v!.data as Float32Array, n }, [1]);
      expect(step1.k!.dims).toEqual([1, H, n + 1, d / H]);
      const got = step1.inc!.data as Float32Array;
      for (let j = 0; j < d; j++) expect(got[j]!).toBeCloseTo(fullOut[t * d + j]!, 5);
      cache = step1;
      n++;
    }
    // padding: keys 3 and 4 masked == attention over the first 3 positions only (for those queries)
    const padded = await run(xs, T, { k: new Float32Array(0), v: new Float32Array(0), n: 0 }, [1, 1, 1, 0, 0]);
    const short = await run(xs.slice(0, 3 * d), 3, { k: new Float32Array(0), v: new Float32Array(0), n: 0 }, [1, 1, 1]);
    const a = padded.masked!.data as Float32Array, b = short.masked!.data as Float32Array;
    for (let j = 0; j < 3 * d; j++) expect(a[j]!).toBeCloseTo(b[j]!, 5);
  });
});
