/**
 * The pretraining files of pipelines/ run through `bun run pipeline` on a tiny configuration
 * (few scenes and steps): the recipes' heavy parts made small, not skipped. Outputs go to a
 * temporary folder (--out), never over the shipped models.
 */
import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { runFile } from "./pipelines-cases.ts";

describe("pretraining pipelines on a tiny configuration", () => {
  test("pretrain-clip.yaml writes a loadable CLIP folder and its metrics", async () => {
    const r = await runFile("pretrain-clip.yaml");
    expect([r.code, r.report.status, r.report.error]).toEqual([0, "completed", null]);
    expect(r.report.jobs.map((j) => j.stage)).toEqual(["pretrainClip"]);
    const dir = r.report.jobs[0]!.outputs[0]!;
    expect(dir).toBe(join(r.out, "shapes-clip"));
    for (const f of ["config.json", "onnx/vision_model.onnx", "onnx/text_model.onnx", "model.safetensors", "metrics.json"]) expect(existsSync(join(dir, f))).toBe(true);
  }, 120_000);

  test("sft-policy.yaml writes a policy folder from the shipped CLIP", async () => {
    const r = await runFile("sft-policy.yaml");
    expect([r.code, r.report.status, r.report.error]).toEqual([0, "completed", null]);
    const dir = r.report.jobs[0]!.outputs[0]!;
    expect(dir).toBe(join(r.out, "shapes-lvlm"));
    for (const f of ["config.json", "model.safetensors", "metrics.json"]) expect(existsSync(join(dir, f))).toBe(true);
  }, 120_000);
});
