/**
 * Runs a resolved pipeline: resources (scheduler, models) → one stage per `stages` entry from
 * the registry's factories → the credit-gated flow → evaluation → `report.json` + `report.html`
 * in `out.dir`. What each stage means to the run (a trainer, the pairs, the files it writes, its
 * progress total, its count names) comes from its registry entry; this file knows no stage names.
 *
 * - A stage whose operator does not exist yet stops the run before anything loads, with
 *   "stage X: not implemented yet" (status `not-implemented`); nothing is faked.
 * - Set-up loads every model and has it answer once (resources.verify): a bad model file fails
 *   there, named, before any row is generated.
 * - `signal` (Ctrl-C / SIGTERM in the CLI) stops the flow cleanly: credits drain, the trainer
 *   keeps its last checkpoint, the report says `interrupted` and carries the resume command;
 *   evaluation is skipped.
 * - A flow that delivers no row to its end fails (emptyRunError), as does any error; the status
 *   and the error's one-line message are in the report, which is written all the same.
 *
 * Files in `out.dir` (RUN_FILES): report.json, report.html, metrics.jsonl (trainer, one line per
 * step), checkpoints/ (trainer), policy/ (the trained policy), the dead-letter file, and
 * whatever `write` stages name.
 *
 * @example
 * const p = loadPipeline("pipelines/clip-dpo.yaml", { overrides: ["stages.source.count=16"] });
 * const { report } = await runPipeline(p, { command: "npx bun run pipeline …", resumeCommand: "… --resume" });
 * report.evaluation?.rows; // SFT policy vs CLIP-DPO
 */
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { RecordBatch } from "apache-arrow";
import { readDeadLetter, runFlow, type FlowContext, type FlowOperator, type RunReport as FlowReport } from "../flow/index.ts";
import { stageFigures } from "../flow/stage.ts";
import { loadLvlm } from "../models/lvlm-io.ts";
import type { PairAudit } from "../../demo/world/index.ts";
import { latestCheckpoint } from "../train/checkpoint.ts";
import { ConfigError, errorMessage, RuntimeError } from "../util/errors.ts";
import { clusterConfigOf, type ClusterLayer, type ClusterSession } from "./cluster-layer.ts";
import { evaluatePolicies, type EvalOptions, type EvalSubject } from "./eval.ts";
import { pipelineToData, type ResolvedPipeline } from "./loader.ts";
import type { Progress } from "./progress.ts";
import { definitionOf, findStage, isJobStage, type StageConfig, type StageContext, type StageInstance } from "./registry.ts";
import { emptyReport, reconcile, stageReports, writeRunReport, type RunReport } from "./report.ts";
import { PipelineResources } from "./resources.ts";
import { prepareOutDir, RUN_FILES } from "./run-files.ts";
import { RunObserver } from "./run-observe.ts";
import { emptyRunError, flowNames, knownTotals, numericEntries, outputsOf, sourceInputs, stageReportsOf, trainedRowName, trainerOf, trainingReport, type ResumeInfo } from "./run-outcome.ts";
import { runJobs, runVariants } from "./run-variants.ts";

export { dropReasons, emptyRunError, flowNames, knownTotals, trainedRowName } from "./run-outcome.ts";
export { variantSlug } from "./run-variants.ts";

export interface RunPipelineOptions {
  /** The command line that started the run (for the report). */
  command: string;
  /** The command that resumes this run (printed and reported when interrupted). */
  resumeCommand: string;
  /** Continue training from the newest checkpoint in `out.dir`. */
  resume?: boolean;
  /** With `resume`: accept a changed training configuration (the trainer logs the differences). */
  allowConfigChange?: boolean;
  signal?: AbortSignal;
  /** Makes the live progress display, given known totals per stage; undefined: none. */
  progress?: (totals: Record<string, number>) => Progress;
  /** Milliseconds between progress updates (default 250). */
  progressEveryMs?: number;
  /** Log lines (stderr in the CLI). */
  log?: (line: string) => void;
  /** Makes the run's resources (tests inject a scheduler or a models folder). */
  resources?: (p: ResolvedPipeline) => PipelineResources;
  /** Preference pairs shown in the report (default 8). */
  samples?: number;
  /** NATS URL: run the per-image stages on that cluster's workers (the CLI's --cluster; overrides `cluster.url`). */
  cluster?: string;
  /**
   * How a run reaches a cluster (src/cluster/pipeline-hook.ts's `clusterLayer`, passed by the
   * composition root: src/pipeline never imports src/cluster). Needed only by a run with a
   * cluster; without it such a run fails with a ConfigError before any stage is built.
   */
  clusterLayer?: ClusterLayer;
}

export interface RunResult {
  report: RunReport;
  paths: { json: string; html: string };
  /** What ended a failed run (its message is `report.error`); the CLI maps its kind to an exit code. */
  error?: unknown;
}

/** What the parts of one run share. */
export interface RunState {
  readonly p: ResolvedPipeline;
  readonly opts: RunPipelineOptions;
  readonly report: RunReport;
  readonly signal: AbortSignal;
  readonly log: (line: string) => void;
  /** Writes the report (status as set) and returns the result. */
  readonly finish: () => RunResult;
}

/** The stages that have no operator factory yet. */
export function unimplementedStages(p: ResolvedPipeline): StageConfig[] {
  return p.stages.filter((s) => {
    const def = definitionOf(s.name);
    return def.create === undefined && def.job === undefined;
  });
}

/**
 * Runs `p` to the end (or to an interrupt or error) and writes the report. Never throws for a
 * failed run: the status and error are in the report. An unusable `out.dir` is a ConfigError
 * (thrown, nothing ran).
 */
export async function runPipeline(p: ResolvedPipeline, opts: RunPipelineOptions): Promise<RunResult> {
  const t0 = performance.now();
  prepareOutDir(p.out.dir);
  const report = emptyReport({ file: p.file, description: p.description, command: opts.command, config: pipelineToData(p), overrides: p.overrides });
  const state: RunState = {
    p,
    opts,
    report,
    signal: opts.signal ?? new AbortController().signal,
    log: opts.log ?? (() => {}),
    finish: () => {
      report.finishedAt = new Date().toISOString();
      report.timings.totalMs = performance.now() - t0;
      return { report, paths: writeRunReport(p.out.dir, report) };
    },
  };

  const missing = unimplementedStages(p);
  if (missing.length > 0) {
    report.status = "not-implemented";
    report.error = `stage ${missing[0]!.name}: not implemented yet` + (missing.length > 1 ? ` (also: ${missing.slice(1).map((s) => s.name).join(", ")})` : "");
    return state.finish();
  }
  if (p.variants.length > 0) return runVariants(state, runPipeline);
  const resumedFrom = await prepareTrainerFiles(state);
  const resources = (opts.resources ?? ((q) => new PipelineResources(q)))(p);
  if (p.stages.every((s) => isJobStage(s.name))) return runJobs(state, resources);
  try {
    return await runDataflow(state, resources, resumedFrom);
  } catch (e) {
    return settleError(state, e);
  } finally {
    await resources.close().catch((e: unknown) => state.log(`closing resources: ${errorMessage(e)}`));
  }
}

/** Marks the report `interrupted` with the resume command. */
export function markInterrupted(s: RunState): RunResult {
  s.report.status = "interrupted";
  s.report.resumeCommand = s.opts.resumeCommand;
  return s.finish();
}

/** An error ended the run: `failed`, or `interrupted` when a stop signal caused it. */
export function settleError(s: RunState, e: unknown): RunResult {
  s.report.error = errorMessage(e);
  if (s.signal.aborted) return markInterrupted(s);
  s.report.status = "failed";
  return { ...s.finish(), error: e };
}

/**
 * A fresh run must not silently continue an older one's training: it removes the trainer's files
 * of an earlier run. With --resume, returns the checkpoint training continues from.
 */
async function prepareTrainerFiles(s: RunState): Promise<string | null> {
  if (!trainerOf(s.p)) return null;
  const outDir = s.p.out.dir;
  if (s.opts.resume) return (await latestCheckpoint(join(outDir, RUN_FILES.checkpoints)))?.dir ?? null;
  for (const f of [RUN_FILES.checkpoints, RUN_FILES.metrics, RUN_FILES.policy]) {
    const path = join(outDir, f);
    if (existsSync(path)) {
      s.log(`fresh run: removing ${path} from an earlier run (pass --resume to continue it)`);
      rmSync(path, { recursive: true, force: true });
    }
  }
  return null;
}

/** The built stages: the source's batches, the operators after it, and their `counts` getters. */
interface BuiltStages {
  source: AsyncIterable<RecordBatch>;
  operators: FlowOperator[];
  counts: Map<string, () => Record<string, number>>;
  /** Each built stage's report figures (its definition's `report` hook), by flow name; read after the flow. */
  figures: Map<string, () => Record<string, unknown> | undefined>;
  /** The trainer's resume facts (checkpoint actually resumed from, config changes let through), once it exists. */
  resumeInfo: () => ResumeInfo | undefined;
}

/**
 * Builds every stage from its registry factory (factories may load models: that is the set-up
 * time), then has every model load and answer once.
 */
async function buildStages(s: RunState, resources: PipelineResources, flowCtx: () => FlowContext | undefined, cluster: ClusterSession | null = null): Promise<BuiltStages> {
  const names = flowNames(s.p.stages);
  const instances: StageInstance[] = [];
  const counts = new Map<string, () => Record<string, number>>();
  const figures = new Map<string, () => Record<string, unknown> | undefined>();
  let resumeInfo: () => ResumeInfo | undefined = () => undefined;
  for (const st of s.p.stages) {
    // Stages the cluster's workers run are not built here; the coordinator's operators stand in.
    if (cluster?.workerStages.includes(st.index)) {
      if (st.index === cluster.workerStages[0]) instances.push(...cluster.operators);
      continue;
    }
    const name = names[st.index]!;
    const context: StageContext = {
      pipeline: s.p,
      index: st.index,
      name,
      resources,
      flow: () => {
        const ctx = flowCtx();
        if (!ctx) throw new RuntimeError("the flow has not started yet", { code: "flow not started", where: { stage: name } });
        return ctx;
      },
      resume: s.opts.resume ?? false,
      allowConfigChange: s.opts.allowConfigChange ?? false,
      signal: s.signal,
      log: s.log,
    };
    const inst = await definitionOf(st.name).create!(st.options, context);
    instances.push(inst);
    figures.set(name, () => stageFigures(inst));
    const c = (inst as { counts?: unknown }).counts;
    if (c && typeof c === "object") counts.set(name, () => numericEntries(c as Record<string, unknown>));
    const ri = (inst as { resumeInfo?: unknown }).resumeInfo;
    if (typeof ri === "function") resumeInfo = ri as () => ResumeInfo | undefined;
  }
  await resources.verify();

  const [source, ...rest] = instances;
  if (!source || typeof source === "function" || !(Symbol.asyncIterator in source)) throw new ConfigError("the first stage must build a source (batches), got an operator", { code: "not a source", where: { stage: names[0] } });
  const operators = rest.map((inst, i) => {
    if (typeof inst !== "function") throw new ConfigError("expected an operator, got a source", { code: "not an operator", where: { stage: names[i + 1] } });
    return inst;
  });
  return { source, operators, counts, figures, resumeInfo };
}

/** source → operators → sink under credits, with live progress; the flow's own report. */
async function runTheFlow(s: RunState, resources: PipelineResources, built: BuiltStages, watched: FlowOperator[], onCtx: (ctx: FlowContext) => void): Promise<FlowReport> {
  let progress: Progress | undefined;
  let timer: ReturnType<typeof setInterval> | undefined;
  let flowCtx: FlowContext | undefined;
  // The source's iterator is created when the flow subscribes, after onStart gave us the context.
  const lazySource: AsyncIterable<RecordBatch> = { [Symbol.asyncIterator]: () => built.source[Symbol.asyncIterator]() };
  try {
    return await runFlow({
      source: lazySource,
      stages: watched,
      maxInFlight: s.p.flow.maxInFlight,
      onError: s.p.flow.onError,
      deadLetterPath: s.p.flow.deadLetter,
      signal: s.signal,
      handleSigint: false,
      onStart: (ctx) => {
        flowCtx = ctx;
        onCtx(ctx);
        if (s.opts.progress) {
          const pr = s.opts.progress(knownTotals(s.p));
          progress = pr;
          timer = setInterval(() => pr.update(ctx.snapshot(), schedulerLine(resources)), s.opts.progressEveryMs ?? 250);
        }
      },
    });
  } finally {
    if (timer) clearInterval(timer);
    if (progress && flowCtx) progress.finish(flowCtx.snapshot(), schedulerLine(resources));
  }
}

/** A dataflow pipeline: build, flow, counts, checks, training report, evaluation. */
async function runDataflow(s: RunState, resources: PipelineResources, resumedFrom: string | null): Promise<RunResult> {
  const { p, report } = s;
  let flowCtx: FlowContext | undefined;
  const clusterCfg = clusterConfigOf(p, s.opts.cluster);
  let cluster: ClusterSession | null = null;
  try {
    const tSetup = performance.now();
    if (clusterCfg) {
      if (!s.opts.clusterLayer)
        throw new ConfigError(`this run asks for a cluster (${clusterCfg.url}) but was started without the cluster layer; run it with \`npx bun run pipeline\` or pass RunPipelineOptions.clusterLayer (src/cluster/pipeline-hook.ts)`, { code: "cluster layer missing" });
      cluster = await s.opts.clusterLayer.start(p, clusterCfg, resources, s.log);
    }
    const built = await buildStages(s, resources, () => flowCtx, cluster);
    report.timings.setupMs = performance.now() - tSetup;
    if (s.signal.aborted) return markInterrupted(s);

    const observer = new RunObserver(p, s.opts.samples ?? 8);
    const tFlow = performance.now();
    const flow = await runTheFlow(s, resources, built, observer.wrap(built.operators), (ctx) => (flowCtx = ctx));
    report.timings.flowMs = performance.now() - tFlow;

    const deadRows = flow.deadLettered > 0 && existsSync(p.flow.deadLetter) ? readDeadLetter(p.flow.deadLetter) : [];
    report.stages = stageReportsOf(p, flow.stages, deadRows, built.counts);
    for (const st of report.stages) {
      const f = built.figures.get(st.stage)?.();
      if (f !== undefined) st.figures = f;
    }
    report.reconciliation = reconcile(flow.stages, flow.deadLettered);
    report.credits = flow.credits;
    report.deadLetter = { rows: flow.deadLettered, path: flow.deadLettered > 0 ? p.flow.deadLetter : null };
    report.scheduler = resources.scheduler.stats();
    report.samples = observer.samples;
    report.pairAudit = observer.audit();
    report.outputs = outputsOf(p);
    const trainer = trainerOf(p);
    if (trainer) report.training = await trainingReport(p, flow.stages, resumedFrom, built.resumeInfo());
    // Per-worker throughput, redeliveries, dead-lettered batches, message sizes (src/cluster).
    if (cluster) report.cluster = await cluster.finish(!flow.interrupted && !s.signal.aborted);

    if (flow.interrupted || s.signal.aborted) return markInterrupted(s);
    // A run that delivered nothing to its end is a failure, never "completed" (e.g. an empty
    // source, a stage that dead-lettered every row, a trainer that got no pairs).
    const empty = emptyRunError(report.stages, sourceInputs(p));
    if (empty !== null) {
      report.status = "failed";
      report.error = empty;
      return s.finish();
    }

    await evaluateAndSettle(s, (ev) => {
      const subjects: EvalSubject[] = [startSubject(p, resources)];
      const policyDir = join(p.out.dir, RUN_FILES.policy);
      if (trainer && trainer.model === ev.model && existsSync(join(policyDir, "config.json")))
        subjects.push(trainedSubject(p, trainedRowName(p), policyDir, report.training?.pairs ?? null, report.pairAudit));
      return subjects;
    });
    return s.finish();
  } catch (e) {
    if (flowCtx && report.stages.length === 0) report.stages = stageReports(flowCtx.snapshot(), []);
    return settleError(s, e);
  } finally {
    await cluster?.finish(false).catch(() => {});
  }
}

/** One progress line of scheduler throughput, per registered model. */
function schedulerLine(r: PipelineResources): string[] {
  const models = Object.entries(r.scheduler.stats().models);
  if (models.length === 0) return [];
  return [`scheduler  ${models.map(([n, m]) => `${n} ${m.items} items (${m.batches} batches, fill ${(100 * m.fillRatio).toFixed(0)}%)`).join("; ")}`];
}

/** The untrained policy the pipeline starts from: the first row of the result table. */
export function startSubject(p: ResolvedPipeline, resources: PipelineResources): EvalSubject {
  const name = p.eval!.model!;
  const m = p.models[name];
  return {
    name: m && "builtin" in m && m.builtin === "shapes-lvlm" ? "SFT policy" : `${name} (start)`,
    model: name,
    pairs: null,
    pairAudit: null,
    // a clipflow folder in process; an imported hf-onnx-vlm through the scheduler
    policy: () => resources.evalPolicy(name),
  };
}

/** A trained policy folder as a row of the result table. */
export function trainedSubject(p: ResolvedPipeline, name: string, dir: string, pairs: number | null, pairAudit: PairAudit | null): EvalSubject {
  return { name, model: dir, pairs, pairAudit, policy: () => loadLvlm(dir, { threads: p.scheduler.threads }) };
}

/**
 * Runs the evaluation when the pipeline has one (subjects are built only then) and settles the
 * report's status: `completed`, or `interrupted` with the resume command when a stop signal cut
 * it short.
 */
export async function evaluateAndSettle(s: RunState, subjects: (ev: NonNullable<ResolvedPipeline["eval"]>) => EvalSubject[]): Promise<void> {
  const { p, report } = s;
  if (p.eval) {
    const tEval = performance.now();
    const done = await evaluate(p, subjects(p.eval), report, s.signal, s.log);
    report.timings.evalMs = performance.now() - tEval;
    if (!done) {
      report.status = "interrupted";
      report.resumeCommand = s.opts.resumeCommand;
      return;
    }
  }
  report.status = "completed";
}

/**
 * The evaluation options a pipeline implies: sampled decoding at its generate stage's
 * temperature/top-p (4 answers per scene, eval.ts's default count), and the source's render size,
 * so held-out scenes are rendered as the pipeline's own images were.
 * @example
 * await evaluatePolicies(subjects, p.eval!, { ...evalOptionsOf(p), signal });
 */
export function evalOptionsOf(p: ResolvedPipeline): Pick<EvalOptions, "sampling" | "imageSize"> {
  const gen = findStage(p.stages, "generator")?.stage.options as { temperature?: number; topP?: number } | undefined;
  const src = p.stages[0];
  const size = src?.name === "source" && "imageSize" in src.options ? Number(src.options.imageSize) : undefined;
  return {
    ...(gen?.temperature ? { sampling: { temperature: gen.temperature, topP: gen.topP ?? 1, samples: 4 } } : {}),
    ...(size ? { imageSize: size } : {}),
  };
}

async function evaluate(p: ResolvedPipeline, subjects: EvalSubject[], report: RunReport, signal: AbortSignal, log: (line: string) => void): Promise<boolean> {
  try {
    report.evaluation = await evaluatePolicies(subjects, p.eval!, {
      ...evalOptionsOf(p),
      signal,
      onProgress: (row, done, total) => log(`eval ${row}: ${done}/${total} scenes`),
    });
    return true;
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") return false;
    throw err;
  }
}
