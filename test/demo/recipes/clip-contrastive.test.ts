import { describe, expect, test } from "bun:test";
import { ClipModel, clipConfig, clipLossGraph, clipPresets, padIds } from "../../../src/models/index.ts";
import { Rng } from "../../../src/util/rng.ts";
import { hardNegativeClipLoss } from "../../../demo/recipes/clip-contrastive.ts";
import { patchKindGraph, patchLabelFeed, sharedStore, PATCH_CLASSES } from "../../../demo/recipes/patch-kind.ts";
import { worldTokenizer } from "../../../demo/recipes/world-data.ts";

const tok = worldTokenizer();
const cfg = clipConfig(clipPresets.tiny(tok.vocabSize, { bos: tok.special.bos, eos: tok.special.eos, pad: tok.special.pad }));
const texts = ["A red circle.", "Two blue squares.", "A picture of a green star.", "There is a red circle and a star.", "A blue square and a moon."];

function pixels(n: number, seed: number): Float32Array {
  const r = new Rng(seed);
  return Float32Array.from({ length: n * 3 * 32 * 32 }, () => r.normal());
}

function logSumExp(xs: number[]): number {
  const m = Math.max(...xs);
  return m + Math.log(xs.reduce((s, x) => s + Math.exp(x - m), 0));
}

describe("hard-negative CLIP loss", () => {
  test("equals a JS reference from the model's own embeddings (i→t over all texts, t→i over positives)", async () => {
    const clip = ClipModel.create(cfg, tok, 4);
    const B = 3, px = pixels(B, 1);
    const ids = texts.map((t) => tok.encode(t).ids);
    const b = padIds(ids, cfg.text.padTokenId);
    const { graph, outputs } = hardNegativeClipLoss(cfg);
    const run = await graph.compile({ outputs, params: clip.store });
    const r = await run.run({ pixel_values: { dtype: "float32", dims: [B, 3, 32, 32], data: px }, input_ids: b.ids, attention_mask: b.mask });
    const E = cfg.embedDim;
    const norm = (x: Float32Array) => {
      const out: number[][] = [];
      for (let i = 0; i < x.length / E; i++) {
        const row = Array.from(x.subarray(i * E, (i + 1) * E));
        const n = Math.hypot(...row);
        out.push(row.map((v) => v / n));
      }
      return out;
    };
    const img = norm(await clip.encodeImages(px, B));
    const txt = norm(await clip.encodeIds(ids));
    const s = clip.logitScale;
    const L = img.map((a) => txt.map((t) => s * a.reduce((acc, v, k) => acc + v * t[k]!, 0)));
    expect(r.logits_per_image!.dims).toEqual([B, texts.length]);
    const got = r.logits_per_image!.data as Float32Array;
    L.flat().forEach((v, i) => expect(Math.abs(got[i]! - v)).toBeLessThan(1e-4));
    const i2t = L.reduce((acc, row, i) => acc + logSumExp(row) - row[i]!, 0) / B;
    const t2i = Array.from({ length: B }, (_, j) => {
      const col = L.map((row) => row[j]!);
      return logSumExp(col) - col[j]!;
    }).reduce((a, c) => a + c, 0) / B;
    expect(Math.abs((r.loss!.data as Float32Array)[0]! - 0.5 * (i2t + t2i))).toBeLessThan(1e-4);
  });

  test("without negatives it is exactly src/models' symmetric InfoNCE, with the same param names", async () => {
    const clip = ClipModel.create(cfg, tok, 5);
    const B = 4, px = pixels(B, 2);
    const b = padIds(texts.slice(0, B).map((t) => tok.encode(t).ids), cfg.text.padTokenId);
    const ours = hardNegativeClipLoss(cfg), ref = clipLossGraph(cfg);
    expect(ours.graph.params().map((p) => p.name).sort()).toEqual(ref.graph.params().map((p) => p.name).sort());
    const feeds = { pixel_values: { dtype: "float32" as const, dims: [B, 3, 32, 32], data: px }, input_ids: b.ids, attention_mask: b.mask };
    const a = await (await ours.graph.compile({ outputs: ours.outputs, params: clip.store })).run(feeds);
    const c = await (await ref.graph.compile({ outputs: ref.outputs, params: clip.store })).run(feeds);
    expect(Math.abs((a.loss!.data as Float32Array)[0]! - (c.loss!.data as Float32Array)[0]!)).toBeLessThan(1e-5);
  });
  test("with patchKindWeight w the loss is the contrastive loss + w · the patch-kind loss of the warm-up graph, on the same weights", async () => {
    const clip = ClipModel.create(cfg, tok, 6);
    const B = 3, px = pixels(B, 3), n = (cfg.vision.imageSize / cfg.vision.patchSize) ** 2;
    const b = padIds(texts.map((t) => tok.encode(t).ids), cfg.text.padTokenId);
    const r = new Rng(9);
    const labels = Array.from({ length: B }, () => BigInt64Array.from({ length: n }, () => BigInt(r.int(PATCH_CLASSES))));
    const feeds = { pixel_values: { dtype: "float32" as const, dims: [B, 3, 32, 32], data: px }, input_ids: b.ids, attention_mask: b.mask, labels: patchLabelFeed(labels, [0, 1, 2], n) };
    const aux = hardNegativeClipLoss(cfg, { patchKindWeight: 0.7 });
    const store = sharedStore(clip, aux.graph, 1);
    const got = await (await aux.graph.compile({ outputs: aux.outputs, params: store })).run(feeds);
    const plain = hardNegativeClipLoss(cfg);
    const { labels: _l, ...textFeeds } = feeds;
    const c = await (await plain.graph.compile({ outputs: plain.outputs, params: clip.store })).run(textFeeds);
    const pk = patchKindGraph(cfg);
    const p = await (await pk.graph.compile({ outputs: pk.outputs, params: store })).run({ pixel_values: feeds.pixel_values, labels: feeds.labels });
    const v = (x: { data: unknown } | undefined) => (x!.data as Float32Array)[0]!;
    expect(Math.abs(v(got.contrastive_loss) - v(c.loss))).toBeLessThan(1e-5);
    expect(Math.abs(v(got.patch_loss) - v(p.loss))).toBeLessThan(1e-5);
    expect(Math.abs(v(got.loss) - (v(c.loss) + 0.7 * v(p.loss)))).toBeLessThan(1e-5);
    expect(v(p.loss)).toBeGreaterThan(1); // random labels on a random head: ~ln(10)
  });
});
