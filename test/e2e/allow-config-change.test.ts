/**
 * `--allow-config-change` reaches the trainer: resuming a run with a changed learning rate is
 * refused at set-up (exit 2, a ConfigError naming the differing key, before any generation: the
 * output folder is left exactly as it was), and accepted with the flag; the report records the
 * command, the changes let through and the checkpoint training resumed from (the one before a
 * corrupt newest checkpoint).
 */
import { expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { listCheckpoints } from "../../src/train/checkpoint.ts";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli, root, tinyOverrides } from "../pipeline/pipelines-cases.ts";

const overrides = [...tinyOverrides["clip-dpo.yaml"]!, "dpoTrain.batchSize=2", "eval=null"];
/** Every file under `dir` with its size and mtime: any write by a run changes it. */
const snapshot = (dir: string): string[] =>
  (readdirSync(dir, { recursive: true }) as string[]).sort().map((f) => {
    const st = statSync(join(dir, f));
    return `${f} ${st.isDirectory() ? "dir" : `${st.size} ${st.mtimeMs}`}`;
  });
const run = (out: string, extra: string[]) => {
  const r = Bun.spawnSync([process.execPath, cli, "pipelines/clip-dpo.yaml", ...overrides.flatMap((o) => ["--set", o]), "--out", out, "--progress", "off", ...extra], { cwd: root, stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, stderr: r.stderr.toString() };
};

test("a changed lr on --resume is refused, then accepted with --allow-config-change", () => {
  const out = join(mkdtempSync(join(tmpdir(), "clipflow-acc-")), "out");
  expect(run(out, []).code).toBe(0);
  const lr = (JSON.parse(readFileSync(join(out, "report.json"), "utf8")) as { config: { stages: Record<string, { lr?: number }>[] } }).config.stages.find((s) => "dpoTrain" in s)!.dpoTrain!.lr;

  const before = snapshot(out);
  expect(before.length).toBeGreaterThan(3);
  const refused = run(out, ["--set", "dpoTrain.lr=0.001", "--resume"]);
  expect(refused.code).toBe(2);
  // Refused at set-up: nothing generated, scored, written or trained; only the failed run's report changes.
  const notReport = (l: string) => !l.startsWith("report.");
  expect(snapshot(out).filter(notReport)).toEqual(before.filter(notReport));
  const failed = JSON.parse(readFileSync(join(out, "report.json"), "utf8")) as { status: string; stages: unknown[]; training: unknown };
  expect(failed.status).toBe("failed");
  expect(failed.stages).toEqual([]);
  expect(failed.training).toBeNull();
  expect(refused.stderr).toContain(`was trained with another configuration (lr: ${lr} -> 0.001)`);
  expect(refused.stderr.trim().split("\n")).toHaveLength(1);

  // The newest checkpoint is corrupt (model file truncated): the trainer falls back to the one before.
  const ckpts = listCheckpoints(join(out, "checkpoints"));
  expect(ckpts.length).toBe(2);
  const model = join(out, "checkpoints", ckpts[1]!.name, "model.safetensors");
  writeFileSync(model, readFileSync(model).subarray(0, 100));
  const allowed = run(out, ["--set", "dpoTrain.lr=0.001", "--resume", "--allow-config-change"]);
  expect(allowed.code).toBe(0);
  expect(allowed.stderr).toContain(`resuming with a changed configuration (allowed): lr: ${lr} -> 0.001`);
  expect(allowed.stderr).toMatch(/resumed from step \d+/);
  const report = JSON.parse(readFileSync(join(out, "report.json"), "utf8")) as { status: string; command: string; training: { configChanges?: string[]; resumedFrom?: string | null } };
  expect(report.status).toBe("completed");
  expect(report.command.endsWith("--allow-config-change --resume")).toBe(true);
  expect(report.training.configChanges).toEqual([`lr: ${lr} -> 0.001`]);
  expect(report.training.resumedFrom).toBe(join(out, "checkpoints", ckpts[0]!.name));
}, 120_000);
