/** pipelines/compare.yaml on a tiny configuration: four rows, random pairs matching CLIP-DPO's count. */
import { expect, test } from "bun:test";
import { runFile } from "./pipelines-cases.ts";

test("compare.yaml: SFT policy | random pairs | CLIP-DPO | oracle pairs", async () => {
  const r = await runFile("compare.yaml");
  expect([r.code, r.report.status, r.report.error]).toEqual([0, "completed", null]);
  expect(r.report.variants.map((v) => [v.name, v.status])).toEqual([
    ["DPO on random pairs", "completed"],
    ["CLIP-DPO", "completed"],
    ["DPO on oracle pairs", "completed"],
  ]);
  const rows = r.report.evaluation!.rows;
  expect(rows.map((x) => x.name)).toEqual(["SFT policy", "DPO on random pairs", "CLIP-DPO", "DPO on oracle pairs"]);
  // Random pairs: the same count as CLIP-DPO by construction.
  expect(rows[1]!.pairs).toBe(rows[2]!.pairs);
  expect(r.report.variants[1]!.pairs).toBe(rows[2]!.pairs);
  for (const row of rows) expect(row.answers).toBe(4);
}, 240_000);
