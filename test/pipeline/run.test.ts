import { describe, expect, test } from "bun:test";
import { resolve } from "node:path";
import { loadPipeline } from "../../src/pipeline/loader.ts";
import { dropReasons, evalOptionsOf, flowNames, knownTotals, trainedRowName, unimplementedStages, variantSlug } from "../../src/pipeline/run.ts";

const root = resolve(import.meta.dir, "../..");
const good = () => loadPipeline("test/pipeline/fixtures/good.yaml", { cwd: root, checkFiles: false });

describe("run helpers", () => {
  test("flow names are unique: repeats get -2, -3", () => {
    const p = loadPipeline("test/pipeline/fixtures/good.yaml", { cwd: root, checkFiles: false, overrides: ["stages[3]={write: {path: a.jsonl}}", "stages[4]={write: {path: b.jsonl}}"] });
    expect(flowNames(p.stages)).toEqual(["source", "decode", "generate", "write", "write-2", "pairs", "write-3", "refLogps", "dpoTrain"]);
  });

  test("known totals: the source count through the stages whose definition says one row per source row, nothing after", () => {
    // decode declares rowsPerSource "one"; generate's definition (demo/stages/caption-generate.ts) does not declare it.
    expect(knownTotals(good())).toEqual({ source: 4000, decode: 4000 });
  });

  test("every stage of the registry has an operator or a job", () => {
    expect(unimplementedStages(good())).toEqual([]);
  });

  test("row names of the trained policy follow the pairs strategy", () => {
    const p = (s: string) => loadPipeline("test/pipeline/fixtures/good.yaml", { cwd: root, checkFiles: false, overrides: [`pairs.strategy=${s}`] });
    expect(["best-vs-worst", "all-over-margin", "random", "oracle"].map((s) => trainedRowName(p(s)))).toEqual(["CLIP-DPO", "CLIP-DPO", "DPO on random pairs", "DPO on oracle pairs"]);
  });

  test("drop reasons leave out totals and zeros; variant folders are slugs", () => {
    expect([...dropReasons({ kept: 10, "min-score": 3, "max-words": 0, groups: 4, margin: 2 }, ["kept", "groups"])]).toEqual([["min-score", 3], ["margin", 2]]);
    expect(variantSlug("DPO on random pairs")).toBe("dpo-on-random-pairs");
    expect(variantSlug("CLIP-DPO (β=0.1)")).toBe("clip-dpo-0-1");
    expect(variantSlug("—")).toBe("variant");
  });
});

test("evalOptionsOf: the evaluation samples at the generate stage's settings and renders at the source's size", () => {
  const p = loadPipeline("pipelines/clip-dpo.yaml", { cwd: root, checkFiles: false, overrides: ["source.imageSize=48", "generate.temperature=0.7", "generate.topP=0.9"] });
  expect(evalOptionsOf(p)).toEqual({ sampling: { temperature: 0.7, topP: 0.9, samples: 4 }, imageSize: 48 });
  // Greedy generation: no sampled decoding to evaluate.
  const g = loadPipeline("pipelines/clip-dpo.yaml", { cwd: root, checkFiles: false, overrides: ["generate.temperature=0"] });
  expect(evalOptionsOf(g)).toEqual({ imageSize: 64 });
});
