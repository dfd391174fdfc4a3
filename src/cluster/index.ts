/**
 * Public surface of clipflow's scale-out layer (NATS JetStream): what a library caller needs to
 * run a pipeline file that has a `cluster` section from its own code, and to run a worker.
 * src/pipeline never imports this layer; it is handed in as `RunPipelineOptions.clusterLayer`.
 * Explicit named exports only.
 *
 * @example
 * import { loadPipeline, runPipeline } from "clipflow";
 * import { clusterLayer } from "clipflow/cluster";
 * const r = await runPipeline(loadPipeline("pipelines/clip-dpo.yaml", { overrides: ["cluster.url=nats://127.0.0.1:4222"] }), { clusterLayer });
 */
export { clusterLayer } from "./pipeline-hook.ts";
export { runWorker } from "./worker.ts";
export { clusterSplit, runClusterFlow } from "./run-cluster.ts";
export type { ClusterSplit, ClusterFlowOptions } from "./run-cluster.ts";
export { WORKER_STAGES } from "./protocol.ts";
export type { WorkerStage } from "./protocol.ts";
export type { WorkerOptions, WorkerStats } from "./worker.ts";
export { clusterConfigOf } from "../pipeline/cluster-layer.ts";
export type { ClusterLayer, ClusterSession } from "../pipeline/cluster-layer.ts";
export type { ClusterReportSection, ClusterWorkerReport } from "../pipeline/report.ts";
