/**
 * The injection point through which a run reaches a cluster, so that src/pipeline never imports
 * src/cluster (the cluster layer sits on top of the pipeline: it imports the loader, the registry
 * and the resources). The pipeline knows only this contract; src/cluster/pipeline-hook.ts
 * implements it as `clusterLayer`, and whoever composes both (the `bun run pipeline` entry,
 * test/cluster's fixtures) passes it as `RunPipelineOptions.clusterLayer`.
 *
 * A run that asks for a cluster (`cluster:` in the file or `--cluster URL`) without a layer fails
 * with a ConfigError before any stage is built: it never silently runs everything locally.
 *
 * @example
 * import { clusterLayer } from "../cluster/pipeline-hook.ts"; // in a composition root, not in src/pipeline
 * await runPipeline(p, { command, resumeCommand, cluster: "nats://127.0.0.1:4222", clusterLayer });
 */
import type { FlowOperator } from "../flow/index.ts";
import type { ResolvedPipeline } from "./loader.ts";
import type { ClusterReportSection } from "./report.ts";
import type { PipelineResources } from "./resources.ts";
import type { ClusterConfig } from "./schema.ts";

/** One run's connection to the cluster, from `ClusterLayer.start`. */
export interface ClusterSession {
  /** Indices (in `p.stages`) of the stages the workers run: not built locally. */
  readonly workerStages: readonly number[];
  /** The operators that stand in for them, in order, at the place of the first of them. */
  readonly operators: readonly FlowOperator[];
  /** One progress line (batches, in flight, redeliveries, dead letters, per-worker images/s). */
  progressLine(): string;
  /** Ends the run on the cluster (done when `completed`), closes the connection; `report.cluster`. Idempotent. */
  finish(completed: boolean): Promise<ClusterReportSection>;
}

/** What the cluster layer gives the pipeline runner. */
export interface ClusterLayer {
  /** Connects, announces the run to the workers and builds the stand-in operators. */
  start(p: ResolvedPipeline, cfg: ClusterConfig, resources: PipelineResources, log: (line: string) => void): Promise<ClusterSession>;
}

/**
 * The cluster settings of a run: the file's `cluster:` section, with the CLI's URL (if any)
 * taking precedence; null when the run uses no cluster.
 *
 * @example
 * clusterConfigOf(p, "nats://127.0.0.1:4222") // { ackWaitMs: 30000, maxDeliver: 4, workerConcurrency: 2, url: "nats://127.0.0.1:4222" } for a file without `cluster:`
 */
export function clusterConfigOf(p: ResolvedPipeline, url?: string): ClusterConfig | null {
  if (url === undefined) return p.cluster ?? null;
  return { ackWaitMs: 30_000, maxDeliver: 4, workerConcurrency: 2, ...(p.cluster ?? {}), url };
}
