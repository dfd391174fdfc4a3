/**
 * `seeds:` of a comparison file: the section's validation (one line with file and line), the
 * overrides a seed makes, the run layout, one seed's table out of a seeded evaluation, and the
 * combination over seeds checked against hand-computed means and t intervals.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PipelineError } from "../../src/pipeline/issues.ts";
import { loadPipeline, parsePipeline } from "../../src/pipeline/loader.ts";
import type { CiValue, DecodingResult, EvalReport, EvalRow } from "../../src/pipeline/report.ts";
import { seedTables } from "../../src/pipeline/report.ts";
import { renderReportHtml } from "../../src/pipeline/report-html.ts";
import { variantRuns } from "../../src/pipeline/run-variants.ts";
import { parseSeedRowName, seedEvaluation, seedMarkdown, seedOverrides, seedSummary, seedValues } from "../../src/pipeline/seeds.ts";
import { root } from "./pipelines-cases.ts";

const BASE = `stages:
  - source: { kind: shapes-world, split: dpo, count: 4, seed: 1 }
  - pairs: { strategy: random }
  - write: { path: a.parquet }
  - write: { path: b.parquet }
`;
const VARIANTS = `variants:
  - { name: random, set: [pairs.strategy=random] }
  - { name: ranked }
`;

function problems(text: string, overrides: string[] = []): string[] {
  try {
    parsePipeline(text, "p.yaml", { overrides, cwd: "/tmp", checkFiles: false });
  } catch (e) {
    if (e instanceof PipelineError) return [...e.lines];
    throw e;
  }
  return [];
}

describe("the seeds section", () => {
  test("count and first; seeds first, first + 1, …; --set seeds.count=1 works", () => {
    const p = parsePipeline(`${BASE}${VARIANTS}seeds: { count: 3 }\n`, "p.yaml", { cwd: "/tmp", checkFiles: false });
    expect(p.seeds).toEqual({ count: 3, first: 1, parallel: 1 });
    expect(seedValues(p.seeds!)).toEqual([1, 2, 3]);
    expect(seedValues({ count: 2, first: 7, parallel: 1 })).toEqual([7, 8]);
    const q = parsePipeline(`${BASE}${VARIANTS}seeds: { count: 3 }\n`, "p.yaml", { cwd: "/tmp", checkFiles: false, overrides: ["seeds.count=1"] });
    expect(q.seeds).toEqual({ count: 1, first: 1, parallel: 1 });
    expect(parsePipeline(`${BASE}${VARIANTS}`, "p.yaml", { cwd: "/tmp", checkFiles: false }).seeds).toBeNull();
    // A variant's own pipeline ignores the section (it is one seed's run).
    expect(parsePipeline(`${BASE}seeds: { count: 2 }\n`, "p.yaml", { cwd: "/tmp", checkFiles: false, asVariant: true }).seeds).toBeNull();
  });

  test("bad sections are one line each with file, line and key", () => {
    expect(problems(`${BASE}${VARIANTS}seeds: { count: 3, cnt: 2 }\n`)).toEqual([`p.yaml:9:20: seeds.cnt: unknown key; known keys: count, first, parallel`]);
    expect(problems(`${BASE}${VARIANTS}seeds: { count: 0 }\n`)).toEqual([`p.yaml:9:17: seeds.count: expected a number > 0, got number 0`]);
    expect(problems(`${BASE}seeds: { count: 2 }\n`)).toEqual([`p.yaml:6:8: seeds: seeds needs a variants section: every variant runs once per seed`]);
    expect(problems(`${BASE}${VARIANTS}seeds: { count: 2 }\nrounds: { count: 2 }\n`)).toEqual([`p.yaml:9:8: seeds: seeds cannot be combined with rounds; use one of them per pipeline file`]);
    expect(problems(`${BASE}variants:\n  - { name: a (seed 2) }\n  - { name: b, set: [seeds.count=1] }\nseeds: { count: 2 }\n`)).toEqual([
      `p.yaml:7:13: variants[0].name: a variant name cannot end in "(seed N)" when the file has seeds: that suffix names the seed's row`,
      `p.yaml:8:22: variants[1].set[0]: a variant cannot change the seeds section (every variant runs with every seed)`,
    ]);
    expect(problems(`${BASE}${VARIANTS}`, ["seeds.count=two"])).toEqual([`--set seeds.count=two: seeds.count: expected number, got string "two"`]);
    expect(problems(`${BASE}${VARIANTS}seeds: { count: 2 }\n`, ["seeds.parallel=0"])).toEqual([`--set seeds.parallel=0: seeds.parallel: expected a number > 0, got number 0`]);
  });

  test("seed s sets every stage's seed option: by name, or by position when the name repeats", () => {
    const p = parsePipeline(`${BASE}${VARIANTS}seeds: { count: 2 }\n`, "p.yaml", { cwd: "/tmp", checkFiles: false });
    expect(seedOverrides(p, 5)).toEqual(["source.seed=5", "pairs.seed=5"]);
    const dup = parsePipeline(`stages:\n  - source: { kind: shapes-world, seed: 1 }\n  - pairs: { seed: 3 }\n  - pairs: { seed: 4 }\n`, "p.yaml", { cwd: "/tmp", checkFiles: false });
    expect(seedOverrides(dup, 2)).toEqual(["source.seed=2", "stages[1].seed=2", "stages[2].seed=2"]);
    // The overrides load: each names an existing stage option.
    const applied = parsePipeline(`stages:\n  - source: { kind: shapes-world, seed: 1 }\n  - pairs: { seed: 3 }\n  - pairs: { seed: 4 }\n`, "p.yaml", { cwd: "/tmp", checkFiles: false, overrides: seedOverrides(dup, 2) });
    expect(applied.stages.map((s) => (s.options as { seed: number }).seed)).toEqual([2, 2, 2]);
  });

  test("runs: seed by seed, variant by variant, into out.dir/seed-<s>/<variant>; the variant's set after the seed's", () => {
    const dir = mkdtempSync(join(tmpdir(), "clipflow-seeds-"));
    const file = join(dir, "c.yaml");
    writeFileSync(file, `${BASE}variants:\n  - { name: DPO on random pairs, set: [pairs.seed=9] }\n  - { name: CLIP-DPO }\nseeds: { count: 2, first: 3 }\n`);
    const p = loadPipeline(file, { outDir: join(dir, "out") });
    expect(variantRuns(p).map((r) => [r.run.row, r.run.outDir.slice(dir.length), r.run.set])).toEqual([
      ["DPO on random pairs (seed 3)", "/out/seed-3/dpo-on-random-pairs", ["source.seed=3", "pairs.seed=3", "pairs.seed=9"]],
      ["CLIP-DPO (seed 3)", "/out/seed-3/clip-dpo", ["source.seed=3", "pairs.seed=3"]],
      ["DPO on random pairs (seed 4)", "/out/seed-4/dpo-on-random-pairs", ["source.seed=4", "pairs.seed=4", "pairs.seed=9"]],
      ["CLIP-DPO (seed 4)", "/out/seed-4/clip-dpo", ["source.seed=4", "pairs.seed=4"]],
    ]);
    // The variant pins its pairs seed: the later override wins.
    const v = loadPipeline(file, { outDir: join(dir, "x"), asVariant: true, overrides: variantRuns(p)[2]!.run.set });
    expect(v.stages.map((s) => (s.options as { seed?: number }).seed)).toEqual([4, 9, undefined, undefined]);
    // Without seeds: the old layout.
    writeFileSync(file, `${BASE}${VARIANTS}`);
    expect(variantRuns(loadPipeline(file, { outDir: join(dir, "out") })).map((r) => [r.run.row, r.run.outDir.slice(dir.length), r.run.seed])).toEqual([
      ["random", "/out/random", null],
      ["ranked", "/out/ranked", null],
    ]);
  });

  test("compare.yaml's seeds load from the shipped file", () => {
    const p = loadPipeline("pipelines/compare.yaml", { cwd: root, outDir: "x" });
    expect(variantRuns(p).map((r) => r.run.row).slice(0, 4)).toEqual(["DPO on random pairs (seed 1)", "CLIP-DPO (seed 1)", "DPO on oracle pairs (seed 1)", "DPO on random pairs (seed 2)"]);
    expect(variantRuns(p)).toHaveLength(9);
  });
});

// A seeded evaluation by hand: SFT once, then CLIP-DPO and random pairs per seed.
const KEYS = ["chairI", "chairS", "cover", "addition", "misread", "count", "other", "attribute", "relation"];
const ci = (v: number, w = 0.01): CiValue => ({ value: v, lo: v - w, hi: v + w });
const dec = (name: string, v: number, vsStart: number | null, vsRandom: number | null): DecodingResult => ({
  decoding: name, answers: 10, counts: {},
  rates: Object.fromEntries(KEYS.map((k, i) => [k, ci(v + i / 100)])),
  vsStart: vsStart === null ? null : Object.fromEntries(KEYS.map((k) => [k, ci(vsStart)])),
  vsRandom: vsRandom === null ? null : Object.fromEntries(KEYS.map((k) => [k, ci(vsRandom)])),
});
const row = (name: string, g: number, s: number, vs: number | null, vr: number | null): EvalRow => ({
  name, model: name, pairs: null, pairAudit: null, answers: 10, chairI: g, chairS: 0, cover: 0, attributeHallucination: 0, relationHallucination: 0, counts: {},
  decodings: [dec("greedy", g, vs, vr), dec("sampled", s, vs, vr)],
});
const seeded = (): EvalReport => ({
  split: "heldout", count: 10, seed: 0, prompt: "p", metrics: [],
  decodings: [{ name: "greedy", temperature: 0, topP: 1, samples: 1 }, { name: "sampled", temperature: 1, topP: 0.95, samples: 4 }],
  rows: [
    row("SFT policy", 0.08, 0.2, null, null),
    row("DPO on random pairs (seed 1)", 0.07, 0.18, -0.02, null),
    row("CLIP-DPO (seed 1)", 0.06, 0.1, -0.1, -0.08),
    row("DPO on random pairs (seed 2)", 0.075, 0.17, -0.03, null),
    row("CLIP-DPO (seed 2)", 0.05, 0.13, -0.07, -0.04),
    row("DPO on random pairs (seed 3)", 0.072, 0.19, -0.01, null),
    row("CLIP-DPO (seed 3)", 0.07, 0.16, -0.04, -0.03),
  ],
  examples: [{ sceneId: "s0", image: null, truth: "t", answers: ["a0", "a1", "a2", "a3", "a4", "a5", "a6"], sampled: [["x0"], ["x1"], ["x2"], ["x3"], ["x4"], ["x5"], ["x6"]] }],
});

describe("one seed's table and the combination over seeds", () => {
  test("seedEvaluation: the shared row and that seed's rows, names without the suffix, examples alike", () => {
    const e = seedEvaluation(seeded(), 2);
    expect(e.rows.map((r) => [r.name, r.model])).toEqual([["SFT policy", "SFT policy"], ["DPO on random pairs", "DPO on random pairs (seed 2)"], ["CLIP-DPO", "CLIP-DPO (seed 2)"]]);
    expect(e.examples[0]!.answers).toEqual(["a0", "a3", "a4"]);
    expect(e.examples[0]!.sampled).toEqual([["x0"], ["x3"], ["x4"]]);
    expect(() => seedEvaluation(seeded(), 4)).toThrow("seeds: the evaluation has no row of seed 4");
    expect(parseSeedRowName("CLIP-DPO (seed 12)")).toEqual({ name: "CLIP-DPO", seed: 12 });
    expect(parseSeedRowName("SFT policy")).toBeUndefined();
  });

  test("means and t intervals over seeds equal the hand-computed ones; paired differences per seed and their mean", () => {
    const e = seeded();
    const s = seedSummary([1, 2, 3].map((seed) => seedEvaluation(e, seed)), [1, 2, 3], ["SFT policy"]);
    expect(s.rows).toEqual(["SFT policy", "DPO on random pairs", "CLIP-DPO"]);
    expect(s.shared).toEqual(["SFT policy"]);
    // Sampled CHAIR_i of CLIP-DPO: 0.10, 0.13, 0.16 → mean 0.13, sd 0.03, half-width 4.303 · 0.03 / √3.
    const c = s.rates.sampled!["CLIP-DPO"]!.chairI!;
    expect(c.perSeed).toEqual([0.1, 0.13, 0.16]);
    expect(c.perSeedCi).toEqual([ci(0.1), ci(0.13), ci(0.16)]);
    expect(c.mean.value).toBeCloseTo(0.13, 12);
    expect(c.mean.hi - c.mean.value).toBeCloseTo((4.303 * 0.03) / Math.sqrt(3), 10);
    expect(c.mean.value - c.mean.lo).toBeCloseTo((4.303 * 0.03) / Math.sqrt(3), 10);
    // Cover is the third key: value + 0.02 in the fixture.
    expect(s.rates.greedy!["DPO on random pairs"]!.cover!.mean.value).toBeCloseTo((0.09 + 0.095 + 0.092) / 3, 12);
    // The shared row: one value repeated, no spread.
    expect(s.rates.sampled!["SFT policy"]!.chairI!.perSeed).toEqual([0.2, 0.2, 0.2]);
    // vs SFT: −0.10, −0.07, −0.04 → mean −0.07; vs random: −0.08, −0.04, −0.03 → mean −0.05.
    expect(s.vsStart.sampled!["CLIP-DPO"]!.chairI!.map((x) => x.value)).toEqual([-0.1, -0.07, -0.04]);
    expect(s.vsStartMean.sampled!["CLIP-DPO"]!.chairI!.value).toBeCloseTo(-0.07, 12);
    expect(s.vsStartMean.sampled!["CLIP-DPO"]!.chairI!.hi).toBeCloseTo(-0.07 + (4.303 * 0.03) / Math.sqrt(3), 10);
    expect(s.vsRandomMean.sampled!["CLIP-DPO"]!.chairI!.value).toBeCloseTo(-0.05, 12);
    expect(s.vsRandomMean.sampled!["DPO on random pairs"]).toBeUndefined();
    expect(s.vsStartMean.sampled!["SFT policy"]).toBeUndefined();
    const md = seedMarkdown(s);
    expect(md).toContain("| SFT policy | 20.0 [19.0, 21.0] (once) |");
    expect(md).toContain(`| CLIP-DPO | 13.0 [${(13 - (430.3 * 0.03) / Math.sqrt(3)).toFixed(1)}, ${(13 + (430.3 * 0.03) / Math.sqrt(3)).toFixed(1)}]<br>10.0 / 13.0 / 16.0 |`);
  });

  test("one seed: no interval over seeds is printed", () => {
    const s = seedSummary([seedEvaluation(seeded(), 1)], [1], ["SFT policy"]);
    expect(s.rates.sampled!["CLIP-DPO"]!.chairI!.mean).toEqual({ value: 0.1, lo: 0.1, hi: 0.1 });
    expect(seedMarkdown(s)).toContain("| CLIP-DPO | 10.0<br>10.0 |");
  });

  test("evaluations with other rows are refused with one line", () => {
    const a = seedEvaluation(seeded(), 1), b = seedEvaluation(seeded(), 2);
    b.rows = b.rows.slice(0, 2);
    expect(() => seedSummary([a, b])).toThrow("seeds: report 2 has rows SFT policy, DPO on random pairs, report 1 SFT policy, DPO on random pairs, CLIP-DPO");
    expect(() => seedSummary([])).toThrow("seeds: no evaluations to combine");
  });

  test("the CLI and HTML show each seed's tables and the combination", () => {
    const e = seeded();
    const seeds = { seeds: [1, 2, 3], overrides: { "1": ["source.seed=1"], "2": ["source.seed=2"], "3": ["source.seed=3"] }, summary: seedSummary([1, 2, 3].map((x) => seedEvaluation(e, x)), [1, 2, 3], ["SFT policy"]) };
    const text = seedTables(e, seeds);
    expect(text).toContain(`── seed 2 (source.seed=2); "SFT policy" evaluated once, shared by every seed`);
    expect(text).toContain("── combined over 3 seeds (1, 2, 3), sampled decoding: mean [t 95% interval over seeds]:");
    expect(text).toMatch(/CLIP-DPO +10\.0 \/ 13\.0 \/ 16\.0/);
    const html = renderReportHtml({
      format: "clipflow-run-report", version: 1, file: "c.yaml", description: null, command: "c", resumeCommand: null, status: "completed", error: null,
      startedAt: "", finishedAt: null, config: {}, overrides: [], stages: [], reconciliation: null, credits: null, deadLetter: { rows: 0, path: null },
      timings: { totalMs: 0, setupMs: 0, flowMs: 0, evalMs: 0 }, scheduler: null, training: null, evaluation: e, samples: [], pairAudit: null, jobs: [], variants: [], outputs: [], seeds,
    });
    for (const id of ["seed-1", "seed-3", "evaluation-sampled-seed-2", "paired-greedy-seed-3", "seeds-greedy", "seeds-sampled", "seeds-paired-sampled"]) expect(html).toContain(`id="${id}"`);
    expect(html).toContain(`<tr data-row="CLIP-DPO"><td>CLIP-DPO</td><td data-metric="chairI">13.0 [`);
  });
});

describe("seeds side by side", () => {
  test("a failed run stops the comparison: the other seed starts no further run; the first failure in run order is the report's", async () => {
    const { runVariants } = await import("../../src/pipeline/run-variants.ts");
    const { emptyReport } = await import("../../src/pipeline/report.ts");
    const dir = mkdtempSync(join(tmpdir(), "clipflow-seeds-par-"));
    const file = join(dir, "c.yaml");
    writeFileSync(file, `${BASE}variants:\n  - { name: a }\n  - { name: b }\n  - { name: c }\nseeds: { count: 2, parallel: 2 }\n`);
    const p = loadPipeline(file, { outDir: join(dir, "out") });
    const started: string[] = [];
    const report = emptyReport({ file, command: "c", config: {} });
    const result = await runVariants(
      {
        p, report, signal: new AbortController().signal, log: () => {},
        opts: { command: "c", resumeCommand: "r", resources: () => ({ close: async () => {} }) as never },
        finish: () => ({ report, paths: { json: "", html: "" } }),
      },
      async (vp) => {
        const seed = (vp.stages[0]!.options as { seed: number }).seed;
        const name = vp.out.dir.split("/").pop()!;
        started.push(`${name}${seed}`);
        // Seed 2's runs are slow; seed 1's second run fails while seed 2's first is still running.
        await Bun.sleep(seed === 2 ? 60 : 10);
        const r = emptyReport({ file, command: "c", config: {} });
        r.status = name === "b" && seed === 1 ? "failed" : "completed";
        r.error = r.status === "failed" ? "boom" : null;
        return { report: r, paths: { json: "", html: "" } };
      },
    );
    expect(started).toEqual(["a1", "a2", "b1"]);
    expect([result.report.status, result.report.error]).toEqual(["failed", `variant "b (seed 1)": boom`]);
    expect(result.report.variants.map((v) => [v.name, v.seed, v.status])).toEqual([["a", 1, "completed"], ["b", 1, "failed"], ["a", 2, "completed"]]);
  });
});
