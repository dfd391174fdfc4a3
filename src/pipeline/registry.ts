/**
 * The stage registry: the stages a pipeline file may name, composed from the stages' own
 * definitions (`defineStage`, src/flow/stage.ts) — the framework's (`operatorStages`,
 * operators/index.ts), the embedded demo's in place of three of them (`demoStages`,
 * demo/stages: the shapes-world source kind, the caption prompt set, the baseline pairs) and the
 * demo's recipe jobs. Each stage owns its option schema, model references, paths, factory and
 * count names; the registry only adapts a definition to the pipeline runner (`StageContext` →
 * `StageSetup`, the run's resources as the stage's services) and adds what a stage means to a
 * run that its definition does not say (`PIPELINE_ROLES`: the trainer, the pairs).
 *
 * Adding a stage = its file (a `defineStage`) + its entry in `operatorStages` (or
 * `demoStages`) + its test. No stage is ever looked up by importing a module named in a user
 * string: the map is the whole universe of stages.
 *
 * @example
 * const def = stageRegistry.pairs;
 * const opts: StageOptions<"pairs"> = def.optionsSchema.parse({ minMargin: 3 });
 */
import type { RecordBatch } from "apache-arrow";
import { dirname, extname } from "node:path";
import type { z } from "zod";
import { operatorStages, writeFormats, type StageServices, type WriteFormat } from "../../operators/index.ts";
import { demoStages } from "../../demo/stages/index.ts";
import { pretrainClipStageOptions, sftPolicyStageOptions } from "../../demo/recipes/options.ts";
import { runRecipeFile } from "../../demo/recipes/run.ts";
import type { FlowContext, FlowOperator } from "../flow/index.ts";
import { defineStage, type DefinedStage, type JobResult, type StageSetup } from "../flow/stage.ts";
import { ImageStore } from "../io/image-store.ts";
import type { ResolvedPipeline } from "./loader.ts";
import type { PipelineResources } from "./resources.ts";
import type { ModelKind } from "./schema.ts";

export type { JobResult } from "../flow/stage.ts";

/** What a stage factory receives besides its own options (the pipeline runner's side). */
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
  /** Fires on Ctrl-C / SIGTERM; long-running stages stop at a clean point. */
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

/**
 * A job stage is a whole step on its own, not a streaming operator (e.g. pretraining the shipped
 * CLIP). A pipeline is either a dataflow (a source first, operators after) or a list of jobs run
 * in order; the loader refuses a mix.
 */
export type JobFactory<Options> = (options: Options, context: Omit<StageContext, "flow">) => Promise<JobResult>;

/** One registry entry: the stage's definition as the pipeline runner uses it. */
export interface StageDefinition<Schema extends z.ZodType> {
  /** Strict zod schema of the stage's options, defaults included. */
  readonly optionsSchema: Schema;
  /** Whether the stage produces the flow's batches (it must come first, once). */
  readonly isSource: boolean;
  /** Option keys naming a `models` entry, with the model kind each needs. */
  readonly modelRefs?: Readonly<Record<string, ModelKind>>;
  /** Option keys holding input paths (resolved against the pipeline file's folder) and what must exist there. */
  readonly inputPaths?: Readonly<Record<string, "file" | "folder">>;
  /** Option keys holding output paths: resolved against `out.dir`. */
  readonly outputPaths?: readonly string[];
  /**
   * The operator factory. Undefined for a stage whose operator does not exist yet: the runner
   * reports it as "not implemented yet", never fakes one.
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
  /**
   * Cross-field rules of a pipeline file's entry, checked by the loader after the schema (paths
   * still as written); may fill a default that depends on other keys. Issue paths are relative to
   * the stage entry.
   */
  readonly check?: (options: z.output<Schema>) => StageIssue[];
  /** Fills defaults that depend on resolved (absolute) paths. */
  readonly resolvePaths?: (options: z.output<Schema>) => void;
}

/** A problem with one stage entry of a pipeline file (path relative to the entry). */
export interface StageIssue {
  readonly path: readonly PropertyKey[];
  readonly message: string;
  /** Point at the key (the whole entry) rather than its value. */
  readonly at?: "key";
}

/** What a run needs to know about a stage beyond its definition. */
interface PipelineRole<Options> {
  readonly trainer?: { readonly model: (options: Options) => string };
  readonly generator?: { readonly model: (options: Options) => string };
  readonly pairs?: { readonly rowName: (options: Options) => string };
  /** `counts` keys that are totals (neither drops nor notes). */
  readonly countTotals?: readonly string[];
  readonly check?: (options: Options) => StageIssue[];
  readonly resolvePaths?: (options: Options) => void;
}

/**
 * The run's bounded per-image store (decode fills it; clipScore, filter, write, refLogps and the
 * trainer read it). Sized well above the images alive at once: maxInFlight source batches.
 */
function imageStore(r: PipelineResources, p: ResolvedPipeline): ImageStore {
  const src = p.stages[0]?.options as { batchSize?: unknown } | undefined;
  const batch = typeof src?.batchSize === "number" ? src.batchSize : 32;
  return r.shared("images", () => new ImageStore({ capacity: Math.max(4096, 4 * p.flow.maxInFlight * batch) }));
}

/** The run's resources as the shipped stages' services. */
function servicesOf(ctx: Omit<StageContext, "flow">): StageServices {
  const r = ctx.resources;
  return {
    clip: (n) => r.clip(n),
    lvlm: (n) => r.lvlm(n),
    policy: (n) => r.policy(n),
    decoder: (n) => r.decoder(n),
    scheduler: r.scheduler,
    batchOptions: (extra) => r.batchOptions(extra),
    images: () => imageStore(r, ctx.pipeline),
    threads: ctx.pipeline.scheduler.threads,
  };
}

/** The pipeline runner's context as a stage's `StageSetup`. */
function setupOf(ctx: Omit<StageContext, "flow">, flow?: () => FlowContext): StageSetup<StageServices> {
  return {
    name: ctx.name,
    index: ctx.index,
    services: servicesOf(ctx),
    flow: flow ?? (() => {
      throw new Error(`stage ${ctx.name}: a job stage has no flow`);
    }),
    outDir: ctx.pipeline.out.dir,
    resume: ctx.resume,
    allowConfigChange: ctx.allowConfigChange,
    signal: ctx.signal,
    log: (line) => ctx.log(line),
    stages: ctx.pipeline.stages.map((s) => ({ name: s.name, options: s.options })),
  };
}

/** A stage definition adapted to the pipeline runner, with its run role. */
function adapt<Schema extends z.ZodType>(d: DefinedStage<Schema, StageServices>, role: PipelineRole<z.output<Schema>> = {}): StageDefinition<Schema> {
  const counts = Object.entries(d.counts ?? {});
  const create = d.create;
  const job = d.job;
  const outputKeys = d.outputPaths ?? [];
  return {
    optionsSchema: d.optionsSchema,
    isSource: d.role === "source",
    ...(d.modelRefs ? { modelRefs: d.modelRefs as Record<string, ModelKind> } : {}),
    ...(d.inputPaths ? { inputPaths: d.inputPaths } : {}),
    ...(d.outputPaths ? { outputPaths: d.outputPaths } : {}),
    ...(create ? { create: (o, ctx) => create(o, setupOf(ctx, () => ctx.flow())) } : {}),
    ...(job ? { job: (o, ctx) => job(o, setupOf(ctx)) } : {}),
    ...(d.role === "source"
      ? { expectedRows: d.expectedRows ?? ((o: z.output<Schema>) => { const c = (o as { count?: unknown }).count; return typeof c === "number" ? c : null; }) }
      : {}),
    rowPerSourceRow: d.role !== "source" && d.rowsPerSource === "one",
    ...(outputKeys.length > 0
      ? { outputs: (o: z.output<Schema>) => outputKeys.flatMap((k) => (typeof (o as Record<string, unknown>)[k] === "string" ? [(o as Record<string, string>)[k]!] : [])) }
      : {}),
    countTotals: role.countTotals ?? [],
    countLabels: Object.fromEntries(counts.map(([k, c]) => [k, c.label])),
    ...(role.trainer ? { trainer: role.trainer } : {}),
    ...(role.generator ? { generator: role.generator } : {}),
    ...(role.check ? { check: role.check } : {}),
    ...(role.resolvePaths ? { resolvePaths: role.resolvePaths } : {}),
    ...(role.pairs ? { pairs: role.pairs } : {}),
  };
}

/** The format a file name's extension says, if it is one of `writeFormats`. */
function formatFromExtension(path: string): WriteFormat | undefined {
  const ext = extname(path).toLowerCase();
  return (Object.keys(writeFormats) as WriteFormat[]).find((f) => (writeFormats[f] as readonly string[]).includes(ext));
}

/** `write`: exactly one of `path` and `stdout`; `format` from the extension when not given. */
function checkWrite(o: z.output<typeof operatorStages.write.optionsSchema>): StageIssue[] {
  if ((o.path === null) === !o.stdout) return [{ path: [], at: "key", message: o.stdout ? "give either path or stdout: true, not both" : "needs path or stdout: true" }];
  if (o.format !== null) return [];
  const inferred = o.stdout ? "arrow-stream" : formatFromExtension(o.path!);
  if (inferred === undefined) return [{ path: ["path"], message: `cannot infer format from "${extname(o.path!) || o.path}"; set format (${Object.keys(writeFormats).join(" | ")})` }];
  o.format = inferred;
  return [];
}

/** Runs a pretraining recipe (demo/recipes) with its resolved options; it writes the model folder `modelDir`. */
async function recipeJob(name: "pretrainClip" | "sftPolicy", options: { modelDir: string }, setup: Omit<StageSetup<StageServices>, "flow">, file: string): Promise<JobResult> {
  // Paths are absolute already (the loader resolved them), so the recipe runner keeps them as they are.
  const r = await runRecipeFile({ stages: [{ [name]: options }] }, { file, baseDir: dirname(file), command: `npx bun run pipeline ${file}`, log: (l) => setup.log(l) });
  return { outputs: [r.dir], metrics: r.metrics };
}

/** The recipe jobs as stages; the pipeline file is passed through the adapter below. */
function recipeStage<Schema extends z.ZodType<{ modelDir: string }>>(name: "pretrainClip" | "sftPolicy", schema: Schema, inputPaths?: Record<string, "file" | "folder">): StageDefinition<Schema> {
  const d = defineStage<Schema, StageServices>({
    name,
    role: "job",
    optionsSchema: schema,
    ...(inputPaths ? { inputPaths } : {}),
    outputPaths: ["modelDir"],
    // Replaced below: the recipe needs the pipeline file, which StageSetup does not carry.
    job: async () => ({ outputs: [], metrics: {} }),
  });
  const adapted = adapt(d);
  return { ...adapted, job: (o, ctx) => recipeJob(name, o, setupOf(ctx), ctx.pipeline.file) };
}

/**
 * Every stage a pipeline file may name, in pipeline order: the framework's stages, the demo's in
 * place of those it extends, then the recipe jobs.
 */
export const stageRegistry = {
  source: adapt(demoStages.source, {
    // LLaVA JSONL image paths are relative to the JSONL's folder unless `images` says otherwise.
    resolvePaths: (o) => {
      if (o.kind === "jsonl-llava" && o.images === null) o.images = dirname(o.path);
    },
  }),
  decode: adapt(operatorStages.decode),
  generate: adapt(demoStages.generate, { generator: { model: (o) => o.model } }),
  clipScore: adapt(operatorStages.clipScore),
  filter: adapt(operatorStages.filter, {
    check: (o) => (o.dropTextImages && o.model === null ? [{ path: ["dropTextImages"], message: "needs filter.model (a clip model) to detect text in images" }] : []),
  }),
  pairs: adapt(demoStages.pairs, {
    pairs: { rowName: (o) => (o.strategy === "random" ? "DPO on random pairs" : o.strategy === "oracle" ? "DPO on oracle pairs" : "CLIP-DPO") },
    countTotals: ["groups", "pairs"],
  }),
  write: adapt(operatorStages.write, { check: checkWrite }),
  refLogps: adapt(operatorStages.refLogps),
  dpoTrain: adapt(operatorStages.dpoTrain, { trainer: { model: (o) => o.model } }),
  pretrainClip: recipeStage("pretrainClip", pretrainClipStageOptions),
  sftPolicy: recipeStage("sftPolicy", sftPolicyStageOptions, { clip: "folder" }),
} as const;

export type StageRegistry = typeof stageRegistry;
export type StageName = keyof StageRegistry;
/** Validated options of stage `K`, defaults filled. */
export type StageOptions<K extends StageName> = z.output<StageRegistry[K]["optionsSchema"]>;
/** One resolved stage: its name, position and validated options. */
export type StageConfig = { [K in StageName]: { readonly name: K; readonly index: number; readonly options: StageOptions<K> } }[StageName];

/** Stage names in registry order. */
export const stageNames = Object.keys(stageRegistry) as StageName[];

/** The registry entry of stage `name`, with its option type erased (for code that walks every stage). */
export function definitionOf(name: StageName): StageDefinition<z.ZodType> {
  return stageRegistry[name] as unknown as StageDefinition<z.ZodType>;
}

/** The first stage of `stages` whose definition has hook `key`, with that hook. */
export function findStage<K extends keyof StageDefinition<z.ZodType>>(
  stages: readonly StageConfig[],
  key: K,
): { stage: StageConfig; hook: NonNullable<StageDefinition<z.ZodType>[K]> } | undefined {
  for (const stage of stages) {
    const hook = definitionOf(stage.name)[key];
    if (hook !== undefined && hook !== false) return { stage, hook: hook as NonNullable<StageDefinition<z.ZodType>[K]> };
  }
  return undefined;
}

/** Whether stage `name` is a job stage (runs on its own, not in a dataflow). */
export function isJobStage(name: StageName): boolean {
  return definitionOf(name).job !== undefined;
}

/** Whether `name` is a registered stage (narrowing). */
export function isStageName(name: string): name is StageName {
  return Object.hasOwn(stageRegistry, name);
}
