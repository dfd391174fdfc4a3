import { describe, expect, test } from "bun:test";
import { z } from "zod";
import { defineStage, mapBatch } from "../../src/flow/index.ts";
import { ConfigError } from "../../src/util/errors.ts";
import { operatorStages } from "../../operators/index.ts";
import { demoStages } from "../../demo/stages/index.ts";

describe("defineStage", () => {
  const upper = defineStage({
    name: "upper",
    role: "operator",
    optionsSchema: z.strictObject({ n: z.int().positive().default(1) }),
    create: (_o, s) => mapBatch(s.name, (b) => b),
  });

  test("parse applies defaults and turns bad values into one ConfigError line naming stage and key", () => {
    expect(upper.parse(undefined)).toEqual({ n: 1 });
    expect(() => upper.parse({ n: -1 })).toThrow(ConfigError);
    expect(() => upper.parse({ n: -1 }, { file: "p.yaml", line: 7 })).toThrow(/^p\.yaml:7, stage "upper": option n: /);
    expect(() => upper.parse({ m: 1 })).toThrow('stage "upper": options: unknown key "m"');
  });

  test("a malformed definition fails when it is declared", () => {
    expect(() => defineStage({ name: "9x", role: "operator", optionsSchema: z.object({}), create: () => mapBatch("x", (b) => b) })).toThrow("the name must be");
    expect(() => defineStage({ name: "j", role: "job", optionsSchema: z.object({}), create: () => mapBatch("x", (b) => b) })).toThrow("a job stage has `job`");
    expect(() => defineStage({ name: "o", role: "operator", optionsSchema: z.object({}) })).toThrow("a non-job stage has `create`");
  });
});

describe("shipped stage definitions", () => {
  test("every definition's name matches its key; schemas are strict and fill defaults", () => {
    for (const [key, def] of Object.entries({ ...operatorStages, ...demoStages })) {
      expect(def.name).toBe(key);
      expect(typeof def.create).toBe("function");
    }
    expect(operatorStages.pairs.parse({})).toEqual({ minMargin: 2, maxPairsPerImage: 2, maxLengthRatio: 1.5, strategy: "best-vs-worst" });
    expect(operatorStages.generate.parse({ model: "policy" }).prompts).toBeNull(); // each row's own prompt
    expect(demoStages.generate.parse({ model: "policy" }).prompts).toBe("caption");
    expect(operatorStages.dpoTrain.parse({ model: "policy" }).sftWeight).toBe(1); // the shipped setting
  });

  test("bad options are one line: no raw zod JSON, no silently accepted negatives", () => {
    expect(() => operatorStages.filter.parse({ maxWords: -1 })).toThrow(/^stage "filter": option maxWords: /);
    expect(() => operatorStages.pairs.parse({ strategy: "oracle" })).toThrow(/^stage "pairs": option strategy: /);
    expect(demoStages.pairs.parse({ strategy: "oracle" }).strategy).toBe("oracle");
    expect(() => operatorStages.source.parse({ kind: "shapes-world" })).toThrow(ConfigError);
    expect(demoStages.source.parse({ kind: "shapes-world" })).toMatchObject({ kind: "shapes-world", split: "dpo", count: 1000 });
    let msg = "";
    try {
      operatorStages.dpoTrain.parse({ model: "p", loss: { sft: 1 } });
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toBe('stage "dpoTrain": option loss.sft: unknown loss "sft"; known: sigmoid, ipo, hinge, robust; the sft (RPO) term is set with sftWeight');
  });
});
