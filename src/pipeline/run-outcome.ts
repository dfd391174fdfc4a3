/**
 * Turning a finished flow into the report's figures: per-stage drops by reason (each stage's
 * registry entry says which of its counts are totals and which are notes in other units), the
 * check that some row reached the end, the training section, the output files and the progress
 * totals. Stage names appear here only as data from the pipeline; the meaning of each stage
 * comes from its registry entry.
 *
 * @example
 * const stages = stageReportsOf(p, flow.stages, deadRows, counts);
 * const why = emptyRunError(stages); // null, or 'no rows reached the end: stage "pairs" took 40 rows and passed none (…)'
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { DeadRow, StageSnapshot } from "../flow/index.ts";
import { latestCheckpoint } from "../train/checkpoint.ts";
import { readMetricsLog } from "../train/metrics-log.ts";
import type { ResolvedPipeline } from "./loader.ts";
import { definitionOf, findStage, type StageConfig } from "./registry.ts";
import { reconcile, stageReports, type RunReport, type StageReport, type TrainingStep } from "./report.ts";
import { RUN_FILES } from "./run-files.ts";

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
 * Rows each stage is known to receive, for progress ETAs: the first stage's `expectedRows`, and
 * the same for the stages right after it that take one row per source row — upstream of any
 * filter, so only dead-lettered rows can make them fall short.
 */
export function knownTotals(p: ResolvedPipeline): Record<string, number> {
  const src = p.stages[0];
  const count = src ? definitionOf(src.name).expectedRows?.(src.options) : undefined;
  if (!src || count === null || count === undefined) return {};
  const names = flowNames(p.stages);
  const totals: Record<string, number> = { [names[0]!]: count };
  for (let i = 1; i < p.stages.length && definitionOf(p.stages[i]!.name).rowPerSourceRow; i++) totals[names[i]!] = count;
  return totals;
}

/** Drop reasons from an operator's `counts`: every positive count except the stage's totals. */
export function dropReasons(c: Record<string, number>, totals: readonly string[] = []): Map<string, number> {
  const m = new Map<string, number>();
  for (const [k, v] of Object.entries(c)) if (!totals.includes(k) && v > 0) m.set(k, v);
  return m;
}

/** The numeric entries of an operator's `counts` object. */
export function numericEntries(o: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(o)) if (typeof v === "number" && Number.isFinite(v)) out[k] = v;
  return out;
}

/**
 * Per-stage reports with drops by reason. An operator's counts are row drops when they add up to
 * its filtered rows (a filter's rules); otherwise they are in other units (pairs: groups) and are
 * shown as notes under the stage's `countLabels`.
 */
export function stageReportsOf(
  p: ResolvedPipeline,
  snapshots: readonly StageSnapshot[],
  deadRows: readonly DeadRow[],
  counts: ReadonlyMap<string, () => Record<string, number>>,
): StageReport[] {
  const names = flowNames(p.stages);
  const ruleDrops = new Map<string, Map<string, number>>();
  const notes = new Map<string, Map<string, number>>();
  for (const [name, get] of counts) {
    const def = definitionOf(p.stages[names.indexOf(name)]!.name);
    const reasons = dropReasons(get(), def.countTotals);
    const sum = [...reasons.values()].reduce((a, b) => a + b, 0);
    const snap = snapshots.find((x) => x.stage === name);
    if (snap && sum === snap.filtered) ruleDrops.set(name, reasons);
    else notes.set(name, new Map([...reasons].map(([k, v]) => [def.countLabels?.[k] ?? k, v])));
  }
  // Dead rows count by their reason code ("image is null"), not by their per-row text (which
  // names the file and line): 3,000 missing images are one entry, not 3,000.
  const byCode = deadRows.map((r) => ({ ...r, reason: r.code || r.reason }));
  return stageReports(snapshots, byCode, ruleDrops, notes);
}

/**
 * Why no row reached the end of the flow, or null when some did: the stage where the rows
 * vanished and its most frequent drop reason (a rule, a dead-letter reason or a note such as
 * "groups without a pair over minMargin").
 *
 * @example
 * emptyRunError(report.stages) // 'no rows reached the end: stage "decode" took 8 rows and passed none (dead-letter: bad image 8)'
 */
export function emptyRunError(stages: readonly StageReport[], sourceInputs: readonly string[] = []): string | null {
  const last = stages.at(-1);
  // Rows consumed at the end: the trainer's (a sink stage) or the final consumer's.
  if (!last || reconcile(stages, 0).sinkRows > 0) return null;
  const dominant = (s: StageReport): string => {
    // A named reason says more than the "filtered" remainder (rows no rule or note accounts for).
    const all = Object.entries(s.drops).sort((a, b) => b[1] - a[1]);
    const top = all.find(([k]) => k !== "filtered") ?? all[0];
    return top ? ` (${top[0]} ${top[1]})` : "";
  };
  const src = stages[0]!;
  const from = sourceInputs.length > 0 ? ` from ${sourceInputs.join(", ")}` : "";
  if (src.rowsOut === 0) return `no rows reached the end: stage "${src.stage}" produced no rows${from}${src.deadLettered > 0 ? `; ${src.deadLettered} dead-lettered${dominant(src)}` : ""}`;
  const gone = stages.find((s, i) => i > 0 && s.rowsIn + s.expanded > 0 && s.rowsOut === 0) ?? last;
  return `no rows reached the end: stage "${gone.stage}" took ${gone.rowsIn} rows and passed none${dominant(gone)}`;
}

/** The files and folders the first stage reads (its registry `inputPaths`), for messages. */
export function sourceInputs(p: ResolvedPipeline): string[] {
  const src = p.stages[0];
  if (!src) return [];
  const o = src.options as Record<string, unknown>;
  return Object.keys(definitionOf(src.name).inputPaths ?? {}).flatMap((k) => (typeof o[k] === "string" ? [o[k]] : []));
}

/** The trainer stage of `p` (registry `trainer` hook), if any. */
export function trainerOf(p: ResolvedPipeline): { stage: StageConfig; model: string } | undefined {
  const t = findStage(p.stages, "trainer");
  return t ? { stage: t.stage, model: t.hook.model(t.stage.options) } : undefined;
}

/** The training section: logged steps, pairs the trainer consumed, newest checkpoint. */
/** What the trainer says about its resume (DpoTrainer.resumeInfo). */
export interface ResumeInfo {
  resumedFrom: string | undefined;
  configChanges: string[];
  skippedOnResume: number;
}

/**
 * The report's training section from the trainer's files. `resumedFrom` is the checkpoint the
 * trainer actually loaded (after a fall-back from a corrupt `latest`) when it told us, else the
 * one the run expected to resume from.
 */
export async function trainingReport(p: ResolvedPipeline, stages: readonly StageSnapshot[], resumedFrom: string | null, resume?: ResumeInfo): Promise<RunReport["training"]> {
  const outDir = p.out.dir;
  const metricsPath = join(outDir, RUN_FILES.metrics);
  const steps = existsSync(metricsPath) ? ((await readMetricsLog(metricsPath)) as unknown as TrainingStep[]) : [];
  const ckpt = await latestCheckpoint(join(outDir, RUN_FILES.checkpoints));
  const t = trainerOf(p);
  const name = t ? flowNames(p.stages)[t.stage.index] : undefined;
  const trainer = stages.find((s) => s.stage === name);
  return {
    steps,
    pairs: trainer ? trainer.rowsOut : 0,
    checkpoint: ckpt?.dir ?? null,
    resumedFrom: resume ? (resume.resumedFrom ?? null) : resumedFrom,
    ...(resume && resume.configChanges.length > 0 ? { configChanges: resume.configChanges } : {}),
    ...(resume && resume.skippedOnResume > 0 ? { skippedOnResume: resume.skippedOnResume } : {}),
  };
}

/** Files the stages name (registry `outputs`), the trainer's outputs and the dead-letter file that exist. */
export function outputsOf(p: ResolvedPipeline): string[] {
  const out: string[] = [];
  for (const s of p.stages) out.push(...(definitionOf(s.name).outputs?.(s.options) ?? []));
  for (const f of [RUN_FILES.metrics, RUN_FILES.checkpoints, RUN_FILES.policy]) {
    const path = join(p.out.dir, f);
    if (existsSync(path)) out.push(path);
  }
  if (existsSync(p.flow.deadLetter)) out.push(p.flow.deadLetter);
  return out;
}

/** Name of the result-table row of a policy trained with this pipeline's pairs (the pairs stage's `rowName`). */
export function trainedRowName(p: ResolvedPipeline): string {
  const pairs = findStage(p.stages, "pairs");
  return pairs ? pairs.hook.rowName(pairs.stage.options) : "CLIP-DPO";
}
