/**
 * The one tokenizer contract every model in clipflow speaks: the word-level tokenizer of the
 * shapes world (word-tokenizer.ts) and Hugging Face `tokenizer.json` files (hf-tokenizer.ts).
 *
 * Over-long inputs are truncated to `maxLength` (special tokens kept, content cut), and every
 * truncation is *counted* and reported through `onTruncate` — never silent.
 */
import { ModelFileError, type ClipflowErrorOptions } from "../util/errors.ts";

/** Ids of the special tokens a model needs. `image` exists only for tokenizers that define one. */
export interface SpecialIds {
  pad: number;
  bos: number;
  eos: number;
  unk?: number;
  image?: number;
}

export interface EncodeOptions {
  /** Keep at most this many ids (special tokens included). Longer inputs are truncated and counted. */
  maxLength?: number;
  /** Add the tokenizer's special tokens (bos/eos, or HF post-processor template). Default true. */
  addSpecialTokens?: boolean;
}

export interface Encoding {
  ids: number[];
  /** True when the input did not fit in `maxLength` and content tokens were cut. */
  truncated: boolean;
  /** Length the encoding would have had without truncation. */
  fullLength: number;
}

export interface DecodeOptions {
  /** Drop special tokens (pad/bos/eos/image...) from the text. Default true. */
  skipSpecialTokens?: boolean;
}

/** Called once per truncated input; `count` is the running total for this tokenizer. */
export type TruncationListener = (info: { text: string; fullLength: number; maxLength: number; count: number }) => void;

export interface Tokenizer {
  readonly kind: "word" | "hf";
  readonly vocabSize: number;
  readonly special: SpecialIds;
  /** Longest input the model accepts (CLIP: 77); used when `encode` gets no `maxLength`. */
  readonly modelMaxLength: number | undefined;
  /** Number of inputs truncated so far by this tokenizer instance. */
  readonly truncations: number;
  encode(text: string, opts?: EncodeOptions): Encoding;
  decode(ids: readonly number[], opts?: DecodeOptions): string;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  /** Register a truncation listener (replaces the default one-line console warning). */
  onTruncate(listener: TruncationListener): void;
}

/** A tokenizer file that cannot be used (missing, malformed, unsupported). */
export class TokenizerError extends ModelFileError {
  override name = "TokenizerError";
  constructor(message: string, opts: ClipflowErrorOptions = {}) {
    super(message, { code: "tokenizer", ...opts });
  }
}

/**
 * Shared truncation bookkeeping: cuts `content` so `prefix + content + suffix` fits `maxLength`,
 * counts the event and notifies the listener. Special tokens (prefix/suffix) are always kept,
 * so a CLIP text still ends in its end-of-text token after truncation.
 */
export class TruncationCounter {
  count = 0;
  private listener: TruncationListener;
  private warned = false;

  constructor(private readonly name: string) {
    // Default: one console line the first time, so a run's log shows it happened; the counter
    // keeps the exact number for run reports.
    this.listener = (info) => {
      if (this.warned) return;
      this.warned = true;
      console.warn(
        `${this.name}: input of ${info.fullLength} tokens truncated to ${info.maxLength} ` +
          `(further truncations are counted in tokenizer.truncations, not logged)`,
      );
    };
  }

  setListener(l: TruncationListener): void {
    this.listener = l;
  }

  apply(text: string, prefix: number[], content: number[], suffix: number[], maxLength: number | undefined): Encoding {
    const fullLength = prefix.length + content.length + suffix.length;
    if (maxLength === undefined || fullLength <= maxLength) {
      return { ids: [...prefix, ...content, ...suffix], truncated: false, fullLength };
    }
    if (!Number.isInteger(maxLength) || maxLength < prefix.length + suffix.length) {
      throw new TokenizerError(
        `${this.name}: maxLength ${maxLength} cannot hold the ${prefix.length + suffix.length} special tokens`,
      );
    }
    const keep = maxLength - prefix.length - suffix.length;
    this.count++;
    this.listener({ text, fullLength, maxLength, count: this.count });
    return { ids: [...prefix, ...content.slice(0, keep), ...suffix], truncated: true, fullLength };
  }
}
