/**
 * A pipeline's dataflow with its per-image stages on cluster workers: the coordinator process
 * keeps `source` and everything after `filter` (pairs, write, refLogps, dpoTrain), and puts one
 * operator (ClusterCoordinator.operator) where decode → generate → clipScore → filter were.
 *
 * The stages after the workers read images by id from the run's ImageStore (write's TRL layout:
 * the PNG bytes; refLogps and the trainer: pixels). The coordinator fills it from the source
 * batches it sends (`storeImages`): bytes always, pixels only when a later stage needs them.
 *
 * @example
 * const split = clusterSplit(p);               // { workerStages: [1, 2, 3, 4], … }
 * const { flow, cluster } = await runClusterFlow(p, { servers: "nats://127.0.0.1:4222" });
 */
import { createHash } from "node:crypto";
import { resolve } from "node:path";
import type { RecordBatch } from "apache-arrow";
import { mapBatch, runFlow, type FlowContext, type FlowOperator, type RunReport as FlowReport } from "../flow/index.ts";
import { ImageStore } from "../io/image-store.ts";
import { preprocessBatch } from "../models/image-preprocess.ts";
import type { ImageProcessorConfig } from "../models/preprocessor-config.ts";
import { pipelineToYaml, type ResolvedPipeline } from "../pipeline/loader.ts";
import { stageRegistry, type StageContext, type StageDefinition, type StageInstance } from "../pipeline/registry.ts";
import { PipelineResources } from "../pipeline/resources.ts";
import { flowNames } from "../pipeline/run-outcome.ts";
import type { z } from "zod";
import { ClusterCoordinator, type ClusterReport } from "./coordinator.ts";
import { publishPathPolicy } from "./policy.ts";
import { WORKER_STAGES } from "./protocol.ts";
import { ConfigError } from "../util/errors.ts";

/** Which stages run where. */
export interface ClusterSplit {
  /** Indices of the stages the workers run (contiguous, right after the source). */
  workerStages: number[];
  /** Indices of the coordinator's stages after the workers' (pairs, write, refLogps, dpoTrain). */
  localStages: number[];
  /** Whether a local stage needs pixels from the image store (refLogps, dpoTrain). */
  needsPixels: boolean;
}

/** Splits a dataflow pipeline: `source`, then the longest run of worker stages, then the rest. */
export function clusterSplit(p: ResolvedPipeline): ClusterSplit {
  if (p.stages[0]?.name !== "source") throw new ConfigError("cluster: the pipeline must start with a source stage", { code: "no source" });
  const workerStages: number[] = [];
  let i = 1;
  while (i < p.stages.length && (WORKER_STAGES as readonly string[]).includes(p.stages[i]!.name)) workerStages.push(i++);
  if (workerStages.length === 0) throw new ConfigError(`cluster: no worker stage (${WORKER_STAGES.join(", ")}) follows the source; nothing to distribute`, { code: "no worker stage" });
  const localStages: number[] = [];
  for (; i < p.stages.length; i++) {
    const s = p.stages[i]!;
    if ((WORKER_STAGES as readonly string[]).includes(s.name)) throw new ConfigError(`cluster: stage ${s.name} (#${i}) comes after ${p.stages[i - 1]!.name}; worker stages must directly follow the source`, { code: "worker stage out of place" });
    localStages.push(i);
  }
  const needsPixels = localStages.some((j) => p.stages[j]!.name === "refLogps" || p.stages[j]!.name === "dpoTrain");
  return { workerStages, localStages, needsPixels };
}

/**
 * A run id that is the same for the same resolved pipeline and output folder (so `--resume`
 * finds the run's durable state) and differs otherwise.
 */
export function defaultRunId(p: ResolvedPipeline): string {
  const h = createHash("sha256").update(pipelineToYaml(p)).update("\0").update(resolve(p.out.dir)).digest("hex");
  return `r${h.slice(0, 16)}`;
}

/** The run's ImageStore (the key and sizing the registry's stages use). */
export function runImageStore(p: ResolvedPipeline, resources: PipelineResources): ImageStore {
  const src = p.stages[0];
  const batch = src && "batchSize" in src.options ? src.options.batchSize : 32;
  return resources.shared("images", () => new ImageStore({ capacity: Math.max(4096, 4 * p.flow.maxInFlight * batch) }));
}

/**
 * Puts each source image in the coordinator's store before its batch goes to the workers:
 * the bytes, and (with `preprocess`) the model-ready pixels. An image that does not decode is
 * left out: the worker's decode stage dead-letters it with the reason.
 */
export function storeImages(store: ImageStore, preprocess: ImageProcessorConfig | null, name = "images"): FlowOperator {
  return mapBatch(name, async (batch: RecordBatch) => {
    const ids = batch.getChild("id"), col = batch.getChild("image");
    if (!ids || !col) throw new Error(`${name}: expected the images schema (id, image)`);
    const bytes: Uint8Array[] = [];
    for (let i = 0; i < batch.numRows; i++) bytes.push(col.get(i) as Uint8Array);
    if (preprocess === null) {
      for (let i = 0; i < batch.numRows; i++) store.put(String(ids.get(i)), { bytes: bytes[i]!.slice(), pixels: new Float32Array(0) });
      return batch;
    }
    const { pixels, dims, errors } = await preprocessBatch(bytes, preprocess); // [N, 3, H, W]
    const per = dims[1] * dims[2] * dims[3];
    for (let i = 0; i < batch.numRows; i++) if (!errors[i]) store.put(String(ids.get(i)), { bytes: bytes[i]!.slice(), pixels: pixels.slice(i * per, (i + 1) * per) });
    return batch;
  });
}

export interface ClusterFlowOptions {
  servers: string | string[];
  /** Default: defaultRunId(p). */
  run?: string;
  ackWaitMs?: number;
  maxDeliver?: number;
  workerConcurrency?: number;
  resume?: boolean;
  /** Resume even if the training configuration changed (the CLI's --allow-config-change). */
  allowConfigChange?: boolean;
  signal?: AbortSignal;
  log?: (line: string) => void;
  resources?: (p: ResolvedPipeline) => PipelineResources;
  onStart?: (ctx: FlowContext, coordinator: ClusterCoordinator) => void;
  /** Milliseconds between coordinator progress lines on `log` (default 0: none). */
  progressEveryMs?: number;
}

/**
 * Runs the pipeline's dataflow with its worker stages on the cluster (evaluation and the HTML
 * report stay with src/pipeline). Marks the run done on completion; an interrupted or failed
 * run keeps its durable state for a resume.
 */
export async function runClusterFlow(p: ResolvedPipeline, opts: ClusterFlowOptions): Promise<{ flow: FlowReport; cluster: ClusterReport }> {
  const split = clusterSplit(p);
  const log = opts.log ?? (() => {});
  const signal = opts.signal ?? new AbortController().signal;
  const resources = (opts.resources ?? ((q) => new PipelineResources(q)))(p);
  let flowCtx: FlowContext | undefined;
  let progress: ReturnType<typeof setInterval> | undefined;
  const coordinator = await ClusterCoordinator.start({
    servers: opts.servers,
    run: opts.run ?? defaultRunId(p),
    pipeline: p,
    stages: split.workerStages,
    maxInFlight: p.flow.maxInFlight,
    ...(opts.ackWaitMs !== undefined ? { ackWaitMs: opts.ackWaitMs } : {}),
    ...(opts.maxDeliver !== undefined ? { maxDeliver: opts.maxDeliver } : {}),
    ...(opts.workerConcurrency !== undefined ? { workerConcurrency: opts.workerConcurrency } : {}),
    log,
  });
  try {
    await publishPathPolicy(coordinator, p);
    const names = flowNames(p.stages);
    const build = async (i: number): Promise<StageInstance> => {
      const s = p.stages[i]!;
      const def = stageRegistry[s.name] as StageDefinition<z.ZodType>;
      const context: StageContext = {
        pipeline: p,
        index: s.index,
        name: names[i]!,
        resources,
        flow: () => {
          if (!flowCtx) throw new Error(`stage ${names[i]}: the flow has not started yet`);
          return flowCtx;
        },
        resume: opts.resume ?? false,
        allowConfigChange: opts.allowConfigChange ?? false,
        signal,
        log,
      };
      return def.create!(s.options, context);
    };
    const store = runImageStore(p, resources);
    const decodeAt = split.workerStages.find((i) => p.stages[i]!.name === "decode");
    const decodeModel = decodeAt !== undefined ? String((p.stages[decodeAt]!.options as { model: string }).model) : null;
    const preprocess = split.needsPixels && decodeModel !== null ? (await resources.clip(decodeModel)).preprocess : null;
    const source = (await build(0)) as AsyncIterable<RecordBatch>;
    const local: FlowOperator[] = [];
    for (const i of split.localStages) local.push((await build(i)) as FlowOperator);
    const lazySource: AsyncIterable<RecordBatch> = { [Symbol.asyncIterator]: () => source[Symbol.asyncIterator]() };
    const flow = await runFlow({
      source: lazySource,
      stages: [storeImages(store, preprocess), coordinator.operator("cluster"), ...local],
      maxInFlight: p.flow.maxInFlight,
      onError: p.flow.onError,
      deadLetterPath: p.flow.deadLetter,
      signal,
      handleSigint: false,
      onStart: (ctx) => {
        flowCtx = ctx;
        if ((opts.progressEveryMs ?? 0) > 0) progress = setInterval(() => log(coordinator.progressLine()), opts.progressEveryMs);
        opts.onStart?.(ctx, coordinator);
      },
    });
    if (progress) clearInterval(progress);
    log(coordinator.progressLine());
    if (!flow.interrupted && !signal.aborted) await coordinator.finish();
    return { flow, cluster: coordinator.report() };
  } finally {
    if (progress) clearInterval(progress);
    await coordinator.close();
    await resources.close().catch((e: unknown) => log(`closing resources: ${(e as Error).message}`));
  }
}
