/**
 * clipflow's LVLM written as the three ONNX graphs of the Hugging Face image-text-to-text layout
 * that transformers.js runs for LLaVA-style models (session names are theirs):
 *
 *   vision_encoder        pixel_values [batch_size, 3, S, S] -> image_features [batch_size, Np, D]
 *                         (CLIP tower patch features + projector, already in the LM's width)
 *   embed_tokens          input_ids [batch_size, sequence_length] -> inputs_embeds [.., D]
 *   decoder_model_merged  inputs_embeds [batch_size, sequence_length, D],
 *                         attention_mask [batch_size, total_sequence_length] (int64, 0 = hole/pad),
 *                         position_ids [batch_size, sequence_length],
 *                         past_key_values.{l}.key|value [batch_size, H, past_sequence_length, Dh]
 *                         -> logits [batch_size, sequence_length, V],
 *                            present.{l}.key|value [batch_size, H, past + sequence_length, Dh]
 *
 * The merged decoder follows the growing-past convention: present = concat(past, this call's
 * K/V) along the sequence axis, so the first call takes an empty past (T = 0) and every later
 * call feeds the previous present back. Query i of a call sits at key index past + i; it sees
 * keys j <= past + i whose attention_mask is 1. Positions are learned absolute embeddings read
 * at `position_ids` (GPT-2 style: clipflow's LM is pre-LN with learned positions), so a row's
 * positions do not depend on where its tokens sit in the padded cache.
 *
 * The weights are the LVLM's own parameter names (`vision.*`, `projector.*`, `lm.*`), so the
 * same ParamStore feeds these graphs and clipflow's. The embedding table gets one extra zero row
 * when the image token's id is past the LM vocabulary (its embedding is always replaced by an
 * image feature, so the row's values never matter).
 */
import { Graph, type Tensor } from "../../graph/index.ts";
import type { LvlmConfig } from "../lvlm-config.ts";
import { block, layerNorm, linear } from "../layers.ts";
import { lmDims, projector, visionFeatures } from "../lvlm.ts";

/** Input and output names of the layout (transformers.js's). */
export const HF_VLM_IO = {
  pixelValues: "pixel_values",
  imageFeatures: "image_features",
  inputIds: "input_ids",
  inputsEmbeds: "inputs_embeds",
  attentionMask: "attention_mask",
  positionIds: "position_ids",
  logits: "logits",
  pastKey: (l: number) => `past_key_values.${l}.key`,
  pastValue: (l: number) => `past_key_values.${l}.value`,
  presentKey: (l: number) => `present.${l}.key`,
  presentValue: (l: number) => `present.${l}.value`,
} as const;

export interface HfGraph {
  graph: Graph;
  outputs: Record<string, Tensor>;
}

/**
 * pixel_values -> image_features [batch_size, Np, D] (projected into the LM's width).
 * @example
 * const { graph, outputs } = hfVisionEncoderGraph(lvlm.cfg);
 * const bytes = graph.toOnnx({ outputs, bake: lvlm.store }).bytes; // onnx/vision_encoder.onnx
 */
export function hfVisionEncoderGraph(cfg: LvlmConfig): HfGraph {
  const g = new Graph({ name: "vision_encoder" });
  const s = cfg.vision.imageSize;
  const px = g.input(HF_VLM_IO.pixelValues, "float32", ["batch_size", 3, s, s]);
  return { graph: g, outputs: { [HF_VLM_IO.imageFeatures]: projector(g, cfg, visionFeatures(g, cfg, px)) } };
}

/**
 * input_ids -> inputs_embeds; `tableRows` > vocab appends zero rows (the image token's).
 * @example
 * const { graph, outputs } = hfEmbedTokensGraph(lvlm.cfg, imageTokenId + 1);
 */
export function hfEmbedTokensGraph(cfg: LvlmConfig, tableRows = cfg.lm.vocabSize): HfGraph {
  const g = new Graph({ name: "embed_tokens" });
  const ids = g.input(HF_VLM_IO.inputIds, "int64", ["batch_size", "sequence_length"]);
  let table = g.param("lm.tok", [cfg.lm.vocabSize, cfg.lm.width]);
  const extra = tableRows - cfg.lm.vocabSize;
  if (extra > 0) table = g.concat([table, g.constant(new Float32Array(extra * cfg.lm.width), [extra, cfg.lm.width])], 0);
  return { graph: g, outputs: { [HF_VLM_IO.inputsEmbeds]: g.gather(table, ids) } };
}

/**
 * The merged decoder (no-past and with-past in one graph: the past may be empty).
 * @example
 * const { graph, outputs } = hfDecoderMergedGraph(lvlm.cfg); // outputs: logits, present.{l}.key|value
 */
export function hfDecoderMergedGraph(cfg: LvlmConfig): HfGraph {
  const g = new Graph({ name: "decoder_model_merged" });
  const D = cfg.lm.width, H = cfg.lm.heads, dh = D / H;
  const embeds = g.input(HF_VLM_IO.inputsEmbeds, "float32", ["batch_size", "sequence_length", D]);
  const mask = g.input(HF_VLM_IO.attentionMask, "int64", ["batch_size", "total_sequence_length"]);
  const pos = g.input(HF_VLM_IO.positionIds, "int64", ["batch_size", "sequence_length"]);
  const past = Array.from({ length: cfg.lm.layers }, (_, l) => ({
    k: g.input(HF_VLM_IO.pastKey(l), "float32", ["batch_size", H, "past_sequence_length", dh]),
    v: g.input(HF_VLM_IO.pastValue(l), "float32", ["batch_size", H, "past_sequence_length", dh]),
  }));
  const posTable = g.param("lm.pos", [cfg.lm.maxPositions, D]);
  let x = g.add(embeds, g.gather(posTable, pos)); // [B, S, D]
  // [S, total]: query i (key index total - S + i) sees keys <= itself; + holes/padding [B, 1, 1, total]
  const attn = g.add(g.causalMask("sequence_length", "total_sequence_length", [embeds, mask]), g.paddingMask(mask));
  const outputs: Record<string, Tensor> = {};
  const dims = lmDims(cfg);
  for (let l = 0; l < cfg.lm.layers; l++) {
    const p = past[l]!;
    const r = block(g, x, `lm.blocks.${l}`, dims, attn, (k, v) => ({ k: g.concat([p.k, k], 2), v: g.concat([p.v, v], 2) }));
    x = r.out;
    outputs[HF_VLM_IO.presentKey(l)] = r.k; // [B, H, past + S, Dh]
    outputs[HF_VLM_IO.presentValue(l)] = r.v;
  }
  const h = layerNorm(g, x, "lm.ln_f", D, cfg.lm.eps);
  outputs[HF_VLM_IO.logits] = linear(g, h, "lm.head", D, cfg.lm.vocabSize, { bias: false }); // [B, S, V]
  return { graph: g, outputs };
}

/**
 * Teacher-forced log-probs from full logits (clipflow's own helper graph, not part of the
 * layout): logits [B, T, V], input_ids [B, T], answer_mask [B, T] (1 on scored tokens) ->
 * logps [B] = Σ_t answer_mask[t] · log p(ids[t] | ids[<t]) and n_tokens [B]. Token t is
 * predicted by the logits at t - 1, so position 0 is never scored.
 * @example
 * const { graph, outputs } = hfLogpsHeadGraph(); // run on a decoder's logits
 */
export function hfLogpsHeadGraph(): HfGraph {
  const g = new Graph({ name: "hf-vlm-logps" });
  const logits = g.input("logits", "float32", ["batch", "text", "vocab"]);
  const ids = g.input("input_ids", "int64", ["batch", "text"]);
  const answer = g.input("answer_mask", "int64", ["batch", "text"]);
  const pred = g.slice(logits, [0], [-1], [1]); // [B, T-1, V]
  const next = g.slice(ids, [1], [2 ** 40], [1]); // [B, T-1]
  const am = g.cast(g.slice(answer, [1], [2 ** 40], [1]), "float32");
  const tok = g.mul(g.gatherLogProbs(pred, next), am); // [B, T-1]
  return { graph: g, outputs: { logps: g.reduceSum(tok, [1]), n_tokens: g.reduceSum(am, [1]), token_logps: tok } };
}

