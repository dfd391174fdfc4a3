/**
 * Determinism by construction, end to end through the shipped stages: shapes-world images ->
 * decode -> generateCandidates (tiny random policy on the scheduler's decoder) -> clipScore
 * (tiny random CLIP) -> filterCandidates -> pairCandidates -> write. Runs with different
 * maxInFlight, stage concurrency and randomly delayed completions (a jitter stage between every
 * pair of stages) must write byte-identical pairs files: output order is input order at every
 * stage and each row's randomness comes from its id, never from arrival order.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lastValueFrom, toArray } from "rxjs";
import type { RecordBatch } from "apache-arrow";
import { fromBatches, mapBatch, toBatches, type FlowOperator } from "../../src/flow/index.ts";
import { ImageStore } from "../../src/io/image-store.ts";
import { lvlmPresets } from "../../src/models/lvlm-config.ts";
import { LvlmModel } from "../../src/models/lvlm-model.ts";
import { clipImageConfig } from "../../src/models/preprocessor-config.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { clipScore, decode, filterCandidates, generateCandidates, pairCandidates, write, ScheduledClip } from "../../operators/index.ts";
import { shapesWorldBatches } from "../../demo/stages/index.ts";
import { worldTokenizer } from "./fixtures.ts";
import { clipPresets } from "../../src/models/clip-config.ts";
import { ClipModel } from "../../src/models/clip-model.ts";

const dir = mkdtempSync(join(tmpdir(), "clipflow-determinism-"));
const sched = new Scheduler();
afterAll(async () => {
  await sched.close();
  rmSync(dir, { recursive: true, force: true });
});

// One image size for both models (a pipeline checks this at set-up): the tiny policy's 16 px.
const ctok = worldTokenizer();
const sp = ctok.special;
const clipPreset = clipPresets.tiny(ctok.vocabSize, { bos: sp.bos, eos: sp.eos, pad: sp.pad });
const clipModel = ClipModel.create({ ...clipPreset, vision: { ...clipPreset.vision, imageSize: 16 } }, ctok, 2, clipImageConfig(16));
const clip = ScheduledClip.fromModel(sched, clipModel, "det-clip", { maxBatch: 32, maxDelayMs: 1 });
const tok = worldTokenizer();
const policy = LvlmModel.create(lvlmPresets.tiny(tok.vocabSize), tok, 3);
const decoder = sched.decoder("det-policy", policy, { maxBatch: 32, minJoin: 1 });

/** A stage that holds each batch for a pseudo-random number of macrotask turns (seeded). */
function jitter(name: string, seed: number, concurrency: number): FlowOperator {
  let x = seed;
  return mapBatch(
    name,
    async (b) => {
      x = (x * 1103515245 + 12345) >>> 0;
      for (let t = x % 7; t > 0; t--) await new Promise<void>((r) => setImmediate(r));
      return b;
    },
    { concurrency },
  );
}

async function run(tag: string, o: { maxInFlight: number; concurrency: number; jitterSeed: number }): Promise<Buffer> {
  const store = new ImageStore({ capacity: 512 });
  const path = join(dir, `${tag}.jsonl`);
  const j = (k: number) => jitter(`jitter${k}`, o.jitterSeed + k, o.concurrency);
  const size = policy.cfg.vision.imageSize; // 16 px, the CLIP's too
  const stages: FlowOperator[] = [
    decode({ preprocess: clipImageConfig(size), store, concurrency: o.concurrency }),
    j(1),
    generateCandidates({ decoder, prompts: ["describe the image .", "what is in the picture ?"], samples: 3, maxNewTokens: 6, temperature: 1.2, seed: 5, concurrency: o.concurrency }),
    j(2),
    clipScore({ clip, store }),
    j(3),
    filterCandidates({ minScore: 0, maxWords: 12 }),
    pairCandidates({ minMargin: 0.001, maxPairsPerImage: 2, maxLengthRatio: 3 }),
    write({ path, layout: "plain" }),
  ];
  let flow = fromBatches(() => shapesWorldBatches({ kind: "shapes-world", split: "dpo", count: 24, seed: 2, batchSize: 4, imageSize: 32 }), { maxInFlight: o.maxInFlight, onError: "skip" });
  for (const s of stages) flow = flow.pipe(s);
  const out: RecordBatch[] = await lastValueFrom(flow.pipe(toBatches(), toArray()));
  expect(out.reduce((a, b) => a + b.numRows, 0)).toBeGreaterThan(0);
  return readFileSync(path);
}

describe("determinism by construction", () => {
  test(
    "pairs files are byte-identical across maxInFlight, concurrency and shuffled completion timing",
    async () => {
      expect(clipModel.preprocess).toBeDefined();
      const ref = await run("ref", { maxInFlight: 1, concurrency: 1, jitterSeed: 1 });
      expect(ref.toString().split("\n").filter((l) => l !== "").length).toBeGreaterThan(10);
      for (const [k, o] of [
        { maxInFlight: 4, concurrency: 2, jitterSeed: 7 },
        { maxInFlight: 6, concurrency: 3, jitterSeed: 99 },
      ].entries()) {
        expect((await run(`v${k}`, o)).equals(ref)).toBe(true);
      }
    },
    120_000,
  );
});
