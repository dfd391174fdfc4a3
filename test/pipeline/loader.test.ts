import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { PipelineError } from "../../src/pipeline/issues.ts";
import { loadPipeline, parsePipeline, pipelineToYaml, type LoadOptions } from "../../src/pipeline/loader.ts";

const root = resolve(import.meta.dir, "../..");
const fixtures = join(root, "test/pipeline/fixtures");
const rel = "test/pipeline/fixtures";

/** Loads `file` expecting failure; returns the error. */
function loadError(file: string, options: LoadOptions = {}): PipelineError {
  try {
    loadPipeline(file, { cwd: root, ...options });
  } catch (e) {
    if (e instanceof PipelineError) return e;
    throw e;
  }
  throw new Error(`expected ${file} to fail`);
}

function parseError(text: string, options: LoadOptions = {}): PipelineError {
  try {
    parsePipeline(text, join(fixtures, "inline.yaml"), { cwd: root, ...options });
  } catch (e) {
    if (e instanceof PipelineError) return e;
    throw e;
  }
  throw new Error("expected the text to fail");
}

describe("loadPipeline: a good file", () => {
  const p = loadPipeline(`${rel}/good.yaml`, { cwd: root });

  test("keeps the stages in order with their names and indexes", () => {
    expect(p.stages.map((s) => s.name)).toEqual([
      "source", "decode", "generate", "clipScore", "filter", "pairs", "write", "refLogps", "dpoTrain",
    ]);
    expect(p.stages.map((s) => s.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(p.description).toBe("CLIP-DPO on the shapes world");
  });

  test("keeps written values and fills every default", () => {
    expect(p.scheduler).toEqual({ device: "cpu", maxBatch: 64, maxDelayMs: 4, maxTokensInFlight: 8192, workers: 2, threads: 1 });
    const gen = p.stages[2]!;
    expect(gen.name).toBe("generate");
    if (gen.name !== "generate") return;
    expect(gen.options).toEqual({
      model: "policy", prompts: "caption", samples: 8, temperature: 1, topP: 0.95, topK: 0, maxNewTokens: 48, seed: 0,
    });
    const source = p.stages[0]!;
    if (source.name !== "source" || source.options.kind !== "shapes-world") throw new Error("bad source");
    expect(source.options).toEqual({ kind: "shapes-world", split: "dpo", count: 4000, seed: 1, batchSize: 32, imageSize: 64 });
    const filter = p.stages[4]!;
    if (filter.name !== "filter") throw new Error("bad filter");
    expect(filter.options.minScore).toBe(20);
    expect(filter.options.maxTokens).toBeNull();
    expect(filter.options.dropTextImages).toBe(false);
    const dpo = p.stages[8]!;
    if (dpo.name !== "dpoTrain") throw new Error("bad dpoTrain");
    expect(dpo.options.loss).toEqual({ sigmoid: 1 });
    expect(dpo.options.lr).toBe(5e-6);
    expect(dpo.options.trainable).toEqual(["projector", "lm"]);
    expect(dpo.options.labelSmoothing).toBe(0);
  });

  test("derives the defaults that depend on other keys", () => {
    // out.dir not written -> runs/<stem> under the working directory; outputs resolve against it.
    expect(p.out.dir).toBe(join(root, "runs/good"));
    expect(p.flow.deadLetter).toBe(join(root, "runs/good/dead-letter.arrow"));
    const write = p.stages[6]!;
    if (write.name !== "write") throw new Error("bad write");
    expect(write.options.path).toBe(join(root, "runs/good/pairs.parquet"));
    expect(write.options.format).toBe("parquet"); // from the extension
    // eval.model not written -> the dpoTrain stage's policy.
    expect(p.eval).toEqual({
      model: "policy", split: "heldout", count: 200, seed: 0, prompt: null, maxNewTokens: 48, temperature: 0,
      metrics: ["chair", "cover", "hal"],
    });
  });

  test("the resolved config prints as YAML that loads back to the same pipeline", () => {
    const yaml = pipelineToYaml(p);
    expect(yaml).toContain("maxDelayMs: 4");
    expect(yaml).toContain("topK: 0");
    const again = parsePipeline(yaml, join(fixtures, "good.yaml"), { cwd: root });
    expect(again.stages).toEqual(p.stages);
    expect(again.models).toEqual(p.models);
    expect(again.scheduler).toEqual(p.scheduler);
    expect(again.flow).toEqual(p.flow);
    expect(again.eval).toEqual(p.eval);
  });
});

describe("loadPipeline: relative paths", () => {
  test("inputs resolve against the file's folder, whatever the working directory", () => {
    const elsewhere = mkdtempSync(join(tmpdir(), "clipflow-cwd-"));
    for (const cwd of [root, elsewhere]) {
      const p = loadPipeline(join(fixtures, "paths.yaml"), { cwd });
      expect(p.models.clip).toEqual({ path: join(fixtures, "models/tiny-clip"), format: "hf-onnx" });
      const source = p.stages[0]!;
      if (source.name !== "source" || source.options.kind !== "jsonl-llava") throw new Error("bad source");
      expect(source.options.path).toBe(join(fixtures, "data/sft.jsonl"));
      expect(source.options.images).toBe(join(fixtures, "data/images"));
      // out.dir written in the file -> relative to the file; write.path relative to out.dir.
      expect(p.out.dir).toBe(join(root, "test/pipeline/runs-out"));
      const write = p.stages[5]!;
      if (write.name !== "write") throw new Error("bad write");
      expect(write.options.path).toBe(join(root, "test/pipeline/runs-out/out/pairs.jsonl"));
      expect(write.options.format).toBe("jsonl");
    }
  });

  test("jsonl-llava images default to the JSONL's folder, filled in", () => {
    const p = parsePipeline("stages:\n  - source: { kind: jsonl-llava, path: data/sft.jsonl }\n", join(fixtures, "inline.yaml"), { cwd: root });
    expect(p.stages[0]!.options).toEqual({ kind: "jsonl-llava", path: join(fixtures, "data/sft.jsonl"), images: join(fixtures, "data"), count: null, batchSize: 32 });
  });

  test("a bare `- pairs` entry is a stage with default options", () => {
    const p = loadPipeline(join(fixtures, "paths.yaml"), { cwd: root });
    expect(p.stages[4]).toEqual({
      name: "pairs", index: 4, options: { minMargin: 2, maxPairsPerImage: 2, maxLengthRatio: 1.5, strategy: "best-vs-worst", seed: 0 },
    });
  });

  test("folders and files are told apart", () => {
    const text = (model: string, source: string) =>
      `models:\n  clip: { path: ${model} }\nstages:\n  - source: { kind: parquet, path: ${source} }\n  - decode: { model: clip }\n`;
    const e = parseError(text("data/sft.jsonl", "data/images"));
    expect(e.message.split("\n")).toEqual([
      `${rel}/inline.yaml:2:17: models.clip.path: expected a folder, found a file: ${join(fixtures, "data/sft.jsonl")}`,
      `${rel}/inline.yaml:4:36: stages[0].source.path: expected a file, found a folder: ${join(fixtures, "data/images")}`,
    ]);
    expect(() => parsePipeline(text("models/tiny-clip", "data/sft.jsonl"), join(fixtures, "inline.yaml"), { cwd: root })).not.toThrow();
  });

  test("checkFiles: false skips the existence check but still resolves", () => {
    const p = loadPipeline(`${rel}/bad-missing-file.yaml`, { cwd: root, checkFiles: false });
    expect(p.models.clip).toEqual({ path: join(fixtures, "models/no-such-model"), format: "hf-onnx" });
  });
});

describe("loadPipeline: each bad file gives one clear line naming file:line:col and key", () => {
  const cases: [string, string][] = [
    ["bad-syntax.yaml", "3:1: YAML: Flow map in block collection must be sufficiently indented and end with a }"],
    ["bad-duplicate.yaml", "3:3: YAML: Map keys must be unique"],
    ["bad-tag.yaml", "2:41: YAML tags are not allowed in pipeline files (found !!binary)"],
    ["bad-section.yaml", '1:1: schedular: unknown section (did you mean "scheduler"?)'],
    ["bad-unknown-key.yaml", '7:7: stages[2].filter.minScroe: unknown key (did you mean "minScore"?)'],
    ["bad-type.yaml", '9:17: stages[3].filter.minScore: expected number, got string "high"'],
    [
      "bad-unknown-stage.yaml",
      '3:5: stages[1].filtr: unknown stage "filtr" (did you mean "filter"?); known stages: source, decode, generate, clipScore, filter, pairs, write, refLogps, dpoTrain, pretrainClip, sftPolicy',
    ],
    [
      "bad-source-kind.yaml",
      '2:21: stages[0].source.kind: unknown kind "shapes-wrld" (did you mean "shapes-world"?); expected one of "shapes-world" | "arrow" | "parquet" | "jsonl-llava" | "stdin" | "candidates"',
    ],
    ["bad-missing-key.yaml", "3:5: stages[1].decode.model: missing required key"],
    ["bad-model-ref.yaml", '6:24: stages[1].generate.model: unknown model "polcy" (did you mean "policy"?); models defined: clip, policy'],
    ["bad-model-kind.yaml", '7:14: stages[1].decode.model: model "policy" is shapes-lvlm (a lvlm model); this option needs a clip model'],
    ["bad-missing-file.yaml", `3:11: models.clip.path: not found: ${join(fixtures, "models/no-such-model")}`],
    ["bad-missing-source.yaml", `4:13: stages[0].source.path: not found: ${join(fixtures, "data/missing.parquet")}`],
    ["bad-loss.yaml", '7:13: stages[1].dpoTrain.loss: unknown loss "sigmod"; known: sigmoid, ipo, hinge, robust'],
  ];
  for (const [file, expected] of cases) {
    test(file, () => {
      const e = loadError(`${rel}/${file}`);
      expect(e.issues).toHaveLength(1);
      expect(e.message).not.toContain("\n");
      expect(e.message).toBe(`${rel}/${file}:${expected}`);
      const [line, col] = expected.split(":").map(Number);
      expect([e.issues[0]!.line, e.issues[0]!.col]).toEqual([line!, col!]);
    });
  }

  test("a file outside the working directory is named by its absolute path", () => {
    const e = loadError(join(fixtures, "bad-type.yaml"), { cwd: mkdtempSync(join(tmpdir(), "clipflow-cwd-")) });
    expect(e.message).toBe(`${join(fixtures, "bad-type.yaml")}:9:17: stages[3].filter.minScore: expected number, got string "high"`);
  });

  test("a missing pipeline file", () => {
    expect(loadError(`${rel}/nope.yaml`).message).toBe(`${rel}/nope.yaml: file not found`);
  });
});

describe("parsePipeline: other rules", () => {
  const head = "models:\n  clip: { builtin: shapes-clip }\n  policy: { builtin: shapes-lvlm }\nstages:\n  - source: { kind: shapes-world }\n";
  const msg = (text: string) => parseError(text).message;
  const file = `${rel}/inline.yaml`;

  test("empty file and non-map top level", () => {
    expect(msg("")).toBe(`${file}:1:1: the file is empty; expected a pipeline map`);
    expect(msg("- a\n- b\n")).toBe(`${file}:1:1: expected a pipeline map at the top level, got a list`);
  });

  test("stages must be a non-empty list of one-key items", () => {
    expect(msg("models: {}\n")).toBe(`${file}:1:1: stages: missing required key`);
    expect(msg("stages: []\n")).toBe(`${file}:1:9: stages: expected a non-empty list of stages, got an empty list`);
    expect(msg(`${head}  - decode: { model: clip }\n    pairs: {}\n`)).toBe(
      `${file}:6:5: stages[1]: expected one stage per list item, like "- source: { ... }", got a map with 2 keys (decode, pairs)`,
    );
  });

  test("the source comes first, once", () => {
    expect(msg("stages:\n  - pairs: {}\n  - source: { kind: stdin }\n")).toBe(
      [`${file}:2:5: stages[0]: the first stage must be a source, got pairs`, `${file}:3:5: stages[1].source: only the first stage may be a source`].join("\n"),
    );
  });

  test("write needs exactly one of path and stdout, and a known format", () => {
    expect(msg(`${head}  - write: { layout: trl }\n`)).toBe(`${file}:6:5: stages[1].write: needs path or stdout: true`);
    expect(msg(`${head}  - write: { path: a.parquet, stdout: true }\n`)).toBe(`${file}:6:5: stages[1].write: give either path or stdout: true, not both`);
    expect(msg(`${head}  - write: { path: pairs.csv }\n`)).toBe(
      `${file}:6:20: stages[1].write.path: cannot infer format from ".csv"; set format (arrow | arrow-stream | parquet | jsonl)`,
    );
    const p = parsePipeline(`${head}  - write: { stdout: true }\n`, join(fixtures, "inline.yaml"), { cwd: root });
    expect(p.stages[1]!.options).toEqual({ path: null, stdout: true, format: "arrow-stream", layout: "trl" });
  });

  test("filter.dropTextImages needs a clip model", () => {
    expect(msg(`${head}  - filter:\n      dropTextImages: true\n`)).toBe(
      `${file}:7:23: stages[1].filter.dropTextImages: needs filter.model (a clip model) to detect text in images`,
    );
    const p = parsePipeline(`${head}  - filter: { dropTextImages: true, model: clip }\n`, join(fixtures, "inline.yaml"), { cwd: root });
    expect(p.stages[1]!.options).toMatchObject({ dropTextImages: true, model: "clip", textThreshold: 25 });
  });

  test("eval needs a policy: explicit, from dpoTrain, or from generate", () => {
    expect(msg(`${head}eval: {}\n`)).toBe(`${file}:6:1: eval.model: missing: no dpoTrain or generate stage to take the policy from`);
    expect(msg(`${head}eval: { model: clip }\n`)).toBe(`${file}:6:16: eval.model: model "clip" is shapes-clip (a clip model); this option needs a lvlm model`);
    const p = parsePipeline(`${head}  - generate: { model: policy }\neval: {}\n`, join(fixtures, "inline.yaml"), { cwd: root });
    expect(p.eval?.model).toBe("policy");
  });

  test("several problems: one line each, in file order", () => {
    const e = parseError(`${head}  - generate: { model: policy, samples: 0, topP: 2 }\nflow: { onError: ignore }\n`);
    expect(e.message.split("\n")).toEqual([
      `${file}:6:41: stages[1].generate.samples: expected a number > 0, got number 0`,
      `${file}:6:50: stages[1].generate.topP: expected a number <= 1, got number 2`,
      `${file}:7:18: flow.onError: expected one of "skip" | "fail", got string "ignore"`,
    ]);
  });

  test("a model needs builtin or path, not both or neither", () => {
    expect(msg("models:\n  m: { builtin: shapes-clip, path: x }\nstages:\n  - source: { kind: stdin }\n")).toBe(
      `${file}:2:30: models.m.path: unknown key; known keys: builtin`,
    );
    expect(msg("models:\n  m: { format: hf-onnx }\nstages:\n  - source: { kind: stdin }\n")).toBe(`${file}:2:3: models.m.path: missing required key`);
    expect(msg("models:\n  m: shapes-clip\nstages:\n  - source: { kind: stdin }\n")).toBe(
      `${file}:2:6: models.m: expected { builtin: shapes-clip | shapes-lvlm } or { path, format }, got string "shapes-clip"`,
    );
  });

  test("a misspelt required key gives one line, not also a missing-key line", () => {
    expect(msg("stage:\n  - source: { kind: stdin }\n")).toBe(`${file}:1:1: stage: unknown section (did you mean "stages"?)`);
    expect(msg(`${head}  - decode: { modle: clip }\n`)).toBe(`${file}:6:15: stages[1].decode.modle: unknown key (did you mean "model"?)`);
    expect(msg("stages:\n  - source: { knd: stdin }\n")).toBe(`${file}:2:15: stages[0].source.knd: unknown key (did you mean "kind"?)`);
    expect(msg("models:\n  c: { bultin: shapes-clip }\nstages:\n  - source: { kind: stdin }\n")).toBe(
      `${file}:2:8: models.c.bultin: unknown key (did you mean "builtin"?)`,
    );
  });

  test("model names are plain identifiers", () => {
    expect(msg("models:\n  __proto__: { builtin: shapes-clip }\nstages:\n  - source: { kind: stdin }\n")).toBe(
      `${file}:2:3: models.__proto__: a model name is letters, digits, _ and -, starting with a letter`,
    );
  });

  test("exponential alias expansion is refused", () => {
    const lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 0; i < 9; i++) {
      const name = String.fromCharCode(98 + i);
      lines.push(`${name}: &${name} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(", ")}]`);
    }
    const e = parseError(lines.join("\n"));
    expect(e.issues).toHaveLength(1);
    expect(e.message).toMatch(/^test\/pipeline\/fixtures\/inline\.yaml:1:1: YAML: .*alias/i);
  });

  test("nothing in the file is evaluated: custom tags are errors, not code", () => {
    const marker = join(mkdtempSync(join(tmpdir(), "clipflow-eval-")), "pwned");
    const text = `stages:\n  - source: { kind: stdin, count: !!js/function "function(){require('fs').writeFileSync('${marker}','x')}" }\n`;
    expect(msg(text)).toBe(`${file}:2:35: YAML tags are not allowed in pipeline files (found !!js/function)`);
    expect(existsSync(marker)).toBe(false);
  });
});
