/**
 * Public surface of src/train: the optimiser, schedules, clipping, the DPO loss family and the
 * DPO trainer with checkpoints. Explicit named exports only.
 *
 * @example
 * import { AdamW, lrSchedule, dpoLoss } from "../train/index.ts";
 * const lr = lrSchedule({ kind: "cosine", lr: 1e-4, warmupSteps: 10, totalSteps: 100 });
 */
export { AdamW, adamwTsKernel, adamwUpdateTs, OptimizerError } from "./adamw.ts";
export type { AdamWConfig, AdamWKernel, AdamWScalars, AdamWSlot, AdamWStepOptions } from "./adamw.ts";
export { AdamWOnnxKernel, adamwOnnxKernel, buildAdamWGraph } from "./adamw-onnx.ts";
export { lrSchedule } from "./lr-schedule.ts";
export type { LrScheduleConfig } from "./lr-schedule.ts";
export { clipCoefficient, clipGradNorm, globalGradNorm } from "./clip-grad-norm.ts";
export { GradAccumulator } from "./grad-accumulator.ts";
export { gradsOf } from "./grads-of.ts";
export { DPO_LOSS_TYPES, DPO_METRICS, resolveDpoLossConfig } from "./dpo-loss-config.ts";
export type { DpoLossConfig, DpoLossTerm, DpoLossType, DpoMetricName, ResolvedDpoLossConfig } from "./dpo-loss-config.ts";
export { dpoLoss, dpoOutputs, hingeDpoLoss, ipoLoss, logSigmoidPair, robustDpoLoss, sftLoss, sigmoidDpoLoss } from "./losses.ts";
export type { DpoLossInputs, DpoLossOutputs } from "./losses.ts";
export { dpoLossReference, logSigmoid } from "./losses-reference.ts";
export type { DpoLossReferenceInputs, DpoLossResult } from "./losses-reference.ts";
export { DpoResumeConfigError, DpoTrainer, DpoTrainingStopped, pairKey } from "./dpo-trainer.ts";
export type { DpoTrainerOptions, DpoTrainSummary } from "./dpo-trainer.ts";
export { DpoNonFiniteError } from "./dpo-engine.ts";
export type { StepMetrics } from "./dpo-engine.ts";
export { CheckpointError, latestCheckpoint, listCheckpoints, readCheckpointState, resumeCandidates, writeCheckpoint } from "./checkpoint.ts";
export { MetricsLog, readMetricsLog } from "./metrics-log.ts";
export type { MetricsLine } from "./metrics-log.ts";
