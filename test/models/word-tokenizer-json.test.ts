/**
 * The two Hugging Face forms of clipflow's word tokenizer — the CLIP export's WordPiece
 * tokenizer.json (tokenizer-files.ts) and the VLM export's WordLevel one (hf-vlm/word-level.ts) —
 * share their vocabulary, special-token, normalizer and word-pattern pieces. Sharing them must not
 * change a byte of what either export writes: the sha256 digests below were taken from both
 * writers before the shared pieces were factored out (three vocabularies: lowercase, cased, and
 * specials placed after ordinary words so the two added-token orderings differ).
 */
import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { wordLevelTokenizer } from "../../src/models/hf-vlm/word-level.ts";
import { saveTokenizer } from "../../src/models/tokenizer-files.ts";
import { WORD_VOCAB_FORMAT, WordTokenizer } from "../../src/models/word-tokenizer.ts";

const sha256 = (s: string): string => createHash("sha256").update(s).digest("hex");

const WORDS = ["red", "circle", "Blue", "square", "a", "."];
const CASES: Record<string, () => WordTokenizer> = {
  lowercase: () => WordTokenizer.fromWords(WORDS, { lowercase: true, modelMaxLength: 32 }),
  cased: () => WordTokenizer.fromWords(WORDS, { lowercase: false, modelMaxLength: 32 }),
  // Specials after ordinary words and in another order than their keys: the CLIP form lists
  // added tokens by id, the VLM form by special name; both orders are part of the bytes.
  "specials late": () =>
    WordTokenizer.fromJSON({
      format: WORD_VOCAB_FORMAT,
      version: 1,
      lowercase: true,
      specials: { pad: "<pad>", bos: "<bos>", eos: "<eos>", unk: "<unk>", image: "<image>" },
      tokens: ["a", "<image>", "red", "<eos>", "circle", "<unk>", "<bos>", ".", "<pad>"],
    }),
};

/** Digests before the refactor: [CLIP tokenizer.json, CLIP tokenizer_config.json, VLM tokenizer.json]. */
const BEFORE: Record<string, [string, string, string]> = {
  lowercase: [
    "300ae093bd69bef970a095440bd3e80a9828302e9403064f35b47bbd2af782a1",
    "00ae310f07a00cacb24a8e7b8edcc29a572f46c97169743aa86bb0dcbdcb6189",
    "eb00dcd54c41e4fde6ffe7f80b30ac09abf7fbe7d88bc473b77462553b734e75",
  ],
  cased: [
    "958d8c1fbc6e072a843b2e034de2747acedcc367d9bf288ad543a0022ca3a22f",
    "b7dba1bf6c8e52bcfd7364a3e8945191654f070b628c6e17775eb8c149dfda33",
    "f8a1c3f859b299c451ef280e09d7be54127088ebfcd2b07b47dc1ae2e443e503",
  ],
  "specials late": [
    "b1c190b8538572281605b3998740ddc350e52c7bb6064bd7098524fd014d76f9",
    "3f40102c89f1bb951d4fba4b05a77991eebb82cfd819370e21ff54e851ff2445",
    "fe1e3054a56378a57bd04d025997e45ad36490f583f0f0971dc3eaae60a193fe",
  ],
};

describe("word tokenizer as tokenizer.json: both exports unchanged byte for byte", () => {
  for (const [name, make] of Object.entries(CASES)) {
    test(name, async () => {
      const tok = make();
      const dir = mkdtempSync(join(tmpdir(), "clipflow-tokjson-"));
      try {
        // What the CLIP export writes (hf-clip.ts saves the tokenizer through saveTokenizer).
        await saveTokenizer(tok, dir);
        const clipJson = readFileSync(join(dir, "tokenizer.json"), "utf8");
        const clipCfg = readFileSync(join(dir, "tokenizer_config.json"), "utf8");
        // What the VLM export writes (hf-vlm/export.ts: JSON.stringify(tok.tokenizerJson)).
        const vlmJson = JSON.stringify(wordLevelTokenizer(tok).tokenizerJson);
        expect([sha256(clipJson), sha256(clipCfg), sha256(vlmJson)]).toEqual(BEFORE[name]!);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  test("the two forms encode like the word tokenizer (the pieces they share mean the same)", () => {
    const tok = CASES["specials late"]!();
    const vlm = wordLevelTokenizer(tok);
    const text = "A red <image> circle. green";
    expect(vlm.encode(text, { addSpecialTokens: false }).ids).toEqual(tok.encode(text, { addSpecialTokens: false }).ids);
  });
});
