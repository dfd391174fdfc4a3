/**
 * Plain-TS reference of the DPO loss family and its metrics: scalar float64 arithmetic,
 * written for obviousness, used by tests to check the graph version (losses.ts).
 * Definitions: see dpo-loss-config.ts.
 */
import { resolveDpoLossConfig, type DpoLossConfig, type DpoLossType, type DpoMetricName } from "./dpo-loss-config.ts";

/** Per-pair inputs, each of length B. Token counts are needed by `sft` and length-normalised `ipo`. */
export interface DpoLossReferenceInputs {
  policyChosen: ArrayLike<number>;
  policyRejected: ArrayLike<number>;
  refChosen: ArrayLike<number>;
  refRejected: ArrayLike<number>;
  chosenTokens?: ArrayLike<number>;
  rejectedTokens?: ArrayLike<number>;
}

export interface DpoLossResult {
  loss: number;
  /** Each term's batch value before its weight. */
  terms: Partial<Record<DpoLossType, number>>;
  metrics: Record<DpoMetricName, number>;
}

/** log σ(x) without overflow: min(x, 0) − log(1 + e^−|x|). */
export function logSigmoid(x: number): number {
  return Math.min(x, 0) - Math.log1p(Math.exp(-Math.abs(x)));
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/**
 * The DPO loss family and TRL metrics, computed pair by pair.
 *
 * @example
 * dpoLossReference({ policyChosen: [-10], policyRejected: [-14], refChosen: [-11], refRejected: [-12] }, { beta: 0.5 }).loss
 */
export function dpoLossReference(x: DpoLossReferenceInputs, config: DpoLossConfig): DpoLossResult {
  const cfg = resolveDpoLossConfig(config);
  const B = x.policyChosen.length;
  for (const [k, v] of Object.entries(x)) {
    if (v !== undefined && (v as ArrayLike<number>).length !== B) throw new Error(`dpoLossReference: ${k} has length ${(v as ArrayLike<number>).length}, expected ${B}`);
  }
  if (B === 0) throw new Error("dpoLossReference: empty batch");
  if (cfg.needsTokenCounts && (!x.chosenTokens || !x.rejectedTokens)) throw new Error("dpoLossReference: this config needs chosenTokens and rejectedTokens");
  const { beta, labelSmoothing: eps } = cfg;
  const chosenR: number[] = [];
  const rejectedR: number[] = [];
  const zs: number[] = [];
  for (let i = 0; i < B; i++) {
    const cr = x.policyChosen[i]! - x.refChosen[i]!;
    const rr = x.policyRejected[i]! - x.refRejected[i]!;
    chosenR.push(beta * cr);
    rejectedR.push(beta * rr);
    zs.push(beta * (cr - rr));
  }
  const terms: Partial<Record<DpoLossType, number>> = {};
  let loss = 0;
  for (const { type, weight } of cfg.terms) {
    let v: number;
    switch (type) {
      case "sigmoid":
        v = mean(zs.map((z) => -(1 - eps) * logSigmoid(z) - eps * logSigmoid(-z)));
        break;
      case "robust":
        v = mean(zs.map((z) => (-(1 - eps) * logSigmoid(z) + eps * logSigmoid(-z)) / (1 - 2 * eps)));
        break;
      case "hinge":
        v = mean(zs.map((z) => Math.max(0, 1 - z)));
        break;
      case "ipo": {
        const hs = zs.map((z, i) =>
          cfg.ipoLengthNormalise
            ? (x.policyChosen[i]! - x.refChosen[i]!) / x.chosenTokens![i]! - (x.policyRejected[i]! - x.refRejected[i]!) / x.rejectedTokens![i]!
            : z / beta,
        );
        v = mean(hs.map((h) => (h - 1 / (2 * beta)) ** 2));
        break;
      }
      case "sft": {
        let lp = 0;
        let n = 0;
        for (let i = 0; i < B; i++) {
          lp += x.policyChosen[i]!;
          n += x.chosenTokens![i]!;
        }
        v = -lp / n;
        break;
      }
    }
    terms[type] = v;
    loss += weight * v;
  }
  const metrics: Record<DpoMetricName, number> = {
    "rewards/chosen": mean(chosenR),
    "rewards/rejected": mean(rejectedR),
    "rewards/margins": mean(chosenR.map((c, i) => c - rejectedR[i]!)),
    "rewards/accuracies": mean(chosenR.map((c, i) => (c > rejectedR[i]! ? 1 : 0))),
    "logps/chosen": mean(Array.from(x.policyChosen)),
    "logps/rejected": mean(Array.from(x.policyRejected)),
  };
  return { loss, terms, metrics };
}
