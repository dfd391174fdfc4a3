/**
 * SIGTERM (what `docker stop` and job schedulers send) mid-training behaves like the first
 * Ctrl-C: exit 143, report `interrupted`, the checkpoint kept, the resume command printed — and
 * that printed command, run verbatim through a shell from the project folder (`npx bun run
 * pipeline …`, as the README installs it), resumes ("resumed from step N") and completes with the
 * same steps as an uninterrupted run.
 */
import { expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli, root, tinyOverrides } from "../pipeline/pipelines-cases.ts";

// 16 images, 2 epochs, a checkpoint per step: there is training to interrupt.
const overrides = [...tinyOverrides["clip-dpo.yaml"]!, "stages.source.count=16", "dpoTrain.batchSize=2", "dpoTrain.epochs=2", "eval=null"];
const args = (out: string) => [process.execPath, cli, "pipelines/clip-dpo.yaml", ...overrides.flatMap((o) => ["--set", o]), "--out", out, "--progress", "off"];
/** Steps of the complete checkpoints (folders are renamed into place whole: listing never sees a partial one). */
const checkpointSteps = (out: string): number[] => {
  const dir = join(out, "checkpoints");
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((n) => (/^step-(\d+)$/.test(n) ? [Number(n.slice(5))] : []));
};
const metricSteps = (out: string): number[] =>
  readFileSync(join(out, "metrics.jsonl"), "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => (JSON.parse(l) as { step: number }).step);

test("SIGTERM mid-training: exit 143, interrupted report, checkpoint kept; the printed resume command completes the run", async () => {
  const dir = mkdtempSync(join(tmpdir(), "clipflow-sigterm-"));
  const full = join(dir, "full"), cut = join(dir, "cut");

  const ref = Bun.spawnSync(args(full), { cwd: root, stdout: "pipe", stderr: "pipe" });
  expect([ref.exitCode, ref.stderr.toString().slice(-500)]).toEqual([0, expect.any(String)]);
  const refSteps = metricSteps(full);
  expect(refSteps.length).toBeGreaterThanOrEqual(4);

  const p = Bun.spawn(args(cut), { cwd: root, stdout: "pipe", stderr: "pipe" });
  // Interrupt once a second checkpoint exists (polling a folder listing, never a file being written).
  for (let i = 0; i < 12_000 && checkpointSteps(cut).filter((s) => s >= 2).length === 0 && p.exitCode === null; i++) await Bun.sleep(5);
  expect(p.exitCode).toBeNull();
  p.kill("SIGTERM");
  const [code, stdout, stderr] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
  expect(code).toBe(143);
  expect(stderr).toContain("SIGTERM: stopping cleanly");
  const interrupted = JSON.parse(readFileSync(join(cut, "report.json"), "utf8")) as { status: string; resumeCommand: string; training: { checkpoint: string } };
  expect(interrupted.status).toBe("interrupted");
  expect(existsSync(join(interrupted.training.checkpoint, "state.json"))).toBe(true);
  const printed = /^resume with: (.*)$/m.exec(stdout)?.[1];
  expect(printed).toBe(interrupted.resumeCommand);
  expect(printed!.startsWith("npx bun run pipeline pipelines/clip-dpo.yaml ")).toBe(true);
  expect(printed!.endsWith(`--out ${cut} --resume`)).toBe(true);
  const stepsBefore = metricSteps(cut).length;
  expect(stepsBefore).toBeLessThan(refSteps.length);

  // The printed command, verbatim, through a shell.
  const again = Bun.spawnSync(["sh", "-c", printed!], { cwd: root, stdout: "pipe", stderr: "pipe" });
  const err = again.stderr.toString();
  expect([again.exitCode, err.slice(-400)]).toEqual([0, expect.any(String)]);
  expect(err).toMatch(/resumed from step \d+/);
  const resumed = JSON.parse(readFileSync(join(cut, "report.json"), "utf8")) as { status: string; training: { resumedFrom: string } };
  expect(resumed.status).toBe("completed");
  expect(resumed.training.resumedFrom).toBe(interrupted.training.checkpoint);
  expect(metricSteps(cut)).toEqual(refSteps);
}, 300_000);
