/**
 * Hugging Face `tokenizer.json` (+ optional `tokenizer_config.json`) behind clipflow's Tokenizer
 * interface. The tokenization itself (normalizers, pre-tokenizers, BPE merges, post-processor,
 * decoder) is done by @huggingface/tokenizers; this file adds special-id discovery, clipflow's
 * counted truncation, and file validation.
 */
import { Tokenizer as HfTok } from "@huggingface/tokenizers";
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

type Json = Record<string, unknown>;

/** HF writes model_max_length = 1e30 for "no limit"; anything this large is treated as none. */
const NO_LIMIT = 1e9;

/**
 * @example
 * const tok = HfTokenizer.fromJSON(JSON.parse(tokenizerJson), JSON.parse(tokenizerConfigJson));
 * const { ids } = tok.encode("a photo of a cat", { maxLength: 77 }); // [<|startoftext|>, ..., <|endoftext|>]
 */
export class HfTokenizer implements Tokenizer {
  readonly kind = "hf" as const;
  readonly special: SpecialIds;
  readonly modelMaxLength: number | undefined;
  private readonly tok: HfTok;
  private readonly counter = new TruncationCounter("hf tokenizer");
  private readonly size: number;

  private constructor(
    readonly tokenizerJson: Json,
    readonly tokenizerConfig: Json,
    where: string,
  ) {
    try {
      this.tok = new HfTok(tokenizerJson, tokenizerConfig);
    } catch (e) {
      throw new TokenizerError(`${where}: cannot build tokenizer: ${(e as Error).message.split("\n")[0]}`);
    }
    const vocab = this.tok.get_vocab(true);
    let maxId = -1;
    for (const id of vocab.values()) maxId = Math.max(maxId, id);
    this.size = maxId + 1;

    const pp = (tokenizerJson.post_processor ?? null) as Json | null;
    const [ppBos, ppEos] = postProcessorSpecials(pp);
    const idOf = (name: string, candidates: (string | undefined)[]): number | undefined => {
      for (const c of candidates) {
        if (c === undefined) continue;
        const id = this.tok.token_to_id(c);
        if (id === undefined) throw new TokenizerError(`${where}: ${name} token '${c}' is not in the vocabulary`);
        return id;
      }
      return undefined;
    };
    const cfgTok = (k: string): string | undefined => tokenString(tokenizerConfig[k]);
    const bos = idOf("bos", [cfgTok("bos_token"), ppBos]);
    const eos = idOf("eos", [cfgTok("eos_token"), ppEos]);
    if (eos === undefined) {
      throw new TokenizerError(`${where}: no end-of-text token (set eos_token in tokenizer_config.json or a post_processor)`);
    }
    const padding = tokenizerJson.padding as Json | null | undefined;
    const pad =
      idOf("pad", [cfgTok("pad_token"), typeof padding?.pad_token === "string" ? padding.pad_token : undefined]) ?? eos;
    const model = (tokenizerJson.model ?? {}) as Json;
    const unk = idOf("unk", [cfgTok("unk_token"), typeof model.unk_token === "string" ? model.unk_token : undefined]);
    this.special = { pad, bos: bos ?? eos, eos, ...(unk !== undefined ? { unk } : {}) };

    const mml = tokenizerConfig.model_max_length;
    const trunc = tokenizerJson.truncation as Json | null | undefined;
    if (typeof mml === "number" && mml > 0 && mml < NO_LIMIT) this.modelMaxLength = mml;
    else if (typeof trunc?.max_length === "number") this.modelMaxLength = trunc.max_length;
    else this.modelMaxLength = undefined;
  }

  /** Build from parsed `tokenizer.json` and (optional) `tokenizer_config.json` contents. */
  static fromJSON(tokenizerJson: unknown, tokenizerConfig: unknown = {}, where = "tokenizer.json"): HfTokenizer {
    if (typeof tokenizerJson !== "object" || tokenizerJson === null) throw new TokenizerError(`${where}: expected a JSON object`);
    const tj = tokenizerJson as Json;
    if (typeof tj.model !== "object" || tj.model === null) throw new TokenizerError(`${where}: missing 'model'`);
    const cfg = (typeof tokenizerConfig === "object" && tokenizerConfig !== null ? tokenizerConfig : {}) as Json;
    // Kept in the portable form, so every writer that copies it through (exports) stays loadable.
    return new HfTokenizer(tj, portableTokenizerConfig(cfg), where);
  }

  get vocabSize(): number {
    return this.size;
  }

  get truncations(): number {
    return this.counter.count;
  }

  onTruncate(listener: TruncationListener): void {
    this.counter.setListener(listener);
  }

  encode(text: string, opts: EncodeOptions = {}): Encoding {
    const add = opts.addSpecialTokens ?? true;
    const maxLength = opts.maxLength ?? this.modelMaxLength;
    const plain = this.tok.encode(text, { add_special_tokens: false }).ids;
    if (!add) return this.counter.apply(text, [], plain, [], maxLength);
    // The post-processor wraps the content in special tokens (CLIP: <|startoftext|> … <|endoftext|>);
    // locate the content inside so truncation can cut it and keep the wrapper.
    const full = this.tok.encode(text, { add_special_tokens: true }).ids;
    const extra = full.length - plain.length;
    for (let p = 0; p <= extra; p++) {
      if (plain.every((id, i) => full[p + i] === id)) {
        return this.counter.apply(text, full.slice(0, p), plain, full.slice(p + plain.length), maxLength);
      }
    }
    throw new TokenizerError(`hf tokenizer: post-processor changed the content tokens of ${JSON.stringify(text.slice(0, 40))}`);
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.size) {
        throw new TokenizerError(`hf tokenizer: id ${id} outside vocabulary of ${this.size}`);
      }
    }
    return this.tok.decode([...ids], { skip_special_tokens: opts.skipSpecialTokens ?? true }).trim();
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }
}

const TOKEN_KEYS = ["bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token", "image_token"];

/**
 * `tokenizer_config.json` contents in the form every reader accepts: special-token entries that
 * are objects (`{content, special, …}`, as some exporters write them) become their `content`
 * string. transformers.js takes an object entry only with `__type: "AddedToken"` and otherwise
 * fails with `Unknown token: [object Object]`; Python transformers reads strings too.
 * @example portableTokenizerConfig({ unk_token: { content: "<unk>", special: true } }) // { unk_token: "<unk>" }
 */
export function portableTokenizerConfig(cfg: Json): Json {
  const out: Json = { ...cfg };
  for (const k of TOKEN_KEYS) {
    const v = out[k];
    if (v !== null && typeof v === "object") {
      const s = tokenString(v);
      if (s === undefined) delete out[k];
      else out[k] = s;
    }
  }
  if (Array.isArray(out.additional_special_tokens)) {
    out.additional_special_tokens = (out.additional_special_tokens as unknown[]).map((v) => tokenString(v) ?? v);
  }
  return out;
}

/** A tokenizer_config token entry is either a string or an AddedToken object `{content}`. */
function tokenString(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "object" && v !== null && typeof (v as Json).content === "string") return (v as Json).content as string;
  return undefined;
}

/** bos/eos as declared by the post-processor (RobertaProcessing/BertProcessing cls+sep, or a template). */
function postProcessorSpecials(pp: Json | null): [string | undefined, string | undefined] {
  if (!pp) return [undefined, undefined];
  if (pp.type === "RobertaProcessing" || pp.type === "BertProcessing") {
    const cls = pp.cls as [string, number] | undefined;
    const sep = pp.sep as [string, number] | undefined;
    return [cls?.[0], sep?.[0]];
  }
  if (pp.type === "TemplateProcessing" && Array.isArray(pp.single)) {
    const specials = (pp.single as Json[])
      .map((it) => (it.SpecialToken as Json | undefined)?.id)
      .filter((x): x is string => typeof x === "string");
    const seqAt = (pp.single as Json[]).findIndex((it) => it.Sequence !== undefined);
    const before = (pp.single as Json[]).slice(0, seqAt).some((it) => it.SpecialToken !== undefined);
    return [before ? specials[0] : undefined, specials.length > (before ? 1 : 0) ? specials[specials.length - 1] : undefined];
  }
  if (pp.type === "Sequence" && Array.isArray(pp.processors)) {
    for (const p of pp.processors as Json[]) {
      const r = postProcessorSpecials(p);
      if (r[0] !== undefined || r[1] !== undefined) return r;
    }
  }
  return [undefined, undefined];
}
