/**
 * clipflow's word-level tokenizer (the shapes world's) written as a Hugging Face `tokenizer.json`
 * (WordLevel model) that @huggingface/tokenizers — hence transformers.js — runs with the same
 * ids: Lowercase normalizer, a Split pre-tokenizer with the word tokenizer's own pattern (runs
 * of letters/digits; every other non-space character alone), the special tokens as added tokens
 * (so `<image>` in a prompt stays one token), `<unk>` for the rest. No post-processor: bos/eos
 * come from the chat template, as with clipflow's own prompt layout.
 * Decoding joins tokens with spaces and the tokenizers' default clean-up drops the space before
 * . , ! ? as clipflow does; clipflow also attaches ; : ) which that clean-up leaves spaced.
 */
import { HfTokenizer } from "../hf-tokenizer.ts";
import type { WordTokenizer } from "../word-tokenizer.ts";

/**
 * @example
 * const hfTok = wordLevelTokenizer(lvlm.tokenizer as WordTokenizer);
 * hfTok.encode("a red circle.", { addSpecialTokens: false }).ids; // the word tokenizer's ids
 */
export function wordLevelTokenizer(tok: WordTokenizer): HfTokenizer {
  const file = tok.toJSON();
  const vocab: Record<string, number> = {};
  file.tokens.forEach((t, i) => (vocab[t] = i));
  const specials = Object.values(file.specials);
  const tokenizerJson = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specials.map((content) => ({ id: vocab[content]!, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: file.lowercase ? { type: "Lowercase" } : null,
    pre_tokenizer: { type: "Split", pattern: { Regex: "[\\p{L}\\p{N}]+|[^\\s\\p{L}\\p{N}]" }, behavior: "Removed", invert: true },
    post_processor: null,
    decoder: null,
    model: { type: "WordLevel", vocab, unk_token: file.specials.unk },
  };
  const tokenizerConfig: Record<string, unknown> = {
    tokenizer_class: "PreTrainedTokenizerFast",
    bos_token: file.specials.bos,
    eos_token: file.specials.eos,
    pad_token: file.specials.pad,
    unk_token: file.specials.unk,
    padding_side: "left",
    ...(file.model_max_length ? { model_max_length: file.model_max_length } : {}),
  };
  return HfTokenizer.fromJSON(tokenizerJson, tokenizerConfig, "word-level tokenizer.json");
}
