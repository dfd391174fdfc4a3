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
import { describeValue } from "./issues.ts";
import { didYouMean } from "./suggest.ts";

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

/** Where a run writes its report, metrics, checkpoints and relative output paths. */
export const outSchema = z.strictObject({
  /**
   * Output folder, relative to the pipeline file when written in it. When omitted the loader uses
   * `runs/<file name without extension>` under the working directory.
   */
  dir: nonEmpty().optional(),
});

// ---------------------------------------------------------------------------------------------
// stages
//
// Each stage owns its option schema now (operators/*.ts, demo/stages/*.ts; the pipeline reads
// them through src/pipeline/registry.ts). The three below are LEGACY copies kept only because
// operators/source.ts, operators/generate.ts and test/operators/dpo-train.test.ts still import
// them; no pipeline file is validated with them. Remove them with those imports.

/**
 * Shapes-world splits, disjoint by construction. Mirrors `SPLITS` in demo/world/scene.ts
 * (clip-pretrain: CLIP training, sft: policy SFT, dpo: preference data, heldout: evaluation).
 */
export const worldSplits = ["clip-pretrain", "sft", "dpo", "heldout"] as const;
const split = () => z.enum(worldSplits);

/** Source of image rows. `batchSize` rows per emitted batch; `count` caps the rows (null: all). */
export const sourceOptions = z.discriminatedUnion("kind", [
  /** The built-in synthetic shapes world. */
  z.strictObject({
    kind: z.literal("shapes-world"),
    split: split().default("dpo"),
    count: positiveInt().default(1000),
    seed: nonNegativeInt().default(0),
    batchSize: positiveInt().default(32),
  }),
  /** An Arrow IPC file or stream (detected from its magic bytes) with the `images` schema. */
  z.strictObject({
    kind: z.literal("arrow"),
    path: nonEmpty(),
    count: positiveInt().nullable().default(null),
    batchSize: positiveInt().default(32),
  }),
  /** A Parquet file with the `images` schema. */
  z.strictObject({
    kind: z.literal("parquet"),
    path: nonEmpty(),
    count: positiveInt().nullable().default(null),
    batchSize: positiveInt().default(32),
  }),
  /**
   * LLaVA SFT JSONL (`{"id", "image", "conversations"}`); `images` is the folder the `image`
   * paths are relative to (null: the JSONL file's folder, filled in by the loader).
   */
  z.strictObject({
    kind: z.literal("jsonl-llava"),
    path: nonEmpty(),
    images: nonEmpty().nullable().default(null),
    count: positiveInt().nullable().default(null),
    batchSize: positiveInt().default(32),
  }),
  /** An Arrow IPC stream on stdin, to sit behind another dataflow. */
  z.strictObject({
    kind: z.literal("stdin"),
    count: positiveInt().nullable().default(null),
  }),
]);

/** The built-in set of caption prompts (the paper uses 5). */
export const captionPrompts = "caption";

/** n samples per image and prompt from the policy, through the continuous batcher. */
export const generateOptions = z.strictObject({
  model: modelRef(),
  /** `caption` (the built-in caption prompt set) or an explicit list of prompts. */
  prompts: z
    .union([z.literal(captionPrompts), z.array(nonEmpty()).min(1)], {
      error: 'expected "caption" or a non-empty list of prompt strings',
    })
    .default(captionPrompts),
  samples: positiveInt().default(8),
  /** 0 means greedy decoding. */
  temperature: z.number().nonnegative().default(1.0),
  topP: z.number().gt(0).lte(1).default(0.95),
  /** 0 disables top-k. */
  topK: nonNegativeInt().default(0),
  maxNewTokens: positiveInt().default(48),
  seed: nonNegativeInt().default(0),
});

/** DPO-family losses (TRL names); `loss` may combine several with weights. */
export const dpoLossNames = ["sigmoid", "ipo", "hinge", "robust"] as const;
export type DpoLossName = (typeof dpoLossNames)[number];
/** Normalised loss: weight per loss type, e.g. `{ sigmoid: 1 }`. */
export type DpoLossWeights = Partial<Record<DpoLossName, number>>;

/**
 * `loss: sigmoid` or `loss: { sigmoid: 1, hinge: 0.5 }`; always normalised to the weights map so
 * the resolved config shows exactly what is optimised. The trainer's loss terms are these
 * entries plus `{ sft: sftWeight }` when `sftWeight > 0`.
 */
const dpoLoss = () =>
  z.unknown().transform((value, ctx): DpoLossWeights => {
    const fail = (message: string, path: PropertyKey[] = []) => {
      ctx.addIssue({ code: "custom", message, path });
      return z.NEVER;
    };
    const known = dpoLossNames as readonly string[];
    const sftHint = (name: string) => (name === "sft" ? "; the sft (RPO) term is set with sftWeight" : "");
    if (typeof value === "string") {
      if (!known.includes(value))
        return fail(`unknown loss "${value}"${didYouMean(value, known)}; known: ${known.join(", ")}${sftHint(value)}`);
      return { [value]: 1 };
    }
    if (value === null || typeof value !== "object" || Array.isArray(value))
      return fail(`expected a loss name (${known.join(" | ")}) or a map of loss weights, got ${describeValue(value)}`);
    const out: DpoLossWeights = {};
    const entries = Object.entries(value);
    if (entries.length === 0) return fail("expected at least one loss weight");
    for (const [name, weight] of entries) {
      if (!known.includes(name))
        return fail(`unknown loss "${name}"${didYouMean(name, known)}; known: ${known.join(", ")}${sftHint(name)}`, [name]);
      if (typeof weight !== "number" || !Number.isFinite(weight) || weight <= 0)
        return fail(`expected a positive number, got ${describeValue(weight)}`, [name]);
      out[name as DpoLossName] = weight;
    }
    return out;
  });

/** Parameter groups of the policy; vision stays frozen by default. */
export const trainableGroups = ["vision", "projector", "lm"] as const;

/** Backpressured DPO trainer: the sink that sets the pipeline's pace. */
export const dpoTrainOptions = z.strictObject({
  model: modelRef(),
  loss: dpoLoss().default({ sigmoid: 1 }),
  beta: z.number().positive().default(0.1),
  /** ε, the assumed share of flipped labels, for `sigmoid` (cDPO) and `robust`; below 0.5. */
  labelSmoothing: z.number().gte(0).lt(0.5).default(0),
  /** Weight of an SFT (NLL) term on the chosen answer (RPO); 0 disables it. */
  sftWeight: z.number().nonnegative().default(0),
  /** IPO on per-token mean log-probs, as TRL does. */
  ipoLengthNormalise: z.boolean().default(true),
  lr: z.number().positive().default(5e-6),
  weightDecay: z.number().nonnegative().default(0),
  /** Linear warmup, in optimiser steps. */
  warmup: nonNegativeInt().default(0),
  schedule: z.enum(["cosine", "linear", "constant"]).default("cosine"),
  /** Pairs per micro-batch. */
  batchSize: positiveInt().default(16),
  /** Micro-batches per optimiser step. */
  gradAccum: positiveInt().default(1),
  /** Global-norm clipping threshold; null disables clipping. */
  maxGradNorm: z.number().positive().nullable().default(1.0),
  /** Passes over the replay buffer when the stream is finite. */
  epochs: positiveInt().default(1),
  /** Pairs kept for further epochs (bounded memory). */
  replayBuffer: positiveInt().default(4096),
  /** Checkpoint every N optimiser steps (0: only at the end), into `out.dir`. */
  checkpointEvery: nonNegativeInt().default(100),
  trainable: z.array(z.enum(trainableGroups)).min(1).default(["projector", "lm"]),
  seed: nonNegativeInt().default(0),
});

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
export type SourceOptions = z.output<typeof sourceOptions>;
export type GenerateOptions = z.output<typeof generateOptions>;
export type DpoTrainOptions = z.output<typeof dpoTrainOptions>;

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

/** Top-level sections and whether each is required. */
export const topLevelKeys = ["description", "models", "scheduler", "flow", "stages", "eval", "out", "variants", "cluster"] as const;
