import { describe, expect, test } from "bun:test";
import { z } from "zod";
import { stageRegistry } from "../../src/pipeline/registry.ts";
import { evalSchema, flowSchema, pathModelSchema, schedulerSchema } from "../../src/pipeline/schema.ts";

// The option schemas a pipeline file is validated with: the stages' own (through the registry).
const sourceOptions = stageRegistry.source.optionsSchema;
const generateOptions = stageRegistry.generate.optionsSchema;
const pairsOptions = stageRegistry.pairs.optionsSchema;
const writeOptions = stageRegistry.write.optionsSchema;
const dpoTrainOptions = stageRegistry.dpoTrain.optionsSchema;
import { validate } from "../../src/pipeline/zod-issues.ts";

const messages = (schema: Parameters<typeof validate>[0], input: unknown) => {
  const r = validate(schema, input, ["x"]);
  return r.ok ? [] : r.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
};

describe("section defaults are explicit", () => {
  test("scheduler, flow, eval, path models", () => {
    expect(schedulerSchema.parse({})).toEqual({ device: "cpu", maxBatch: 64, maxDelayMs: 4, maxTokensInFlight: 8192, workers: 2, threads: 1 });
    expect(flowSchema.parse({})).toEqual({ maxInFlight: 8, onError: "skip", deadLetter: "dead-letter.arrow" });
    expect(evalSchema.parse({}).metrics).toEqual(["chair", "hal", "cover", "attr"]);
    expect(pathModelSchema.parse({ path: "m" })).toEqual({ path: "m", format: "clipflow" });
  });

  test("each source kind has its own fields", () => {
    expect(sourceOptions.parse({ kind: "shapes-world" })).toEqual({ kind: "shapes-world", split: "dpo", count: 1000, seed: 0, batchSize: 32, imageSize: 64 });
    expect(sourceOptions.parse({ kind: "jsonl-llava", path: "a.jsonl" })).toEqual({
      kind: "jsonl-llava", path: "a.jsonl", images: null, count: null, batchSize: 32,
    });
    expect(sourceOptions.parse({ kind: "stdin" })).toEqual({ kind: "stdin", count: null });
    expect(messages(sourceOptions, { kind: "stdin", path: "a" })).toEqual(["x.path: unknown key; known keys: kind, count"]);
    expect(messages(sourceOptions, { kind: "arrow" })).toEqual(["x.path: missing required key"]);
    expect(messages(sourceOptions, {})).toEqual([
      'x.kind: missing required key; expected one of "shapes-world" | "arrow" | "parquet" | "jsonl-llava" | "stdin" | "candidates"',
    ]);
  });

  test("unknown keys inside a nested kind-dispatched object list that kind's keys", () => {
    const wrapper = z.strictObject({ inner: z.strictObject({ src: sourceOptions }) });
    expect(messages(wrapper, { inner: { src: { kind: "parquet", path: "a", seed: 1 } } })).toEqual([
      "x.inner.src.seed: unknown key; known keys: kind, path, count, batchSize",
    ]);
  });

  test("pairs defaults follow the paper (margin 2)", () => {
    expect(pairsOptions.parse({})).toEqual({ minMargin: 2, maxPairsPerImage: 2, maxLengthRatio: 1.5, strategy: "best-vs-worst", seed: 0 });
    expect(messages(pairsOptions, { strategy: "best-vs-wrost" })).toEqual([
      'x.strategy: expected one of "best-vs-worst" | "all-over-margin" | "random" | "oracle", got string "best-vs-wrost" (did you mean "best-vs-worst"?)',
    ]);
    expect(messages(pairsOptions, { maxLengthRatio: 0.5 })).toEqual(["x.maxLengthRatio: expected a number >= 1, got number 0.5"]);
  });
});

describe("stage option checks", () => {
  test("generate: prompts is caption or a list; ranges", () => {
    expect(generateOptions.parse({ model: "p", prompts: ["a", "b"] }).prompts).toEqual(["a", "b"]);
    expect(messages(generateOptions, { model: "p", prompts: "describe" })).toEqual([
      'x.prompts: expected "caption", null (each row\'s prompt) or a non-empty list of prompts, got string "describe"',
    ]);
    expect(messages(generateOptions, { model: "p", topP: 0 })).toEqual(["x.topP: expected a number > 0, got number 0"]);
    expect(messages(generateOptions, { model: "p", samples: 2.5 })).toEqual(["x.samples: expected integer, got number 2.5"]);
    expect(messages(generateOptions, { model: 3 })).toEqual(["x.model: expected string, got number 3"]);
  });

  test("scheduler.device is cpu or cuda:N", () => {
    expect(schedulerSchema.parse({ device: "cuda:1" }).device).toBe("cuda:1");
    expect(messages(schedulerSchema, { device: "gpu" })).toEqual(['x.device: expected "cpu" or "cuda:N", got string "gpu"']);
  });

  test("write: format is one of the four", () => {
    expect(writeOptions.parse({ path: "p.arrow" })).toEqual({ path: "p.arrow", stdout: false, format: null, layout: "trl" });
    expect(messages(writeOptions, { path: "p", format: "trl" })).toEqual([
      'x.format: expected one of "arrow" | "arrow-stream" | "parquet" | "jsonl", got string "trl"',
    ]);
  });

  test("dpoTrain: loss is a name or a weighted combination, normalised to weights", () => {
    const d = dpoTrainOptions.parse({ model: "p" });
    expect(d).toMatchObject({ loss: { sigmoid: 1 }, beta: 0.1, lr: 5e-6, batchSize: 16, gradAccum: 1, maxGradNorm: 1, sftWeight: 1 });
    expect(dpoTrainOptions.parse({ model: "p", loss: "ipo" }).loss).toEqual({ ipo: 1 });
    expect(dpoTrainOptions.parse({ model: "p", loss: { sigmoid: 1, hinge: 0.5 } }).loss).toEqual({ sigmoid: 1, hinge: 0.5 });
    expect(messages(dpoTrainOptions, { model: "p", loss: { sigmoid: -1 } })).toEqual(["x.loss.sigmoid: expected a positive number"]);
    expect(messages(dpoTrainOptions, { model: "p", loss: { sft: 1 } })).toEqual([
      'x.loss.sft: unknown loss "sft"; known: sigmoid, ipo, hinge, robust; the sft (RPO) term is set with sftWeight',
    ]);
    expect(messages(dpoTrainOptions, { model: "p", loss: 3 })).toEqual([
      "x.loss: expected a loss name (sigmoid | ipo | hinge | robust) or a map of loss weights",
    ]);
    expect(messages(dpoTrainOptions, { model: "p", labelSmoothing: 0.5 })).toEqual(["x.labelSmoothing: expected a number < 0.5, got number 0.5"]);
    expect(messages(dpoTrainOptions, { model: "p", trainable: ["vision", "head"] })).toEqual([
      'x.trainable.1: expected one of "vision" | "projector" | "lm", got string "head"',
    ]);
  });
});
