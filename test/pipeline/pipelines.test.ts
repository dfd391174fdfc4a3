/**
 * Every file in pipelines/ loads with its own settings and with its CI overrides; compare.yaml's
 * base pipeline stays clip-dpo.yaml's. (The runs are in pipelines-run-*.test.ts.)
 */
import { describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { loadPipeline, pipelineToData } from "../../src/pipeline/loader.ts";
import { seedOverrides } from "../../src/pipeline/seeds.ts";
import { root, tinyOverrides } from "./pipelines-cases.ts";

const files = readdirSync(join(root, "pipelines")).filter((f) => f.endsWith(".yaml") || f.endsWith(".yml")).sort();

describe("pipelines/", () => {
  test("the default and the issue's files are there, and every file has a CI configuration", () => {
    for (const f of ["clip-dpo.yaml", "build-pairs.yaml", "compare.yaml", "pretrain-clip.yaml", "sft-policy.yaml", "hf-clip-example.yaml"]) expect(files).toContain(f);
    expect(files.filter((f) => !(f in tinyOverrides))).toEqual([]);
  });

  for (const f of files) {
    test(`${f} loads as shipped and with its tiny overrides`, () => {
      const p = loadPipeline(`pipelines/${f}`, { cwd: root });
      expect(p.stages.length).toBeGreaterThan(0);
      const tiny = loadPipeline(`pipelines/${f}`, { cwd: root, overrides: tinyOverrides[f]! });
      expect(tiny.overrides).toEqual(tinyOverrides[f]!);
    });
  }

  test("compare.yaml = clip-dpo.yaml + variants: random, CLIP-DPO, oracle, over 3 seeds", () => {
    const base = pipelineToData(loadPipeline("pipelines/clip-dpo.yaml", { cwd: root, outDir: "x" }));
    const cmp = loadPipeline("pipelines/compare.yaml", { cwd: root, outDir: "x" });
    const { variants, seeds, description: _d, ...rest } = pipelineToData(cmp);
    expect(seeds).toEqual({ count: 3, first: 1, parallel: 2 });
    // Seed s sets exactly the four seeds of the issue: world, sampling, random pairs, data order.
    expect(seedOverrides(cmp, 2)).toEqual(["source.seed=2", "generate.seed=2", "pairs.seed=2", "dpoTrain.seed=2"]);
    expect(loadPipeline("pipelines/compare.yaml", { cwd: root, outDir: "x", overrides: ["seeds.count=1"] }).seeds).toEqual({ count: 1, first: 1, parallel: 2 });
    const { description: _e, ...baseRest } = base;
    expect(rest).toEqual(baseRest);
    expect(variants).toEqual([
      { name: "DPO on random pairs", set: ["pairs.strategy=random"] },
      { name: "CLIP-DPO", set: [] },
      { name: "DPO on oracle pairs", set: ["pairs.strategy=oracle"] },
    ]);
  });

  test("the default pipeline trains on the dpo split and evaluates on held-out scenes", () => {
    const p = loadPipeline("pipelines/clip-dpo.yaml", { cwd: root });
    expect(p.stages.map((s) => s.name)).toEqual(["source", "decode", "generate", "clipScore", "filter", "pairs", "write", "refLogps", "dpoTrain"]);
    expect(p.stages[0]!.options).toMatchObject({ kind: "shapes-world", split: "dpo" });
    expect(p.eval).toMatchObject({ split: "heldout", model: "policy" });
    expect(p.models).toEqual({ clip: { builtin: "shapes-clip" }, policy: { builtin: "shapes-lvlm" } });
  });
});
