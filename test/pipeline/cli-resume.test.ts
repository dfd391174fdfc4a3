/**
 * Ctrl-C during training keeps the checkpoint; `--resume` continues from it and ends where an
 * uninterrupted run ends (same steps, same final metrics), with the shipped models on a tiny
 * configuration of clip-dpo.yaml.
 */
import { expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli, root, tinyOverrides } from "./pipelines-cases.ts";

// More steps than the CI case so there is training to interrupt: 2 epochs, a checkpoint per step.
const overrides = [...tinyOverrides["clip-dpo.yaml"]!, "stages.source.count=16", "dpoTrain.batchSize=2", "dpoTrain.epochs=2", "eval=null"];
const args = (out: string, resume: boolean) => [process.execPath, cli, "pipelines/clip-dpo.yaml", ...overrides.flatMap((o) => ["--set", o]), "--out", out, "--progress", "off", ...(resume ? ["--resume"] : [])];
const metrics = (out: string) =>
  readFileSync(join(out, "metrics.jsonl"), "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as { step: number; loss: number });

test("Ctrl-C mid-training, then --resume, ends like an uninterrupted run", async () => {
  const dir = mkdtempSync(join(tmpdir(), "clipflow-resume-"));
  const full = join(dir, "full"), cut = join(dir, "cut");

  const ref = Bun.spawnSync(args(full, false), { cwd: root, stdout: "pipe", stderr: "pipe" });
  expect(ref.exitCode).toBe(0);
  const refSteps = metrics(full);
  expect(refSteps.length).toBeGreaterThanOrEqual(4);

  // Interrupt once step 2's checkpoint exists (a checkpoint per step). The poll reads
  // `checkpoints/latest`, which is replaced atomically — never metrics.jsonl while it is written.
  const p = Bun.spawn(args(cut, false), { cwd: root, stdout: "pipe", stderr: "pipe" });
  const latest = join(cut, "checkpoints", "latest");
  const stepOf = () => (existsSync(latest) ? Number(/step-(\d+)/.exec(readFileSync(latest, "utf8"))?.[1] ?? 0) : 0);
  for (let i = 0; i < 6000 && stepOf() < 2; i++) await Bun.sleep(10);
  p.kill("SIGINT");
  expect(await p.exited).toBe(130);
  const stdout = await new Response(p.stdout).text();
  expect(stdout).toContain(`--out ${cut} --resume`);
  const interrupted = JSON.parse(readFileSync(join(cut, "report.json"), "utf8"));
  expect(interrupted.status).toBe("interrupted");
  const kept = interrupted.training.checkpoint as string;
  expect(existsSync(join(kept, "state.json"))).toBe(true);
  const stepsBefore = metrics(cut).length;
  expect(stepsBefore).toBeLessThan(refSteps.length);

  const again = Bun.spawnSync(args(cut, true), { cwd: root, stdout: "pipe", stderr: "pipe" });
  expect(again.exitCode).toBe(0);
  const resumed = JSON.parse(readFileSync(join(cut, "report.json"), "utf8"));
  expect(resumed.training.resumedFrom).toBe(kept);
  // Steps continue without a gap or repeat, and end exactly like the uninterrupted run.
  const steps = metrics(cut);
  expect(steps.map((s) => s.step)).toEqual(refSteps.map((s) => s.step));
  expect(steps.at(-1)!.loss).toBe(refSteps.at(-1)!.loss);
}, 240_000);
