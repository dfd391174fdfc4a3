/**
 * The demo's `pairs` stage: the framework's CLIP-ranked strategies plus the BASELINES that read
 * the shapes world (`random`, `oracle`: demo/stages/baseline-pairs.ts), for pipelines/compare.yaml.
 *
 * @example
 * comparePairsStage.parse({ strategy: "oracle" })
 */
import { z } from "zod";
import { defineStage } from "../../src/flow/stage.ts";
import { PAIRS_COUNTS, pairCandidates, pairsOptions } from "../../operators/pairs.ts";
import { nonNegativeInt, type StageServices } from "../../operators/services.ts";
import { baselinePairs } from "./baseline-pairs.ts";

/** `pairs` options with the baseline strategies and their seed. */
export const comparePairsOptions = pairsOptions.extend({
  /** `best-vs-worst`/`all-over-margin` (the method) or the baselines `random`/`oracle` (comparisons only). */
  strategy: z.enum(["best-vs-worst", "all-over-margin", "random", "oracle"]).default("best-vs-worst"),
  /** Seed of `strategy: random`. */
  seed: nonNegativeInt().default(0),
});

export const comparePairsStage = defineStage<typeof comparePairsOptions, StageServices>({
  name: "pairs",
  role: "operator",
  optionsSchema: comparePairsOptions,
  counts: PAIRS_COUNTS,
  create: (o, s) =>
    o.strategy === "random" || o.strategy === "oracle"
      ? baselinePairs({ strategy: o.strategy, minMargin: o.minMargin, maxPairsPerImage: o.maxPairsPerImage, maxLengthRatio: o.maxLengthRatio, seed: o.seed, name: s.name })
      : pairCandidates({ minMargin: o.minMargin, maxPairsPerImage: o.maxPairsPerImage, maxLengthRatio: o.maxLengthRatio, strategy: o.strategy, name: s.name }),
});
