/**
 * CLIP on the graph builder: a ViT image tower and a causal text tower projected into one
 * embedding space, a learned logit scale and the symmetric InfoNCE loss.
 *
 * Parameter names (one ParamStore feeds every graph): `vision.*`, `text.*`, `logit_scale`.
 * The LVLM reuses the `vision.*` names, so a trained CLIP's vision weights load into it directly.
 */
import { Graph, type Tensor } from "../graph/index.ts";
import type { ClipConfig, ClipTextConfig, ClipVisionConfig } from "./clip-config.ts";
import { block, l2normalize, layerNorm, linear, type BlockDims } from "./layers.ts";

/** HF layout names of the graph inputs/outputs (transformers.js / Optimum CLIP exports). */
export const CLIP_IO = {
  pixelValues: "pixel_values",
  imageEmbeds: "image_embeds",
  inputIds: "input_ids",
  attentionMask: "attention_mask",
  textEmbeds: "text_embeds",
} as const;

export const visionDims = (v: ClipVisionConfig): BlockDims => ({ width: v.width, heads: v.heads, mlp: v.mlp, act: v.act, eps: v.eps });
export const textDims = (t: ClipTextConfig): BlockDims => ({ width: t.width, heads: t.heads, mlp: t.mlp, act: t.act, eps: t.eps });

export interface VisionTowerOut {
  /** Hidden states after the last block run, [B, 1 + patches, width] (class token first). */
  hidden: Tensor;
  /** post-LN class token, [B, width]; absent when stopped early (`layers`). */
  pooled?: Tensor;
}

/**
 * Non-overlapping patches by reshape/transpose: pixels [B, 3, S, S] -> [B, (S/p)², 3·p·p],
 * patches in row-major order, each vector channel-major (c, dy, dx) like a conv kernel's layout.
 */
export function patchify(g: Graph, pixels: Tensor, size: number, p: number): Tensor {
  const gs = size / p;
  // [B,3,gs,p,gs,p] -> [B,gs,gs,3,p,p] -> [B, gs², 3·p·p]
  return g.reshape(g.transpose(g.reshape(pixels, [0, 3, gs, p, gs, p]), [0, 2, 4, 1, 3, 5]), [0, gs * gs, 3 * p * p]);
}

/**
 * ViT image tower. pixels [B, 3, S, S] -> patches by reshape/transpose -> linear -> class token +
 * learned positions -> pre-LN -> pre-LN blocks -> post-LN on the class token.
 * `layers` stops after that many blocks (the LVLM reads patch features from an inner layer).
 */
export function clipVisionTower(g: Graph, v: ClipVisionConfig, pixels: Tensor, layers = v.layers): VisionTowerOut {
  const p = v.patchSize, n = (v.imageSize / p) ** 2, d = v.width;
  const patches = patchify(g, pixels, v.imageSize, p);
  const emb = linear(g, patches, "vision.patch", 3 * p * p, d, { bias: false }); // [B, n, d]
  const cls = g.param("vision.cls", [1, 1, d], { init: { kind: "normal", std: 0.02 } });
  const clsB = g.expand(cls, [pixels.shape[0]!, 1, d], [pixels]); // [B, 1, d]
  const pos = g.param("vision.pos", [n + 1, d], { init: { kind: "normal", std: 0.01 } });
  let h = layerNorm(g, g.add(g.concat([clsB, emb], 1), pos), "vision.ln_pre", d, v.eps); // [B, n+1, d]
  const dims = visionDims(v);
  for (let i = 0; i < layers; i++) h = block(g, h, `vision.blocks.${i}`, dims).out;
  if (layers < v.layers) return { hidden: h };
  const clsOut = g.squeeze(g.slice(h, [0], [1], [1]), [1]); // [B, d]
  return { hidden: h, pooled: layerNorm(g, clsOut, "vision.ln_post", d, v.eps) };
}

/** Image tower + projection: pixels [B,3,S,S] -> image embeddings [B, E] (not normalised, like HF). */
export function clipImageEmbeds(g: Graph, cfg: ClipConfig, pixels: Tensor): Tensor {
  return clipImageProjection(g, cfg, clipVisionTower(g, cfg.vision, pixels).pooled!);
}

/** The image projection alone: pooled class token [B, width] -> image embeddings [B, E]. */
export function clipImageProjection(g: Graph, cfg: ClipConfig, pooled: Tensor): Tensor {
  return linear(g, pooled, "vision.proj", cfg.vision.width, cfg.embedDim, { bias: false });
}

/**
 * Index of the pooled token per row, int64 [B]: the first position holding the end-of-text id
 * (`eos` pooling) or the largest id (`argmax` pooling, original CLIP). Built from integer ops:
 * first hit = T − max over t of hit[t]·(T − t).
 */
export function poolIndex(g: Graph, t: ClipTextConfig, ids: Tensor): Tensor {
  const T = g.dimOf(ids, 1); // int64 [1]
  const target = t.pooling === "eos" ? g.scalar(t.eosTokenId, "int64") : g.reduceMax(ids, [1], true);
  const hit = g.cast(g.equal(ids, target), "int64"); // [B, T]
  const fromEnd = g.sub(T, g.range(ids.shape[1]!, [ids])); // [T]: T - t
  const first = g.sub(T, g.reduceMax(g.mul(hit, fromEnd), [1])); // [B]; T when absent
  return g.min(first, g.sub(T, g.scalar(1, "int64"))); // no end token: read the last position
}

/** Rows of h [B, T, D] at per-row positions idx [B] -> [B, D]. */
export function pickRows(g: Graph, h: Tensor, idx: Tensor, d: number): Tensor {
  const ix = g.expand(g.unsqueeze(idx, [1, 2]), [h.shape[0]!, 1, d], [h]); // [B, 1, D]
  return g.squeeze(g.gatherElements(h, ix, 1), [1]);
}

/**
 * Causal text tower: ids [B,T] int64, mask [B,T] int64 (1 = token, 0 = pad) -> pooled [B, width]
 * (final LN, read at the end-of-text token).
 */
export function clipTextTower(g: Graph, t: ClipTextConfig, ids: Tensor, mask: Tensor): Tensor {
  const d = t.width;
  const tok = g.gather(g.param("text.tok", [t.vocabSize, d], { init: { kind: "normal", std: 0.02 } }), ids); // [B,T,d]
  const posTable = g.param("text.pos", [t.contextLength, d], { init: { kind: "normal", std: 0.01 } });
  const pos = g.gather(posTable, g.range(ids.shape[1]!, [ids])); // [T, d]
  let h = g.add(tok, pos);
  const attnMask = g.add(g.causalMask(ids.shape[1]!, ids.shape[1]!, [ids]), g.paddingMask(mask)); // [B,1,T,T]
  const dims = textDims(t);
  for (let i = 0; i < t.layers; i++) h = block(g, h, `text.blocks.${i}`, dims, attnMask).out;
  h = layerNorm(g, h, "text.ln_final", d, t.eps);
  return pickRows(g, h, poolIndex(g, t, ids), d);
}

/** Text tower + projection: -> text embeddings [B, E] (not normalised, like HF). */
export function clipTextEmbeds(g: Graph, cfg: ClipConfig, ids: Tensor, mask: Tensor): Tensor {
  return linear(g, clipTextTower(g, cfg.text, ids, mask), "text.proj", cfg.text.width, cfg.embedDim, { bias: false });
}

/** Graph inputs in the HF layout. */
export function clipInputs(g: Graph, cfg: ClipConfig): { pixels: Tensor; ids: Tensor; mask: Tensor } {
  const s = cfg.vision.imageSize;
  return {
    pixels: g.input(CLIP_IO.pixelValues, g.floatType, ["batch", 3, s, s]),
    ids: g.input(CLIP_IO.inputIds, "int64", ["batch", "sequence"]),
    mask: g.input(CLIP_IO.attentionMask, "int64", ["batch", "sequence"]),
  };
}

/** `pixel_values` [batch,3,S,S] -> `image_embeds` [batch,E]: HF onnx/vision_model.onnx. */
export function clipVisionGraph(cfg: ClipConfig): { graph: Graph; outputs: { image_embeds: Tensor } } {
  const g = new Graph({ name: "clip-vision" });
  const s = cfg.vision.imageSize;
  const pixels = g.input(CLIP_IO.pixelValues, "float32", ["batch", 3, s, s]);
  return { graph: g, outputs: { image_embeds: clipImageEmbeds(g, cfg, pixels) } };
}

/** `input_ids`, `attention_mask` [batch,seq] int64 -> `text_embeds` [batch,E]: HF onnx/text_model.onnx. */
export function clipTextGraph(cfg: ClipConfig): { graph: Graph; outputs: { text_embeds: Tensor } } {
  const g = new Graph({ name: "clip-text" });
  const ids = g.input(CLIP_IO.inputIds, "int64", ["batch", "sequence"]);
  const mask = g.input(CLIP_IO.attentionMask, "int64", ["batch", "sequence"]);
  return { graph: g, outputs: { text_embeds: clipTextEmbeds(g, cfg, ids, mask) } };
}

export interface ClipLossGraph {
  graph: Graph;
  outputs: {
    /** Symmetric InfoNCE: mean of image→text and text→image cross-entropy over the batch. */
    loss: Tensor;
    /** scale · cos(image_i, text_j), [batch, batch]. */
    logits_per_image: Tensor;
    /** exp(logit_scale), clamped at 100 like CLIP (output name differs from the param's). */
    scale: Tensor;
  };
}

/**
 * Contrastive training graph over a batch of matching (image_i, text_i) pairs.
 * @example
 * const { graph, outputs } = clipLossGraph(cfg);
 * const store = ParamStore.fromSpecs(graph.params(), new Rng(0));
 * const step = await graph.compile({ outputs, grads: graph.grad(outputs.loss, store.trainableNames()), params: store });
 */
export function clipLossGraph(cfg: ClipConfig, opts: { floatType?: "float32" | "float64" } = {}): ClipLossGraph {
  // float64 is for gradient checks against finite differences
  const g = new Graph({ name: "clip-loss", floatType: opts.floatType ?? "float32" });
  const { pixels, ids, mask } = clipInputs(g, cfg);
  const img = l2normalize(g, clipImageEmbeds(g, cfg, pixels)); // [B, E]
  const txt = l2normalize(g, clipTextEmbeds(g, cfg, ids, mask)); // [B, E]
  const logScale = g.param("logit_scale", [1], { init: { kind: "constant", value: cfg.logitScaleInit } });
  const scale = g.min(g.exp(logScale), 100);
  const logits = g.mul(g.matmul(img, g.transpose(txt, [1, 0])), scale); // [B, B]
  const labels = g.range("batch", [pixels]);
  const loss = g.mul(g.add(g.mean(g.crossEntropy(logits, labels)), g.mean(g.crossEntropy(g.transpose(logits, [1, 0]), labels))), 0.5);
  return { graph: g, outputs: { loss, logits_per_image: logits, scale } };
}
