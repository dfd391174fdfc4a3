/**
 * The public stages of clipflow: each a RxJS operator over FlowBatches (or, for `source`, a
 * credit-gated observable), usable from plain RxJS code. Explicit named exports only.
 *
 * @example
 * import { source, decode, clipScore, filter, pairs, write } from "./operators/index.ts";
 */
export { source, sourceBatches, sourceBadRows } from "./source.ts";
export type { SourceSpec } from "./source.ts";
export { decode } from "./decode.ts";
export type { DecodeOptions } from "./decode.ts";
export { clipScore, clipScoreOf, splitSentences } from "./clip-score.ts";
export type { ClipScoreOptions } from "./clip-score.ts";
export { filter, countWords, FILTER_REASONS, DEFAULT_TEXT_PROMPTS, DEFAULT_NO_TEXT_PROMPTS } from "./filter.ts";
export type { FilterOptions, FilterCounts, FilterReason } from "./filter.ts";
export { pairs, groupPairs, lengthRatio } from "./pairs.ts";
export type { PairsOptions, PairsCounts, PairStrategy } from "./pairs.ts";
export { write, formatOf } from "./write.ts";
export type { WriteOptions, WriteResult } from "./write.ts";
export { trlSchema, trlParquetSchema } from "./trl-layout.ts";
export type { TrlRow, TrlMessage } from "./trl-layout.ts";
export { ScheduledClip, normalizeRows } from "./scheduled-clip.ts";
export type { ClipInfo } from "./scheduled-clip.ts";
export { generate, requestSeed } from "./generate.ts";
export type { GenerateStageOptions } from "./generate.ts";
export { refLogps, registerRefLogps } from "./ref-logps.ts";
export type { RefLogpsOptions } from "./ref-logps.ts";
export { dpoTrain, dpoTrainSettings } from "./dpo-train.ts";
export type { DpoTrainOptions, DpoTrainSettings } from "./dpo-train.ts";
export { baselinePairs } from "./baseline-pairs.ts";
export type { BaselinePairsOptions, BaselineStrategy } from "./baseline-pairs.ts";
