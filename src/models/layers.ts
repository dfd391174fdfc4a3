/**
 * Transformer building blocks shared by the CLIP towers and the LVLM, written on the graph
 * builder. Parameters are named `<prefix>.<part>` so one ParamStore feeds every graph of a
 * model (vision, text, loss, prefill, decode) and safetensors files read naturally.
 */
import type { Graph, Tensor } from "../graph/index.ts";

export type Activation = "gelu" | "quick_gelu" | "gelu_tanh";

/** Sizes of one transformer stack. */
export interface BlockDims {
  width: number;
  heads: number;
  /** MLP hidden size. */
  mlp: number;
  act: Activation;
  eps: number;
}

/** x @ W (+ b): x [..., din] -> [..., dout]. W is stored [din, dout]. */
export function linear(g: Graph, x: Tensor, name: string, din: number, dout: number, opts: { bias?: boolean; std?: number } = {}): Tensor {
  const w = g.param(`${name}.w`, [din, dout], { init: { kind: "normal", std: opts.std ?? 0.02 } });
  const y = g.matmul(x, w);
  if (opts.bias === false) return y;
  return g.add(y, g.param(`${name}.b`, [dout], { init: { kind: "zeros" } }));
}

/** Layer norm over the last axis, params `<name>.g` (ones) and `<name>.b` (zeros). */
export function layerNorm(g: Graph, x: Tensor, name: string, d: number, eps: number): Tensor {
  const s = g.param(`${name}.g`, [d], { init: { kind: "ones" } });
  const b = g.param(`${name}.b`, [d], { init: { kind: "zeros" } });
  return g.layerNorm(x, s, b, eps);
}

/** Apply an activation by name (quick_gelu = x·σ(1.702x), OpenAI CLIP's). */
export function activate(g: Graph, x: Tensor, act: Activation): Tensor {
  switch (act) {
    case "gelu":
      return g.gelu(x, "none");
    case "gelu_tanh":
      return g.gelu(x, "tanh");
    case "quick_gelu": // OpenAI CLIP's x·σ(1.702x)
      return g.mul(x, g.sigmoid(g.mul(x, 1.702)));
  }
}

/** Two-layer MLP: [..., d] -> [..., hidden] -> act -> [..., d]. */
export function mlp(g: Graph, x: Tensor, name: string, d: number, hidden: number, act: Activation): Tensor {
  return linear(g, activate(g, linear(g, x, `${name}.fc1`, d, hidden), act), `${name}.fc2`, hidden, d);
}

/** [B, T, H*Dh] -> [B, H, T, Dh] */
export function splitHeads(g: Graph, x: Tensor, heads: number, dh: number): Tensor {
  return g.transpose(g.reshape(x, [0, 0, heads, dh]), [0, 2, 1, 3]);
}

/** [B, H, T, Dh] -> [B, T, H*Dh] */
export function mergeHeads(g: Graph, x: Tensor, width: number): Tensor {
  return g.reshape(g.transpose(x, [0, 2, 1, 3]), [0, 0, width]);
}

/**
 * Scaled dot-product attention. q [B,H,Tq,Dh], k/v [B,H,Tk,Dh], `mask` additive and
 * broadcastable to [B,H,Tq,Tk] (0 keep, MASK_NEG drop) -> [B,H,Tq,Dh].
 */
export function attend(g: Graph, q: Tensor, k: Tensor, v: Tensor, dh: number, mask?: Tensor): Tensor {
  // Scaling q (Tq·Dh values) is cheaper than scaling the Tq·Tk scores.
  const scores = g.matmul(g.mul(q, 1 / Math.sqrt(dh)), g.transpose(k, [0, 1, 3, 2]));
  return g.matmul(g.softmax(mask ? g.add(scores, mask) : scores, -1), v);
}

/** Projections of one attention layer: fused qkv, output. */
export function qkv(g: Graph, x: Tensor, name: string, dims: BlockDims): { q: Tensor; k: Tensor; v: Tensor } {
  const dh = dims.width / dims.heads;
  const fused = linear(g, x, `${name}.qkv`, dims.width, 3 * dims.width); // [B, T, 3D]
  const [q, k, v] = g.split(fused, [dims.width, dims.width, dims.width], -1);
  return { q: splitHeads(g, q!, dims.heads, dh), k: splitHeads(g, k!, dims.heads, dh), v: splitHeads(g, v!, dims.heads, dh) };
}

/**
 * Pre-LN transformer block: x + attn(ln1(x)); x + mlp(ln2(x)).
 * `kv` lets the caller replace the keys/values (KV cache) and read the new ones.
 */
export function block(
  g: Graph,
  x: Tensor,
  name: string,
  dims: BlockDims,
  mask?: Tensor,
  kv?: (k: Tensor, v: Tensor) => { k: Tensor; v: Tensor },
): { out: Tensor; k: Tensor; v: Tensor } {
  const dh = dims.width / dims.heads;
  const h = layerNorm(g, x, `${name}.ln1`, dims.width, dims.eps);
  const p = qkv(g, h, `${name}.attn`, dims);
  const { k, v } = kv ? kv(p.k, p.v) : { k: p.k, v: p.v };
  const a = mergeHeads(g, attend(g, p.q, k, v, dh, mask), dims.width);
  const x1 = g.add(x, linear(g, a, `${name}.attn.out`, dims.width, dims.width));
  const out = g.add(x1, mlp(g, layerNorm(g, x1, `${name}.ln2`, dims.width, dims.eps), `${name}.mlp`, dims.width, dims.mlp, dims.act));
  return { out, k, v };
}

/** x / ||x|| along the last axis (eps keeps a zero vector finite). */
export function l2normalize(g: Graph, x: Tensor, eps = 1e-12): Tensor {
  return g.div(x, g.sqrt(g.add(g.reduceSum(g.mul(x, x), [-1], true), eps)));
}

/** True when the dims are valid for a transformer (width divisible by heads). */
export function checkDims(where: string, dims: BlockDims): void {
  if (!Number.isInteger(dims.width) || dims.width < 1 || !Number.isInteger(dims.heads) || dims.heads < 1 || dims.width % dims.heads !== 0) {
    throw new Error(`${where}: width ${dims.width} must be a positive multiple of heads ${dims.heads}`);
  }
  if (!Number.isInteger(dims.mlp) || dims.mlp < 1) throw new Error(`${where}: mlp size ${dims.mlp} must be a positive integer`);
}
