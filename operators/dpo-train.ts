/**
 * `dpoTrain`: the sink that sets the pipeline's pace. Each pairs batch (after `refLogps`) is
 * handed to the DpoTrainer, which runs every optimiser step that batch completes; the batch —
 * and with it its source credit — is released only when that work is done, so a slow trainer
 * slows the source instead of growing a queue (backpressure end to end). When the stream ends
 * the trainer steps the leftover pairs, runs the remaining epochs over its replay buffer,
 * writes the final checkpoint and exports the policy; then the stage completes.
 *
 * @example
 * stages: [..., refLogps({ scheduler, model: reference, images }),
 *          dpoTrain({ policy, images, loss: { beta: 0.1 }, lr: 5e-6, batchSize: 16,
 *                     checkpointDir: "out/ckpt", metricsPath: "out/metrics.jsonl", exportDir: "out/policy",
 *                     onFinish: (s) => report.training = s })]
 */
import { Observable } from "rxjs";
import { StageError, operate, type FlowOperator } from "../src/flow/index.ts";
import type { FlowBatch } from "../src/flow/index.ts";
import { join } from "node:path";
import { z } from "zod";
import { defineStage } from "../src/flow/stage.ts";
import { modelRef, nonNegativeInt, positiveInt, type StageServices } from "./services.ts";
import type { DpoLossTerm } from "../src/train/dpo-loss-config.ts";
import { DpoTrainer, checkResumeConfig, type DpoTrainSummary, type DpoTrainerOptions } from "../src/train/dpo-trainer.ts";
import { pixelLookup, type ImageStoreLike, type PixelLookup } from "../src/train/pixel-lookup.ts";

export interface DpoTrainOptions extends Omit<DpoTrainerOptions, "pixels"> {
  /** Where the pairs' images are (the flow's ImageStore, or any id -> pixels lookup). */
  images: ImageStoreLike | PixelLookup;
  /** Called with the trainer as soon as it exists (e.g. to read `metrics.lines` for progress). */
  onTrainer?: (trainer: DpoTrainer) => void;
  /** Called with the run summary (steps, metrics, checkpoint, export) after the last step. */
  onFinish?: (summary: DpoTrainSummary) => void;
  name?: string;
}

/** The `dpoTrain` operator; `resumeInfo` says what the trainer resumed from once it exists (the run report reads it). */
export type DpoTrainOperator = FlowOperator & { resumeInfo(): ReturnType<DpoTrainer["resumeInfo"]> | undefined };

export function dpoTrain(opts: DpoTrainOptions): DpoTrainOperator {
  const name = opts.name ?? "dpoTrain";
  const { images, onTrainer, onFinish, name: _name, ...trainerOpts } = opts;
  let made: DpoTrainer | undefined;
  const op = (source: Observable<FlowBatch>): Observable<FlowBatch> =>
    new Observable<FlowBatch>((sub) => {
      let trainer: Promise<DpoTrainer> | undefined;
      const getTrainer = () =>
        (trainer ??= DpoTrainer.create({ ...trainerOpts, pixels: pixelLookup(images) }).then((t) => {
          made = t;
          onTrainer?.(t);
          return t;
        }));
      let finished = false;
      // One batch at a time: the trainer is the pace-setter, concurrency would only queue.
      const inner = operate({ name, sink: true, concurrency: 1, idColumn: "image_id" }, () => ({
        process: async (fb, scope) => {
          const t = await getTrainer();
          await t.addPairs(fb.batch, (row, reason) => scope.reject(row, reason));
          return null;
        },
      }))(source).subscribe({
        next: (v) => sub.next(v),
        error: (e) => sub.error(e),
        complete: () => {
          getTrainer()
            .then((t) => t.finish())
            .then(
              (summary) => {
                finished = true;
                onFinish?.(summary);
                sub.complete();
              },
              (e: unknown) => sub.error(StageError.wrap(name, e)),
            );
        },
      });
      return () => {
        inner.unsubscribe();
        if (!finished && trainer) void trainer.then((t) => t.close()).catch(() => {});
      };
    });
  return Object.assign(op, { stageName: name, resumeInfo: () => made?.resumeInfo() });
}

/** The trainer settings a validated pipeline `dpoTrain` entry stands for (everything but models and paths). */
export type DpoTrainSettings = Pick<
  DpoTrainerOptions,
  "loss" | "lr" | "weightDecay" | "warmup" | "schedule" | "batchSize" | "gradAccum" | "maxGradNorm" | "epochs" | "replayBuffer" | "checkpointEvery" | "trainable" | "seed"
>;

/**
 * Maps the `dpoTrain` stage options (`dpoTrainOptions`) to trainer settings:
 * the loss-weight map plus `sftWeight` become the loss terms; trainable groups (`vision`,
 * `projector`, `lm`) are param-name prefixes.
 *
 * @example
 * dpoTrain({ ...dpoTrainSettings(stage.dpoTrain), policy, images, checkpointDir, metricsPath, exportDir })
 */
export function dpoTrainSettings(c: Omit<DpoTrainConfig, "model">): DpoTrainSettings {
  const terms: DpoLossTerm[] = Object.entries(c.loss).map(([type, weight]) => ({ type: type as DpoLossTerm["type"], weight: weight! }));
  if (c.sftWeight > 0) terms.push({ type: "sft", weight: c.sftWeight });
  return {
    loss: { beta: c.beta, terms, labelSmoothing: c.labelSmoothing, ipoLengthNormalise: c.ipoLengthNormalise },
    lr: c.lr,
    weightDecay: c.weightDecay,
    warmup: c.warmup,
    schedule: c.schedule,
    batchSize: c.batchSize,
    gradAccum: c.gradAccum,
    maxGradNorm: c.maxGradNorm,
    epochs: c.epochs,
    replayBuffer: c.replayBuffer,
    checkpointEvery: c.checkpointEvery,
    trainable: [...c.trainable],
    seed: c.seed,
  };
}

/** DPO-family losses (TRL names); `loss` may combine several with weights. */
export const dpoLossNames = ["sigmoid", "ipo", "hinge", "robust"] as const;
export type DpoLossName = (typeof dpoLossNames)[number];
/** Normalised loss: weight per loss type, e.g. `{ sigmoid: 1 }`. */
export type DpoLossWeights = Partial<Record<DpoLossName, number>>;

/** `loss: sigmoid` or `loss: { sigmoid: 1, hinge: 0.5 }`, normalised to the weights map. */
const dpoLoss = () =>
  z.unknown().transform((value, ctx): DpoLossWeights => {
    const fail = (message: string, path: PropertyKey[] = []) => {
      ctx.addIssue({ code: "custom", message, path });
      return z.NEVER;
    };
    const known = dpoLossNames as readonly string[];
    const hint = (name: string) => (name === "sft" ? "; the sft (RPO) term is set with sftWeight" : "");
    if (typeof value === "string") {
      if (!known.includes(value)) return fail(`unknown loss ${JSON.stringify(value).slice(0, 40)}; known: ${known.join(", ")}${hint(value)}`);
      return { [value]: 1 };
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) return fail(`expected a loss name (${known.join(" | ")}) or a map of loss weights`);
    const out: DpoLossWeights = {};
    const entries = Object.entries(value);
    if (entries.length === 0) return fail("expected at least one loss weight");
    for (const [name, weight] of entries) {
      if (!known.includes(name)) return fail(`unknown loss ${JSON.stringify(name).slice(0, 40)}; known: ${known.join(", ")}${hint(name)}`, [name]);
      if (typeof weight !== "number" || !Number.isFinite(weight) || weight <= 0) return fail("expected a positive number", [name]);
      out[name as DpoLossName] = weight;
    }
    return out;
  });

/** Parameter groups of the policy; vision stays frozen by default. */
export const trainableGroups = ["vision", "projector", "lm"] as const;

/**
 * Pipeline options of `dpoTrain`. `sftWeight` defaults to 1 (an SFT term on the chosen answer,
 * RPO): plain DPO (0) cut the shapes policy's Cover from 83% to 60% in the shipped experiments.
 */
export const dpoTrainOptions = z.strictObject({
  model: modelRef(),
  loss: dpoLoss().default({ sigmoid: 1 }),
  beta: z.number().positive().default(0.1),
  /** ε, the assumed share of flipped labels, for `sigmoid` (cDPO) and `robust`; below 0.5. */
  labelSmoothing: z.number().gte(0).lt(0.5).default(0),
  /** Weight of an SFT (NLL) term on the chosen answer (RPO); 0 disables it. */
  sftWeight: z.number().nonnegative().default(1),
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
  /** Checkpoint every N optimiser steps (0: only at the end), into the output folder. */
  checkpointEvery: nonNegativeInt().default(100),
  trainable: z.array(z.enum(trainableGroups)).min(1).default(["projector", "lm"]),
  seed: nonNegativeInt().default(0),
});
type DpoTrainConfig = z.output<typeof dpoTrainOptions>;

/** Files the trainer writes under the output folder (the host's resume and report read them). */
export const DPO_TRAIN_FILES = {
  /** One JSON line per optimiser step (TRL metric names). */
  metrics: "metrics.jsonl",
  /** Trainer checkpoints (`step-NNNNNN/`, `latest`). */
  checkpoints: "checkpoints",
  /** The trained policy, exported at the end of training. */
  policy: "policy",
} as const;

/** The `dpoTrain` stage definition: the sink that sets the pipeline's pace. */
export const dpoTrainStage = defineStage<typeof dpoTrainOptions, StageServices>({
  name: "dpoTrain",
  role: "sink",
  optionsSchema: dpoTrainOptions,
  modelRefs: { model: "lvlm" },
  create: async (o, s) => {
    const opts = {
      ...dpoTrainSettings(o),
      policy: await s.services.lvlm(o.model),
      images: s.services.images(),
      checkpointDir: join(s.outDir, DPO_TRAIN_FILES.checkpoints),
      metricsPath: join(s.outDir, DPO_TRAIN_FILES.metrics),
      exportDir: join(s.outDir, DPO_TRAIN_FILES.policy),
      resume: s.resume,
      allowConfigChange: s.allowConfigChange,
      log: (m: string) => s.log(m),
      ...(s.services.threads !== undefined ? { threads: s.services.threads } : {}),
      name: s.name,
    };
    // The trainer itself is made on the first pairs batch, after generation began; a resume with
    // a changed configuration must be refused here, at set-up, before any work (exit 2).
    if (s.resume) checkResumeConfig({ ...opts, pixels: pixelLookup(opts.images) });
    return dpoTrain(opts);
  },
});
