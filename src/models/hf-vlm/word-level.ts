/**
 * clipflow's word-level tokenizer (the shapes world's) written as a Hugging Face `tokenizer.json`
 * (WordLevel model) that @huggingface/tokenizers — hence transformers.js — runs with the same
 * ids: Lowercase normalizer, a Split pre-tokenizer with the word tokenizer's own pattern (runs
 * of letters/digits; every other non-space character alone), the special tokens as added tokens
 * (so `<image>` in a prompt stays one token), `<unk>` for the rest. No post-processor: bos/eos
 * come from the chat template, as with clipflow's own prompt layout.
 * Decoding joins tokens with spaces and the tokenizers' default clean-up drops the space before
 * . , ! ? as clipflow does; clipflow also attaches ; : ) which that clean-up leaves spaced.
 *
 * The CLIP export writes the same tokenizer as a WordPiece tokenizer.json (tokenizer-files.ts);
 * the pieces both share (vocabulary, special added tokens, normalizer, word pattern, special-token
 * names, key order) come from there. What stays here differs by necessity: the model type, no
 * post-processor or decoder, added tokens in special-name order and a Split that drops spaces —
 * all part of the bytes already exported (test/models/word-tokenizer-json.test.ts pins them).
 */
import { HfTokenizer } from "../hf-tokenizer.ts";
import { specialAddedToken, specialTokenNames, WORD_PATTERN, wordTokenizerJsonFrame, wordVocab } from "../tokenizer-files.ts";
import type { WordTokenizer } from "../word-tokenizer.ts";

/**
 * @example
 * const hfTok = wordLevelTokenizer(lvlm.tokenizer as WordTokenizer);
 * hfTok.encode("a red circle.", { addSpecialTokens: false }).ids; // the word tokenizer's ids
 */
export function wordLevelTokenizer(tok: WordTokenizer): HfTokenizer {
  const file = tok.toJSON();
  const vocab = wordVocab(file);
  const tokenizerJson = wordTokenizerJsonFrame(file, {
    added_tokens: Object.values(file.specials).map((content) => specialAddedToken(vocab[content]!, content)),
    pre_tokenizer: { type: "Split", pattern: { Regex: WORD_PATTERN }, behavior: "Removed", invert: true },
    post_processor: null,
    decoder: null,
    model: { type: "WordLevel", vocab, unk_token: file.specials.unk },
  });
  const tokenizerConfig: Record<string, unknown> = {
    tokenizer_class: "PreTrainedTokenizerFast",
    ...specialTokenNames(file),
    padding_side: "left",
    ...(file.model_max_length ? { model_max_length: file.model_max_length } : {}),
  };
  return HfTokenizer.fromJSON(tokenizerJson, tokenizerConfig, "word-level tokenizer.json");
}
