import { describe, expect, test } from "bun:test";
import { Rng } from "../../src/util/rng.ts";
import { lvlmConfig, lvlmPresets } from "../../src/models/lvlm-config.ts";
import { LVLM_IO, lvlmLogpsGraph, lvlmSftGraph, lvlmVisionGraph } from "../../src/models/lvlm.ts";
import { LvlmModel } from "../../src/models/lvlm-model.ts";
import { padIds } from "../../src/models/text-batch.ts";
import { WordTokenizer } from "../../src/models/word-tokenizer.ts";

const tok = WordTokenizer.fromCorpus(["describe the image .", "a red circle left of a blue square .", "what colour is the circle ?"]);
const S = 16, IMG = 3 * S * S;
const pixels = (n: number, seed: number) => {
  const r = new Rng(seed);
  return Float32Array.from({ length: n * IMG }, () => r.normal());
};
const model = (seed = 3, layers = 2) => {
  const base = lvlmPresets.tiny(tok.vocabSize);
  return LvlmModel.create({ ...base, lm: { ...base.lm, layers } }, tok, seed);
};
const V = tok.vocabSize;

/** log softmax in float64, written out independently of the graph code. */
function logSoftmaxAt(row: ArrayLike<number>, k: number): number {
  let m = -Infinity;
  for (let i = 0; i < row.length; i++) m = Math.max(m, row[i]!);
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i]! - m);
  return row[k]! - m - Math.log(s);
}

describe("LVLM", () => {
  test("KV-cache decoding gives the logits of full recomputation (rows of different lengths, rows leaving and joining)", async () => {
    const m = model();
    const px = pixels(3, 1);
    const prompts = [m.promptIds("describe the image ."), m.promptIds("what colour ?"), m.promptIds("a")];
    const gen = [[5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]];
    const { logits: l0, cache: c0 } = await m.prefill(px, prompts);
    expect(c0.lengths).toEqual(prompts.map((p) => p.length + 4)); // 4 image tokens

    // step logits per row; row 1 leaves after step 1, a fresh prefill of row 2's prompt joins later
    const got: Map<string, Float32Array> = new Map();
    const put = (row: number, step: number, l: Float32Array, at: number) => got.set(`${row}:${step}`, l.slice(at * V, (at + 1) * V));
    [0, 1, 2].forEach((r) => put(r, 0, l0, r));
    let c = c0.select([0, 1]);
    let r1 = await m.decode(c, [gen[0]![0]!, gen[1]![0]!]);
    put(0, 1, r1.logits, 0); put(1, 1, r1.logits, 1);
    c = r1.cache.select([0]); // row 1 finished
    const p2 = await m.prefill(px.slice(2 * IMG, 3 * IMG), [prompts[2]!]);
    let joined = (await import("../../src/models/kv-cache.ts")).KvCache.concat([c, p2.cache]);
    expect(joined.lengths).toEqual([prompts[0]!.length + 5, prompts[2]!.length + 4]);
    let r2 = await m.decode(joined, [gen[0]![1]!, gen[2]![0]!]);
    put(0, 2, r2.logits, 0); put(2, 1, r2.logits, 1);
    r2 = await m.decode(r2.cache, [gen[0]![2]!, gen[2]![1]!]);
    put(0, 3, r2.logits, 0); put(2, 2, r2.logits, 1);

    for (const [key, l] of got) {
      const [row, step] = key.split(":").map(Number) as [number, number];
      const seq = [...prompts[row]!, ...gen[row]!.slice(0, step)];
      const full = await m.textLogits(px.slice(row * IMG, (row + 1) * IMG), [seq]);
      const at = seq.length - 1;
      let maxd = 0;
      for (let v = 0; v < V; v++) maxd = Math.max(maxd, Math.abs(full.logits[at * V + v]! - l[v]!));
      expect(maxd).toBeLessThan(1e-4);
    }
    expect(got.size).toBe(9);
  });

  test("sequence log-probs = Σ per-token log-softmax over answer tokens only (independent JS reference), batched with padding", async () => {
    const m = model(5);
    const px = pixels(3, 2);
    const items = [
      m.scoredText("describe the image .", "a red circle ."),
      m.scoredText("what colour is the circle ?", "blue"),
      m.scoredText("describe", "a red circle left of a blue square ."),
    ];
    expect(items[1]!.answerMask).toEqual([0, 0, 0, 0, 0, 0, 0, 1, 1]); // bos + 6 prompt tokens; "blue" + eos
    const got = await m.sequenceLogps(px, items);
    for (let b = 0; b < 3; b++) {
      const { ids, answerMask } = items[b]!;
      const full = await m.textLogits(px.slice(b * IMG, (b + 1) * IMG), [ids]);
      let ref = 0;
      for (let t = 1; t < ids.length; t++) {
        // token t is predicted by the logits at text position t-1
        if (answerMask[t]) ref += logSoftmaxAt(full.logits.subarray((t - 1) * V, t * V), ids[t]!);
      }
      expect(Math.abs(got.logps[b]! - ref)).toBeLessThan(1e-4);
      expect(got.nTokens[b]).toBe(answerMask.reduce((a, x) => a + x, 0));
    }
  });

  test("precomputed vision features give the same log-probs as pixels", async () => {
    const m = model(6, 1);
    const px = pixels(2, 4);
    const items = [m.scoredText("describe", "a red circle ."), m.scoredText("what", "blue")];
    const direct = await m.sequenceLogps(px, items);
    const vg = lvlmVisionGraph(m.cfg);
    const vis = await vg.graph.compile({ outputs: vg.outputs, params: m.store });
    const feats = (await vis.run({ pixel_values: { dtype: "float32", dims: [2, 3, S, S], data: px } }))[LVLM_IO.imageFeatures]!;
    expect(feats.dims).toEqual([2, 4, 32]);
    const { graph, outputs } = lvlmLogpsGraph(m.cfg, "features");
    const run = await graph.compile({ outputs, params: m.store });
    const b = padIds(items.map((i) => i.ids), 0), am = padIds(items.map((i) => i.answerMask), 0);
    const r = await run.run({ image_features: feats, input_ids: b.ids, attention_mask: b.mask, answer_mask: am.ids });
    for (let i = 0; i < 2; i++) expect(Math.abs((r.logps!.data as Float32Array)[i]! - direct.logps[i]!)).toBeLessThan(1e-5);
  });

  test("SFT loss = mean answer-token NLL; gradients only for the trainable parts (vision frozen by default)", async () => {
    const m = model(7, 1);
    expect(m.store.trainableNames().some((n) => n.startsWith("vision."))).toBe(false);
    expect(m.store.trainableNames()).toContain("projector.fc1.w");
    expect(m.store.trainableNames()).toContain("lm.head.w");
    const px = pixels(2, 8);
    const items = [m.scoredText("describe the image .", "a red circle ."), m.scoredText("what", "blue")];
    const lp = await m.sequenceLogps(px, items);
    const ref = -(lp.logps[0]! + lp.logps[1]!) / (lp.nTokens[0]! + lp.nTokens[1]!);

    const { graph, outputs } = lvlmSftGraph(m.cfg);
    const grads = graph.grad(outputs.loss!, m.store.trainableNames());
    const step = await graph.compile({ outputs, grads, params: m.store });
    const b = padIds(items.map((i) => i.ids), 0), am = padIds(items.map((i) => i.answerMask), 0);
    const feeds = { pixel_values: { dtype: "float32" as const, dims: [2, 3, S, S], data: px }, input_ids: b.ids, attention_mask: b.mask, answer_mask: am.ids };
    const r = await step.run(feeds);
    expect(Math.abs((r.loss!.data as Float32Array)[0]! - ref)).toBeLessThan(1e-5);
    const gradNames = Object.keys(r).filter((k) => k.startsWith("grad:"));
    expect(gradNames.length).toBe(m.store.trainableNames().length);
    expect(gradNames.some((k) => k.startsWith("grad:vision."))).toBe(false);

    // finite-difference check of one projector weight
    const w = m.store.require("projector.fc2.w").data;
    const g0 = (r["grad:projector.fc2.w"]!.data as Float32Array)[3]!;
    const h = 1e-2, base = w[3]!;
    const at = async (v: number) => { w[3] = v; return ((await step.run(feeds)).loss!.data as Float32Array)[0]!; };
    const fd = ((await at(base + h)) - (await at(base - h))) / (2 * h);
    w[3] = base;
    expect(Math.abs(fd - g0)).toBeLessThan(1e-3 + 0.05 * Math.abs(g0));
  });

  test("over-long answers are cut to the context and counted; config errors name the key", () => {
    const m = model(1, 1);
    const before = tok.truncations;
    const long = Array.from({ length: 40 }, () => "red").join(" ");
    const s = m.scoredText("describe", long);
    expect(s.truncated).toBe(true);
    expect(s.ids.length).toBe(32 - 4); // maxPositions - image tokens
    expect(s.ids[s.ids.length - 1]).toBe(m.cfg.eosTokenId);
    expect(tok.truncations).toBe(before + 1);
    const base = lvlmPresets.tiny(20);
    expect(() => lvlmConfig({ ...base, lm: { ...base.lm, maxPositions: 5 } })).toThrow(/maxPositions 5 leaves no room/);
    expect(() => lvlmConfig({ ...base, visionFeatureLayers: 3 })).toThrow(/visionFeatureLayers 3 exceeds/);
  });
});

describe("LVLM vision from a trained CLIP", () => {
  test("adoptVision copies every vision weight; the LVLM's patch features are the CLIP tower's hidden states", async () => {
    const { ClipModel } = await import("../../src/models/clip-model.ts");
    const { clipVisionTower } = await import("../../src/models/clip.ts");
    const { Graph } = await import("../../src/graph/index.ts");
    const m = model(2, 1);
    const clip = ClipModel.create({ vision: m.cfg.vision, text: { vocabSize: tok.vocabSize, contextLength: 8, width: 16, layers: 1, heads: 2, mlp: 32, bosTokenId: 1, eosTokenId: 2, padTokenId: 0 }, embedDim: 8 }, tok, 77);
    const names = m.adoptVision(clip.store);
    expect(names.length).toBeGreaterThan(5);
    for (const n of names) expect(Array.from(m.store.require(n).data)).toEqual(Array.from(clip.store.require(n).data));
    // features graph vs the CLIP tower's own hidden states (class token dropped)
    const px = pixels(1, 3);
    const vg = lvlmVisionGraph(m.cfg);
    const feats = (await (await vg.graph.compile({ outputs: vg.outputs, params: m.store })).run({ pixel_values: { dtype: "float32", dims: [1, 3, S, S], data: px } }))[LVLM_IO.imageFeatures]!;
    const g = new Graph();
    const x = g.input("x", "float32", [1, 3, S, S]);
    const h = (await g.compile({ outputs: { h: clipVisionTower(g, clip.cfg.vision, x, m.cfg.visionFeatureLayers).hidden }, params: clip.store })).run({ x: px });
    const hd = (await h).h!.data as Float32Array; // [1, 5, 32]
    const fd = feats.data as Float32Array; // [1, 4, 32]
    for (let i = 0; i < 4 * 32; i++) expect(Math.abs(fd[i]! - hd[32 + i]!)).toBeLessThan(1e-6);
    const other = LvlmModel.create({ ...lvlmPresets.tiny(tok.vocabSize), vision: { ...m.cfg.vision, width: 64, mlp: 128 } }, tok, 1);
    expect(() => other.adoptVision(clip.store)).toThrow(/adoptVision: 'vision\..*' is \[/);
  });
});
