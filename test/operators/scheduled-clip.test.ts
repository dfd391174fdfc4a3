import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportClip } from "../../src/models/hf-clip.ts";
import { Rng } from "../../src/util/rng.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { normalizeRows, ScheduledClip, TEXT_LENGTH_STEP, textLengthBuckets } from "../../operators/scheduled-clip.ts";
import { tinyClip } from "./fixtures.ts";

const dir = mkdtempSync(join(tmpdir(), "clipflow-sclip-"));
const sched = new Scheduler();
afterAll(async () => {
  await sched.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("ScheduledClip", () => {
  test("normalizeRows: unit rows, zero rows stay zero", () => {
    const m = normalizeRows(Float32Array.of(3, 4, 0, 0), 2);
    expect(m[0]).toBeCloseTo(0.6, 6);
    expect(m[1]).toBeCloseTo(0.8, 6);
    expect([m[2], m[3]]).toEqual([0, 0]);
  });

  test("from an exported HF-layout folder: embeddings equal the model's own, normalised; texts of different lengths padded per batch", async () => {
    const model = tinyClip(4);
    await exportClip(model, dir);
    const clip = await ScheduledClip.fromDir(sched, dir, "exported", { maxBatch: 8, maxDelayMs: 1 });
    expect([clip.embedDim, clip.imageSize, clip.contextLength]).toEqual([model.embedDim, model.imageSize, model.contextLength]);
    const rng = new Rng(1);
    const px = Float32Array.from({ length: 2 * 3 * 32 * 32 }, () => rng.normal());
    const got = await clip.embedImages(px, 2);
    const want = normalizeRows(await model.encodeImages(px.slice(), 2), model.embedDim);
    got.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 4));
    const texts = ["a red circle", "there are two blue squares and a green star", "a star"];
    const gt = await clip.embedTexts(texts);
    const wt = normalizeRows(await model.encodeTexts(texts), model.embedDim);
    gt.forEach((v, i) => expect(v).toBeCloseTo(wt[i]!, 4));
    let norm = 0;
    for (let k = 0; k < model.embedDim; k++) norm += gt[k]! * gt[k]!;
    expect(norm).toBeCloseTo(1, 5);
    await expect(ScheduledClip.fromDir(sched, join(dir, "nope"))).rejects.toThrow("missing");
    await expect(clip.embedImages(new Float32Array(5), 1)).rejects.toThrow("embedImages: 5 floats is not [1, 3, 32, 32]");
  });

  test("textLengthBuckets: steps of TEXT_LENGTH_STEP, the last is the context length", () => {
    expect(TEXT_LENGTH_STEP).toBe(4);
    expect(textLengthBuckets(10)).toEqual([4, 8, 10]);
    expect(textLengthBuckets(12)).toEqual([4, 8, 12]);
    expect(textLengthBuckets(3)).toEqual([3]);
  });

  test("embedIds over texts of many lengths (one request per length group) equals each text embedded alone, in input order", async () => {
    const model = tinyClip(5);
    const clip = ScheduledClip.fromModel(sched, model, "grouped", { maxBatch: 8, maxDelayMs: 1 });
    const words = ["a", "red", "circle", "and", "two", "blue", "squares", "on", "grey"];
    // 1..13 words (+ bos/eos ≤ the tiny context of 16) in a scrambled order, so neighbours fall in different length groups
    const texts = Array.from({ length: 17 }, (_, i) => words.slice(0, 1 + ((i * 7) % 9)).concat(i >= 9 ? words.slice(0, 4) : []).join(" "));
    const seqs = texts.map((t) => model.tokenizer.encode(t, { maxLength: clip.contextLength }).ids);
    const groups = new Set(seqs.map((s) => Math.ceil(s.length / TEXT_LENGTH_STEP)));
    expect(groups.size).toBeGreaterThan(3);
    const got = await clip.embedIds(seqs);
    expect(got.length).toBe(texts.length * clip.embedDim);
    const e = clip.embedDim;
    for (let i = 0; i < texts.length; i++) {
      const alone = normalizeRows(await model.encodeTexts([texts[i]!]), e);
      for (let k = 0; k < e; k++) expect(got[i * e + k]!).toBeCloseTo(alone[k]!, 4);
    }
  });
});
