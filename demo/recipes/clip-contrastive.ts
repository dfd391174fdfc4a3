/**
 * CLIP contrastive loss with hard negatives (NegCLIP-style): the text batch holds the B matching
 * captions first, then any number of extra negative captions (minimal false edits of the
 * positives). Image→text cross-entropy runs over every text (so each image must prefer its own
 * caption to the edited ones); text→image over the B matching captions only (a negative caption
 * has no image to be matched to).
 *
 * Param names are exactly those of src/models' clipLossGraph, so one ParamStore (and
 * ClipModel/exportClip) serves both.
 */
import { Graph, type Tensor } from "../../src/graph/index.ts";
import { CLIP_IO, clipImageProjection, clipTextEmbeds, clipVisionTower, type ClipConfig } from "../../src/models/index.ts";
import { l2normalize } from "../../src/models/layers.ts";
import { patchKindHead } from "./patch-kind.ts";

export interface HardNegativeLossGraph {
  graph: Graph;
  outputs: {
    /** ½ (mean image→text CE over all N texts + mean text→image CE over the B positives). */
    loss: Tensor;
    /** scale · cos(image_i, text_j), [B, N]. */
    logits_per_image: Tensor;
    /** exp(logit_scale) clamped at 100. */
    scale: Tensor;
    /** With `patchKindWeight` > 0: the two terms of `loss` = contrastive_loss + w · patch_loss. */
    contrastive_loss?: Tensor;
    patch_loss?: Tensor;
  };
}

/**
 * Inputs: `pixel_values` [B, 3, S, S]; `input_ids`, `attention_mask` [N, T] int64 with N ≥ B,
 * rows 0..B-1 the captions of images 0..B-1, rows B.. extra negatives. With `patchKindWeight`
 * > 0 also `labels` [B, patches] (demo/recipes/patch-kind.ts) and params `patch_kind.*`.
 * @example
 * const { graph, outputs } = hardNegativeClipLoss(cfg);
 * const step = await graph.compile({ outputs, grads: graph.grad(outputs.loss, store.trainableNames()), params: store });
 */
export function hardNegativeClipLoss(cfg: ClipConfig, opts: { patchKindWeight?: number } = {}): HardNegativeLossGraph {
  const g = new Graph({ name: "clip-loss-hard-negatives" });
  const s = cfg.vision.imageSize;
  const pixels = g.input(CLIP_IO.pixelValues, "float32", ["batch", 3, s, s]);
  const ids = g.input(CLIP_IO.inputIds, "int64", ["texts", "sequence"]);
  const mask = g.input(CLIP_IO.attentionMask, "int64", ["texts", "sequence"]);
  const tower = clipVisionTower(g, cfg.vision, pixels);
  const img = l2normalize(g, clipImageProjection(g, cfg, tower.pooled!)); // [B, E]
  const txt = l2normalize(g, clipTextEmbeds(g, cfg, ids, mask)); // [N, E]
  const logScale = g.param("logit_scale", [1], { init: { kind: "constant", value: cfg.logitScaleInit } });
  const scale = g.min(g.exp(logScale), 100);
  const logits = g.mul(g.matmul(img, g.transpose(txt, [1, 0])), scale); // [B, N]
  const labels = g.range("batch", [pixels]); // [B]: image i's caption is text i
  const i2t = g.mean(g.crossEntropy(logits, labels));
  const square = g.transpose(g.gather(logits, labels, 1), [1, 0]); // [B(text), B(image)]
  const t2i = g.mean(g.crossEntropy(square, labels));
  const contrastive = g.mul(g.add(i2t, t2i), 0.5);
  const w = opts.patchKindWeight ?? 0;
  if (w <= 0) return { graph: g, outputs: { loss: contrastive, logits_per_image: logits, scale } };
  // Auxiliary: keep the patch tokens (what a LLaVA-style policy reads) kind-discriminative.
  const patch = patchKindHead(g, cfg, tower.hidden);
  return { graph: g, outputs: { loss: g.add(contrastive, g.mul(patch.loss, w)), logits_per_image: logits, scale, contrastive_loss: contrastive, patch_loss: patch.loss } };
}
