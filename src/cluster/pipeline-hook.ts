/**
 * The cluster layer as the pipeline runner sees it (src/pipeline/cluster-layer.ts's contract):
 * when a run has a cluster (`cluster:` in the file or the CLI's `--cluster URL`) the worker stages
 * are not built locally; in their place go `storeImages` (the coordinator's ImageStore, for
 * write/refLogps/dpoTrain) and the coordinator's operator. After the flow, `finish` marks a
 * completed run done (workers move on; its durable state is removed) or keeps an interrupted one
 * for `--resume`, and returns the report section. src/pipeline never imports this file: the
 * composition root (the `bun run pipeline` entry) passes `clusterLayer` to `runPipeline`.
 *
 * @example
 * import { clusterLayer } from "./pipeline-hook.ts";
 * const { report } = await runPipeline(p, { command, resumeCommand, clusterLayer });
 * report.cluster?.batchesDone;
 */
import type { ClusterLayer, ClusterSession } from "../pipeline/cluster-layer.ts";
import type { ResolvedPipeline } from "../pipeline/loader.ts";
import type { PipelineResources } from "../pipeline/resources.ts";
import type { ClusterConfig } from "../pipeline/schema.ts";
import { ClusterCoordinator, type ClusterReport } from "./coordinator.ts";
import { publishPathPolicy } from "./policy.ts";
import { clusterSplit, defaultRunId, runImageStore, storeImages } from "./run-cluster.ts";

/** src/cluster as the pipeline runner's `clusterLayer` (RunPipelineOptions). */
export const clusterLayer: ClusterLayer = { start: startCluster };

/** Connects, announces the run to the workers and builds the stand-in operators. */
export async function startCluster(p: ResolvedPipeline, cfg: ClusterConfig, resources: PipelineResources, log: (l: string) => void): Promise<ClusterSession> {
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
