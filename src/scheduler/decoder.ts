/**
 * Continuous (iteration-level) batching of generation, as a work source of the Scheduler. The
 * decoder drives a model *interface* ({@link PolicyModel}, src/models/lvlm-policy.ts: prefill,
 * decode step, KV shape and layout), so the built-in LVLM and an imported Hugging Face ONNX VLM
 * (src/models/hf-vlm/) plug in the same way; a bare LvlmModel is wrapped by `lvlmPolicy`.
 *
 * A decoder owns `replicas` lanes; a lane is one running batch with its own KV pool
 * (kv-pool.ts, the layout and the copy costs are documented there). Whenever an executor is
 * free, the scheduler lets the decoder do one thing, in one worker call:
 *
 * - prefill: prompts waiting in the fair queue (round-robin over streams) run through the
 *   prefill graph together, once per prompt however many samples it asks for; each sample then
 *   copies its prompt's K/V rows into a free row of the lane and draws its first token;
 * - decode: one step for every running sequence of the lane; finished sequences (stop token,
 *   max new tokens, last position) leave at once and the rows compact.
 *
 * Prompts are prefilled ahead, in batches, as lane-independent work (so usually while a lane
 * samples on the main thread), and their samples wait until a row frees: every step refills the
 * rows the previous step's finished sequences left. (The padded-batch baselines the bench
 * compares against are built outside, from submission order: bench/lib/batching-baselines.ts.)
 *
 * Memory bound: each admitted sample reserves min(maxPositions, image tokens + prompt +
 * maxNewTokens) KV slots until it leaves; the sum of reservations over all lanes never exceeds
 * `maxTokensInFlight`. Samples that do not fit wait (admission waits, never rejects); samples of
 * an already prefilled prompt go first. Prefilled samples waiting for a row hold their prompt's
 * K/V once per prompt, outside the pools; their number is bounded (see prefillAheadRows).
 * Submissions beyond `maxQueue` waiting samples await
 * admission to the queue (backpressure).
 *
 * Sampling reproduces src/models/generate.ts exactly: sample i of a request seeded s draws from
 * sampleRng(s, i), one uniform per token, from its own logits; logp is Σ log p under the model
 * itself (temperature 1, no top-k/top-p), as in the reference.
 *
 * The policy's sessions run in the model-host workers as `{name}.{session}` (the built-in
 * LVLM: `prefill` and `decode`, weights baked from its store when the decoder is created).
 * Image features come from `{name}.vision`, a dynamically batched model on the same
 * executors; requests may pass `pixels` (the decoder runs the vision model) or `features`.
 * Each lane's KV cache follows the policy's layout (kv-pool.ts): `slots` (KvPool) or the
 * exported decoders' growing `past` (PastKvLane).
 *
 * Scoring (`scoring: true`): `logps` queues teacher-forced log-prob requests (refLogps,
 * evaluation); they run as work of their own on the same executors, up to maxBatch responses per
 * worker call, taking their turn with the lanes by waiting time.
 */
import type { Device, TensorValue } from "../graph/runtime.ts";
import type { Sample } from "../models/generate.ts";
import { LvlmModel } from "../models/lvlm-model.ts";
import { lvlmPolicy, type PolicyModel, type PolicyPrefill, type PolicyScoredText, type SessionRun } from "../models/lvlm-policy.ts";
import { sampleRng, sampleToken, tokenLogProb, type SamplingOptions } from "../models/sampling.ts";
import type { Rng } from "../util/rng.ts";
import { abortError, SchedulerError, type BatchedModel } from "./batched-model.ts";
import type { Executor, ReadyWork, WorkSource } from "./executor.ts";
import { FairQueue, type QueueItem } from "./fair-queue.ts";
import { KvPool, PastKvLane, type KvLane, type KvShape } from "./kv-pool.ts";
import { deferred, type Deferred } from "./deferred.ts";

/** The scheduler surface a decoder needs (Scheduler implements it). */
export interface DecoderHost {
  now(): number;
  pump(): void;
  register(name: string, spec: { model: Uint8Array | string }, opts: { maxBatch: number; maxDelayMs: number; priority: number; replicas: number; intraOpThreads: number; device: Device }): BatchedModel;
  addSource(source: WorkSource, device: Device, replicas: number, load: (executors: Executor[]) => void): void;
}

export interface DecoderOptions {
  /** Most sequences in one decode step, per replica (default 32). */
  maxBatch?: number;
  /** KV slots reserved by admitted samples, summed over replicas (default 8192). */
  maxTokensInFlight?: number;
  /** Samples queued for prefill; beyond it submissions await admission (default max(4 × maxBatch, 64)). */
  maxQueue?: number;
  /** Higher runs first when sources compete for an executor (default 0). */
  priority?: number;
  /** Replicas = running batches, one executor each at a time (default 1). */
  replicas?: number;
  /** ORT intra-op threads per replica (default 1). */
  intraOpThreads?: number;
  /** Device of the replicas (Scheduler.decoder: the scheduler's first device; else cpu). */
  device?: Device;
  /**
   * Continuous: a prefill call waits until the lanes are short of at least this many prefilled
   * samples (see prefillAhead), so each call takes at least this many (default maxBatch / 8).
   */
  minJoin?: number;
  /**
   * Continuous: prefilled samples kept waiting beyond the rows free now (default maxBatch / 2),
   * so rows that free up are refilled at the very next step. Prefills run as work of their own,
   * in batches of at least `minJoin` samples, usually while the lane samples on the main
   * thread; their K/V (one copy per prompt, not per sample) waits outside the lanes' pools.
   */
  prefillAhead?: number;
  /** Batching of the `{name}.vision` model (defaults: maxBatch 32, maxDelayMs 2). */
  vision?: { maxBatch?: number; maxDelayMs?: number };
  /** Also load the policy's scoring graph, so `logps` (teacher-forced log-probs) runs here (default false). */
  scoring?: boolean;
}

/** A response to score under the policy: its image (features or pixels), prompt and response. */
export interface ScoreRequest {
  prompt: string;
  response: string;
  features?: Float32Array;
  pixels?: Float32Array;
  /**
   * Ids to score as they are, instead of the policy's `scoredText(prompt, response)` layout
   * (e.g. a caption prompt continued by a few words, with no end of turn); prompt and response
   * then only label the request.
   */
  scored?: PolicyScoredText;
}

/** Σ log p of the response's tokens (eos included) and their count. */
export interface ScoredResponse {
  logp: number;
  nTokens: number;
}

interface ScoreJob {
  features: Float32Array;
  scored: PolicyScoredText;
  enqueuedAt: number;
  done: Deferred<ScoredResponse>;
}

/** One prompt to answer: its image (features [Np, Dv] or pixels [3, S, S]) and prompt. */
export interface DecodeRequest {
  prompt: string | readonly number[];
  features?: Float32Array;
  pixels?: Float32Array;
  /** Samples, sharing one prefill (default: the call's n, else 1). */
  n?: number;
  /** Seed; sample i draws from sampleRng(seed, i) (default: the call's seed, else 0). */
  seed?: number;
}

/** Sampling and submission options (the reference's GenerateOptions plus stream and signal). */
export interface DecodeOptions extends SamplingOptions {
  /** Most tokens generated per sample (the stop token counts). */
  maxNewTokens: number;
  n?: number;
  seed?: number;
  /** Token(s) that end a sample (default: the model's eos ids); null = never stop early. */
  stopToken?: number | readonly number[] | null;
  /** Submitting stream, for fair service (default "default"). */
  stream?: string;
  /** Aborting drops the request wherever it is (queued or running); it rejects with an AbortError. */
  signal?: AbortSignal;
}

/** A finished sequence from `generate`: the sample, its request (input order) and sample index. */
export interface FinishedSequence extends Sample {
  request: number;
  sample: number;
}

/** Counters for tests, the bench and the run report. */
export interface DecoderStats {
  prefillCalls: number;
  /** Prompts prefilled (each once, whatever its n). */
  prefillPrompts: number;
  decodeSteps: number;
  /** Σ batch size over decode steps. */
  decodeRows: number;
  /** Tokens sampled (prefill first tokens included). */
  tokens: number;
  finished: number;
  /** Samples that joined a batch which had already stepped (joined mid-run). */
  joinedRunning: number;
  /** KV slots reserved now / at most so far. */
  reservedTokens: number;
  peakReservedTokens: number;
  /** KV slots actually filled by running sequences now / at most so far (≤ reserved). */
  liveTokens: number;
  peakLiveTokens: number;
  /** Running sequences now / at most so far. */
  running: number;
  peakRunning: number;
  /** Samples queued for prefill / prefilled but waiting for a row (now, at most so far). */
  queuedSamples: number;
  pendingSamples: number;
  peakPendingSamples: number;
  /** Floats copied into or within the KV pools (joins and compaction). */
  kvCopiedFloats: number;
  kvBytes: number;
  /** Responses scored by `logps`. */
  scoredResponses: number;
}


interface Prefilled {
  /** Next-token logits of this prompt [V] (a view of the prefill output). */
  logits: Float32Array;
  present: Record<string, TensorValue>;
  srcRow: number;
  srcSlots: number;
  /** Image tokens + prompt tokens. */
  length: number;
}

class Req implements QueueItem {
  readonly bucket = "";
  enqueuedAt = Number.NaN;
  readonly samples: (Sample | undefined)[];
  remaining: number;
  /** Next sample index to start. */
  nextSample = 0;
  prefilled: Prefilled | undefined;
  settled = false;
  readonly live = new Set<Seq>();
  readonly admitted = deferred<void>();
  readonly done = deferred<Sample[]>();
  detach: () => void = () => {};

  constructor(
    readonly stream: string,
    readonly rows: number,
    readonly priority: number,
    readonly ids: number[],
    readonly features: Float32Array,
    readonly sampling: SamplingOptions,
    readonly maxNewTokens: number,
    readonly stop: readonly number[],
    readonly seed: number,
    /** KV slots each sample reserves. */
    readonly reserve: number,
    readonly onSample: ((index: number, s: Sample) => void) | undefined,
  ) {
    this.samples = new Array<Sample | undefined>(rows);
    this.remaining = rows;
  }
}

interface Seq {
  readonly req: Req;
  readonly index: number;
  readonly rng: Rng;
  readonly tokens: number[];
  logp: number;
  /** Tokens in the cache = the position the last token is fed at. */
  length: number;
  /** Finished (or cancelled); leaves its row at the end of the step. */
  done: boolean;
}

interface Lane {
  readonly pool: KvLane;
  /** Running sequences; index = KV row. */
  readonly seqs: Seq[];
  running: boolean;
  /** The lane has not stepped since it was last empty (joins now are not "mid-run"). */
  forming: boolean;
  since: number;
}

/**
 * @example
 * const gen = s.decoder("policy", lvlm, { maxBatch: 64, maxTokensInFlight: 8192 });
 * const samples = await gen.run({ pixels, prompt: "Describe the image." }, { n: 8, maxNewTokens: 32, temperature: 1, topP: 0.95 });
 * for await (const seq of gen.generate(requests, { maxNewTokens: 32, seed: 1 })) console.log(seq.request, seq.sample, seq.text);
 * const hf = new Decoder(s, "llava", await loadHfVlm("./my-llava-onnx"), { maxBatch: 16 }); // any PolicyModel
 */
export class Decoder implements WorkSource {
  /** The policy this decoder generates from. */
  readonly model: PolicyModel;
  /** The policy's vision features model, `{name}.vision` (pixel_values -> image_features). */
  readonly vision: BatchedModel;
  /** Resolves once the prefill and decode graphs are loaded on every replica. */
  readonly ready: Promise<void>;
  private readonly readyD = deferred<void>();
  readonly options: Required<Omit<DecoderOptions, "vision">>;
  /** Responses waiting to be scored (`logps`), oldest first. */
  private readonly scoreJobs: ScoreJob[] = [];
  private readonly lanes: Lane[] = [];
  private readonly queue: FairQueue<Req>;
  /** Prefilled requests with samples still to start, oldest first. */
  private readonly pending: Req[] = [];
  private readonly loadedOn = new Set<Executor>();
  private readonly shape: KvShape;
  private readonly np: number;
  private readonly featureFloats: number;
  private readonly visionIo: { input: string; output: string };
  private reserved = 0;
  /** A lane-independent prefill (continuous batching) is running. */
  private prefilling = false;
  private failure: Error | undefined;
  private closed = false;
  private readonly counters = {
    prefillCalls: 0,
    prefillPrompts: 0,
    decodeSteps: 0,
    decodeRows: 0,
    tokens: 0,
    finished: 0,
    joinedRunning: 0,
    peakReservedTokens: 0,
    peakLiveTokens: 0,
    peakRunning: 0,
    peakPendingSamples: 0,
    scoredResponses: 0,
  };

  constructor(
    private readonly host: DecoderHost,
    readonly name: string,
    policy: PolicyModel | LvlmModel,
    opts: DecoderOptions = {},
  ) {
    const model = policy instanceof LvlmModel ? lvlmPolicy(policy) : policy;
    this.model = model;
    const maxBatch = opts.maxBatch ?? 32;
    this.options = {
      maxBatch,
      maxTokensInFlight: opts.maxTokensInFlight ?? 8192,
      maxQueue: opts.maxQueue ?? Math.max(4 * maxBatch, 64),
      priority: opts.priority ?? 0,
      replicas: opts.replicas ?? 1,
      intraOpThreads: opts.intraOpThreads ?? 1,
      device: opts.device ?? "cpu",
      minJoin: opts.minJoin ?? Math.max(1, Math.floor(maxBatch / 8)),
      prefillAhead: opts.prefillAhead ?? Math.max(1, Math.floor(maxBatch / 2)),
      scoring: opts.scoring ?? false,
    };
    const o = this.options;
    const bad = (what: string) => new SchedulerError(`decoder '${name}': ${what}`);
    const posInt = (k: keyof typeof o) => {
      const v = o[k] as number;
      if (!Number.isInteger(v) || v < 1) throw bad(`${k} must be an integer >= 1 (got ${v})`);
    };
    (["maxBatch", "maxTokensInFlight", "maxQueue", "replicas", "intraOpThreads", "minJoin", "prefillAhead"] as const).forEach(posInt);
    if (!Number.isFinite(o.priority)) throw bad(`priority must be a finite number (got ${o.priority})`);
    this.np = model.imageTokens;
    this.featureFloats = model.featureDims[0] * model.featureDims[1];
    const { layers, heads, headDim, layout } = model.kv;
    this.shape = { layers, heads, headDim, capacity: model.maxPositions };
    this.queue = new FairQueue<Req>(o.maxQueue);
    for (let i = 0; i < o.replicas; i++) {
      const pool = layout === "slots" ? new KvPool(this.shape, o.maxBatch) : new PastKvLane(this.shape, o.maxBatch);
      this.lanes.push({ pool, seqs: [], running: false, forming: true, since: host.now() });
    }
    this.ready = this.readyD.promise;

    // The policy's graphs (the built-in LVLM bakes its weights now: a snapshot of the policy).
    const sessions = model.sessions({ scoring: o.scoring });
    const vision = model.vision();
    this.visionIo = { input: vision.input, output: vision.output };
    this.vision = host.register(`${name}.vision`, { model: vision.model }, {
      maxBatch: opts.vision?.maxBatch ?? 32,
      maxDelayMs: opts.vision?.maxDelayMs ?? 2,
      priority: o.priority,
      replicas: o.replicas,
      intraOpThreads: o.intraOpThreads,
      device: o.device,
    });
    host.addSource(this, o.device, o.replicas, (executors) => {
      const sessionOpts = { intraOpThreads: o.intraOpThreads };
      Promise.all(
        executors.map(async (ex) => {
          const infos: Record<string, { inputNames: string[]; outputNames: string[] }> = {};
          for (const [key, graph] of Object.entries(sessions)) infos[key] = await ex.host.load(this.session(key), graph, sessionOpts);
          // the policy checks (and adapts to) the graphs' real inputs before any request runs
          model.sessionsLoaded?.(infos);
          this.loadedOn.add(ex);
          this.host.pump();
        }),
      ).then(
        () => this.readyD.resolve(),
        (e: unknown) => {
          this.failure = bad((e as Error).message ?? String(e));
          this.readyD.reject(this.failure);
          this.failAll(this.failure);
        },
      );
    });
  }

  private session(key: string): string {
    return `${this.name}.${key}`;
  }

  /** Runs the policy's sessions on `ex` (their worker-side names are `{name}.{key}`). */
  private runner(ex: Executor): SessionRun {
    return (key, feeds) => ex.host.run(this.session(key), feeds);
  }

  /** Generate the samples of one request; resolves with all of them (sample order). */
  async run(request: DecodeRequest, opts: DecodeOptions): Promise<Sample[]> {
    const t = await this.enqueue(request, opts);
    return t.result;
  }

  /**
   * Submit one request; resolves once it is admitted to the queue (backpressure) with its
   * `result`. `onSample` sees each sample as it finishes.
   */
  async enqueue(request: DecodeRequest, opts: DecodeOptions, onSample?: (index: number, s: Sample) => void): Promise<{ result: Promise<Sample[]> }> {
    const stream = opts.stream ?? "default";
    const where = `decoder '${this.name}'`;
    if (this.closed) throw new SchedulerError(`${where}: scheduler is closed`);
    if (this.failure) throw this.failure;
    if (opts.signal?.aborted) throw abortError(`${where}: stream '${stream}' aborted before submitting`);
    const r = this.describe(request, opts);
    let features = request.features;
    if (!features) {
      const px = request.pixels!;
      const s = this.model.imageSize;
      const out = await this.vision.run({ [this.visionIo.input]: { dtype: "float32", dims: [1, 3, s, s], data: px } }, { stream, ...(opts.signal ? { signal: opts.signal } : {}) });
      features = out[this.visionIo.output]!.data as Float32Array;
      if (features.length !== this.featureFloats) throw new SchedulerError(`${where}: vision model returned ${features.length} floats, expected [${this.model.featureDims.join(", ")}]`);
      if (this.closed) throw new SchedulerError(`${where}: scheduler is closed`);
      if (opts.signal?.aborted) throw abortError(`${where}: stream '${stream}' aborted`);
    }
    const req = new Req(stream, r.n, this.options.priority, r.ids, features, r.sampling, opts.maxNewTokens, r.stop, r.seed, r.reserve, onSample);
    if (r.n > this.options.maxQueue) throw new SchedulerError(`${where}: a request of ${r.n} samples can never fit maxQueue ${this.options.maxQueue}`);
    const signal = opts.signal;
    if (signal) {
      const onAbort = () => this.cancel(req, abortError(`${where}: stream '${stream}' aborted`));
      signal.addEventListener("abort", onAbort, { once: true });
      req.detach = () => signal.removeEventListener("abort", onAbort);
    }
    if (this.queue.offer(req, this.host.now(), () => req.admitted.resolve())) req.admitted.resolve();
    this.host.pump();
    await req.admitted.promise;
    return { result: req.done.promise };
  }

  /**
   * Generate for a stream of requests; yields each sequence as soon as it finishes (any order).
   * Pulls the next request only once the previous one was admitted to the queue. Breaking out
   * of the loop cancels what is still running.
   */
  async *generate(requests: Iterable<DecodeRequest> | AsyncIterable<DecodeRequest>, opts: DecodeOptions): AsyncGenerator<FinishedSequence> {
    const ac = new AbortController();
    const outer = opts.signal;
    const onOuter = () => ac.abort(outer?.reason);
    if (outer?.aborted) ac.abort(outer.reason);
    else outer?.addEventListener("abort", onOuter, { once: true });
    const ready: FinishedSequence[] = [];
    let wake: (() => void) | undefined;
    const notify = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    let error: unknown;
    let outstanding = 0;
    let feeding = true;
    const feed = async () => {
      let i = 0;
      for await (const r of requests) {
        if (ac.signal.aborted) break;
        const request = i++;
        outstanding++;
        const t = await this.enqueue(r, { ...opts, signal: ac.signal }, (sample, s) => {
          ready.push({ ...s, request, sample });
          notify();
        });
        t.result.then(
          () => {
            outstanding--;
            notify();
          },
          (e: unknown) => {
            outstanding--;
            error ??= e;
            notify();
          },
        );
      }
    };
    feed().then(
      () => {
        feeding = false;
        notify();
      },
      (e: unknown) => {
        feeding = false;
        error ??= e;
        notify();
      },
    );
    try {
      for (;;) {
        const next = ready.shift();
        if (next) {
          yield next;
          continue;
        }
        if (error !== undefined) throw error;
        if (!feeding && outstanding === 0) return;
        await new Promise<void>((res) => (wake = res));
      }
    } finally {
      outer?.removeEventListener("abort", onOuter);
      ac.abort();
    }
  }

  /**
   * Log-probs of given responses under the policy, one teacher-forced pass per call: scoring
   * work runs on the decoder's executors between its generation work (needs `scoring: true`).
   * Responses of several calls are scored together, up to maxBatch per worker call.
   * @example
   * const [r] = await gen.logps([{ pixels, prompt: "Describe the image.", response: "A red circle." }]);
   */
  async logps(requests: readonly ScoreRequest[], opts: { stream?: string; signal?: AbortSignal } = {}): Promise<ScoredResponse[]> {
    const where = `decoder '${this.name}'`;
    if (!this.options.scoring) throw new SchedulerError(`${where}: created without scoring: true, so logps has no scoring graph`);
    if (this.closed) throw new SchedulerError(`${where}: scheduler is closed`);
    const stream = opts.stream ?? "default";
    const jobs = await Promise.all(
      requests.map(async (r, i) => {
        let features = r.features;
        if (!features) {
          if (!r.pixels) throw new SchedulerError(`${where}: score request ${i} needs features or pixels`);
          features = await this.imageFeatures(r.pixels, { stream, ...(opts.signal ? { signal: opts.signal } : {}) });
        }
        if (features.length !== this.featureFloats) throw new SchedulerError(`${where}: score request ${i}: features have ${features.length} floats, expected ${this.featureFloats}`);
        const scored = r.scored ?? this.model.scoredText(r.prompt, r.response);
        if (r.scored && r.scored.answerMask.length !== r.scored.ids.length) throw new SchedulerError(`${where}: score request ${i}: answerMask has ${r.scored.answerMask.length} entries for ${r.scored.ids.length} ids`);
        if (scored.ids.length > this.model.maxPositions - this.np) throw new SchedulerError(`${where}: score request ${i}: ${scored.ids.length} tokens exceed the model's ${this.model.maxPositions - this.np} text positions`);
        return { features, scored, enqueuedAt: this.host.now(), done: deferred<ScoredResponse>() };
      }),
    );
    if (this.closed) throw new SchedulerError(`${where}: scheduler is closed`);
    this.scoreJobs.push(...jobs);
    this.host.pump();
    return Promise.all(jobs.map((j) => j.done.promise));
  }

  /**
   * One image's features [Np, D] from the policy's vision model (`{name}.vision`, batched with
   * the other requests' images), to pass as `features` to several requests of the same image.
   * @example
   * const features = await gen.imageFeatures(pixels);
   * const scored = await gen.logps(answers.map((response) => ({ prompt, response, features })));
   */
  async imageFeatures(pixels: Float32Array, opts: { stream?: string; signal?: AbortSignal } = {}): Promise<Float32Array> {
    const where = `decoder '${this.name}'`;
    if (this.closed) throw new SchedulerError(`${where}: scheduler is closed`);
    const S = this.model.imageSize;
    if (pixels.length !== 3 * S * S) throw new SchedulerError(`${where}: pixels have ${pixels.length} floats, expected [3, ${S}, ${S}]`);
    const out = await this.vision.run({ [this.visionIo.input]: { dtype: "float32", dims: [1, 3, S, S], data: pixels } }, { stream: opts.stream ?? "default", ...(opts.signal ? { signal: opts.signal } : {}) });
    const features = out[this.visionIo.output]!.data as Float32Array;
    if (features.length !== this.featureFloats) throw new SchedulerError(`${where}: vision model returned ${features.length} floats, expected [${this.model.featureDims.join(", ")}]`);
    return features;
  }

  /** One worker call scoring up to maxBatch waiting responses. */
  private async score(ex: Executor, release: () => void): Promise<void> {
    const jobs = this.scoreJobs.splice(0, this.options.maxBatch);
    const feats = new Float32Array(jobs.length * this.featureFloats);
    jobs.forEach((j, i) => feats.set(j.features, i * this.featureFloats));
    try {
      const r = await this.model.sequenceLogps(this.runner(ex), feats, jobs.map((j) => j.scored));
      release();
      this.counters.scoredResponses += jobs.length;
      jobs.forEach((j, i) => j.done.resolve({ logp: r.logps[i]!, nTokens: r.nTokens[i]! }));
    } catch (e) {
      release();
      const err = new SchedulerError(`decoder '${this.name}': scoring failed: ${(e as Error).message}`);
      for (const j of jobs) j.done.reject(err);
    }
  }

  stats(): DecoderStats {
    let live = 0;
    let running = 0;
    for (const l of this.lanes) {
      running += l.seqs.length;
      for (const s of l.seqs) live += s.length;
    }
    let pendingSamples = 0;
    for (const r of this.pending) pendingSamples += r.rows - r.nextSample;
    return {
      ...this.counters,
      reservedTokens: this.reserved,
      liveTokens: live,
      running,
      queuedSamples: this.queue.queuedRows,
      pendingSamples,
      kvCopiedFloats: this.lanes.reduce((a, l) => a + l.pool.copiedFloats, 0),
      kvBytes: this.lanes.reduce((a, l) => a + l.pool.bytes, 0),
    };
  }

  // ---- WorkSource ----

  servesOn(executor: Executor): boolean {
    return this.loadedOn.has(executor);
  }

  readyWork(now: number): ReadyWork | undefined {
    if (this.closed) return undefined;
    let since = Number.POSITIVE_INFINITY;
    for (const lane of this.lanes) if (!lane.running && this.plan(lane) && lane.since < since) since = lane.since;
    const q = this.queue.oldestEnqueuedAt();
    if (this.prefillAheadRows() > 0) since = Math.min(since, q ?? now);
    if (this.scoreJobs.length > 0) since = Math.min(since, this.scoreJobs[0]!.enqueuedAt);
    if (since === Number.POSITIVE_INFINITY) return undefined;
    return { priority: this.options.priority, since: Math.min(since, q ?? now, now) };
  }

  nextDeadline(): number | undefined {
    return undefined; // work is ready at once or waits for an event, never for a timeout
  }

  async dispatch(executor: Executor, _now: number, release: () => void = () => {}): Promise<void> {
    // the idle lane with work that has waited longest
    let lane: Lane | undefined;
    for (const l of this.lanes) if (!l.running && (!lane || l.since < lane.since) && this.plan(l) !== undefined) lane = l;
    // scoring requests that waited longer than the lane go first (one call, then the lane's turn)
    if (this.scoreJobs.length > 0 && (!lane || this.scoreJobs[0]!.enqueuedAt <= lane.since)) {
      await this.score(executor, release);
      return;
    }
    const ahead = this.prefillAheadRows();
    // Prefill first only when the lane could not fill its free rows from what is prefilled;
    // otherwise step now and let the prefill run while the lane samples (see `prefillAheadRows`).
    if (ahead > 0 && (!lane || this.unstarted() < this.options.maxBatch - lane.seqs.length)) {
      this.prefilling = true;
      try {
        await this.prefill(ahead, executor, release);
      } catch (e) {
        release();
        const err = new SchedulerError(`decoder '${this.name}': prefill failed: ${(e as Error).message}`);
        for (const r of [...this.pending]) this.settleFailed(r, err);
      } finally {
        this.prefilling = false;
      }
      return;
    }
    if (!lane) return;
    // The lane stays `running` (not offered again) until its tokens are sampled and its KV cache
    // updated; the executor is released as soon as the worker call returns (see prefill/step).
    lane.running = true;
    try {
      this.joinPending(lane);
      if (lane.seqs.length > 0) await this.step(lane, executor, release);
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      const failed = err.message.includes(`'${this.name}`) ? err : new SchedulerError(`decoder '${this.name}': ${err.message}`);
      for (const s of [...lane.seqs]) this.settleFailed(s.req, failed);
    } finally {
      lane.running = false;
      this.dropSettled(lane);
      lane.since = this.host.now();
    }
  }

  close(reason: Error): void {
    this.closed = true;
    this.failAll(reason);
  }

  // ---- scheduling ----

  /** What the lane would do if dispatched now. */
  private plan(lane: Lane): "decode" | undefined {
    if (lane.seqs.length > 0) return "decode";
    if (this.canJoin(lane) && this.nextPendingFits()) return "decode";
    return undefined;
  }

  private canJoin(lane: Lane): boolean {
    return lane.seqs.length < this.options.maxBatch;
  }

  private nextPendingFits(): boolean {
    const r = this.pending.find((p) => !p.settled);
    return r !== undefined && this.reserved + r.reserve <= this.options.maxTokensInFlight;
  }

  /** Samples prefilled and waiting for a row. */
  private unstarted(): number {
    let n = 0;
    for (const r of this.pending) if (!r.settled) n += r.rows - r.nextSample;
    return n;
  }

  /**
   * Continuous batching: rows of queued samples to prefill now, lane-independently (0 = none).
   * Target: as many prefilled samples waiting as the lanes could start now (free rows the token
   * budget allows, at maxPositions slots each) plus `prefillAhead`; a prefill runs once the
   * waiting samples fell `minJoin` below that (or at once when nothing waits for free rows), so
   * calls take several prompts. One prefill at a time. The scheduler offers it as soon as a
   * step's worker call returned, i.e. while the lane samples on the main thread, so it starts in
   * a gap in which the worker would otherwise wait. Bound: waiting samples ≤ the lanes' rows +
   * prefillAhead + one request's n - 1 (the queue hands out whole requests).
   */
  private prefillAheadRows(): number {
    const o = this.options;
    if (this.prefilling || this.closed || this.queue.queuedRows === 0) return 0;
    let free = 0;
    for (const l of this.lanes) free += o.maxBatch - l.seqs.length;
    free = Math.min(free, Math.floor((o.maxTokensInFlight - this.reserved) / this.shape.capacity));
    const want = free + o.prefillAhead - this.unstarted();
    return want >= o.minJoin || (want > 0 && free > 0 && this.unstarted() === 0) ? want : 0;
  }

  /** Start pending samples in `lane` while it has rows and the token budget allows. */
  private joinPending(lane: Lane): void {
    while (this.pending.length > 0 && this.canJoin(lane)) {
      const req = this.pending[0]!;
      if (req.settled || req.nextSample >= req.rows) {
        this.pending.shift();
        req.prefilled = undefined;
        continue;
      }
      if (this.reserved + req.reserve > this.options.maxTokensInFlight) break;
      this.start(lane, req, req.nextSample++);
    }
  }

  /** Draw a sample's first token from its prompt's prefill logits; give it a row unless done. */
  private start(lane: Lane, req: Req, index: number): void {
    const p = req.prefilled!;
    const seq: Seq = { req, index, rng: sampleRng(req.seed, index), tokens: [], logp: 0, length: p.length, done: false };
    if (this.advance(seq, p.logits)) return;
    const row = lane.seqs.length;
    if (row > 0 && !lane.forming) this.counters.joinedRunning++;
    lane.pool.load(row, p.present, p.srcRow, p.srcSlots, p.length);
    lane.seqs.push(seq);
    req.live.add(seq);
    this.reserved += req.reserve;
    const c = this.counters;
    c.peakReservedTokens = Math.max(c.peakReservedTokens, this.reserved);
    let running = 0;
    for (const l of this.lanes) running += l.seqs.length;
    c.peakRunning = Math.max(c.peakRunning, running);
  }

  /** Sample the next token from `logits` [V]; true (and the sample is delivered) if the sequence is done. */
  private advance(seq: Seq, logits: Float32Array): boolean {
    const req = seq.req;
    const tok = sampleToken(logits, req.sampling, seq.rng);
    seq.tokens.push(tok);
    seq.logp += tokenLogProb(logits, tok);
    this.counters.tokens++;
    let finish: Sample["finish"] | undefined;
    if (req.stop.includes(tok)) finish = "stop";
    // feeding `tok` writes it at position `length`; the model has positions up to maxPositions - 1
    else if (seq.tokens.length >= req.maxNewTokens || seq.length >= this.model.maxPositions) finish = "length";
    if (!finish) return false;
    this.deliver(seq, finish);
    return true;
  }

  private deliver(seq: Seq, finish: Sample["finish"]): void {
    const req = seq.req;
    if (req.settled) return;
    const s: Sample = { tokens: seq.tokens, text: this.model.decodeTokens(seq.tokens), logp: seq.logp, nTokens: seq.tokens.length, finish };
    req.samples[seq.index] = s;
    this.counters.finished++;
    req.onSample?.(seq.index, s);
    if (--req.remaining === 0) {
      req.settled = true;
      req.detach();
      req.done.resolve(req.samples as Sample[]);
    }
  }

  /**
   * One prefill call for prompts of at most `rows` samples taken fairly from the queue; their
   * samples wait in `pending` until a lane has a free row.
   */
  private async prefill(rows: number, ex: Executor, release: () => void): Promise<void> {
    const reqs = this.queue.take(rows).filter((r) => !r.settled);
    this.queue.admitWaiting(this.host.now());
    if (reqs.length === 0) return;
    const R = reqs.length;
    const feats = new Float32Array(R * this.featureFloats);
    reqs.forEach((r, i) => feats.set(r.features, i * this.featureFloats));
    let out: PolicyPrefill;
    try {
      out = await this.model.prefill(this.runner(ex), feats, reqs.map((r) => r.ids));
    } catch (e) {
      release();
      const err = new SchedulerError(`decoder '${this.name}': prefill failed: ${(e as Error).message}`);
      for (const r of reqs) this.settleFailed(r, err);
      return;
    }
    release();
    this.counters.prefillCalls++;
    this.counters.prefillPrompts += R;
    const V = this.model.vocabSize;
    reqs.forEach((r, i) => {
      if (r.settled) return;
      r.prefilled = { logits: out.logits.subarray(i * V, (i + 1) * V), present: out.present, srcRow: i, srcSlots: out.srcSlots, length: out.lengths[i]! };
      this.pending.push(r);
    });
    this.counters.peakPendingSamples = Math.max(this.counters.peakPendingSamples, this.unstarted());
  }

  /** One decode step of every sequence in `lane`; finished ones leave and the rows compact. */
  private async step(lane: Lane, ex: Executor, release: () => void): Promise<void> {
    const seqs = lane.seqs;
    const B = seqs.length;
    const ids: number[] = new Array<number>(B);
    const slots: number[] = new Array<number>(B);
    seqs.forEach((s, b) => {
      ids[b] = s.tokens[s.tokens.length - 1]!;
      slots[b] = s.length;
    });
    const logits = await this.model.step(this.runner(ex), ids, slots, lane.pool);
    release();
    this.counters.decodeSteps++;
    this.counters.decodeRows += B;
    const V = this.model.vocabSize;
    let live = 0;
    seqs.forEach((s, b) => {
      s.length++;
      if (s.req.settled || this.advance(s, logits.subarray(b * V, (b + 1) * V))) s.done = true;
      live += s.length;
    });
    for (const l of this.lanes) if (l !== lane) for (const s of l.seqs) live += s.length;
    this.counters.peakLiveTokens = Math.max(this.counters.peakLiveTokens, live);
    // finished rows leave at once (the rows compact; freed rows are refilled at the next dispatch)
    for (let i = seqs.length - 1; i >= 0; i--) if (seqs[i]!.done) this.leave(lane, i);
    lane.forming = seqs.length === 0;
  }

  /** Remove row `row` of `lane`: the last row moves into it (dense rows). */
  private leave(lane: Lane, row: number): void {
    const seqs = lane.seqs;
    const seq = seqs[row]!;
    const last = seqs.length - 1;
    if (row !== last) {
      const moved = seqs[last]!;
      lane.pool.move(last, row, moved.length);
      seqs[row] = moved;
    }
    seqs.pop();
    seq.req.live.delete(seq);
    this.reserved -= seq.req.reserve;
    if (seqs.length === 0) lane.forming = true;
  }

  /** Drop rows of cancelled or failed requests from an idle lane. */
  private dropSettled(lane: Lane): void {
    if (lane.running) return;
    for (let i = lane.seqs.length - 1; i >= 0; i--) if (lane.seqs[i]!.req.settled) this.leave(lane, i);
  }

  // ---- requests ----

  private describe(request: DecodeRequest, opts: DecodeOptions) {
    const where = `decoder '${this.name}'`;
    const m = this.model;
    if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 1) throw new SchedulerError(`${where}: maxNewTokens must be a positive integer, got ${opts.maxNewTokens}`);
    const n = request.n ?? opts.n ?? 1;
    if (!Number.isInteger(n) || n < 1) throw new SchedulerError(`${where}: n must be a positive integer, got ${n}`);
    const seed = request.seed ?? opts.seed ?? 0;
    const t = opts.temperature ?? 1;
    if (!(t >= 0)) throw new SchedulerError(`${where}: temperature must be >= 0, got ${t}`);
    const topK = opts.topK ?? 0;
    if (!Number.isInteger(topK) || topK < 0) throw new SchedulerError(`${where}: topK must be a non-negative integer, got ${topK}`);
    const topP = opts.topP ?? 1;
    if (!(topP > 0 && topP <= 1)) throw new SchedulerError(`${where}: topP must be in (0, 1], got ${topP}`);
    if (request.features) {
      if (request.features.length !== this.featureFloats) {
        throw new SchedulerError(`${where}: features have ${request.features.length} floats, expected [${m.featureDims.join(", ")}] = ${this.featureFloats}`);
      }
    } else if (request.pixels) {
      const s = m.imageSize;
      if (request.pixels.length !== 3 * s * s) throw new SchedulerError(`${where}: pixels have ${request.pixels.length} floats, expected [3, ${s}, ${s}]`);
    } else throw new SchedulerError(`${where}: a request needs features or pixels`);
    const ids = typeof request.prompt === "string" ? m.promptIds(request.prompt) : [...request.prompt];
    if (ids.length < 1) throw new SchedulerError(`${where}: empty prompt`);
    if (ids.length >= m.maxPromptTokens) throw new SchedulerError(`${where}: prompt of ${ids.length} tokens leaves no room in ${m.maxPromptTokens} text positions`);
    const reserve = Math.min(m.maxPositions, this.np + ids.length + opts.maxNewTokens);
    if (reserve > this.options.maxTokensInFlight) {
      throw new SchedulerError(`${where}: one sample needs ${reserve} KV slots, more than maxTokensInFlight ${this.options.maxTokensInFlight}`);
    }
    const stop = opts.stopToken === undefined ? m.stopTokens : opts.stopToken === null ? [] : typeof opts.stopToken === "number" ? [opts.stopToken] : [...opts.stopToken];
    const sampling: SamplingOptions = { temperature: t, topK, topP };
    return { n, seed, ids, reserve, stop, sampling };
  }

  private cancel(req: Req, err: Error): void {
    if (req.settled) return;
    this.settleFailed(req, err);
    this.host.pump();
  }

  /** Reject a request and drop it from the queue, the pending list and idle lanes. */
  private settleFailed(req: Req, err: Error): void {
    if (req.settled) return;
    req.settled = true;
    req.detach();
    if (this.queue.remove((r) => r === req).length > 0) this.queue.admitWaiting(this.host.now());
    req.prefilled = undefined;
    const i = this.pending.indexOf(req);
    if (i >= 0) this.pending.splice(i, 1); // its prefill K/V is released now, not when a lane next joins
    for (const lane of this.lanes) this.dropSettled(lane);
    req.admitted.reject(err);
    req.done.reject(err);
  }

  private failAll(err: Error): void {
    for (const j of this.scoreJobs.splice(0)) j.done.reject(err);
    for (const r of this.queue.remove(() => true)) this.settleFailed(r, err);
    for (const r of [...this.pending]) this.settleFailed(r, err);
    this.pending.length = 0;
    for (const lane of this.lanes) for (const s of [...lane.seqs]) this.settleFailed(s.req, err);
  }
}
