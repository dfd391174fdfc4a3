import { describe, expect, test } from "bun:test";
import { isStageName, stageNames, stageRegistry } from "../../src/pipeline/registry.ts";

/** The smallest valid options of each stage (model references are checked by the loader). */
const minimal: Record<string, Record<string, unknown>> = {
  source: { kind: "stdin" },
  decode: { model: "m" },
  generate: { model: "m" },
  clipScore: { model: "m" },
  filter: {},
  pairs: {},
  write: {},
  refLogps: { model: "m" },
  dpoTrain: { model: "m" },
  pretrainClip: {},
  sftPolicy: { clip: "models/shapes-clip" },
};

describe("stageRegistry", () => {
  test("names every stage of the issues, in pipeline order", () => {
    expect(stageNames).toEqual(["source", "decode", "generate", "clipScore", "filter", "pairs", "write", "refLogps", "dpoTrain", "pretrainClip", "sftPolicy"]);
  });

  test("isStageName only accepts own keys", () => {
    expect(isStageName("pairs")).toBe(true);
    expect(isStageName("toString")).toBe(false);
    expect(isStageName("__proto__")).toBe(false);
  });

  for (const name of stageNames) {
    const def = stageRegistry[name];
    test(`${name}: minimal options parse; unknown keys are rejected; declared fields exist`, () => {
      const ok = def.optionsSchema.safeParse(minimal[name]);
      expect(ok.success).toBe(true);
      const bad = def.optionsSchema.safeParse({ ...minimal[name], notAnOption: 1 });
      expect(bad.success).toBe(false);
      expect(bad.error?.issues[0]?.code).toBe("unrecognized_keys");
      // Every field the loader treats specially must be an option the schema knows.
      // (A source's kinds are branches of a union: a key may belong to one kind only, e.g. candidates' `model`.)
      const schema = def.optionsSchema as unknown as { shape?: Record<string, unknown>; options?: { shape: Record<string, unknown> }[] };
      const known = (schema.options ? schema.options.map((o) => o.shape) : [schema.shape ?? {}]).flatMap((x) => Object.keys(x));
      expect(Object.keys(ok.data as Record<string, unknown>).every((k) => known.includes(k))).toBe(true);
      for (const key of Object.keys(def.modelRefs ?? {})) expect(known).toContain(key);
    });
  }
});
