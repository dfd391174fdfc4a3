/**
 * The shipped shapes-world policy (models/shapes-lvlm, word-level tokenizer) exported in the
 * Hugging Face layout: transformers.js generates clipflow's greedy captions on held-out scenes,
 * and the word tokenizer written as a WordLevel tokenizer.json gives the same ids.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { AutoProcessor, env, LlavaForConditionalGeneration, RawImage, Tensor } from "@huggingface/transformers";
import { CAPTION_PROMPTS } from "../../../demo/world/captions.ts";
import { captionScene, generateScenes, renderScene } from "../../../demo/world/index.ts";
import { generate } from "../../../src/models/generate.ts";
import { exportHfVlm } from "../../../src/models/hf-vlm/export.ts";
import { loadHfVlm } from "../../../src/models/hf-vlm/policy.ts";
import { wordLevelTokenizer } from "../../../src/models/hf-vlm/word-level.ts";
import { preprocessImage } from "../../../src/models/image-preprocess.ts";
import { loadLvlm } from "../../../src/models/lvlm-io.ts";
import type { LvlmModel } from "../../../src/models/lvlm-model.ts";
import { WordTokenizer } from "../../../src/models/word-tokenizer.ts";

env.allowRemoteModels = false;
env.allowLocalModels = true;

const SHIPPED = "models/shapes-lvlm";

describe.skipIf(!existsSync(join(SHIPPED, "config.json")))("shapes-lvlm in the Hugging Face layout", () => {
  let lvlm: LvlmModel;
  let dir: string;
  beforeAll(async () => {
    lvlm = await loadLvlm(SHIPPED);
    dir = mkdtempSync(join(tmpdir(), "clipflow-shapes-hf-"));
    await exportHfVlm(lvlm, dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("the word tokenizer as a WordLevel tokenizer.json gives the same ids", () => {
    const word = lvlm.tokenizer as WordTokenizer;
    const hf = wordLevelTokenizer(word);
    const texts = [...CAPTION_PROMPTS, ...generateScenes("heldout", 20, { seed: 4 }).map((s) => captionScene(s).text), "A Zebra <image> near 3 stars?!"];
    for (const t of texts) expect(hf.encode(t, { addSpecialTokens: false }).ids).toEqual(word.encode(t, { addSpecialTokens: false }).ids);
    expect(hf.encode("zebra", { addSpecialTokens: false }).ids).toEqual([word.special.unk!]);
  });

  test("transformers.js generates clipflow's greedy captions; the hf-onnx-vlm policy reads the folder as clipflow's prompt layout", async () => {
    env.localModelPath = dirname(dir) + "/";
    const m = await LlavaForConditionalGeneration.from_pretrained(basename(dir), { dtype: "fp32", device: "cpu", local_files_only: true });
    const policy = await loadHfVlm(dir);
    const scenes = generateScenes("heldout", 4, { seed: 9 });
    const S = lvlm.cfg.vision.imageSize;
    let stopped = 0;
    for (let i = 0; i < scenes.length; i++) {
      const pixels = await preprocessImage(await renderScene(scenes[i]!, { size: S }), lvlm.preprocess);
      const prompt = CAPTION_PROMPTS[i % CAPTION_PROMPTS.length]!;
      const ids = policy.promptIds(prompt);
      expect(ids.slice(lvlm.imageTokens)).toEqual(lvlm.promptIds(prompt));
      const out = (await m.generate({
        input_ids: new Tensor("int64", BigInt64Array.from(ids, (x) => BigInt(x)), [1, ids.length]),
        attention_mask: new Tensor("int64", new BigInt64Array(ids.length).fill(1n), [1, ids.length]),
        pixel_values: new Tensor("float32", pixels, [1, 3, S, S]),
        max_new_tokens: 40,
        do_sample: false,
      })) as Tensor;
      const tokens = (out.tolist() as bigint[][])[0]!.slice(ids.length).map(Number);
      const [want] = await generate(lvlm, pixels, prompt, { maxNewTokens: 40, temperature: 0 });
      expect(tokens).toEqual(want!.tokens);
      expect(want!.text.split(" ").length).toBeGreaterThan(3); // a real caption, not an empty answer
      if (want!.finish === "stop") stopped++;
    }
    expect(stopped).toBe(scenes.length);
  }, 120_000);

  test("the README's transformers.js lines (AutoProcessor, chat template, processor(image, text)) caption like clipflow", async () => {
    env.localModelPath = dirname(dir) + "/";
    const name = basename(dir);
    const model = await LlavaForConditionalGeneration.from_pretrained(name, { dtype: "fp32", local_files_only: true });
    const processor = await AutoProcessor.from_pretrained(name, { local_files_only: true });
    const scene = generateScenes("heldout", 3, { seed: 21 })[2]!;
    const png = await renderScene(scene, { size: lvlm.cfg.vision.imageSize });
    const text = processor.apply_chat_template([{ role: "user", content: [{ type: "image" }, { type: "text", text: "Describe the image." }] }], { add_generation_prompt: true }) as string;
    const inputs = await processor(await RawImage.fromBlob(new Blob([png])), text);
    const out = (await model.generate({ ...inputs, max_new_tokens: 48, do_sample: false })) as Tensor;
    const caption = processor.batch_decode(out.slice(null, [inputs.input_ids.dims[1], null]), { skip_special_tokens: true })[0];
    const [want] = await generate(lvlm, await preprocessImage(png, lvlm.preprocess), "Describe the image.", { maxNewTokens: 48, temperature: 0 });
    expect(caption).toBe(want!.text);
  }, 120_000);
});
