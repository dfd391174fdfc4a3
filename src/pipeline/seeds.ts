/**
 * Seeds of a comparison (`seeds:` in a pipeline file with `variants:`): every variant runs once
 * per seed, and the result table is given per seed and combined over seeds.
 *
 * - Seed s sets the `seed` option of every stage that has one (in pipelines/compare.yaml:
 *   `source.seed` — the world seed of the dpo scenes, `generate.seed` — the sampling seed,
 *   `pairs.seed` — the random-pairs baseline's draws, `dpoTrain.seed` — the data order of replay
 *   epochs) to s, for every variant ({@link seedOverrides}). `eval.seed` is not a stage option and
 *   stays the same: every seed is evaluated on the same held-out scenes, so rows are paired
 *   across seeds, and the starting (SFT) policy, which no training seed touches, is evaluated
 *   once and shared by every seed's table.
 * - The evaluation has one row per (variant, seed), named `"<variant> (seed s)"`, plus the shared
 *   start row. {@link seedEvaluation} cuts it into one table per seed (the shared rows and that
 *   seed's rows, suffix removed); {@link seedSummary} combines the per-seed tables: per row and
 *   rate the per-seed values with their CIs over scenes, and their mean with a t 95% interval over
 *   seeds (t = 4.30 with 3 seeds: wide on purpose); the same for the paired differences to the
 *   start row and to the random-pairs row.
 *
 * @example
 * const seeds = seedValues({ count: 3, first: 1 }); // [1, 2, 3]
 * const perSeed = seeds.map((s) => seedEvaluation(report.evaluation!, s));
 * const combined = seedSummary(perSeed, seeds);
 * combined.rates.sampled!["CLIP-DPO"]!.chairI!.mean; // { value, lo, hi } over the seeds
 */
import { meanCi, type Ci } from "../util/bootstrap.ts";
import type { ResolvedPipeline } from "./loader.ts";
import type { CiValue, EvalReport } from "./report.ts";
import type { SeedsSection } from "./schema.ts";
import { InputError } from "../util/errors.ts";

/** The seeds a `seeds:` section runs: `first`, `first + 1`, …, `count` of them. */
export function seedValues(s: SeedsSection): number[] {
  return Array.from({ length: s.count }, (_, i) => s.first + i);
}

/** `"CLIP-DPO (seed 2)"`: the evaluation row of a variant run with a seed. */
export function seedRowName(variant: string, seed: number): string {
  return `${variant} (seed ${seed})`;
}

const SEED_SUFFIX = /^(.*) \(seed (\d+)\)$/;

/** `"CLIP-DPO (seed 2)"` → `{ name: "CLIP-DPO", seed: 2 }`; undefined for a row without a seed. */
export function parseSeedRowName(row: string): { name: string; seed: number } | undefined {
  const m = SEED_SUFFIX.exec(row);
  return m ? { name: m[1]!, seed: Number(m[2]) } : undefined;
}

/**
 * The `--set` overrides that make seed `seed`'s runs: `<stage>.seed=<seed>` for every stage of
 * `p` that has a `seed` option (by name when the name is unique, else `stages[i].seed`).
 * @example
 * seedOverrides(loadPipeline("pipelines/compare.yaml"), 2);
 * // ["source.seed=2", "generate.seed=2", "pairs.seed=2", "dpoTrain.seed=2"]
 */
export function seedOverrides(p: Pick<ResolvedPipeline, "stages">, seed: number): string[] {
  const out: string[] = [];
  for (const st of p.stages) {
    if (!("seed" in (st.options as object))) continue;
    const unique = p.stages.filter((x) => x.name === st.name).length === 1;
    out.push(unique ? `${st.name}.seed=${seed}` : `stages[${st.index}].seed=${seed}`);
  }
  return out;
}

/**
 * Each seed's table ({@link seedEvaluation}) for the seeds that have rows in `e`; a seed whose
 * runs did not all finish has no rows and is left out (the report says which runs failed).
 * @example
 * for (const { seed, evaluation } of perSeedEvaluations(report.evaluation, report.seeds.seeds)) …
 */
export function perSeedEvaluations(e: EvalReport, seeds: readonly number[]): { seed: number; evaluation: EvalReport }[] {
  return seeds.flatMap((seed) => (e.rows.some((r) => parseSeedRowName(r.name)?.seed === seed) ? [{ seed, evaluation: seedEvaluation(e, seed) }] : []));
}

/**
 * One seed's table out of a seeded evaluation: the rows without a seed (the shared start row)
 * and the rows of `seed`, their " (seed N)" suffix removed, in evaluation order. Examples keep
 * the same rows; seed groups are dropped (they span seeds).
 * @throws when the evaluation has no row of that seed.
 */
export function seedEvaluation(e: EvalReport, seed: number): EvalReport {
  const keep: number[] = [];
  e.rows.forEach((r, i) => {
    const s = parseSeedRowName(r.name);
    if (s === undefined || s.seed === seed) keep.push(i);
  });
  if (!e.rows.some((r) => parseSeedRowName(r.name)?.seed === seed)) throw new InputError(`seeds: the evaluation has no row of seed ${seed}`, { code: "no seed rows" });
  const strip = (name: string): string => parseSeedRowName(name)?.name ?? name;
  return {
    ...e,
    rows: keep.map((i) => ({ ...e.rows[i]!, name: strip(e.rows[i]!.name) })),
    examples: e.examples.map((x) => ({
      ...x,
      answers: keep.map((i) => x.answers[i]!),
      ...(x.sampled ? { sampled: keep.map((i) => x.sampled![i]!) } : {}),
    })),
  };
}

/** Per-seed values of one cell (with their CIs over scenes) and their mean over seeds. */
export interface SeedCell {
  perSeed: number[];
  /** Each seed's value with its 95% CI over scenes (bootstrap), as that seed's table has it. */
  perSeedCi: CiValue[];
  /** Mean over seeds with its t 95% interval over seeds (lo = hi = mean with one seed). */
  mean: Ci;
}

/** Several seeds' tables of the same rows combined (see the module doc). */
export interface SeedSummary {
  /** Seed labels, in table order (1, 2, … when the tables came without labels). */
  seeds: number[];
  decodings: string[];
  rows: string[];
  /**
   * Rows evaluated once and shared by every seed (the starting policy): their per-seed values are
   * one value repeated, so the tables show its CI over scenes instead of an interval over seeds.
   */
  shared: string[];
  /** decoding → row → rate key → per-seed values and mean. */
  rates: Record<string, Record<string, Record<string, SeedCell>>>;
  /** decoding → row → rate key → per-seed paired CIs over scenes vs the start row (empty on the start row). */
  vsStart: Record<string, Record<string, Record<string, CiValue[]>>>;
  /** decoding → row → rate key → per-seed paired CIs over scenes vs the same seed's random-pairs row. */
  vsRandom: Record<string, Record<string, Record<string, CiValue[]>>>;
  /** vsStart's per-seed differences: mean over seeds with a t 95% interval (rows that have them). */
  vsStartMean: Record<string, Record<string, Record<string, Ci>>>;
  /** vsRandom's per-seed differences: mean over seeds with a t 95% interval. */
  vsRandomMean: Record<string, Record<string, Record<string, Ci>>>;
  /** row → probe key → per-seed values and mean. */
  probes: Record<string, Record<string, SeedCell>>;
}

/** Rate keys combined over seeds (demo/world RATE_DEFINITIONS, as the tables show them). */
export const SEED_RATE_KEYS = ["chairI", "chairS", "cover", "addition", "misread", "count", "other", "attribute", "relation"] as const;

const plain = (c: CiValue): CiValue => ({ value: c.value, lo: c.lo, hi: c.hi });
const meanOf = (values: readonly number[]): Ci => {
  const m = meanCi(values);
  return { value: m.value, lo: m.lo, hi: m.hi };
};
function cell(cis: readonly CiValue[]): SeedCell {
  const perSeed = cis.map((c) => c.value);
  return { perSeed, perSeedCi: cis.map(plain), mean: meanOf(perSeed) };
}

/**
 * Combines the evaluations of several seeds (same rows and decodings in each, e.g.
 * {@link seedEvaluation} of every seed, or the report.json of several runs).
 * @throws when there is no evaluation, or they do not have the same rows and decodings.
 */
export function seedSummary(evals: readonly EvalReport[], seeds?: readonly number[], shared: readonly string[] = []): SeedSummary {
  // Reports that do not line up (e.g. report.json files of different runs) are bad input.
  const mismatch = (detail: string) => new InputError(`seeds: ${detail}`, { code: "mismatched reports" });
  if (evals.length === 0) throw new InputError("seeds: no evaluations to combine", { code: "no reports" });
  // internal invariant: callers derive the labels from the same list as the evaluations
  if (seeds !== undefined && seeds.length !== evals.length) throw new Error(`seeds: ${seeds.length} seed labels for ${evals.length} evaluations`);
  const rows = evals[0]!.rows.map((r) => r.name);
  const decodings = (evals[0]!.decodings ?? []).map((d) => d.name);
  evals.forEach((e, i) => {
    if (e.rows.map((r) => r.name).join("|") !== rows.join("|")) throw mismatch(`report ${i + 1} has rows ${e.rows.map((r) => r.name).join(", ")}, report 1 ${rows.join(", ")}`);
    if ((e.decodings ?? []).map((d) => d.name).join("|") !== decodings.join("|")) throw mismatch(`report ${i + 1} has other decodings than report 1`);
    e.rows.forEach((r) => {
      if ((r.decodings ?? []).length !== decodings.length) throw mismatch(`report ${i + 1}, row "${r.name}": ${(r.decodings ?? []).length} decodings, expected ${decodings.length}`);
    });
  });
  const s: SeedSummary = {
    seeds: seeds ? [...seeds] : evals.map((_, i) => i + 1), decodings, rows, shared: rows.filter((r) => shared.includes(r)),
    rates: {}, vsStart: {}, vsRandom: {}, vsStartMean: {}, vsRandomMean: {}, probes: {},
  };
  decodings.forEach((d, di) => {
    s.rates[d] = {};
    s.vsStart[d] = {};
    s.vsRandom[d] = {};
    s.vsStartMean[d] = {};
    s.vsRandomMean[d] = {};
    rows.forEach((name, ri) => {
      const per = evals.map((e) => e.rows[ri]!.decodings![di]!);
      s.rates[d]![name] = Object.fromEntries(SEED_RATE_KEYS.map((k) => [k, cell(per.map((x) => x.rates[k] ?? { value: Number.NaN, lo: Number.NaN, hi: Number.NaN }))]));
      const diffs = (get: (x: (typeof per)[number]) => Record<string, CiValue> | null | undefined) =>
        Object.fromEntries(SEED_RATE_KEYS.map((k) => [k, per.flatMap((x) => (get(x)?.[k] ? [plain(get(x)![k]!)] : []))]));
      s.vsStart[d]![name] = diffs((x) => x.vsStart);
      s.vsRandom[d]![name] = diffs((x) => x.vsRandom);
      // A mean over seeds only when every seed has the difference (a row paired in some seeds only is not averaged).
      const means = (all: Record<string, CiValue[]>): Record<string, Ci> | undefined => {
        if (!SEED_RATE_KEYS.every((k) => all[k]!.length === evals.length)) return undefined;
        return Object.fromEntries(SEED_RATE_KEYS.map((k) => [k, meanOf(all[k]!.map((c) => c.value))]));
      };
      const ms = means(s.vsStart[d]![name]!), mr = means(s.vsRandom[d]![name]!);
      if (ms) s.vsStartMean[d]![name] = ms;
      if (mr) s.vsRandomMean[d]![name] = mr;
    });
  });
  rows.forEach((name, ri) => {
    const ps = evals.map((e) => e.rows[ri]!.probes).filter((p) => p);
    if (ps.length !== evals.length) return;
    const get: Record<string, (p: NonNullable<(typeof ps)[number]>) => CiValue | undefined> = {
      "POPE random F1": (p) => p.pope.random?.f1,
      "POPE popular F1": (p) => p.pope.popular?.f1,
      "POPE adversarial F1": (p) => p.pope.adversarial?.f1,
      "POPE adversarial yes": (p) => p.pope.adversarial?.yesRatio,
      "QA all": (p) => p.qa.all?.accuracy,
      "zero-shot kind": (p) => p.zeroShot.accuracy,
    };
    const out: Record<string, SeedCell> = {};
    for (const [k, f] of Object.entries(get)) {
      const cis = ps.map((p) => f(p!));
      if (cis.every((c) => c !== undefined)) out[k] = cell(cis as CiValue[]);
    }
    s.probes[name] = out;
  });
  return s;
}

/** The rows of a summary that carry a paired difference to the start row (every seed). */
export function pairedRows(s: SeedSummary, decoding: string): string[] {
  return s.rows.filter((r) => s.vsStartMean[decoding]?.[r] !== undefined || s.vsRandomMean[decoding]?.[r] !== undefined);
}

const pc = (v: number): string => (Number.isFinite(v) ? (100 * v).toFixed(1) : "–");
const sgn = (v: number): string => (v > 0 ? "+" : "");
/** `12.0 [10.1, 13.9]` in percent (signed for differences). */
export function seedCi(c: Ci, signed = false): string {
  const f = (v: number): string => (signed ? sgn(v) : "") + pc(v);
  return `${f(c.value)} [${f(c.lo)}, ${f(c.hi)}]`;
}
/**
 * `12.0 [10.1, 13.9]`: the mean with its t interval over ≥ 2 seeds; `12.0` alone over one seed;
 * a shared row's value with its CI over scenes, marked `(once)`.
 */
export function seedMean(c: SeedCell | { mean: Ci; perSeed: readonly unknown[] }, signed = false, shared = false): string {
  if (shared && "perSeedCi" in c && c.perSeedCi.length > 0) return `${seedCi(c.perSeedCi[0]!, signed)} (once)`;
  return c.perSeed.length > 1 ? seedCi(c.mean, signed) : (signed ? sgn(c.mean.value) : "") + pc(c.mean.value);
}

/**
 * Markdown tables of a summary (the README's result table): per decoding every row's mean
 * [t 95% over seeds] with the per-seed values under it, then the paired differences per seed
 * [95% CI over scenes] and their mean over seeds; the probes.
 * @example
 * console.log(seedMarkdown(seedSummary(perSeedEvaluations, [1, 2, 3])));
 */
export function seedMarkdown(s: SeedSummary): string {
  const out: string[] = [];
  const heads = ["CHAIR_i %", "CHAIR_s %", "Cover %", "co-occ. add. %", "misread %", "count %", "attr hal. %"];
  const keys = ["chairI", "chairS", "cover", "addition", "misread", "count", "attribute"];
  const n = s.seeds.length;
  for (const d of s.decodings) {
    out.push(`**${d} decoding** — mean over ${n} seed${n === 1 ? "" : "s"} (${s.seeds.join(", ")})${n > 1 ? " [t 95% interval over seeds]" : ""}; per-seed values below each mean${s.shared.length ? `; ${s.shared.join(", ")}: evaluated once [95% CI over scenes]` : ""}`, "");
    out.push(`| policy | ${heads.join(" | ")} |`, `|---|${heads.map(() => "---").join("|")}|`);
    for (const r of s.rows) {
      const c = s.rates[d]![r]!;
      const once = s.shared.includes(r);
      out.push(`| ${r} | ${keys.map((k) => (once ? seedMean(c[k]!, false, true) : `${seedMean(c[k]!)}<br>${c[k]!.perSeed.map(pc).join(" / ")}`)).join(" | ")} |`);
    }
    out.push("");
    const diffRows = s.rows.filter((r) => (s.vsStart[d]![r]!.chairI ?? []).length > 0);
    if (diffRows.length > 0) {
      const f = (xs: CiValue[] | undefined, m: Ci | undefined): string =>
        xs && xs.length ? `${xs.map((x) => seedCi(x, true)).join("<br>")}${m && xs.length > 1 ? `<br>mean ${seedCi(m, true)}` : ""}` : "–";
      out.push(`Paired differences (${d}), per seed: value [95% CI over scenes]; then their mean [t 95% over seeds]`, "", "| policy | ΔCHAIR_i vs SFT | Δco-occ. vs SFT | ΔCover vs SFT | ΔCHAIR_i vs random pairs |", "|---|---|---|---|---|");
      for (const r of diffRows) {
        const st = s.vsStart[d]![r]!, rn = s.vsRandom[d]![r]!, ms = s.vsStartMean[d]![r], mr = s.vsRandomMean[d]![r];
        out.push(`| ${r} | ${f(st.chairI, ms?.chairI)} | ${f(st.addition, ms?.addition)} | ${f(st.cover, ms?.cover)} | ${f(rn.chairI, mr?.chairI)} |`);
      }
      out.push("");
    }
  }
  const probeRows = s.rows.filter((r) => s.probes[r] && Object.keys(s.probes[r]!).length > 0);
  if (probeRows.length > 0) {
    const pk = Object.keys(s.probes[probeRows[0]!]!);
    out.push(`**Probes** (mean over seeds${n > 1 ? " [t 95%]" : ""})`, "", `| policy | ${pk.join(" % | ")} % |`, `|---|${pk.map(() => "---").join("|")}|`);
    for (const r of probeRows) out.push(`| ${r} | ${pk.map((k) => (s.probes[r]![k] ? seedMean(s.probes[r]![k]!, false, s.shared.includes(r)) : "–")).join(" | ")} |`);
    out.push("");
  }
  return out.join("\n");
}
