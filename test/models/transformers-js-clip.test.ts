/**
 * The shipped shapes-clip folder loads in @huggingface/transformers (the reference reader, a
 * devDependency used only in tests): AutoTokenizer gives clipflow's token ids, and
 * CLIPTextModelWithProjection / CLIPVisionModelWithProjection give clipflow's embeddings.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { AutoTokenizer, CLIPTextModelWithProjection, CLIPVisionModelWithProjection, env, Tensor } from "@huggingface/transformers";
import { loadClip } from "../../src/models/hf-clip.ts";
import { HfTokenizer } from "../../src/models/hf-tokenizer.ts";
import { preprocessImage } from "../../src/models/image-preprocess.ts";
import { loadTokenizer, saveTokenizer, wordTokenizerJson } from "../../src/models/tokenizer-files.ts";
import { WordTokenizer } from "../../src/models/word-tokenizer.ts";
import { png } from "../operators/fixtures.ts";
import { tinyClipBpe } from "./tokenizer-fixtures.ts";

env.allowRemoteModels = false;
env.allowLocalModels = true;
env.useFSCache = false;

const shipped = join(import.meta.dir, "../../models/shapes-clip");
const tmp = mkdtempSync(join(tmpdir(), "clipflow-tjs-clip-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** transformers.js resolves a model id against env.localModelPath. */
function local(dir: string): string {
  env.localModelPath = dirname(dir) + "/";
  return basename(dir);
}

const TEXTS = [
  "A red circle above a blue square.",
  "There are TWO green hearts!",
  "a <image> zebra-like thing, (unknown) words... 42",
  "The word sale is written in the picture.",
  "",
];

const idsOf = (t: Tensor): number[] => Array.from(t.data as BigInt64Array, Number);

describe("shapes-clip in transformers.js", () => {
  test.skipIf(!existsSync(join(shipped, "config.json")))(
    "AutoTokenizer gives clipflow's ids; text and image embeddings equal clipflow's within 1e-4",
    async () => {
      const ours = await loadClip(shipped);
      {
        expect(ours.tokenizer).toBeInstanceOf(WordTokenizer); // clipflow keeps reading word_vocab.json
        const tok = await AutoTokenizer.from_pretrained(local(shipped), { local_files_only: true });
        for (const t of TEXTS) {
          const want = ours.tokenizer.encode(t, { maxLength: Infinity }).ids;
          expect(idsOf(tok(t).input_ids as Tensor)).toEqual(want);
        }
        // unknown words are <unk>, not pieces
        const unk = ours.tokenizer.special.unk!;
        expect(ours.tokenizer.encode("zebra", { maxLength: Infinity }).ids).toEqual([ours.tokenizer.special.bos, unk, ours.tokenizer.special.eos]);

        const textModel = await CLIPTextModelWithProjection.from_pretrained(local(shipped), { dtype: "fp32", device: "cpu", local_files_only: true });
        const E = ours.embedDim;
        const texts = TEXTS.slice(0, 4);
        const want = await ours.encodeTexts(texts); // [4, E], one padded batch
        // transformers.js: one padded batch too (attention_mask marks the padding)
        const enc = tok(texts, { padding: true });
        const out = (await textModel(enc)) as { text_embeds: Tensor };
        expect(out.text_embeds.dims).toEqual([4, E]);
        const got = out.text_embeds.data as Float32Array;
        let maxd = 0;
        for (let i = 0; i < 4 * E; i++) maxd = Math.max(maxd, Math.abs(got[i]! - want[i]!));
        expect(maxd).toBeLessThan(1e-4);
        // and unpadded, one text at a time
        const one = (await textModel(tok(texts[1]!))) as { text_embeds: Tensor };
        const o = one.text_embeds.data as Float32Array;
        for (let k = 0; k < E; k++) expect(Math.abs(o[k]! - want[E + k]!)).toBeLessThan(1e-4);
        await textModel.dispose();

        // the vision tower on the same pixels
        const visionModel = await CLIPVisionModelWithProjection.from_pretrained(local(shipped), { dtype: "fp32", device: "cpu", local_files_only: true });
        const px = await preprocessImage(await png(200, 40, 40, 64), ours.preprocess); // [3, 64, 64]
        const img = (await visionModel({ pixel_values: new Tensor("float32", px, [1, 3, 64, 64]) })) as { image_embeds: Tensor };
        const wantImg = await ours.encodeImages(px, 1);
        const gi = img.image_embeds.data as Float32Array;
        for (let k = 0; k < E; k++) expect(Math.abs(gi[k]! - wantImg[k]!)).toBeLessThan(1e-4);
        await visionModel.dispose();
      }
    },
    120_000,
  );

  test("the shipped tokenizer.json is what wordTokenizerJson writes for word_vocab.json (the two cannot drift)", async () => {
    const tok = WordTokenizer.fromJSON(JSON.parse(readFileSync(join(shipped, "word_vocab.json"), "utf8")));
    const { tokenizerJson, tokenizerConfig } = wordTokenizerJson(tok);
    expect(JSON.parse(readFileSync(join(shipped, "tokenizer.json"), "utf8"))).toEqual(tokenizerJson);
    expect(JSON.parse(readFileSync(join(shipped, "tokenizer_config.json"), "utf8"))).toEqual(tokenizerConfig);
  });

  test("a word tokenizer saved by clipflow: the tokenizer.json read by @huggingface/tokenizers (HfTokenizer) gives the same ids", async () => {
    const tok = WordTokenizer.fromWords(["a", "red", "circle", ".", "é", "naïve", "2"], { modelMaxLength: 12 });
    const dir = join(tmp, "word");
    await saveTokenizer(tok, dir);
    expect(await loadTokenizer(dir)).toBeInstanceOf(WordTokenizer);
    const hf = HfTokenizer.fromJSON(JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8")), JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8")));
    for (const t of ["A red circle.", "NAÏVE circles 22 2", "a<image>red <pad>é!", "  \t a \n red  "]) {
      expect(hf.encode(t, { maxLength: Infinity }).ids).toEqual(tok.encode(t, { maxLength: Infinity }).ids);
    }
  });

  test("a tokenizer_config.json with {content, special} token entries is saved in a form transformers.js accepts", async () => {
    const { tokenizerJson, tokenizerConfig } = tinyClipBpe();
    const cfg = { ...tokenizerConfig, unk_token: { content: "<|endoftext|>", special: true }, bos_token: { content: "<|startoftext|>", lstrip: false }, additional_special_tokens: [{ content: "<|endoftext|>" }] };
    const ours = HfTokenizer.fromJSON(tokenizerJson, cfg);
    const dir = join(tmp, "bpe");
    await saveTokenizer(ours, dir);
    const written = JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8"));
    expect([written.unk_token, written.bos_token, written.additional_special_tokens]).toEqual(["<|endoftext|>", "<|startoftext|>", ["<|endoftext|>"]]);
    const tjs = await AutoTokenizer.from_pretrained(local(dir), { local_files_only: true });
    expect(idsOf(tjs("a red circle.").input_ids as Tensor)).toEqual(ours.encode("a red circle.", { maxLength: Infinity }).ids);
  }, 30_000);
});
