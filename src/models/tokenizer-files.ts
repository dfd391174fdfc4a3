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
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { HfTokenizer, portableTokenizerConfig } from "./hf-tokenizer.ts";
import { type Tokenizer, TokenizerError } from "./tokenizer.ts";
import { WordTokenizer } from "./word-tokenizer.ts";

export const WORD_TOKENIZER_CLASS = "ClipflowWordTokenizer";
export const WORD_VOCAB_FILE = "word_vocab.json";

/** word-tokenizer.ts's word rule (letter/digit runs, any other mark alone) as a Split pre-tokenizer regex. */
const WORD_PATTERN = "[\\p{L}\\p{N}]+|[^\\s\\p{L}\\p{N}]";

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
  const vocab: Record<string, number> = {};
  v.tokens.forEach((t, i) => (vocab[t] = i));
  const bos = tok.special.bos, eos = tok.special.eos;
  const tokenizerJson = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: v.tokens
      .map((t, id) => ({ id, content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }))
      .filter((a) => specials.has(a.content)),
    normalizer: v.lowercase ? { type: "Lowercase" } : null,
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
    model: { type: "WordPiece", unk_token: v.specials.unk, continuing_subword_prefix: "##", max_input_chars_per_word: 1_000_000, vocab },
  };
  const tokenizerConfig = {
    tokenizer_class: "PreTrainedTokenizerFast",
    clipflow_vocab_file: WORD_VOCAB_FILE,
    bos_token: v.specials.bos,
    eos_token: v.specials.eos,
    pad_token: v.specials.pad,
    unk_token: v.specials.unk,
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
