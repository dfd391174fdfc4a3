/**
 * `defineStage`: how a stage describes itself to whatever composes stages (the pipeline files,
 * a user's own runner). A stage definition carries everything about the stage that is not the
 * per-batch work: its name, its option schema (defaults included), the options that name models
 * or paths, a factory that builds the operator (or the source batches, or a job), and what its
 * figures mean — count names and labels, whether counts are row drops, how many rows it sees
 * per input row (for progress totals) and a report hook. A composer drives everything from these
 * definitions and never needs to know a stage by its name.
 *
 * The factory gets the options already validated and a `StageSetup` from the host: the stage's
 * unique name in the flow, the flow context (once the flow runs), an abort signal, a logger,
 * the output folder, the other stages of the flow, and `services` — models, scheduler and
 * shared objects, typed by whoever defines the stage (operators/services.ts for the shipped ones).
 *
 * @example
 * const upper = defineStage({
 *   name: "upper",
 *   role: "operator",
 *   optionsSchema: z.strictObject({ column: z.string().default("text") }),
 *   create: (o, setup) => mapBatch(setup.name, (b) => withUpper(b, o.column)),
 * });
 * const opts = upper.parse({ column: "caption" }); // one-line ConfigError on a bad value
 */
import type { RecordBatch } from "apache-arrow";
import type { z } from "zod";
import { ConfigError, parseOptions, type ErrorWhere } from "../util/errors.ts";
import type { FlowContext } from "./context.ts";
import type { FlowOperator } from "./operate.ts";

/** What a stage is in a flow. */
export type StageRole = "source" | "operator" | "sink" | "job";

/** What the host hands a stage factory besides the stage's own options. */
export interface StageSetup<Services = unknown> {
  /** The stage's unique name in the flow (metrics, dead-letter rows, errors): pass it as the operator's `name`. */
  readonly name: string;
  /** Position of the stage in its flow. */
  readonly index: number;
  /** Models, scheduler and shared objects of the host (see the stage's `Services` type). */
  readonly services: Services;
  /** The flow context; callable only once the flow runs (a source's bad-row hook uses it). */
  flow(): FlowContext;
  /** The run's output folder (absolute); stages write their files under it. */
  readonly outDir: string;
  /** Whether the run resumes an earlier one (the trainer continues from its checkpoint). */
  readonly resume: boolean;
  /** Whether a resume may change training-relevant configuration. */
  readonly allowConfigChange: boolean;
  /** Fires on Ctrl-C / SIGTERM; long set-up work stops at a clean point. */
  readonly signal: AbortSignal;
  /** Progress lines of long jobs (stderr in the CLI). */
  log(line: string): void;
  /** Every stage of the flow (name and validated options), in order: e.g. a filter finds the CLIP of clipScore. */
  readonly stages: readonly { readonly name: string; readonly options: unknown }[];
}

/** What a factory builds: source batches, an operator, or (for a job) nothing streaming. */
export type StageInstance = FlowOperator | AsyncIterable<RecordBatch>;

/** What a job stage leaves behind, for the run report. */
export interface JobResult {
  /** Folders or files written. */
  outputs: string[];
  /** Figures the job measured, shown in the report. */
  metrics: Record<string, unknown>;
}

/** How to read one of the stage's `counts` entries. */
export interface CountInfo {
  /** Readable name in reports ("groups with one candidate"). */
  readonly label: string;
  /** Whether the count is rows dropped for this reason (adds up to the stage's filtered rows). */
  readonly drop: boolean;
}

/** How many rows the stage sees per source row, when known before the run (progress totals). */
export type RowsPerSource = "one" | "unknown";

export interface StageDefinition<Schema extends z.ZodType = z.ZodType, Services = unknown> {
  /** The stage's name in pipeline files and registries. */
  readonly name: string;
  readonly role: StageRole;
  /** Strict zod schema of the options, every default spelled out. */
  readonly optionsSchema: Schema;
  /** Option keys naming a model, with the model kind each needs ("clip", "lvlm"). */
  readonly modelRefs?: Readonly<Record<string, string>>;
  /** Option keys holding input paths (resolved against the pipeline file's folder) and what must exist there. */
  readonly inputPaths?: Readonly<Record<string, "file" | "folder">>;
  /** Option keys holding output paths, resolved against the output folder. */
  readonly outputPaths?: readonly string[];
  /** Builds the stage (async: it may load a model first). Absent for a job. */
  readonly create?: (options: z.output<Schema>, setup: StageSetup<Services>) => StageInstance | Promise<StageInstance>;
  /** A job stage: a whole step of its own (e.g. pretraining a model), not part of a dataflow. */
  readonly job?: (options: z.output<Schema>, setup: Omit<StageSetup<Services>, "flow">) => Promise<JobResult>;
  /** The keys of the operator's `counts` and how to read them. A key not listed is shown as is. */
  readonly counts?: Readonly<Record<string, CountInfo>>;
  /** Rows per source row, known before the run: "one" for decode and generate's input side. */
  readonly rowsPerSource?: RowsPerSource;
  /**
   * A source's row total known before the run (the progress display's denominator), or null
   * when unknown. Default: the options' `count`, when it is a number. A source whose `count`
   * counts something else than rows (candidates: groups of responses) says so here.
   */
  readonly expectedRows?: (options: z.output<Schema>) => number | null;
  /**
   * Figures for the run report, read from the built instance after the flow (e.g. write's
   * `{ rows, path, committed }`). The pipeline runner puts them in the stage's `figures` entry
   * of report.json; another host reads them with `stageFigures(instance)`.
   */
  readonly report?: (instance: StageInstance, options: z.output<Schema>) => Record<string, unknown>;
}

/** A stage definition plus `parse`, which validates options into one-line ConfigErrors. */
export type DefinedStage<Schema extends z.ZodType = z.ZodType, Services = unknown> = StageDefinition<Schema, Services> & {
  /** Validate raw options (defaults applied); a bad value is a ConfigError naming the stage and key path. */
  parse(raw: unknown, where?: ErrorWhere): z.output<Schema>;
};

const STAGE_NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;

/**
 * Declare a stage. Checks the definition itself (a name, a factory or a job matching the role)
 * so a mistake shows when the module loads, not in the middle of a run.
 *
 * @example
 * export const pairsStage = defineStage({ name: "pairs", role: "operator", optionsSchema: pairsOptions, create: (o, s) => buildPairs({ ...o, name: s.name }) });
 */
export function defineStage<Schema extends z.ZodType, Services = unknown>(def: StageDefinition<Schema, Services>): DefinedStage<Schema, Services> {
  const bad = (why: string): never => {
    throw new ConfigError(`stage definition "${def.name}": ${why}`, { code: "bad stage definition" });
  };
  if (!STAGE_NAME.test(def.name)) bad("the name must be a letter followed by letters, digits, '-' or '_'");
  if (def.role === "job" ? def.job === undefined || def.create !== undefined : def.create === undefined || def.job !== undefined) {
    bad(def.role === "job" ? "a job stage has `job` and no `create`" : "a non-job stage has `create` and no `job`");
  }
  const { create, report } = def;
  // The report hook needs the instance and its options after the flow; the host holds only the
  // instance, so the wrapped factory remembers both (weakly: a dropped instance takes them along).
  const remember = (inst: StageInstance, o: z.output<Schema>): StageInstance => {
    figuresOf.set(inst, () => report!(inst, o));
    return inst;
  };
  return Object.freeze({
    ...def,
    ...(create && report
      ? {
          create: (o: z.output<Schema>, setup: StageSetup<Services>) => {
            const built = create(o, setup);
            return built instanceof Promise ? built.then((inst) => remember(inst, o)) : remember(built, o);
          },
        }
      : {}),
    parse: (raw: unknown, where: ErrorWhere = {}) => parseOptions(def.optionsSchema, raw ?? {}, { stage: def.name, ...where }) as z.output<Schema>,
  });
}

const figuresOf = new WeakMap<StageInstance, () => Record<string, unknown>>();

/**
 * The report figures of an instance built by a defined stage's factory: its definition's
 * `report` hook applied to the instance and its options (call after the flow, when the figures
 * are final). Undefined for a stage without a report hook, or an instance no factory built.
 *
 * @example
 * const inst = await writeStage.create!(writeStage.parse({ path: "pairs.jsonl", layout: "plain" }), setup);
 * // … run the flow …
 * stageFigures(inst); // { rows: 12, path: "pairs.jsonl", committed: true }
 */
export function stageFigures(instance: StageInstance): Record<string, unknown> | undefined {
  return figuresOf.get(instance)?.();
}
