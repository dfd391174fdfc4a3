import { afterAll, describe, expect, test } from "bun:test";
import { buildScored } from "../../src/arrow/build.ts";
import type { ScoredRow } from "../../src/arrow/schemas.ts";
import { ImageStore } from "../../src/io/image-store.ts";
import { preprocessImage } from "../../src/models/image-preprocess.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { countWords, filterCandidates as filter, fitCaption } from "../../operators/filter.ts";
import { normalizeRows, ScheduledClip } from "../../operators/scheduled-clip.ts";
import { creditsBack, png, runStages, stage, tinyClip } from "./fixtures.ts";

const model = tinyClip(2); // a seed where the random towers put some test images on each side of the text/no-text decision
const sched = new Scheduler();
afterAll(() => sched.close());
const clip = ScheduledClip.fromModel(sched, model, "clip", { maxBatch: 16, maxDelayMs: 1 });

let n = 0;
const row = (image_id: string, text: string, clip_score: number): ScoredRow => ({
  id: `r${n++}`, image_id, prompt: "Describe.", text, logp: -1, n_tokens: 1, clip_score, sentence_scores: [],
});
const texts = (bs: { numRows: number; getChild(n: string): { get(i: number): unknown } | null }[]) =>
  bs.flatMap((b) => Array.from({ length: b.numRows }, (_, i) => String(b.getChild("text")!.get(i))));

describe("filter", () => {
  test("word count = runs of letters/digits", () => {
    expect(countWords("There are 2 red circles, and a star!")).toBe(8);
    expect(countWords(" ... ")).toBe(0);
  });

  test("minScore, maxWords, maxTokens: kept rows in order, each drop counted under the first rule that fires", async () => {
    const b = buildScored([
      row("i", "a red circle", 25), // kept
      row("i", "a blue square", 19.99), // min-score
      row("i", "one two three four five six", 30), // max-words (6 > 5)
      row("i", "a red circle and a blue star", 10), // min-score first (also too many words)
      row("i", "red red red red red", 40), // 5 words, 7 tokens with bos/eos > 6 → max-tokens
      row("i", "a star", 20), // kept (exactly minScore)
    ]);
    expect(model.tokenizer.encode("red red red red red", { maxLength: Infinity }).ids.length).toBe(7);
    const f = filter({ minScore: 20, maxWords: 5, maxTokens: 6, clip });
    const r = await runStages([b, buildScored([])], [f]);
    expect(texts(r.batches)).toEqual(["a red circle", "a star"]);
    expect(f.counts).toEqual({ "text-in-image": 0, "min-score": 2, "max-words": 1, "max-tokens": 1 });
    const st = stage(r.ctx, "filter");
    expect([st.rowsIn, st.rowsOut, st.filtered, st.deadLettered]).toEqual([6, 2, 4, 0]);
    expect(creditsBack(r.ctx)).toBe(true);
  });

  test("no rule set: batches pass through unchanged (same object)", async () => {
    const b = buildScored([row("i", "x", 1)]);
    const r = await runStages([b], [filter()]);
    expect(r.batches[0]).toBe(b);
  });

  /** Reference CLIPScores of one image against prompts, straight from the model. */
  const scoresOf = async (id: string, store: ImageStore, prompts: string[]): Promise<number[]> => {
    const E = model.embedDim;
    const P = normalizeRows(await model.encodeTexts(prompts), E);
    const v = normalizeRows(await model.encodeImages(store.get(id)!.pixels.slice(), 1), E);
    return prompts.map((_, j) => { let c = 0; for (let k = 0; k < E; k++) c += v[k]! * P[j * E + k]!; return 100 * Math.max(c, 0); });
  };
  /** A threshold between the lower and upper half of `xs` (so verdicts split whatever the random towers do). */
  const midThreshold = (xs: number[]): number => {
    const s = [...xs].sort((x, y) => x - y), h = s.length / 2;
    expect(s[h]!).toBeGreaterThan(s[h - 1]!);
    return (s[h - 1]! + s[h]!) / 2;
  };

  test("text-in-image: CLIP zero-shot per image matches a direct reference; threshold 0 / 101 are all / none; equal no-text prompts keep all", async () => {
    const store = new ImageStore();
    const ids = ["a", "b", "c", "d"];
    for (const [k, id] of ids.entries()) {
      const bytes = await png(60 * k, 200 - 50 * k, 90);
      store.put(id, { bytes, pixels: await preprocessImage(bytes, model.preprocess) });
    }
    const textPrompts = ["an image with text", "a picture of written words"];
    const best = await Promise.all(ids.map(async (id) => Math.max(...(await scoresOf(id, store, textPrompts)))));
    const threshold = midThreshold(best);
    const want = best.map((t) => t >= threshold);
    const b = buildScored(ids.flatMap((id) => [row(id, `${id} one`, 50), row(id, `${id} two`, 50)]));
    const f = filter({ dropTextImages: true, clip, store, textPrompts, noTextPrompts: [], textThreshold: threshold });
    const r = await runStages([b], [f]);
    expect(texts(r.batches)).toEqual(ids.filter((_, k) => !want[k]).flatMap((id) => [`${id} one`, `${id} two`]));
    expect(f.counts["text-in-image"]).toBe(4);
    expect(ids.map((id) => store.get(id)!.hasText)).toEqual(want);

    const fresh = () => { for (const id of ids) store.get(id)!.hasText = undefined; };
    fresh();
    // the competing side: a no-text prompt equal to a text prompt is never beaten, so nothing drops
    const tie = filter({ dropTextImages: true, clip, store, textPrompts, noTextPrompts: textPrompts, textThreshold: 0, name: "tie" });
    expect((await runStages([b], [tie])).rows).toBe(8);
    fresh();
    const all = filter({ dropTextImages: true, clip, store, textPrompts, noTextPrompts: [], textThreshold: 0, name: "all" });
    expect((await runStages([b], [all])).rows).toBe(0);
    expect(all.counts["text-in-image"]).toBe(8);
    fresh();
    const none = filter({ dropTextImages: true, clip, store, textPrompts, noTextPrompts: [], textThreshold: 101, name: "none" });
    expect((await runStages([b], [none])).rows).toBe(8);
  });

  test("text-in-image with {caption} prompts: each image is judged on its first candidate text, matching a direct reference", async () => {
    const store = new ImageStore();
    const ids = ["a", "b", "c", "d", "e", "f"];
    for (const [k, id] of ids.entries()) {
      const bytes = await png(40 * k, 220 - 35 * k, 30 + 20 * k);
      store.put(id, { bytes, pixels: await preprocessImage(bytes, model.preprocess) });
    }
    const textPrompts = ["{caption} The word sale is written in the picture.", "{caption} There is a star."];
    const first = (id: string) => `a ${["red", "blue", "green", "white", "black", "yellow"][ids.indexOf(id)]} circle.`;
    const filled = (id: string, caption: string) => textPrompts.map((t) => t.replace("{caption}", caption));
    const best = await Promise.all(ids.map(async (id) => Math.max(...(await scoresOf(id, store, filled(id, first(id)))))));
    const threshold = midThreshold(best);
    const want = best.map((t) => t >= threshold);
    // the second candidate of each image would be judged differently: the first one must be used
    const second = await Promise.all(ids.map(async (id) => Math.max(...(await scoresOf(id, store, filled(id, "two black squares."))))));
    expect(second.map((t) => t >= threshold)).not.toEqual(want);
    const b = buildScored(ids.flatMap((id) => [row(id, first(id), 50), row(id, "two black squares.", 50)]));
    const f = filter({ dropTextImages: true, clip, store, textPrompts, noTextPrompts: [], textThreshold: threshold });
    const r = await runStages([b], [f]);
    expect(texts(r.batches)).toEqual(ids.filter((_, k) => !want[k]).flatMap((id) => [first(id), "two black squares."]));
    expect(f.counts["text-in-image"]).toBe(6);
    expect(() => filter({ dropTextImages: true, clip, store, textPrompts, noTextPrompts: ["a photo"] })).toThrow(
      'stage "filter": either every text/no-text prompt contains {caption} or none does',
    );
  });

  test("fitCaption: a caption that would overflow the CLIP context loses end words, the same in every prompt", () => {
    // a tokenizer counting words, context 8
    const fake = { tokenizer: { encode: (t: string) => ({ fullLength: t.split(/\s+/).filter(Boolean).length }) }, contextLength: 8 } as unknown as Parameters<typeof fitCaption>[2];
    const templates = ["{caption} a b c", "{caption}"];
    expect(fitCaption(templates, "w1 w2 w3", fake)).toBe("w1 w2 w3");
    expect(fitCaption(templates, "w1 w2 w3 w4 w5 w6 w7", fake)).toBe("w1 w2 w3 w4 w5");
    expect(fitCaption(["{caption} a b c d e f g h i"], "w1 w2", fake)).toBe(""); // nothing fits: empty caption
    // the real tokenizer: every filled prompt of the shipped-size context fits
    const long = Array.from({ length: 30 }, () => "a red circle").join(" and ");
    const c = fitCaption(["{caption} The word sale is written in the picture.", "{caption}"], long, clip);
    expect(clip.tokenizer.encode(`${c} The word sale is written in the picture.`, { maxLength: Infinity }).fullLength).toBeLessThanOrEqual(clip.contextLength);
    expect(long.startsWith(c) && c.length > 0).toBe(true);
  });

  test("configuration errors are one clear line; a missing column names it", async () => {
    expect(() => filter({ dropTextImages: true })).toThrow('stage "filter": dropTextImages needs a clip model and the image store');
    expect(() => filter({ maxTokens: 5 })).toThrow('stage "filter": maxTokens needs the clip model');
    // Values are checked the same way as in pipeline files: no silently accepted negatives.
    expect(() => filter({ maxWords: -1 })).toThrow(/^stage "filter": option maxWords: Too small/);
    const { buildCandidates } = await import("../../src/arrow/build.ts");
    const c = buildCandidates([{ id: "x", image_id: "i", prompt: "p", text: "t", logp: 0, n_tokens: 1 }]);
    await expect(runStages([c], [filter({ minScore: 1 })], { onError: "fail" })).rejects.toThrow("minScore needs a 'clip_score' column");
  });
});
