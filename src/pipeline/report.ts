/**
 * The run report: what a pipeline run did, as `report.json` (data) and `report.html` (the same
 * data for people: samples, curves, the evaluation table), both written atomically into the
 * run's output folder.
 *
 * Counts reconcile per stage (rowsIn + expanded = rowsOut + filtered + deadLettered + buffered)
 * and across the flow (source rows + expanded = sink rows + filtered + dead-lettered + rows still
 * inside at an interrupt); `drops` breaks filtered and dead-lettered rows down by reason.
 *
 * @example
 * const report = emptyReport({ file: "pipelines/clip-dpo.yaml", command: "bun run pipeline", config: pipelineToData(p) });
 * report.status = "completed";
 * writeRunReport("runs/clip-dpo", report); // runs/clip-dpo/report.json + report.html
 */
import { join } from "node:path";
import type { CreditStats, DeadRow, StageSnapshot } from "../flow/index.ts";
import { writeFileAtomic } from "../io/atomic-file.ts";
import type { SchedulerStats } from "../scheduler/scheduler.ts";
import type { PairAudit } from "../../demo/world/index.ts";
import { renderReportHtml } from "./report-html.ts";
import { pairedRows, perSeedEvaluations, seedMean, type SeedSummary } from "./seeds.ts";

export const REPORT_FORMAT = "clipflow-run-report";
export const REPORT_JSON = "report.json";
export const REPORT_HTML = "report.html";

/** How a run ended. `not-implemented`: a stage of the pipeline has no operator yet. */
export type RunStatus = "running" | "completed" | "interrupted" | "failed" | "not-implemented";

/** One stage's counts (the flow's StageSnapshot) with its drops by reason. */
export interface StageReport extends StageSnapshot {
  /** Rows dropped by reason: rule drops reported by the stage plus dead-letter reasons. */
  drops: Record<string, number>;
  /**
   * What the stage's definition reports about itself after the flow (src/flow/stage.ts
   * `StageDefinition.report`; e.g. write: `{ rows, path, committed }`); absent when it has no
   * report hook or the cluster's workers ran it.
   */
  figures?: Record<string, unknown>;
}

/** One worker of a cluster run, as the coordinator saw it (`report.cluster.workers[]`). */
export interface ClusterWorkerReport {
  worker: string;
  batches: number;
  rowsIn: number;
  rowsOut: number;
  /** Worker-side batch time (sum, ms). */
  busyMs: number;
  /** Images per second of busy time. */
  imagesPerSec: number;
  /** Results that answered a redelivered work message. */
  redelivered: number;
}

/**
 * `report.json`'s `cluster` section. The pipeline defines the shape (the report is its contract)
 * and the cluster layer (src/cluster's coordinator) fills it, so src/pipeline never imports
 * src/cluster.
 */
export interface ClusterReportSection {
  /** The run id on the cluster. */
  run: string;
  /** The NATS server(s) the coordinator used. */
  servers: string;
  /** Flow names of the stages the workers ran, in order. */
  stages: string[];
  batchesPublished: number;
  /** Batches whose result was already in the results stream (a resumed run). */
  batchesReused: number;
  batchesDone: number;
  /** Batches dead-lettered as a whole (MaxDeliver exhausted, or an error result). */
  batchesDeadLettered: number;
  /** Results dropped because their batch was already answered (redeliveries, the server's retries). */
  duplicateResults: number;
  /** Results that answered a redelivered work message (delivery > 1). */
  redeliveries: number;
  /** Work message sizes (bytes): min, mean, max. */
  workBytes: { min: number; mean: number; max: number };
  resultBytes: { min: number; mean: number; max: number };
  /** Sums of the workers' per-stage counts (first result of each batch). */
  stageCounts: Record<string, { rowsIn: number; rowsOut: number; filtered: number; expanded: number; deadLettered: number }>;
  workers: ClusterWorkerReport[];
  /** Policy version of each answered batch: version -> batches. */
  policyVersions: Record<string, number>;
}

/** The flow-wide row reconciliation. */
export interface Reconciliation {
  sourceRows: number;
  expanded: number;
  sinkRows: number;
  filtered: number;
  deadLettered: number;
  /** Rows still inside stages (non-zero only after an interrupt). */
  inside: number;
  balanced: boolean;
}

/** One logged optimiser step (TRL key names, as src/train's metrics log writes them). */
export type TrainingStep = { step: number; loss: number } & Record<string, number>;

export interface TrainingReport {
  steps: TrainingStep[];
  /** Pairs the trainer consumed. */
  pairs: number;
  /** Last checkpoint folder, kept on interrupt. */
  checkpoint: string | null;
  /** Checkpoint the run resumed from (the one the trainer loaded, after any fall-back). */
  resumedFrom: string | null;
  /** Training settings changed on resume, let through by --allow-config-change (`key: old -> new`). */
  configChanges?: string[];
  /** Stream pairs skipped because the checkpoint resumed from had already trained on them. */
  skippedOnResume?: number;
}

/** A point estimate with its 95% percentile-bootstrap (or t) interval. */
export interface CiValue {
  value: number;
  lo: number;
  hi: number;
}

/** How answers were decoded for one column group of the table. */
export interface DecodingSpec {
  /** "greedy" or "sampled". */
  name: string;
  /** 0 = greedy. */
  temperature: number;
  topP: number;
  /** Answers per scene. */
  samples: number;
}

/** One row's results under one decoding. */
export interface DecodingResult {
  /** DecodingSpec.name. */
  decoding: string;
  /** Answers scored (scenes × samples). */
  answers: number;
  /** Summed counts behind every rate (demo/world AnswerCounts). */
  counts: Record<string, number>;
  /** Every rate of RATE_DEFINITIONS with its 95% CI over scenes (bootstrap, resampling scenes). */
  rates: Record<string, CiValue>;
  /** Paired difference (this row − the starting policy) per rate, same scenes and resamples; null on the starting row. */
  vsStart: Record<string, CiValue> | null;
  /** Paired difference (this row − DPO on random pairs); null when there is no such row or this is it. */
  vsRandom: Record<string, CiValue> | null;
  /** Paired difference to the row's `previous` row (on-policy rounds: round r − round r−1). */
  vsPrevious?: Record<string, CiValue>;
}

/** A probe measured through the policy: binary existence questions (POPE), QA, zero-shot kind. */
export interface ProbeReport {
  /** How the policy answers, in words (e.g. scored by log-probability of candidate answers). */
  method: string;
  /** POPE per negative setting: accuracy, precision, recall, f1, yesRatio (each with its CI over scenes) and questions asked. */
  pope: Record<string, { questions: number; accuracy: CiValue; precision: CiValue; recall: CiValue; f1: CiValue; yesRatio: CiValue }>;
  /** QA accuracy per item type (count, colour, shape) and overall, with items asked. */
  qa: Record<string, { items: number; accuracy: CiValue }>;
  /** Zero-shot kind classification of single-object scenes through the policy. */
  zeroShot: { scenes: number; accuracy: CiValue };
  /** Paired differences to the starting policy (f1 per POPE setting, QA overall, zero-shot), null on the starting row. */
  vsStart: Record<string, CiValue> | null;
}

/** One evaluated policy: a row of the result table. */
export interface EvalRow {
  /** e.g. "SFT policy", "CLIP-DPO", "DPO on random pairs". */
  name: string;
  /** The `models` entry (or checkpoint) evaluated. */
  model: string;
  /** Preference pairs this policy was trained on (null for the starting policy). */
  pairs: number | null;
  /** Those pairs audited against the scene truth (measurement only; null when not audited). */
  pairAudit: PairAudit | null;
  /** Greedy answers scored (the fields below are the first decoding's, kept for old readers). */
  answers: number;
  /** CHAIR_i. */
  chairI: number;
  /** CHAIR_s (AMBER "Hal"). */
  chairS: number;
  cover: number;
  attributeHallucination: number;
  relationHallucination: number;
  counts: Record<string, number>;
  /** Per decoding (EvalReport.decodings order): rates with CIs, paired differences. */
  decodings?: DecodingResult[];
  /** POPE / QA / zero-shot probes through this policy (null when not run). */
  probes?: ProbeReport | null;
}

/** A generated answer of the evaluation, for the report's examples. */
export interface EvalExample {
  sceneId: string;
  image: string | null;
  truth: string;
  /** Answer per evaluated row, in `rows` order. */
  answers: string[];
  /** Sampled answers per row (the second decoding's), when sampled decoding ran. */
  sampled?: string[][];
}

export interface EvalReport {
  split: string;
  count: number;
  seed: number;
  prompt: string;
  metrics: string[];
  rows: EvalRow[];
  examples: EvalExample[];
  /** Decodings evaluated, in column order (greedy first). */
  decodings?: DecodingSpec[];
  /** Bootstrap resamples behind every CI (over scenes). */
  resamples?: number;
  /** Why the probes did not run (null: they ran, or were off). */
  probeError?: string | null;
}

/** A preference pair shown in the report. */
export interface SampleReport {
  imageId: string;
  prompt: string;
  /** The image as a `data:image/png;base64,…` URI (null when not available). */
  image: string | null;
  chosen: string;
  rejected: string;
  chosenScore: number;
  rejectedScore: number;
  margin: number;
}

/** One variant of a comparison run (pipelines/compare.yaml). */
export interface VariantReport {
  name: string;
  /** Its overrides on top of the pipeline file and the command line. */
  set: string[];
  /** The seed it ran with (pipelines with `seeds:`); absent without seeds. */
  seed?: number;
  /** That seed's overrides, applied before `set`. */
  seedSet?: string[];
  status: RunStatus;
  error: string | null;
  /** Its own output folder, with its own report. */
  outDir: string;
  /** Pairs its trainer consumed. */
  pairs: number | null;
  /** Its pairs audited against the scene truth. */
  pairAudit: PairAudit | null;
  steps: number;
  totalMs: number;
}

/** A comparison run with `seeds:` (src/pipeline/seeds.ts): each seed's table and their combination. */
export interface SeedsReport {
  /** The seeds run, in order; each seed's runs are in `out.dir/seed-<s>/`. */
  seeds: number[];
  /** seed → the overrides that made its runs (every stage's `seed` option). */
  overrides: Record<string, string[]>;
  /**
   * Per row and rate: per-seed values with their CIs over scenes, the mean over seeds with a t 95%
   * interval, paired differences (vs the start row, vs the seed's random-pairs row) per seed and
   * their mean; null when the evaluation did not complete. Each seed's own table is
   * `seedEvaluation(evaluation, seed)`.
   */
  summary: SeedSummary | null;
  /** Why there is no summary although the evaluation completed. */
  summaryError?: string;
}

/** One on-policy round (src/pipeline/rounds.ts). */
export interface RoundReport {
  round: number;
  /** The round's own output folder (its report, pairs, checkpoints, policy). */
  outDir: string;
  status: RunStatus;
  error: string | null;
  /** Policy that generated the round's candidates (the start, or round r−1's policy folder). */
  generatedBy: string;
  /** DPO reference: "previous" (the generating policy) or "sft" (the starting policy). */
  reference: string;
  /** World seed of the round's fresh dpo-split scenes. */
  sourceSeed: number;
  pairs: number | null;
  pairAudit: PairAudit | null;
  steps: number;
  lastLoss: number | null;
  lastRewardAccuracy: number | null;
  totalMs: number;
}

/** A job stage's result (e.g. a pretraining recipe). */
export interface JobReport {
  stage: string;
  outputs: string[];
  metrics: Record<string, unknown>;
  ms: number;
}

export interface Timings {
  totalMs: number;
  /** Loading models, starting the scheduler. */
  setupMs: number;
  flowMs: number;
  evalMs: number;
}

/** Everything `report.json` holds. */
export interface RunReport {
  format: typeof REPORT_FORMAT;
  version: 1;
  file: string;
  description: string | null;
  /** The command that ran (and, for an interrupted run, how to resume it). */
  command: string;
  resumeCommand: string | null;
  status: RunStatus;
  error: string | null;
  startedAt: string;
  finishedAt: string | null;
  /** The resolved pipeline, every default explicit. */
  config: Record<string, unknown>;
  overrides: string[];
  stages: StageReport[];
  reconciliation: Reconciliation | null;
  credits: CreditStats | null;
  deadLetter: { rows: number; path: string | null };
  timings: Timings;
  scheduler: SchedulerStats | null;
  training: TrainingReport | null;
  evaluation: EvalReport | null;
  samples: SampleReport[];
  /**
   * The pairs stage's output audited against the scene truth (shapes-world images only; a
   * measurement for this report, never an input of any stage): share of pairs whose chosen
   * answer names fewer / more absent objects than the rejected one.
   */
  pairAudit: PairAudit | null;
  /** Job stages run (pipelines of jobs, e.g. pretraining recipes). */
  jobs: JobReport[];
  /** Variants run (pipelines with a `variants` section). */
  variants: VariantReport[];
  /** Seeds of a comparison (`seeds:`): the evaluation's rows are per (variant, seed); absent without seeds. */
  seeds?: SeedsReport;
  /** On-policy rounds run (`rounds:`), in order; absent without rounds. */
  rounds?: RoundReport[];
  /** Files the run wrote (absolute paths). */
  outputs: string[];
  /** What the cluster's coordinator saw (a run with `cluster:` or `--cluster URL`); absent otherwise. */
  cluster?: ClusterReportSection;
}

/** A fresh report for a run that is about to start. */
export function emptyReport(init: { file: string; description?: string | null; command: string; config: Record<string, unknown>; overrides?: readonly string[]; now?: Date }): RunReport {
  return {
    format: REPORT_FORMAT,
    version: 1,
    file: init.file,
    description: init.description ?? null,
    command: init.command,
    resumeCommand: null,
    status: "running",
    error: null,
    startedAt: (init.now ?? new Date()).toISOString(),
    finishedAt: null,
    config: init.config,
    overrides: [...(init.overrides ?? [])],
    stages: [],
    reconciliation: null,
    credits: null,
    deadLetter: { rows: 0, path: null },
    timings: { totalMs: 0, setupMs: 0, flowMs: 0, evalMs: 0 },
    scheduler: null,
    training: null,
    evaluation: null,
    samples: [],
    pairAudit: null,
    jobs: [],
    variants: [],
    outputs: [],
  };
}

/**
 * Per-stage reports: the flow's snapshots with drops by reason. `ruleDrops` are the reasons a
 * stage gave for rows it filtered (stage name → reason → rows); dead-lettered rows are grouped by
 * their dead-letter reason. Filtered rows without a stated reason appear as "filtered".
 */
export function stageReports(
  snapshots: readonly StageSnapshot[],
  deadRows: readonly DeadRow[],
  ruleDrops: ReadonlyMap<string, ReadonlyMap<string, number>> = new Map(),
  /** Counts in other units than rows (e.g. pairs' groups without a pair), shown as they are. */
  notes: ReadonlyMap<string, ReadonlyMap<string, number>> = new Map(),
): StageReport[] {
  const dead = new Map<string, Map<string, number>>();
  for (const r of deadRows) {
    let m = dead.get(r.stage);
    if (!m) dead.set(r.stage, (m = new Map()));
    m.set(r.reason, (m.get(r.reason) ?? 0) + 1);
  }
  return snapshots.map((s) => {
    const drops: Record<string, number> = {};
    let stated = 0;
    for (const [reason, n] of ruleDrops.get(s.stage) ?? []) {
      drops[reason] = (drops[reason] ?? 0) + n;
      stated += n;
    }
    if (s.filtered > stated) drops.filtered = (drops.filtered ?? 0) + s.filtered - stated;
    for (const [what, n] of notes.get(s.stage) ?? []) drops[what] = (drops[what] ?? 0) + n;
    for (const [reason, n] of dead.get(s.stage) ?? []) drops[`dead-letter: ${reason}`] = (drops[`dead-letter: ${reason}`] ?? 0) + n;
    return { ...s, drops };
  });
}

/**
 * The flow-wide reconciliation from per-stage snapshots in flow order (the first is the source).
 * Sink rows are rows a stage consumed without passing them on: a sink stage's rowsOut (e.g.
 * the trainer) and the final consumer's. Balanced when
 * source rows + expanded = sink rows + filtered + dead-lettered + inside.
 */
export function reconcile(stages: readonly StageSnapshot[], deadLettered: number): Reconciliation {
  const source = stages[0];
  const sum = (f: (s: StageSnapshot) => number): number => stages.reduce((a, s) => a + f(s), 0);
  const filtered = sum((s) => s.filtered);
  const expanded = sum((s) => s.expanded);
  // Rows held inside stages (queued, running, buffered): non-zero only when interrupted.
  const inside = sum((s) => s.rowsIn + s.expanded - s.rowsOut - s.filtered - s.deadLettered);
  // The source counts its bad rows as rowsIn + deadLettered, so its rowsIn are all rows read.
  const sourceRows = source?.rowsIn ?? 0;
  let sinkRows = 0;
  for (let i = 1; i < stages.length; i++) sinkRows += stages[i]!.rowsOut - (stages[i + 1]?.rowsIn ?? 0);
  return {
    sourceRows,
    expanded,
    sinkRows,
    filtered,
    deadLettered,
    inside,
    balanced: sourceRows + expanded === sinkRows + filtered + deadLettered + inside,
  };
}

/** One line describing the reconciliation, e.g. `source 64 + expanded 448 = sink 20 + filtered 492 + dead-lettered 0  ok`. */
export function reconciliationLine(r: Reconciliation): string {
  return (
    `reconcile: source ${r.sourceRows}${r.expanded ? ` + expanded ${r.expanded}` : ""} = sink ${r.sinkRows} + filtered ${r.filtered} + dead-lettered ${r.deadLettered}` +
    (r.inside ? ` + dropped at interrupt ${r.inside}` : "") +
    (r.balanced ? "  ok" : "  MISMATCH")
  );
}

/** JSON with non-finite numbers written as null (JSON has no NaN/Infinity). */
export function reportToJson(report: RunReport): string {
  return `${JSON.stringify(report, (_k, v: unknown) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2)}\n`;
}

/**
 * Writes `report.json` and `report.html` into `dir` (each temp + fsync + rename, so a reader
 * never sees half a report). Returns their paths.
 */
export function writeRunReport(dir: string, report: RunReport): { json: string; html: string } {
  const json = join(dir, REPORT_JSON);
  const html = join(dir, REPORT_HTML);
  writeFileAtomic(json, reportToJson(report));
  writeFileAtomic(html, renderReportHtml(report));
  return { json, html };
}

/** `18.3 [16.0, 20.7]`: a rate in percent with its CI. */
export function formatCi(c: CiValue | undefined, digits = 1, signed = false): string {
  if (!c) return "-";
  const f = (v: number): string => (Number.isFinite(v) ? `${signed && v > 0 ? "+" : ""}${(100 * v).toFixed(digits)}` : "-");
  return `${f(c.value)} [${f(c.lo)}, ${f(c.hi)}]`;
}

/** Rate columns of the text and HTML tables: key, header. */
export const TABLE_RATES: readonly (readonly [string, string])[] = [
  ["chairI", "CHAIR_i %"], ["chairS", "CHAIR_s %"], ["cover", "Cover %"], ["addition", "co-occ. add. %"], ["misread", "misread %"],
  ["count", "count %"], ["other", "other %"], ["attribute", "attr hal. %"], ["relation", "rel hal. %"],
];

function padTable(cells: string[][]): string {
  const w = cells.reduce<number[]>((acc, r) => r.map((c, j) => Math.max(acc[j] ?? 0, c.length)), []);
  return cells.map((r) => r.map((c, j) => (j === 0 ? c.padEnd(w[j]!) : c.padStart(w[j]!))).join("  ")).join("\n");
}

/**
 * The evaluation as plain-text tables for the CLI: per decoding, every row's rates with 95% CIs
 * over scenes, then each DPO row's paired differences (vs the starting policy and vs random
 * pairs), the probes, and seed groups. Rows without decodings (old reports) print nothing here.
 * @example
 * process.stdout.write(evaluationTables(report.evaluation) + "\n");
 */
export function evaluationTables(e: EvalReport): string {
  const out: string[] = [];
  const specs = e.decodings ?? [];
  specs.forEach((d, di) => {
    const title = d.temperature === 0 ? `${d.name} decoding` : `${d.name} decoding (T ${d.temperature}, top-p ${d.topP}, ${d.samples} per scene)`;
    out.push(`${title}, 95% CI over ${e.count} scenes (${e.resamples ?? "?"} bootstrap resamples):`);
    out.push(padTable([["policy", ...TABLE_RATES.map(([, h]) => h)], ...e.rows.map((r) => [r.name, ...TABLE_RATES.map(([k]) => formatCi(r.decodings?.[di]?.rates[k]))])]));
    const diffs = e.rows.filter((r) => r.decodings?.[di]?.vsStart || r.decodings?.[di]?.vsRandom);
    if (diffs.length > 0) {
      out.push(`  paired differences (${d.name}; same scenes, same resamples; a CI excluding 0 is the claim):`);
      out.push(padTable([
        ["  policy", "ΔCHAIR_i vs start", "Δco-occ. vs start", "ΔCover vs start", "ΔCHAIR_i vs random", "Δco-occ. vs random", "ΔCHAIR_i vs previous"],
        ...diffs.map((r) => {
          const x = r.decodings![di]!;
          return [`  ${r.name}`, formatCi(x.vsStart?.chairI, 1, true), formatCi(x.vsStart?.addition, 1, true), formatCi(x.vsStart?.cover, 1, true), formatCi(x.vsRandom?.chairI, 1, true), formatCi(x.vsRandom?.addition, 1, true), formatCi(x.vsPrevious?.chairI, 1, true)];
        }),
      ]));
    }
  });
  const probed = e.rows.filter((r) => r.probes);
  if (probed.length > 0) {
    const p0 = probed[0]!.probes!;
    const settings = Object.keys(p0.pope);
    out.push(`probes (${p0.method}):`);
    out.push(padTable([
      ["policy", ...settings.flatMap((s) => [`POPE ${s} acc %`, `F1 %`, `yes %`]), ...Object.keys(p0.qa).map((k) => `QA ${k} %`), "zero-shot kind %"],
      ...probed.map((r) => {
        const p = r.probes!;
        return [r.name, ...settings.flatMap((s) => [formatCi(p.pope[s]?.accuracy), formatCi(p.pope[s]?.f1), formatCi(p.pope[s]?.yesRatio)]), ...Object.keys(p0.qa).map((k) => formatCi(p.qa[k]?.accuracy)), formatCi(p.zeroShot.accuracy)];
      }),
    ]));
  }
  return out.join("\n");
}

/**
 * The tables of a comparison run with seeds, as plain text for the CLI: each seed's tables (the
 * shared start row and that seed's rows; evaluationTables of seedEvaluation), then the combined
 * table per decoding — every row's mean over seeds [t 95% interval over seeds] — the per-seed
 * values behind it, and each DPO row's paired differences per seed [95% CI over scenes] with
 * their mean over seeds.
 * @example
 * if (report.seeds && report.evaluation) process.stdout.write(seedTables(report.evaluation, report.seeds) + "\n");
 */
export function seedTables(e: EvalReport, seeds: SeedsReport): string {
  const out: string[] = [];
  const start = e.rows.find((r) => !/ \(seed \d+\)$/.test(r.name))?.name;
  for (const { seed, evaluation: one } of perSeedEvaluations(e, seeds.seeds)) {
    out.push(`── seed ${seed} (${(seeds.overrides[String(seed)] ?? []).join(" ")})${start ? `; "${start}" evaluated once, shared by every seed` : ""}`);
    out.push(evaluationTables(one));
  }
  const s = seeds.summary;
  if (!s) {
    if (seeds.summaryError) out.push(`no combined table over seeds: ${seeds.summaryError}`);
    return out.join("\n");
  }
  const n = s.seeds.length;
  const keys = TABLE_RATES.slice(0, 5);
  for (const d of s.decodings) {
    out.push(`── combined over ${n} seed${n === 1 ? "" : "s"} (${s.seeds.join(", ")}), ${d} decoding: mean${n > 1 ? " [t 95% interval over seeds]" : " (one seed: no interval over seeds)"}:`);
    out.push(padTable([["policy", ...keys.map(([, h]) => h)], ...s.rows.map((r) => [r, ...keys.map(([k]) => seedMean(s.rates[d]![r]![k]!, false, s.shared.includes(r)))])]));
    out.push(`  per seed (${s.seeds.join(" / ")}):`);
    out.push(padTable([["  policy", ...keys.map(([, h]) => h)], ...s.rows.filter((r) => !s.shared.includes(r)).map((r) => [`  ${r}`, ...keys.map(([k]) => s.rates[d]![r]![k]!.perSeed.map((v) => (100 * v).toFixed(1)).join(" / "))])]));
    const paired = pairedRows(s, d);
    if (paired.length > 0) {
      out.push(`  paired differences (${d}): mean over seeds${n > 1 ? " [t 95%]" : ""}; per seed value [95% CI over scenes]:`);
      const diff = (xs: readonly CiValue[] | undefined, m: { value: number; lo: number; hi: number } | undefined): string =>
        m && xs && xs.length > 0 ? `${seedMean({ mean: m, perSeed: xs }, true)}; ${xs.map((x) => formatCi(x, 1, true)).join(" / ")}` : "-";
      out.push(padTable([
        ["  policy", "ΔCHAIR_i vs start", "Δco-occ. vs start", "ΔCover vs start", "ΔCHAIR_i vs random"],
        ...paired.map((r) => {
          const st = s.vsStart[d]![r]!, rn = s.vsRandom[d]![r]!, ms = s.vsStartMean[d]![r], mr = s.vsRandomMean[d]![r];
          return [`  ${r}`, diff(st.chairI, ms?.chairI), diff(st.addition, ms?.addition), diff(st.cover, ms?.cover), diff(rn.chairI, mr?.chairI)];
        }),
      ]));
    }
  }
  const probed = s.rows.filter((r) => s.probes[r] && Object.keys(s.probes[r]!).length > 0);
  if (probed.length > 0) {
    const pk = Object.keys(s.probes[probed[0]!]!);
    out.push(`── probes combined over seeds: mean${n > 1 ? " [t 95%]" : ""}:`);
    out.push(padTable([["policy", ...pk.map((k) => `${k} %`)], ...probed.map((r) => [r, ...pk.map((k) => (s.probes[r]![k] ? seedMean(s.probes[r]![k]!, false, s.shared.includes(r)) : "-"))])]));
  }
  return out.join("\n");
}
