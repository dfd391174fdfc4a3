/**
 * The DPO training step as one ONNX graph: policy log-probs of the chosen and the rejected
 * answers in ONE forward over the concatenated batch, the configured loss family (losses.ts),
 * the TRL metrics, and gradients for the trainable params only.
 *
 * Row layout of the text inputs: rows 0..B−1 are the chosen answers, rows B..2B−1 the rejected
 * ones, pair i = rows (i, B+i). Each pair's image enters once (`pixel_values` [B, 3, S, S]); its
 * projected image tokens are repeated for both answers inside the graph, so the frozen vision
 * tower runs B times, not 2B.
 */
import { Graph, type Tensor } from "../graph/index.ts";
import { LVLM_IO, imageInput, sequenceLogps } from "../models/lvlm.ts";
import type { LvlmConfig } from "../models/lvlm-config.ts";
import type { DpoLossConfig } from "./dpo-loss-config.ts";
import { dpoLoss, dpoOutputs } from "./losses.ts";

/** Input and extra output names of the DPO step graph (the LVLM inputs keep LVLM_IO names). */
export const DPO_IO = {
  pixelValues: LVLM_IO.pixelValues,
  inputIds: LVLM_IO.inputIds,
  attentionMask: LVLM_IO.attentionMask,
  answerMask: LVLM_IO.answerMask,
  refChosen: "ref_logp_chosen",
  refRejected: "ref_logp_rejected",
  /** Per-pair policy log-probs, [B] (for tests and logging; no gradient). */
  policyChosen: "policy_logp_chosen",
  policyRejected: "policy_logp_rejected",
  /** Answer tokens per row of the concatenated batch, [2B]. */
  nTokens: LVLM_IO.nTokens,
} as const;

export interface DpoStepGraph {
  graph: Graph;
  /** `loss`, `loss/<type>`, the TRL metrics, per-pair policy log-probs and `n_tokens`. */
  outputs: Record<string, Tensor>;
  /** Gradients by param name (only the trainable names given). */
  grads: Record<string, Tensor>;
}

/**
 * Builds the step graph. `trainable` names the params that get gradients (others are fed but frozen).
 *
 * @example
 * const { graph, outputs, grads } = dpoStepGraph(cfg, { beta: 0.1 }, store.trainableNames());
 * const step = await graph.compile({ outputs, grads, params: store });
 */
export function dpoStepGraph(cfg: LvlmConfig, loss: DpoLossConfig, trainable: readonly string[]): DpoStepGraph {
  const g = new Graph({ name: "dpo-step" });
  const { tokens } = imageInput(g, cfg, "pixels"); // [B, Np, D]
  const ids = g.input(LVLM_IO.inputIds, "int64", ["rows", "text"]); // [2B, T]
  const mask = g.input(LVLM_IO.attentionMask, "int64", ["rows", "text"]);
  const answer = g.input(LVLM_IO.answerMask, "int64", ["rows", "text"]);
  const refC = g.input(DPO_IO.refChosen, "float32", ["batch"]);
  const refR = g.input(DPO_IO.refRejected, "float32", ["batch"]);
  const img2 = g.concat([tokens, tokens], 0); // [2B, Np, D]: the image once per answer
  const seq = sequenceLogps(g, cfg, img2, ids, mask, answer); // logps [2B], nTokens [2B]
  const halves = (t: Tensor): [Tensor, Tensor] => {
    const [a, b] = g.split(g.reshape(t, [2, -1]), [1, 1], 0); // [1, B] each
    return [g.squeeze(a!, [0]), g.squeeze(b!, [0])];
  };
  const [pc, pr] = halves(seq.logps);
  const [nc, nr] = halves(seq.nTokens);
  const out = dpoLoss(g, { policyChosen: pc, policyRejected: pr, refChosen: refC, refRejected: refR, chosenTokens: nc, rejectedTokens: nr }, loss);
  const known = new Set(g.params().map((p) => p.name));
  for (const n of trainable) if (!known.has(n)) throw new Error(`dpoStepGraph: trainable param '${n}' is not a param of the LVLM`);
  const grads = g.grad(out.loss, [...trainable]);
  const outputs: Record<string, Tensor> = {
    ...dpoOutputs(out),
    [DPO_IO.policyChosen]: g.stopGradient(pc),
    [DPO_IO.policyRejected]: g.stopGradient(pr),
    [DPO_IO.nTokens]: g.stopGradient(seq.nTokens),
  };
  return { graph: g, outputs, grads };
}
