/**
 * `models: { policy: { path: DIR, format: hf-onnx-vlm } }` in a pipeline file: the generate stage
 * runs an imported Hugging Face VLM through the scheduler. The folder is the shipped shapes-lvlm
 * exported in that layout, so the candidates must be those of `{ builtin: shapes-lvlm }`
 * (same seeds), refLogps scores pairs with it exactly as with the builtin policy, and the
 * evaluation of it (through the scheduler) is the builtin policy's; dpoTrain refuses it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportHfVlm } from "../../../src/models/hf-vlm/export.ts";
import { loadLvlm } from "../../../src/models/lvlm-io.ts";
import { loadPipeline } from "../../../src/pipeline/loader.ts";
import { runPipeline } from "../../../src/pipeline/run.ts";

const SHIPPED = "models/shapes-lvlm";
const ready = existsSync(join(SHIPPED, "config.json")) && existsSync("models/shapes-clip/config.json");

/** A pipeline file over the shipped CLIP and `policy`; `models` adds entries, `stages` lists the stage lines. */
const pipelineYaml = (policy: string, stages: string[], models = "") => `
models:
  clip: { builtin: shapes-clip }
  policy: ${policy}
${models}scheduler: { device: cpu, maxBatch: 16, maxDelayMs: 2, maxTokensInFlight: 4096, workers: 1, threads: 1 }
flow: { maxInFlight: 2, onError: skip }
stages:
${stages.map((l) => `  - ${l}`).join("\n")}
`;
const generateLine = (model: string) => `generate: { model: ${model}, prompts: caption, samples: 2, temperature: 1.0, topP: 0.95, maxNewTokens: 24, seed: 0 }`;

const yaml = (policy: string) =>
  pipelineYaml(policy, ["source: { kind: shapes-world, split: dpo, count: 4, seed: 3, batchSize: 4 }", "decode: { model: clip }", generateLine("policy"), "write: { path: candidates.jsonl, layout: plain }"]);

// The candidates come from the builtin policy (`gen`) in both runs; only the scorer differs.
const scoreYaml = (policy: string) =>
  pipelineYaml(
    policy,
    ["source: { kind: shapes-world, split: dpo, count: 8, seed: 3, batchSize: 4 }", "decode: { model: clip }", generateLine("gen"), "clipScore: { model: clip }", "pairs: { minMargin: 0.5 }", "refLogps: { model: policy }", "write: { path: pairs.jsonl, layout: plain }"],
    "  gen: { builtin: shapes-lvlm }\n",
  );

// The generating policy evaluated on held-out scenes (eval.model defaults to the generate stage's).
const evalYaml = (policy: string) => `${yaml(policy)}eval: { split: heldout, count: 6, seed: 2, maxNewTokens: 24, temperature: 0, metrics: [chair, hal, cover, attr] }\n`;

// A trainer over the imported policy: refused at set-up.
const trainYaml = (policy: string) =>
  pipelineYaml(
    policy,
    ["source: { kind: shapes-world, split: dpo, count: 4, seed: 3, batchSize: 4 }", "decode: { model: clip }", generateLine("gen"), "clipScore: { model: clip }", "pairs: { minMargin: 0.5 }", "refLogps: { model: policy }", "dpoTrain: { model: policy, batchSize: 2, epochs: 1 }"],
    "  gen: { builtin: shapes-lvlm }\n",
  );

describe.skipIf(!ready)("pipeline: a policy in the hf-onnx-vlm format", () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), "clipflow-hfvlm-pipe-"));
    await exportHfVlm(await loadLvlm(SHIPPED), join(tmp, "policy-hf"));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  /** Writes pipeline `text` as `<name>.yaml` and runs it into `out-<name>`; its report and that folder. */
  const runYaml = async (name: string, text: string) => {
    const file = join(tmp, `${name}.yaml`);
    writeFileSync(file, text);
    const outDir = join(tmp, `out-${name}`);
    const { report } = await runPipeline(loadPipeline(file, { outDir, cwd: tmp }), { command: "test", resumeCommand: "test --resume" });
    return { report, outDir };
  };
  const jsonlRows = (path: string): Record<string, unknown>[] =>
    existsSync(path) ? readFileSync(path, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>) : [];

  const run = async (name: string, policy: string): Promise<{ status: string; texts: string[] }> => {
    const { report, outDir } = await runYaml(name, yaml(policy));
    return { status: String(report.status), texts: jsonlRows(join(outDir, "candidates.jsonl")).map((r) => String(r.text)) };
  };

  test("generate with the exported folder gives the builtin policy's candidates", async () => {
    const hf = await run("hf", `{ path: ./policy-hf, format: hf-onnx-vlm }`);
    const builtin = await run("builtin", `{ builtin: shapes-lvlm }`);
    expect(hf.status).toBe("completed");
    expect(builtin.texts.length).toBe(4 * 5 * 2); // 4 images × 5 caption prompts × 2 samples
    expect(hf.texts).toEqual(builtin.texts);
  }, 120_000);

  test("the evaluation of the exported folder (greedy and sampled decodings, probes) is the builtin policy's", async () => {
    const runEval = async (name: string, policy: string) => (await runYaml(name, evalYaml(policy))).report;
    const hf = await runEval("eval-hf", `{ path: ./policy-hf, format: hf-onnx-vlm }`);
    const builtin = await runEval("eval-builtin", `{ builtin: shapes-lvlm }`);
    expect([hf.status, hf.error]).toEqual(["completed", null]);
    expect(builtin.status).toBe("completed");
    const e = hf.evaluation!;
    // both decodings: greedy and the generate stage's sampling (T 1, top-p 0.95, 4 samples)
    expect(e.decodings!.map((d) => [d.name, d.temperature, d.topP, d.samples])).toEqual([["greedy", 0, 1, 1], ["sampled", 1, 0.95, 4]]);
    expect(e.rows.map((r) => r.name)).toEqual(["policy (start)"]);
    expect(e.probeError).toBeNull();
    const row = e.rows[0]!, want = builtin.evaluation!.rows[0]!;
    expect(row.decodings!.map((d) => d.answers)).toEqual([6, 24]);
    expect(row.counts.mentions).toBeGreaterThan(0);
    expect(row.decodings).toEqual(want.decodings!);
    expect(row.probes).toEqual(want.probes!);
    expect(e.examples.map((x) => x.answers)).toEqual(builtin.evaluation!.examples.map((x) => x.answers));
  }, 240_000);

  test("dpoTrain refuses the imported policy in one line naming models.policy and why", async () => {
    const { report } = await runYaml("train", trainYaml(`{ path: ./policy-hf, format: hf-onnx-vlm }`));
    expect(report.status).toBe("failed");
    const msg = String(report.error);
    expect(msg).not.toContain("\n");
    expect(msg).toContain("models.policy: an hf-onnx-vlm policy cannot be trained here (training an imported decoder is not supported");
    expect(msg).toContain("format: clipflow");
  }, 120_000);

  test("refLogps with the exported folder gives the builtin policy's reference log-probs", async () => {
    const runScore = async (name: string, policy: string) => {
      const { report, outDir } = await runYaml(name, scoreYaml(policy));
      return { status: String(report.status), error: report.error, rows: jsonlRows(join(outDir, "pairs.jsonl")) };
    };
    const hf = await runScore("score-hf", `{ path: ./policy-hf, format: hf-onnx-vlm }`);
    const builtin = await runScore("score-builtin", `{ builtin: shapes-lvlm }`);
    expect([hf.status, hf.error]).toEqual(["completed", null]);
    expect(builtin.rows.length).toBeGreaterThan(0);
    expect(hf.rows.map((r) => [r.image_id, r.chosen, r.rejected])).toEqual(builtin.rows.map((r) => [r.image_id, r.chosen, r.rejected]));
    for (const [i, r] of hf.rows.entries()) {
      const b = builtin.rows[i]!;
      for (const k of ["ref_logp_chosen", "ref_logp_rejected"]) {
        expect(typeof r[k]).toBe("number");
        expect(Math.abs((r[k] as number) - (b[k] as number))).toBeLessThan(1e-4 * Math.max(1, Math.abs(b[k] as number)));
      }
    }
  }, 180_000);
});
