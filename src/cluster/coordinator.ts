/**
 * The coordinator side of a cluster run: announces the run (its resolved pipeline) in the
 * `clipflow-runs` KV bucket, and gives the local flow one operator that stands for the
 * per-image stages the workers run. Each input batch becomes one work message; the operator
 * emits that batch's result in input order.
 *
 * - Flow control: the flow's credits already bound the source batches alive anywhere (a credit
 *   returns only when the trainer is done with what derived from it), so published-but-unanswered
 *   work ≤ maxInFlight; the work consumer's MaxAckPending is set to the same number. A slow
 *   trainer holds credits, the source stops, and nothing more is published.
 * - Exactly-once output: work and results carry `Nats-Msg-Id = <run>/<batch>` (server window);
 *   a batch id is a hash of its row ids, so a resumed run maps the same rows to the same id; the
 *   operator keeps the first result of each batch and counts later ones as redeliveries.
 *   Results arrive on a core subscription and, as a fallback for anything missed while
 *   disconnected, by a direct lookup of the batch's result subject every second.
 * - A batch the server gave up on (MAX_DELIVERIES advisory) or that a worker answered with an
 *   error fails as a whole: under `onError: skip` its rows go to the dead-letter file with the
 *   reason, under `fail` the run stops.
 *
 * @example
 * const c = await ClusterCoordinator.start({ servers: url, run: "r1", pipeline: p, stages: [1, 2, 3, 4], maxInFlight: 4 });
 * runFlow({ source, stages: [c.operator(), pairsOp, writeOp], maxInFlight: 4 });
 * await c.finish(); await c.close();
 */
import { createHash } from "node:crypto";
import type { RecordBatch } from "apache-arrow";
import { connect, headers as natsHeaders, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { operate, type FlowOperator } from "../flow/index.ts";
import { ConfigError, InputError, RuntimeError } from "../util/errors.ts";
import { pipelineToYaml, type ResolvedPipeline } from "../pipeline/loader.ts";
import type { ClusterReportSection, ClusterWorkerReport } from "../pipeline/report.ts";
import { deletePolicies, publishPolicy } from "./policy.ts";
import {
  H,
  RESULTS_STREAM,
  RUNS_BUCKET,
  WORK_STREAM,
  batchesToIpc,
  checkRunId,
  decodeResult,
  maxDeliveriesAdvisory,
  resultSubject,
  resultsFilter,
  workConsumer,
  workSubject,
  type ResultHead,
  type RunSpec,
} from "./protocol.ts";
import { ensureStreams, ensureWorkConsumer } from "./streams.ts";

/** Milliseconds between the coordinator's run-spec refreshes (workers treat 6 missed ones as an abandoned run). */
export const HEARTBEAT_MS = 5000;

export interface CoordinatorOptions {
  servers: string | string[];
  /** Run id (subject token). The same id resumes the run's durable state. */
  run: string;
  pipeline: ResolvedPipeline;
  /** Indices in `pipeline.stages` the workers run. */
  stages: number[];
  /** Work messages unacked at once (= the flow's maxInFlight). */
  maxInFlight: number;
  /** Default 30 000 ms: a few times a batch's p95 time, with in-progress acks every AckWait/3. */
  ackWaitMs?: number;
  /** Default 4. */
  maxDeliver?: number;
  /** Batches one worker runs at once (default 2: the next batch's prompts join the decode batch). */
  workerConcurrency?: number;
  /** Default HEARTBEAT_MS. */
  heartbeatMs?: number;
  log?: (line: string) => void;
}

/** Per-worker figures for progress and the report (the shape src/pipeline/report.ts defines). */
export type WorkerReport = ClusterWorkerReport;

/** What the coordinator saw; `report.json`'s `cluster` section (src/pipeline/report.ts is the contract). */
export type ClusterReport = ClusterReportSection;

interface Pending {
  resolve: (r: { head: ResultHead; batches: RecordBatch[] }) => void;
  reject: (e: Error) => void;
  since: number;
}

class Sizes {
  n = 0;
  sum = 0;
  min = Infinity;
  max = 0;
  add(b: number): void {
    this.n++;
    this.sum += b;
    this.min = Math.min(this.min, b);
    this.max = Math.max(this.max, b);
  }
  get(): { min: number; mean: number; max: number } {
    return this.n === 0 ? { min: 0, mean: 0, max: 0 } : { min: this.min, mean: this.sum / this.n, max: this.max };
  }
}

/**
 * Deterministic batch id: hash of the policy version and the batch's row ids (independent of
 * position and of which process sent it; the same images under another policy are other work).
 */
export function batchIdOf(batch: RecordBatch, policyVersion = 0): string {
  const ids = batch.getChild("id") ?? batch.getChild("image_id");
  if (!ids) throw new InputError("cluster: a work batch needs an 'id' column", { code: "missing column" });
  const h = createHash("sha256");
  h.update(`policy ${policyVersion}\n`);
  for (let i = 0; i < batch.numRows; i++) h.update(`${String(ids.get(i))}\n`);
  return h.digest("hex").slice(0, 24);
}

export class ClusterCoordinator {
  private readonly pending = new Map<string, Pending>();
  private readonly answered = new Set<string>();
  private readonly seqToBatch = new Map<number, string>();
  private readonly batchToSeq = new Map<string, number>();
  private readonly subs: Subscription[] = [];
  private watchdog: ReturnType<typeof setInterval> | null = null;
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private policyVersion = 0;
  private readonly workSizes = new Sizes();
  private readonly resultSizes = new Sizes();
  private readonly counts: Omit<ClusterReport, "run" | "servers" | "stages" | "workBytes" | "resultBytes" | "workers"> = {
    batchesPublished: 0,
    batchesReused: 0,
    batchesDone: 0,
    batchesDeadLettered: 0,
    duplicateResults: 0,
    redeliveries: 0,
    stageCounts: {},
    policyVersions: {},
  };
  private readonly workers = new Map<string, WorkerReport>();
  private readonly log: (l: string) => void;

  private constructor(
    readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly kv: KV,
    private readonly spec: RunSpec,
    private readonly opts: CoordinatorOptions,
  ) {
    this.log = (l) => opts.log?.(`cluster ${spec.run}: ${l}`);
  }

  /** Connects, creates streams and the run's consumer, announces the run and listens for results. */
  static async start(opts: CoordinatorOptions): Promise<ClusterCoordinator> {
    const run = checkRunId(opts.run);
    // internal invariant: run-cluster derives the stage indices from this pipeline
    for (const i of opts.stages) if (!opts.pipeline.stages[i]) throw new Error(`cluster: stage index ${i} is not in the pipeline`);
    const nc = await connect({ servers: opts.servers, name: `clipflow-coordinator-${run}`, maxReconnectAttempts: -1, reconnectTimeWait: 250 }).catch((e: unknown) => {
      throw new RuntimeError(`cluster: cannot connect to ${String(opts.servers)} (${(e as Error).message.split("\n")[0]})`, { code: "cluster unreachable" });
    });
    const jsm = await jetstreamManager(nc);
    await ensureStreams(jsm);
    const ackWaitMs = opts.ackWaitMs ?? 30_000;
    const maxDeliver = opts.maxDeliver ?? 4;
    await ensureWorkConsumer(jsm, run, { ackWaitMs, maxDeliver, maxAckPending: opts.maxInFlight });
    const kv = await new Kvm(nc).create(RUNS_BUCKET, { history: 1 });
    const previous = await kv.get(run);
    const policyVersion = previous?.operation === "PUT" && previous.value.byteLength > 0 ? previous.json<RunSpec>().policyVersion : 0;
    const spec: RunSpec = { run, pipeline: pipelineToYaml(opts.pipeline), stages: [...opts.stages], ackWaitMs, maxDeliver, workerConcurrency: opts.workerConcurrency ?? 2, heartbeatMs: opts.heartbeatMs ?? HEARTBEAT_MS, policyVersion, state: "running" };
    const c = new ClusterCoordinator(nc, jsm, kv, spec, opts);
    c.policyVersion = policyVersion;
    c.listen();
    await kv.put(run, JSON.stringify(spec));
    c.log(`announced on ${nc.getServer()}: stages ${opts.stages.map((i) => opts.pipeline.stages[i]!.name).join(" → ")}, maxInFlight ${opts.maxInFlight}, AckWait ${ackWaitMs} ms, MaxDeliver ${maxDeliver}${policyVersion > 0 ? `, policy v${policyVersion}` : ""}`);
    return c;
  }

  get run(): string {
    return this.spec.run;
  }

  /** The policy version work published now is tagged with (0: the pipeline's own model). */
  get currentPolicyVersion(): number {
    return this.policyVersion;
  }

  private listen(): void {
    const results = this.nc.subscribe(resultsFilter(this.run), {
      callback: (err, msg) => {
        if (err) return;
        const batch = msg.subject.slice(msg.subject.lastIndexOf(".") + 1);
        this.onResult(batch, msg.data);
      },
    });
    const advisories = this.nc.subscribe(maxDeliveriesAdvisory(this.run), {
      callback: (err, msg) => {
        if (err) return;
        const a = msg.json<{ stream_seq: number; deliveries: number }>();
        const batch = this.seqToBatch.get(a.stream_seq);
        if (batch === undefined) return;
        this.fail(batch, `batch ${batch}: delivered ${a.deliveries} times without an ack (a worker crashed or exceeded AckWait each time); MaxDeliver ${this.spec.maxDeliver} reached`);
        // The message stays in the work-queue stream after MaxDeliver: remove it.
        void this.jsm.streams.deleteMessage(WORK_STREAM, a.stream_seq, false).catch(() => {});
      },
    });
    this.subs.push(results, advisories);
    // Fallback for results published while this connection was away (a server restart).
    this.watchdog = setInterval(() => void this.poll(), 1000);
    // Heartbeat: a new KV revision every few seconds tells workers the coordinator is alive; a
    // run whose revision stops changing was abandoned (workers leave it when they are idle).
    this.heartbeat = setInterval(() => {
      if (this.spec.state === "running") void this.kv.put(this.run, JSON.stringify(this.spec)).catch(() => {});
    }, this.spec.heartbeatMs);
  }

  private polling = false;
  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const now = performance.now();
      for (const [batch, p] of [...this.pending]) {
        if (now - p.since < 1000) continue;
        const m = await this.jsm.streams.getMessage(RESULTS_STREAM, { last_by_subj: resultSubject(this.run, batch) }).catch(() => null);
        if (m) this.onResult(batch, m.data, true);
      }
      await this.stuck(now);
    } finally {
      this.polling = false;
    }
  }

  /**
   * Fallback for a MAX_DELIVERIES advisory this connection missed (it is a core message): when
   * the consumer has nothing pending and nothing unacked, a work message still in the stream
   * will never be delivered again.
   */
  private async stuck(now: number): Promise<void> {
    const old = [...this.pending].filter(([b, p]) => now - p.since > 2 * this.spec.ackWaitMs && this.batchToSeq.has(b));
    if (old.length === 0) return;
    const ci = await this.jsm.consumers.info(WORK_STREAM, workConsumer(this.run)).catch(() => null);
    if (!ci || ci.num_pending !== 0 || ci.num_ack_pending !== 0) return;
    for (const [batch] of old) {
      const seq = this.batchToSeq.get(batch);
      if (seq === undefined) continue;
      const m = await this.jsm.streams.getMessage(WORK_STREAM, { seq }).catch(() => null);
      if (m && this.pending.has(batch)) {
        this.fail(batch, `batch ${batch}: its work message is no longer delivered (MaxDeliver ${this.spec.maxDeliver} reached; workers crashed or exceeded AckWait)`);
        void this.jsm.streams.deleteMessage(WORK_STREAM, seq, false).catch(() => {});
      }
    }
  }

  /** A batch is answered: forget its work message's sequence (these maps stay as small as the in-flight set). */
  private settle(batch: string): void {
    this.pending.delete(batch);
    this.answered.add(batch);
    const seq = this.batchToSeq.get(batch);
    if (seq !== undefined) this.seqToBatch.delete(seq);
    this.batchToSeq.delete(batch);
  }

  private fail(batch: string, reason: string): void {
    const p = this.pending.get(batch);
    if (!p) return;
    this.settle(batch);
    this.counts.batchesDeadLettered++;
    this.log(reason);
    p.reject(new RuntimeError(reason, { code: /MaxDeliver/.test(reason) ? "max deliveries" : "batch failed" }));
  }

  /** A result arrived (`lookedUp`: read back from the stream by the fallback, not a new message). */
  private onResult(batch: string, body: Uint8Array, lookedUp = false): void {
    const p = this.pending.get(batch);
    if (!p) {
      // Only a second *message* is a duplicate; a look-up racing the live delivery is the same one.
      if (this.answered.has(batch) && !lookedUp) this.counts.duplicateResults++;
      return;
    }
    let r: { head: ResultHead; batches: RecordBatch[] };
    try {
      r = decodeResult(body, `result ${this.run}/${batch}`);
    } catch (e) {
      return this.fail(batch, (e as Error).message);
    }
    this.settle(batch);
    this.resultSizes.add(body.byteLength);
    const h = r.head;
    if (h.delivery > 1) this.counts.redeliveries++;
    this.counts.policyVersions[String(h.policyVersion)] = (this.counts.policyVersions[String(h.policyVersion)] ?? 0) + 1;
    const w = this.workers.get(h.worker) ?? { worker: h.worker, batches: 0, rowsIn: 0, rowsOut: 0, busyMs: 0, imagesPerSec: 0, redelivered: 0 };
    w.batches++;
    w.rowsIn += h.rowsIn;
    w.rowsOut += h.rowsOut;
    w.busyMs += h.ms;
    w.imagesPerSec = w.busyMs > 0 ? (w.rowsIn * 1000) / w.busyMs : 0;
    if (h.delivery > 1) w.redelivered++;
    this.workers.set(h.worker, w);
    if (h.error !== null) return this.fail(batch, `batch ${batch} on worker ${h.worker}: ${h.error}`);
    for (const s of h.stages) {
      const t = (this.counts.stageCounts[s.stage] ??= { rowsIn: 0, rowsOut: 0, filtered: 0, expanded: 0, deadLettered: 0 });
      t.rowsIn += s.rowsIn;
      t.rowsOut += s.rowsOut;
      t.filtered += s.filtered;
      t.expanded += s.expanded;
      t.deadLettered += s.deadLettered;
    }
    this.counts.batchesDone++;
    p.resolve(r);
  }

  /** Sends `batch` to the workers (or finds its result from an earlier incarnation of the run). */
  async submit(batch: RecordBatch, signal?: AbortSignal): Promise<{ head: ResultHead; batches: RecordBatch[] }> {
    const version = this.policyVersion;
    const id = batchIdOf(batch, version);
    if (this.pending.has(id)) throw new InputError(`cluster: batch ${id} is already in flight (two batches with the same row ids)`, { code: "duplicate batch" });
    this.answered.delete(id);
    const done = new Promise<{ head: ResultHead; batches: RecordBatch[] }>((resolve, reject) => this.pending.set(id, { resolve, reject, since: performance.now() }));
    // A resumed run: the result may be in the stream already.
    const old = await this.jsm.streams.getMessage(RESULTS_STREAM, { last_by_subj: resultSubject(this.run, id) }).catch(() => null);
    if (old) {
      this.counts.batchesReused++;
      this.onResult(id, old.data, true);
      return done;
    }
    const body = batchesToIpc([batch]);
    const max = this.nc.info?.max_payload ?? 1 << 20;
    if (body.byteLength > max - 4096) {
      this.pending.delete(id);
      throw new ConfigError(`cluster: work batch ${id} is ${body.byteLength} bytes, over the server's max_payload ${max}; lower stages.source.batchSize (or raise max_payload on the server)`, { code: "batch too large" });
    }
    this.workSizes.add(body.byteLength);
    const js = jetstream(this.nc);
    for (let attempt = 1; ; attempt++) {
      if (signal?.aborted || this.nc.isClosed()) {
        this.pending.delete(id);
        throw new RuntimeError(signal?.aborted ? "cluster: interrupted" : "cluster: the coordinator's connection is closed", { code: "interrupted" });
      }
      try {
        const h = natsHeaders();
        h.set(H.batch, id);
        h.set(H.policy, String(version));
        const ack = await js.publish(workSubject(this.run), body, { msgID: `${this.run}/${id}`, headers: h, timeout: 5000 });
        this.seqToBatch.set(ack.seq, id);
        this.batchToSeq.set(id, ack.seq);
        break;
      } catch (e) {
        if (attempt === 1 || attempt % 10 === 0) this.log(`publish work ${id}: ${(e as Error).message.split("\n")[0]} (retrying)`);
        await new Promise((r) => setTimeout(r, Math.min(2000, 100 * attempt)));
      }
    }
    this.counts.batchesPublished++;
    return done;
  }

  /**
   * The flow operator standing for the worker stages: one work message per input batch, results
   * emitted in input order, counts carried over so the flow's reconciliation holds.
   */
  operator(name = "cluster"): FlowOperator {
    const concurrency = this.opts.maxInFlight;
    return operate({ name, concurrency }, () => {
      let tail: Promise<unknown> = Promise.resolve();
      return {
        process: (fb, scope) => {
          const result = this.submit(fb.batch);
          const prev = tail;
          const ordered = (async () => {
            // Emit in input order (a result can arrive before an earlier batch's).
            await prev.catch(() => {});
            const r = await result;
            const ctx = fb.lineage.ctx;
            const m = ctx.metrics(name);
            const n = fb.batch.numRows;
            const h = r.head;
            const D = h.dead.length;
            if (n + h.expanded !== h.rowsOut + h.filtered + D || h.rowsIn !== n)
              throw new RuntimeError(`batch ${h.batch} from worker ${h.worker}: counts do not reconcile (in ${h.rowsIn}/${n} + expanded ${h.expanded} != out ${h.rowsOut} + filtered ${h.filtered} + dead ${D})`, {
                code: "counts do not reconcile",
                where: { stage: name },
              });
            for (const d of h.dead) ctx.deadLetter.add(d.id, d.stage, d.reason, d.code);
            scope.filtered(h.filtered);
            // operate() adds (in - filtered - out) = D - E to `filtered` if positive, else E - D
            // to `expanded`; the worker's counts are exact, so pre-compensate to keep them.
            m.deadLettered += D;
            if (D - h.expanded > 0) {
              m.filtered -= D - h.expanded;
              m.expanded += h.expanded;
            } else m.expanded += D;
            return r.batches;
          })();
          tail = ordered;
          return ordered;
        },
      };
    });
  }

  /** Publishes a trained policy folder as the next version; batches published after this use it. */
  async publishPolicy(dir: string): Promise<number> {
    const v = this.policyVersion + 1;
    const bytes = await publishPolicy(this.nc, this.run, v, dir);
    this.policyVersion = v;
    this.spec.policyVersion = v;
    await this.kv.put(this.run, JSON.stringify(this.spec));
    this.log(`policy version ${v} published (${bytes} bytes)`);
    return v;
  }

  /** The report section (also the live progress). */
  report(): ClusterReport {
    return {
      run: this.run,
      servers: this.nc.getServer(),
      stages: this.spec.stages.map((i) => this.opts.pipeline.stages[i]!.name),
      ...structuredClone(this.counts),
      workBytes: this.workSizes.get(),
      resultBytes: this.resultSizes.get(),
      workers: [...this.workers.values()].map((w) => ({ ...w })).sort((a, b) => a.worker.localeCompare(b.worker)),
    };
  }

  /** One progress line: batches, in-flight, redeliveries, dead letters, per-worker images/s. */
  progressLine(): string {
    const r = this.report();
    const ws = r.workers.map((w) => `${w.worker} ${w.batches}b ${w.imagesPerSec.toFixed(1)} img/s`).join(", ");
    return `cluster: ${r.batchesDone} batches done, ${this.pending.size} in flight, redeliveries ${r.redeliveries}, dead-lettered ${r.batchesDeadLettered}${ws ? `; ${ws}` : ""}`;
  }

  /**
   * The run completed: mark it done (workers move on), remove the work consumer and the run's
   * results. Not called on an interrupted run, whose durable state a `--resume` reuses.
   */
  async finish(): Promise<void> {
    this.spec.state = "done";
    await this.kv.put(this.run, JSON.stringify(this.spec));
    await this.jsm.consumers.delete(WORK_STREAM, workConsumer(this.run)).catch(() => {});
    await this.jsm.streams.purge(WORK_STREAM, { filter: workSubject(this.run) }).catch(() => {});
    await this.jsm.streams.purge(RESULTS_STREAM, { filter: resultsFilter(this.run) }).catch(() => {});
    if (this.policyVersion > 0) await deletePolicies(this.nc, this.run).catch(() => {});
  }

  /** Stops listening and closes the connection (the run's durable state stays unless finish() ran). */
  async close(): Promise<void> {
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    this.watchdog = null;
    for (const s of this.subs.splice(0)) s.unsubscribe();
    for (const p of this.pending.values()) p.reject(new RuntimeError("cluster: coordinator closed", { code: "interrupted" }));
    this.pending.clear();
    await this.nc.drain().catch(() => {});
  }
}
