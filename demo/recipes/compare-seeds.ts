/**
 * The result table over seeds: reads the report.json of several `pipelines/compare.yaml` runs that
 * differ only in their seeds (world seed of the dpo scenes, sampling seed, data order; the
 * held-out scenes are the same) and prints, per decoding, every row's per-seed values, their mean
 * with a t 95% interval over seeds (wide with 3 seeds, on purpose), the paired CIs over scenes
 * of each seed, and the issue-13 floors computed from the means.
 *
 *   npx bun demo/recipes/compare-seeds.ts runs/cmp-s1/report.json runs/cmp-s2/report.json runs/cmp-s3/report.json
 *
 * @example
 * const s = seedSummary([r1.evaluation!, r2.evaluation!, r3.evaluation!]);
 * console.log(seedMarkdown(s));
 */
import { readFileSync } from "node:fs";
import { meanCi, type Ci } from "../../src/util/bootstrap.ts";
import type { CiValue, EvalReport, RunReport } from "../../src/pipeline/report.ts";

export interface SeedCell {
  perSeed: number[];
  mean: Ci;
}

export interface SeedSummary {
  seeds: number;
  decodings: string[];
  rows: string[];
  /** decoding → row → rate key → per-seed values and mean. */
  rates: Record<string, Record<string, Record<string, SeedCell>>>;
  /** decoding → row → rate key → the per-seed paired CIs over scenes (vs start, vs random). */
  vsStart: Record<string, Record<string, Record<string, CiValue[]>>>;
  vsRandom: Record<string, Record<string, Record<string, CiValue[]>>>;
  /** row → probe key → per-seed values and mean. */
  probes: Record<string, Record<string, SeedCell>>;
}

const KEYS = ["chairI", "chairS", "cover", "addition", "misread", "count", "other", "attribute", "relation"] as const;

function cell(values: number[]): SeedCell {
  return { perSeed: values, mean: meanCi(values) };
}

/**
 * Per-seed values and means of every row of several evaluations of the same rows.
 * @throws when the evaluations do not have the same rows and decodings.
 */
export function seedSummary(evals: readonly EvalReport[]): SeedSummary {
  if (evals.length === 0) throw new Error("compare-seeds: no reports");
  const rows = evals[0]!.rows.map((r) => r.name);
  const decodings = (evals[0]!.decodings ?? []).map((d) => d.name);
  evals.forEach((e, i) => {
    if (e.rows.map((r) => r.name).join("|") !== rows.join("|")) throw new Error(`compare-seeds: report ${i + 1} has rows ${e.rows.map((r) => r.name).join(", ")}, report 1 ${rows.join(", ")}`);
    if ((e.decodings ?? []).map((d) => d.name).join("|") !== decodings.join("|")) throw new Error(`compare-seeds: report ${i + 1} has other decodings than report 1`);
  });
  const s: SeedSummary = { seeds: evals.length, decodings, rows, rates: {}, vsStart: {}, vsRandom: {}, probes: {} };
  decodings.forEach((d, di) => {
    s.rates[d] = {};
    s.vsStart[d] = {};
    s.vsRandom[d] = {};
    rows.forEach((name, ri) => {
      const per = evals.map((e) => e.rows[ri]!.decodings![di]!);
      s.rates[d]![name] = Object.fromEntries(KEYS.map((k) => [k, cell(per.map((x) => x.rates[k]!.value))]));
      s.vsStart[d]![name] = Object.fromEntries(KEYS.map((k) => [k, per.flatMap((x) => (x.vsStart?.[k] ? [x.vsStart[k]!] : []))]));
      s.vsRandom[d]![name] = Object.fromEntries(KEYS.map((k) => [k, per.flatMap((x) => (x.vsRandom?.[k] ? [x.vsRandom[k]!] : []))]));
    });
  });
  rows.forEach((name, ri) => {
    const ps = evals.map((e) => e.rows[ri]!.probes).filter((p) => p);
    if (ps.length !== evals.length) return;
    const get: Record<string, (p: NonNullable<(typeof ps)[number]>) => number> = {
      "POPE random F1": (p) => p.pope.random!.f1.value,
      "POPE popular F1": (p) => p.pope.popular!.f1.value,
      "POPE adversarial F1": (p) => p.pope.adversarial!.f1.value,
      "POPE adversarial yes": (p) => p.pope.adversarial!.yesRatio.value,
      "QA all": (p) => p.qa.all!.accuracy.value,
      "zero-shot kind": (p) => p.zeroShot.accuracy.value,
    };
    s.probes[name] = Object.fromEntries(Object.entries(get).map(([k, f]) => [k, cell(ps.map((p) => f(p!)))]));
  });
  return s;
}

const pc = (v: number): string => (100 * v).toFixed(1);
const ci = (c: Ci, signed = false): string => `${signed && c.value > 0 ? "+" : ""}${pc(c.value)} [${pc(c.lo)}, ${pc(c.hi)}]`;

/** Markdown tables of a summary (README's result table) plus the floors of issue 13. */
export function seedMarkdown(s: SeedSummary): string {
  const out: string[] = [];
  const heads = ["CHAIR_i %", "CHAIR_s %", "Cover %", "co-occ. add. %", "misread %", "count %", "attr hal. %"];
  const keys = ["chairI", "chairS", "cover", "addition", "misread", "count", "attribute"];
  for (const d of s.decodings) {
    out.push(`**${d} decoding** — mean over ${s.seeds} seeds [t 95% interval over seeds]; per-seed values below each mean`, "");
    out.push(`| policy | ${heads.join(" | ")} |`, `|---|${heads.map(() => "---").join("|")}|`);
    for (const r of s.rows) {
      const c = s.rates[d]![r]!;
      out.push(`| ${r} | ${keys.map((k) => `${ci(c[k]!.mean)}<br>${c[k]!.perSeed.map(pc).join(" / ")}`).join(" | ")} |`);
    }
    out.push("");
    const diffRows = s.rows.filter((r) => (s.vsStart[d]![r]!.chairI ?? []).length > 0);
    if (diffRows.length > 0) {
      out.push(`Paired differences (${d}), per seed: value [95% CI over scenes]`, "", "| policy | ΔCHAIR_i vs SFT | Δco-occ. vs SFT | ΔCover vs SFT | ΔCHAIR_i vs random pairs |", "|---|---|---|---|---|");
      for (const r of diffRows) {
        const f = (xs: CiValue[] | undefined): string => (xs && xs.length ? xs.map((x) => ci({ value: x.value, lo: x.lo, hi: x.hi }, true)).join("<br>") : "–");
        out.push(`| ${r} | ${f(s.vsStart[d]![r]!.chairI)} | ${f(s.vsStart[d]![r]!.addition)} | ${f(s.vsStart[d]![r]!.cover)} | ${f(s.vsRandom[d]![r]!.chairI)} |`);
      }
      out.push("");
    }
  }
  const probeRows = s.rows.filter((r) => s.probes[r]);
  if (probeRows.length > 0) {
    const pk = Object.keys(s.probes[probeRows[0]!]!);
    out.push("**Probes** (mean over seeds [t 95%])", "", `| policy | ${pk.join(" % | ")} % |`, `|---|${pk.map(() => "---").join("|")}|`);
    for (const r of probeRows) out.push(`| ${r} | ${pk.map((k) => ci(s.probes[r]![k]!.mean)).join(" | ")} |`);
    out.push("");
  }
  out.push(...floors(s));
  return out.join("\n");
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
  if (p[clip] && p[sft]) {
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
  const evals = files.map((f) => {
    const r = JSON.parse(readFileSync(f, "utf8")) as RunReport;
    if (!r.evaluation) throw new Error(`${f}: no evaluation in this report`);
    return r.evaluation;
  });
  process.stdout.write(`${seedMarkdown(seedSummary(evals))}\n`);
}
