/** On-policy rounds on the tiny CI configuration of clip-dpo.yaml: two rounds, fresh scenes, the chained policy, resume. */
import { expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadPipeline } from "../../src/pipeline/loader.ts";
import type { RunReport } from "../../src/pipeline/report.ts";
import { roundOverrides, runRounds } from "../../src/pipeline/rounds.ts";
import { cli, root, tinyOverrides } from "./pipelines-cases.ts";

const file = join(root, "pipelines/clip-dpo.yaml");

test("round overrides: fresh seeds per round; round r ≥ 2 starts from round r−1's policy; the sft reference adds its own entry", () => {
  const p = loadPipeline(file, { outDir: "x" });
  expect(roundOverrides(p, 1, null, "previous")).toEqual(["source.seed=1", "generate.seed=0"]);
  expect(roundOverrides(p, 2, "/r1/policy", "previous")).toEqual(["source.seed=1001", "generate.seed=1000", "models.policy.path=/r1/policy"]);
  expect(roundOverrides(p, 3, "/r2/policy", "sft")).toEqual(["source.seed=2001", "generate.seed=2000", "models.policy.path=/r2/policy", "models.sftref.builtin=shapes-lvlm", "refLogps.model=sftref"]);
  expect(() => roundOverrides(p, 2, null, "previous")).toThrow("round 2 needs round 1's policy");
});

test("two rounds with the SFT reference: each round trains, the evaluation pairs round 2 with round 1; --resume keeps finished rounds", async () => {
  const out = mkdtempSync(join(tmpdir(), "clipflow-rounds-"));
  const p = loadPipeline(file, { overrides: tinyOverrides["clip-dpo.yaml"]!, outDir: out });
  const lines: string[] = [];
  const { report } = await runRounds(p, { rounds: 2, reference: "sft" }, { command: "test", resumeCommand: "test --resume", log: (l) => lines.push(l) });
  expect([report.status, report.error]).toEqual(["completed", null]);
  expect(report.rounds!.map((r) => [r.round, r.status, r.sourceSeed, r.reference])).toEqual([[1, "completed", 1, "start"], [2, "completed", 1001, "sft"]]);
  expect(report.rounds![1]!.generatedBy).toBe(join(out, "round-1", "policy"));
  for (const r of report.rounds!) expect(existsSync(join(r.outDir, "policy", "config.json"))).toBe(true);
  // Round 2's own report used round 1's policy and the SFT reference.
  const r2 = JSON.parse(readFileSync(join(out, "round-2", "report.json"), "utf8")) as RunReport;
  expect(r2.overrides).toContain(`models.policy.path=${join(out, "round-1", "policy")}`);
  expect(r2.overrides).toContain("refLogps.model=sftref");
  const rows = report.evaluation!.rows;
  expect(rows.map((r) => r.name)).toEqual(["SFT policy", "CLIP-DPO round 1", "CLIP-DPO round 2"]);
  expect(rows[1]!.decodings![0]!.vsPrevious).toBeUndefined();
  expect(rows[2]!.decodings![1]!.vsPrevious!.chairI).toBeDefined();
  expect(existsSync(join(out, "report.json"))).toBe(true);

  // Resume through the CLI with the `rounds:` key given by --set: both rounds are kept (evaluation
  // off to keep the test short), so this also checks that `npx bun run pipeline` dispatches to rounds.
  const sets = [...tinyOverrides["clip-dpo.yaml"]!, "eval=null", "rounds.count=2", "rounds.reference=sft"].flatMap((o) => ["--set", o]);
  const again = Bun.spawnSync([process.execPath, cli, "pipelines/clip-dpo.yaml", ...sets, "--out", out, "--progress", "off", "--resume"], { cwd: root, stdout: "pipe", stderr: "pipe" });
  expect([again.exitCode, again.stderr.toString().split("\n").filter((l) => l.includes("completed earlier")).length]).toEqual([0, 2]);
  expect((JSON.parse(readFileSync(join(out, "report.json"), "utf8")) as RunReport).rounds!.map((r) => r.round)).toEqual([1, 2]);
}, 600_000);

test("the rounds: key: defaults, bad values as one-line config errors, dropped from each round's own pipeline", () => {
  expect(loadPipeline(file, { outDir: "x" }).rounds).toBeNull();
  expect(loadPipeline(file, { outDir: "x", overrides: ["rounds.count=3"] }).rounds).toEqual({ count: 3, reference: "previous" });
  expect(loadPipeline(file, { outDir: "x", overrides: ["rounds.count=2", "rounds.reference=sft"], asVariant: true }).rounds).toBeNull();
  expect(() => loadPipeline(file, { outDir: "x", overrides: ["rounds.count=0"] })).toThrow("rounds.count");
  expect(() => loadPipeline(file, { outDir: "x", overrides: ["rounds.count=2", "rounds.reference=oracle"] })).toThrow("rounds.reference");
});
