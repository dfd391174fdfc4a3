/**
 * The DPO trainer (main-thread side): takes pairs as they stream in, forms steps of
 * `batchSize × gradAccum` pairs, drives the step engine, logs TRL metrics, checkpoints and
 * resumes exactly, runs further epochs over a bounded replay buffer when the stream ends, and
 * exports the trained policy in the LVLM folder layout.
 *
 * Threads: by default the engine runs in a worker (dpo-engine-worker.ts) that owns the weights,
 * the AdamW state and the ORT step session; a step sends only the micro-batches (transferred,
 * not copied) and receives the metrics. Weights cross threads twice per run: once in, and once
 * out at export. Checkpoint files are written by the worker itself.
 *
 * Exact resume: a checkpoint holds weights, optimiser moments and step, the shuffle RNG, the
 * data position (pairs consumed from the stream, pending pairs, replay buffer with its pixels,
 * the epoch and its shuffled order). On resume the first `consumed` stream pairs are skipped
 * (the upstream is deterministic), so step k+1 sees the same batch, weights and optimiser state.
 */
import { join } from "node:path";
import { existsSync, writeFileSync } from "node:fs";
import type { RecordBatch } from "apache-arrow";
import { nameMatcher } from "../graph/params.ts";
import { exportLvlm } from "../models/lvlm-io.ts";
import type { LvlmModel } from "../models/lvlm-model.ts";
import { Rng } from "../util/rng.ts";
import type { AdamWConfig } from "./adamw.ts";
import { latestCheckpoint, writeCheckpoint } from "./checkpoint.ts";
import { buildDpoBatch, type DpoBatch, type PairRecord } from "./dpo-batch.ts";
import { DpoEngine, DpoNonFiniteError, type DpoEngineConfig, type DpoEngineLike, type StepMetrics } from "./dpo-engine.ts";
import { WorkerDpoEngine } from "./dpo-engine-worker.ts";
import type { DpoLossConfig } from "./dpo-loss-config.ts";
import { MetricsLog, readMetricsLog, type MetricsLine } from "./metrics-log.ts";
import type { PixelLookup } from "./pixel-lookup.ts";
import { DATA_FILE, ReplayBuffer, type ReplayState } from "./replay-buffer.ts";

export interface DpoTrainerOptions {
  /** The policy: tokenizer, config and starting weights (its store receives the trained weights at export). */
  policy: LvlmModel;
  /** Pixels by image id (the pipeline's PixelCache). */
  pixels: PixelLookup;
  loss: DpoLossConfig;
  lr: number;
  weightDecay?: number;
  optimizer?: Omit<AdamWConfig, "weightDecay">;
  /** Linear warmup steps (default 0). */
  warmup?: number;
  schedule?: "cosine" | "linear" | "constant";
  /**
   * Optimiser steps the cosine/linear schedule spans. Default: epochs × ⌈replayBuffer / (batchSize·gradAccum)⌉,
   * the most a bounded buffer can give per epoch (the stream length is unknown in advance).
   */
  totalSteps?: number;
  minLr?: number;
  /** Pairs per micro-batch (default 16). */
  batchSize?: number;
  /** Micro-batches per optimiser step (default 1). */
  gradAccum?: number;
  /** Global-norm clip; null disables (default 1). */
  maxGradNorm?: number | null;
  /** Passes over the data; passes after the first replay the buffer (default 1). */
  epochs?: number;
  /** Pairs kept for later epochs (default 4096). */
  replayBuffer?: number;
  /** Checkpoint every N steps (0: only at the end); needs `checkpointDir`. */
  checkpointEvery?: number;
  checkpointDir?: string;
  /** Checkpoints kept (default 2). */
  keepCheckpoints?: number;
  /** Resume from the newest checkpoint in `checkpointDir` when there is one (default true). */
  resume?: boolean;
  /** metrics.jsonl path (omit for in-memory metrics only). */
  metricsPath?: string;
  /** Export the trained policy here at the end (LVLM folder layout). */
  exportDir?: string;
  /** Param name patterns trained (default: the policy config's `trainable`, projector + LM). */
  trainable?: string[];
  /** Shuffle seed for replay epochs (default 0). */
  seed?: number;
  /** "worker" (default): step graphs in a worker thread; "inline": on this thread. */
  engine?: "worker" | "inline";
  /** ORT intra-op threads of the step session (default 1). */
  threads?: number;
  onStep?: (line: MetricsLine, m: StepMetrics) => void;
}

/** Training stopped on a NaN/Inf loss or gradient; the last good checkpoint was kept. */
export class DpoTrainingStopped extends Error {
  override name = "DpoTrainingStopped";
}

interface TrainerState extends ReplayState {
  format: 1;
  step: number;
  consumed: number;
  streamDone: boolean;
  epoch: number;
  order: number[] | null;
  orderPos: number;
  rng: number[];
}

export interface DpoTrainSummary {
  steps: number;
  pairsConsumed: number;
  epochs: number;
  metrics: MetricsLine[];
  checkpoint: string | undefined;
  exportDir: string | undefined;
  resumedFrom: string | undefined;
}

/**
 * @example
 * const trainer = await DpoTrainer.create({ policy, pixels: cache, loss: { beta: 0.1 }, lr: 5e-6, batchSize: 16,
 *   checkpointDir: "out/ckpt", checkpointEvery: 100, metricsPath: "out/metrics.jsonl", exportDir: "out/policy" });
 * for await (const b of pairsBatches) await trainer.addPairs(b);
 * const summary = await trainer.finish();
 */
export class DpoTrainer {
  readonly metrics: MetricsLog;
  private step = 0;
  private consumed = 0;
  /** Stream pairs seen in this process (compared with `skip` on resume). */
  private seen = 0;
  private skip = 0;
  private streamDone = false;
  private epoch = 0;
  private order: number[] | null = null;
  private orderPos = 0;
  private lastCheckpoint: string | undefined;
  private lastCheckpointStep = -1;
  private stopped: Error | undefined;
  private closed = false;

  private constructor(
    private readonly o: Required<Pick<DpoTrainerOptions, "batchSize" | "gradAccum" | "epochs" | "checkpointEvery">> & DpoTrainerOptions,
    private readonly engine: DpoEngineLike,
    private readonly buffer: ReplayBuffer,
    private rng: Rng,
    metrics: MetricsLog,
    readonly resumedFrom: string | undefined,
  ) {
    this.metrics = metrics;
  }

  static async create(opts: DpoTrainerOptions): Promise<DpoTrainer> {
    const batchSize = opts.batchSize ?? 16, gradAccum = opts.gradAccum ?? 1, epochs = opts.epochs ?? 1;
    const replayBuffer = opts.replayBuffer ?? 4096, checkpointEvery = opts.checkpointEvery ?? 0;
    for (const [k, v] of Object.entries({ batchSize, gradAccum, epochs, replayBuffer })) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`dpoTrain: ${k} must be an integer >= 1, got ${v}`);
    }
    if (!Number.isInteger(checkpointEvery) || checkpointEvery < 0) throw new Error(`dpoTrain: checkpointEvery must be an integer >= 0, got ${checkpointEvery}`);
    if (checkpointEvery > 0 && !opts.checkpointDir) throw new Error("dpoTrain: checkpointEvery needs checkpointDir");
    const policy = opts.policy;
    const patterns = opts.trainable ?? policy.cfg.trainable;
    const match = nameMatcher(patterns);
    const trainable = policy.store.names().filter(match);
    if (trainable.length === 0) throw new Error(`dpoTrain: trainable patterns [${patterns.join(", ")}] match no policy param`);
    policy.store.trainOnly(patterns);
    const stepPairs = batchSize * gradAccum;
    const warmup = opts.warmup ?? 0;
    const kind = opts.schedule ?? "cosine";
    const total = Math.max(warmup + 1, opts.totalSteps ?? epochs * Math.ceil(replayBuffer / stepPairs));
    const cfg: DpoEngineConfig = {
      lvlm: policy.cfg,
      loss: opts.loss,
      optimizer: { ...(opts.optimizer ?? {}), weightDecay: opts.weightDecay ?? 0 },
      schedule: kind === "constant" ? { kind, lr: opts.lr, warmupSteps: warmup } : { kind, lr: opts.lr, warmupSteps: warmup, totalSteps: total, minLr: opts.minLr ?? 0 },
      maxGradNorm: opts.maxGradNorm === undefined ? 1 : opts.maxGradNorm,
      trainable,
      threads: opts.threads ?? 1,
    };
    const engine: DpoEngineLike = (opts.engine ?? "worker") === "worker" ? await WorkerDpoEngine.create(cfg, policy.store) : await DpoEngine.create(cfg, policy.store);
    const S = policy.cfg.vision.imageSize;
    const buffer = new ReplayBuffer(replayBuffer, 3 * S * S);
    let rng = new Rng(opts.seed ?? 0);
    let resumedFrom: string | undefined;
    let state: TrainerState | undefined;
    try {
      if (opts.checkpointDir && (opts.resume ?? true)) {
        const ck = await latestCheckpoint(opts.checkpointDir);
        if (ck) {
          state = ck.state as TrainerState;
          if (state.format !== 1) throw new Error(`${ck.dir}: unsupported trainer state format ${JSON.stringify(state.format)}`);
          await engine.loadState(ck.dir);
          await buffer.restore(state, join(ck.dir, DATA_FILE));
          rng = Rng.fromState(state.rng);
          resumedFrom = ck.dir;
        }
      }
    } catch (e) {
      await engine.close();
      throw e;
    }
    let log: MetricsLog;
    if (state && opts.metricsPath && existsSync(opts.metricsPath)) {
      // Keep the lines up to the checkpoint; later ones belong to the interrupted run and will be redone.
      const kept = (await readMetricsLog(opts.metricsPath)).filter((l) => l.step <= state.step);
      writeFileSync(opts.metricsPath, kept.map((l) => `${JSON.stringify(l)}\n`).join(""));
      log = new MetricsLog(opts.metricsPath, { append: true });
      log.lines.push(...kept);
    } else log = new MetricsLog(opts.metricsPath);
    const t = new DpoTrainer({ ...opts, batchSize, gradAccum, epochs, checkpointEvery }, engine, buffer, rng, log, resumedFrom);
    if (state) {
      t.step = state.step;
      t.consumed = state.consumed;
      t.skip = state.consumed;
      t.streamDone = state.streamDone;
      t.epoch = state.epoch;
      t.order = state.order;
      t.orderPos = state.orderPos;
      t.lastCheckpoint = resumedFrom;
      t.lastCheckpointStep = state.step;
    }
    return t;
  }

  /** Optimiser steps completed. */
  get steps(): number {
    return this.step;
  }

  /** Stream pairs taken so far (including those skipped on resume). */
  get pairsConsumed(): number {
    return this.consumed;
  }

  get stepPairs(): number {
    return this.o.batchSize * this.o.gradAccum;
  }

  /**
   * Takes a pairs batch (pairs schema + ref_logp_chosen/ref_logp_rejected) and runs every step
   * that becomes complete. `reject(row, reason)` is called for rows that cannot be used (their
   * image is missing); without it such a row throws.
   */
  async addPairs(batch: RecordBatch, reject?: (row: number, reason: string) => void): Promise<void> {
    this.checkUsable();
    const col = (n: string) => {
      const c = batch.getChild(n);
      if (!c) throw new Error(`dpoTrain: pairs batch has no column '${n}' (has ${batch.schema.fields.map((f) => f.name).join(", ")}); run refLogps first`);
      return c;
    };
    const [img, prompt, chosen, rejected, rc, rr] = ["image_id", "prompt", "chosen", "rejected", "ref_logp_chosen", "ref_logp_rejected"].map(col) as [
      ReturnType<typeof col>, ReturnType<typeof col>, ReturnType<typeof col>, ReturnType<typeof col>, ReturnType<typeof col>, ReturnType<typeof col>,
    ];
    const keep = this.o.epochs > 1;
    for (let i = 0; i < batch.numRows; i++) {
      if (this.seen++ < this.skip) continue; // consumed before the checkpoint we resumed from
      const p: PairRecord = {
        imageId: String(img.get(i)),
        prompt: String(prompt.get(i)),
        chosen: String(chosen.get(i)),
        rejected: String(rejected.get(i)),
        refChosen: Number(rc.get(i)),
        refRejected: Number(rr.get(i)),
      };
      this.consumed++;
      try {
        this.buffer.admit(p, this.o.pixels, keep);
      } catch (e) {
        if (!reject) throw new Error(`dpoTrain: pair ${i} (image '${p.imageId}'): ${(e as Error).message}`);
        reject(i, (e as Error).message);
        continue;
      }
      if (this.buffer.pending.length >= this.stepPairs) {
        const pairs = this.buffer.takePending(this.stepPairs);
        await this.runStep(pairs, () => this.buffer.done(pairs));
      }
    }
  }

  /**
   * The stream ended: step the leftover pairs, run the remaining epochs over the replay buffer,
   * write the final checkpoint and export the policy.
   */
  async finish(): Promise<DpoTrainSummary> {
    this.checkUsable();
    this.streamDone = true;
    if (this.buffer.pending.length > 0) {
      const pairs = this.buffer.takePending(this.buffer.pending.length);
      await this.runStep(pairs, () => this.buffer.done(pairs));
    }
    for (let e = Math.max(this.epoch, 1); e < this.o.epochs; e++) {
      this.epoch = e;
      const replay = this.buffer.replay;
      if (replay.length === 0) break;
      const order = (this.order ??= this.rng.shuffle(Array.from({ length: replay.length }, (_, i) => i)));
      for (;;) {
        const idx = order.slice(this.orderPos, this.orderPos + this.stepPairs);
        this.orderPos += idx.length;
        const last = this.orderPos >= order.length;
        if (last) {
          // the epoch is complete once this step ran: a checkpoint taken in it starts the next one
          this.order = null;
          this.orderPos = 0;
          if (e + 1 < this.o.epochs) this.epoch = e + 1;
        }
        await this.runStep(idx.map((i) => replay[i]!), undefined, e);
        if (last) break;
      }
    }
    if (this.o.checkpointDir && this.lastCheckpointStep !== this.step) await this.checkpoint();
    let exportDir: string | undefined;
    if (this.o.exportDir) {
      await this.exportPolicy(this.o.exportDir);
      exportDir = this.o.exportDir;
    }
    await this.close();
    return {
      steps: this.step,
      pairsConsumed: this.consumed,
      epochs: this.o.epochs,
      metrics: this.metrics.lines,
      checkpoint: this.lastCheckpoint,
      exportDir,
      resumedFrom: this.resumedFrom,
    };
  }

  /** Copies the trained weights into the policy's store and writes the LVLM folder. */
  async exportPolicy(dir: string): Promise<void> {
    const w = await this.engine.weights();
    for (const [n, t] of Object.entries(w)) this.o.policy.store.require(n).data.set(t.data);
    await exportLvlm(this.o.policy, dir, { metadata: { dpo_steps: String(this.step) } });
  }

  /** Stops the engine (worker) without finishing; safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.engine.close();
  }

  private checkUsable(): void {
    if (this.stopped) throw this.stopped;
    if (this.closed) throw new Error("dpoTrain: trainer is closed");
  }

  private microBatches(pairs: readonly PairRecord[]): DpoBatch[] {
    const out: DpoBatch[] = [];
    const px = (id: string) => this.buffer.pixels(id);
    for (let i = 0; i < pairs.length; i += this.o.batchSize) out.push(buildDpoBatch(pairs.slice(i, i + this.o.batchSize), this.o.policy, px));
    return out;
  }

  private async runStep(pairs: readonly PairRecord[], after?: () => void, epoch = this.epoch): Promise<void> {
    let m: StepMetrics;
    try {
      const micro = this.microBatches(pairs);
      after?.(); // pixels are copied into the batches: the pending pins can go
      m = await this.engine.step(micro);
    } catch (e) {
      if (e instanceof DpoNonFiniteError || (e as Error).name === "DpoNonFiniteError") {
        const kept = this.lastCheckpoint ? `last good checkpoint kept: ${this.lastCheckpoint}` : "no checkpoint was written yet";
        this.stopped = new DpoTrainingStopped(`dpoTrain: stopped: ${(e as Error).message}; ${kept}`);
        await this.close();
        throw this.stopped;
      }
      throw e;
    }
    this.step = m.step;
    const line = { step: m.step, epoch, loss: m.loss, grad_norm: m.grad_norm, learning_rate: m.learning_rate } as MetricsLine;
    for (const k of ["rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected"] as const) line[k] = m[k];
    this.metrics.add(line);
    this.o.onStep?.(line, m);
    if (this.o.checkpointEvery > 0 && this.step % this.o.checkpointEvery === 0) await this.checkpoint();
  }

  private async checkpoint(): Promise<void> {
    const root = this.o.checkpointDir!;
    const state: TrainerState = {
      format: 1,
      step: this.step,
      consumed: this.consumed,
      streamDone: this.streamDone,
      epoch: this.epoch,
      order: this.order,
      orderPos: this.orderPos,
      rng: this.rng.state(),
      ...this.buffer.state(),
    };
    this.lastCheckpoint = await writeCheckpoint(
      root,
      this.step,
      async (dir) => {
        await this.engine.saveState(dir);
        await this.buffer.savePixels(join(dir, DATA_FILE));
      },
      state,
      { keep: this.o.keepCheckpoints ?? 2 },
    );
    this.lastCheckpointStep = this.step;
  }
}
