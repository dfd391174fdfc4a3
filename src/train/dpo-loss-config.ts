/**
 * Configuration of the DPO loss family, shared by the graph implementation (losses.ts) and
 * the plain-TS reference (losses-reference.ts). Definitions follow TRL's DPOTrainer, with
 * z = β·[(πc − refc) − (πr − refr)] per pair (π = summed completion log-prob):
 *
 * - `sigmoid` (DPO):  −(1−ε)·log σ(z) − ε·log σ(−z)       (ε > 0 is conservative DPO, cDPO)
 * - `robust`:         [−(1−ε)·log σ(z) + ε·log σ(−z)] / (1 − 2ε)   (unbiased under ε label noise)
 * - `hinge` (SLiC):   max(0, 1 − z)
 * - `ipo`:            (h − 1/(2β))², h = (πc − refc)/nc − (πr − refr)/nr when length-normalised
 *                      (TRL averages log-probs over tokens for IPO), else h = z/β
 * - `sft` (RPO):      −Σ πc / Σ nc, the chosen answers' NLL per token over the batch
 *
 * Each pairwise term is averaged over the batch; the loss is Σ weightₖ·termₖ.
 */
import { ConfigError } from "../util/errors.ts";

export type DpoLossType = "sigmoid" | "ipo" | "hinge" | "robust" | "sft";

export interface DpoLossTerm {
  type: DpoLossType;
  /** Multiplier of this term in the total (default 1). */
  weight?: number;
}

export interface DpoLossConfig {
  /** β: strength of the implicit KL penalty (TRL default 0.1). */
  beta: number;
  /** Terms summed into the loss (default `[{ type: "sigmoid" }]`). */
  terms?: DpoLossTerm[];
  /** ε, the assumed share of flipped preference labels, for `sigmoid` (cDPO) and `robust`; in [0, 0.5). */
  labelSmoothing?: number;
  /** IPO on per-token mean log-probs, as TRL does (default true; needs token counts). */
  ipoLengthNormalise?: boolean;
}

/** A validated config with defaults filled in. */
export interface ResolvedDpoLossConfig {
  beta: number;
  terms: { type: DpoLossType; weight: number }[];
  labelSmoothing: number;
  ipoLengthNormalise: boolean;
  /** Whether token counts of chosen/rejected must be supplied. */
  needsTokenCounts: boolean;
}

export const DPO_LOSS_TYPES: readonly DpoLossType[] = ["sigmoid", "ipo", "hinge", "robust", "sft"];

/** The TRL-style metric names, in logging order. */
export const DPO_METRICS = [
  "rewards/chosen",
  "rewards/rejected",
  "rewards/margins",
  "rewards/accuracies",
  "logps/chosen",
  "logps/rejected",
] as const;
export type DpoMetricName = (typeof DPO_METRICS)[number];

const CONFIG_KEYS = new Set(["beta", "terms", "labelSmoothing", "ipoLengthNormalise"]);

/**
 * Validates a loss config (unknown keys, ranges, duplicate terms) and fills defaults.
 *
 * @example
 * resolveDpoLossConfig({ beta: 0.1, terms: [{ type: "sigmoid" }, { type: "sft", weight: 0.2 }] })
 */
export function resolveDpoLossConfig(config: DpoLossConfig): ResolvedDpoLossConfig {
  for (const k of Object.keys(config)) {
    if (!CONFIG_KEYS.has(k)) throw new ConfigError(`dpo loss config: unknown key '${k}'`, { code: "bad option" });
  }
  const { beta } = config;
  if (!(typeof beta === "number" && Number.isFinite(beta) && beta > 0)) throw new ConfigError(`dpo loss config: beta must be a finite number > 0, got ${beta}`, { code: "bad option" });
  const eps = config.labelSmoothing ?? 0;
  if (!(typeof eps === "number" && eps >= 0 && eps < 0.5)) throw new ConfigError(`dpo loss config: labelSmoothing must be in [0, 0.5), got ${eps}`, { code: "bad option" });
  const raw = config.terms ?? [{ type: "sigmoid" }];
  if (raw.length === 0) throw new ConfigError("dpo loss config: terms is empty", { code: "bad option" });
  const seen = new Set<string>();
  const terms = raw.map((t, i) => {
    for (const k of Object.keys(t)) {
      if (k !== "type" && k !== "weight") throw new ConfigError(`dpo loss config: terms[${i}] has unknown key '${k}'`, { code: "bad option" });
    }
    if (!DPO_LOSS_TYPES.includes(t.type)) {
      throw new ConfigError(`dpo loss config: terms[${i}].type ${JSON.stringify(t.type)} is not one of ${DPO_LOSS_TYPES.join(", ")}`, { code: "bad option" });
    }
    if (seen.has(t.type)) throw new ConfigError(`dpo loss config: loss type '${t.type}' listed twice`, { code: "bad option" });
    seen.add(t.type);
    const weight = t.weight ?? 1;
    if (!(Number.isFinite(weight) && weight > 0)) throw new ConfigError(`dpo loss config: terms[${i}] (${t.type}) weight must be a finite number > 0, got ${weight}`, { code: "bad option" });
    return { type: t.type, weight };
  });
  const ipoLengthNormalise = config.ipoLengthNormalise ?? true;
  const needsTokenCounts = seen.has("sft") || (seen.has("ipo") && ipoLengthNormalise);
  return { beta, terms, labelSmoothing: eps, ipoLengthNormalise, needsTokenCounts };
}
