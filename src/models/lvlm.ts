/**
 * LLaVA-style vision-language model graphs: CLIP ViT patch features -> 2-layer MLP projector ->
 * decoder-only LM (pre-LN, causal), image tokens before the text.
 *
 * Sequence layout: positions 0..Np-1 are the Np image tokens, then the text (bos, prompt,
 * answer, eos), right-padded. Parameter names: `vision.*` (same as CLIP's, frozen by default),
 * `projector.*`, `lm.*`.
 *
 * KV cache layout (what the continuous batcher manipulates), per layer l:
 *   `past_key_values.{l}.key` / `.value`: float32 [B, H, Tcap, Dh]
 * Each sequence b owns row b; its token at position p lives in slot p, so slots
 * [0, positions[b]) hold its history and later slots are free (their contents are ignored).
 * A decode step takes `positions` [B] int64 (= each sequence's current length): the new token
 * attends to slots < positions[b] plus itself, and the step returns only the new token's K/V,
 * `new.{l}.key|value` [B, H, 1, Dh]; the host writes them into slot positions[b] in place
 * (KvCache.append), so the cache is read once per step and never copied. Rows are independent,
 * so sequences join or leave between steps by copying rows; Tcap only has to exceed every
 * position (grow it by copying into a larger buffer). See kv-cache.ts.
 * After a prefill of right-padded prompts, row b's slots from its length on hold the padding's
 * K/V; they are never visible (decode masks slots >= positions[b]) and get overwritten in turn.
 * Positions use learned absolute embeddings, so position = slot and no rotation is needed.
 */
import { Graph, MASK_NEG, type Tensor } from "../graph/index.ts";
import { clipVisionTower, pickRows } from "./clip.ts";
import { imageTokens, type LvlmConfig } from "./lvlm-config.ts";
import { activate, block, layerNorm, linear, mergeHeads, mlp, qkv, type BlockDims } from "./layers.ts";

export const LVLM_IO = {
  pixelValues: "pixel_values",
  imageFeatures: "image_features",
  inputIds: "input_ids",
  attentionMask: "attention_mask",
  answerMask: "answer_mask",
  positions: "positions",
  logits: "logits",
  logps: "logps",
  nTokens: "n_tokens",
  tokenLogps: "token_logps",
  loss: "loss",
  pastKey: (l: number) => `past_key_values.${l}.key`,
  pastValue: (l: number) => `past_key_values.${l}.value`,
  presentKey: (l: number) => `present.${l}.key`,
  presentValue: (l: number) => `present.${l}.value`,
  newKey: (l: number) => `new.${l}.key`,
  newValue: (l: number) => `new.${l}.value`,
} as const;

/** Where the image enters a graph: raw pixels (vision tower inside) or precomputed patch features. */
export type VisionInput = "pixels" | "features";

export const lmDims = (cfg: LvlmConfig): BlockDims => ({ width: cfg.lm.width, heads: cfg.lm.heads, mlp: cfg.lm.mlp, act: cfg.lm.act, eps: cfg.lm.eps });

/** Patch features of the (frozen) vision tower, class token dropped: pixels -> [B, Np, Dv]. */
export function visionFeatures(g: Graph, cfg: LvlmConfig, pixels: Tensor): Tensor {
  const { hidden } = clipVisionTower(g, cfg.vision, pixels, cfg.visionFeatureLayers);
  return g.slice(hidden, [1], [imageTokens(cfg) + 1], [1]);
}

/** Declares the image input and returns projected image tokens [B, Np, D]. */
export function imageInput(g: Graph, cfg: LvlmConfig, source: VisionInput): { input: Tensor; tokens: Tensor } {
  const s = cfg.vision.imageSize, np = imageTokens(cfg);
  const input =
    source === "pixels"
      ? g.input(LVLM_IO.pixelValues, g.floatType, ["batch", 3, s, s])
      : g.input(LVLM_IO.imageFeatures, g.floatType, ["batch", np, cfg.vision.width]);
  const feats = source === "pixels" ? visionFeatures(g, cfg, input) : input;
  return { input, tokens: projector(g, cfg, feats) };
}

/** 2-layer MLP projector: [B, Np, Dv] -> [B, Np, D]. */
export function projector(g: Graph, cfg: LvlmConfig, feats: Tensor): Tensor {
  const h = activate(g, linear(g, feats, "projector.fc1", cfg.vision.width, cfg.projectorHidden), cfg.projectorAct);
  return linear(g, h, "projector.fc2", cfg.projectorHidden, cfg.lm.width);
}

function tokenTable(g: Graph, cfg: LvlmConfig): Tensor {
  return g.param("lm.tok", [cfg.lm.vocabSize, cfg.lm.width], { init: { kind: "normal", std: 0.02 } });
}
function posTable(g: Graph, cfg: LvlmConfig): Tensor {
  return g.param("lm.pos", [cfg.lm.maxPositions, cfg.lm.width], { init: { kind: "normal", std: 0.01 } });
}

/** Final LN + unembedding: [..., D] -> [..., V]. */
export function lmHead(g: Graph, cfg: LvlmConfig, h: Tensor): Tensor {
  return linear(g, layerNorm(g, h, "lm.ln_f", cfg.lm.width, cfg.lm.eps), "lm.head", cfg.lm.width, cfg.lm.vocabSize, { bias: false });
}

export interface LmForward {
  /** Final hidden states (before ln_f) over [image, text], [B, Np + T, D]. */
  hidden: Tensor;
  /** Per layer K and V, [B, H, Np + T, Dh]. */
  keys: Tensor[];
  values: Tensor[];
}

/**
 * Full causal forward over [image tokens, text]: ids/mask [B, T] int64 (right-padded).
 */
export function lmForward(g: Graph, cfg: LvlmConfig, img: Tensor, ids: Tensor, mask: Tensor): LmForward {
  const np = imageTokens(cfg);
  const x0 = g.concat([img, g.gather(tokenTable(g, cfg), ids)], 1); // [B, S, D]
  const S = x0.shape[1]!;
  let x = g.add(x0, g.gather(posTable(g, cfg), g.range(S, [x0]))); // + pos [S, D]
  const imgValid = g.expand(g.constant(BigInt64Array.from([1n]), [1, 1]), [ids.shape[0]!, np], [ids]); // [B, Np]
  const valid = g.concat([imgValid, mask], 1); // [B, S]
  const attnMask = g.add(g.causalMask(S, S, [x0]), g.paddingMask(valid)); // [B, 1, S, S]
  const dims = lmDims(cfg);
  const keys: Tensor[] = [], values: Tensor[] = [];
  for (let l = 0; l < cfg.lm.layers; l++) {
    const r = block(g, x, `lm.blocks.${l}`, dims, attnMask);
    x = r.out;
    keys.push(r.k);
    values.push(r.v);
  }
  return { hidden: x, keys, values };
}

/** Text inputs shared by the LVLM graphs. */
function textInputs(g: Graph): { ids: Tensor; mask: Tensor } {
  return {
    ids: g.input(LVLM_IO.inputIds, "int64", ["batch", "text"]),
    mask: g.input(LVLM_IO.attentionMask, "int64", ["batch", "text"]),
  };
}

/**
 * Prefill: image + right-padded prompt -> next-token logits at each prompt's last token [B, V]
 * and the KV cache over [image, prompt] ([B, H, Np + T, Dh] per layer).
 */
export function lvlmPrefillGraph(cfg: LvlmConfig, source: VisionInput = "pixels"): { graph: Graph; outputs: Record<string, Tensor> } {
  const g = new Graph({ name: "lvlm-prefill" });
  const { tokens } = imageInput(g, cfg, source);
  const { ids, mask } = textInputs(g);
  const f = lmForward(g, cfg, tokens, ids, mask);
  const last = g.add(g.reduceSum(mask, [1]), imageTokens(cfg) - 1); // [B] position of the last prompt token
  const outputs: Record<string, Tensor> = { [LVLM_IO.logits]: lmHead(g, cfg, pickRows(g, f.hidden, last, cfg.lm.width)) };
  f.keys.forEach((k, l) => {
    outputs[LVLM_IO.presentKey(l)] = k;
    outputs[LVLM_IO.presentValue(l)] = f.values[l]!;
  });
  return { graph: g, outputs };
}

/**
 * One decode step for B sequences of different lengths (layout in the file header):
 * input_ids [B, 1], positions [B], past K/V [B, H, Tcap, Dh] -> logits [B, V] and this token's
 * K/V `new.{l}.key|value` [B, H, 1, Dh], which the host writes into slot positions[b]
 * (KvCache.append). The graph only reads the cache: no [B, H, Tcap, Dh] tensor is produced,
 * so a step moves the cache through memory once (decode is bound by that traffic).
 */
export function lvlmDecodeGraph(cfg: LvlmConfig): { graph: Graph; outputs: Record<string, Tensor> } {
  const g = new Graph({ name: "lvlm-decode" });
  const H = cfg.lm.heads, dh = cfg.lm.width / H, D = cfg.lm.width;
  const ids = g.input(LVLM_IO.inputIds, "int64", ["batch", 1]);
  const positions = g.input(LVLM_IO.positions, "int64", ["batch"]);
  const past = Array.from({ length: cfg.lm.layers }, (_, l) => ({
    k: g.input(LVLM_IO.pastKey(l), "float32", ["batch", H, "cache", dh]),
    v: g.input(LVLM_IO.pastValue(l), "float32", ["batch", H, "cache", dh]),
  }));
  const pos2 = g.unsqueeze(positions, [1]); // [B, 1]
  let x = g.add(g.gather(tokenTable(g, cfg), ids), g.gather(posTable(g, cfg), pos2)); // [B, 1, D]
  // history = slots before this token's position; the token itself is attended separately
  const slots = g.unsqueeze(g.range("cache", [past[0]!.k]), [0]); // [1, Tcap]
  const pastMask = g.unsqueeze(g.where(g.less(slots, pos2), g.scalar(0), g.scalar(MASK_NEG)), [1, 2]); // [B, 1, 1, Tcap]
  const dims = lmDims(cfg);
  const outputs: Record<string, Tensor> = {};
  for (let l = 0; l < cfg.lm.layers; l++) {
    const name = `lm.blocks.${l}`;
    const { k: pk, v: pv } = past[l]!;
    const h = layerNorm(g, x, `${name}.ln1`, D, dims.eps);
    const { q, k, v } = qkv(g, h, `${name}.attn`, dims); // [B, H, 1, Dh] each
    const qs = g.mul(q, 1 / Math.sqrt(dh));
    const sPast = g.add(g.matmul(qs, g.transpose(pk, [0, 1, 3, 2])), pastMask); // [B, H, 1, Tcap]
    const sSelf = g.reduceSum(g.mul(qs, k), [3], true); // [B, H, 1, 1]
    const p = g.softmax(g.concat([sPast, sSelf], 3), -1); // [B, H, 1, Tcap + 1]
    const pPast = g.slice(p, [0], [-1], [3]), pSelf = g.slice(p, [-1], [2 ** 40], [3]);
    const ctx = g.add(g.matmul(pPast, pv), g.mul(pSelf, v)); // [B, H, 1, Dh]
    const x1 = g.add(x, linear(g, mergeHeads(g, ctx, D), `${name}.attn.out`, D, D));
    x = g.add(x1, mlp(g, layerNorm(g, x1, `${name}.ln2`, D, dims.eps), `${name}.mlp`, D, dims.mlp, dims.act));
    outputs[LVLM_IO.newKey(l)] = k;
    outputs[LVLM_IO.newValue(l)] = v;
  }
  outputs[LVLM_IO.logits] = g.squeeze(lmHead(g, cfg, x), [1]); // [B, V]
  return { graph: g, outputs };
}

/**
 * Per-token log-probs of the text under the model: token t is predicted from position Np + t - 1.
 * Returns [B, T]; entry 0 (the bos token) is predicted from the last image token.
 */
export function textTokenLogps(g: Graph, cfg: LvlmConfig, img: Tensor, ids: Tensor, mask: Tensor): Tensor {
  const np = imageTokens(cfg);
  const f = lmForward(g, cfg, img, ids, mask);
  const h = g.slice(f.hidden, [np - 1], [-1], [1]); // [B, T, D]: the positions predicting each text token
  return g.gatherLogProbs(lmHead(g, cfg, h), ids); // [B, T]
}

/** Sequence log-prob inputs: ids/mask [B,T] and answer_mask [B,T] int64 (1 on scored tokens). */
export interface SequenceLogps {
  /** Σ log p over answer tokens, [B]. */
  logps: Tensor;
  /** Answer tokens counted, [B] float. */
  nTokens: Tensor;
  /** Per text token log-probs, [B, T]. */
  tokenLogps: Tensor;
}

/** Builds sequence log-probs of the answers into `g` (DPO losses build on this). */
export function sequenceLogps(g: Graph, cfg: LvlmConfig, img: Tensor, ids: Tensor, mask: Tensor, answerMask: Tensor): SequenceLogps {
  const tok = textTokenLogps(g, cfg, img, ids, mask);
  const am = g.cast(answerMask, g.floatType);
  return { logps: g.reduceSum(g.mul(tok, am), [1]), nTokens: g.reduceSum(am, [1]), tokenLogps: tok };
}

/** Graph: image + (prompt ‖ answer) -> logps [B], n_tokens [B], token_logps [B, T]. */
export function lvlmLogpsGraph(cfg: LvlmConfig, source: VisionInput = "pixels"): { graph: Graph; outputs: Record<string, Tensor>; parts: SequenceLogps } {
  const g = new Graph({ name: "lvlm-logps" });
  const { tokens } = imageInput(g, cfg, source);
  const { ids, mask } = textInputs(g);
  const answer = g.input(LVLM_IO.answerMask, "int64", ["batch", "text"]);
  const parts = sequenceLogps(g, cfg, tokens, ids, mask, answer);
  return {
    graph: g,
    outputs: { [LVLM_IO.logps]: parts.logps, [LVLM_IO.nTokens]: parts.nTokens, [LVLM_IO.tokenLogps]: parts.tokenLogps },
    parts,
  };
}

/**
 * SFT loss: mean negative log-likelihood over all answer tokens of the batch.
 * @example
 * const { graph, outputs } = lvlmSftGraph(cfg);
 * const grads = graph.grad(outputs.loss, store.trainableNames());
 */
export function lvlmSftGraph(cfg: LvlmConfig, source: VisionInput = "pixels", opts: { floatType?: "float32" | "float64" } = {}): { graph: Graph; outputs: Record<string, Tensor> } {
  // float64 is for gradient checks against finite differences
  const g = new Graph({ name: "lvlm-sft", floatType: opts.floatType ?? "float32" });
  const { tokens } = imageInput(g, cfg, source);
  const { ids, mask } = textInputs(g);
  const answer = g.input(LVLM_IO.answerMask, "int64", ["batch", "text"]);
  const p = sequenceLogps(g, cfg, tokens, ids, mask, answer);
  const n = g.reduceSum(p.nTokens);
  const loss = g.div(g.neg(g.reduceSum(p.logps)), g.max(n, 1));
  return { graph: g, outputs: { [LVLM_IO.loss]: loss, [LVLM_IO.nTokens]: n } };
}

/** Full logits over the text positions, [B, T, V] (the recomputation reference for KV decoding). */
export function lvlmLogitsGraph(cfg: LvlmConfig, source: VisionInput = "pixels"): { graph: Graph; outputs: Record<string, Tensor> } {
  const g = new Graph({ name: "lvlm-logits" });
  const { tokens } = imageInput(g, cfg, source);
  const { ids, mask } = textInputs(g);
  const f = lmForward(g, cfg, tokens, ids, mask);
  const h = g.slice(f.hidden, [imageTokens(cfg)], [2 ** 40], [1]); // [B, T, D]: outputs at the text positions
  return { graph: g, outputs: { [LVLM_IO.logits]: lmHead(g, cfg, h) } };
}

/** Graph computing only the vision features (for `features` mode caching): pixels -> [B, Np, Dv]. */
export function lvlmVisionGraph(cfg: LvlmConfig): { graph: Graph; outputs: Record<string, Tensor> } {
  const g = new Graph({ name: "lvlm-vision" });
  const s = cfg.vision.imageSize;
  const px = g.input(LVLM_IO.pixelValues, "float32", ["batch", 3, s, s]);
  return { graph: g, outputs: { [LVLM_IO.imageFeatures]: visionFeatures(g, cfg, px) } };
}
