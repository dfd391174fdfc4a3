/**
 * How tokenizers are stored in a model folder.
 *
 * - Hugging Face tokenizers (CLIP BPE, ...): `tokenizer.json` (+ `tokenizer_config.json`), as
 *   transformers.js / Optimum exports have them.
 * - clipflow's word-level tokenizer (no tokenizer.json model type exists for it in
 *   @huggingface/tokenizers): `word_vocab.json` (format `clipflow-word-vocab`, see
 *   word-tokenizer.ts) plus a `tokenizer_config.json` whose `tokenizer_class` is
 *   `ClipflowWordTokenizer` and which names the special tokens and `model_max_length`
 *   the HF way, so a reader of the folder sees what it is.
 * `tokenizer.json` wins when both are present.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { HfTokenizer } from "./hf-tokenizer.ts";
import { type Tokenizer, TokenizerError } from "./tokenizer.ts";
import { WordTokenizer } from "./word-tokenizer.ts";

export const WORD_TOKENIZER_CLASS = "ClipflowWordTokenizer";
export const WORD_VOCAB_FILE = "word_vocab.json";

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
 * Write `tok` into `dir` (see the file header for the layout).
 * @example
 * await saveTokenizer(tok, "models/shapes-clip");
 */
export async function saveTokenizer(tok: Tokenizer, dir: string): Promise<void> {
  if (tok instanceof HfTokenizer) {
    await Bun.write(join(dir, "tokenizer.json"), JSON.stringify(tok.tokenizerJson));
    await Bun.write(join(dir, "tokenizer_config.json"), JSON.stringify(tok.tokenizerConfig, null, 2));
    return;
  }
  if (tok instanceof WordTokenizer) {
    const v = tok.toJSON();
    await Bun.write(join(dir, WORD_VOCAB_FILE), JSON.stringify(v));
    await Bun.write(
      join(dir, "tokenizer_config.json"),
      JSON.stringify(
        {
          tokenizer_class: WORD_TOKENIZER_CLASS,
          vocab_file: WORD_VOCAB_FILE,
          bos_token: v.specials.bos,
          eos_token: v.specials.eos,
          pad_token: v.specials.pad,
          unk_token: v.specials.unk,
          image_token: v.specials.image,
          do_lower_case: v.lowercase,
          ...(v.model_max_length !== undefined ? { model_max_length: v.model_max_length } : {}),
        },
        null,
        2,
      ),
    );
    return;
  }
  throw new TokenizerError(`saveTokenizer: unknown tokenizer kind '${tok.kind}'`);
}

/** Read the tokenizer stored in `dir`; a folder without one is an error naming it. */
export async function loadTokenizer(dir: string): Promise<Tokenizer> {
  const tj = join(dir, "tokenizer.json"), tc = join(dir, "tokenizer_config.json");
  const cfg = existsSync(tc) ? await readJson(tc) : {};
  if (existsSync(tj)) return HfTokenizer.fromJSON(await readJson(tj), cfg, tj);
  const cls = (cfg as Record<string, unknown>).tokenizer_class;
  if (cls === WORD_TOKENIZER_CLASS) {
    const file = (cfg as Record<string, unknown>).vocab_file;
    if (file !== undefined && (typeof file !== "string" || !/^[\w.-]+$/.test(file))) {
      throw new TokenizerError(`${tc}: vocab_file must be a plain file name in the folder, got ${JSON.stringify(file)}`);
    }
    const p = join(dir, (file as string | undefined) ?? WORD_VOCAB_FILE);
    return WordTokenizer.fromJSON(await readJson(p), p);
  }
  throw new TokenizerError(`${dir}: no tokenizer.json and no ${WORD_TOKENIZER_CLASS} tokenizer_config.json`);
}
