import { describe, expect, test } from "bun:test";
import * as api from "../src/index.ts";
import * as ops from "../operators/index.ts";
import * as demo from "../demo/stages/index.ts";
import * as models from "../src/models/index.ts";

// The public surface is an explicit list: this guards against an export silently vanishing.
describe("public surface", () => {
  test("src/index.ts exports the core building blocks as functions/classes", () => {
    for (const name of ["Graph", "ParamStore", "Scheduler", "createFlowContext", "fromBatches", "toBatches", "operate", "defineStage", "runFlow", "loadClip", "loadLvlm", "loadHfVlm", "exportHfVlm", "HfVlm", "lvlmPolicy", "AdamW", "DpoTrainer", "dpoLoss", "loadPipeline", "runPipeline", "ClipflowError", "ConfigError"] as const) {
      expect(typeof api[name]).toBe("function");
    }
    // The shapes world is the embedded demo, not the framework's root.
    expect("sceneAt" in api).toBe(false);
    expect(typeof demo.sceneAt).toBe("function");
    expect(demo.SPLITS).toEqual(["clip-pretrain", "sft", "dpo", "heldout"]);
  });

  test("src/models/index.ts exports the Hugging Face VLM API and the PolicyModel adapter", () => {
    for (const name of ["loadHfVlm", "exportHfVlm", "HfVlm", "HfVlmError", "lvlmPolicy", "localSessions", "hostSessions", "wordLevelTokenizer", "clipflowChatTemplate"] as const) {
      expect(typeof models[name]).toBe("function");
    }
    expect(models.HF_VLM_SESSIONS).toEqual({ embed: "embed_tokens", decoder: "decoder_model_merged", logps: "logps_head" });
    expect(models.HF_VLM_FILES.decoder).toBe("onnx/decoder_model_merged.onnx");
  });

  test("operators/index.ts exports every pipeline stage", () => {
    for (const name of ["source", "decode", "generateCandidates", "clipScore", "filterCandidates", "pairCandidates", "write", "refLogps", "dpoTrain"]) {
      expect(typeof (ops as Record<string, unknown>)[name]).toBe("function");
    }
    expect(Object.keys(ops.operatorStages)).toEqual(["source", "decode", "generate", "clipScore", "filter", "pairs", "write", "refLogps", "dpoTrain"]);
    // No operator shadows an RxJS export.
    for (const clash of ["filter", "generate", "pairs", "map"]) expect(clash in ops).toBe(false);
  });
});
