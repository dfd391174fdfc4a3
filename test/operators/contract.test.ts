/**
 * The contract every stage keeps as an RxJS operator (like RxJS's own operator specs), run on
 * each shipped stage and each flow building block through the public doors:
 *
 * 1. next/complete: outputs as expected, completion, every credit back;
 * 2. source error: an upstream error reaches the subscriber unchanged, credits back;
 * 3. callback throw: a bad input under `onError: fail` errors naming the stage;
 * 4. early unsubscribe: no value after it, every credit back (queued, running, held);
 * 5. subscribe twice: the same operator instance gives identical outputs and per-run counts.
 *
 * Synchronous stages also have virtual-time marble tests (test/flow/operate.test.ts); the model
 * stages here are async (ORT on worker threads), so these cases run on real promises.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lastValueFrom, take, toArray, type Subscription } from "rxjs";
import { Table, tableToIPC, type RecordBatch } from "apache-arrow";
import { buildCandidates, buildImages, buildPairs, buildPixels, buildRefPairs, buildScored } from "../../src/arrow/build.ts";
import type { CandidateRow, ScoredRow } from "../../src/arrow/schemas.ts";
import {
  StageError,
  consume,
  explodeRows,
  filterRows,
  fromBatches,
  mapBatch,
  rebatch,
  toBatches,
  type FlowContext,
  type FlowOperator,
} from "../../src/flow/index.ts";
import { ImageStore } from "../../src/io/image-store.ts";
import { lvlmPresets } from "../../src/models/lvlm-config.ts";
import { LvlmModel } from "../../src/models/lvlm-model.ts";
import { preprocessImage } from "../../src/models/image-preprocess.ts";
import { clipImageConfig } from "../../src/models/preprocessor-config.ts";
import { WordTokenizer } from "../../src/models/word-tokenizer.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { Rng } from "../../src/util/rng.ts";
import { clipScore, decode, dpoTrain, filterCandidates, generateCandidates, pairCandidates, refLogps, write, ScheduledClip } from "../../operators/index.ts";
import { imagePixels, preferenceSet, tinyPolicy } from "../train/dpo-fixtures.ts";
import { png, tinyClip } from "./fixtures.ts";

const tmp = mkdtempSync(join(tmpdir(), "clipflow-contract-"));
const sched = new Scheduler();
afterAll(async () => {
  await sched.close();
  rmSync(tmp, { recursive: true, force: true });
});

interface Case {
  /** A fresh operator (case 5 reuses one instance). */
  make(): FlowOperator;
  input(): Promise<RecordBatch[]> | RecordBatch[];
  /** A batch that makes the stage's callback throw (or reject a row) under onError: fail. */
  bad(): Promise<RecordBatch | RecordBatch[]> | RecordBatch | RecordBatch[];
  /** Rows expected out of `input()`. */
  rowsOut: number;
  /** A sink emits nothing. */
  sink?: boolean;
  timeout?: number;
}

const tick = () => new Promise<void>((r) => setImmediate(r));
const bytesOf = (bs: RecordBatch[]): string => (bs.length === 0 ? "" : Buffer.from(tableToIPC(new Table(bs), "stream")).toString("base64"));

function contract(name: string, c: Case): void {
  describe(`contract: ${name}`, () => {
    const t = c.timeout ?? 30_000;
    let ctx: FlowContext | undefined;
    const onContext = (x: FlowContext) => void (ctx = x);
    const runOnce = async (op: FlowOperator) => lastValueFrom(fromBatches(await c.input(), { maxInFlight: 2, onContext }).pipe(op, toBatches(), toArray()));

    test("next / complete: outputs, completion, credits back", async () => {
      const out = await runOnce(c.make());
      expect(out.reduce((a, b) => a + b.numRows, 0)).toBe(c.sink ? 0 : c.rowsOut);
      expect(ctx!.pool.outstanding).toBe(0);
    }, t);

    test("source error reaches the subscriber; credits back", async () => {
      const input = await c.input();
      async function* broken() {
        yield input[0]!;
        throw new Error("disk gone");
      }
      const e = await lastValueFrom(fromBatches(broken, { maxInFlight: 2, onContext }).pipe(c.make(), toBatches(), toArray())).then(
        () => null,
        (x: Error) => x,
      );
      expect(e?.message).toBe('stage "source": disk gone');
      for (let i = 0; i < 20 && ctx!.pool.outstanding > 0; i++) await tick();
      expect(ctx!.pool.outstanding).toBe(0);
    }, t);

    test("callback throw (bad input under fail) errors naming the stage", async () => {
      const op = c.make();
      const e = await lastValueFrom(fromBatches([await c.bad()].flat(), { maxInFlight: 2, onError: "fail", onContext }).pipe(op, toBatches(), toArray())).then(
        () => null,
        (x: Error) => x,
      );
      expect(e).toBeInstanceOf(StageError);
      expect((e as StageError).stage).toBe(op.stageName);
      expect(e!.message.includes("\n")).toBe(false);
      for (let i = 0; i < 20 && ctx!.pool.outstanding > 0; i++) await tick();
      expect(ctx!.pool.outstanding).toBe(0);
    }, t);

    test("early unsubscribe: nothing after it, every credit back", async () => {
      const input = await c.input();
      let after = 0;
      let unsubscribed = false;
      let sub: Subscription | undefined;
      const flow = fromBatches(input, { maxInFlight: 2, onContext }).pipe(c.make(), toBatches());
      if (c.sink) {
        sub = flow.subscribe(() => after++);
        await tick();
        sub.unsubscribe();
        unsubscribed = true;
      } else {
        const first = await lastValueFrom(flow.pipe(take(1)));
        expect(first.numRows).toBeGreaterThan(0);
        unsubscribed = true;
      }
      for (let i = 0; i < 50 && ctx!.pool.outstanding > 0; i++) await tick();
      expect(unsubscribed).toBe(true);
      expect(after).toBe(0);
      expect(ctx!.pool.outstanding).toBe(0);
    }, t);

    test("subscribe twice: same instance, identical outputs and per-run counts", async () => {
      const op = c.make();
      const a = await runOnce(op);
      const countsA = JSON.stringify((op as { counts?: unknown }).counts ?? null);
      const b = await runOnce(op);
      expect(bytesOf(b)).toBe(bytesOf(a));
      expect(JSON.stringify((op as { counts?: unknown }).counts ?? null)).toBe(countsA);
    }, t);
  });
}

// ---- fixtures -------------------------------------------------------------------------------
let n = 0;
const scoredRow = (image_id: string, text: string, clip_score: number): ScoredRow => ({
  id: `${image_id}/${text}`, image_id, prompt: "Describe the image.", text, logp: -1, n_tokens: 3, clip_score, sentence_scores: [],
});
const scored = () => [
  buildScored([scoredRow("i1", "a red circle", 30), scoredRow("i1", "a red star", 22), scoredRow("i1", "a blue square", 5)]),
  buildScored([scoredRow("i2", "two green stars", 28), scoredRow("i2", "two red stars", 20)]),
];
const candidatesOnly = () => buildCandidates([{ id: "x", image_id: "i9", prompt: "p", text: "t", logp: 0, n_tokens: 1 }]);
const pairRows = (ids: string[]) =>
  ids.map((image_id) => ({ image_id, prompt: "describe the image .", chosen: "a red circle .", rejected: "a blue circle .", chosen_score: 30, rejected_score: 25, margin: 5 }));

// flow building blocks
// A one-row batch is the "bad input" of the building blocks' callbacks below.
const oneRow = () => buildScored([scoredRow("i", "x", 1)]);
const throwOnOne = (b: RecordBatch) => {
  if (b.numRows === 1) throw new Error("one-row batch");
};
contract("mapBatch", {
  make: () => mapBatch("m", (b) => (throwOnOne(b), b)),
  input: scored,
  bad: oneRow,
  rowsOut: 5,
});
contract("filterRows", {
  make: () => filterRows("f", (b) => (throwOnOne(b), Array.from({ length: b.numRows }, (_, i) => (i === 2 ? 0 : 1)))),
  input: scored,
  bad: oneRow,
  rowsOut: 4,
});
contract("explodeRows", { make: () => explodeRows("e", () => Int32Array.of(2, 2, 2)), input: () => [scored()[0]!], bad: () => scored()[1]!, rowsOut: 6 });
contract("rebatch", { make: () => rebatch("r", { size: 4 }), input: scored, bad: () => [scored()[0]!, candidatesOnly()], rowsOut: 5 }); // two schemas cannot merge
contract("consume (sink)", { make: () => consume("sink", (b) => throwOnOne(b)), input: scored, bad: oneRow, rowsOut: 0, sink: true });

// shipped stages
contract("pairCandidates", { make: () => pairCandidates(), input: scored, bad: candidatesOnly, rowsOut: 2 });
contract("filterCandidates", { make: () => filterCandidates({ minScore: 10, maxWords: 3 }), input: scored, bad: candidatesOnly, rowsOut: 4 });

const pngStore = new ImageStore();
const pngs = async () => Promise.all([0, 1, 2].map((k) => png(60 * k, 200 - 50 * k, 40)));
contract("write", {
  make: () => write({ path: join(tmp, `w${n++}.jsonl`), layout: "trl", store: pngStore }),
  input: async () => {
    const bs = await pngs();
    ["a", "b", "c"].forEach((id, k) => pngStore.put(id, { bytes: bs[k]!, pixels: new Float32Array(3) }));
    return [buildPairs(pairRows(["a", "b"])), buildPairs(pairRows(["c"]))];
  },
  bad: () => buildPairs(pairRows(["not-in-store"])),
  rowsOut: 3,
});

const cfg = clipImageConfig(32);
contract("decode", {
  make: () => decode({ preprocess: cfg }),
  input: async () => {
    const bs = await pngs();
    return [buildImages(bs.slice(0, 2).map((image, k) => ({ id: `d${k}`, image, prompt: "p" }))), buildImages([{ id: "d2", image: bs[2]!, prompt: "p" }])];
  },
  bad: async () => buildImages([{ id: "bad", image: (await png(1, 1, 1)).slice(0, 50), prompt: "p" }]),
  rowsOut: 3,
});

const clipModel = tinyClip(2);
const clip = ScheduledClip.fromModel(sched, clipModel, "contract-clip", { maxBatch: 16, maxDelayMs: 1 });
const clipStore = new ImageStore();
const cand = (id: string, image_id: string, text: string): CandidateRow => ({ id, image_id, prompt: "Describe the image.", text, logp: -1, n_tokens: 3 });
contract("clipScore", {
  make: () => clipScore({ clip, store: clipStore }),
  input: async () => {
    const bs = await pngs();
    for (const [k, id] of ["s0", "s1"].entries()) clipStore.put(id, { bytes: bs[k]!, pixels: await preprocessImage(bs[k]!, clipModel.preprocess) });
    return [buildCandidates([cand("a", "s0", "a red circle"), cand("b", "s0", "a blue star")]), buildCandidates([cand("c", "s1", "two green squares")])];
  },
  bad: () => buildCandidates([cand("z", "s0", "")]), // empty text: rejected
  rowsOut: 3,
});

const tok = WordTokenizer.fromCorpus(["describe the image .", "a red circle left of a blue square .", "two green stars"]);
const lvlm = LvlmModel.create(lvlmPresets.tiny(tok.vocabSize), tok, 5);
const S = lvlm.cfg.vision.imageSize;
const decoder = sched.decoder("contract-policy", lvlm, { maxBatch: 16, minJoin: 1 });
const rng = new Rng(2);
const px = Array.from({ length: 3 }, () => Float32Array.from({ length: 3 * S * S }, () => rng.normal()));
const pixelsBatch = (ids: number[]) => buildPixels(ids.map((i) => ({ id: `g${i}`, image: new Uint8Array([1]), prompt: "describe the image .", pixels: px[i]! })), [3, S, S]);
contract("generateCandidates", {
  make: () => generateCandidates({ decoder, samples: 2, maxNewTokens: 4, temperature: 1, seed: 1 }),
  input: () => [pixelsBatch([0, 1]), pixelsBatch([2])],
  bad: () => buildImages([{ id: "nopx", image: new Uint8Array([1]), prompt: "p" }]),
  rowsOut: 6,
});

const ref = tinyPolicy(7);
const refImages = { get: (id: string) => (id === "gone" ? undefined : { pixels: imagePixels(id) }) };
contract("refLogps", {
  make: () => refLogps({ scheduler: sched, model: ref, images: refImages, modelName: `contract.ref.${n++}` }),
  input: () => [buildPairs(pairRows(["img0", "img1"])), buildPairs(pairRows(["img2"]))],
  bad: () => buildPairs(pairRows(["gone"])),
  rowsOut: 3,
});

const prefs = await preferenceSet(tinyPolicy(7));
const refPairs = (k: number[]) =>
  buildRefPairs(
    k.map((i) => {
      const p = prefs[i]!;
      return { image_id: p.imageId, prompt: p.prompt, chosen: p.chosen, rejected: p.rejected, chosen_score: 30, rejected_score: 25, margin: 5, ref_logp_chosen: p.refChosen, ref_logp_rejected: p.refRejected };
    }),
  );
contract("dpoTrain (sink)", {
  // engine "inline": with the worker engine, unsubscribing while the worker still loads ORT has
  // aborted the whole process (Napi::Error, issue 17 item 3; a src/train matter, reported).
  make: () => dpoTrain({ policy: tinyPolicy(7), images: { get: (id: string) => ({ pixels: imagePixels(id) }) }, loss: { beta: 0.1 }, lr: 1e-3, schedule: "constant", batchSize: 2, engine: "inline" }),
  input: () => [refPairs([0, 1]), refPairs([2, 3])],
  bad: () => buildPairs(pairRows(["img0"])), // no ref log-probs
  rowsOut: 0,
  sink: true,
  timeout: 60_000,
});
