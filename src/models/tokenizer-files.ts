/**
 * How tokenizers are stored in a model folder.
 *
 * - Hugging Face tokenizers (CLIP BPE, ...): `tokenizer.json` (+ `tokenizer_config.json`), as
 *   transformers.js / Optimum exports have them.
 * - clipflow's word-level tokenizer: `word_vocab.json` (format `clipflow-word-vocab`, see
 *   word-tokenizer.ts), which clipflow reads, plus the same tokenizer as a `tokenizer.json`
 *   that Hugging Face readers (transformers.js, tokenizers) load: a WordPiece model whose
 *   vocabulary has no `##` continuations (so a word is itself or `<unk>`: WordLevel's behaviour;
 *   @huggingface/tokenizers has no WordLevel class and reads one only through its generic
 *   vocabulary fallback), a Lowercase normalizer, whitespace split then
 *   letter/digit runs and single marks isolated (word-tokenizer.ts's WORD_RE), the specials as
 *   added tokens matched before normalisation, and `<bos> $A <eos>`. Its `tokenizer_config.json`
 *   (class `PreTrainedTokenizerFast`, plain-string special tokens) carries
 *   `clipflow_vocab_file` so clipflow keeps reading the word vocabulary. Older folders with
 *   `tokenizer_class: ClipflowWordTokenizer` and no tokenizer.json still load.
 * Otherwise `tokenizer.json` is read.
 *
 * The VLM export writes the same word tokenizer in a second form (hf-vlm/word-level.ts: WordLevel
 * model, no post-processor because bos/eos come from the chat template). The pieces both forms
 * share — vocabulary, special added tokens, normalizer, word pattern, special-token names in the
 * config and the key order of the file — live here once (`wordTokenizerJsonFrame` and its
 * helpers); the model, pre-tokenizer, post-processor and decoder blocks differ by necessity and
 * stay with each form. test/models/word-tokenizer-json.test.ts pins both outputs byte for byte.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { HfTokenizer, portableTokenizerConfig } from "./hf-tokenizer.ts";
import { type Tokenizer, TokenizerError } from "./tokenizer.ts";
import { WordTokenizer, type WordVocabFile } from "./word-tokenizer.ts";

export const WORD_TOKENIZER_CLASS = "ClipflowWordTokenizer";
export const WORD_VOCAB_FILE = "word_vocab.json";

/**
 * word-tokenizer.ts's word rule (letter/digit runs, any other mark alone) as a Split
 * pre-tokenizer regex, for both Hugging Face forms of the word tokenizer.
 * @example { type: "Split", pattern: { Regex: WORD_PATTERN }, behavior: "Isolated", invert: false }
 */
export const WORD_PATTERN = "[\\p{L}\\p{N}]+|[^\\s\\p{L}\\p{N}]";

/** One entry of a tokenizer.json's `added_tokens`. */
export interface AddedToken {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/**
 * A word-tokenizer special as an added token: matched on the raw text before normalisation, so
 * `<image>` stays one token whatever the Lowercase normalizer would do to it.
 * @example specialAddedToken(4, "<image>") // { id: 4, content: "<image>", …, normalized: false, special: true }
 */
export function specialAddedToken(id: number, content: string): AddedToken {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/**
 * Token → id of a word vocabulary file (ids are positions in `tokens`).
 * @example wordVocab(tok.toJSON())["<pad>"] // 0
 */
export function wordVocab(v: WordVocabFile): Record<string, number> {
  const vocab: Record<string, number> = {};
  v.tokens.forEach((t, i) => (vocab[t] = i));
  return vocab;
}

/** The blocks that differ between the two Hugging Face forms (each form says why in its header). */
export interface WordTokenizerJsonBlocks {
  added_tokens: AddedToken[];
  pre_tokenizer: Record<string, unknown>;
  post_processor: Record<string, unknown> | null;
  decoder: Record<string, unknown> | null;
  model: Record<string, unknown>;
}

/**
 * A word tokenizer's tokenizer.json: the shared parts (format header, Lowercase normalizer when
 * the vocabulary lowercases) around a form's own blocks, in the key order both forms write.
 * @example const json = wordTokenizerJsonFrame(v, { added_tokens, pre_tokenizer, post_processor: null, decoder: null, model });
 */
export function wordTokenizerJsonFrame(v: WordVocabFile, b: WordTokenizerJsonBlocks): Record<string, unknown> {
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: b.added_tokens,
    normalizer: v.lowercase ? { type: "Lowercase" } : null,
    pre_tokenizer: b.pre_tokenizer,
    post_processor: b.post_processor,
    decoder: b.decoder,
    model: b.model,
  };
}

/**
 * The special-token names of a tokenizer_config.json (plain strings, the form transformers.js reads).
 * @example { tokenizer_class: "PreTrainedTokenizerFast", ...specialTokenNames(v) }
 */
export function specialTokenNames(v: WordVocabFile): { bos_token: string; eos_token: string; pad_token: string; unk_token: string } {
  return { bos_token: v.specials.bos, eos_token: v.specials.eos, pad_token: v.specials.pad, unk_token: v.specials.unk };
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await Bun.file(path).text();
  } catch (e) {
    throw new TokenizerError(`${path}: cannot read (${(e as Error).message.split("\n")[0]})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TokenizerError(`${path}: not valid JSON (${(e as Error).message.split("\n")[0]})`);
  }
}

/**
 * A word tokenizer as Hugging Face `tokenizer.json` + `tokenizer_config.json` contents that encode
 * every text to the same ids (see the file header for how).
 * @example
 * const { tokenizerJson, tokenizerConfig } = wordTokenizerJson(tok); // then AutoTokenizer in transformers.js
 */
export function wordTokenizerJson(tok: WordTokenizer): { tokenizerJson: Record<string, unknown>; tokenizerConfig: Record<string, unknown> } {
  const v = tok.toJSON();
  const specials = new Set(Object.values(v.specials));
  const bos = tok.special.bos, eos = tok.special.eos;
  const tokenizerJson = wordTokenizerJsonFrame(v, {
    // By id, each special once (a special may share its token with another).
    added_tokens: v.tokens.flatMap((t, id) => (specials.has(t) ? [specialAddedToken(id, t)] : [])),
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [{ type: "WhitespaceSplit" }, { type: "Split", pattern: { Regex: WORD_PATTERN }, behavior: "Isolated", invert: false }],
    },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: v.specials.bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: v.specials.eos, type_id: 0 } }],
      pair: [
        { SpecialToken: { id: v.specials.bos, type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: v.specials.eos, type_id: 0 } },
        { Sequence: { id: "B", type_id: 1 } },
        { SpecialToken: { id: v.specials.eos, type_id: 1 } },
      ],
      special_tokens: {
        [v.specials.bos]: { id: v.specials.bos, ids: [bos], tokens: [v.specials.bos] },
        [v.specials.eos]: { id: v.specials.eos, ids: [eos], tokens: [v.specials.eos] },
      },
    },
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    // No `##` entries: a word that is not in the vocabulary as a whole becomes <unk>.
    model: { type: "WordPiece", unk_token: v.specials.unk, continuing_subword_prefix: "##", max_input_chars_per_word: 1_000_000, vocab: wordVocab(v) },
  });
  const tokenizerConfig = {
    tokenizer_class: "PreTrainedTokenizerFast",
    clipflow_vocab_file: WORD_VOCAB_FILE,
    ...specialTokenNames(v),
    image_token: v.specials.image,
    do_lower_case: v.lowercase,
    clean_up_tokenization_spaces: true,
    ...(v.model_max_length !== undefined ? { model_max_length: v.model_max_length } : {}),
  };
  return { tokenizerJson, tokenizerConfig };
}

/**
 * Write `tok` into `dir` (see the file header for the layout). A Hugging Face tokenizer's
 * config is written in the form transformers.js accepts (special tokens as plain strings).
 * @example
 * await saveTokenizer(tok, "models/shapes-clip");
 */
export async function saveTokenizer(tok: Tokenizer, dir: string): Promise<void> {
  if (tok instanceof HfTokenizer) {
    await Bun.write(join(dir, "tokenizer.json"), JSON.stringify(tok.tokenizerJson));
    await Bun.write(join(dir, "tokenizer_config.json"), JSON.stringify(portableTokenizerConfig(tok.tokenizerConfig), null, 2));
    return;
  }
  if (tok instanceof WordTokenizer) {
    const { tokenizerJson, tokenizerConfig } = wordTokenizerJson(tok);
    await Bun.write(join(dir, WORD_VOCAB_FILE), JSON.stringify(tok.toJSON()));
    await Bun.write(join(dir, "tokenizer.json"), JSON.stringify(tokenizerJson));
    await Bun.write(join(dir, "tokenizer_config.json"), JSON.stringify(tokenizerConfig, null, 2));
    return;
  }
  throw new TokenizerError(`saveTokenizer: unknown tokenizer kind '${tok.kind}'`);
}

/** Read the tokenizer stored in `dir`; a folder without one is an error naming it. */
export async function loadTokenizer(dir: string): Promise<Tokenizer> {
  const tj = join(dir, "tokenizer.json"), tc = join(dir, "tokenizer_config.json");
  const cfg = (existsSync(tc) ? await readJson(tc) : {}) as Record<string, unknown>;
  if (typeof cfg !== "object" || cfg === null || Array.isArray(cfg)) throw new TokenizerError(`${tc}: expected a JSON object`);
  // clipflow's word tokenizer: its vocabulary file wins over the tokenizer.json written beside it.
  const file = cfg.clipflow_vocab_file ?? (cfg.tokenizer_class === WORD_TOKENIZER_CLASS ? (cfg.vocab_file ?? WORD_VOCAB_FILE) : undefined);
  if (file !== undefined) {
    if (typeof file !== "string" || !/^[\w.-]+$/.test(file)) {
      throw new TokenizerError(`${tc}: ${cfg.clipflow_vocab_file !== undefined ? "clipflow_vocab_file" : "vocab_file"} must be a plain file name in the folder, got ${JSON.stringify(file)}`);
    }
    const p = join(dir, file);
    return WordTokenizer.fromJSON(await readJson(p), p);
  }
  if (existsSync(tj)) return HfTokenizer.fromJSON(await readJson(tj), cfg, tj);
  throw new TokenizerError(`${dir}: no tokenizer.json and no ${WORD_TOKENIZER_CLASS} tokenizer_config.json`);
}
