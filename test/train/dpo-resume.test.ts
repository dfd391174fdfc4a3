/**
 * Resume keyed by what was trained (issue 17 §1, §6): the upstream may deliver pairs in another
 * order after a restart (parallel stages complete out of order), and the resumed run must still
 * train every pair exactly once; config changes, torn metrics lines, corrupt checkpoints and
 * leftover temp files are handled with a message.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildRefPairs } from "../../src/arrow/build.ts";
import { ParamStore } from "../../src/graph/params.ts";
import { CheckpointError, checkpointName, listCheckpoints } from "../../src/train/checkpoint.ts";
import { ConfigError } from "../../src/util/errors.ts";
import type { PairRecord } from "../../src/train/dpo-batch.ts";
import { checkResumeConfig, DpoResumeConfigError, DpoTrainer, pairKey, type DpoTrainerOptions, type DpoTrainSummary } from "../../src/train/dpo-trainer.ts";
import { readMetricsLog, type MetricsLine } from "../../src/train/metrics-log.ts";
import { imagePixels, preferenceSet, tinyPolicy } from "./dpo-fixtures.ts";

const tmp = mkdtempSync(join(tmpdir(), "dpo-resume-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function batches(pairs: readonly PairRecord[], per: number) {
  const out = [];
  for (let i = 0; i < pairs.length; i += per) {
    out.push(buildRefPairs(pairs.slice(i, i + per).map((p) => ({
      image_id: p.imageId, prompt: p.prompt, chosen: p.chosen, rejected: p.rejected,
      chosen_score: 30, rejected_score: 25, margin: 5, ref_logp_chosen: p.refChosen, ref_logp_rejected: p.refRejected,
    }))));
  }
  return out;
}

// 8 pairs, 2 per step, 2 epochs: 4 streaming steps, then 4 replay steps.
const base = (log: string[] = []): Omit<DpoTrainerOptions, "policy"> => ({
  loss: { beta: 0.5 }, lr: 3e-3, warmup: 1, schedule: "cosine", totalSteps: 8, batchSize: 2, epochs: 2,
  checkpointEvery: 2, engine: "inline", seed: 3, pixels: { get: (id: string) => imagePixels(id) }, log: (m) => log.push(m),
});

async function runAll(opts: DpoTrainerOptions, pairs: readonly PairRecord[], per: number): Promise<{ summary: DpoTrainSummary; trainer: DpoTrainer }> {
  const t = await DpoTrainer.create(opts);
  for (const b of batches(pairs, per)) await t.addPairs(b);
  return { summary: await t.finish(), trainer: t };
}

/** Runs until the step after `killAfter` starts its bookkeeping, then "dies" (no finish, no further checkpoint). */
async function runKilled(opts: DpoTrainerOptions, pairs: readonly PairRecord[], per: number, dieAt: number): Promise<void> {
  const t = await DpoTrainer.create({ ...opts, onStep: (l: MetricsLine) => { if (l.step === dieAt) throw new Error("killed"); } });
  let died: unknown;
  try {
    for (const b of batches(pairs, per)) await t.addPairs(b);
    await t.finish();
  } catch (e) {
    died = e;
  }
  expect((died as Error).message).toBe("killed");
  await t.close();
}

function weightsOf(dir: string) {
  return ParamStore.load(join(dir, "model.safetensors"));
}

describe("resume keyed by pair ids", () => {
  test("the resumed run gets the upstream in another order: it skips exactly the taken pairs, and final weights and metrics equal the uninterrupted run", async () => {
    const pairs = await preferenceSet(tinyPolicy(7));
    const full = await runAll({ ...base(), policy: tinyPolicy(7), checkpointDir: join(tmp, "full"), metricsPath: join(tmp, "full", "m.jsonl") }, pairs, 3);
    expect(full.summary.steps).toBe(8);

    // killed after checkpoint 2 (pairs 0-3 taken), while step 3 (pairs 4, 5) runs
    const dir = join(tmp, "perm");
    const metricsPath = join(dir, "m.jsonl");
    await runKilled({ ...base(), policy: tinyPolicy(7), checkpointDir: dir, metricsPath }, pairs, 3, 3);
    expect(listCheckpoints(dir).map((c) => c.step)).toEqual([2]);
    const state = JSON.parse(readFileSync(join(dir, checkpointName(2), "state.json"), "utf8"));
    expect(state.format).toBe(2);
    expect(Buffer.from(state.consumedKeys, "base64").byteLength).toBe(4 * 8); // 8 bytes per taken pair

    // the restarted upstream delivers the taken pairs 0-3 interleaved with the rest, in another order;
    // a count-based skip ("first 4") would skip 4, 2, 5, 0 and train 3 and 1 twice.
    const permuted = [4, 2, 5, 0, 6, 3, 1, 7].map((i) => pairs[i]!);
    const log: string[] = [];
    const resumed = await runAll({ ...base(log), policy: tinyPolicy(99), checkpointDir: dir, metricsPath }, permuted, 2);
    expect(resumed.summary.resumedFrom).toBe(join(dir, checkpointName(2)));
    expect(resumed.summary.skippedOnResume).toBe(4);
    expect(resumed.summary.pairsConsumed).toBe(8);
    expect(log).toContain(`dpoTrain: resumed from step 2 (${join(dir, checkpointName(2))}; 4 stream pairs already taken will be skipped)`);
    const m = await readMetricsLog(metricsPath);
    expect(m).toEqual(await readMetricsLog(join(tmp, "full", "m.jsonl")));
    expect(m.map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const a = await weightsOf(join(tmp, "full", checkpointName(8)));
    const b = await weightsOf(join(dir, checkpointName(8)));
    for (const n of a.store.names()) expect(b.store.require(n).data).toEqual(a.store.require(n).data);
  }, 60_000);

  test("any permutation: every pair is taken exactly once across the killed and the resumed run (duplicates count as a multiset)", async () => {
    const pairs = await preferenceSet(tinyPolicy(7));
    const withDup = [...pairs, pairs[1]!]; // the same pair twice in the stream: trained twice, skipped twice
    const dir = join(tmp, "multiset");
    await runKilled({ ...base(), epochs: 1, policy: tinyPolicy(7), checkpointDir: dir }, withDup, 3, 3); // taken: 0,1,2,3
    const reversed = [...withDup].reverse();
    const log: string[] = [];
    const { summary } = await runAll({ ...base(log), epochs: 1, policy: tinyPolicy(7), checkpointDir: dir }, reversed, 4);
    expect(summary.skippedOnResume).toBe(4);
    expect(summary.pairsConsumed).toBe(9);
    expect(summary.steps).toBe(5); // ceil(9 / 2)
    const state = JSON.parse(readFileSync(join(dir, checkpointName(5), "state.json"), "utf8"));
    const keys = new BigUint64Array(Uint8Array.from(Buffer.from(state.consumedKeys, "base64")).buffer);
    const expected = BigUint64Array.from(withDup.map(pairKey)).sort();
    expect([...keys]).toEqual([...expected]);
    expect(log.some((l) => l.includes("did not arrive again"))).toBe(false);
  }, 60_000);

  test("pairKey: same four strings, same key; any field changed (or moved across the separator), another key", () => {
    const p = { imageId: "a", prompt: "b", chosen: "c", rejected: "d" };
    expect(pairKey(p)).toBe(pairKey({ ...p }));
    const others = [{ ...p, imageId: "x" }, { ...p, prompt: "x" }, { ...p, chosen: "x" }, { ...p, rejected: "x" }, { ...p, imageId: "ab", prompt: "" }];
    expect(new Set([p, ...others].map(pairKey)).size).toBe(6);
  });
});

describe("resume edge cases", () => {
  test("a changed training config is refused naming the keys that differ; allowConfigChange resumes and records them", async () => {
    const pairs = await preferenceSet(tinyPolicy(7));
    const dir = join(tmp, "cfg");
    await runKilled({ ...base(), policy: tinyPolicy(7), checkpointDir: dir }, pairs, 4, 3);
    let err: unknown;
    try {
      await DpoTrainer.create({ ...base(), lr: 1e-3, batchSize: 4, checkpointEvery: 5, policy: tinyPolicy(7), checkpointDir: dir });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DpoResumeConfigError);
    // checkpointEvery is not training-relevant: not listed
    expect((err as DpoResumeConfigError).differences).toEqual(["batchSize: 2 -> 4", "lr: 0.003 -> 0.001"]);
    expect((err as Error).message).toContain(`dpoTrain: checkpoint ${join(dir, checkpointName(2))} was trained with another configuration (batchSize: 2 -> 4; lr: 0.003 -> 0.001)`);
    // a configuration error (exit 2), and the set-up preflight finds the same differences without a trainer
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).exitCode).toBe(2);
    const changed = { ...base(), lr: 1e-3, batchSize: 4, policy: tinyPolicy(7), checkpointDir: dir };
    let pre: unknown;
    try {
      checkResumeConfig(changed);
    } catch (e) {
      pre = e;
    }
    expect(pre).toBeInstanceOf(DpoResumeConfigError);
    expect((pre as Error).message).toBe((err as Error).message);
    expect(checkResumeConfig({ ...changed, allowConfigChange: true })).toEqual(["batchSize: 2 -> 4", "lr: 0.003 -> 0.001"]);
    expect(checkResumeConfig({ ...changed, resume: false })).toEqual([]);
    expect(checkResumeConfig({ ...base(), policy: tinyPolicy(7), checkpointDir: dir })).toEqual([]);
    const log: string[] = [];
    const { summary } = await runAll({ ...base(log), lr: 1e-3, allowConfigChange: true, policy: tinyPolicy(7), checkpointDir: dir }, pairs, 4);
    expect(summary.configChanges).toEqual(["lr: 0.003 -> 0.001"]);
    expect(log).toContain("dpoTrain: resuming with a changed configuration (allowed): lr: 0.003 -> 0.001");
    expect(summary.metrics.at(-1)!.learning_rate).toBeLessThan(1e-3);
    // the new checkpoints carry the new config: resuming again with lr 1e-3 is accepted silently
    const again = await DpoTrainer.create({ ...base(), lr: 1e-3, policy: tinyPolicy(7), checkpointDir: dir });
    await again.close();
  }, 60_000);

  test("torn last metrics line dropped with a message; corrupt latest checkpoint falls back to the previous one; temp files cleaned", async () => {
    const pairs = await preferenceSet(tinyPolicy(7));
    const ref = join(tmp, "edge-ref");
    const full = await runAll({ ...base(), policy: tinyPolicy(7), checkpointDir: ref, metricsPath: join(ref, "m.jsonl") }, pairs, 3);
    const dir = join(tmp, "edge");
    const metricsPath = join(dir, "m.jsonl");
    await runKilled({ ...base(), policy: tinyPolicy(7), checkpointDir: dir, metricsPath, keepCheckpoints: 3 }, pairs, 3, 7); // checkpoints 2, 4, 6
    expect(listCheckpoints(dir).map((c) => c.step)).toEqual([2, 4, 6]);
    // kill -9 artefacts: a torn metrics line, a half-written `latest`, a temp checkpoint dir, a temp pairs file of a dead process
    writeFileSync(metricsPath, readFileSync(metricsPath, "utf8") + '{"step":8,"epo');
    writeFileSync(join(dir, "latest.tmp-999999999-1"), "step-0");
    writeFileSync(join(dir, ".pairs.parquet.tmp-999999999-2"), "PAR1");
    rmSync(join(dir, ".tmp-step-000008-1"), { recursive: true, force: true });
    // the newest checkpoint is corrupt (model file truncated)
    const model = join(dir, checkpointName(6), "model.safetensors");
    writeFileSync(model, readFileSync(model).subarray(0, 100));
    const log: string[] = [];
    // the set-up preflight reads checkpoint 6's state (its state.json is intact): same config, no complaint
    expect(checkResumeConfig({ ...base(), policy: tinyPolicy(7), checkpointDir: dir })).toEqual([]);
    const { summary, trainer } = await runAll({ ...base(log), policy: tinyPolicy(7), checkpointDir: dir, metricsPath }, pairs, 3);
    expect(summary.resumedFrom).toBe(join(dir, checkpointName(4)));
    // what the run report records: the checkpoint actually loaded, not `latest`
    expect(trainer.resumeInfo()).toEqual({ resumedFrom: join(dir, checkpointName(4)), configChanges: [], skippedOnResume: 8 });
    expect(summary.skippedOnResume).toBe(8);
    expect(log.some((l) => l.startsWith(`dpoTrain: checkpoint ${join(dir, checkpointName(6))} is unusable (`) && l.endsWith("; falling back to the previous complete checkpoint"))).toBe(true);
    expect(log).toContain(`dpoTrain: removed 2 temp file(s) left by an interrupted run in ${dir}: .pairs.parquet.tmp-999999999-2, latest.tmp-999999999-1`);
    expect(log.some((l) => l.startsWith(`dpoTrain: ${metricsPath}:8: dropped a torn last line`))).toBe(true);
    expect(log).toContain(`dpoTrain: resumed from step 4 (${join(dir, checkpointName(4))}; 8 stream pairs already taken will be skipped)`);
    expect(readdirSync(dir).filter((n) => n.includes(".tmp-"))).toEqual([]);
    expect(await readMetricsLog(metricsPath)).toEqual(summary.metrics);
    expect(summary.metrics).toEqual(full.summary.metrics);
    // a torn line in the middle is not a torn tail: still an error naming file and line
    const bad = join(tmp, "bad.jsonl");
    writeFileSync(bad, '{"step":1}\n{"st\n{"step":3}\n');
    await expect(readMetricsLog(bad, { onTornTail: () => {} })).rejects.toThrow(`${bad}:2: not valid JSON`);
  }, 60_000);

  test("every checkpoint corrupt: resume fails naming each one, before any training", async () => {
    const pairs = await preferenceSet(tinyPolicy(7));
    const dir = join(tmp, "allbad");
    await runKilled({ ...base(), policy: tinyPolicy(7), checkpointDir: dir }, pairs, 3, 5); // checkpoints 2, 4
    for (const c of listCheckpoints(dir)) writeFileSync(join(dir, c.name, "state.json"), "{");
    const log: string[] = [];
    await expect(DpoTrainer.create({ ...base(log), policy: tinyPolicy(7), checkpointDir: dir })).rejects.toThrow(
      `dpoTrain: no usable checkpoint under ${dir} (${join(dir, checkpointName(4), "state.json")}`,
    );
    await expect(DpoTrainer.create({ ...base(), policy: tinyPolicy(7), checkpointDir: dir })).rejects.toBeInstanceOf(CheckpointError);
    expect(log.filter((l) => l.includes("is unusable"))).toHaveLength(2);
    expect(existsSync(join(dir, checkpointName(4)))).toBe(true); // nothing deleted
  }, 60_000);
});
