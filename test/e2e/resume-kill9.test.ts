/**
 * Issue 17 §1/§6 end to end: `kill -9` during training (no handler runs: no report, temp files
 * left behind), then `--resume` with the same command line ends exactly like an uninterrupted run:
 * same metrics.jsonl, same pairs.parquet, every step once; the resumed run says which step it
 * resumed from and leaves no temp files. The kill is timed on the atomically written
 * `checkpoints/latest` (never on a file being written).
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli, root, tinyOverrides } from "../pipeline/pipelines-cases.ts";

const dir = mkdtempSync(join(tmpdir(), "clipflow-kill9-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const overrides = [...tinyOverrides["clip-dpo.yaml"]!, "stages.source.count=16", "dpoTrain.batchSize=2", "dpoTrain.epochs=2", "dpoTrain.checkpointEvery=1", "eval=null"];
const args = (out: string, resume: boolean) => [process.execPath, cli, "pipelines/clip-dpo.yaml", ...overrides.flatMap((o) => ["--set", o]), "--out", out, "--progress", "off", ...(resume ? ["--resume"] : [])];

function tempFiles(d: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(d, { withFileTypes: true, recursive: true })) if (e.name.includes(".tmp-")) out.push(e.name);
  return out;
}

test("kill -9 mid-training, then --resume: metrics.jsonl and pairs.parquet equal the uninterrupted run's", async () => {
  const full = join(dir, "full"), cut = join(dir, "cut");
  const ref = Bun.spawnSync(args(full, false), { cwd: root, stdout: "pipe", stderr: "pipe" });
  expect(ref.exitCode).toBe(0);
  const refMetrics = readFileSync(join(full, "metrics.jsonl"), "utf8");
  const steps = refMetrics.trim().split("\n").length;
  expect(steps).toBeGreaterThanOrEqual(6);

  const p = Bun.spawn(args(cut, false), { cwd: root, stdout: "ignore", stderr: "ignore" });
  const latest = join(cut, "checkpoints", "latest");
  let at = 0;
  for (let i = 0; i < 12_000 && at < 3; i++) {
    if (existsSync(latest)) at = Number(/step-(\d+)/.exec(readFileSync(latest, "utf8"))?.[1] ?? 0);
    if (at < 3) await Bun.sleep(5); // polling a child process: real time is what it runs on
  }
  p.kill("SIGKILL");
  expect(await p.exited).toBe(137);
  expect(at).toBeGreaterThanOrEqual(3);
  expect(at).toBeLessThan(steps); // killed before the end

  const again = Bun.spawnSync(args(cut, true), { cwd: root, stdout: "pipe", stderr: "pipe" });
  const stderr = again.stderr.toString();
  expect({ code: again.exitCode, stderr: again.exitCode === 0 ? "" : stderr.slice(-1500) }).toEqual({ code: 0, stderr: "" });
  // the trainer's logger: stderr by default, the run's log when the pipeline wires one
  expect(`${again.stdout.toString()}\n${stderr}`).toMatch(/resumed from step \d+ \(/);
  expect(readFileSync(join(cut, "metrics.jsonl"), "utf8")).toBe(refMetrics);
  expect(readFileSync(join(cut, "pairs.parquet")).equals(readFileSync(join(full, "pairs.parquet")))).toBe(true);
  expect(tempFiles(cut)).toEqual([]);
}, 300_000);
