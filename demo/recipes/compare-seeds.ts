/**
 * The result table over seeds, from report.json files, with the issue-13 floors computed from
 * the seed means. The combination itself is src/pipeline/seeds.ts (the pipeline runs it for a
 * file with `seeds:`, pipelines/compare.yaml); this CLI prints it as Markdown (the README's
 * table) plus the floors, for
 * - one report of a run with seeds (`npx bun run pipeline pipelines/compare.yaml`), or
 * - several reports of runs that differ only in their seeds (older runs made by hand with
 *   `--set source.seed=N --set generate.seed=N --set pairs.seed=N --set dpoTrain.seed=N`).
 *
 *   npx bun demo/recipes/compare-seeds.ts runs/compare/report.json
 *   npx bun demo/recipes/compare-seeds.ts runs/cmp-s1/report.json runs/cmp-s2/report.json runs/cmp-s3/report.json
 *
 * @example
 * const s = seedSummary([r1.evaluation!, r2.evaluation!, r3.evaluation!]);
 * console.log(seedMarkdown(s) + "\n" + floors(s).join("\n"));
 */
import { readFileSync } from "node:fs";
import type { RunReport } from "../../src/pipeline/report.ts";
import { parseSeedRowName, seedEvaluation, seedMarkdown as tables, seedSummary, type SeedSummary } from "../../src/pipeline/seeds.ts";

export { seedSummary, type SeedCell, type SeedSummary } from "../../src/pipeline/seeds.ts";

const pc = (v: number): string => (100 * v).toFixed(1);

/** Markdown tables of a summary (README's result table) plus the floors of issue 13. */
export function seedMarkdown(s: SeedSummary): string {
  return [tables(s), ...floors(s)].join("\n");
}

/**
 * The summary of report.json files: one report with `seeds` (its seeds' tables combined), or
 * several single-seed reports of the same rows.
 * @throws when a report has no evaluation, or the reports do not have the same rows.
 */
export function summaryOfReports(reports: readonly { file: string; report: RunReport }[]): SeedSummary {
  for (const { file, report } of reports) if (!report.evaluation) throw new Error(`${file}: no evaluation in this report`);
  const only = reports.length === 1 ? reports[0]!.report : undefined;
  if (only?.seeds) {
    const e = only.evaluation!;
    const shared = e.rows.filter((r) => parseSeedRowName(r.name) === undefined).map((r) => r.name);
    return seedSummary(only.seeds.seeds.map((seed) => seedEvaluation(e, seed)), only.seeds.seeds, shared);
  }
  if (reports.some((r) => r.report.seeds)) throw new Error("compare-seeds: give one report of a run with seeds, or several reports without");
  return seedSummary(reports.map((r) => r.report.evaluation!));
}

/** The issue-13 floors from the seed means (CLIP-DPO vs the SFT row, the random and oracle rows). */
export function floors(s: SeedSummary): string[] {
  const find = (re: RegExp): string | undefined => s.rows.find((r) => re.test(r));
  const sft = s.rows[0]!, clip = find(/^CLIP-DPO/), rnd = find(/random/i), orc = find(/oracle/i);
  if (!clip) return [];
  const m = (d: string, r: string, k: string): number => s.rates[d]?.[r]?.[k]?.mean.value ?? Number.NaN;
  const rel = (d: string, k: string): number => (m(d, clip, k) - m(d, sft, k)) / m(d, sft, k);
  const [greedy, sampled] = [s.decodings[0]!, s.decodings[1] ?? s.decodings[0]!];
  const lines = ["**Issue-13 floors** (from the seed means; CLIP-DPO vs the SFT policy)", ""];
  const row = (what: string, value: string, floor: string, ok: boolean): void => void lines.push(`- ${what}: ${value} (floor ${floor}) — ${ok ? "met" : "NOT met"}`);
  row("sampled CHAIR_i change", `${pc(rel(sampled, "chairI"))}% relative`, "≤ −40%", rel(sampled, "chairI") <= -0.4);
  row("sampled co-occurrence additions change", `${pc(rel(sampled, "addition"))}% relative`, "≤ −50%", rel(sampled, "addition") <= -0.5);
  row("greedy CHAIR_i change", `${pc(rel(greedy, "chairI"))}% relative`, "≤ −25%", rel(greedy, "chairI") <= -0.25);
  for (const d of [greedy, sampled]) {
    const dc = m(d, clip, "cover") - m(d, sft, "cover");
    row(`${d} Cover change`, `${pc(dc)} points`, "within 3 points", Math.abs(dc) <= 0.03);
  }
  if (rnd) {
    const per = s.vsRandom[sampled]?.[clip]?.chairI ?? [];
    const excl = per.filter((c) => c.hi < 0).length;
    row("CLIP-DPO below random pairs on sampled CHAIR_i, paired CI excluding 0", `${excl} of ${per.length} seeds`, "all seeds", per.length > 0 && excl === per.length);
  }
  if (orc) {
    const share = (m(sampled, sft, "chairI") - m(sampled, clip, "chairI")) / (m(sampled, sft, "chairI") - m(sampled, orc, "chairI"));
    row("share of the oracle-pair gain (sampled CHAIR_i)", `${pc(share)}%`, "≥ 70%", share >= 0.7);
  }
  const p = s.probes;
  if (p[clip]?.["POPE adversarial F1"] && p[sft]?.["POPE adversarial F1"] && p[clip]?.["QA all"] && p[sft]?.["QA all"]) {
    const df1 = p[clip]!["POPE adversarial F1"]!.mean.value - p[sft]!["POPE adversarial F1"]!.mean.value;
    const dqa = p[clip]!["QA all"]!.mean.value - p[sft]!["QA all"]!.mean.value;
    row("POPE adversarial F1 change", `${df1 > 0 ? "+" : ""}${pc(df1)} points`, "> 0", df1 > 0);
    row("QA accuracy change", `${dqa > 0 ? "+" : ""}${pc(dqa)} points`, "within 2 points", Math.abs(dqa) <= 0.02);
  }
  return lines;
}

if (import.meta.main) {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error("usage: npx bun demo/recipes/compare-seeds.ts <report.json> [<report.json> ...]");
    process.exit(2);
  }
  try {
    const reports = files.map((file) => ({ file, report: JSON.parse(readFileSync(file, "utf8")) as RunReport }));
    process.stdout.write(`${seedMarkdown(summaryOfReports(reports))}\n`);
  } catch (e) {
    console.error(`compare-seeds: ${(e as Error).message}`);
    process.exit(1);
  }
}
