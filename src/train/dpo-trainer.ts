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
 * Exact resume, keyed by what was trained: a checkpoint holds weights, optimiser moments and
 * step, the shuffle RNG, the data position (the keys of every stream pair taken in the stream
 * epoch — trained or pending —, the pending pairs, the replay buffer with its pixels, the epoch
 * and its shuffled order) and the training-relevant configuration. On resume every arriving pair
 * whose key is in that set is skipped, whatever order the upstream delivers it in, so each pair is
 * trained exactly once; when the pairs not yet taken arrive in the same relative order as in an
 * uninterrupted run (a deterministic upstream), step k+1 sees the same batch, weights and
 * optimiser state and the final weights are equal. A pair's key is the first 8 bytes of
 * SHA-256 over (image_id, prompt, chosen, rejected): the pairs schema has no id column, and the
 * same four strings are the same training example. Resuming with another training configuration
 * is refused (naming the keys that differ) unless `allowConfigChange`.
 */
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { existsSync, writeFileSync } from "node:fs";
import type { RecordBatch } from "apache-arrow";
import { nameMatcher } from "../graph/params.ts";
import { exportLvlm } from "../models/lvlm-io.ts";
import type { LvlmModel } from "../models/lvlm-model.ts";
import { Rng } from "../util/rng.ts";
import { ConfigError, InputError, RuntimeError } from "../util/errors.ts";
import type { AdamWConfig } from "./adamw.ts";
import { removeStaleTemps } from "../io/atomic-file.ts";
import { CheckpointError, readCheckpointState, resumeCandidates, writeCheckpoint } from "./checkpoint.ts";
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
  /**
   * Resume even when the checkpoint was trained with another training configuration (lr, batch
   * size, loss, …); the differences are logged and listed in the summary (default false: refused).
   */
  allowConfigChange?: boolean;
  /** Where the trainer's messages go ("resumed from step N", fall-backs, cleaned temp files); default stderr. */
  log?: (message: string) => void;
}

/** Resume refused: the checkpoint was trained with another configuration (a ConfigError: exit 2). */
export class DpoResumeConfigError extends ConfigError {
  override name = "DpoResumeConfigError";
  constructor(
    message: string,
    /** `key: old -> new` for every differing key (dotted paths). */
    readonly differences: string[],
  ) {
    super(message, { code: "resume config changed" });
  }
}

function resumeConfigError(dir: string, diff: string[]): DpoResumeConfigError {
  return new DpoResumeConfigError(
    `dpoTrain: checkpoint ${dir} was trained with another configuration (${diff.join("; ")}); resume with the same settings, start a new output folder, or allow it (allowConfigChange / --allow-config-change)`,
    diff,
  );
}

/**
 * The training-relevant configuration a checkpoint stores (`state.json` `config`), from the
 * trainer options with their defaults applied. Resume compares it key by key.
 *
 * @example
 * trainingConfig({ policy, lr: 5e-6, loss }).batchSize // 16
 */
export function trainingConfig(opts: DpoTrainerOptions): Record<string, unknown> {
  const batchSize = opts.batchSize ?? 16, gradAccum = opts.gradAccum ?? 1, epochs = opts.epochs ?? 1;
  const replayBuffer = opts.replayBuffer ?? 4096, warmup = opts.warmup ?? 0;
  const total = Math.max(warmup + 1, opts.totalSteps ?? epochs * Math.ceil(replayBuffer / (batchSize * gradAccum)));
  return {
    loss: opts.loss, lr: opts.lr, weightDecay: opts.weightDecay ?? 0, optimizer: opts.optimizer ?? {}, warmup, schedule: opts.schedule ?? "cosine",
    totalSteps: total, minLr: opts.minLr ?? 0, batchSize, gradAccum, maxGradNorm: opts.maxGradNorm === undefined ? 1 : opts.maxGradNorm,
    epochs, replayBuffer, trainable: opts.trainable ?? opts.policy.cfg.trainable, seed: opts.seed ?? 0,
  };
}

/**
 * Set-up check for a resumed run, before any data flows: the first readable checkpoint resume
 * would try (`latest`, then older complete ones) must have been trained with the configuration
 * `opts` gives. Throws `DpoResumeConfigError` (exit 2) naming the differing keys unless
 * `allowConfigChange`; returns the differences (empty when none, or nothing to resume from).
 * `DpoTrainer.create` applies the same comparison to the checkpoint it actually loads.
 *
 * @example
 * checkResumeConfig({ ...trainerOpts, resume: true }) // [] or throws
 */
export function checkResumeConfig(opts: DpoTrainerOptions): string[] {
  if (!opts.checkpointDir || !(opts.resume ?? true)) return [];
  const config = trainingConfig(opts);
  for (const c of resumeCandidates(opts.checkpointDir)) {
    let st: TrainerState;
    try {
      st = readCheckpointState(c.dir) as TrainerState;
    } catch {
      continue; // unreadable: create() falls back past it and reports why
    }
    if (st === null || typeof st !== "object" || (st.format !== 1 && st.format !== 2)) continue;
    if (st.format === 1) return [];
    const diff = configDifferences(st.config ?? {}, config);
    if (diff.length > 0 && !opts.allowConfigChange) throw resumeConfigError(c.dir, diff);
    return diff;
  }
  return [];
}

/** Training stopped on a NaN/Inf loss or gradient; the last good checkpoint was kept. */
export class DpoTrainingStopped extends RuntimeError {
  override name = "DpoTrainingStopped";
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, { code: "training stopped", ...opts });
  }
}

interface TrainerState extends ReplayState {
  /** 1: position as a pair count (order-dependent, read for old checkpoints); 2: pair keys + config. */
  format: 1 | 2;
  step: number;
  consumed: number;
  /** Format 2: base64 of the sorted little-endian uint64 keys of the stream pairs taken (8 bytes a pair). */
  consumedKeys?: string;
  /** Format 2: the training-relevant configuration and its SHA-256. */
  config?: Record<string, unknown>;
  configHash?: string;
  streamDone: boolean;
  epoch: number;
  order: number[] | null;
  orderPos: number;
  rng: number[];
}

/**
 * A pair's identity: first 8 bytes of SHA-256 over its four strings (NUL-separated).
 *
 * @example
 * pairKey({ imageId: "a", prompt: "p", chosen: "x", rejected: "y" }) // a bigint < 2^64
 */
export function pairKey(p: Pick<PairRecord, "imageId" | "prompt" | "chosen" | "rejected">): bigint {
  const h = createHash("sha256").update(`${p.imageId}\0${p.prompt}\0${p.chosen}\0${p.rejected}`).digest();
  return h.readBigUInt64LE(0);
}

function encodeKeys(keys: readonly bigint[]): string {
  const a = BigUint64Array.from(keys).sort();
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");
}

function decodeKeys(b64: string, where: string): Map<bigint, number> {
  const bytes = Buffer.from(b64, "base64");
  if (bytes.byteLength % 8 !== 0) throw new Error(`${where}: consumedKeys holds ${bytes.byteLength} bytes, not a multiple of 8`);
  const a = new BigUint64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const m = new Map<bigint, number>();
  for (const k of a) m.set(k, (m.get(k) ?? 0) + 1); // a multiset: the same pair may arrive twice
  return m;
}

/** JSON with object keys sorted at every level and undefined members dropped: equal configs give equal text. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? "null" : canonical(x))).join(",")}]`;
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v);
}

function flatten(v: unknown, prefix: string, out: Map<string, string>): void {
  if (v && typeof v === "object" && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) if (x !== undefined) flatten(x, prefix ? `${prefix}.${k}` : k, out);
  } else out.set(prefix, canonical(v));
}

/** `key: old -> new` for every dotted key whose value differs (absent shown as "unset"). */
function configDifferences(old: Record<string, unknown>, now: Record<string, unknown>): string[] {
  const a = new Map<string, string>(), b = new Map<string, string>();
  flatten(old, "", a);
  flatten(now, "", b);
  const out: string[] = [];
  for (const k of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    if (a.get(k) !== b.get(k)) out.push(`${k}: ${a.get(k) ?? "unset"} -> ${b.get(k) ?? "unset"}`);
  }
  return out;
}

export interface DpoTrainSummary {
  steps: number;
  pairsConsumed: number;
  epochs: number;
  metrics: MetricsLine[];
  checkpoint: string | undefined;
  exportDir: string | undefined;
  resumedFrom: string | undefined;
  /** Stream pairs skipped because the checkpoint resumed from had already taken them. */
  skippedOnResume: number;
  /** Configuration keys that differ from the resumed checkpoint's (`key: old -> new`; only with allowConfigChange). */
  configChanges: string[];
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
  /** Keys of the stream pairs taken in the stream epoch (this process and the checkpoint resumed from). */
  private consumedKeys: bigint[] = [];
  /** Keys still to skip on resume (a multiset), for format-2 checkpoints. */
  private skipKeys: Map<bigint, number> | undefined;
  /** Format-1 checkpoints: stream pairs seen in this process, compared with `skip`. */
  private seen = 0;
  private skip = 0;
  private skipped = 0;
  private lateArrivals = 0;
  private configChanges: string[] = [];
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
    private readonly config: Record<string, unknown>,
    private readonly log: (message: string) => void,
  ) {
    this.metrics = metrics;
  }

  static async create(opts: DpoTrainerOptions): Promise<DpoTrainer> {
    const batchSize = opts.batchSize ?? 16, gradAccum = opts.gradAccum ?? 1, epochs = opts.epochs ?? 1;
    const replayBuffer = opts.replayBuffer ?? 4096, checkpointEvery = opts.checkpointEvery ?? 0;
    for (const [k, v] of Object.entries({ batchSize, gradAccum, epochs, replayBuffer })) {
      if (!Number.isInteger(v) || v < 1) throw new ConfigError(`dpoTrain: ${k} must be an integer >= 1, got ${v}`, { code: "bad option" });
    }
    if (!Number.isInteger(checkpointEvery) || checkpointEvery < 0) throw new ConfigError(`dpoTrain: checkpointEvery must be an integer >= 0, got ${checkpointEvery}`, { code: "bad option" });
    if (checkpointEvery > 0 && !opts.checkpointDir) throw new ConfigError("dpoTrain: checkpointEvery needs checkpointDir", { code: "bad option" });
    const policy = opts.policy;
    const patterns = opts.trainable ?? policy.cfg.trainable;
    const match = nameMatcher(patterns);
    const trainable = policy.store.names().filter(match);
    if (trainable.length === 0) throw new ConfigError(`dpoTrain: trainable patterns [${patterns.join(", ")}] match no policy param`, { code: "bad option" });
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
    const log = opts.log ?? ((m: string) => void process.stderr.write(`${m}\n`));
    const config = trainingConfig(opts);
    let resumedFrom: string | undefined;
    let state: TrainerState | undefined;
    let changes: string[] = [];
    try {
      // A killed run leaves temp files (checkpoint dirs, `latest`, `.pairs.parquet`, …): drop those of dead writers.
      for (const d of [opts.checkpointDir, opts.metricsPath && dirname(opts.metricsPath)]) {
        if (!d) continue;
        const gone = removeStaleTemps(d);
        if (gone.length > 0) log(`dpoTrain: removed ${gone.length} temp file(s) left by an interrupted run in ${d}: ${gone.slice(0, 5).join(", ")}${gone.length > 5 ? ", …" : ""}`);
      }
      if (opts.checkpointDir && (opts.resume ?? true)) {
        const candidates = resumeCandidates(opts.checkpointDir);
        const failures: string[] = [];
        for (const c of candidates) {
          try {
            const st = readCheckpointState(c.dir) as TrainerState;
            if (st === null || typeof st !== "object" || (st.format !== 1 && st.format !== 2)) {
              throw new Error(`${join(c.dir, "state.json")}: unsupported trainer state format ${JSON.stringify((st as { format?: unknown } | null)?.format)}`);
            }
            if (st.format === 2) {
              const diff = configDifferences(st.config ?? {}, config);
              if (diff.length > 0 && !opts.allowConfigChange) throw resumeConfigError(c.dir, diff);
              changes = diff;
            }
            await engine.loadState(c.dir);
            await buffer.restore(st, join(c.dir, DATA_FILE));
            rng = Rng.fromState(st.rng);
            state = st;
            resumedFrom = c.dir;
            break;
          } catch (e) {
            if (e instanceof DpoResumeConfigError) throw e;
            const msg = (e as Error).message.split("\n")[0]!.slice(0, 300);
            failures.push(msg.includes(c.dir) ? msg : `${c.dir}: ${msg}`);
            log(`dpoTrain: checkpoint ${c.dir} is unusable (${msg})${c === candidates.at(-1) ? "" : "; falling back to the previous complete checkpoint"}`);
          }
        }
        if (!state && failures.length > 0) throw new CheckpointError(`dpoTrain: no usable checkpoint under ${opts.checkpointDir} (${failures.join("; ")})`);
      }
    } catch (e) {
      await engine.close();
      throw e;
    }
    let metrics: MetricsLog;
    if (state && opts.metricsPath && existsSync(opts.metricsPath)) {
      // Keep the lines up to the checkpoint; later ones belong to the interrupted run and will be redone.
      const step = state.step;
      const kept = (await readMetricsLog(opts.metricsPath, { onTornTail: (m) => log(`dpoTrain: ${m}`) })).filter((l) => l.step <= step);
      writeFileSync(opts.metricsPath, kept.map((l) => `${JSON.stringify(l)}\n`).join(""));
      metrics = new MetricsLog(opts.metricsPath, { append: true });
      metrics.lines.push(...kept);
    } else metrics = new MetricsLog(opts.metricsPath);
    const t = new DpoTrainer({ ...opts, batchSize, gradAccum, epochs, checkpointEvery }, engine, buffer, rng, metrics, resumedFrom, config, log);
    if (state) {
      t.step = state.step;
      t.consumed = state.consumed;
      if (state.format === 2) {
        t.skipKeys = decodeKeys(state.consumedKeys ?? "", join(resumedFrom!, "state.json"));
        for (const [k, n] of t.skipKeys) for (let i = 0; i < n; i++) t.consumedKeys.push(k);
      } else {
        t.skip = state.consumed;
        log(`dpoTrain: ${resumedFrom} is a format-1 checkpoint: skipping the first ${state.consumed} stream pairs by count (correct only if the upstream order is unchanged)`);
      }
      t.streamDone = state.streamDone;
      t.epoch = state.epoch;
      t.order = state.order;
      t.orderPos = state.orderPos;
      t.lastCheckpoint = resumedFrom;
      t.lastCheckpointStep = state.step;
      t.configChanges = changes;
      if (changes.length > 0) log(`dpoTrain: resuming with a changed configuration (allowed): ${changes.join("; ")}`);
      log(`dpoTrain: resumed from step ${state.step} (${resumedFrom}; ${state.consumed} stream pairs already taken will be skipped)`);
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
      if (!c) throw new InputError(`dpoTrain: pairs batch has no column '${n}' (has ${batch.schema.fields.map((f) => f.name).join(", ")}); run refLogps first`, { code: "missing column" });
      return c;
    };
    const [img, prompt, chosen, rejected, rc, rr] = ["image_id", "prompt", "chosen", "rejected", "ref_logp_chosen", "ref_logp_rejected"].map(col) as [
      ReturnType<typeof col>, ReturnType<typeof col>, ReturnType<typeof col>, ReturnType<typeof col>, ReturnType<typeof col>, ReturnType<typeof col>,
    ];
    const keep = this.o.epochs > 1;
    for (let i = 0; i < batch.numRows; i++) {
      if (this.seen++ < this.skip) {
        this.skipped++; // format-1 checkpoint: consumed before it, by count
        continue;
      }
      const p: PairRecord = {
        imageId: String(img.get(i)),
        prompt: String(prompt.get(i)),
        chosen: String(chosen.get(i)),
        rejected: String(rejected.get(i)),
        refChosen: Number(rc.get(i)),
        refRejected: Number(rr.get(i)),
      };
      const key = pairKey(p);
      const left = this.skipKeys?.get(key);
      if (left !== undefined) {
        // taken before the checkpoint we resumed from (trained, or pending in the checkpoint)
        if (left === 1) this.skipKeys!.delete(key);
        else this.skipKeys!.set(key, left - 1);
        this.skipped++;
        continue;
      }
      if (this.streamDone) {
        // resumed after the stream epoch ended: a pair it never had cannot join the finished epoch
        this.lateArrivals++;
        continue;
      }
      this.consumed++;
      this.consumedKeys.push(key);
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
  /**
   * What resume did, available as soon as the trainer exists (an interrupted run reports it too).
   *
   * @example
   * trainer.resumeInfo().resumedFrom // "out/checkpoints/step-000004" or undefined
   */
  resumeInfo(): Pick<DpoTrainSummary, "resumedFrom" | "configChanges" | "skippedOnResume"> {
    return { resumedFrom: this.resumedFrom, configChanges: [...this.configChanges], skippedOnResume: this.skipped };
  }

  async finish(): Promise<DpoTrainSummary> {
    this.checkUsable();
    const missing = this.skipKeys ? [...this.skipKeys.values()].reduce((a, b) => a + b, 0) : 0;
    if (missing > 0) this.log(`dpoTrain: ${missing} pair(s) the checkpoint had taken did not arrive again (the upstream changed); they stay trained once`);
    if (this.lateArrivals > 0) this.log(`dpoTrain: ${this.lateArrivals} pair(s) arrived after the resumed stream epoch had ended and were not trained`);
    this.skipKeys = undefined;
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
      skippedOnResume: this.skipped,
      configChanges: this.configChanges,
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
    if (this.closed) throw new RuntimeError("dpoTrain: trainer is closed", { code: "closed" });
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
      format: 2,
      step: this.step,
      consumed: this.consumed,
      consumedKeys: encodeKeys(this.consumedKeys),
      config: this.config,
      configHash: createHash("sha256").update(canonical(this.config)).digest("hex"),
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
