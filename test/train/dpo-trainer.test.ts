import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildRefPairs } from "../../src/arrow/build.ts";
import { loadLvlm } from "../../src/models/lvlm-io.ts";
import { buildDpoBatch, type PairRecord } from "../../src/train/dpo-batch.ts";
import { DpoEngine, type DpoEngineConfig } from "../../src/train/dpo-engine.ts";
import { WorkerDpoEngine } from "../../src/train/dpo-engine-worker.ts";
import type { DpoLossConfig } from "../../src/train/dpo-loss-config.ts";
import { dpoLossReference } from "../../src/train/losses-reference.ts";
import { DpoTrainer } from "../../src/train/dpo-trainer.ts";
import { readMetricsLog } from "../../src/train/metrics-log.ts";
import { IMG, imagePixels, preferenceSet, tinyPolicy } from "./dpo-fixtures.ts";

const tmp = mkdtempSync(join(tmpdir(), "dpo-trainer-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const lookup = { get: (id: string) => imagePixels(id) };

function engineConfig(policy: ReturnType<typeof tinyPolicy>, loss: DpoLossConfig, extra: Partial<DpoEngineConfig> = {}): DpoEngineConfig {
  return { lvlm: policy.cfg, loss, schedule: { kind: "constant", lr: 1e-3 }, maxGradNorm: 1, trainable: policy.store.trainableNames(), ...extra };
}

/** Arrow pairs batches (refPairs schema) of `pairs`, `per` rows each. */
function pairBatches(pairs: readonly PairRecord[], per: number) {
  const out = [];
  for (let i = 0; i < pairs.length; i += per) {
    out.push(
      buildRefPairs(
        pairs.slice(i, i + per).map((p) => ({
          image_id: p.imageId, prompt: p.prompt, chosen: p.chosen, rejected: p.rejected,
          chosen_score: 30, rejected_score: 25, margin: 5, ref_logp_chosen: p.refChosen, ref_logp_rejected: p.refRejected,
        })),
      ),
    );
  }
  return out;
}

describe("DPO step graph", () => {
  test("one forward over the concatenated batch gives each answer's unbatched log-prob, and the reference loss and metrics", async () => {
    const policy = tinyPolicy(11);
    const ref = tinyPolicy(7); // a different reference, so rewards are not zero
    const pairs = (await preferenceSet(ref)).slice(0, 5);
    // unbatched policy log-probs, one sequence per call
    const single = async (imageId: string, prompt: string, answer: string) =>
      (await policy.sequenceLogps(imagePixels(imageId), [policy.scoredText(prompt, answer)])).logps[0]!;
    const pc: number[] = [], pr: number[] = [], nc: number[] = [], nr: number[] = [];
    for (const p of pairs) {
      pc.push(await single(p.imageId, p.prompt, p.chosen));
      pr.push(await single(p.imageId, p.prompt, p.rejected));
      nc.push(policy.scoredText(p.prompt, p.chosen).answerMask.reduce((a, b) => a + b, 0));
      nr.push(policy.scoredText(p.prompt, p.rejected).answerMask.reduce((a, b) => a + b, 0));
    }
    const losses: DpoLossConfig[] = [
      { beta: 0.1 },
      { beta: 0.5, terms: [{ type: "sigmoid" }, { type: "sft", weight: 0.3 }], labelSmoothing: 0.1 },
      { beta: 0.2, terms: [{ type: "ipo" }] },
      { beta: 0.3, terms: [{ type: "hinge", weight: 2 }, { type: "robust", weight: 0.5 }], labelSmoothing: 0.2 },
    ];
    for (const loss of losses) {
      // lr 0: the step leaves the weights alone, so every config sees the same policy
      const engine = await DpoEngine.create(engineConfig(policy, loss, { schedule: { kind: "constant", lr: 0 } }), policy.store);
      const m = await engine.step([buildDpoBatch(pairs, policy, imagePixels)]);
      for (let i = 0; i < pairs.length; i++) {
        expect(Math.abs(m.policyChosen[i]! - pc[i]!)).toBeLessThan(2e-4);
        expect(Math.abs(m.policyRejected[i]! - pr[i]!)).toBeLessThan(2e-4);
      }
      const want = dpoLossReference(
        { policyChosen: pc, policyRejected: pr, refChosen: pairs.map((p) => p.refChosen), refRejected: pairs.map((p) => p.refRejected), chosenTokens: nc, rejectedTokens: nr },
        loss,
      );
      expect(Math.abs(m.loss - want.loss)).toBeLessThan(1e-4 * Math.max(1, Math.abs(want.loss)));
      for (const [k, v] of Object.entries(want.metrics)) expect(Math.abs(m[k as keyof typeof want.metrics] - v)).toBeLessThan(1e-4 * Math.max(1, Math.abs(v)));
      expect(m.pairs).toBe(5);
      expect(m.tokens).toBe(nc.reduce((a, b) => a + b) + nr.reduce((a, b) => a + b));
    }
  });

  test("gradient accumulation over two micro-batches updates like one batch of both; frozen vision stays put", async () => {
    const ref = tinyPolicy(7);
    const pairs = await preferenceSet(ref);
    const a = tinyPolicy(7), b = tinyPolicy(7);
    const visionBefore = a.store.require("vision.patch.w").data.slice();
    const ea = await DpoEngine.create(engineConfig(a, { beta: 0.1 }), a.store);
    const eb = await DpoEngine.create(engineConfig(b, { beta: 0.1 }), b.store);
    // two steps each, so the second runs on weights moved by the first
    for (let s = 0; s < 2; s++) {
      const ma = await ea.step([buildDpoBatch(pairs, a, imagePixels)]);
      const mb = await eb.step([buildDpoBatch(pairs.slice(0, 3), b, imagePixels), buildDpoBatch(pairs.slice(3), b, imagePixels)]);
      expect(Math.abs(ma.loss - mb.loss)).toBeLessThan(1e-5);
      expect(Math.abs(ma.grad_norm - mb.grad_norm)).toBeLessThan(1e-5 * ma.grad_norm);
      expect(Math.abs(ma["rewards/accuracies"] - mb["rewards/accuracies"])).toBeLessThan(1e-6);
    }
    let maxd = 0;
    for (const n of a.store.trainableNames()) {
      const x = a.store.require(n).data, y = b.store.require(n).data;
      for (let i = 0; i < x.length; i++) maxd = Math.max(maxd, Math.abs(x[i]! - y[i]!));
    }
    // Adam divides by √v: a gradient of ~0 amplifies float noise, so compare against the step size (lr 1e-3)
    expect(maxd).toBeLessThan(5e-5);
    expect(a.store.require("vision.patch.w").data).toEqual(visionBefore);
    expect(a.store.trainableNames().some((n) => n.startsWith("vision."))).toBe(false);
  });

  test("the worker engine (weights resident in the worker) steps bit-for-bit like the inline engine", async () => {
    const ref = tinyPolicy(7);
    const pairs = await preferenceSet(ref);
    const a = tinyPolicy(7), b = tinyPolicy(7);
    const ea = await DpoEngine.create(engineConfig(a, { beta: 0.1 }), a.store);
    const eb = await WorkerDpoEngine.create(engineConfig(b, { beta: 0.1 }), b.store);
    try {
      for (let s = 0; s < 3; s++) {
        const ma = await ea.step([buildDpoBatch(pairs, a, imagePixels)]);
        const mb = await eb.step([buildDpoBatch(pairs, b, imagePixels)]);
        expect(mb.loss).toBe(ma.loss);
        expect(mb.grad_norm).toBe(ma.grad_norm);
      }
      expect(await eb.stepCount()).toBe(3);
      const w = await eb.weights();
      for (const n of a.store.names()) expect(w[n]!.data).toEqual(a.store.require(n).data);
      // the main thread's copy was not touched by the worker's training
      expect(b.store.require("lm.head.w").data).toEqual(tinyPolicy(7).store.require("lm.head.w").data);
      // state written by the worker restores into an inline engine: the next step matches exactly
      const dir = join(tmp, "worker-state");
      mkdirSync(dir, { recursive: true });
      await eb.saveState(dir);
      const c = tinyPolicy(99);
      const ec = await DpoEngine.create(engineConfig(c, { beta: 0.1 }), c.store);
      await ec.loadState(dir);
      expect(await ec.stepCount()).toBe(3);
      const [ma, mc] = [await ea.step([buildDpoBatch(pairs, a, imagePixels)]), await ec.step([buildDpoBatch(pairs, c, imagePixels)])];
      expect(mc.loss).toBe(ma.loss);
      expect(mc.step).toBe(4);
    } finally {
      await eb.close();
    }
  });
});

describe("DpoTrainer", () => {
  test("on a fixed preference set rewards/accuracies reaches >= 0.9, the log-prob margin grows, and the exported policy reloads", async () => {
    const ref = tinyPolicy(7);
    const pairs = await preferenceSet(ref);
    const policy = tinyPolicy(7);
    const metricsPath = join(tmp, "learn", "metrics.jsonl");
    const exportDir = join(tmp, "learn", "policy");
    const trainer = await DpoTrainer.create({
      policy, pixels: lookup, loss: { beta: 0.5 }, lr: 5e-3, warmup: 2, schedule: "cosine", totalSteps: 40,
      batchSize: 4, epochs: 20, engine: "inline", metricsPath, exportDir,
    });
    for (const b of pairBatches(pairs, 3)) await trainer.addPairs(b);
    const summary = await trainer.finish();
    expect(summary.steps).toBe(40); // 8 pairs / 4 per step × 20 epochs
    const lines = summary.metrics;
    expect(lines.map((l) => l.step)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(lines[0]!.learning_rate).toBeCloseTo(2.5e-3, 9); // warmup 1/2
    expect(lines[1]!.learning_rate).toBeCloseTo(5e-3, 9);
    expect(lines.at(-1)!.learning_rate).toBeLessThan(1e-4); // cosine to 0
    const last4 = lines.slice(-4);
    expect(Math.min(...last4.map((l) => l["rewards/accuracies"]))).toBeGreaterThanOrEqual(0.9);
    const margin = (l: (typeof lines)[number]) => l["logps/chosen"] - l["logps/rejected"];
    expect(margin(lines.at(-1)!) - margin(lines[0]!)).toBeGreaterThan(1);
    expect(lines.at(-1)!["rewards/margins"]).toBeGreaterThan(0.5);
    // metrics.jsonl holds the same lines; the Arrow metrics batch too
    expect(await readMetricsLog(metricsPath)).toEqual(lines);
    const arrow = trainer.metrics.toArrow();
    expect(arrow.numRows).toBe(40);
    expect(arrow.getChild("rewards_accuracy")!.get(39)).toBe(lines[39]!["rewards/accuracies"]);
    expect(arrow.getChild("lr")!.get(0)).toBe(lines[0]!.learning_rate);
    // the export reloads, and the reloaded policy prefers every chosen answer by more than the reference did
    const re = await loadLvlm(exportDir);
    for (const p of pairs) {
      const px = new Float32Array(2 * IMG);
      px.set(imagePixels(p.imageId), 0);
      px.set(imagePixels(p.imageId), IMG);
      const { logps } = await re.sequenceLogps(px, [re.scoredText(p.prompt, p.chosen), re.scoredText(p.prompt, p.rejected)]);
      expect(logps[0]! - logps[1]!).toBeGreaterThan(p.refChosen - p.refRejected);
    }
    expect(re.store.trainableNames()).toEqual(policy.store.trainableNames());
  });

  test("a pair whose image is missing is rejected by row (or throws naming it without a reject callback)", async () => {
    const ref = tinyPolicy(7);
    const pairs = (await preferenceSet(ref)).slice(0, 4);
    const policy = tinyPolicy(7);
    const only = { get: (id: string) => (id === "img0" ? imagePixels(id) : undefined) };
    const t = await DpoTrainer.create({ policy, pixels: only, loss: { beta: 0.1 }, lr: 1e-3, schedule: "constant", batchSize: 2, engine: "inline" });
    const rejected: [number, string][] = [];
    await t.addPairs(pairBatches(pairs, 4)[0]!, (row, reason) => rejected.push([row, reason]));
    expect(rejected.map((r) => r[0])).toEqual([1, 2, 3]);
    expect(rejected[0]![1]).toContain("image 'img1' is not in the pixel cache");
    await expect(t.addPairs(pairBatches(pairs, 4)[0]!)).rejects.toThrow("dpoTrain: pair 1 (image 'img1')");
    await t.close();
  });
});
