/**
 * pipelines/compare.yaml on a tiny configuration: four rows, random pairs matching CLIP-DPO's
 * count, one folder per seed and variant; with two seeds, two per-seed tables and a combined
 * table whose means are the means of the per-seed values, a resume that keeps every run, and the
 * same table whether the seeds run side by side or one after the other.
 */
import { expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RunReport } from "../../src/pipeline/report.ts";
import { seedEvaluation } from "../../src/pipeline/seeds.ts";
import { cli, root, tinyOverrides } from "./pipelines-cases.ts";

/** `npx bun run pipeline pipelines/compare.yaml` with the tiny overrides plus `extra`, into `out`. */
async function runCompare(extra: string[], out: string, flags: string[] = []): Promise<{ code: number; stdout: string; stderr: string; report: RunReport }> {
  const args = [process.execPath, cli, "pipelines/compare.yaml", ...[...tinyOverrides["compare.yaml"]!, ...extra].flatMap((o) => ["--set", o]), "--out", out, "--progress", "off", ...flags];
  const p = Bun.spawn(args, { cwd: root, stdout: "pipe", stderr: "pipe" });
  const [code, stdout, stderr] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
  if (!existsSync(join(out, "report.json"))) throw new Error(`compare.yaml: exit ${code}, no report.json\n${stderr.slice(-2000)}`);
  return { code, stdout, stderr, report: JSON.parse(readFileSync(join(out, "report.json"), "utf8")) as RunReport };
}

const tmp = (): string => mkdtempSync(join(tmpdir(), "clipflow-compare-"));
const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

test("compare.yaml (seeds.count=1): SFT policy | random pairs | CLIP-DPO | oracle pairs", async () => {
  const out = tmp();
  const r = await runCompare(["seeds.count=1"], out);
  expect([r.code, r.report.status, r.report.error]).toEqual([0, "completed", null]);
  expect(r.report.variants.map((v) => [v.name, v.seed, v.status, v.outDir])).toEqual([
    ["DPO on random pairs", 1, "completed", join(out, "seed-1", "dpo-on-random-pairs")],
    ["CLIP-DPO", 1, "completed", join(out, "seed-1", "clip-dpo")],
    ["DPO on oracle pairs", 1, "completed", join(out, "seed-1", "dpo-on-oracle-pairs")],
  ]);
  expect(r.report.variants[0]!.seedSet).toEqual(["source.seed=1", "generate.seed=1", "pairs.seed=1", "dpoTrain.seed=1"]);
  const rows = r.report.evaluation!.rows;
  expect(rows.map((x) => x.name)).toEqual(["SFT policy", "DPO on random pairs (seed 1)", "CLIP-DPO (seed 1)", "DPO on oracle pairs (seed 1)"]);
  // Random pairs: the same count as CLIP-DPO by construction.
  expect(rows[1]!.pairs).toBe(rows[2]!.pairs);
  expect(r.report.variants[1]!.pairs).toBe(rows[2]!.pairs);
  for (const row of rows) expect(row.answers).toBe(4);
  expect(r.report.seeds!.seeds).toEqual([1]);
  expect(r.report.seeds!.summary!.rows).toEqual(["SFT policy", "DPO on random pairs", "CLIP-DPO", "DPO on oracle pairs"]);
  expect(r.stdout).toContain("combined over 1 seed (1)");
}, 300_000);

test("two seeds: two per-seed tables, a combined table of their means, the SFT row evaluated once; resume keeps every run", async () => {
  const out = tmp();
  const variants = "variants=[{name: DPO on random pairs, set: [pairs.strategy=random]}, {name: CLIP-DPO}]";
  const r = await runCompare(["seeds.count=2", variants], out);
  expect([r.code, r.report.status, r.report.error]).toEqual([0, "completed", null]);
  expect(r.report.variants.map((v) => [v.name, v.seed, v.status])).toEqual([
    ["DPO on random pairs", 1, "completed"], ["CLIP-DPO", 1, "completed"], ["DPO on random pairs", 2, "completed"], ["CLIP-DPO", 2, "completed"],
  ]);
  for (const v of r.report.variants) expect(existsSync(join(out, `seed-${v.seed}`, v.name === "CLIP-DPO" ? "clip-dpo" : "dpo-on-random-pairs", "policy", "config.json"))).toBe(true);
  // The world and sampling seeds differ between seeds: different dpo scenes, so different pairs.
  const audit = (seed: number) => JSON.parse(readFileSync(join(out, `seed-${seed}`, "clip-dpo", "report.json"), "utf8")) as RunReport;
  expect(audit(1).overrides).toContain("source.seed=1");
  expect(audit(2).overrides).toContain("source.seed=2");
  expect(audit(1).samples.map((x) => x.imageId)).not.toEqual(audit(2).samples.map((x) => x.imageId));

  const e = r.report.evaluation!;
  // One SFT row for both seeds.
  expect(e.rows.map((x) => x.name)).toEqual(["SFT policy", "DPO on random pairs (seed 1)", "CLIP-DPO (seed 1)", "DPO on random pairs (seed 2)", "CLIP-DPO (seed 2)"]);
  const [t1, t2] = [seedEvaluation(e, 1), seedEvaluation(e, 2)];
  expect(t1.rows.map((x) => x.name)).toEqual(["SFT policy", "DPO on random pairs", "CLIP-DPO"]);
  expect(t2.rows[0]).toEqual(t1.rows[0]!);
  expect(t2.rows[2]!.decodings).toEqual(e.rows[4]!.decodings!);
  // CLIP-DPO of seed 2 is paired with the random-pairs row of seed 2, not of seed 1.
  expect(e.rows[4]!.decodings![1]!.vsRandom).not.toEqual(e.rows[2]!.decodings![1]!.vsRandom);

  const s = r.report.seeds!.summary!;
  expect(s.seeds).toEqual([1, 2]);
  expect(s.shared).toEqual(["SFT policy"]);
  expect(s.decodings).toEqual(["greedy", "sampled"]);
  for (const [di, d] of s.decodings.entries()) {
    for (const [ri, row] of s.rows.entries()) {
      for (const k of ["chairI", "chairS", "cover", "addition", "misread", "attribute"]) {
        const perSeed = [t1, t2].map((t) => t.rows[ri]!.decodings![di]!.rates[k]!.value);
        const c = s.rates[d]![row]![k]!;
        expect(c.perSeed).toEqual(perSeed);
        expect(c.mean.value).toBeCloseTo(mean(perSeed), 12);
        // t 95% with 1 degree of freedom: mean ± 12.706 · sd / √2, sd = |a − b| / √2.
        expect(c.mean.hi - c.mean.value).toBeCloseTo((12.706 * Math.abs(perSeed[0]! - perSeed[1]!)) / 2, 10);
      }
    }
    const vs = [t1, t2].map((t) => t.rows[2]!.decodings![di]!.vsStart!.chairI!.value);
    expect(s.vsStartMean[d]!["CLIP-DPO"]!.chairI!.value).toBeCloseTo(mean(vs), 12);
    const vr = [t1, t2].map((t) => t.rows[2]!.decodings![di]!.vsRandom!.chairI!.value);
    expect(s.vsRandomMean[d]!["CLIP-DPO"]!.chairI!.value).toBeCloseTo(mean(vr), 12);
    expect(s.vsStartMean[d]!["SFT policy"]).toBeUndefined();
  }
  expect(r.stdout).toContain("── seed 1 (source.seed=1 generate.seed=1 pairs.seed=1 dpoTrain.seed=1)");
  expect(r.stdout).toContain("── seed 2 (");
  expect(r.stdout).toContain("── combined over 2 seeds (1, 2), sampled decoding");
  const html = readFileSync(join(out, "report.html"), "utf8");
  for (const id of ["seed-1", "seed-2", "evaluation-sampled-seed-1", "evaluation-sampled-seed-2", "seeds-greedy", "seeds-sampled", "seeds-paired-sampled"]) expect(html).toContain(`id="${id}"`);

  // --resume: every seed/variant folder is complete, nothing trains again; the table is the same.
  const again = await runCompare(["seeds.count=2", variants], out, ["--resume"]);
  expect([again.code, again.report.status]).toEqual([0, "completed"]);
  expect(again.stderr.match(/completed earlier, kept/g)?.length).toBe(4);
  expect(again.report.seeds!.summary!.rates).toEqual(s.rates);

  // compare.yaml runs its seeds side by side (seeds.parallel); one after the other gives the same table.
  // Side by side: seed 2's first run starts before seed 1's second.
  expect(r.stderr.indexOf(`run 3/4 "DPO on random pairs (seed 2)"`)).toBeLessThan(r.stderr.indexOf(`run 2/4 "CLIP-DPO (seed 1)"`));
  expect(r.stderr.indexOf(`run 3/4`)).toBeGreaterThan(-1);
  const one = await runCompare(["seeds.count=2", "seeds.parallel=1", variants], tmp());
  expect([one.code, one.report.status]).toEqual([0, "completed"]);
  expect(one.report.variants.map((v) => v.pairs)).toEqual(r.report.variants.map((v) => v.pairs));
  expect(one.report.evaluation!.rows.map((x) => x.decodings)).toEqual(e.rows.map((x) => x.decodings));
}, 600_000);
