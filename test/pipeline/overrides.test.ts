import { describe, expect, test } from "bun:test";
import { join, resolve } from "node:path";
import { PipelineError } from "../../src/pipeline/issues.ts";
import { loadPipeline } from "../../src/pipeline/loader.ts";
import { applyOverrides } from "../../src/pipeline/overrides.ts";

const root = resolve(import.meta.dir, "../..");
const good = "test/pipeline/fixtures/good.yaml";

function load(overrides: string[]) {
  return loadPipeline(good, { cwd: root, overrides });
}

function loadError(overrides: string[], file = good): PipelineError {
  try {
    loadPipeline(file, { cwd: root, overrides });
  } catch (e) {
    if (e instanceof PipelineError) return e;
    throw e;
  }
  throw new Error("expected the overrides to fail");
}

const opts = (p: ReturnType<typeof load>, i: number) => p.stages[i]!.options as Record<string, unknown>;

describe("applyOverrides (on plain data)", () => {
  const data = () => ({
    scheduler: { maxBatch: 64 },
    stages: [{ source: { kind: "shapes-world" } }, "pairs", { write: { path: "a.parquet" } }, { write: null }] as unknown[],
  });

  test("addresses stages by name, k-th name, index and shorthand; returns canonical paths", () => {
    const d = data();
    const { applied, issues } = applyOverrides(d, [
      "stages.source.count=8",
      "pairs.minMargin=3",
      "stages.write[1].stdout=true",
      "stages[2].write.path=b.jsonl",
      "stages[0].seed=5",
    ]);
    expect(issues).toEqual([]);
    expect(applied.map((a) => a.path)).toEqual([
      ["stages", 0, "source", "count"],
      ["stages", 1, "pairs", "minMargin"],
      ["stages", 3, "write", "stdout"],
      ["stages", 2, "write", "path"],
      ["stages", 0, "source", "seed"],
    ]);
    expect(d.stages).toEqual([
      { source: { kind: "shapes-world", count: 8, seed: 5 } },
      { pairs: { minMargin: 3 } }, // the bare `- pairs` became a map to hold the option
      { write: { path: "b.jsonl" } },
      { write: { stdout: true } },
    ]);
  });

  test("values are YAML: numbers, booleans, null, quoted strings, lists, maps", () => {
    const d = data() as Record<string, unknown>;
    applyOverrides(d, ["a.n=1e-5", "a.b=false", "a.z=null", 'a.s="8"', "a.l=[x, 2]", "a.m={k: v}", "a.e="]);
    expect(d.a).toEqual({ n: 1e-5, b: false, z: null, s: "8", l: ["x", 2], m: { k: "v" }, e: null });
  });

  test("creates missing sections, and later overrides win", () => {
    const d = data() as Record<string, unknown>;
    applyOverrides(d, ["eval.count=5", "scheduler.maxBatch=4", "scheduler.maxBatch=2"]);
    expect(d.eval).toEqual({ count: 5 });
    expect(d.scheduler).toEqual({ maxBatch: 2 });
  });

  test("bad overrides are reported, not applied", () => {
    const d = data();
    const { applied, issues } = applyOverrides(d, [
      "stages.source.count",
      "stages..count=1",
      "stages.filtr.minScore=1",
      "stages.filter.minScore=1",
      "stages.write.path=x",
      "stages.write[2].path=x",
      "stages[9].samples=1",
      "scheduler.maxBatch.x=1",
      "seed=!!binary aGk=",
      "__proto__.polluted=1",
      "scheduler.constructor.x=1",
    ]);
    expect(applied).toEqual([]);
    expect(issues.map((i) => i.message)).toEqual([
      "expected key.path=value",
      'malformed key path "stages..count" (expected e.g. stages.source.count or stages[2].samples)',
      'unknown stage "filtr" (did you mean "filter"?); known stages: source, decode, generate, clipScore, filter, pairs, write, refLogps, dpoTrain, pretrainClip, sftPolicy',
      'the pipeline has no "filter" stage',
      'the pipeline has 2 "write" stages (stages[2], stages[3]); use stages.write[k] or stages[i]',
      "no write stage number 2: the pipeline has 2 (stages[2], stages[3])",
      "no stage at index 9; the pipeline has 4 stages (0..3)",
      "scheduler.maxBatch is not a map or list; cannot set scheduler.maxBatch.x inside it",
      "invalid value: YAML tags are not allowed in pipeline files (found !!binary)",
      '"__proto__" is not allowed in a key path',
      '"constructor" is not allowed in a key path',
    ]);
    expect(d).toEqual(data());
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe("loadPipeline with --set overrides", () => {
  test("overrides apply and the result is validated with defaults filled", () => {
    const p = load(["stages.source.count=8", "stages[2].samples=2", "dpoTrain.lr=1e-5", "scheduler.maxBatch=4", "eval.count=10"]);
    expect(opts(p, 0).count).toBe(8);
    expect(opts(p, 2).samples).toBe(2);
    expect(opts(p, 2).topP).toBe(0.95); // untouched value from the file
    expect(opts(p, 8).lr).toBe(1e-5);
    expect(p.scheduler.maxBatch).toBe(4);
    expect(p.eval?.count).toBe(10);
    expect(p.overrides).toEqual(["stages.source.count=8", "stages[2].samples=2", "dpoTrain.lr=1e-5", "scheduler.maxBatch=4", "eval.count=10"]);
    // Without overrides the file's values stand.
    const base = load([]);
    expect(opts(base, 0).count).toBe(4000);
    expect(opts(base, 2).samples).toBe(8);
  });

  test("an override can replace a model and a path override resolves against the file", () => {
    const p = load(["models.clip={path: models/tiny-clip, format: hf-onnx}"]);
    expect(p.models.clip).toEqual({ path: join(root, "test/pipeline/fixtures/models/tiny-clip"), format: "hf-onnx" });
  });

  test("out.dir moves every output", () => {
    const p = load(["out.dir=/tmp/clipflow-out"]);
    expect(p.out.dir).toBe("/tmp/clipflow-out");
    expect(p.flow.deadLetter).toBe("/tmp/clipflow-out/dead-letter.arrow");
    expect(opts(p, 6).path).toBe("/tmp/clipflow-out/pairs.parquet");
  });

  test("LoadOptions.outDir (the CLI's --out) is relative to the working directory", () => {
    const p = loadPipeline("test/pipeline/fixtures/paths.yaml", { cwd: root, outDir: "tmp-out" });
    expect(p.out.dir).toBe(join(root, "tmp-out"));
    expect(opts(p, 5).path).toBe(join(root, "tmp-out/out/pairs.jsonl"));
  });

  test("a value the schema rejects names the override, not a file line", () => {
    expect(loadError(['stages.source.count="8"']).message).toBe(
      '--set stages.source.count="8": stages[0].source.count: expected number, got string "8"',
    );
    expect(loadError(["filter.minScroe=3"]).message).toBe('--set filter.minScroe=3: stages[4].filter.minScroe: unknown key (did you mean "minScore"?)');
    expect(loadError(["decode.model=nope"]).message).toBe(
      '--set decode.model=nope: stages[1].decode.model: unknown model "nope"; models defined: clip, policy',
    );
    expect(loadError(["models.clip.path=missing-dir"]).message).toBe(
      `--set models.clip.path=missing-dir: models.clip.path: not found: ${join(root, "test/pipeline/fixtures/missing-dir")}`,
    );
  });

  test("a model path on a builtin entry replaces the builtin (paths relative to the pipeline file)", () => {
    const p = load(["models.clip.path=models/tiny-clip"]);
    expect(p.models.clip).toEqual({ path: join(root, "test/pipeline/fixtures/models/tiny-clip"), format: "clipflow" });
    // ... and back: a builtin on a path entry drops path and format.
    const back = load(["models.clip.path=models/tiny-clip", "models.clip.builtin=shapes-clip"]);
    expect(back.models.clip).toEqual({ builtin: "shapes-clip" });
    // The shipped pipelines take the README's override as they are.
    const shipped = loadPipeline("pipelines/clip-dpo.yaml", { cwd: root, overrides: ["models.clip.path=../models/shapes-clip", "models.clip.format=hf-onnx"] });
    expect(shipped.models.clip).toEqual({ path: join(root, "models/shapes-clip"), format: "hf-onnx" });
  });

  test("a whole-stage problem an override contributed to keeps its line and names the override", () => {
    expect(loadError(["write.stdout=true"]).message).toBe(
      "test/pipeline/fixtures/good.yaml:15:5: stages[6].write: give either path or stdout: true, not both (with --set write.stdout=true)",
    );
  });

  test("a malformed override gives one line naming it", () => {
    const e = loadError(["stages[12].samples=1"]);
    expect(e.issues).toHaveLength(1);
    expect(e.message).toBe("--set stages[12].samples=1: no stage at index 12; the pipeline has 9 stages (0..8)");
  });

  test("file errors keep their line when an override touches something else", () => {
    const e = loadError(["stages.source.count=8"], "test/pipeline/fixtures/bad-type.yaml");
    expect(e.message).toBe('test/pipeline/fixtures/bad-type.yaml:9:17: stages[3].filter.minScore: expected number, got string "high"');
    // ... and an override can fix a bad file.
    const fixed = loadPipeline("test/pipeline/fixtures/bad-type.yaml", { cwd: root, overrides: ["filter.minScore=20"] });
    expect(fixed.stages[3]!.options).toMatchObject({ minScore: 20, maxWords: 40 });
  });
});
