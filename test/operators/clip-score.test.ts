import { afterAll, describe, expect, test } from "bun:test";
import { buildCandidates } from "../../src/arrow/build.ts";
import type { CandidateRow } from "../../src/arrow/schemas.ts";
import { ImageStore } from "../../src/io/image-store.ts";
import { preprocessImage } from "../../src/models/image-preprocess.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { clipScore, splitSentences } from "../../operators/clip-score.ts";
import { normalizeRows, ScheduledClip } from "../../operators/scheduled-clip.ts";
import { creditsBack, png, runStages, stage, tinyClip } from "./fixtures.ts";

const model = tinyClip(2); // a seed whose random towers give positive cosines (max(cos, 0) is not always 0)
const sched = new Scheduler();
afterAll(() => sched.close());
const clip = ScheduledClip.fromModel(sched, model, "clip", { maxBatch: 16, maxDelayMs: 1 });
const E = model.embedDim;

async function storeWith(ids: string[]): Promise<ImageStore> {
  const store = new ImageStore();
  for (const [k, id] of ids.entries()) {
    const bytes = await png(40 * k, 255 - 60 * k, 30 * k);
    store.put(id, { bytes, pixels: await preprocessImage(bytes, model.preprocess) });
  }
  return store;
}

/** Unbatched reference on the model itself (main thread, no scheduler). */
async function refScore(store: ImageStore, id: string, text: string, w = 1): Promise<number> {
  const img = normalizeRows(await model.encodeImages(store.get(id)!.pixels.slice(), 1), E);
  const txt = normalizeRows(await model.encodeTexts([text]), E);
  let cos = 0;
  for (let k = 0; k < E; k++) cos += img[k]! * txt[k]!;
  return w * 100 * Math.max(cos, 0);
}

const cand = (id: string, image_id: string, text: string): CandidateRow => ({ id, image_id, prompt: "Describe the image.", text, logp: -1, n_tokens: 3 });

describe("clipScore", () => {
  test("sentence splitting on . ? !", () => {
    expect(splitSentences("There is a red circle. Is it big?Yes!  ")).toEqual(["There is a red circle.", "Is it big?", "Yes!"]);
    expect(splitSentences("no punctuation")).toEqual(["no punctuation"]);
    expect(splitSentences("...")).toEqual([]);
  });

  test("scores equal the unbatched reference; each image embedded once across batches; long texts are sentence means", async () => {
    const store = await storeWith(["a", "b", "c"]);
    const long = "There is a red circle. There is a blue square and a green star. There are two yellow hearts.";
    expect(model.tokenizer.encode(long, { maxLength: Infinity }).ids.length).toBeGreaterThan(model.contextLength);
    const b1 = buildCandidates([
      cand("a0", "a", "There is a red circle."),
      cand("a1", "a", "There is a blue square."),
      cand("b0", "b", "There is a green star."),
      cand("b1", "b", long),
      cand("a2", "a", "A picture of a star."),
    ]);
    const b2 = buildCandidates([cand("c0", "c", "There is a red circle."), cand("a3", "a", "There are two hearts.")]);
    const before = sched.stats().models["clip.image"]!.items;
    const r = await runStages([b1, b2], [clipScore({ clip, store })]);
    expect(r.batches.map((b) => b.numRows).sort()).toEqual([2, 5]); // concurrency 2: either order
    expect(sched.stats().models["clip.image"]!.items - before).toBe(3); // a, b, c: once each
    const all = r.batches.flatMap((b) => Array.from({ length: b.numRows }, (_, i) => ({
      id: String(b.getChild("id")!.get(i)), image: String(b.getChild("image_id")!.get(i)), text: String(b.getChild("text")!.get(i)),
      score: b.getChild("clip_score")!.get(i) as number, sent: Array.from((b.getChild("sentence_scores")!.get(i) as { toArray(): Float32Array }).toArray()),
    })));
    for (const row of all) {
      if (row.id === "b1") continue;
      expect(row.score).toBeCloseTo(await refScore(store, row.image, row.text), 3);
      expect(row.sent).toEqual([]);
    }
    const b1row = all.find((x) => x.id === "b1")!;
    const parts = splitSentences(long);
    const want = await Promise.all(parts.map((s) => refScore(store, "b", s)));
    expect(b1row.sent.length).toBe(3);
    b1row.sent.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 3));
    expect(b1row.score).toBeCloseTo(want.reduce((x, y) => x + y, 0) / 3, 3);
    expect(all.some((x) => x.score > 0)).toBe(true);
    expect(store.get("a")!.embedding!.length).toBe(E);
    expect(creditsBack(r.ctx)).toBe(true);
  });

  test("w scales the score; empty texts and unknown images are dead-lettered; single row and empty batches", async () => {
    const store = await storeWith(["a"]);
    const batch = buildCandidates([cand("x", "a", "There is a red circle."), cand("e", "a", "   "), cand("m", "nope", "a star")]);
    const w1 = await runStages([batch], [clipScore({ clip, store, name: "s1" })]);
    const w2 = await runStages([batch, buildCandidates([])], [clipScore({ clip, store, w: 2.5, name: "s2" })]);
    expect(w2.rows).toBe(1);
    const s1 = w1.batches[0]!.getChild("clip_score")!.get(0) as number;
    expect(w2.batches[0]!.getChild("clip_score")!.get(0) as number).toBeCloseTo(2.5 * s1, 3);
    const dead = w2.ctx.deadLetter.rows();
    expect(dead.map((d) => [d.id, d.reason.split(" (")[0]])).toEqual([["e", "empty text"], ["m", "image 'nope' is not in the image store"]]);
    const st = stage(w2.ctx, "s2");
    expect([st.rowsIn, st.rowsOut, st.deadLettered, st.filtered]).toEqual([3, 1, 2, 0]);
    expect(creditsBack(w2.ctx)).toBe(true);
  });

  test("sentences: false truncates a long text to the context (counted by the tokenizer) instead of splitting", async () => {
    const store = await storeWith(["a"]);
    const long = "There is a red circle. There is a blue square and a green star. There are two yellow hearts.";
    const t0 = model.tokenizer.truncations;
    const r = await runStages([buildCandidates([cand("l", "a", long)])], [clipScore({ clip, store, sentences: false })]);
    expect(model.tokenizer.truncations).toBeGreaterThan(t0);
    const b = r.batches[0]!;
    expect((b.getChild("sentence_scores")!.get(0) as { length: number }).length).toBe(0);
    expect(b.getChild("clip_score")!.get(0) as number).toBeCloseTo(await refScore(store, "a", long), 3); // encodeTexts truncates the same way
  });
});
