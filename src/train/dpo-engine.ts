/**
 * The DPO optimiser step, in-process: the policy's ParamStore, AdamW (warmup + cosine/linear
 * schedule), gradient accumulation over micro-batches, global-norm clipping, and the compiled
 * step graph (dpo-step-graph.ts). The trainer normally runs this inside a worker
 * (dpo-engine-worker.ts) so weights and optimiser state stay resident there and only batches
 * and metrics cross threads; tests and single-threaded tools use it directly.
 */
import { join } from "node:path";
import type { CompiledGraph } from "../graph/index.ts";
import { ParamStore } from "../graph/params.ts";
import { loadSafetensors, saveSafetensors } from "../graph/safetensors.ts";
import { lvlmConfig, type LvlmConfig, type LvlmConfigInput } from "../models/lvlm-config.ts";
import { AdamW, type AdamWConfig } from "./adamw.ts";
import { clipCoefficient, globalGradNorm } from "./clip-grad-norm.ts";
import { DPO_METRICS, type DpoLossConfig, type DpoMetricName } from "./dpo-loss-config.ts";
import { dpoBatchFeeds, type DpoBatch } from "./dpo-batch.ts";
import { DPO_IO, dpoStepGraph } from "./dpo-step-graph.ts";
import { GradAccumulator } from "./grad-accumulator.ts";
import { gradsOf } from "./grads-of.ts";
import { lrSchedule, type LrScheduleConfig } from "./lr-schedule.ts";
import { RuntimeError, type ClipflowErrorOptions } from "../util/errors.ts";

/** Everything the step needs besides the weights; plain data (it crosses to the worker). */
export interface DpoEngineConfig {
  lvlm: LvlmConfig | LvlmConfigInput;
  loss: DpoLossConfig;
  optimizer?: AdamWConfig;
  schedule: LrScheduleConfig;
  /** Global-norm clipping threshold; null disables clipping (the norm is still logged). */
  maxGradNorm: number | null;
  /** Param names that are trained; every other param is fed but frozen. */
  trainable: string[];
  /** ORT intra-op threads of the step session (default 1). */
  threads?: number;
}

/** One optimiser step's log line (TRL names) plus throughput counts. */
export type StepMetrics = Record<DpoMetricName, number> & {
  /** Optimiser steps completed, 1-based. */
  step: number;
  loss: number;
  grad_norm: number;
  learning_rate: number;
  /** Pairs and answer tokens (chosen + rejected) in the step. */
  pairs: number;
  tokens: number;
  /** Per-pair policy log-probs before the update, in batch order (chosen, rejected). */
  policyChosen: number[];
  policyRejected: number[];
};

/** The loss or the gradient norm was NaN/Inf: the step was not applied. */
export class DpoNonFiniteError extends RuntimeError {
  override name = "DpoNonFiniteError";
  constructor(message: string, opts: ClipflowErrorOptions = {}) {
    super(message, { code: "non-finite", ...opts });
  }
}

/** What the trainer drives: the in-process engine or its worker proxy. */
export interface DpoEngineLike {
  /** One optimiser step over the micro-batches (gradient accumulation when more than one). */
  step(micro: DpoBatch[]): Promise<StepMetrics>;
  /** Writes `model.safetensors` (all weights) and `optimizer.safetensors` into `dir`. */
  saveState(dir: string): Promise<void>;
  /** Restores weights and optimiser state written by saveState. */
  loadState(dir: string): Promise<void>;
  /** Copies of the current weights by name. */
  weights(): Promise<Record<string, { shape: number[]; data: Float32Array }>>;
  /** Optimiser steps completed. */
  stepCount(): Promise<number>;
  close(): Promise<void>;
}

export const MODEL_FILE = "model.safetensors";
export const OPTIMIZER_FILE = "optimizer.safetensors";

/**
 * @example
 * const engine = await DpoEngine.create(cfg, policy.store);
 * const m = await engine.step([buildDpoBatch(pairs, policy, pixelsOf)]);
 */
export class DpoEngine implements DpoEngineLike {
  private constructor(
    readonly cfg: LvlmConfig,
    readonly store: ParamStore,
    private readonly opt: AdamW,
    private readonly compiled: CompiledGraph,
    private readonly lrAt: (step: number) => number,
    private readonly maxGradNorm: number | null,
    private readonly acc: GradAccumulator,
  ) {}

  /** Builds and compiles the step graph over `store` (updated in place by the optimiser). */
  static async create(config: DpoEngineConfig, store: ParamStore): Promise<DpoEngine> {
    const cfg = lvlmConfig(config.lvlm);
    if (config.trainable.length === 0) throw new Error("DpoEngine: no trainable params");
    if (config.maxGradNorm !== null && !(config.maxGradNorm > 0)) throw new Error(`DpoEngine: maxGradNorm must be > 0 or null, got ${config.maxGradNorm}`);
    const lrAt = lrSchedule(config.schedule);
    const { graph, outputs, grads } = dpoStepGraph(cfg, config.loss, config.trainable);
    for (const p of graph.params()) {
      const have = store.require(p.name);
      if (have.shape.join() !== p.shape.join()) throw new Error(`DpoEngine: param '${p.name}' is [${have.shape}] in the store, the LVLM wants [${p.shape}]`);
    }
    const compiled = await graph.compile({ outputs, grads, params: store, threads: config.threads ?? 1 });
    const opt = new AdamW(store, config.optimizer ?? {}, config.trainable);
    return new DpoEngine(cfg, store, opt, compiled, lrAt, config.maxGradNorm, new GradAccumulator(config.trainable));
  }

  async step(micro: DpoBatch[]): Promise<StepMetrics> {
    if (micro.length === 0) throw new Error("DpoEngine.step: no micro-batches");
    const names = this.opt.names;
    const sums: Record<string, number> = { loss: 0 };
    for (const k of DPO_METRICS) sums[k] = 0;
    let pairs = 0, tokens = 0;
    const policyChosen: number[] = [], policyRejected: number[] = [];
    let grads: Record<string, Float32Array> | undefined;
    this.acc.reset();
    for (const b of micro) {
      const r = await this.compiled.run(dpoBatchFeeds(b, this.cfg.vision.imageSize));
      const w = b.pairs;
      for (const k of Object.keys(sums)) sums[k]! += w * (r[k]!.data as Float32Array)[0]!;
      pairs += w;
      for (const n of b.nTokens) tokens += n;
      policyChosen.push(...(r[DPO_IO.policyChosen]!.data as Float32Array));
      policyRejected.push(...(r[DPO_IO.policyRejected]!.data as Float32Array));
      const g = gradsOf(r, names);
      // Mean-reduced micro-batch losses weighted by their pairs = the gradient of the mean over the step.
      if (micro.length === 1) grads = g;
      else this.acc.add(g, w);
    }
    grads ??= this.acc.mean();
    const t = this.opt.stepCount;
    const loss = sums.loss! / pairs;
    const gradNorm = globalGradNorm(grads);
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
      throw new DpoNonFiniteError(`non-finite ${Number.isFinite(loss) ? `gradient norm ${gradNorm}` : `loss ${loss}`} at step ${t + 1}; the update was not applied`);
    }
    const lr = this.lrAt(t);
    const gradScale = this.maxGradNorm === null ? 1 : clipCoefficient(gradNorm, this.maxGradNorm);
    await this.opt.step(grads, { lr, gradScale });
    const metrics = { step: t + 1, loss, grad_norm: gradNorm, learning_rate: lr, pairs, tokens, policyChosen, policyRejected } as StepMetrics;
    for (const k of DPO_METRICS) metrics[k] = sums[k]! / pairs;
    return metrics;
  }

  async saveState(dir: string): Promise<void> {
    await this.store.save(join(dir, MODEL_FILE), { clipflow: "lvlm", trainable: JSON.stringify([...this.opt.names]) });
    const { tensors, metadata } = this.opt.stateTensors();
    await saveSafetensors(join(dir, OPTIMIZER_FILE), tensors, metadata);
  }

  async loadState(dir: string): Promise<void> {
    await this.store.loadInto(join(dir, MODEL_FILE));
    this.opt.loadStateTensors(await loadSafetensors(join(dir, OPTIMIZER_FILE)));
  }

  async weights(): Promise<Record<string, { shape: number[]; data: Float32Array }>> {
    const out: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const n of this.store.names()) {
      const p = this.store.require(n);
      out[n] = { shape: [...p.shape], data: p.data.slice() };
    }
    return out;
  }

  async stepCount(): Promise<number> {
    return this.opt.stepCount;
  }

  /** Nothing to free: the step session is shared through the graph session cache. */
  async close(): Promise<void> {}
}

/** A ParamStore over plain weights (e.g. received by the worker), trainable flags from `trainable`. */
export function storeFromWeights(weights: Record<string, { shape: number[]; data: Float32Array }>, trainable: readonly string[]): ParamStore {
  const s = new ParamStore();
  const tr = new Set(trainable);
  for (const [n, w] of Object.entries(weights)) s.add(n, w.shape, w.data, tr.has(n));
  return s;
}
