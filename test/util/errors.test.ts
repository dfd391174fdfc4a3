import { describe, expect, test } from "bun:test";
import { z } from "zod";
import {
  ClipflowError,
  ConfigError,
  InputError,
  MAX_MESSAGE_CHARS,
  ModelFileError,
  RuntimeError,
  boundMessage,
  deserializeError,
  formatWhere,
  isSerializedError,
  parseOptions,
  serializeError,
} from "../../src/util/errors.ts";
import { StageError } from "../../src/flow/errors.ts";

describe("ClipflowError", () => {
  test("message is where + detail on one line; kind, code and exit code per subclass", () => {
    const e = new InputError("not a PNG", { code: "bad image", where: { file: "a.jsonl", line: 4, stage: "decode", rowId: "i7" } });
    expect(e.message).toBe('a.jsonl:4, stage "decode", row i7: not a PNG');
    expect(e.detail).toBe("not a PNG");
    expect([e.kind, e.code, e.exitCode]).toEqual(["input", "bad image", 1]);
    expect(e).toBeInstanceOf(ClipflowError);
    expect(new ConfigError("x").exitCode).toBe(2);
    expect(new ConfigError("x").code).toBe("config");
    expect(new ModelFileError("x").kind).toBe("model-file");
    expect(new RuntimeError("x").kind).toBe("runtime");
  });

  test("messages are bounded and single-line", () => {
    const e = new RuntimeError(`garbage ${"\u0000x\n".repeat(1_000_000)}`);
    expect(e.message.length).toBe(MAX_MESSAGE_CHARS);
    expect(e.message.endsWith("…")).toBe(true);
    expect(e.message).not.toContain("\n");
    expect(boundMessage("a\r\n  b")).toBe("a | b");
    expect(formatWhere({ line: 3, column: 2 })).toBe("line 3:2");
    expect(formatWhere({})).toBe("");
  });

  test("withWhere keeps class and code and fills only unknown fields", () => {
    const e = new InputError("empty text", { code: "empty text", where: { rowId: "c1", stage: "inner" } });
    const w = e.withWhere({ stage: "outer", file: "f.arrow" });
    expect(w).toBeInstanceOf(InputError);
    expect(w.code).toBe("empty text");
    expect(w.where).toEqual({ stage: "inner", rowId: "c1", file: "f.arrow" });
    expect(w.message).toBe('f.arrow, stage "inner", row c1: empty text');
  });

  test("kind, code, where and causes survive structured clone (the worker boundary)", () => {
    const inner = new ModelFileError("vision_model.onnx is empty", { code: "empty model file", where: { file: "models/clip/onnx/vision_model.onnx" } });
    const outer = StageError.wrap("clipScore", inner);
    const wire = structuredClone(outer.toJSON());
    expect(isSerializedError(wire)).toBe(true);
    const back = deserializeError(wire) as ClipflowError;
    expect(back).toBeInstanceOf(ModelFileError);
    expect(back.name).toBe("StageError");
    expect(back.code).toBe("empty model file");
    expect(back.where).toEqual({ file: "models/clip/onnx/vision_model.onnx", stage: "clipScore" });
    expect(back.message).toBe(outer.message);
    expect((back.cause as ClipflowError).code).toBe("empty model file");
    const plain = deserializeError(serializeError(new TypeError("boom")));
    expect([plain.name, plain.message]).toEqual(["TypeError", "boom"]);
    expect(isSerializedError({ message: "x" })).toBe(false);
  });
});

describe("StageError", () => {
  test("wraps a plain error as runtime/stage failed and keeps a clipflow error's kind and code", () => {
    const a = StageError.wrap("decode", new Error("boom"));
    expect([a.message, a.kind, a.code, a.stage]).toEqual(['stage "decode": boom', "runtime", "stage failed", "decode"]);
    const c = StageError.wrap("filter", new ConfigError("bad threshold", { code: "bad option" }));
    expect([c.kind, c.code, c.exitCode]).toEqual(["config", "bad option", 2]);
    expect(StageError.wrap("x", a)).toBe(a);
  });
});

describe("parseOptions", () => {
  const schema = z.strictObject({ maxWords: z.int().positive(), prompt: z.string().default("a photo") });

  test("returns parsed options with defaults", () => {
    expect(parseOptions(schema, { maxWords: 3 }, { stage: "generate" })).toEqual({ maxWords: 3, prompt: "a photo" });
  });

  test("a bad value is one ConfigError line naming stage and key path", () => {
    let err: unknown;
    try {
      parseOptions(schema, { maxWords: -1, extra: true }, { stage: "filter", file: "p.yaml", line: 9 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const m = (err as Error).message;
    expect(m.startsWith('p.yaml:9, stage "filter": option maxWords: ')).toBe(true);
    expect(m).toContain('unknown key "extra"');
    expect(m).not.toContain("\n");
    expect(m).not.toContain("[{");
    expect((err as ConfigError).code).toBe("bad option");
  });
});
