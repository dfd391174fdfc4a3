/**
 * The Hugging Face ONNX VLM layout, both directions, against transformers.js on the same folder:
 * a tiny random LVLM exported by clipflow (fixture.ts) loads in @huggingface/transformers
 * (offline, local folder), and clipflow's hf-onnx-vlm policy — sessions in the scheduler's
 * worker threads, continuous batching over the growing past/present KV cache — gives the same
 * image features and first-step logits (1e-4) and the same greedy tokens, for one prompt and for
 * a padded batch of prompts of mixed lengths. The same folder written with clipflow's own prompt
 * layout reproduces the built-in policy's sampled tokens and log-probs exactly.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, readdirSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { env, LlavaForConditionalGeneration, Tensor } from "@huggingface/transformers";
import { generate } from "../../../src/models/generate.ts";
import { clipflowChatTemplate } from "../../../src/models/hf-vlm/export.ts";
import { localSessions, type LocalSessions } from "../../../src/models/hf-vlm/local.ts";
import { HfVlm, loadHfVlm } from "../../../src/models/hf-vlm/policy.ts";
import { Decoder } from "../../../src/scheduler/decoder.ts";
import { Scheduler } from "../../../src/scheduler/scheduler.ts";
import { Rng } from "../../../src/util/rng.ts";
import { writeTinyVlm, type TinyVlm } from "./fixture.ts";

env.allowRemoteModels = false;
env.allowLocalModels = true;

type TjsModel = Awaited<ReturnType<typeof LlavaForConditionalGeneration.from_pretrained>>;

async function loadTjs(dir: string): Promise<TjsModel> {
  env.localModelPath = dirname(dir) + "/";
  return LlavaForConditionalGeneration.from_pretrained(basename(dir), { dtype: "fp32", device: "cpu", local_files_only: true });
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

/** Left-padded batch for transformers.js (its generate appends after the last column). */
function leftPadded(rows: number[][], pad: number): { input_ids: Tensor; attention_mask: Tensor } {
  const T = Math.max(...rows.map((r) => r.length));
  const ids = new BigInt64Array(rows.length * T).fill(BigInt(pad));
  const mask = new BigInt64Array(rows.length * T);
  rows.forEach((r, b) => r.forEach((t, i) => {
    ids[b * T + T - r.length + i] = BigInt(t);
    mask[b * T + T - r.length + i] = 1n;
  }));
  return { input_ids: new Tensor("int64", ids, [rows.length, T]), attention_mask: new Tensor("int64", mask, [rows.length, T]) };
}

const PROMPTS = ["describe the image.", "what is red?", "the star", "describe the shapes and the colors in the image, then the star."];

describe("hf-onnx-vlm: a chat-template folder against transformers.js", () => {
  let t: TinyVlm;
  let policy: HfVlm;
  let local: LocalSessions;
  let tjs: TjsModel;
  let pixels: Float32Array[];
  beforeAll(async () => {
    t = await writeTinyVlm({ seed: 5 });
    policy = await loadHfVlm(t.dir);
    local = await localSessions(policy);
    tjs = await loadTjs(t.dir);
    const rng = new Rng(3);
    const S = policy.imageSize;
    pixels = PROMPTS.map(() => Float32Array.from({ length: 3 * S * S }, () => rng.normal()));
  });
  afterAll(async () => {
    await local?.release();
    rmSync(t.dir, { recursive: true, force: true });
  });

  test("the folder has the layout's files; prompts follow the chat template with the image expanded", () => {
    const files = [...readdirSync(t.dir), ...readdirSync(join(t.dir, "onnx")).map((f) => `onnx/${f}`)].sort();
    expect(files).toEqual(["config.json", "generation_config.json", "onnx", "onnx/decoder_model_merged.onnx", "onnx/embed_tokens.onnx", "onnx/vision_encoder.onnx", "preprocessor_config.json", "processor_config.json", "tokenizer.json", "tokenizer_config.json"]);
    expect(policy.renderPrompt("what is red?")).toBe("<s>user: <image>what is red? assistant:");
    const ids = policy.promptIds("what is red?");
    const img = policy.imageTokenId;
    expect(ids.filter((x) => x === img).length).toBe(4); // (16 / 8)² patches
    expect(ids.indexOf(img)).toBeGreaterThan(1); // after bos and "user:"
    expect(policy.stopTokens).toEqual([2]);
    expect(policy.featureDims).toEqual([4, 32]);
  });

  test("image features and first-step logits equal transformers.js within 1e-4: batch 1 and a padded batch", async () => {
    const S = policy.imageSize;
    const all = new Float32Array(PROMPTS.length * 3 * S * S);
    pixels.forEach((p, i) => all.set(p, i * 3 * S * S));
    const ours = await local.vision(all, PROMPTS.length);
    const ref = await tjs.encode_image({ pixel_values: new Tensor("float32", all, [PROMPTS.length, 3, S, S]) });
    expect(ref.dims).toEqual([PROMPTS.length, 4, 32]);
    expect(maxAbsDiff(ours, ref.data as Float32Array)).toBeLessThan(1e-4);

    const rows = PROMPTS.map((p) => policy.promptIds(p));
    expect(new Set(rows.map((r) => r.length)).size).toBe(PROMPTS.length); // mixed lengths
    const pre = await policy.prefill(local.run, ours, rows); // right-padded, one call
    const V = policy.vocabSize;
    for (const batch of [[0], [0, 1, 2, 3]]) {
      const { input_ids, attention_mask } = leftPadded(batch.map((i) => rows[i]!), policy.padTokenId);
      const px = new Float32Array(batch.length * 3 * S * S);
      batch.forEach((i, b) => px.set(pixels[i]!, b * 3 * S * S));
      const out = await tjs({ input_ids, attention_mask, pixel_values: new Tensor("float32", px, [batch.length, 3, S, S]) });
      const T = input_ids.dims[1]!;
      expect(out.logits.dims).toEqual([batch.length, T, V]);
      batch.forEach((i, b) => {
        const last = (out.logits.data as Float32Array).subarray((b * T + T - 1) * V, (b * T + T) * V);
        expect(maxAbsDiff(pre.logits.subarray(i * V, (i + 1) * V), last)).toBeLessThan(1e-4);
      });
    }
  }, 60_000);

  // transformers.js 4.3.2's image-text-to-text forward rebuilds the attention mask of every
  // decode step as ones over the whole past while pixel_values stay in the inputs
  // (generic_text_to_text_forward, "This branch handles the cache case"), and derives positions
  // from that mask: in a left-padded batch its pads become visible from the second new token on,
  // so its padded-batch tokens are not its own batch-1 tokens. The reference for each prompt of
  // a padded batch is therefore transformers.js on that prompt alone; its padded batch is
  // compared on the first step (above), and on a batch of equal-length prompts (no padding).
  test("greedy tokens through the scheduler's continuous batcher equal transformers.js generate: batch 1, a padded batch, an unpadded batch", async () => {
    const rows = PROMPTS.map((p) => policy.promptIds(p));
    const S = policy.imageSize;
    const maxNew = 20;
    const reference = async (batch: number[], images = batch.map((i) => pixels[i]!)): Promise<number[][]> => {
      const { input_ids, attention_mask } = leftPadded(batch.map((i) => rows[i]!), policy.padTokenId);
      const px = new Float32Array(batch.length * 3 * S * S);
      images.forEach((p, b) => px.set(p, b * 3 * S * S));
      const out = (await tjs.generate({ input_ids, attention_mask, pixel_values: new Tensor("float32", px, [batch.length, 3, S, S]), max_new_tokens: maxNew, do_sample: false })) as Tensor;
      const T = input_ids.dims[1]!;
      return (out.tolist() as bigint[][]).map((r) => {
        const gen = r.slice(T).map(Number);
        const end = gen.indexOf(2);
        return end >= 0 ? gen.slice(0, end + 1) : gen;
      });
    };
    const s = new Scheduler();
    try {
      const gen = new Decoder(s, "hf", policy, { maxBatch: 3, minJoin: 1 });
      await gen.ready;
      const greedy = { maxNewTokens: maxNew, temperature: 0 };
      const one = await gen.run({ pixels: pixels[3]!, prompt: PROMPTS[3]! }, greedy);
      expect(one.map((x) => x.tokens)).toEqual(await reference([3]));
      // 4 prompts of mixed lengths through 3 rows (left-padded past, holes masked)
      const got = await Promise.all(PROMPTS.map((prompt, i) => gen.run({ pixels: pixels[i]!, prompt }, greedy)));
      const want: number[][] = [];
      for (let i = 0; i < PROMPTS.length; i++) want.push((await reference([i]))[0]!);
      expect(got.map((x) => x[0]!.tokens)).toEqual(want);
      expect(new Set(want.map((x) => x.join())).size).toBeGreaterThan(2); // answers differ by prompt and image
      expect(got[0]![0]!.text).toBe(policy.decodeTokens(want[0]!));
      // equal-length prompts (no padding anywhere): transformers.js's own batch
      const same = await Promise.all([0, 1, 2].map((k) => gen.run({ pixels: pixels[k]!, prompt: PROMPTS[0]! }, greedy)));
      expect(same.map((x) => x[0]!.tokens)).toEqual(await reference([0, 0, 0], [0, 1, 2].map((k) => pixels[k]!)));
      const st = gen.stats();
      expect(st.prefillPrompts).toBe(8);
      expect(st.running).toBe(0);
    } finally {
      await s.close();
    }
  }, 60_000);
});
