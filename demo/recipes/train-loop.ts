/**
 * The optimisation loop both pretraining recipes share: one compiled step graph (loss + grads,
 * weights fed from the ParamStore), AdamW with warmup + cosine decay, global-norm clipping,
 * a NaN/Inf stop, and a log line every few steps. Everything random comes from the caller's
 * seeded batch function, so a run is reproducible from its seed.
 *
 * The step runs in-process (ORT's session.run blocks this thread while it computes). That is
 * fine for an offline recipe with nothing else to serve; the pipeline trainer puts its step
 * graphs in a worker (DESIGN "ORT runs in worker threads").
 */
import type { CompiledGraph, Feed } from "../../src/graph/index.ts";
import type { ParamStore } from "../../src/graph/params.ts";
import { AdamW } from "../../src/train/adamw.ts";
import { clipCoefficient, globalGradNorm } from "../../src/train/clip-grad-norm.ts";
import { gradsOf } from "../../src/train/grads-of.ts";
import { lrSchedule } from "../../src/train/lr-schedule.ts";

/** Optimiser and schedule settings of a recipe. */
export interface OptimConfig {
  readonly steps: number;
  readonly lr: number;
  readonly warmupSteps: number;
  readonly minLr: number;
  readonly weightDecay: number;
  readonly maxGradNorm: number;
}

export interface StepLog {
  readonly step: number;
  readonly loss: number;
  readonly gradNorm: number;
  readonly lr: number;
  readonly seconds: number;
  /** Extra scalar outputs the caller asked to log. */
  readonly extra: Readonly<Record<string, number>>;
}

export interface LoopResult {
  /** Loss of every step, in order. */
  readonly losses: number[];
  readonly seconds: number;
}

/**
 * Run `config.steps` optimisation steps. `batch(step)` returns the data feeds of a step
 * (weights come from `store`); the step graph must output `loss` and `grad:<name>` for every
 * trainable param.
 * @example
 * const r = await trainLoop({ store, step, batch: (i) => feedsFor(i), config, log: (l) => console.log(l.loss) });
 */
export async function trainLoop(opts: {
  store: ParamStore;
  step: CompiledGraph;
  batch: (step: number) => Record<string, Feed> | Promise<Record<string, Feed>>;
  config: OptimConfig;
  /** Called every `logEvery` steps and on the last step. */
  log?: (l: StepLog) => void;
  logEvery?: number;
  /** Scalar outputs (besides loss) to report in the log. */
  extraOutputs?: readonly string[];
}): Promise<LoopResult> {
  const { store, step, config } = opts;
  const names = store.trainableNames();
  if (names.length === 0) throw new Error("trainLoop: the store has no trainable params");
  const opt = new AdamW(store, { weightDecay: config.weightDecay });
  const lrAt = lrSchedule({ kind: "cosine", lr: config.lr, warmupSteps: config.warmupSteps, totalSteps: Math.max(config.steps, config.warmupSteps + 1), minLr: config.minLr });
  const losses: number[] = [];
  const t0 = performance.now();
  const every = opts.logEvery ?? 10;
  for (let i = 0; i < config.steps; i++) {
    const feeds = await opts.batch(i);
    const out = await step.run(feeds);
    const loss = Number((out.loss?.data as Float32Array | undefined)?.[0]);
    if (!Number.isFinite(loss)) throw new Error(`trainLoop: loss is ${loss} at step ${i}; stopping (weights hold the last good step)`);
    const grads = gradsOf(out, names);
    const gradNorm = globalGradNorm(grads);
    if (!Number.isFinite(gradNorm)) throw new Error(`trainLoop: gradient norm is ${gradNorm} at step ${i}; stopping (weights hold the last good step)`);
    const lr = lrAt(i);
    await opt.step(grads, { lr, gradScale: clipCoefficient(gradNorm, config.maxGradNorm) });
    losses.push(loss);
    if (opts.log && (i % every === 0 || i === config.steps - 1)) {
      const extra: Record<string, number> = {};
      for (const k of opts.extraOutputs ?? []) {
        const v = out[k];
        if (v) extra[k] = Number((v.data as Float32Array)[0]);
      }
      opts.log({ step: i, loss, gradNorm, lr, seconds: (performance.now() - t0) / 1000, extra });
    }
  }
  return { losses, seconds: (performance.now() - t0) / 1000 };
}
