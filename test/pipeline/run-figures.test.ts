/**
 * What runPipeline puts in report.json from outside the flow's counters: each stage's
 * `figures` (its definition's `report` hook; write: rows, path, committed), checked against the
 * written file itself; and a run that asks for a cluster without the cluster layer fails named,
 * before any stage is built.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { loadPipeline } from "../../src/pipeline/loader.ts";
import { runPipeline } from "../../src/pipeline/run.ts";
import { ClipflowError } from "../../src/util/errors.ts";

const root = resolve(import.meta.dir, "../..");

/** A model-free flow: 5 shapes-world images straight into two writers. */
function tinyWritePipeline(dir: string): string {
  const file = join(dir, "write.yaml");
  writeFileSync(
    file,
    [
      "models: {}",
      "flow: { maxInFlight: 2, onError: fail }",
      "stages:",
      "  - source: { kind: shapes-world, split: dpo, count: 5, seed: 3, batchSize: 2 }",
      "  - write: { path: rows.jsonl, layout: plain }",
      "  - write: { path: again.jsonl, layout: plain }",
      "",
    ].join("\n"),
  );
  return file;
}

describe("runPipeline report figures", () => {
  test("write's report hook lands in its stage entry of report.json, and agrees with the file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "clipflow-figures-"));
    try {
      const p = loadPipeline(tinyWritePipeline(dir), { outDir: join(dir, "out") });
      const { report, paths } = await runPipeline(p, { command: "test", resumeCommand: "test --resume" });
      expect(report.error).toBeNull();
      expect(report.status).toBe("completed");
      const onDisk = JSON.parse(readFileSync(paths.json, "utf8")) as { stages: { stage: string; rowsOut: number; figures?: Record<string, unknown> }[] };
      const byName = Object.fromEntries(onDisk.stages.map((s) => [s.stage, s]));
      // Independent reference: the lines actually in each file.
      const lines = (f: string) => readFileSync(join(dir, "out", f), "utf8").split("\n").filter((l) => l.length > 0).length;
      expect(lines("rows.jsonl")).toBe(5);
      expect(byName.write?.figures).toEqual({ rows: 5, path: join(dir, "out", "rows.jsonl"), committed: true });
      expect(byName["write-2"]?.figures).toEqual({ rows: lines("again.jsonl"), path: join(dir, "out", "again.jsonl"), committed: true });
      // The source has no report hook: no figures key at all.
      expect(byName.source).toBeDefined();
      expect("figures" in byName.source!).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a run with a cluster but no cluster layer fails as a config error naming both, before building stages", async () => {
    const dir = mkdtempSync(join(tmpdir(), "clipflow-nolayer-"));
    try {
      const p = loadPipeline("pipelines/build-pairs.yaml", { cwd: root, outDir: join(dir, "out"), overrides: ["stages.source.count=2"] });
      const { report, error } = await runPipeline(p, { command: "test", resumeCommand: "test --resume", cluster: "nats://127.0.0.1:1" });
      expect(report.status).toBe("failed");
      expect(report.error).toContain("this run asks for a cluster (nats://127.0.0.1:1) but was started without the cluster layer");
      expect(error instanceof ClipflowError && error.kind === "config").toBe(true);
      expect(report.timings.setupMs).toBe(0);
      expect(report.cluster).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
