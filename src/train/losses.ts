/**
 * The DPO loss family as graph-builder functions over per-sequence log-prob tensors, plus the
 * TRL-style metrics as graph outputs. Definitions (TRL's): see dpo-loss-config.ts; the plain
 * reference is losses-reference.ts.
 *
 * All inputs are [B] tensors of the graph's float type: summed completion log-probs of the
 * policy and the reference for chosen and rejected answers, and optionally the completion
 * token counts. The reference log-probs get no gradient (they are constants of the objective).
 */
import type { Graph, Tensor } from "../graph/index.ts";
import {
  DPO_METRICS,
  resolveDpoLossConfig,
  type DpoLossConfig,
  type DpoLossType,
  type DpoMetricName,
} from "./dpo-loss-config.ts";

export interface DpoLossInputs {
  /** Σ log πθ(y⁺|x) per pair, [B]. */
  policyChosen: Tensor;
  /** Σ log πθ(y⁻|x) per pair, [B]. */
  policyRejected: Tensor;
  /** Σ log πref(y⁺|x) per pair, [B]. */
  refChosen: Tensor;
  /** Σ log πref(y⁻|x) per pair, [B]. */
  refRejected: Tensor;
  /** Completion token counts of chosen answers (float), [B]; needed by `sft` and length-normalised `ipo`. */
  chosenTokens?: Tensor;
  /** Completion token counts of rejected answers (float), [B]. */
  rejectedTokens?: Tensor;
}

export interface DpoLossOutputs {
  /** Σ weightₖ·termₖ, a scalar. */
  loss: Tensor;
  /** Each configured term's batch value (scalar, unweighted). */
  terms: Partial<Record<DpoLossType, Tensor>>;
  /** TRL metrics, batch means (scalars, no gradient). */
  metrics: Record<DpoMetricName, Tensor>;
}

/**
 * log σ(z) and log σ(−z) for z [B], as the two columns of LogSoftmax([0, z]). This is stable
 * for any |z| and differentiable everywhere, including z = 0, where every pair starts
 * (policy = reference); a relu/abs formulation would get a zero gradient there.
 */
export function logSigmoidPair(g: Graph, z: Tensor): { pos: Tensor; neg: Tensor } {
  const zu = g.unsqueeze(z, [1]); // [B, 1]
  const ls = g.logSoftmax(g.concat([g.mul(zu, 0), zu], 1), 1); // [B, 2]
  return {
    pos: g.squeeze(g.slice(ls, [1], [2], [1]), [1]), // log σ(z)  [B]
    neg: g.squeeze(g.slice(ls, [0], [1], [1]), [1]), // log σ(−z) [B]
  };
}

/** Per-pair DPO / cDPO loss: −(1−ε)·log σ(z) − ε·log σ(−z), [B]. */
export function sigmoidDpoLoss(g: Graph, z: Tensor, labelSmoothing = 0): Tensor {
  const { pos, neg } = logSigmoidPair(g, z);
  const clean = g.neg(pos);
  return labelSmoothing === 0 ? clean : g.sub(g.mul(clean, 1 - labelSmoothing), g.mul(neg, labelSmoothing));
}

/** Per-pair robust DPO loss: [−(1−ε)·log σ(z) + ε·log σ(−z)] / (1 − 2ε), [B]. */
export function robustDpoLoss(g: Graph, z: Tensor, labelSmoothing: number): Tensor {
  const { pos, neg } = logSigmoidPair(g, z);
  const num = g.add(g.mul(pos, -(1 - labelSmoothing)), g.mul(neg, labelSmoothing));
  return g.mul(num, 1 / (1 - 2 * labelSmoothing));
}

/** Per-pair hinge (SLiC) loss: max(0, 1 − z), [B]. */
export function hingeDpoLoss(g: Graph, z: Tensor): Tensor {
  return g.relu(g.sub(1, z));
}

/** Per-pair IPO loss: (h − 1/(2β))², with h the (optionally length-normalised) log-ratio difference, [B]. */
export function ipoLoss(g: Graph, h: Tensor, beta: number): Tensor {
  const d = g.sub(h, 1 / (2 * beta));
  return g.mul(d, d);
}

/** RPO / SFT term: −Σ πc / Σ nc, the NLL per chosen token over the batch (scalar). */
export function sftLoss(g: Graph, policyChosen: Tensor, chosenTokens: Tensor): Tensor {
  return g.neg(g.div(g.sum(policyChosen), g.sum(chosenTokens)));
}

// internal invariant: dpoStepGraph builds these inputs (a bad loss *config* is refused earlier, as a
// ConfigError, by resolveDpoLossConfig), so a failure here is a clipflow bug: plain Error.
function checkInputs(x: DpoLossInputs, needsTokens: boolean): void {
  const named = Object.entries(x).filter(([, t]) => t !== undefined) as [string, Tensor][];
  const first = x.policyChosen;
  for (const [k, t] of named) {
    if (t.rank !== 1) throw new Error(`dpoLoss: ${k} must be [batch], got ${t}`);
    if (t.dtype !== first.dtype || !t.isFloat) throw new Error(`dpoLoss: ${k} must be ${first.dtype} (float), got ${t}`);
    const [a, b] = [t.shape[0], first.shape[0]];
    if (typeof a === "number" && typeof b === "number" && a !== b) throw new Error(`dpoLoss: ${k} has batch ${a}, policyChosen has ${b}`);
  }
  if (needsTokens && (!x.chosenTokens || !x.rejectedTokens)) {
    throw new Error("dpoLoss: the sft term and length-normalised ipo need chosenTokens and rejectedTokens");
  }
}

/**
 * Builds the configured DPO loss and the TRL metrics into `g`.
 *
 * @example
 * const g = new Graph();
 * const lp = (n: string) => g.input(n, "float32", ["batch"]);
 * const out = dpoLoss(g, { policyChosen: pc, policyRejected: pr, refChosen: lp("ref_logp_chosen"), refRejected: lp("ref_logp_rejected") },
 *   { beta: 0.1, terms: [{ type: "sigmoid" }, { type: "sft", weight: 0.2 }] });
 * const model = g.toOnnx({ outputs: dpoOutputs(out), grads: g.grad(out.loss, params) });
 */
export function dpoLoss(g: Graph, x: DpoLossInputs, config: DpoLossConfig): DpoLossOutputs {
  const cfg = resolveDpoLossConfig(config);
  checkInputs(x, cfg.needsTokenCounts);
  const { beta, labelSmoothing } = cfg;
  const refC = g.stopGradient(x.refChosen);
  const refR = g.stopGradient(x.refRejected);
  const chosenLogratio = g.sub(x.policyChosen, refC); // [B]
  const rejectedLogratio = g.sub(x.policyRejected, refR); // [B]
  const z = g.mul(g.sub(chosenLogratio, rejectedLogratio), beta); // [B]

  const terms: Partial<Record<DpoLossType, Tensor>> = {};
  let loss: Tensor | undefined;
  for (const { type, weight } of cfg.terms) {
    let v: Tensor;
    switch (type) {
      case "sigmoid":
        v = g.mean(sigmoidDpoLoss(g, z, labelSmoothing));
        break;
      case "robust":
        v = g.mean(robustDpoLoss(g, z, labelSmoothing));
        break;
      case "hinge":
        v = g.mean(hingeDpoLoss(g, z));
        break;
      case "ipo": {
        const h = cfg.ipoLengthNormalise
          ? g.sub(g.div(chosenLogratio, g.stopGradient(x.chosenTokens!)), g.div(rejectedLogratio, g.stopGradient(x.rejectedTokens!)))
          : g.sub(chosenLogratio, rejectedLogratio);
        v = g.mean(ipoLoss(g, h, beta));
        break;
      }
      case "sft":
        v = sftLoss(g, x.policyChosen, g.stopGradient(x.chosenTokens!));
        break;
    }
    terms[type] = v;
    const wv = weight === 1 ? v : g.mul(v, weight);
    loss = loss ? g.add(loss, wv) : wv;
  }

  // Metrics see values only: stopGradient keeps them out of the backward pass.
  const rc = g.stopGradient(g.mul(chosenLogratio, beta)); // [B]
  const rr = g.stopGradient(g.mul(rejectedLogratio, beta)); // [B]
  const metrics: Record<DpoMetricName, Tensor> = {
    "rewards/chosen": g.mean(rc),
    "rewards/rejected": g.mean(rr),
    "rewards/margins": g.mean(g.sub(rc, rr)),
    "rewards/accuracies": g.mean(g.cast(g.greater(rc, rr), rc.dtype)),
    "logps/chosen": g.mean(g.stopGradient(x.policyChosen)),
    "logps/rejected": g.mean(g.stopGradient(x.policyRejected)),
  };
  return { loss: loss!, terms, metrics };
}

/**
 * Graph outputs for `toOnnx`/`compile`: `loss`, `loss/<type>` per term, and the metrics under
 * their TRL names (`rewards/chosen`, …).
 */
export function dpoOutputs(out: DpoLossOutputs): Record<string, Tensor> {
  const o: Record<string, Tensor> = { loss: out.loss };
  for (const [k, v] of Object.entries(out.terms)) o[`loss/${k}`] = v;
  for (const k of DPO_METRICS) o[k] = out.metrics[k];
  return o;
}
