/**
 * clipflow's public surface for library use (package root `clipflow`): the pieces a user embeds
 * in their own code. Explicit named exports only (no `export *`). Subpaths: `clipflow/flow`,
 * `clipflow/operators` (the stages), `clipflow/scheduler`, `clipflow/models`, `clipflow/train`,
 * `clipflow/io`, `clipflow/demo` (the shapes world and its stages).
 *
 * @example
 * import { fromBatches, toBatches, Scheduler, loadPipeline } from "clipflow";
 * import { clipScore, filterCandidates, pairCandidates } from "clipflow/operators";
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

// Errors: one model for every clipflow error
export { ClipflowError, ConfigError, InputError, ModelFileError, RuntimeError, parseOptions, formatWhere, boundMessage, serializeError, deserializeError } from "./util/errors.ts";
export type { ErrorKind, ErrorWhere, SerializedError } from "./util/errors.ts";

// Flow: credits, the doors, the operator helper, stage definitions, the runner
export {
  CreditPool,
  createFlowContext,
  fromBatches,
  toBatches,
  operate,
  mapBatch,
  filterRows,
  explodeRows,
  rebatch,
  consume,
  fromSource,
  defineStage,
  runFlow,
  StageError,
  readDeadLetter,
} from "./flow/index.ts";
export type {
  FlowBatch,
  FlowContext,
  FlowContextOptions,
  FlowOperator,
  FromBatchesOptions,
  BatchInput,
  OnError,
  RunFlowOptions,
  RunReport,
  StageDefinition,
  StageSetup,
} from "./flow/index.ts";

// Compute engine
export { Graph, init, GraphError } from "./graph/index.ts";
export type { Tensor, DType, Dim, ParamSpec, InitSpec, CompiledGraph, TensorValue } from "./graph/index.ts";
export { ParamStore } from "./graph/params.ts";
export { loadSafetensors, saveSafetensors } from "./graph/safetensors.ts";

// Scheduler
export { Scheduler, Decoder, WorkerHost } from "./scheduler/index.ts";
export type { SchedulerOptions, SchedulerStats, ModelStats } from "./scheduler/index.ts";

// Models
export { loadClip, exportClip, loadLvlm, exportLvlm, ClipModel, LvlmModel, generate, preprocessImage, loadTokenizer, loadHfVlm, exportHfVlm, HfVlm, lvlmPolicy } from "./models/index.ts";
export type { ClipConfig, LvlmConfig, Tokenizer, SamplingOptions, PolicyModel } from "./models/index.ts";

// Training
export { AdamW, lrSchedule, clipGradNorm, dpoLoss, dpoLossReference, DpoTrainer } from "./train/index.ts";
export type { DpoLossConfig, DpoTrainerOptions } from "./train/index.ts";

// Pipeline files (the CLI's engine); the shapes world is the embedded demo: `clipflow/demo`
export { loadPipeline, parsePipeline, pipelineToYaml } from "./pipeline/loader.ts";
export type { ResolvedPipeline } from "./pipeline/loader.ts";
export { runPipeline } from "./pipeline/run.ts";
export type { RunPipelineOptions, RunResult } from "./pipeline/run.ts";
