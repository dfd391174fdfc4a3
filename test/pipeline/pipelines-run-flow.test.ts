/**
 * The dataflow files of pipelines/ run end to end on a tiny configuration (pipelines-cases.ts),
 * with the shipped models, through the CLI.
 */
import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { parquetReadObjects } from "hyparquet";
import { runFile } from "./pipelines-cases.ts";

const stage = (r: Awaited<ReturnType<typeof runFile>>, name: string) => r.report.stages.find((s) => s.stage === name)!;

describe("dataflow pipelines on a tiny configuration", () => {
  test("clip-dpo.yaml: generate → score → filter → pairs → train → SFT policy vs CLIP-DPO table", async () => {
    const r = await runFile("clip-dpo.yaml");
    expect([r.code, r.report.status, r.report.error]).toEqual([0, "completed", null]);
    expect(r.report.reconciliation!.balanced).toBe(true);
    expect(stage(r, "source").rowsOut).toBe(8);
    expect(stage(r, "generate").rowsOut).toBe(8 * 4); // one prompt x 4 samples per image
    const pairs = stage(r, "pairs").rowsOut;
    expect(r.report.training!.pairs).toBe(pairs);
    expect(r.report.evaluation!.rows.map((x) => [x.name, x.pairs, x.answers])).toEqual([["SFT policy", null, 4], ["CLIP-DPO", pairs, 4]]);
    // every pair (shapes-world images) audited once against the truth, and the trained row carries it
    const audit = r.report.pairAudit!;
    expect([audit.pairs, audit.audited]).toEqual([pairs, pairs]);
    expect(Math.abs(audit.chosenFewer + audit.chosenMore + audit.same - 1)).toBeLessThan(1e-12);
    expect(r.report.evaluation!.rows[1]!.pairAudit).toEqual(audit);
    expect(r.report.evaluation!.rows[0]!.pairAudit).toBeNull();
    expect(existsSync(join(r.out, "report.html")) && existsSync(join(r.out, "policy/config.json"))).toBe(true);
  }, 120_000);

  test("build-pairs.yaml: TRL-layout Parquet with one row per pair, no training", async () => {
    const r = await runFile("build-pairs.yaml");
    expect([r.code, r.report.status]).toEqual([0, "completed"]);
    expect(r.report.training).toBeNull();
    const rows = await parquetReadObjects({ file: await Bun.file(join(r.out, "pairs.parquet")).arrayBuffer() });
    expect(rows).toHaveLength(stage(r, "pairs").rowsOut);
    if (rows.length > 0) expect(Object.keys(rows[0]!)).toEqual(expect.arrayContaining(["images", "prompt", "chosen", "rejected"]));
  }, 120_000);

  test("hf-clip-example.yaml: the Hugging Face-layout CLIP folder scores and pairs", async () => {
    const r = await runFile("hf-clip-example.yaml");
    expect([r.code, r.report.status]).toEqual([0, "completed"]);
    expect(stage(r, "clipScore").rowsIn).toBe(8 * 4);
    const lines = (await Bun.file(join(r.out, "pairs.jsonl")).text()).split("\n").filter((l) => l !== "");
    expect(lines).toHaveLength(stage(r, "pairs").rowsOut);
  }, 120_000);
});
