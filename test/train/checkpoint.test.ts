import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildRefPairs } from "../../src/arrow/build.ts";
import { ParamStore } from "../../src/graph/params.ts";
import { checkpointName, latestCheckpoint, listCheckpoints, writeCheckpoint } from "../../src/train/checkpoint.ts";
import type { PairRecord } from "../../src/train/dpo-batch.ts";
import { DpoTrainer, DpoTrainingStopped, type DpoTrainerOptions } from "../../src/train/dpo-trainer.ts";
import { readMetricsLog } from "../../src/train/metrics-log.ts";
import { imagePixels, preferenceSet, tinyPolicy } from "./dpo-fixtures.ts";

const tmp = mkdtempSync(join(tmpdir(), "dpo-ckpt-"));
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

describe("checkpoint files", () => {
  test("written into a temp dir, renamed into place, 'latest' updated, older ones pruned, stale temps removed", async () => {
    const root = join(tmp, "layout");
    mkdirSync(join(root, ".tmp-step-000009-1"), { recursive: true }); // a crashed earlier write
    for (const step of [1, 2, 3]) {
      const dir = await writeCheckpoint(root, step, async (d) => writeFileSync(join(d, "w.bin"), String(step)), { step }, { keep: 2 });
      expect(dir).toBe(join(root, checkpointName(step)));
    }
    expect(readdirSync(root).sort()).toEqual(["latest", "step-000002", "step-000003"]);
    expect(readFileSync(join(root, "latest"), "utf8").trim()).toBe("step-000003");
    const l = await latestCheckpoint(root);
    expect(l).toEqual({ dir: join(root, "step-000003"), step: 3, state: { step: 3 } });
    expect(readFileSync(join(l!.dir, "w.bin"), "utf8")).toBe("3");
    // a failing payload leaves the previous checkpoint and 'latest' as they were
    await expect(writeCheckpoint(root, 4, async () => { throw new Error("disk full"); }, { step: 4 })).rejects.toThrow("writing checkpoint step-000004 under");
    expect(listCheckpoints(root).map((c) => c.step)).toEqual([2, 3]);
    expect((await latestCheckpoint(root))!.step).toBe(3);
    expect(readdirSync(root).some((e) => e.startsWith(".tmp-"))).toBe(false);
    expect(await latestCheckpoint(join(tmp, "nothing-here"))).toBeUndefined();
  });
});

describe("exact resume", () => {
  // 8 pairs in batches of 3, 2 pairs per step: 4 streaming steps, then 2 replay epochs of 4 steps
  const common = (policySeed: number, engine: "inline" | "worker" = "inline") => ({
    loss: { beta: 0.5 }, lr: 3e-3, warmup: 2, schedule: "cosine" as const, totalSteps: 12,
    batchSize: 2, epochs: 3, checkpointEvery: 1, engine, seed: 5, policy: tinyPolicy(policySeed),
    pixels: { get: (id: string) => imagePixels(id) },
  });

  async function run(opts: DpoTrainerOptions, pairs: PairRecord[]): Promise<{ losses: Map<number, number>; trainer: DpoTrainer }> {
    const losses = new Map<number, number>();
    const t = await DpoTrainer.create({ ...opts, onStep: (l) => losses.set(l.step, l.loss) });
    for (const b of batches(pairs, 3)) await t.addPairs(b);
    await t.finish();
    return { losses, trainer: t };
  }

  for (const [k, engine] of [[3, "inline"], [6, "inline"], [5, "worker"]] as const) {
    test(`kill after step ${k} (${k <= 4 ? "mid-stream" : "in a replay epoch"}, ${engine} engine), resume: every later step's loss equals the uninterrupted run exactly`, async () => {
      const pairs = await preferenceSet(tinyPolicy(7));
      // the reference run is inline (the worker engine steps bit-for-bit like it: dpo-trainer.test.ts)
      const full = await run({ ...common(7), checkpointDir: join(tmp, `full-${k}`) }, pairs);
      expect([...full.losses.keys()]).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));

      // the killed run: dies while computing step k+1 (after checkpoint k, before checkpoint k+1)
      const dir = join(tmp, `killed-${k}`);
      const metricsPath = join(dir, "metrics.jsonl");
      const killed = await DpoTrainer.create({
        ...common(7, engine), checkpointDir: dir, metricsPath,
        onStep: (l) => { if (l.step === k + 1) throw new Error("killed"); },
      });
      // try/catch, not expect().rejects: under bun test that await does not deliver worker messages
      let died: unknown;
      try {
        for (const b of batches(pairs, 3)) await killed.addPairs(b);
        await killed.finish();
      } catch (e) {
        died = e;
      }
      expect((died as Error).message).toBe("killed");
      await killed.close();
      expect((await latestCheckpoint(dir))!.step).toBe(k);
      expect((await readMetricsLog(metricsPath)).map((l) => l.step)).toEqual(Array.from({ length: k + 1 }, (_, i) => i + 1));

      // a fresh process: fresh (differently initialised!) policy object, same stream from the start
      const resumed = await run({ ...common(99, engine), checkpointDir: dir, metricsPath }, pairs);
      expect(resumed.trainer.resumedFrom).toBe(join(dir, checkpointName(k)));
      expect([...resumed.losses.keys()]).toEqual(Array.from({ length: 12 - k }, (_, i) => k + 1 + i));
      for (const [step, loss] of resumed.losses) expect(loss).toBe(full.losses.get(step)!);
      // metrics.jsonl: the interrupted run's step k+1 line was replaced, one line per step
      expect((await readMetricsLog(metricsPath)).map((l) => l.step)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
      // the final weights agree too
      const a = await ParamStore.load(join(tmp, `full-${k}`, checkpointName(12), "model.safetensors"));
      const b = await ParamStore.load(join(dir, checkpointName(12), "model.safetensors"));
      for (const n of a.store.names()) expect(b.store.require(n).data).toEqual(a.store.require(n).data);
    });
  }
});

describe("non-finite loss", () => {
  test("a NaN loss stops training with a clear message; the last good checkpoint is kept and nothing later is written", async () => {
    const pairs = await preferenceSet(tinyPolicy(7));
    pairs[5] = { ...pairs[5]!, refRejected: Number.NaN }; // pair 5 lands in step 3 (2 pairs per step)
    const dir = join(tmp, "nan");
    const t = await DpoTrainer.create({
      policy: tinyPolicy(7), pixels: { get: (id: string) => imagePixels(id) }, loss: { beta: 0.1 }, lr: 1e-3, schedule: "constant",
      batchSize: 2, checkpointEvery: 1, checkpointDir: dir, engine: "inline", exportDir: join(tmp, "nan-export"),
    });
    let err: unknown;
    try {
      for (const b of batches(pairs, 4)) await t.addPairs(b);
      await t.finish();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DpoTrainingStopped);
    expect((err as Error).message).toBe(`dpoTrain: stopped: non-finite loss NaN at step 3; the update was not applied; last good checkpoint kept: ${join(dir, "step-000002")}`);
    expect(t.steps).toBe(2);
    expect(listCheckpoints(dir).map((c) => c.step)).toEqual([1, 2]);
    expect((await latestCheckpoint(dir))!.step).toBe(2);
    const w = await ParamStore.load(join(dir, "step-000002", "model.safetensors"));
    for (const n of w.store.names()) expect(w.store.require(n).data.every(Number.isFinite)).toBe(true);
    await expect(t.finish()).rejects.toThrow("dpoTrain: stopped: non-finite loss");
    expect(existsSync(join(tmp, "nan-export"))).toBe(false);
  });
});
