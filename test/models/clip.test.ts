import { describe, expect, test } from "bun:test";
import { Graph } from "../../src/graph/index.ts";
import { Rng } from "../../src/util/rng.ts";
import { clipConfig, clipPresets, fromHfClipConfig, toHfClipConfig } from "../../src/models/clip-config.ts";
import { clipLossGraph, patchify, poolIndex } from "../../src/models/clip.ts";
import { ClipModel } from "../../src/models/clip-model.ts";
import { padIds } from "../../src/models/text-batch.ts";
import { WordTokenizer } from "../../src/models/word-tokenizer.ts";

const tok = WordTokenizer.fromCorpus(["a red circle", "a blue square left of a green triangle", "two small yellow stars"]);
const randPixels = (n: number, s: number, seed: number) => {
  const r = new Rng(seed);
  return Float32Array.from({ length: n * 3 * s * s }, () => r.normal());
};

describe("CLIP graphs", () => {
  test("patchify matches a plain JS reference (row-major patches, channel-major vectors)", async () => {
    const g = new Graph();
    const x = g.input("x", "float32", ["batch", 3, 8, 8]);
    const run = await g.compile({ outputs: { y: patchify(g, x, 8, 4) } });
    const px = randPixels(2, 8, 1);
    const y = (await run.run({ x: { dtype: "float32", dims: [2, 3, 8, 8], data: px } })).y!;
    expect(y.dims).toEqual([2, 4, 48]);
    const data = y.data as Float32Array;
    for (let b = 0; b < 2; b++) for (let pi = 0; pi < 2; pi++) for (let pj = 0; pj < 2; pj++) {
      for (let c = 0; c < 3; c++) for (let dy = 0; dy < 4; dy++) for (let dx = 0; dx < 4; dx++) {
        const want = px[((b * 3 + c) * 8 + pi * 4 + dy) * 8 + pj * 4 + dx]!;
        expect(data[(b * 4 + pi * 2 + pj) * 48 + (c * 16 + dy * 4 + dx)]).toBe(want);
      }
    }
  });

  test("pooling index: first end-of-text (eos mode) or largest id (argmax mode), last position when absent", async () => {
    const ids = [[1, 5, 2, 0, 0], [1, 5, 6, 7, 2], [1, 5, 6, 7, 8], [1, 2, 2, 0, 0]];
    const ref = (row: number[], mode: "eos" | "argmax") => {
      const target = mode === "eos" ? 2 : Math.max(...row);
      const i = row.indexOf(target);
      return i < 0 ? row.length - 1 : i;
    };
    for (const mode of ["eos", "argmax"] as const) {
      const cfg = clipConfig({ ...clipPresets.tiny(16), text: { ...clipPresets.tiny(16).text, pooling: mode } });
      const g = new Graph();
      const x = g.input("ids", "int64", ["batch", "sequence"]);
      const run = await g.compile({ outputs: { i: poolIndex(g, cfg.text, x) } });
      const out = (await run.run({ ids: { dtype: "int64", dims: [4, 5], data: BigInt64Array.from(ids.flat(), BigInt) } })).i!;
      expect(Array.from(out.data as BigInt64Array, Number)).toEqual(ids.map((r) => ref(r, mode)));
    }
  });

  test("text embeddings: batched and padded equal one-at-a-time; tokens after eos do not matter", async () => {
    const clip = ClipModel.create(clipPresets.tiny(tok.vocabSize), tok, 1);
    const texts = ["a red circle", "a blue square left of a green triangle", "stars"];
    const batched = await clip.encodeTexts(texts);
    expect(batched.length).toBe(3 * 16);
    for (let i = 0; i < 3; i++) {
      const one = await clip.encodeTexts([texts[i]!]);
      for (let j = 0; j < 16; j++) expect(Math.abs(one[j]! - batched[i * 16 + j]!)).toBeLessThan(1e-5);
    }
    // a sequence with junk after its eos pools at the eos and is causally blind to the junk
    const ids = tok.encode("a red circle").ids;
    const junk = await clip.encodeIds([[...ids, 7, 8, 9]]);
    for (let j = 0; j < 16; j++) expect(Math.abs(junk[j]! - batched[j]!)).toBeLessThan(1e-5);
    // but a different text gives a different embedding
    expect(Math.abs(batched[0]! - batched[16]!)).toBeGreaterThan(1e-4);
  });

  test("image embeddings: batched equal one-at-a-time", async () => {
    const clip = ClipModel.create(clipPresets.tiny(tok.vocabSize), tok, 2);
    const px = randPixels(3, 32, 5);
    const all = await clip.encodeImages(px, 3);
    for (let i = 0; i < 3; i++) {
      const one = await clip.encodeImages(px.slice(i * 3072, (i + 1) * 3072), 1);
      for (let j = 0; j < 16; j++) expect(Math.abs(one[j]! - all[i * 16 + j]!)).toBeLessThan(1e-5);
    }
  });

  test("symmetric InfoNCE loss equals a JS reference from the embeddings; logit-scale gradient matches finite differences", async () => {
    const clip = ClipModel.create(clipPresets.tiny(tok.vocabSize), tok, 3);
    const texts = ["a red circle", "a blue square", "two yellow stars"];
    const px = randPixels(3, 32, 9);
    const img = await clip.encodeImages(px, 3), txt = await clip.encodeTexts(texts);
    const norm = (a: Float32Array, i: number) => {
      const v = Array.from(a.subarray(i * 16, i * 16 + 16));
      const n = Math.hypot(...v);
      return v.map((x) => x / n);
    };
    const scale = Math.exp(Math.log(1 / 0.07));
    const L = [0, 1, 2].map((i) => [0, 1, 2].map((j) => scale * norm(img, i).reduce((s, x, k) => s + x * norm(txt, j)[k]!, 0)));
    const ce = (rows: number[][]) => rows.reduce((s, r, i) => s - (r[i]! - Math.log(r.reduce((a, x) => a + Math.exp(x), 0))), 0) / rows.length;
    const ref = 0.5 * (ce(L) + ce(L.map((_, i) => L.map((r) => r[i]!))));

    const { graph, outputs } = clipLossGraph(clip.cfg);
    const grads = graph.grad(outputs.loss, ["logit_scale"]);
    const step = await graph.compile({ outputs, grads, params: clip.store });
    const b = padIds(texts.map((t) => tok.encode(t).ids), 0);
    const feeds = { pixel_values: { dtype: "float32" as const, dims: [3, 3, 32, 32], data: px }, input_ids: b.ids, attention_mask: b.mask };
    const r = await step.run(feeds);
    const loss = (r.loss!.data as Float32Array)[0]!;
    expect(Math.abs(loss - ref)).toBeLessThan(1e-4);
    expect(Array.from(r.logits_per_image!.data as Float32Array).map((x) => +x.toFixed(3))).toEqual(L.flat().map((x) => +x.toFixed(3)));

    const ls = clip.store.require("logit_scale").data;
    const g0 = (r["grad:logit_scale"]!.data as Float32Array)[0]!;
    const h = 1e-2, at = async (v: number) => { ls[0] = v; return ((await step.run(feeds)).loss!.data as Float32Array)[0]!; };
    const base = ls[0]!;
    const fd = ((await at(base + h)) - (await at(base - h))) / (2 * h);
    ls[0] = base;
    expect(Math.abs(fd - g0)).toBeLessThan(2e-3 + 0.02 * Math.abs(g0));
    expect(Math.abs(g0)).toBeGreaterThan(1e-4);
  });
});

describe("CLIP config", () => {
  test("ViT-B/32 preset round-trips through HF config.json; pooling recorded", () => {
    const cfg = clipConfig(clipPresets.vitB32());
    const hf = toHfClipConfig(cfg);
    expect((hf.vision_config as Record<string, unknown>).patch_size).toBe(32);
    expect(fromHfClipConfig(JSON.parse(JSON.stringify(hf)))).toEqual(cfg);
  });

  test("a real HF CLIPConfig (legacy eos_token_id 2) reads as argmax pooling with HF defaults", () => {
    const cfg = fromHfClipConfig({ projection_dim: 512, text_config: { bos_token_id: 0, eos_token_id: 2, pad_token_id: 1 }, vision_config: {} });
    expect(cfg.vision).toMatchObject({ imageSize: 224, patchSize: 32, width: 768, layers: 12, heads: 12, mlp: 3072, act: "quick_gelu" });
    expect(cfg.text).toMatchObject({ contextLength: 77, vocabSize: 49408, width: 512, pooling: "argmax" });
  });

  test("bad configs name the key", () => {
    expect(() => clipConfig({ ...clipPresets.tiny(10), extra: 1 }, "x.yaml")).toThrow(/x.yaml: .*Unrecognized key/);
    const bad = clipPresets.tiny(10);
    expect(() => clipConfig({ ...bad, vision: { ...bad.vision, patchSize: 7 } })).toThrow(/not a multiple of patchSize 7/);
    expect(() => clipConfig(clipPresets.tiny(2))).toThrow(/eosTokenId 2 outside vocabulary of 2/);
  });
});
