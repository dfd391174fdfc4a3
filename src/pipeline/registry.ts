/**
 * The stage registry: an explicit typed map from stage name to its option schema, the model
 * references and paths the loader must check, and (once the operators land) its factory.
 *
 * Adding a stage = one entry here. No stage is ever looked up by importing a module named in a
 * user string: the map is the whole universe of stages.
 *
 * @example
 * const def = stageRegistry.pairs;
 * const opts: StageOptions<"pairs"> = def.optionsSchema.parse({ minMargin: 3 });
 */
import type { RecordBatch } from "apache-arrow";
import type { z } from "zod";
import type { FlowContext, FlowOperator } from "../flow/index.ts";
import {
  clipScoreOptions,
  decodeOptions,
  dpoTrainOptions,
  filterOptions,
  generateOptions,
  pairsOptions,
  refLogpsOptions,
  sourceOptions,
  writeOptions,
  type ModelKind,
} from "./schema.ts";
import { baselinePairs } from "../../operators/baseline-pairs.ts";
import { clipScore } from "../../operators/clip-score.ts";
import { decode } from "../../operators/decode.ts";
import { dpoTrain } from "../../operators/dpo-train.ts";
import { filter } from "../../operators/filter.ts";
import { generate } from "../../operators/generate.ts";
import { pairs } from "../../operators/pairs.ts";
import { refLogps } from "../../operators/ref-logps.ts";
import { sourceBadRows, sourceBatches } from "../../operators/source.ts";
import { write } from "../../operators/write.ts";
import { join } from "node:path";
import { ImageStore } from "../io/image-store.ts";
import { ConfigError } from "../util/errors.ts";
import type { DpoLossTerm } from "../train/dpo-loss-config.ts";
import { pretrainClipStageOptions, sftPolicyStageOptions } from "../../demo/recipes/options.ts";
import { runRecipeFile } from "../../demo/recipes/run.ts";
import { dirname } from "node:path";
import type { ResolvedPipeline } from "./loader.ts";
import { RUN_FILES } from "./run-files.ts";
import type { PipelineResources } from "./resources.ts";

/** What a stage factory receives besides its own options. */
export interface StageContext {
  /** The whole resolved pipeline (models, scheduler, flow, out). */
  readonly pipeline: ResolvedPipeline;
  /** Position of this stage in `pipeline.stages`. */
  readonly index: number;
  /**
   * The stage's unique name in the flow (metrics, dead-letter rows, errors): the stage name, or
   * `write-2` for the second `write` stage. Pass it to the operator as its `name`.
   */
  readonly name: string;
  /** The run's scheduler, models (loaded once) and shared objects (src/pipeline/resources.ts). */
  readonly resources: PipelineResources;
  /** The flow context; only callable once the flow has started (the source's iterator uses it). */
  flow(): FlowContext;
  /** Whether the run resumes from the newest checkpoint in `out.dir` (the CLI's --resume). */
  readonly resume: boolean;
  /** Resume even if the training configuration changed (the CLI's --allow-config-change). */
  readonly allowConfigChange: boolean;
  /** Fires on Ctrl-C; long-running stages stop at a clean point. */
  readonly signal: AbortSignal;
  /** Progress lines of long jobs (stderr in the CLI). */
  log(line: string): void;
}

/**
 * What a factory builds: the `source` stage returns the batches (pulled only against credits by
 * the runner), every other stage a FlowOperator (src/flow `operate`). An operator may carry
 * `counts` (rows per reason, e.g. a filter's drops) that the run report shows.
 */
export type StageInstance = FlowOperator | AsyncIterable<RecordBatch>;

/** Builds one stage from its validated options (async: it may load a model first). */
export type StageFactory<Options> = (options: Options, context: StageContext) => StageInstance | Promise<StageInstance>;

/** One registry entry. */
export interface StageDefinition<Schema extends z.ZodType> {
  /** Strict zod schema of the stage's options, defaults included. */
  readonly optionsSchema: Schema;
  /** Option keys naming a `models` entry, with the model kind each needs. */
  readonly modelRefs?: Readonly<Record<string, ModelKind>>;
  /** Option keys holding input paths (resolved against the pipeline file's folder) and what must exist there. */
  readonly inputPaths?: Readonly<Record<string, "file" | "folder">>;
  /** Option keys holding output paths: resolved against `out.dir`. */
  readonly outputPaths?: readonly string[];
  /**
   * The operator factory. Left undefined until the stage's operator (operators/*.ts) lands; the
   * runner must report a stage without a factory as "not implemented yet", never fake one.
   */
  readonly create?: StageFactory<z.output<Schema>>;
  /** Set instead of `create` for a job stage (see JobFactory). */
  readonly job?: JobFactory<z.output<Schema>>;
  /** Rows the stage will emit when its options say so (a source's `count`): progress ETAs. */
  readonly expectedRows?: (options: z.output<Schema>) => number | null;
  /** Receives one row per row the source emits (nothing filters before it): shares the source's total. */
  readonly rowPerSourceRow?: boolean;
  /**
   * Trains the policy `model(options)`: writes RUN_FILES.metrics, .checkpoints and .policy into
   * out.dir (a fresh run clears them, --resume continues them; the report reads them).
   */
  readonly trainer?: { readonly model: (options: z.output<Schema>) => string };
  /** Generates with the policy `model(options)`: the evaluation's default when there is no trainer. */
  readonly generator?: { readonly model: (options: z.output<Schema>) => string };
  /**
   * Emits preference pairs (`image_id`, `prompt`, `chosen`, `rejected`, `chosen_score`,
   * `rejected_score`): the report shows samples of its output and audits them; `rowName` is the
   * result-table name of a policy trained on them.
   */
  readonly pairs?: { readonly rowName: (options: z.output<Schema>) => string };
  /** Files the stage writes (resolved options), listed in the report's outputs. */
  readonly outputs?: (options: z.output<Schema>) => readonly string[];
  /** Keys of the operator's `counts` that are totals, not drop reasons. */
  readonly countTotals?: readonly string[];
  /** Readable names of `counts` keys in other units than rows (e.g. groups), shown as notes. */
  readonly countLabels?: Readonly<Record<string, string>>;
}

/** What a job stage leaves behind, for the run report. */
export interface JobResult {
  /** Folders or files written. */
  outputs: string[];
  /** Figures the job measured (e.g. a recipe's held-out metrics), shown in the report. */
  metrics: Record<string, unknown>;
}

/**
 * A job stage is a whole step on its own, not a streaming operator (e.g. pretraining the shipped
 * CLIP). A pipeline is either a dataflow (`source` first, operators after) or a list of jobs run
 * in order; the loader refuses a mix.
 */
export type JobFactory<Options> = (options: Options, context: Omit<StageContext, "flow">) => Promise<JobResult>;

function stage<Schema extends z.ZodType>(def: StageDefinition<Schema>): StageDefinition<Schema> {
  return def;
}

/**
 * The run's bounded per-image store (decode fills it; clipScore, filter, write, refLogps and the
 * trainer read it). Sized well above the images alive at once: maxInFlight source batches.
 */
function imageStore(ctx: StageContext): ImageStore {
  const src = ctx.pipeline.stages[0];
  const batch = src && "batchSize" in src.options ? src.options.batchSize : 32;
  return ctx.resources.shared("images", () => new ImageStore({ capacity: Math.max(4096, 4 * ctx.pipeline.flow.maxInFlight * batch) }));
}

/** The CLIP a filter needs for maxTokens or dropTextImages: its own `model`, else the first CLIP stage's. */
function filterClipName(ctx: StageContext, own: string | null): string | null {
  if (own !== null) return own;
  for (const s of ctx.pipeline.stages) if ((s.name === "clipScore" || s.name === "decode") && "model" in s.options) return s.options.model as string;
  return null;
}

/** Every stage a pipeline file may name, in pipeline order. */
export const stageRegistry = {
  source: stage({
    optionsSchema: sourceOptions,
    inputPaths: { path: "file", images: "folder" },
    expectedRows: (o) => o.count ?? null,
    // Bad rows are dead-lettered through the flow context, which exists once the flow starts.
    create: (o, ctx) => sourceBatches(o, (id, reason) => sourceBadRows(ctx.flow(), ctx.name)(id, reason)),
  }),
  decode: stage({
    optionsSchema: decodeOptions,
    modelRefs: { model: "clip" },
    rowPerSourceRow: true,
    create: async (o, ctx) => decode({ preprocess: (await ctx.resources.clip(o.model)).preprocess, store: imageStore(ctx), name: ctx.name }),
  }),
  generate: stage({
    optionsSchema: generateOptions,
    modelRefs: { model: "lvlm" },
    rowPerSourceRow: true,
    generator: { model: (o) => o.model },
    create: async (o, ctx) => {
      const { model, ...options } = o;
      return generate({ ...options, decoder: await ctx.resources.decoder(model), name: ctx.name });
    },
  }),
  clipScore: stage({
    optionsSchema: clipScoreOptions,
    modelRefs: { model: "clip" },
    create: async (o, ctx) => clipScore({ clip: await ctx.resources.clip(o.model), store: imageStore(ctx), w: o.w, sentences: o.sentences, name: ctx.name }),
  }),
  filter: stage({
    optionsSchema: filterOptions,
    modelRefs: { model: "clip" },
    countTotals: ["kept"],
    create: async (o, ctx) => {
      const clipName = o.dropTextImages || o.maxTokens !== null ? filterClipName(ctx, o.model) : null;
      if (o.maxTokens !== null && clipName === null) throw new ConfigError("maxTokens needs a CLIP tokenizer; set filter.model", { code: "bad option", where: { stage: ctx.name } });
      return filter({
        minScore: o.minScore,
        maxWords: o.maxWords,
        maxTokens: o.maxTokens,
        dropTextImages: o.dropTextImages,
        ...(clipName !== null ? { clip: await ctx.resources.clip(clipName) } : {}),
        store: imageStore(ctx),
        textThreshold: o.textThreshold,
        textPrompts: o.textPrompts,
        noTextPrompts: o.noTextPrompts,
        name: ctx.name,
      });
    },
  }),
  pairs: stage({
    optionsSchema: pairsOptions,
    pairs: { rowName: (o) => (o.strategy === "random" ? "DPO on random pairs" : o.strategy === "oracle" ? "DPO on oracle pairs" : "CLIP-DPO") },
    countTotals: ["groups", "pairs"],
    countLabels: {
      singleCandidate: "groups with one candidate",
      margin: "groups without a pair over minMargin",
      lengthRatio: "groups without a pair within maxLengthRatio",
      capped: "pairs over maxPairsPerImage",
    },
    create: (o, ctx) =>
      o.strategy === "random" || o.strategy === "oracle"
        ? baselinePairs({ strategy: o.strategy, minMargin: o.minMargin, maxPairsPerImage: o.maxPairsPerImage, maxLengthRatio: o.maxLengthRatio, seed: o.seed, name: ctx.name })
        : pairs({ minMargin: o.minMargin, maxPairsPerImage: o.maxPairsPerImage, maxLengthRatio: o.maxLengthRatio, strategy: o.strategy, name: ctx.name }),
  }),
  write: stage({
    optionsSchema: writeOptions,
    outputPaths: ["path"],
    outputs: (o) => (o.path ? [o.path] : []),
    create: (o, ctx) => write({ path: o.path, stdout: o.stdout, format: o.format, layout: o.layout, store: imageStore(ctx), name: ctx.name }),
  }),
  refLogps: stage({
    optionsSchema: refLogpsOptions,
    modelRefs: { model: "lvlm" },
    // Registered (weights baked) before any training step: the reference stays the starting policy.
    create: async (o, ctx) =>
      refLogps({
        scheduler: ctx.resources.scheduler,
        model: await ctx.resources.lvlm(o.model),
        images: imageStore(ctx),
        modelName: `${o.model}.ref.logps`,
        batching: ctx.resources.batchOptions({ priority: 1 }),
        name: ctx.name,
      }),
  }),
  dpoTrain: stage({
    optionsSchema: dpoTrainOptions,
    modelRefs: { model: "lvlm" },
    trainer: { model: (o) => o.model },
    create: async (o, ctx) => {
      const terms: DpoLossTerm[] = Object.entries(o.loss).map(([type, weight]) => ({ type: type as DpoLossTerm["type"], weight: weight! }));
      if (o.sftWeight > 0) terms.push({ type: "sft", weight: o.sftWeight });
      const out = ctx.pipeline.out.dir;
      return dpoTrain({
        policy: await ctx.resources.lvlm(o.model),
        images: imageStore(ctx),
        loss: { beta: o.beta, terms, labelSmoothing: o.labelSmoothing, ipoLengthNormalise: o.ipoLengthNormalise },
        lr: o.lr,
        weightDecay: o.weightDecay,
        warmup: o.warmup,
        schedule: o.schedule,
        batchSize: o.batchSize,
        gradAccum: o.gradAccum,
        maxGradNorm: o.maxGradNorm,
        epochs: o.epochs,
        replayBuffer: o.replayBuffer,
        checkpointEvery: o.checkpointEvery,
        checkpointDir: join(out, RUN_FILES.checkpoints),
        resume: ctx.resume,
        allowConfigChange: ctx.allowConfigChange,
        // "resumed from step N", checkpoint fall-backs and cleaned temp files go to the run's log.
        log: (line) => ctx.log(line),
        metricsPath: join(out, RUN_FILES.metrics),
        exportDir: join(out, RUN_FILES.policy),
        trainable: [...o.trainable],
        seed: o.seed,
        threads: ctx.pipeline.scheduler.threads,
        name: ctx.name,
      });
    },
  }),
  pretrainClip: stage({
    optionsSchema: pretrainClipStageOptions,
    outputPaths: ["modelDir"],
    job: (o, ctx) => recipeJob("pretrainClip", o, ctx),
  }),
  sftPolicy: stage({
    optionsSchema: sftPolicyStageOptions,
    inputPaths: { clip: "folder" },
    outputPaths: ["modelDir"],
    job: (o, ctx) => recipeJob("sftPolicy", o, ctx),
  }),
} as const;

/** Runs a pretraining recipe (demo/recipes) with its resolved options; it writes the model folder `modelDir`. */
async function recipeJob(name: "pretrainClip" | "sftPolicy", options: { modelDir: string }, ctx: Omit<StageContext, "flow">): Promise<JobResult> {
  const file = ctx.pipeline.file;
  // Paths are absolute already (the loader resolved them), so the recipe runner keeps them as they are.
  const r = await runRecipeFile({ stages: [{ [name]: options }] }, { file, baseDir: dirname(file), command: `bun run pipeline ${file}`, log: ctx.log });
  return { outputs: [r.dir], metrics: r.metrics };
}

export type StageRegistry = typeof stageRegistry;
export type StageName = keyof StageRegistry;
/** Validated options of stage `K`, defaults filled. */
export type StageOptions<K extends StageName> = z.output<StageRegistry[K]["optionsSchema"]>;
/** One resolved stage: its name, position and validated options. */
export type StageConfig = { [K in StageName]: { readonly name: K; readonly index: number; readonly options: StageOptions<K> } }[StageName];

/** Stage names in registry order. */
export const stageNames = Object.keys(stageRegistry) as StageName[];

/** Whether stage `name` is a job stage (runs on its own, not in a dataflow). */
export function isJobStage(name: StageName): boolean {
  return (stageRegistry[name] as StageDefinition<z.ZodType>).job !== undefined;
}

/** The registry entry of stage `name`, with its option type erased (for code that walks every stage). */
export function definitionOf(name: StageName): StageDefinition<z.ZodType> {
  return stageRegistry[name] as StageDefinition<z.ZodType>;
}

/** The first stage of `stages` whose definition has hook `key`, with that hook. */
export function findStage<K extends keyof StageDefinition<z.ZodType>>(
  stages: readonly StageConfig[],
  key: K,
): { stage: StageConfig; hook: NonNullable<StageDefinition<z.ZodType>[K]> } | undefined {
  for (const stage of stages) {
    const hook = definitionOf(stage.name)[key];
    if (hook !== undefined) return { stage, hook: hook as NonNullable<StageDefinition<z.ZodType>[K]> };
  }
  return undefined;
}

/** Whether `name` is a registered stage (narrowing). */
export function isStageName(name: string): name is StageName {
  return Object.hasOwn(stageRegistry, name);
}
