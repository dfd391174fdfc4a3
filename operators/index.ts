/**
 * The public stages of clipflow: each an RxJS operator over FlowBatches (enter with
 * `fromBatches`, leave with `toBatches`, src/flow), plus a stage definition (`xxxStage`: name,
 * option schema, model refs, paths, factory, counts) that a registry composes. Names never
 * shadow RxJS exports. Explicit named exports only.
 *
 * @example
 * import { fromBatches, toBatches } from "clipflow/flow";
 * import { clipScore, filterCandidates, pairCandidates } from "clipflow/operators";
 * fromBatches(() => candidates()).pipe(clipScore({ clip, store }), filterCandidates({ minScore: 20 }), pairCandidates(), toBatches());
 */
import { clipScoreStage } from "./clip-score.ts";
import { decodeStage } from "./decode.ts";
import { dpoTrainStage } from "./dpo-train.ts";
import { filterStage } from "./filter.ts";
import { generateStage } from "./generate.ts";
import { pairsStage } from "./pairs.ts";
import { refLogpsStage } from "./ref-logps.ts";
import { sourceStage } from "./source.ts";
import { writeStage } from "./write.ts";

export { source, sourceBatches, sourceBadRows, sourceStage, sourceOptions, sourceKindSchemas, SOURCE_INPUT_PATHS } from "./source.ts";
export type { SourceSpec, SourceStageOptions } from "./source.ts";
export { decode, decodeStage, decodeOptions } from "./decode.ts";
export type { DecodeStageOptions } from "./decode.ts";
export { generateCandidates, generateStage, generateOptions, generateSamplingOptions, requestSeed } from "./generate.ts";
export type { GenerateCandidatesOptions, GenerateSampling } from "./generate.ts";
export { clipScore, clipScoreOf, splitSentences, clipScoreStage, clipScoreOptions } from "./clip-score.ts";
export type { ClipScoreOptions } from "./clip-score.ts";
export { filterCandidates, filterStage, filterOptions, countWords, FILTER_REASONS, DEFAULT_TEXT_PROMPTS, DEFAULT_NO_TEXT_PROMPTS } from "./filter.ts";
export type { FilterOptions, FilterCounts, FilterReason } from "./filter.ts";
export { pairCandidates, pairsStage, pairsOptions, groupPairs, lengthRatio, PAIRS_COUNTS } from "./pairs.ts";
export type { PairsOptions, PairsCounts, PairStrategy } from "./pairs.ts";
export { write, writeStage, writeOptions, writeFormats, formatOf } from "./write.ts";
export type { WriteStageOptions, WriteResult, WriteFormat } from "./write.ts";
export { trlSchema, trlParquetSchema } from "./trl-layout.ts";
export type { TrlRow, TrlMessage } from "./trl-layout.ts";
export { ScheduledClip, normalizeRows } from "./scheduled-clip.ts";
export type { ClipInfo } from "./scheduled-clip.ts";
export { refLogps, registerRefLogps, refLogpsStage, refLogpsOptions } from "./ref-logps.ts";
export type { RefLogpsOptions } from "./ref-logps.ts";
export { dpoTrain, dpoTrainSettings, dpoTrainStage, dpoTrainOptions, dpoLossNames, trainableGroups, DPO_TRAIN_FILES } from "./dpo-train.ts";
export type { DpoTrainOptions, DpoTrainSettings, DpoLossName, DpoLossWeights } from "./dpo-train.ts";
export type { StageServices } from "./services.ts";

/** Every shipped stage definition, keyed by stage name, in pipeline order. */
export const operatorStages = {
  source: sourceStage,
  decode: decodeStage,
  generate: generateStage,
  clipScore: clipScoreStage,
  filter: filterStage,
  pairs: pairsStage,
  write: writeStage,
  refLogps: refLogpsStage,
  dpoTrain: dpoTrainStage,
} as const;
