/**
 * Export the other way, proven on a tiny random policy: clipflow's LVLM written in the Hugging
 * Face layout with clipflow's own prompt layout (clipflowChatTemplate) is the same model when
 * run back as an hf-onnx-vlm policy — sampled tokens (seeds, top-k/top-p, samples joining and
 * leaving the continuous batcher) and log-probs equal the built-in reference — and
 * transformers.js generates the built-in policy's greedy captions from the folder. Also: same
 * config, same bytes; unsupported variants refused with one line naming the file or key.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { env, LlavaForConditionalGeneration, Tensor } from "@huggingface/transformers";
import { generate, type Sample } from "../../../src/models/generate.ts";
import { clipflowChatTemplate, exportHfVlm } from "../../../src/models/hf-vlm/export.ts";
import { WorkerHost } from "../../../src/scheduler/model-host.ts";
import { hostSessions, localSessions, type LocalSessions } from "../../../src/models/hf-vlm/local.ts";
import { HfVlm, loadHfVlm } from "../../../src/models/hf-vlm/policy.ts";
import { Decoder } from "../../../src/scheduler/decoder.ts";
import { Scheduler } from "../../../src/scheduler/scheduler.ts";
import { Rng } from "../../../src/util/rng.ts";
import { writeTinyVlm, type TinyVlm } from "./fixture.ts";

env.allowRemoteModels = false;
env.allowLocalModels = true;

const PROMPTS = ["describe the image.", "what is red?", "the star", "describe the shapes and the colors"];

describe("hf-onnx-vlm: clipflow's policy exported in the layout", () => {
  let t: TinyVlm;
  let policy: HfVlm;
  let local: LocalSessions;
  let pixels: Float32Array[];
  const tmp: string[] = [];
  beforeAll(async () => {
    t = await writeTinyVlm({ seed: 7, eosBias: 4, chatTemplate: clipflowChatTemplate() });
    policy = await loadHfVlm(t.dir);
    local = await localSessions(policy);
    const rng = new Rng(8);
    const S = policy.imageSize;
    pixels = PROMPTS.map(() => Float32Array.from({ length: 3 * S * S }, () => rng.normal()));
  });
  afterAll(async () => {
    await local?.release();
    for (const d of [t.dir, ...tmp]) rmSync(d, { recursive: true, force: true });
  });

  test("prompt ids are clipflow's: the image's tokens, then bos and the prompt", () => {
    const ids = policy.promptIds("what is red?");
    expect(ids).toEqual([...new Array<number>(4).fill(policy.imageTokenId), ...t.lvlm.promptIds("what is red?")]);
  });

  test("sampled tokens and logps through the continuous batcher equal the built-in policy's reference", async () => {
    const sampling = { maxNewTokens: 12, temperature: 1.3, topK: 12, topP: 0.97 } as const;
    const ns = [3, 1, 4, 2];
    const s = new Scheduler();
    try {
      const gen = new Decoder(s, "hf", policy, { maxBatch: 4, minJoin: 1 });
      const got = await Promise.all(PROMPTS.map((prompt, i) => gen.run({ pixels: pixels[i]!, prompt, n: ns[i]!, seed: 50 + i }, sampling)));
      const lengths = new Set<number>();
      for (let i = 0; i < PROMPTS.length; i++) {
        const want: Sample[] = await generate(t.lvlm, pixels[i]!, PROMPTS[i]!, { ...sampling, n: ns[i]!, seed: 50 + i });
        expect(got[i]!.map((x) => x.tokens)).toEqual(want.map((x) => x.tokens));
        expect(got[i]!.map((x) => x.finish)).toEqual(want.map((x) => x.finish));
        got[i]!.forEach((x, j) => expect(Math.abs(x.logp - want[j]!.logp)).toBeLessThan(1e-4));
        for (const x of want) lengths.add(x.nTokens);
      }
      expect(lengths.size).toBeGreaterThan(3); // sequences of different lengths joined and left
      const st = gen.stats();
      expect(st.joinedRunning).toBeGreaterThan(0);
      expect(st.finished).toBe(10);
      expect(st.kvCopiedFloats).toBeGreaterThan(0);
    } finally {
      await s.close();
    }
  }, 60_000);

  test("log-probs of given responses (one teacher-forced pass) equal the built-in policy's, batched and padded", async () => {
    const answers = ["a red star.", "the circle", "red and blue shapes and a star", "star"];
    const S = policy.imageSize;
    const all = new Float32Array(PROMPTS.length * 3 * S * S);
    pixels.forEach((p, i) => all.set(p, i * 3 * S * S));
    const feats = await local.vision(all, PROMPTS.length);
    const items = PROMPTS.map((p, i) => policy.scoredText(p, answers[i]!));
    const ours = await policy.sequenceLogps(local.run, feats, items);
    const ref = await t.lvlm.sequenceLogps(all, PROMPTS.map((p, i) => t.lvlm.scoredText(p, answers[i]!)));
    expect(Array.from(ours.nTokens)).toEqual(Array.from(ref.nTokens));
    for (let i = 0; i < PROMPTS.length; i++) expect(Math.abs(ours.logps[i]! - ref.logps[i]!)).toBeLessThan(1e-4);
    expect(new Set(Array.from(ours.nTokens)).size).toBeGreaterThan(2);
    // one at a time (no padding) gives the same sums; so do the sessions in a worker thread
    const single = await policy.sequenceLogps(local.run, feats.subarray(0, 4 * 32), [items[0]!]);
    expect(Math.abs(single.logps[0]! - ours.logps[0]!)).toBeLessThan(1e-4);
    const w = await hostSessions(policy, new WorkerHost("cpu"));
    try {
      const inWorker = await policy.sequenceLogps(w.run, await w.vision(all.slice(), PROMPTS.length), items);
      expect(Array.from(inWorker.logps)).toEqual(Array.from(ours.logps));
    } finally {
      await w.release();
    }
    // and as scheduled scoring work of the policy's decoder
    const s = new Scheduler();
    try {
      const gen = new Decoder(s, "hf-score", policy, { maxBatch: 2, scoring: true });
      const got = await gen.logps(PROMPTS.map((prompt, i) => ({ pixels: pixels[i]!, prompt, response: answers[i]! })));
      got.forEach((x, i) => {
        expect(Math.abs(x.logp - ref.logps[i]!)).toBeLessThan(1e-4);
        expect(x.nTokens).toBe(ref.nTokens[i]!);
      });
    } finally {
      await s.close();
    }
  }, 60_000);

  test("transformers.js generates the built-in policy's greedy captions from the exported folder", async () => {
    env.localModelPath = dirname(t.dir) + "/";
    const m = await LlavaForConditionalGeneration.from_pretrained(basename(t.dir), { dtype: "fp32", device: "cpu", local_files_only: true });
    const S = policy.imageSize;
    let stopped = 0;
    for (let i = 0; i < PROMPTS.length; i++) {
      const ids = policy.promptIds(PROMPTS[i]!);
      const out = (await m.generate({
        input_ids: new Tensor("int64", BigInt64Array.from(ids, (x) => BigInt(x)), [1, ids.length]),
        attention_mask: new Tensor("int64", new BigInt64Array(ids.length).fill(1n), [1, ids.length]),
        pixel_values: new Tensor("float32", pixels[i]!, [1, 3, S, S]),
        max_new_tokens: 16,
        do_sample: false,
      })) as Tensor;
      const tokens = (out.tolist() as bigint[][])[0]!.slice(ids.length).map(Number);
      const [want] = await generate(t.lvlm, pixels[i]!, PROMPTS[i]!, { maxNewTokens: 16, temperature: 0 });
      expect(tokens).toEqual(want!.tokens);
      if (want!.finish === "stop") stopped++;
    }
    expect(stopped).toBeGreaterThan(0); // eos from generation_config ends transformers.js too
  }, 60_000);

  test("same policy and options, same bytes", async () => {
    const d = mkdtempSync(join(tmpdir(), "clipflow-hfvlm-again-"));
    tmp.push(d);
    await exportHfVlm(t.lvlm, d, { chatTemplate: clipflowChatTemplate() });
    const files = (dir: string) => [...readdirSync(dir).filter((f) => f !== "onnx"), ...readdirSync(join(dir, "onnx")).map((f) => `onnx/${f}`)].sort();
    expect(files(d)).toEqual(files(t.dir));
    for (const f of files(d)) expect(Buffer.compare(readFileSync(join(d, f)), readFileSync(join(t.dir, f)))).toBe(0);
  });

  test("unsupported variants and missing pieces are refused with one line naming the file or key", async () => {
    const variant = (edit: (dir: string) => void): string => {
      const d = mkdtempSync(join(tmpdir(), "clipflow-hfvlm-bad-"));
      tmp.push(d);
      cpSync(t.dir, d, { recursive: true });
      edit(d);
      return d;
    };
    const cfgEdit = (f: (c: Record<string, unknown>) => void) => (d: string) => {
      const c = JSON.parse(readFileSync(join(d, "config.json"), "utf8")) as Record<string, unknown>;
      f(c);
      writeFileSync(join(d, "config.json"), JSON.stringify(c));
    };
    const cases: [string, (d: string) => void, RegExp][] = [
      ["encoder-decoder", cfgEdit((c) => { c.model_type = "florence2"; c.is_encoder_decoder = true; }), /config\.json: encoder-decoder .*not supported/],
      ["image splitting", cfgEdit((c) => { c.image_grid_pinpoints = [[32, 32]]; }), /config\.json: image splitting \(image_grid_pinpoints/],
      ["no image token", cfgEdit((c) => { delete c.image_token_index; }), /config\.json: missing image_token_index/],
      ["no merged decoder", (d) => rmSync(join(d, "onnx/decoder_model_merged.onnx")), /missing onnx\/decoder_model_merged\.onnx/],
      ["no vision encoder", (d) => rmSync(join(d, "onnx/vision_encoder.onnx")), /missing onnx\/vision_encoder\.onnx/],
      ["no chat template", (d) => {
        const p = join(d, "tokenizer_config.json");
        const c = JSON.parse(readFileSync(p, "utf8")) as Record<string, unknown>;
        delete c.chat_template;
        writeFileSync(p, JSON.stringify(c));
      }, /missing tokenizer_config\.json chat_template/],
      ["no eos", (d) => {
        rmSync(join(d, "generation_config.json"));
        cfgEdit((c) => { delete c.eos_token_id; delete (c.text_config as Record<string, unknown>).eos_token_id; })(d);
      }, /missing generation_config\.json eos_token_id/],
    ];
    for (const [what, edit, re] of cases) {
      const err = await loadHfVlm(variant(edit)).then(() => undefined, (e: unknown) => e as Error);
      expect(err, what).toBeInstanceOf(Error);
      expect(err!.message, what).toMatch(re);
      expect(err!.message.includes("\n"), what).toBe(false);
    }
    // several images in one prompt
    const d = variant((dir) => {
      const p = join(dir, "tokenizer_config.json");
      const c = JSON.parse(readFileSync(p, "utf8")) as Record<string, unknown>;
      c.chat_template = "<image><image>{{ bos_token }}{{ messages[0]['content'][1]['text'] }}";
      writeFileSync(p, JSON.stringify(c));
    });
    const two = await loadHfVlm(d);
    expect(() => two.promptIds("what is red?")).toThrow(/2 image tokens '<image>'; exactly one image per prompt/);
    // a merged decoder without the layout's inputs: refused once its session loads, naming the file
    const wrong = await loadHfVlm(variant((dir) => cpSync(join(dir, "onnx/embed_tokens.onnx"), join(dir, "onnx/decoder_model_merged.onnx"))));
    const err = await localSessions(wrong).then(() => undefined, (e: unknown) => e as Error);
    expect(err?.message).toMatch(/onnx\/decoder_model_merged\.onnx: missing input inputs_embeds, input attention_mask, input position_ids, input past_key_values\.0\.key/);
    const s = new Scheduler();
    try {
      const gen = new Decoder(s, "wrong", wrong, { maxBatch: 2 });
      await expect(gen.ready).rejects.toThrow(/decoder 'wrong': .*decoder_model_merged\.onnx: missing input inputs_embeds/);
    } finally {
      await s.close();
    }
  });
});
