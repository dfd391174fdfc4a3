/**
 * Schemas of clipflow pipeline files (zod v4), with every default spelled out so a resolved
 * pipeline can be printed in full ("defaults visible").
 *
 * A pipeline file has the sections `description`, `models`, `scheduler`, `flow`, `stages`,
 * `eval` and `out`. All objects are strict: an unknown key is an error. `models` entries and
 * `stages` entries are dispatched by hand in the loader (by `builtin`/`path` and by stage name)
 * so their errors name the right branch instead of a vague "invalid union".
 *
 * Path-valued options are plain strings here; the loader resolves them to absolute paths
 * (inputs against the pipeline file's folder, outputs against `out.dir`) and checks inputs exist.
 *
 * @example
 * const s = schedulerSchema.parse({ maxBatch: 8 });
 * // { device: "cpu", maxBatch: 8, maxDelayMs: 4, maxTokensInFlight: 8192, workers: 2, threads: 1 }
 */
import { z } from "zod";

const positiveInt = () => z.number().int().positive();
const nonNegativeInt = () => z.number().int().nonnegative();
const nonEmpty = () => z.string().min(1);
/** A key of the `models` section; the loader checks it exists and has the right kind. */
const modelRef = () => nonEmpty();

// ---------------------------------------------------------------------------------------------
// models

/** What a model is used as; stage options declare which kind each `model:` reference needs. */
export type ModelKind = "clip" | "lvlm";

/** Built-in models trained on the shapes world and shipped with clipflow. */
export const builtinModels = { "shapes-clip": "clip", "shapes-lvlm": "lvlm" } as const satisfies Record<
  string,
  ModelKind
>;
export type BuiltinModelName = keyof typeof builtinModels;

/** `{ builtin: shapes-clip }` — a model shipped with clipflow. */
export const builtinModelSchema = z.strictObject({
  builtin: z.enum(Object.keys(builtinModels) as [BuiltinModelName, ...BuiltinModelName[]]),
});

/**
 * `{ path: ./hf/clip-vit-b32, format: hf-onnx }` — a model folder on disk: the Hugging Face ONNX
 * layout (`hf-onnx`), clipflow's own export (`clipflow`, ONNX graphs + safetensors), or a
 * Hugging Face image-text-to-text VLM export (`hf-onnx-vlm`, src/models/hf-vlm: a policy that
 * generates; training and refLogps need a clipflow policy).
 */
export const pathModelSchema = z.strictObject({
  path: nonEmpty(),
  format: z.enum(["hf-onnx", "clipflow", "hf-onnx-vlm"]).default("clipflow"),
});

export type BuiltinModelConfig = z.output<typeof builtinModelSchema>;
export type PathModelConfig = z.output<typeof pathModelSchema>;
export type ModelConfig = BuiltinModelConfig | PathModelConfig;

// ---------------------------------------------------------------------------------------------
// scheduler, flow, out

/** Inference scheduler settings (docs/architecture.md "Scheduler"). */
export const schedulerSchema = z.strictObject({
  /** `cpu` or `cuda:N` (needs the CUDA build of onnxruntime-node; never a silent CPU fallback). */
  device: z
    .string()
    .regex(/^(cpu|cuda:\d+)$/, { error: 'expected "cpu" or "cuda:N"' })
    .default("cpu"),
  /** Largest batch of one coalesced ORT call. */
  maxBatch: positiveInt().default(64),
  /** How long a partial batch may wait for more items. */
  maxDelayMs: z.number().nonnegative().default(4),
  /** Token budget of the continuous decoding batch. */
  maxTokensInFlight: positiveInt().default(8192),
  /** Worker threads owning ORT sessions (model replicas). */
  workers: positiveInt().default(2),
  /** ORT intra-op threads per worker; keep workers × threads at the core count. */
  threads: positiveInt().default(1),
});

/** Dataflow settings: credits and the bad-row policy (docs/architecture.md "Flow and backpressure"). */
export const flowSchema = z.strictObject({
  /** Source batches alive anywhere in the pipeline at once. */
  maxInFlight: positiveInt().default(8),
  /** `skip`: a bad row goes to the dead-letter file; `fail`: the run stops with its message. */
  onError: z.enum(["skip", "fail"]).default("skip"),
  /** Dead-letter Arrow file; relative to `out.dir`. */
  deadLetter: nonEmpty().default("dead-letter.arrow"),
});

/**
 * `cluster: { url: nats://HOST:PORT }` runs the per-image stages on NATS JetStream workers
 * (src/cluster; the CLI's --cluster URL sets `cluster.url`). Null: everything in one process.
 */
export const clusterSchema = z
  .strictObject({
    /** NATS server URL of the cluster. */
    url: z.string().regex(/^(nats|tls):\/\/[^\s]+$/, { error: 'expected "nats://HOST:PORT"' }),
    /** Milliseconds a work message may stay unacked between in-progress acks: a few times a batch's p95. */
    ackWaitMs: positiveInt().default(30_000),
    /** Deliveries of one work batch before it is dead-lettered with its reason. */
    maxDeliver: positiveInt().default(4),
    /** Work batches one worker runs at once. */
    workerConcurrency: positiveInt().default(2),
  })
  .nullable()
  .default(null);
export type ClusterConfig = NonNullable<z.output<typeof clusterSchema>>;

/** DPO references a round r ≥ 2 may train against (src/pipeline/rounds.ts explains both). */
export const ROUND_REFERENCES = ["previous", "sft"] as const;

/**
 * `rounds: { count: N, reference: previous | sft }` runs the file as N on-policy rounds (fresh
 * dpo-split scenes per round, generated with the previous round's policy; src/pipeline/rounds.ts).
 * Null or count 1: one run.
 */
export const roundsSchema = z
  .strictObject({
    /** Rounds to run, ≥ 1. */
    count: positiveInt(),
    /** DPO reference of rounds ≥ 2: the previous round's policy (default) or the starting policy. */
    reference: z.enum(ROUND_REFERENCES).default("previous"),
  })
  .nullable()
  .default(null);
export type RoundsSection = NonNullable<z.output<typeof roundsSchema>>;

/** Where a run writes its report, metrics, checkpoints and relative output paths. */
export const outSchema = z.strictObject({
  /**
   * Output folder, relative to the pipeline file when written in it. When omitted the loader uses
   * `runs/<file name without extension>` under the working directory.
   */
  dir: nonEmpty().optional(),
});

// ---------------------------------------------------------------------------------------------
// Stages own their option schemas (operators/*.ts, demo/stages/*.ts); the pipeline reads them
// through src/pipeline/registry.ts. Below: the sections around the stages.

/**
 * Shapes-world splits (the evaluation's scenes), disjoint by construction. Mirrors `SPLITS` in demo/world/scene.ts
 * (clip-pretrain: CLIP training, sft: policy SFT, dpo: preference data, heldout: evaluation).
 */
export const worldSplits = ["clip-pretrain", "sft", "dpo", "heldout"] as const;
const split = () => z.enum(worldSplits);

// ---------------------------------------------------------------------------------------------
// eval

/** Hallucination metrics (docs/evaluation.md): chair = CHAIR_i, hal = CHAIR_s, attr/rel = attribute/relation hallucination. */
export const evalMetrics = ["chair", "hal", "cover", "attr", "rel"] as const;

/** Evaluation of the policy on held-out shapes-world scenes (ground truth used only here). */
export const evalSchema = z.strictObject({
  /** Policy to evaluate; null: the `dpoTrain` stage's model, else the `generate` stage's. The loader fills it in. */
  model: modelRef().nullable().default(null),
  split: split().default("heldout"),
  count: positiveInt().default(200),
  seed: nonNegativeInt().default(0),
  /** Prompt to answer; null: the world's first caption prompt. */
  prompt: nonEmpty().nullable().default(null),
  maxNewTokens: positiveInt().default(48),
  /** 0 is greedy decoding. */
  temperature: z.number().nonnegative().default(0),
  metrics: z.array(z.enum(evalMetrics)).min(1).default(["chair", "hal", "cover", "attr"]),
});

export type SchedulerConfig = z.output<typeof schedulerSchema>;
export type FlowConfig = z.output<typeof flowSchema>;
export type EvalConfig = z.output<typeof evalSchema>;

// ---------------------------------------------------------------------------------------------
// variants

/**
 * One variant of a comparison: the pipeline with `set` overrides applied (the `--set` syntax),
 * run into `out.dir/<slug of name>/`; every variant's trained policy becomes a row of the
 * evaluation table, next to the starting policy.
 */
export const variantSchema = z.strictObject({
  /** Row label in the result table, e.g. "DPO on random pairs". */
  name: nonEmpty(),
  /** Overrides applied after the command line's, e.g. `[pairs.strategy=random]`. */
  set: z.array(nonEmpty()).default([]),
});
export type VariantConfig = z.output<typeof variantSchema>;

/** `variants:` — absent or null: a single run. */
export const variantsSchema = z.array(variantSchema).min(1).nullable().default(null);

/**
 * `seeds: { count: 3 }` (with `variants:`) runs every variant once per seed `first`, `first + 1`,
 * … (`count` seeds; `first` defaults to 1; `parallel` of them side by side, default 1) into
 * `out.dir/seed-<s>/<variant>/`. Seed s sets the
 * `seed` option of every stage that has one (compare.yaml: source, generate, pairs, dpoTrain);
 * the evaluation's scenes (`eval.seed`) stay the same. Null or absent: one run per variant.
 * src/pipeline/seeds.ts, docs/evaluation.md "Seeds".
 */
export const seedsSchema = z
  .strictObject({
    /** Seeds to run, ≥ 1 (`--set seeds.count=1` for a quick run). */
    count: positiveInt(),
    /** The first seed; the others follow it by 1. */
    first: nonNegativeInt().default(1),
    /**
     * Seeds whose runs go side by side (each seed's variants still run in order). One run of
     * the shapes pipelines keeps about one core busy, so 2 cores fit about 2–3 seeds at once.
     */
    parallel: positiveInt().default(1),
  })
  .nullable()
  .default(null);
export type SeedsSection = NonNullable<z.output<typeof seedsSchema>>;

/** Top-level sections and whether each is required. */
export const topLevelKeys = ["description", "models", "scheduler", "flow", "stages", "eval", "out", "variants", "seeds", "cluster", "rounds"] as const;
