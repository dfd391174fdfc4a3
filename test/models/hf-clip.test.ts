import { describe, expect, test } from "bun:test";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Graph } from "../../src/graph/index.ts";
import { Rng } from "../../src/util/rng.ts";
import { clipPresets } from "../../src/models/clip-config.ts";
import { clipTextEmbeds } from "../../src/models/clip.ts";
import { ClipModel } from "../../src/models/clip-model.ts";
import { exportClip, loadClip, loadClipModel } from "../../src/models/hf-clip.ts";
import { HfTokenizer } from "../../src/models/hf-tokenizer.ts";
import { WordTokenizer } from "../../src/models/word-tokenizer.ts";
import { tinyClipBpe } from "./tokenizer-fixtures.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { ScheduledClip } from "../../operators/scheduled-clip.ts";

const tmp = () => mkdtempSync(join(tmpdir(), "clipflow-hf-"));
const px = (() => {
  const r = new Rng(2);
  return Float32Array.from({ length: 2 * 3 * 32 * 32 }, () => r.normal());
})();
const maxDiff = (a: Float32Array, b: Float32Array) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

describe("HF ONNX layout", () => {
  test("word-tokenizer CLIP: export -> loadClip gives identical embeddings; loadClipModel reloads the weights", async () => {
    const tok = WordTokenizer.fromCorpus(["a red circle", "a blue square"], { modelMaxLength: 16 });
    const clip = ClipModel.create(clipPresets.tiny(tok.vocabSize), tok, 4);
    const dir = tmp();
    try {
      await exportClip(clip, dir);
      const onnx = await loadClip(dir);
      expect(onnx.tokenizer.kind).toBe("word");
      expect([onnx.imageSize, onnx.contextLength, onnx.embedDim]).toEqual([32, 16, 16]);
      expect(onnx.textInputs).toEqual(["input_ids", "attention_mask"]);
      expect(onnx.logitScale).toBeCloseTo(clip.logitScale, 4);
      expect(onnx.preprocess).toEqual(clip.preprocess);
      const texts = ["a red circle", "a blue square square"];
      expect(maxDiff(await onnx.encodeTexts(texts), await clip.encodeTexts(texts))).toBeLessThan(1e-5);
      expect(maxDiff(await onnx.encodeImages(px, 2), await clip.encodeImages(px, 2))).toBeLessThan(1e-5);
      const again = await loadClipModel(dir);
      expect(again.store.names().sort()).toEqual(clip.store.names().sort());
      expect(maxDiff(await again.encodeImages(px, 2), await clip.encodeImages(px, 2))).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("BPE CLIP with tokenizer.json round-trips the tokenizer and the embeddings", async () => {
    const { tokenizerJson, tokenizerConfig } = tinyClipBpe();
    const tok = HfTokenizer.fromJSON(tokenizerJson, { ...tokenizerConfig, model_max_length: 16 });
    const base = clipPresets.tiny(tok.vocabSize, { bos: tok.special.bos, eos: tok.special.eos, pad: tok.special.pad });
    const clip = ClipModel.create(base, tok, 5);
    const dir = tmp();
    try {
      await exportClip(clip, dir);
      const onnx = await loadClip(dir);
      expect(onnx.tokenizer.kind).toBe("hf");
      expect(onnx.tokenizer.encode("a red circle.").ids).toEqual(tok.encode("a red circle.").ids);
      const texts = ["a red circle.", "reed"];
      expect(maxDiff(await onnx.encodeTexts(texts), await clip.encodeTexts(texts))).toBeLessThan(1e-5);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a transformers.js-style folder: legacy config keys, text model without attention_mask, ONNX at the root", async () => {
    const { tokenizerJson, tokenizerConfig } = tinyClipBpe();
    const tok = HfTokenizer.fromJSON(tokenizerJson, tokenizerConfig);
    const base = clipPresets.tiny(tok.vocabSize, { bos: tok.special.bos, eos: tok.special.eos, pad: tok.special.pad });
    const clip = ClipModel.create({ ...base, text: { ...base.text, pooling: "argmax", contextLength: 77 } }, tok, 6);
    // text model taking only input_ids (mask = all ones), as some exports have it
    const g = new Graph({ name: "text-ids-only" });
    const ids = g.input("input_ids", "int64", ["batch", "sequence"]);
    const ones = g.expand(g.constant(BigInt64Array.from([1n]), [1, 1]), ["batch", "sequence"], [ids]);
    const textOnly = g.toOnnx({ outputs: { text_embeds: clipTextEmbeds(g, clip.cfg, ids, ones) }, bake: clip.store });
    const dir = tmp();
    try {
      mkdirSync(dir, { recursive: true });
      await Bun.write(join(dir, "vision_model.onnx"), clip.visionOnnx(true).bytes);
      await Bun.write(join(dir, "text_model.onnx"), textOnly.bytes);
      await Bun.write(join(dir, "tokenizer.json"), JSON.stringify(tokenizerJson));
      await Bun.write(join(dir, "tokenizer_config.json"), JSON.stringify(tokenizerConfig));
      // keys as in openai/clip-vit-base-patch32 (sizes shrunk), no clipflow section
      await Bun.write(join(dir, "config.json"), JSON.stringify({
        projection_dim: 16, logit_scale_init_value: 2.6592,
        text_config: { vocab_size: tok.vocabSize, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 77, hidden_act: "gelu", bos_token_id: 0, eos_token_id: 2, pad_token_id: 1 },
        vision_config: { image_size: 32, patch_size: 8, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, hidden_act: "gelu" },
      }));
      await Bun.write(join(dir, "preprocessor_config.json"), JSON.stringify({
        crop_size: 32, do_center_crop: true, do_normalize: true, do_resize: true, feature_extractor_type: "CLIPFeatureExtractor",
        image_mean: [0.48145466, 0.4578275, 0.40821073], image_std: [0.26862954, 0.26130258, 0.27577711], resample: 3, size: 32,
      }));
      const onnx = await loadClip(dir);
      expect(onnx.textInputs).toEqual(["input_ids"]);
      expect([onnx.imageSize, onnx.contextLength, onnx.logitScale]).toEqual([32, 77, 100]);
      expect(onnx.preprocess.mean).toEqual([0.48145466, 0.4578275, 0.40821073]);
      // unpadded single texts equal the masked model; a batch is padded with <|endoftext|> after the eos,
      // which argmax pooling and the causal mask make harmless
      const texts = ["a red circle.", "reed"];
      expect(maxDiff(await onnx.encodeTexts(texts), await clip.encodeTexts(texts))).toBeLessThan(1e-5);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("an export with int32 ids and a fixed sequence length is fed accordingly", async () => {
    const tok = WordTokenizer.fromCorpus(["a red circle", "a blue square"], { modelMaxLength: 16 });
    const clip = ClipModel.create(clipPresets.tiny(tok.vocabSize), tok, 8);
    const g = new Graph({ name: "text-int32-fixed" });
    const ids = g.input("input_ids", "int32", ["batch", 16]);
    const mask = g.input("attention_mask", "int32", ["batch", 16]);
    const fixed = g.toOnnx({ outputs: { text_embeds: clipTextEmbeds(g, clip.cfg, g.cast(ids, "int64"), g.cast(mask, "int64")) }, bake: clip.store });
    const dir = tmp();
    try {
      await exportClip(clip, dir);
      await Bun.write(join(dir, "onnx/text_model.onnx"), fixed.bytes);
      const onnx = await loadClip(dir);
      const texts = ["a red circle", "a blue square square"];
      expect(maxDiff(await onnx.encodeTexts(texts), await clip.encodeTexts(texts))).toBeLessThan(1e-5);
      // an fp16-style mismatch is refused up front
      const g2 = new Graph({ name: "bad-pixels" });
      const p64 = g2.input("pixel_values", "float32", ["batch", 3, 64, 64]);
      await Bun.write(join(dir, "onnx/vision_model.onnx"), g2.toOnnx({ outputs: { image_embeds: g2.reduceMean(p64, [1, 2]) } }).bytes);
      await expect(loadClip(dir)).rejects.toThrow(/pixel_values is 64px wide, config says 32/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("missing files and mismatched sizes are one clear error naming the path", async () => {
    const dir = tmp();
    try {
      await expect(loadClip(dir)).rejects.toThrow(/config.json: file not found/);
      await Bun.write(join(dir, "config.json"), JSON.stringify({ vision_config: { image_size: 64, patch_size: 32 } }));
      await Bun.write(join(dir, "preprocessor_config.json"), JSON.stringify({ size: 224, crop_size: 224 }));
      await expect(loadClip(dir)).rejects.toThrow(/preprocessor crop 224 differs from vision_config.image_size 64/);
      await Bun.write(join(dir, "config.json"), "{oops");
      await expect(loadClip(dir)).rejects.toThrow(`${join(dir, "config.json")}: not valid JSON`);
      // the pipeline's loader (ScheduledClip.fromDir) names the file too, before any worker starts
      const sched = new Scheduler();
      try {
        await expect(ScheduledClip.fromDir(sched, dir)).rejects.toThrow(`${join(dir, "config.json")}: not valid JSON`);
        await Bun.write(join(dir, "config.json"), JSON.stringify({ vision_config: { image_size: 64 } }));
        await Bun.write(join(dir, "preprocessor_config.json"), "garbage");
        await expect(ScheduledClip.fromDir(sched, dir)).rejects.toThrow(`${join(dir, "preprocessor_config.json")}: not valid JSON`);
      } finally {
        await sched.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
