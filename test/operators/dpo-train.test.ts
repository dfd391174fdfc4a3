import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RecordBatch } from "apache-arrow";
import { buildRefPairs } from "../../src/arrow/build.ts";
import { runFlow, StageError } from "../../src/flow/index.ts";
import type { DpoTrainSummary } from "../../src/train/dpo-trainer.ts";
import { readMetricsLog } from "../../src/train/metrics-log.ts";
import { dpoTrain } from "../../operators/dpo-train.ts";
import { imagePixels, preferenceSet, tinyPolicy } from "../train/dpo-fixtures.ts";

const tmp = mkdtempSync(join(tmpdir(), "dpo-train-op-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const images = { get: (id: string) => ({ pixels: imagePixels(id) }) };
const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await Promise.resolve();
};

describe("dpoTrain sink", () => {
  test("a slow trainer throttles the source: produced <= consumed + maxInFlight throughout; metrics per step to metrics.jsonl", async () => {
    const pairs = await preferenceSet(tinyPolicy(7));
    const maxInFlight = 3, nBatches = 12;
    let produced = 0, consumed = 0, maxAhead = 0, violations = 0;
    const check = () => {
      maxAhead = Math.max(maxAhead, produced - consumed);
      if (produced - consumed > maxInFlight) violations++;
    };
    async function* source(): AsyncGenerator<RecordBatch> {
      for (let i = 0; i < nBatches; i++) {
        const two = [pairs[(2 * i) % 8]!, pairs[(2 * i + 1) % 8]!];
        produced++;
        check();
        yield buildRefPairs(two.map((p) => ({
          image_id: p.imageId, prompt: p.prompt, chosen: p.chosen, rejected: p.rejected,
          chosen_score: 30, rejected_score: 25, margin: 5, ref_logp_chosen: p.refChosen, ref_logp_rejected: p.refRejected,
        })));
      }
    }
    let summary: DpoTrainSummary | undefined;
    const metricsPath = join(tmp, "metrics.jsonl");
    const report = await runFlow({
      source: source(),
      maxInFlight,
      handleSigint: false,
      stages: [
        dpoTrain({
          policy: tinyPolicy(7), images, loss: { beta: 0.1 }, lr: 1e-3, schedule: "constant", batchSize: 2, metricsPath,
          engine: "worker",
          onTrainer: (t) => {
            // deliberately slow: every batch also waits extra turns after its step
            const add = t.addPairs.bind(t);
            t.addPairs = async (b, r) => {
              await add(b, r);
              await turns(50);
              consumed++;
              check();
            };
          },
          onFinish: (s) => { summary = s; },
        }),
      ],
    });
    expect(produced).toBe(nBatches);
    expect(consumed).toBe(nBatches);
    expect(violations).toBe(0);
    expect(maxAhead).toBe(maxInFlight); // the source ran ahead as far as the credits allow, no further
    expect(report.credits.maxOutstanding).toBeLessThanOrEqual(maxInFlight);
    expect(summary!.steps).toBe(12);
    const lines = await readMetricsLog(metricsPath);
    expect(lines.map((l) => l.step)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    for (const l of lines) {
      for (const k of ["loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected", "grad_norm", "learning_rate"] as const) {
        expect(Number.isFinite(l[k])).toBe(true);
      }
      expect(l.learning_rate).toBe(1e-3);
    }
    expect(summary!.metrics).toEqual(lines);
    expect(report.stages.find((s) => s.stage === "dpoTrain")).toMatchObject({ rowsIn: 24, rowsOut: 24 });
  });

  test("a NaN loss fails the flow with an error naming the stage", async () => {
    const pairs = await preferenceSet(tinyPolicy(7));
    const bad = buildRefPairs(pairs.slice(0, 2).map((p, i) => ({
      image_id: p.imageId, prompt: p.prompt, chosen: p.chosen, rejected: p.rejected,
      chosen_score: 30, rejected_score: 25, margin: 5, ref_logp_chosen: i === 1 ? Number.POSITIVE_INFINITY : p.refChosen, ref_logp_rejected: p.refRejected,
    })));
    const run = runFlow({
      source: [bad],
      handleSigint: false,
      stages: [dpoTrain({ policy: tinyPolicy(7), images, loss: { beta: 0.1 }, lr: 1e-3, schedule: "constant", batchSize: 2, engine: "inline" })],
    });
    await expect(run).rejects.toBeInstanceOf(StageError);
    await expect(run).rejects.toThrow(/dpoTrain.*stopped: non-finite loss/);
  });
});

describe("dpoTrainSettings", () => {
  test("maps the stage's dpoTrain options (loss weights + sftWeight -> terms, groups -> patterns)", async () => {
    const { dpoTrainOptions, dpoTrainSettings } = await import("../../operators/dpo-train.ts");
    const c = dpoTrainOptions.parse({ model: "policy", loss: { sigmoid: 1, hinge: 0.5 }, sftWeight: 0.2, beta: 0.3, labelSmoothing: 0.1, batchSize: 4, gradAccum: 2, maxGradNorm: null, epochs: 3, trainable: ["lm"] });
    const s = dpoTrainSettings(c);
    expect(s.loss).toEqual({ beta: 0.3, terms: [{ type: "sigmoid", weight: 1 }, { type: "hinge", weight: 0.5 }, { type: "sft", weight: 0.2 }], labelSmoothing: 0.1, ipoLengthNormalise: true });
    expect(s).toMatchObject({ lr: 5e-6, batchSize: 4, gradAccum: 2, maxGradNorm: null, epochs: 3, trainable: ["lm"], schedule: "cosine", checkpointEvery: 100, replayBuffer: 4096, seed: 0 });
    // The library default keeps the SFT term the shipped pipelines use (plain DPO cut Cover 83% -> 60%).
    expect(dpoTrainSettings(dpoTrainOptions.parse({ model: "policy" })).loss.terms).toEqual([{ type: "sigmoid", weight: 1 }, { type: "sft", weight: 1 }]);
    expect(dpoTrainSettings(dpoTrainOptions.parse({ model: "policy", sftWeight: 0 })).loss.terms).toEqual([{ type: "sigmoid", weight: 1 }]);
  });
});
