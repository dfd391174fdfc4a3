/**
 * clipflow's public surface for library use: the pieces a user embeds in their own code.
 * Explicit named exports only (no `export *`); the stages themselves are in operators/index.ts.
 *
 * @example
 * import { createFlowContext, consume, Scheduler, loadClip, loadPipeline } from "clipflow/src/index.ts";
 * import { source, decode, clipScore, filter, pairs, write } from "clipflow/operators/index.ts";
 */

// Arrow batch model
export {
  imagesSchema,
  pixelsSchema,
  candidatesSchema,
  scoredSchema,
  pairsSchema,
  refPairsSchema,
  metricsSchema,
  buildImages,
  buildPixels,
  buildCandidates,
  buildScored,
  buildPairs,
  buildMetrics,
  rowAt,
  rowById,
  float32View,
  columnTensor,
  takeRows,
  concatBatches,
} from "./arrow/index.ts";
export type { ImageRow, PixelsRow, CandidateRow, ScoredRow, PairRow, RefPairRow, MetricsRow } from "./arrow/index.ts";

// Flow: credits, the operator helper, the runner
export {
  CreditPool,
  createFlowContext,
  operate,
  mapBatch,
  filterRows,
  explodeRows,
  rebatch,
  consume,
  fromSource,
  runFlow,
  StageError,
  readDeadLetter,
} from "./flow/index.ts";
export type { FlowBatch, FlowContext, FlowContextOptions, FlowOperator, OnError, RunOptions, RunReport } from "./flow/index.ts";

// Compute engine
export { Graph, init, GraphError } from "./graph/index.ts";
export type { Tensor, DType, Dim, ParamSpec, InitSpec, CompiledGraph, TensorValue } from "./graph/index.ts";
export { ParamStore } from "./graph/params.ts";
export { loadSafetensors, saveSafetensors } from "./graph/safetensors.ts";

// Scheduler
export { Scheduler, Decoder, WorkerHost } from "./scheduler/scheduler.ts";
export type { SchedulerOptions, SchedulerStats, ModelStats } from "./scheduler/scheduler.ts";

// Models
export { loadClip, exportClip, loadLvlm, exportLvlm, ClipModel, LvlmModel, generate, preprocessImage, loadTokenizer } from "./models/index.ts";
export type { ClipConfig, LvlmConfig, Tokenizer, SamplingOptions } from "./models/index.ts";

// Training
export { AdamW, lrSchedule, clipGradNorm, dpoLoss, dpoLossReference, DpoTrainer } from "./train/index.ts";
export type { DpoLossConfig, DpoTrainerOptions } from "./train/index.ts";

// Shapes world
export { sceneAt, renderScene, captionScene, hallucinationMetrics, SPLITS } from "../demo/world/index.ts";
export type { Scene, Split } from "../demo/world/index.ts";

// Pipeline files
export { loadPipeline, parsePipeline, pipelineToYaml } from "./pipeline/loader.ts";
export type { ResolvedPipeline } from "./pipeline/loader.ts";
export { runPipeline } from "./pipeline/run.ts";
