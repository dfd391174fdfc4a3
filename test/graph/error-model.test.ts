/**
 * One error model (issue 16 §5): the errors src/graph, src/models and src/train raise are
 * ClipflowErrors of the right kind (exit code, dead-letter code), raised by the real code paths,
 * and they survive a worker's postMessage (toJSON / fromJSON) with kind, code and name.
 */
import { describe, expect, test } from "bun:test";
import { ParamError } from "../../src/graph/params.ts";
import { createSession } from "../../src/graph/runtime.ts";
import { parseSafetensors, SafetensorsError } from "../../src/graph/safetensors.ts";
import { clipConfig, ModelConfigError } from "../../src/models/clip-config.ts";
import { ImageDecodeError, preprocessImage } from "../../src/models/image-preprocess.ts";
import { parsePreprocessorConfig, PreprocessorConfigError } from "../../src/models/preprocessor-config.ts";
import { OptimizerError } from "../../src/train/adamw.ts";
import { CheckpointError } from "../../src/train/checkpoint.ts";
import { DpoNonFiniteError } from "../../src/train/dpo-engine.ts";
import { ClipflowError, ConfigError, InputError, ModelFileError, RuntimeError } from "../../src/util/errors.ts";
import * as root from "../../src/index.ts";
import * as models from "../../src/models/index.ts";

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error("expected a throw");
}

async function rejected(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a rejection");
}

describe("errors of graph, models and train are ClipflowErrors of the right kind", () => {
  test("garbage safetensors bytes: SafetensorsError, a ModelFileError (exit 1) naming the source", () => {
    const e = thrown(() => parseSafetensors(new Uint8Array([1, 2, 3]), "w.safetensors"));
    expect(e).toBeInstanceOf(SafetensorsError);
    expect(e).toBeInstanceOf(ModelFileError);
    const c = e as ClipflowError;
    expect([c.kind, c.code, c.exitCode]).toEqual(["model-file", "bad safetensors", 1]);
    expect(c.message.startsWith("safetensors w.safetensors: ")).toBe(true);
  });

  test("a model config that cannot describe a model: ModelConfigError (model-file), not the pipeline's ConfigError", () => {
    const e = thrown(() => clipConfig({ vision: { imageSize: 30, patchSize: 8 } }, "m/config.json")) as ClipflowError;
    expect(e).toBeInstanceOf(ModelConfigError);
    expect(e).toBeInstanceOf(ModelFileError);
    expect(e).not.toBeInstanceOf(ConfigError);
    expect(e.name).toBe("ModelConfigError");
    expect(e.message).toContain("m/config.json: ");
  });

  test("bad preprocessor config: PreprocessorConfigError (model-file)", () => {
    const e = thrown(() => parsePreprocessorConfig({ crop_size: "big" }, "p.json")) as ClipflowError;
    expect(e).toBeInstanceOf(PreprocessorConfigError);
    expect(e.kind).toBe("model-file");
  });

  test("an image that is not an image: ImageDecodeError, an InputError whose code is the reason", async () => {
    const cfg = parsePreprocessorConfig({ crop_size: 8, size: 8 });
    const e = (await rejected(preprocessImage(new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7]), cfg))) as ImageDecodeError;
    expect(e).toBeInstanceOf(ImageDecodeError);
    expect(e).toBeInstanceOf(InputError);
    expect(e.code).toBe(e.reason);
  });

  test("ONNX bytes that are not a model: ModelFileError; an unknown device: ConfigError (exit 2)", async () => {
    const bad = (await rejected(createSession(new Uint8Array([9, 9, 9, 9])))) as ClipflowError;
    expect(bad).toBeInstanceOf(ModelFileError);
    expect(bad.message).toContain("cannot load ONNX model <4 bytes of ONNX>");
    const dev = (await rejected(createSession(new Uint8Array([9]), { device: "tpu" as "cpu" }))) as ClipflowError;
    expect(dev).toBeInstanceOf(ConfigError);
    expect(dev.exitCode).toBe(2);
  });

  test("every error class of graph, models and train: kind, code and name survive toJSON / fromJSON", () => {
    const cases: [Error, string, string][] = [
      [new root.GraphError("op matmul: shapes [2,3] and [4,5]"), "runtime", "graph"],
      [new ParamError("missing weight w"), "model-file", "param"],
      [new models.TokenizerError("tokenizer.json: no vocab"), "model-file", "tokenizer"],
      [new OptimizerError("no moment m.w"), "runtime", "optimizer"],
      [new CheckpointError("step-000001: no state.json"), "runtime", "checkpoint"],
      [new DpoNonFiniteError("loss NaN"), "runtime", "non-finite"],
    ];
    for (const [e, kind, code] of cases) {
      expect(e).toBeInstanceOf(ClipflowError);
      const c = e as ClipflowError;
      expect([c.kind, c.code]).toEqual([kind, code]);
      const back = ClipflowError.fromJSON(structuredClone(c.toJSON())) as ClipflowError;
      expect([back.kind, back.code, back.name, back.message]).toEqual([kind, code, c.name, c.message]);
      expect(back).toBeInstanceOf(kind === "runtime" ? RuntimeError : ModelFileError);
    }
  });

  test("the public surface has one ConfigError and one RuntimeError (the error model's)", () => {
    expect(root.ConfigError).toBe(ConfigError);
    expect(root.RuntimeError).toBe(RuntimeError);
    expect("ConfigError" in models).toBe(false);
    expect(models.ModelConfigError.name).toBe("ModelConfigError");
  });
});
