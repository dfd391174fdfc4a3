/**
 * Word-level tokenizer for the shapes world: lowercase, split on whitespace, every punctuation
 * mark its own token, one id per word, unknown words map to `<unk>`.
 *
 * Vocabulary file (JSON, written next to a model as `vocab.json`):
 * ```json
 * { "format": "clipflow-word-vocab", "version": 1, "lowercase": true,
 *   "specials": { "pad": "<pad>", "bos": "<bos>", "eos": "<eos>", "unk": "<unk>", "image": "<image>" },
 *   "tokens": ["<pad>", "<bos>", "<eos>", "<unk>", "<image>", "a", "red", "circle", "."] }
 * ```
 * A token's id is its index in `tokens`.
 */
import {
  type DecodeOptions,
  type EncodeOptions,
  type Encoding,
  type SpecialIds,
  type Tokenizer,
  TokenizerError,
  type TruncationListener,
  TruncationCounter,
} from "./tokenizer.ts";

export const WORD_VOCAB_FORMAT = "clipflow-word-vocab";

export const DEFAULT_SPECIALS = { pad: "<pad>", bos: "<bos>", eos: "<eos>", unk: "<unk>", image: "<image>" } as const;

export interface WordVocabFile {
  format: typeof WORD_VOCAB_FORMAT;
  version: 1;
  lowercase: boolean;
  specials: { pad: string; bos: string; eos: string; unk: string; image: string };
  tokens: string[];
  /** Longest sequence the model trained with this vocab accepts (optional). */
  model_max_length?: number;
}

// Words are runs of letters/digits; every other non-space character stands alone. Special
// tokens written in the text (e.g. "<image>") are matched first so they survive splitting.
const WORD_RE = /[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu;
const ATTACH_LEFT = new Set([".", ",", "!", "?", ";", ":", ")", "'"]);

/**
 * @example
 * const tok = WordTokenizer.fromCorpus(["a red circle.", "a blue square."]);
 * const { ids } = tok.encode("A red square!", { maxLength: 16 }); // [bos, a, red, square, <unk>, eos]
 * tok.decode(ids); // "a red square <unk>"  (specials skipped, <unk> kept)
 */
export class WordTokenizer implements Tokenizer {
  readonly kind = "word" as const;
  readonly special: SpecialIds;
  readonly modelMaxLength: number | undefined;
  private readonly ids = new Map<string, number>();
  private readonly specialSet = new Set<number>();
  private readonly specialRe: RegExp;
  private readonly counter = new TruncationCounter("word tokenizer");

  private constructor(private readonly file: WordVocabFile) {
    file.tokens.forEach((t, i) => this.ids.set(t, i));
    const id = (name: keyof WordVocabFile["specials"]): number => {
      const v = this.ids.get(file.specials[name]);
      if (v === undefined) throw new TokenizerError(`word vocab: special token '${file.specials[name]}' (${name}) is not in tokens`);
      this.specialSet.add(v);
      return v;
    };
    this.special = { pad: id("pad"), bos: id("bos"), eos: id("eos"), unk: id("unk"), image: id("image") };
    this.modelMaxLength = file.model_max_length;
    const alts = Object.values(file.specials)
      .sort((a, b) => b.length - a.length)
      .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    this.specialRe = new RegExp(`(${alts.join("|")})`, "u");
  }

  /** Parse and validate a vocabulary file; `where` names the file in errors. */
  static fromJSON(raw: unknown, where = "vocab.json"): WordTokenizer {
    const fail = (msg: string): never => {
      throw new TokenizerError(`${where}: ${msg}`);
    };
    if (typeof raw !== "object" || raw === null) fail("expected a JSON object");
    const o = raw as Record<string, unknown>;
    if (o.format !== WORD_VOCAB_FORMAT) fail(`format must be '${WORD_VOCAB_FORMAT}', got ${JSON.stringify(o.format)}`);
    if (o.version !== 1) fail(`unsupported version ${JSON.stringify(o.version)}`);
    if (!Array.isArray(o.tokens) || o.tokens.length === 0) fail("tokens must be a non-empty array");
    const tokens = o.tokens as unknown[];
    const seen = new Set<string>();
    tokens.forEach((t, i) => {
      if (typeof t !== "string" || t.length === 0) fail(`tokens[${i}] must be a non-empty string`);
      if (seen.has(t as string)) fail(`tokens[${i}] '${t}' is duplicated`);
      seen.add(t as string);
    });
    const sp = (o.specials ?? DEFAULT_SPECIALS) as Record<string, unknown>;
    const specials = { ...DEFAULT_SPECIALS } as WordVocabFile["specials"];
    for (const k of Object.keys(DEFAULT_SPECIALS) as (keyof typeof DEFAULT_SPECIALS)[]) {
      const v = sp[k];
      if (typeof v !== "string" || v.length === 0) fail(`specials.${k} must be a non-empty string`);
      specials[k] = v as string;
    }
    const mml = o.model_max_length;
    if (mml !== undefined && (typeof mml !== "number" || !Number.isInteger(mml) || mml < 2)) {
      fail("model_max_length must be an integer >= 2");
    }
    return new WordTokenizer({
      format: WORD_VOCAB_FORMAT,
      version: 1,
      lowercase: o.lowercase !== false,
      specials,
      tokens: tokens as string[],
      ...(mml !== undefined ? { model_max_length: mml as number } : {}),
    });
  }

  /**
   * Build a vocabulary from texts: specials first, then words by descending count (ties
   * alphabetical, so the result is deterministic). Words seen fewer than `minCount` times map to <unk>.
   */
  static fromCorpus(
    texts: Iterable<string>,
    opts: { minCount?: number; maxSize?: number; lowercase?: boolean; modelMaxLength?: number } = {},
  ): WordTokenizer {
    const lowercase = opts.lowercase ?? true;
    const counts = new Map<string, number>();
    const specials = new Set<string>(Object.values(DEFAULT_SPECIALS));
    for (const t of texts) {
      for (const w of splitWords(lowercase ? t.toLowerCase() : t)) {
        if (!specials.has(w)) counts.set(w, (counts.get(w) ?? 0) + 1);
      }
    }
    const minCount = opts.minCount ?? 1;
    let words = [...counts.entries()]
      .filter(([, c]) => c >= minCount)
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([w]) => w);
    const base = Object.values(DEFAULT_SPECIALS) as string[];
    if (opts.maxSize !== undefined) words = words.slice(0, Math.max(0, opts.maxSize - base.length));
    return new WordTokenizer({
      format: WORD_VOCAB_FORMAT,
      version: 1,
      lowercase,
      specials: { ...DEFAULT_SPECIALS },
      tokens: [...base, ...words],
      ...(opts.modelMaxLength !== undefined ? { model_max_length: opts.modelMaxLength } : {}),
    });
  }

  /**
   * A vocabulary from an explicit word list (e.g. a closed world vocabulary): specials first,
   * then `words` in the given order. Duplicates and special names in `words` are errors.
   * @example
   * const tok = WordTokenizer.fromWords(["a", "red", "circle", "."], { modelMaxLength: 64 });
   */
  static fromWords(words: readonly string[], opts: { lowercase?: boolean; modelMaxLength?: number } = {}): WordTokenizer {
    return WordTokenizer.fromJSON({
      format: WORD_VOCAB_FORMAT,
      version: 1,
      lowercase: opts.lowercase ?? true,
      specials: { ...DEFAULT_SPECIALS },
      tokens: [...(Object.values(DEFAULT_SPECIALS) as string[]), ...words],
      ...(opts.modelMaxLength !== undefined ? { model_max_length: opts.modelMaxLength } : {}),
    }, "word list");
  }

  /** The vocabulary file contents (round-trips through `fromJSON`). */
  toJSON(): WordVocabFile {
    return { ...this.file, specials: { ...this.file.specials }, tokens: [...this.file.tokens] };
  }

  get vocabSize(): number {
    return this.file.tokens.length;
  }

  get truncations(): number {
    return this.counter.count;
  }

  onTruncate(listener: TruncationListener): void {
    this.counter.setListener(listener);
  }

  /** Lowercased words and punctuation marks, special tokens kept whole. */
  pieces(text: string): string[] {
    const out: string[] = [];
    for (const part of text.split(this.specialRe)) {
      if (part === "") continue;
      if (this.ids.has(part) && this.specialSet.has(this.ids.get(part)!)) out.push(part);
      else out.push(...splitWords(this.file.lowercase ? part.toLowerCase() : part));
    }
    return out;
  }

  encode(text: string, opts: EncodeOptions = {}): Encoding {
    const unk = this.special.unk!;
    const content = this.pieces(text).map((w) => this.ids.get(w) ?? unk);
    const add = opts.addSpecialTokens ?? true;
    return this.counter.apply(
      text,
      add ? [this.special.bos] : [],
      content,
      add ? [this.special.eos] : [],
      opts.maxLength ?? this.modelMaxLength,
    );
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const skip = opts.skipSpecialTokens ?? true;
    let s = "";
    for (const id of ids) {
      const tok = this.file.tokens[id];
      if (tok === undefined) throw new TokenizerError(`word tokenizer: id ${id} outside vocabulary of ${this.vocabSize}`);
      // <unk> stays visible even when skipping specials: dropping it would hide information loss.
      if (skip && this.specialSet.has(id) && id !== this.special.unk) continue;
      if (s === "" || ATTACH_LEFT.has(tok)) s += tok;
      else s += " " + tok;
    }
    return s;
  }

  tokenToId(token: string): number | undefined {
    return this.ids.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.file.tokens[id];
  }
}

function splitWords(text: string): string[] {
  return text.match(WORD_RE) ?? [];
}
