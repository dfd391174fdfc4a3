/**
 * `--allow-config-change` reaches the trainer: resuming a run with a changed learning rate is
 * refused (exit 1, the differing key named), and accepted with the flag, which the report's
 * command records.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli, root, tinyOverrides } from "../pipeline/pipelines-cases.ts";

const overrides = [...tinyOverrides["clip-dpo.yaml"]!, "dpoTrain.batchSize=2", "eval=null"];
const run = (out: string, extra: string[]) => {
  const r = Bun.spawnSync([process.execPath, cli, "pipelines/clip-dpo.yaml", ...overrides.flatMap((o) => ["--set", o]), "--out", out, "--progress", "off", ...extra], { cwd: root, stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, stderr: r.stderr.toString() };
};

test("a changed lr on --resume is refused, then accepted with --allow-config-change", () => {
  const out = join(mkdtempSync(join(tmpdir(), "clipflow-acc-")), "out");
  expect(run(out, []).code).toBe(0);
  const lr = (JSON.parse(readFileSync(join(out, "report.json"), "utf8")) as { config: { stages: Record<string, { lr?: number }>[] } }).config.stages.find((s) => "dpoTrain" in s)!.dpoTrain!.lr;

  const refused = run(out, ["--set", "dpoTrain.lr=0.001", "--resume"]);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toContain(`was trained with another configuration (lr: ${lr} -> 0.001)`);
  expect(refused.stderr.trim().split("\n")).toHaveLength(1);

  const allowed = run(out, ["--set", "dpoTrain.lr=0.001", "--resume", "--allow-config-change"]);
  expect(allowed.code).toBe(0);
  expect(allowed.stderr).toContain(`resuming with a changed configuration (allowed): lr: ${lr} -> 0.001`);
  expect(allowed.stderr).toMatch(/resumed from step \d+/);
  const report = JSON.parse(readFileSync(join(out, "report.json"), "utf8")) as { status: string; command: string };
  expect(report.status).toBe("completed");
  expect(report.command.endsWith("--allow-config-change --resume")).toBe(true);
}, 120_000);
