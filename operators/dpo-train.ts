/**
 * `dpoTrain`: the sink that sets the pipeline's pace. Each pairs batch (after `refLogps`) is
 * handed to the DpoTrainer, which runs every optimiser step that batch completes; the batch —
 * and with it its source credit — is released only when that work is done, so a slow trainer
 * slows the source instead of growing a queue (DESIGN "Backpressure"). When the stream ends
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
import type { DpoTrainOptions as DpoTrainConfig } from "../src/pipeline/schema.ts";
import type { DpoLossTerm } from "../src/train/dpo-loss-config.ts";
import { DpoTrainer, type DpoTrainSummary, type DpoTrainerOptions } from "../src/train/dpo-trainer.ts";
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

export function dpoTrain(opts: DpoTrainOptions): FlowOperator {
  const name = opts.name ?? "dpoTrain";
  const { images, onTrainer, onFinish, name: _name, ...trainerOpts } = opts;
  const op = (source: Observable<FlowBatch>): Observable<FlowBatch> =>
    new Observable<FlowBatch>((sub) => {
      let trainer: Promise<DpoTrainer> | undefined;
      const getTrainer = () =>
        (trainer ??= DpoTrainer.create({ ...trainerOpts, pixels: pixelLookup(images) }).then((t) => {
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
  return Object.assign(op, { stageName: name });
}

/** The trainer settings a validated pipeline `dpoTrain` entry stands for (everything but models and paths). */
export type DpoTrainSettings = Pick<
  DpoTrainerOptions,
  "loss" | "lr" | "weightDecay" | "warmup" | "schedule" | "batchSize" | "gradAccum" | "maxGradNorm" | "epochs" | "replayBuffer" | "checkpointEvery" | "trainable" | "seed"
>;

/**
 * Maps the pipeline schema's `dpoTrain` options (src/pipeline/schema.ts) to trainer settings:
 * the loss-weight map plus `sftWeight` become the loss terms; trainable groups (`vision`,
 * `projector`, `lm`) are param-name prefixes.
 *
 * @example
 * dpoTrain({ ...dpoTrainSettings(stage.dpoTrain), policy, images, checkpointDir, metricsPath, exportDir })
 */
export function dpoTrainSettings(c: DpoTrainConfig): DpoTrainSettings {
  const terms: DpoLossTerm[] = Object.entries(c.loss).map(([type, weight]) => ({ type: type as DpoLossTerm["type"], weight }));
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
