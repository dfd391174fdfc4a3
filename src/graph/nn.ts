/**
 * Generic neural-network building blocks on top of {@link Graph}: linear layers, layer norm,
 * multi-head (self/cross) attention with optional causal and padding masks and a KV cache,
 * MLPs and pre-LN transformer blocks. Model code (CLIP towers, the LVLM decoder in src/models)
 * composes these; they create params named `<name>.<part>` so checkpoints map 1:1.
 *
 * Conventions: activations are `[batch, seq, d_model]`; weights are stored `[in, out]`
 * (x @ W, the transpose of PyTorch's nn.Linear weight); params are created with the
 * graph's float type.
 *
 * @example
 * const g = new Graph();
 * const x = g.input("x", "float32", ["batch", "seq", 64]);
 * const y = transformerBlock(g, "blocks.0", x, { dModel: 64, heads: 4, hidden: 256, causal: true });
 */
import type { Graph } from "./graph.ts";
import type { Tensor } from "./tensor.ts";
import { GraphError, type Dim } from "./types.ts";

export interface LinearOptions {
  bias?: boolean;
  /** init std of the weight (default 0.02) */
  std?: number;
}

/** x @ W (+ b): params `<name>.weight` [inDim, outDim] and `<name>.bias` [outDim]. */
export function linear(g: Graph, name: string, x: Tensor, inDim: number, outDim: number, opts: LinearOptions = {}): Tensor {
  const w = g.param(`${name}.weight`, [inDim, outDim], { init: { kind: "normal", std: opts.std ?? 0.02 } });
  const y = g.matmul(x, w); // [..., outDim]
  if (opts.bias === false) return y;
  return g.add(y, g.param(`${name}.bias`, [outDim], { init: { kind: "zeros" } }));
}

/** Layer norm over the last axis with params `<name>.weight` (ones) and `<name>.bias` (zeros). */
export function layerNorm(g: Graph, name: string, x: Tensor, dim: number, eps = 1e-5): Tensor {
  const s = g.param(`${name}.weight`, [dim], { init: { kind: "ones" } });
  const b = g.param(`${name}.bias`, [dim], { init: { kind: "zeros" } });
  return g.layerNorm(x, s, b, eps);
}

export type Activation = "gelu" | "gelu_tanh" | "quick_gelu" | "relu";

/** Apply an activation by name (quick_gelu = x·sigmoid(1.702x), as in OpenAI CLIP). */
export function activation(g: Graph, x: Tensor, act: Activation): Tensor {
  switch (act) {
    case "gelu": return g.gelu(x);
    case "gelu_tanh": return g.gelu(x, "tanh");
    case "quick_gelu": return g.mul(x, g.sigmoid(g.mul(x, 1.702)));
    case "relu": return g.relu(x);
  }
}

/** Two-layer MLP `<name>.fc1` (d -> hidden), activation, `<name>.fc2` (hidden -> d). */
export function mlp(g: Graph, name: string, x: Tensor, d: number, hidden: number, act: Activation = "gelu"): Tensor {
  const h = activation(g, linear(g, `${name}.fc1`, x, d, hidden), act);
  return linear(g, `${name}.fc2`, h, hidden, d);
}

export interface AttentionOptions {
  dModel: number;
  heads: number;
  /** mask keys after each query's position */
  causal?: boolean;
  /** extra additive mask broadcastable to [batch, heads, tq, tk] (e.g. g.paddingMask(valid)) */
  mask?: Tensor;
  /** cached keys/values [batch, heads, past, head_dim] prepended to this step's */
  past?: { k: Tensor; v: Tensor };
  /** keys/values come from this tensor instead of x (cross-attention) [batch, tk, d_model] */
  context?: Tensor;
  bias?: boolean;
}

/** Split [B, T, D] into heads: [B, H, T, D/H]. */
export function splitHeads(g: Graph, x: Tensor, heads: number): Tensor {
  const d = x.shape[2];
  if (typeof d !== "number" || d % heads !== 0) throw new GraphError(`splitHeads: d_model ${d} not divisible by ${heads} heads`);
  return g.transpose(g.reshape(x, [0, 0, heads, d / heads]), [0, 2, 1, 3]);
}

/** Merge heads back: [B, H, T, Dh] -> [B, T, H·Dh]. */
export function mergeHeads(g: Graph, x: Tensor): Tensor {
  const h = x.shape[1], dh = x.shape[3];
  if (typeof h !== "number" || typeof dh !== "number") throw new GraphError(`mergeHeads: heads and head dim must be static, got ${x}`);
  return g.reshape(g.transpose(x, [0, 2, 1, 3]), [0, 0, h * dh]);
}

/**
 * Multi-head attention with params `<name>.q|k|v|out`. Returns the output [B, T, D] and the
 * full keys/values [B, H, Tk, Dh] (past + this step) for a KV cache.
 */
export function attention(g: Graph, name: string, x: Tensor, o: AttentionOptions): { out: Tensor; k: Tensor; v: Tensor } {
  const { dModel: d, heads } = o;
  if (x.rank !== 3) throw new GraphError(`attention '${name}': expected [batch, seq, d_model], got ${x}`);
  if (d % heads !== 0) throw new GraphError(`attention '${name}': d_model ${d} not divisible by ${heads} heads`);
  const dh = d / heads;
  const bias = o.bias ?? true;
  const mk = (part: string, n: number) => g.param(`${name}.${part}.${n === 0 ? "weight" : "bias"}`, n === 0 ? [d, d] : [d], { init: n === 0 ? { kind: "normal", std: 0.02 } : { kind: "zeros" } });
  const wq = mk("q", 0), wk = mk("k", 0), wv = mk("v", 0);
  const bq = bias ? mk("q", 1) : undefined, bk = bias ? mk("k", 1) : undefined, bv = bias ? mk("v", 1) : undefined;
  let q: Tensor, k: Tensor, v: Tensor;
  if (!o.context) {
    // one [d, 3d] product instead of three: better GEMM shapes, one backward Gemm for all three
    let qkv = g.matmul(x, g.concat([wq, wk, wv], 1)); // [B, T, 3D]
    if (bias) qkv = g.add(qkv, g.concat([bq!, bk!, bv!], 0));
    [q, k, v] = g.split(qkv, [d, d, d], 2) as [Tensor, Tensor, Tensor];
  } else {
    q = g.matmul(x, wq);
    if (bq) q = g.add(q, bq);
    let kv = g.matmul(o.context, g.concat([wk, wv], 1));
    if (bias) kv = g.add(kv, g.concat([bk!, bv!], 0));
    [k, v] = g.split(kv, [d, d], 2) as [Tensor, Tensor];
  }
  // scale q (T·Dh values) rather than the scores (T·Tk values)
  const qh = splitHeads(g, g.mul(q, 1 / Math.sqrt(dh)), heads); // [B, H, T, Dh]
  let kh = splitHeads(g, k, heads); // [B, H, Tk, Dh]
  let vh = splitHeads(g, v, heads);
  if (o.past) {
    kh = g.concat([o.past.k, kh], 2);
    vh = g.concat([o.past.v, vh], 2);
  }
  let scores = g.matmul(qh, g.transpose(kh, [0, 1, 3, 2])); // [B, H, T, Tk]
  if (o.causal) {
    const tq: Dim = x.shape[1]!;
    const tk: Dim = kh.shape[2]!;
    scores = g.add(scores, g.causalMask(tq, tk, [x, kh]));
  }
  if (o.mask) scores = g.add(scores, o.mask);
  const probs = g.softmax(scores, -1);
  const ctx = mergeHeads(g, g.matmul(probs, vh)); // [B, T, D]
  return { out: linear(g, `${name}.out`, ctx, d, d, { bias }), k: kh, v: vh };
}

export interface BlockOptions extends AttentionOptions {
  hidden: number;
  act?: Activation;
  eps?: number;
}

/** Pre-LN transformer block: x + attn(ln1(x)); then + mlp(ln2(·)). Params under `<name>.`. */
export function transformerBlock(g: Graph, name: string, x: Tensor, o: BlockOptions): Tensor {
  return transformerBlockWithCache(g, name, x, o).out;
}

/** {@link transformerBlock} that also returns this layer's keys/values for a KV cache. */
export function transformerBlockWithCache(g: Graph, name: string, x: Tensor, o: BlockOptions): { out: Tensor; k: Tensor; v: Tensor } {
  const d = o.dModel;
  const a = attention(g, `${name}.attn`, layerNorm(g, `${name}.ln1`, x, d, o.eps), o);
  const h = g.add(x, a.out);
  const out = g.add(h, mlp(g, `${name}.mlp`, layerNorm(g, `${name}.ln2`, h, d, o.eps), d, o.hidden, o.act ?? "gelu"));
  return { out, k: a.k, v: a.v };
}
