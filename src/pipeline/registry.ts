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
import type { OperatorFunction } from "rxjs";
import type { z } from "zod";
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
import type { ResolvedPipeline } from "./loader.ts";

/** What a stage factory receives besides its own options. */
export interface StageContext {
  /** The whole resolved pipeline (models, scheduler, flow, out). */
  readonly pipeline: ResolvedPipeline;
  /** Position of this stage in `pipeline.stages`. */
  readonly index: number;
}

/** Builds the RxJS operator of one stage from its validated options. */
export type StageFactory<Options> = (options: Options, context: StageContext) => OperatorFunction<RecordBatch, RecordBatch>;

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
}

function stage<Schema extends z.ZodType>(def: StageDefinition<Schema>): StageDefinition<Schema> {
  return def;
}

/** Every stage a pipeline file may name, in pipeline order. */
export const stageRegistry = {
  source: stage({ optionsSchema: sourceOptions, inputPaths: { path: "file", images: "folder" } }),
  decode: stage({ optionsSchema: decodeOptions, modelRefs: { model: "clip" } }),
  generate: stage({ optionsSchema: generateOptions, modelRefs: { model: "lvlm" } }),
  clipScore: stage({ optionsSchema: clipScoreOptions, modelRefs: { model: "clip" } }),
  filter: stage({ optionsSchema: filterOptions, modelRefs: { model: "clip" } }),
  pairs: stage({ optionsSchema: pairsOptions }),
  write: stage({ optionsSchema: writeOptions, outputPaths: ["path"] }),
  refLogps: stage({ optionsSchema: refLogpsOptions, modelRefs: { model: "lvlm" } }),
  dpoTrain: stage({ optionsSchema: dpoTrainOptions, modelRefs: { model: "lvlm" } }),
} as const;

export type StageRegistry = typeof stageRegistry;
export type StageName = keyof StageRegistry;
/** Validated options of stage `K`, defaults filled. */
export type StageOptions<K extends StageName> = z.output<StageRegistry[K]["optionsSchema"]>;
/** One resolved stage: its name, position and validated options. */
export type StageConfig = { [K in StageName]: { readonly name: K; readonly index: number; readonly options: StageOptions<K> } }[StageName];

/** Stage names in registry order. */
export const stageNames = Object.keys(stageRegistry) as StageName[];

/** Whether `name` is a registered stage (narrowing). */
export function isStageName(name: string): name is StageName {
  return Object.hasOwn(stageRegistry, name);
}
