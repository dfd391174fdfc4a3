/**
 * What src/pipeline/run.ts calls when a run has a cluster (`cluster:` in the file or the CLI's
 * `--cluster URL`): the worker stages are not built locally; in their place go `storeImages`
 * (the coordinator's ImageStore, for write/refLogps/dpoTrain) and the coordinator's operator.
 * After the flow, `finish` marks a completed run done (workers move on; its durable state is
 * removed) or keeps an interrupted one for `--resume`, and returns the report section.
 *
 * @example
 * const cluster = p.cluster ? await startCluster(p, p.cluster, resources, log) : null;
 * // build stages: skip cluster.workerStages, insert cluster.operators at the first of them
 * report.cluster = await cluster.finish(completed);
 */
import type { FlowOperator } from "../flow/index.ts";
import type { ResolvedPipeline } from "../pipeline/loader.ts";
import type { PipelineResources } from "../pipeline/resources.ts";
import type { ClusterConfig } from "../pipeline/schema.ts";
import { ClusterCoordinator, type ClusterReport } from "./coordinator.ts";
import { publishPathPolicy } from "./policy.ts";
import { clusterSplit, defaultRunId, runImageStore, storeImages } from "./run-cluster.ts";

export interface ClusterHook {
  /** Indices of the stages the workers run (not built locally). */
  readonly workerStages: readonly number[];
  /** The operators that stand in for them, in order. */
  readonly operators: readonly FlowOperator[];
  /** One progress line (batches, in flight, redeliveries, dead letters, per-worker images/s). */
  progressLine(): string;
  /** Ends the run on the cluster (done when `completed`), closes the connection; the report section. Idempotent. */
  finish(completed: boolean): Promise<ClusterReport>;
}

/** The cluster settings of a run: the file's `cluster:` section, with the CLI's URL (if any) taking precedence. */
export function clusterConfigOf(p: ResolvedPipeline, url?: string): ClusterConfig | null {
  if (url === undefined) return p.cluster ?? null;
  return { ackWaitMs: 30_000, maxDeliver: 4, workerConcurrency: 2, ...(p.cluster ?? {}), url };
}

/** Connects, announces the run to the workers and builds the stand-in operators. */
export async function startCluster(p: ResolvedPipeline, cfg: ClusterConfig, resources: PipelineResources, log: (l: string) => void): Promise<ClusterHook> {
  const split = clusterSplit(p);
  const decodeAt = split.workerStages.find((i) => p.stages[i]!.name === "decode");
  const decodeModel = decodeAt !== undefined ? String((p.stages[decodeAt]!.options as { model: string }).model) : null;
  const preprocess = split.needsPixels && decodeModel !== null ? (await resources.clip(decodeModel)).preprocess : null;
  const coordinator = await ClusterCoordinator.start({
    servers: cfg.url,
    run: defaultRunId(p),
    pipeline: p,
    stages: split.workerStages,
    maxInFlight: p.flow.maxInFlight,
    ackWaitMs: cfg.ackWaitMs,
    maxDeliver: cfg.maxDeliver,
    workerConcurrency: cfg.workerConcurrency,
    log,
  });
  // A policy folder on this machine's disk (e.g. the previous round's) reaches workers through the object store.
  await publishPathPolicy(coordinator, p);
  const timer = setInterval(() => log(coordinator.progressLine()), 10_000);
  let final: Promise<ClusterReport> | null = null;
  return {
    workerStages: split.workerStages,
    operators: [storeImages(runImageStore(p, resources), preprocess), coordinator.operator("cluster")],
    progressLine: () => coordinator.progressLine(),
    finish: (completed) =>
      (final ??= (async () => {
        clearInterval(timer);
        try {
          if (completed) await coordinator.finish();
          return coordinator.report();
        } finally {
          await coordinator.close();
        }
      })()),
  };
}
