/**
 * A clipflow cluster worker: serves the per-image stages (decode, generate, clipScore, filter) of
 * whatever run the coordinator announced in the `clipflow-runs` KV bucket, with the same
 * operator code and the models the run's `models:` entries name (built through the stage
 * registry, exactly as the single process builds them).
 *
 * Per work message (a durable pull consumer shared by all workers, one message per pull):
 * decode the Arrow IPC batch → run it through the stages in a flow of its own → publish the
 * result (Arrow IPC + counts + dead-lettered rows) to `clipflow.results.<run>.<batch>` with
 * `Nats-Msg-Id = <run>/<batch>` and wait for the server's ack → THEN ack the work message.
 * In-progress acks (`working()`) every AckWait/3 while the batch runs. A batch that fails (not
 * a row: the batch) is nak'ed for redelivery until its last delivery, where an error result is
 * published instead, so the coordinator dead-letters it with the reason. A worker killed
 * mid-batch acks nothing: the server redelivers after AckWait.
 *
 * Policy versions: a work message names the version it must be sampled with; the worker switches
 * (downloads the version from the run's object store, rebuilds its stages) only when none of its
 * batches is running, so no batch ever mixes two policies.
 *
 * @example
 * const ac = new AbortController();
 * await runWorker({ servers: "nats://127.0.0.1:4222", signal: ac.signal, log: console.error });
 */
import { hostname } from "node:os";
import type { RecordBatch } from "apache-arrow";
import { connect, headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamManager, type JsMsg } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { FlowOperator } from "../flow/index.ts";
import { parsePipeline, type ResolvedPipeline } from "../pipeline/loader.ts";
import { stageRegistry, type StageContext, type StageDefinition } from "../pipeline/registry.ts";
import { PipelineResources } from "../pipeline/resources.ts";
import { flowNames } from "../pipeline/run-outcome.ts";
import type { z } from "zod";
import { runBatch } from "./batch-runner.ts";
import { fetchPolicy, withPolicy } from "./policy.ts";
import { H, RUNS_BUCKET, WORK_STREAM, encodeResult, ipcToBatches, resultSubject, workConsumer, type ResultHead, type RunSpec } from "./protocol.ts";
import { ensureStreams } from "./streams.ts";
import { HEARTBEAT_MS } from "./coordinator.ts";
import { ConfigError, RuntimeError } from "../util/errors.ts";

export interface WorkerOptions {
  /** NATS server URL(s), e.g. nats://host:4222. */
  servers: string | string[];
  /** Worker id in logs, results and the coordinator's report (default `<host>-<pid>`). */
  id?: string;
  /** Serve only this run id (default: any running run). */
  run?: string;
  /** Return after serving one run to its end (default: wait for the next run). */
  once?: boolean;
  signal?: AbortSignal;
  /** Progress and event lines (stderr in the CLI). */
  log?: (line: string) => void;
  /** Milliseconds between progress lines (default 5000; 0: none). */
  progressEveryMs?: number;
  /** Makes the run's resources (tests inject a models folder). */
  resources?: (p: ResolvedPipeline) => PipelineResources;
  /** Called before each batch runs (fault-injection tests kill the process here). */
  beforeBatch?: (info: { run: string; batch: string; delivery: number; ids: string[] }) => void | Promise<void>;
  /** Folder where downloaded policy versions are kept (default: a folder under the OS temp dir). */
  policyDir?: string;
}

/** What a worker did (returned when it stops; also the body of its progress lines). */
export interface WorkerStats {
  id: string;
  runs: number;
  batches: number;
  rowsIn: number;
  rowsOut: number;
  /** Batches received on a redelivery (delivery > 1). */
  redelivered: number;
  /** Batches answered with an error result (dead-lettered by the coordinator). */
  failed: number;
  /** Batches nak'ed for a retry. */
  retried: number;
  busyMs: number;
  policyVersion: number;
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
  });

/** The stage operators a worker runs for `spec`, built through the stage registry. */
export async function buildWorkerStages(p: ResolvedPipeline, spec: Pick<RunSpec, "stages">, resources: PipelineResources, signal: AbortSignal, log: (l: string) => void): Promise<FlowOperator[]> {
  const names = flowNames(p.stages);
  const ops: FlowOperator[] = [];
  for (const i of spec.stages) {
    const s = p.stages[i];
    // The run spec comes from the server: a coordinator of another pipeline (or version) misbehaves.
    if (!s) throw new RuntimeError(`cluster: run spec names stage index ${i}, the pipeline has ${p.stages.length} stages`, { code: "bad run spec" });
    const def = stageRegistry[s.name] as StageDefinition<z.ZodType>;
    const context: StageContext = {
      pipeline: p,
      index: s.index,
      name: names[s.index]!,
      resources,
      flow: () => {
        throw new ConfigError("a worker stage has no run-wide flow context; run this stage on the coordinator", { code: "stage not distributable", where: { stage: names[s.index]! } });
      },
      resume: false,
      allowConfigChange: false,
      signal,
      log,
    };
    const inst = await def.create!(s.options, context);
    if (typeof inst !== "function") {
      throw new ConfigError(`cluster: stage ${s.name} is a source; workers run operators only`, { code: "stage not distributable", where: { stage: names[s.index]! } });
    }
    ops.push(inst);
  }
  return ops;
}

/** Publishes until the server acks (retrying across reconnects), unless `signal` fires. */
async function publishDurably(nc: NatsConnection, subject: string, body: Uint8Array, msgID: string, hdr: Record<string, string>, signal: AbortSignal, log: (l: string) => void): Promise<boolean> {
  const js = jetstream(nc);
  for (let attempt = 1; !signal.aborted; attempt++) {
    try {
      const h = natsHeaders();
      for (const [k, v] of Object.entries(hdr)) h.set(k, v);
      await js.publish(subject, body, { msgID, headers: h, timeout: 5000 });
      return true;
    } catch (e) {
      if (attempt === 1 || attempt % 10 === 0) log(`publish ${msgID}: ${(e as Error).message.split("\n")[0]} (retrying)`);
      await sleep(Math.min(2000, 100 * attempt), signal);
    }
  }
  return false;
}

/** Runs a worker until `signal` fires (or, with `once`, until its run ends). Never throws for a bad batch. */
export async function runWorker(opts: WorkerOptions): Promise<WorkerStats> {
  const id = opts.id ?? `${hostname()}-${process.pid}`;
  const log = (l: string): void => opts.log?.(`worker ${id}: ${l}`);
  const signal = opts.signal ?? new AbortController().signal;
  const stats: WorkerStats = { id, runs: 0, batches: 0, rowsIn: 0, rowsOut: 0, redelivered: 0, failed: 0, retried: 0, busyMs: 0, policyVersion: 0 };
  const nc = await connect({ servers: opts.servers, name: `clipflow-worker-${id}`, maxReconnectAttempts: -1, reconnectTimeWait: 250 }).catch((e: unknown) => {
    throw new RuntimeError(`cannot connect to ${String(opts.servers)} (${(e as Error).message.split("\n")[0]})`, { code: "cluster unreachable", cause: e });
  });
  log(`connected to ${nc.getServer()} (pid ${process.pid})`);
  try {
    const jsm = await jetstreamManager(nc);
    await ensureStreams(jsm);
    const kv = await new Kvm(nc).create(RUNS_BUCKET, { history: 1 });
    const abandoned = new Map<string, number>();
    for (;;) {
      if (signal.aborted) break;
      const spec = await nextRun(jsm, kv, opts.run, signal, abandoned);
      if (!spec) break;
      stats.runs++;
      const left = await serveRun(nc, kv, spec, opts, stats, id, log, signal);
      if (left !== null) abandoned.set(spec.run, left);
      // --once ends with the run; an abandoned run is not an end while it is the one asked for
      if (opts.once && !(left !== null && opts.run === spec.run)) break;
    }
  } finally {
    await nc.drain().catch(() => {});
    log(`stopped: ${JSON.stringify(stats)}`);
  }
  return stats;
}

/**
 * The keys of the runs bucket, from one stream-info request (subjects_filter, nats-server ≥ 2.9)
 * rather than `kv.keys()`, whose consumer can keep waiting while coordinators' heartbeats add
 * revisions.
 */
async function runKeys(jsm: JetStreamManager): Promise<string[]> {
  const prefix = `$KV.${RUNS_BUCKET}.`;
  const info = await jsm.streams.info(`KV_${RUNS_BUCKET}`, { subjects_filter: `${prefix}>` });
  return Object.keys(info.state.subjects ?? {}).map((s) => s.slice(prefix.length));
}

/** A run is abandoned when its spec's revision (the coordinator's heartbeat) has not changed for 6 heartbeats. */
const abandonedMs = (spec: RunSpec): number => 6 * (spec.heartbeatMs ?? HEARTBEAT_MS);

async function readSpec(kv: KV, run: string): Promise<(RunSpec & { revision: number }) | null> {
  const e = await kv.get(run);
  if (!e || e.operation !== "PUT" || e.value.byteLength === 0) return null;
  return { ...e.json<RunSpec>(), revision: e.revision };
}

/**
 * The next running run (the requested one, or any), polling the KV bucket every 500 ms. Runs this
 * worker left as abandoned (`skip`: run → revision) are passed over until their revision changes
 * (a resumed coordinator).
 */
async function nextRun(jsm: JetStreamManager, kv: KV, only: string | undefined, signal: AbortSignal, skip: Map<string, number>): Promise<RunSpec | null> {
  while (!signal.aborted) {
    try {
      const keys: string[] = only ? [only] : await runKeys(jsm);
      for (const k of keys.sort()) {
        const s = await readSpec(kv, k);
        if (s?.state === "running" && skip.get(k) !== s.revision) return s;
      }
    } catch {
      // server away (restart): try again
    }
    await sleep(500, signal);
  }
  return null;
}

/** Serves `spec` until it is done (returns null) or abandoned by its coordinator (returns the stale revision). */
async function serveRun(nc: NatsConnection, kv: KV, spec: RunSpec, opts: WorkerOptions, stats: WorkerStats, id: string, log: (l: string) => void, signal: AbortSignal): Promise<number | null> {
  const run = spec.run;
  const base = parsePipeline(spec.pipeline, `cluster-run-${run}.yaml`, { checkFiles: false });
  const onError = base.flow.onError;
  const stageNames = spec.stages.map((i) => base.stages[i]?.name ?? `#${i}`);
  log(`serving run ${run}: stages ${stageNames.join(" → ")}, concurrency ${spec.workerConcurrency}, AckWait ${spec.ackWaitMs} ms, MaxDeliver ${spec.maxDeliver}`);

  // Stages of the current policy version; rebuilt between batches when a message names another one.
  let version = -1;
  let resources: PipelineResources | null = null;
  let ops: FlowOperator[] = [];
  let active = 0;
  let idle: (() => void)[] = [];
  let switching: Promise<void> | null = null;
  let gate: Promise<void> | null = null;
  let openGate: () => void = () => {};
  const switchTo = async (v: number): Promise<void> => {
    while (active > 0) await new Promise<void>((r) => idle.push(r));
    if (version === v) return;
    const t0 = performance.now();
    if (resources) await resources.close().catch((e: unknown) => log(`closing resources: ${(e as Error).message}`));
    const p = v === 0 ? base : withPolicy(base, await fetchPolicy(nc, run, v, opts.policyDir));
    resources = (opts.resources ?? ((q) => new PipelineResources(q)))(p);
    ops = await buildWorkerStages(p, spec, resources, signal, log);
    version = v;
    stats.policyVersion = v;
    log(`policy version ${v} ready (${Math.round(performance.now() - t0)} ms)`);
  };

  const handle = async (m: JsMsg): Promise<void> => {
    const batchId = m.headers?.get(H.batch) ?? `seq${m.seq}`;
    const want = Number(m.headers?.get(H.policy) ?? "0");
    const delivery = m.info.deliveryCount;
    const ticker = setInterval(() => m.working(), Math.max(50, Math.floor(spec.ackWaitMs / 3)));
    let exclusive = false;
    try {
      while (version !== want) {
        switching ??= switchTo(want).finally(() => (switching = null));
        await switching;
      }
      // A redelivered batch runs alone: if it is the one that crashed a worker, it must not take
      // innocent batches down with it again (each crash costs the batches alongside a delivery).
      for (;;) {
        if (gate) await gate;
        else if (delivery > 1 && active > 0) await new Promise<void>((r) => idle.push(r));
        else break;
      }
      if (delivery > 1) gate = new Promise<void>((r) => (openGate = r));
      exclusive = delivery > 1;
      active++;
      const t0 = performance.now();
      if (delivery > 1) stats.redelivered++;
      let head: ResultHead;
      let out: RecordBatch[] = [];
      try {
        const batches = ipcToBatches(m.data, `work ${run}/${batchId}`);
        if (batches.length !== 1) throw new RuntimeError(`work ${run}/${batchId}: expected one record batch, got ${batches.length}`, { code: "bad work message" });
        const input = batches[0]!;
        if (opts.beforeBatch) {
          const ids = input.getChild("id");
          await opts.beforeBatch({ run, batch: batchId, delivery, ids: Array.from({ length: input.numRows }, (_, i) => String(ids?.get(i))) });
        }
        const r = await runBatch(input, ops, onError);
        if (r.error !== null && onError === "skip" && delivery < spec.maxDeliver) {
          // A batch-level failure under skip: maybe transient (a worker thread died); let another delivery try.
          stats.retried++;
          log(`batch ${batchId} (delivery ${delivery}): ${r.error}; nak for redelivery`);
          m.nak(250);
          return;
        }
        out = r.error === null ? r.batches : [];
        head = {
          batch: batchId, worker: id, delivery, policyVersion: version, ms: 0,
          rowsIn: input.numRows, rowsOut: r.error === null ? r.rowsOut : 0,
          expanded: r.error === null ? r.expanded : 0, filtered: r.error === null ? r.filtered : 0,
          dead: r.error === null ? r.dead : [], stages: r.stages,
          error: r.error === null ? null : `after ${delivery} deliveries: ${r.error}`, fatal: r.error !== null && onError === "fail",
        };
      } catch (e) {
        // The message itself is unusable (not Arrow IPC): retrying cannot help.
        head = { batch: batchId, worker: id, delivery, policyVersion: version, ms: 0, rowsIn: 0, rowsOut: 0, expanded: 0, filtered: 0, dead: [], stages: [], error: (e as Error).message, fatal: onError === "fail" };
      }
      head.ms = performance.now() - t0;
      const ok = await publishDurably(nc, resultSubject(run, batchId), encodeResult(head, out), `${run}/${batchId}`, { [H.batch]: batchId, [H.policy]: String(version) }, signal, log);
      if (!ok) return; // stopping: the message is redelivered to another worker
      m.ack();
      stats.batches++;
      stats.rowsIn += head.rowsIn;
      stats.rowsOut += head.rowsOut;
      stats.busyMs += head.ms;
      if (head.error !== null) {
        stats.failed++;
        log(`batch ${batchId}: failed (${head.error})`);
      }
    } finally {
      clearInterval(ticker);
      if (exclusive) {
        gate = null;
        openGate();
      }
      if (active > 0) active--;
      if (active === 0) for (const r of idle.splice(0)) r();
    }
  };

  const js = jetstream(nc);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const progress = (opts.progressEveryMs ?? 5000) > 0
    ? setInterval(() => {
        const s = (performance.now() - t0) / 1000;
        const c = process.cpuUsage(cpu0);
        log(`run ${run}: ${stats.batches} batches, ${stats.rowsIn} images (${(stats.rowsIn / s).toFixed(1)}/s), redelivered ${stats.redelivered}, failed ${stats.failed}; load: ${active}/${spec.workerConcurrency} batches running, CPU ${(((c.user + c.system) / 1e6 / s) * 100).toFixed(0)}%`);
      }, opts.progressEveryMs ?? 5000)
    : null;
  let done = false;
  let lastRevision = -1;
  let revisionSince = performance.now();
  let abandonedAt: number | null = null;
  const loop = async (): Promise<void> => {
    let consumer = null;
    while (!signal.aborted && !done) {
      try {
        consumer ??= await js.consumers.get(WORK_STREAM, workConsumer(run));
        const m = await consumer.next({ expires: 1000 });
        if (m) {
          await handle(m);
          continue;
        }
      } catch (e) {
        consumer = null;
        if (!signal.aborted) await sleep(250, signal);
        void e;
      }
      // No work right now: has the run ended, or has its coordinator stopped refreshing it?
      try {
        const s = await readSpec(kv, run);
        if (!s || s.state !== "running") done = true;
        else if (s.revision !== lastRevision) {
          lastRevision = s.revision;
          revisionSince = performance.now();
        } else if (active === 0 && performance.now() - revisionSince > abandonedMs(spec)) {
          abandonedAt = s.revision;
          done = true;
        }
      } catch {
        // server away: keep trying
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: spec.workerConcurrency }, loop));
    if (abandonedAt !== null) log(`run ${run}: no heartbeat from its coordinator for ${abandonedMs(spec) / 1000} s; leaving it (a resumed coordinator brings it back)`);
    else log(`run ${run} ended: ${stats.batches} batches served`);
    return abandonedAt;
  } finally {
    if (progress) clearInterval(progress);
    if (resources) await (resources as PipelineResources).close().catch(() => {});
  }
}
