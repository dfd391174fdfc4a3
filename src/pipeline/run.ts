/**
 * Runs a resolved pipeline: resources (scheduler, models) → one stage per `stages` entry from
 * the registry's factories → the credit-gated flow → evaluation → `report.json` + `report.html`
 * in `out.dir`.
 *
 * - A stage whose operator does not exist yet stops the run before anything loads, with
 *   "stage X: not implemented yet" (status `not-implemented`); nothing is faked.
 * - `signal` (Ctrl-C in the CLI) stops the flow cleanly: credits drain, the trainer keeps its
 *   last checkpoint, the report says `interrupted` and carries the resume command; evaluation
 *   is skipped.
 * - Any error ends the run with status `failed` and the error's one-line message; the report is
 *   written all the same.
 *
 * Files in `out.dir` (RUN_FILES): report.json, report.html, metrics.jsonl (trainer, one line per
 * step), checkpoints/ (trainer), policy/ (the trained policy), the dead-letter file, and
 * whatever `write` stages name.
 *
 * @example
 * const p = loadPipeline("pipelines/clip-dpo.yaml", { overrides: ["stages.source.count=16"] });
 * const { report } = await runPipeline(p, { command: "bun run pipeline …", resumeCommand: "… --resume" });
 * report.evaluation?.rows; // SFT policy vs CLIP-DPO
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { RecordBatch } from "apache-arrow";
import { tap } from "rxjs";
import { readDeadLetter, runFlow, type FlowContext, type FlowOperator, type RunReport as FlowReport, type StageSnapshot } from "../flow/index.ts";
import { loadLvlm } from "../models/lvlm-io.ts";
import { PairAuditor, type PairAudit } from "../../demo/world/index.ts";
import { latestCheckpoint } from "../train/checkpoint.ts";
import { readMetricsLog } from "../train/metrics-log.ts";
import { evaluatePolicies, pngDataUri, type EvalSubject } from "./eval.ts";
import { loadPipeline, pipelineToData, type ResolvedPipeline } from "./loader.ts";
import type { Progress } from "./progress.ts";
import { isJobStage, stageRegistry, type StageConfig, type StageContext, type StageDefinition, type StageInstance } from "./registry.ts";
import { emptyReport, reconcile, stageReports, writeRunReport, type RunReport, type SampleReport, type StageReport, type TrainingStep } from "./report.ts";
import { PipelineResources } from "./resources.ts";
import { prepareOutDir, RUN_FILES } from "./run-files.ts";
import type { z } from "zod";

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
}

export interface RunResult {
  report: RunReport;
  paths: { json: string; html: string };
}

/** Unique flow names: the stage name, then `name-2`, `name-3` for repeats. */
export function flowNames(stages: readonly StageConfig[]): string[] {
  const seen = new Map<string, number>();
  return stages.map((s) => {
    const n = (seen.get(s.name) ?? 0) + 1;
    seen.set(s.name, n);
    return n === 1 ? s.name : `${s.name}-${n}`;
  });
}

/**
 * Rows each stage is known to receive, for progress ETAs: the source's count, and the same for
 * the stages right after it that take one row per image (decode, generate) — upstream of any
 * filter, so only dead-lettered rows can make them fall short.
 */
export function knownTotals(p: ResolvedPipeline): Record<string, number> {
  const src = p.stages[0];
  if (!src || src.name !== "source") return {};
  const count = "count" in src.options ? src.options.count : null;
  if (count === null || count === undefined) return {};
  const totals: Record<string, number> = { source: count };
  const names = flowNames(p.stages);
  for (let i = 1; i < p.stages.length && (p.stages[i]!.name === "decode" || p.stages[i]!.name === "generate"); i++) totals[names[i]!] = count;
  return totals;
}

/** The stages that have no operator factory yet. */
export function unimplementedStages(p: ResolvedPipeline): StageConfig[] {
  return p.stages.filter((s) => {
    const def = stageRegistry[s.name] as StageDefinition<z.ZodType>;
    return def.create === undefined && def.job === undefined;
  });
}

/** Name of the result-table row of a policy trained with this pipeline's pairs. */
export function trainedRowName(p: ResolvedPipeline): string {
  const pairs = p.stages.find((s) => s.name === "pairs");
  const strategy = pairs && "strategy" in pairs.options ? String(pairs.options.strategy) : "";
  if (strategy === "random") return "DPO on random pairs";
  if (strategy === "oracle") return "DPO on oracle pairs";
  return "CLIP-DPO";
}

const isPairsBatch = (b: RecordBatch): boolean =>
  ["image_id", "prompt", "chosen", "rejected", "chosen_score", "rejected_score"].every((c) => b.schema.fields.some((f) => f.name === c));

/**
 * Runs `p` to the end (or to an interrupt or error) and writes the report. Never throws for a
 * failed run: the status and error are in the report.
 */
export async function runPipeline(p: ResolvedPipeline, opts: RunPipelineOptions): Promise<RunResult> {
  const t0 = performance.now();
  const log = opts.log ?? (() => {});
  const outDir = p.out.dir;
  prepareOutDir(outDir);
  const report = emptyReport({ file: p.file, description: p.description, command: opts.command, config: pipelineToData(p), overrides: p.overrides });
  const finish = (): RunResult => {
    report.finishedAt = new Date().toISOString();
    report.timings.totalMs = performance.now() - t0;
    const paths = writeRunReport(outDir, report);
    return { report, paths };
  };

  const missing = unimplementedStages(p);
  if (missing.length > 0) {
    report.status = "not-implemented";
    report.error = `stage ${missing[0]!.name}: not implemented yet` + (missing.length > 1 ? ` (also: ${missing.slice(1).map((s) => s.name).join(", ")})` : "");
    return finish();
  }

  const signal = opts.signal ?? new AbortController().signal;
  const resume = opts.resume ?? false;
  const hasTrainer = p.stages.some((s) => s.name === "dpoTrain");
  if (hasTrainer && !resume) {
    // A fresh run must not silently continue an older one's training.
    for (const f of [RUN_FILES.checkpoints, RUN_FILES.metrics, RUN_FILES.policy]) {
      const path = join(outDir, f);
      if (existsSync(path)) {
        log(`fresh run: removing ${path} from an earlier run (pass --resume to continue it)`);
        rmSync(path, { recursive: true, force: true });
      }
    }
  }

  const resumedFrom = hasTrainer && resume ? ((await latestCheckpoint(join(outDir, RUN_FILES.checkpoints)))?.dir ?? null) : null;
  if (p.variants.length > 0) return runVariants(p, report, opts, finish);
  const resources = (opts.resources ?? ((q) => new PipelineResources(q)))(p);
  if (p.stages.every((s) => isJobStage(s.name))) return runJobs(p, report, resources, { signal, resume, log, resumeCommand: opts.resumeCommand, finish });
  let flowCtx: FlowContext | undefined;
  let progress: Progress | undefined;
  let timer: ReturnType<typeof setInterval> | undefined;
  const names = flowNames(p.stages);
  const counts = new Map<string, () => Record<string, number>>();
  try {
    // Build every stage (factories may load models: that is the setup time).
    const tSetup = performance.now();
    const instances: StageInstance[] = [];
    for (const s of p.stages) {
      const def = stageRegistry[s.name] as StageDefinition<z.ZodType>;
      const context: StageContext = {
        pipeline: p,
        index: s.index,
        name: names[s.index]!,
        resources,
        flow: () => {
          if (!flowCtx) throw new Error(`stage ${names[s.index]}: the flow has not started yet`);
          return flowCtx;
        },
        resume,
        allowConfigChange: opts.allowConfigChange ?? false,
        signal,
        log,
      };
      const inst = await def.create!(s.options, context);
      instances.push(inst);
      const c = (inst as { counts?: unknown }).counts;
      if (c && typeof c === "object") counts.set(names[s.index]!, () => numericEntries(c as Record<string, unknown>));
    }
    // Every model loads (and answers once) before the first row: a bad model file fails here.
    await resources.verify();
    report.timings.setupMs = performance.now() - tSetup;
    if (signal.aborted) {
      report.status = "interrupted";
      report.resumeCommand = opts.resumeCommand;
      return finish();
    }

    const [sourceInst, ...rest] = instances;
    if (!sourceInst || typeof sourceInst === "function" || !(Symbol.asyncIterator in sourceInst)) throw new Error(`stage ${names[0]}: the first stage must build a source (batches), got an operator`);
    const operators = rest.map((inst, i) => {
      if (typeof inst !== "function") throw new Error(`stage ${names[i + 1]}: expected an operator, got a source`);
      return inst;
    });

    // Report samples: the first images (PNG by image id) and the first pairs that have one.
    const wantSamples = opts.samples ?? 8;
    const images = new Map<string, Uint8Array>();
    const samples: SampleReport[] = [];
    const keepImages = (b: RecordBatch): void => {
      const id = b.getChild("id"), img = b.getChild("image");
      if (!id || !img) return;
      for (let i = 0; i < b.numRows && images.size < 4 * wantSamples; i++) images.set(String(id.get(i)), img.get(i) as Uint8Array);
    };
    // Pairs audited against the scene truth (a measurement for the report), once: at the first
    // operator whose output is a pairs batch.
    const auditor = new PairAuditor();
    let auditAt = -1;
    const auditPairs = (b: RecordBatch, at: number): void => {
      if (!isPairsBatch(b)) return;
      if (auditAt < 0) auditAt = at;
      if (auditAt !== at) return;
      const id = b.getChild("image_id")!, c = b.getChild("chosen")!, r = b.getChild("rejected")!;
      for (let i = 0; i < b.numRows; i++) auditor.add(String(id.get(i)), String(c.get(i)), String(r.get(i)));
    };
    const keepPairs = (b: RecordBatch): void => {
      if (samples.length >= wantSamples || !isPairsBatch(b)) return;
      const col = (n: string) => b.getChild(n)!;
      for (let i = 0; i < b.numRows && samples.length < wantSamples; i++) {
        const imageId = String(col("image_id").get(i));
        const png = images.get(imageId);
        if (!png) continue;
        const chosenScore = Number(col("chosen_score").get(i));
        const rejectedScore = Number(col("rejected_score").get(i));
        samples.push({
          imageId,
          prompt: String(col("prompt").get(i)),
          image: pngDataUri(png),
          chosen: String(col("chosen").get(i)),
          rejected: String(col("rejected").get(i)),
          chosenScore,
          rejectedScore,
          margin: chosenScore - rejectedScore,
        });
      }
    };
    // Taps watch batches on their way without touching credits or metrics.
    const watched: FlowOperator[] = operators.map((op, i) => {
      const f = (src: Parameters<FlowOperator>[0]) =>
        op(i === 0 ? src.pipe(tap((fb) => keepImages(fb.batch))) : src).pipe(
          tap((fb) => {
            auditPairs(fb.batch, i);
            keepPairs(fb.batch);
          }),
        );
      return Object.assign(f, { stageName: op.stageName });
    });
    if (watched.length === 0) {
      // A source-only pipeline still shows its images.
      const f = (src: Parameters<FlowOperator>[0]) => src.pipe(tap((fb) => keepImages(fb.batch)));
      watched.push(Object.assign(f, { stageName: "images" }));
    }

    // The source's iterator is created when the flow subscribes, after onStart gave us the context.
    const lazySource: AsyncIterable<RecordBatch> = { [Symbol.asyncIterator]: () => sourceInst[Symbol.asyncIterator]() };
    const tFlow = performance.now();
    let flow: FlowReport;
    try {
      flow = await runFlow({
        source: lazySource,
        stages: watched,
        maxInFlight: p.flow.maxInFlight,
        onError: p.flow.onError,
        deadLetterPath: p.flow.deadLetter,
        signal,
        handleSigint: false,
        onStart: (ctx) => {
          flowCtx = ctx;
          if (opts.progress) {
            const pr = opts.progress(knownTotals(p));
            progress = pr;
            timer = setInterval(() => pr.update(ctx.snapshot(), schedulerLine(resources)), opts.progressEveryMs ?? 250);
          }
        },
      });
    } finally {
      if (timer) clearInterval(timer);
      timer = undefined;
      if (progress && flowCtx) progress.finish(flowCtx.snapshot(), schedulerLine(resources));
    }
    report.timings.flowMs = performance.now() - tFlow;

    // Counts, drops by reason, reconciliation.
    // An operator's counts are row drops when they add up to its filtered rows (a filter's
    // rules); otherwise they are in other units (pairs: groups) and shown as notes.
    const ruleDrops = new Map<string, Map<string, number>>();
    const notes = new Map<string, Map<string, number>>();
    for (const [name, get] of counts) {
      const reasons = dropReasons(get());
      const sum = [...reasons.values()].reduce((a, b) => a + b, 0);
      const snap = flow.stages.find((x) => x.stage === name);
      if (snap && sum === snap.filtered) ruleDrops.set(name, reasons);
      else notes.set(name, new Map([...reasons].map(([k, v]) => [COUNT_LABELS[k] ?? k, v])));
    }
    const deadRows = flow.deadLettered > 0 && existsSync(p.flow.deadLetter) ? readDeadLetter(p.flow.deadLetter) : [];
    report.stages = stageReports(flow.stages, deadRows, ruleDrops, notes);
    report.reconciliation = reconcile(flow.stages, flow.deadLettered);
    report.credits = flow.credits;
    report.deadLetter = { rows: flow.deadLettered, path: flow.deadLettered > 0 ? p.flow.deadLetter : null };
    report.scheduler = resources.scheduler.stats();
    report.samples = samples;
    report.pairAudit = auditor.result();
    report.outputs = outputsOf(p);

    if (hasTrainer) report.training = await trainingReport(outDir, flow.stages, resumedFrom);

    if (flow.interrupted || signal.aborted) {
      report.status = "interrupted";
      report.resumeCommand = opts.resumeCommand;
      return finish();
    }
    // A run that delivered nothing to its end is a failure, never "completed" (e.g. an empty
    // source, a stage that dead-lettered every row, a trainer that got no pairs).
    const empty = emptyRunError(report.stages);
    if (empty !== null) {
      report.status = "failed";
      report.error = empty;
      return finish();
    }

    await evaluateAndSettle(p, report, signal, log, opts.resumeCommand, (ev) => {
      const subjects: EvalSubject[] = [startSubject(p, resources)];
      const trained = p.stages.find((s) => s.name === "dpoTrain");
      const policyDir = join(outDir, RUN_FILES.policy);
      if (trained && "model" in trained.options && trained.options.model === ev.model && existsSync(join(policyDir, "config.json")))
        subjects.push(trainedSubject(p, trainedRowName(p), policyDir, report.training?.pairs ?? null, report.pairAudit));
      return subjects;
    });
    return finish();
  } catch (e) {
    report.status = signal.aborted ? "interrupted" : "failed";
    report.error = e instanceof Error ? e.message : String(e);
    if (report.status === "interrupted") report.resumeCommand = opts.resumeCommand;
    if (flowCtx && report.stages.length === 0) report.stages = stageReports(flowCtx.snapshot(), []);
    return finish();
  } finally {
    if (timer) clearInterval(timer);
    try {
      await resources.close();
    } catch (e) {
      log(`closing resources: ${(e as Error).message}`);
    }
  }
}

/**
 * Why no row reached the end of the flow, or null when some did: the stage where the rows
 * vanished and its most frequent drop reason (a rule, a dead-letter reason or a note such as
 * "groups without a pair over minMargin").
 *
 * @example
 * emptyRunError(report.stages) // 'no rows reached the end: stage "decode" took 8 rows and passed none (dead-letter: bad image 8)'
 */
export function emptyRunError(stages: readonly StageReport[]): string | null {
  const last = stages.at(-1);
  // Rows consumed at the end: the trainer's (a sink stage) or the final consumer's.
  if (!last || reconcile(stages, 0).sinkRows > 0) return null;
  const dominant = (s: StageReport): string => {
    const top = Object.entries(s.drops).sort((a, b) => b[1] - a[1])[0];
    return top ? ` (${top[0]} ${top[1]})` : "";
  };
  const src = stages[0]!;
  if (src.rowsOut === 0) return `no rows reached the end: stage "${src.stage}" produced no rows${src.deadLettered > 0 ? `; ${src.deadLettered} dead-lettered${dominant(src)}` : ""}`;
  const gone = stages.find((s, i) => i > 0 && s.rowsIn + s.expanded > 0 && s.rowsOut === 0) ?? last;
  return `no rows reached the end: stage "${gone.stage}" took ${gone.rowsIn} rows and passed none${dominant(gone)}`;
}

function numericEntries(o: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(o)) if (typeof v === "number" && Number.isFinite(v)) out[k] = v;
  return out;
}

/**
 * Drop reasons from an operator's `counts`: every positive count except bookkeeping totals
 * (`kept`, `groups`, `pairs`, `rows`, `in`, `out`), which are not reasons.
 */
export function dropReasons(c: Record<string, number>): Map<string, number> {
  const totals = new Set(["kept", "groups", "pairs", "rows", "in", "out", "images", "candidates"]);
  const m = new Map<string, number>();
  for (const [k, v] of Object.entries(c)) if (!totals.has(k) && v > 0) m.set(k, v);
  return m;
}

/** Readable names of operator counts that are not row drops. */
const COUNT_LABELS: Record<string, string> = {
  singleCandidate: "groups with one candidate",
  margin: "groups without a pair over minMargin",
  lengthRatio: "groups without a pair within maxLengthRatio",
  capped: "pairs over maxPairsPerImage",
};

/** One progress line of scheduler throughput, per registered model. */
function schedulerLine(r: PipelineResources): string[] {
  const models = Object.entries(r.scheduler.stats().models);
  if (models.length === 0) return [];
  return [`scheduler  ${models.map(([n, m]) => `${n} ${m.items} items (${m.batches} batches, fill ${(100 * m.fillRatio).toFixed(0)}%)`).join("; ")}`];
}

/** Output files named by `write` stages, the dead-letter file, and the trainer's outputs. */
function outputsOf(p: ResolvedPipeline): string[] {
  const out: string[] = [];
  for (const s of p.stages) if (s.name === "write" && s.options.path) out.push(s.options.path);
  for (const f of [RUN_FILES.metrics, RUN_FILES.checkpoints, RUN_FILES.policy]) {
    const path = join(p.out.dir, f);
    if (existsSync(path)) out.push(path);
  }
  if (existsSync(p.flow.deadLetter)) out.push(p.flow.deadLetter);
  return out;
}

async function trainingReport(outDir: string, stages: readonly StageSnapshot[], resumedFrom: string | null): Promise<RunReport["training"]> {
  const metricsPath = join(outDir, RUN_FILES.metrics);
  const steps = existsSync(metricsPath) ? ((await readMetricsLog(metricsPath)) as unknown as TrainingStep[]) : [];
  const ckpt = await latestCheckpoint(join(outDir, RUN_FILES.checkpoints));
  const trainer = stages.find((s) => s.stage === "dpoTrain");
  return { steps, pairs: trainer ? trainer.rowsOut : 0, checkpoint: ckpt?.dir ?? null, resumedFrom };
}

/** A pipeline of job stages: each runs to the end in turn; Ctrl-C stops before the next one. */
async function runJobs(
  p: ResolvedPipeline,
  report: RunReport,
  resources: PipelineResources,
  o: { signal: AbortSignal; resume: boolean; log: (line: string) => void; resumeCommand: string; finish: () => RunResult },
): Promise<RunResult> {
  const names = flowNames(p.stages);
  try {
    for (const s of p.stages) {
      if (o.signal.aborted) {
        report.status = "interrupted";
        report.resumeCommand = o.resumeCommand;
        return o.finish();
      }
      const t = performance.now();
      const def = stageRegistry[s.name] as StageDefinition<z.ZodType>;
      const r = await def.job!(s.options, { pipeline: p, index: s.index, name: names[s.index]!, resources, resume: o.resume, allowConfigChange: false, signal: o.signal, log: o.log });
      report.jobs.push({ stage: names[s.index]!, outputs: r.outputs, metrics: r.metrics, ms: performance.now() - t });
      report.outputs.push(...r.outputs);
    }
    report.timings.flowMs = report.jobs.reduce((a, j) => a + j.ms, 0);
    report.status = o.signal.aborted ? "interrupted" : "completed";
    if (report.status === "interrupted") report.resumeCommand = o.resumeCommand;
    return o.finish();
  } catch (e) {
    report.status = o.signal.aborted ? "interrupted" : "failed";
    report.error = e instanceof Error ? e.message : String(e);
    return o.finish();
  } finally {
    await resources.close().catch((e: unknown) => o.log(`closing resources: ${(e as Error).message}`));
  }
}

/** The untrained policy the pipeline starts from: the first row of the result table. */
function startSubject(p: ResolvedPipeline, resources: PipelineResources): EvalSubject {
  const name = p.eval!.model!;
  const m = p.models[name];
  return {
    name: m && "builtin" in m && m.builtin === "shapes-lvlm" ? "SFT policy" : `${name} (start)`,
    model: name,
    pairs: null,
    pairAudit: null,
    policy: () => resources.freshLvlm(name),
  };
}

/** A trained policy folder as a row of the result table. */
function trainedSubject(p: ResolvedPipeline, name: string, dir: string, pairs: number | null, pairAudit: PairAudit | null): EvalSubject {
  return { name, model: dir, pairs, pairAudit, policy: () => loadLvlm(dir, { threads: p.scheduler.threads }) };
}

/** Evaluates the subjects into `report.evaluation`; false when interrupted. */
/**
 * Runs the evaluation when the pipeline has one (subjects are built only then) and settles the
 * report's status: `completed`, or `interrupted` with the resume command when Ctrl-C cut it short.
 */
async function evaluateAndSettle(
  p: ResolvedPipeline,
  report: RunReport,
  signal: AbortSignal,
  log: (line: string) => void,
  resumeCommand: string,
  subjects: (ev: NonNullable<ResolvedPipeline["eval"]>) => EvalSubject[],
): Promise<void> {
  if (p.eval) {
    const tEval = performance.now();
    const done = await evaluate(p, subjects(p.eval), report, signal, log);
    report.timings.evalMs = performance.now() - tEval;
    if (!done) {
      report.status = "interrupted";
      report.resumeCommand = resumeCommand;
      return;
    }
  }
  report.status = "completed";
}

async function evaluate(p: ResolvedPipeline, subjects: EvalSubject[], report: RunReport, signal: AbortSignal, log: (line: string) => void): Promise<boolean> {
  const src = p.stages[0];
  const imageSize = src?.name === "source" && "imageSize" in src.options ? Number(src.options.imageSize) : undefined;
  try {
    report.evaluation = await evaluatePolicies(subjects, p.eval!, {
      signal,
      ...(imageSize ? { imageSize } : {}),
      onProgress: (row, done, total) => log(`eval ${row}: ${done}/${total} scenes`),
    });
    return true;
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") return false;
    throw err;
  }
}

/** `DPO on random pairs` → `dpo-on-random-pairs`: a variant's folder name. */
export function variantSlug(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "variant";
}

/**
 * A comparison: each variant runs as its own pipeline (the file with the command line's and the
 * variant's overrides, evaluation off) into `out.dir/<slug>/`, in order; then the starting
 * policy and every variant's trained policy are evaluated on the same scenes into one table.
 * With --resume, a variant whose folder holds a completed report and policy is not run again.
 */
async function runVariants(p: ResolvedPipeline, report: RunReport, opts: RunPipelineOptions, finish: () => RunResult): Promise<RunResult> {
  const signal = opts.signal ?? new AbortController().signal;
  const log = opts.log ?? (() => {});
  const resources = (opts.resources ?? ((q) => new PipelineResources(q)))(p);
  const trained: EvalSubject[] = [];
  const t0 = performance.now();
  try {
    for (const [i, v] of p.variants.entries()) {
      const outDir = join(p.out.dir, variantSlug(v.name));
      const policyDir = join(outDir, RUN_FILES.policy);
      const previous = join(outDir, "report.json");
      let vr: RunReport;
      if (opts.resume && existsSync(previous) && existsSync(join(policyDir, "config.json")) && (JSON.parse(readFileSync(previous, "utf8")) as RunReport).status === "completed") {
        log(`variant ${i + 1}/${p.variants.length} "${v.name}": completed earlier, kept (${outDir})`);
        vr = JSON.parse(readFileSync(previous, "utf8")) as RunReport;
      } else {
        log(`variant ${i + 1}/${p.variants.length} "${v.name}" → ${outDir}`);
        const vp = loadPipeline(p.file, { overrides: [...p.overrides, ...v.set, "eval=null"], outDir, asVariant: true });
        vr = (await runPipeline(vp, { ...opts, log })).report;
      }
      report.variants.push({ name: v.name, set: [...v.set], status: vr.status, error: vr.error, outDir, pairs: vr.training?.pairs ?? null, pairAudit: vr.pairAudit ?? null, steps: vr.training?.steps.length ?? 0, totalMs: vr.timings.totalMs });
      report.outputs.push(join(outDir, "report.html"));
      if (vr.status !== "completed") {
        report.status = vr.status;
        report.error = vr.error === null ? null : `variant "${v.name}": ${vr.error}`;
        if (vr.status === "interrupted") report.resumeCommand = opts.resumeCommand;
        return finish();
      }
      if (existsSync(join(policyDir, "config.json"))) trained.push(trainedSubject(p, v.name, policyDir, vr.training?.pairs ?? null, vr.pairAudit ?? null));
    }
    report.timings.flowMs = performance.now() - t0;
    await evaluateAndSettle(p, report, signal, log, opts.resumeCommand, () => [startSubject(p, resources), ...trained]);
    return finish();
  } catch (e) {
    report.status = signal.aborted ? "interrupted" : "failed";
    report.error = e instanceof Error ? e.message : String(e);
    if (report.status === "interrupted") report.resumeCommand = opts.resumeCommand;
    return finish();
  } finally {
    await resources.close().catch((e: unknown) => log(`closing resources: ${(e as Error).message}`));
  }
}
