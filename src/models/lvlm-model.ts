/**
 * The runnable LVLM: config + ParamStore + tokenizer + image preprocessing, with in-process ORT
 * sessions for prefill, decode, sequence log-probs and full logits. Weights are fed from the
 * store on every run, so a training step's updates are seen by the next call.
 */
import type { CompiledGraph, OnnxModel, TensorValue } from "../graph/index.ts";
import { ParamStore } from "../graph/params.ts";
import { Rng } from "../util/rng.ts";
import { InputError, ModelFileError, RuntimeError } from "../util/errors.ts";
import { KvCache } from "./kv-cache.ts";
import { imageTokens, lvlmConfig, maxTextTokens, type LvlmConfig, type LvlmConfigInput } from "./lvlm-config.ts";
import { LVLM_IO, lvlmDecodeGraph, lvlmLogitsGraph, lvlmLogpsGraph, lvlmPrefillGraph, lvlmSftGraph } from "./lvlm.ts";
import { clipImageConfig, type ImageProcessorConfig } from "./preprocessor-config.ts";
import { padIds } from "./text-batch.ts";
import type { Tokenizer } from "./tokenizer.ts";

/** One scored (prompt, answer) pair, tokenised. */
export interface ScoredText {
  /** bos + prompt + answer + eos. */
  ids: number[];
  /** 1 on answer tokens (including eos), 0 on bos/prompt. */
  answerMask: number[];
  truncated: boolean;
}

type GraphKind = "prefill" | "decode" | "logps" | "logits" | "sft";

/**
 * @example
 * const m = LvlmModel.create(lvlmPresets.tiny(tok.vocabSize), tok, 0);
 * const { logits, cache } = await m.prefill(pixels, [m.promptIds("describe the image.")]);
 */
export class LvlmModel {
  readonly cfg: LvlmConfig;
  readonly preprocess: ImageProcessorConfig;
  private readonly compiled = new Map<GraphKind, Promise<CompiledGraph>>();
  /** Number of prefill runs (lets tests prove n samples share one prefill). */
  prefillRuns = 0;

  constructor(
    cfg: LvlmConfig | LvlmConfigInput,
    readonly store: ParamStore,
    readonly tokenizer: Tokenizer,
    preprocess?: ImageProcessorConfig,
    readonly threads = 1,
  ) {
    this.cfg = lvlmConfig(cfg);
    this.preprocess = preprocess ?? clipImageConfig(this.cfg.vision.imageSize);
    if (tokenizer.vocabSize > this.cfg.lm.vocabSize) {
      throw new ModelFileError(`LvlmModel: tokenizer has ${tokenizer.vocabSize} tokens, LM only ${this.cfg.lm.vocabSize}`, { code: "mismatched model" });
    }
  }

  /** Fresh weights from `seed`; trainable flags from `cfg.trainable` (default projector + LM). */
  static create(cfg: LvlmConfig | LvlmConfigInput, tokenizer: Tokenizer, seed: number, preprocess?: ImageProcessorConfig): LvlmModel {
    const c = lvlmConfig(cfg);
    const store = ParamStore.fromSpecs(lvlmParamSpecs(c), new Rng(seed));
    store.trainOnly(c.trainable);
    return new LvlmModel(c, store, tokenizer, preprocess);
  }

  /**
   * Copy the vision tower from a trained CLIP (same `vision.*` names and sizes): the LVLM's frozen
   * image encoder. Every vision weight this LVLM has must be present in `clip`.
   * @example
   * policy.adoptVision(shapesClip.store);
   */
  adoptVision(clip: { get(name: string): { data: Float32Array; shape: number[] } | undefined }): string[] {
    const names = this.store.names().filter((n) => n.startsWith("vision."));
    for (const n of names) {
      const src = clip.get(n);
      const dst = this.store.require(n);
      if (!src) throw new ModelFileError(`adoptVision: CLIP has no weight '${n}' (vision configs differ?)`, { code: "mismatched model" });
      if (src.shape.join() !== dst.shape.join()) throw new ModelFileError(`adoptVision: '${n}' is [${src.shape}] in the CLIP, [${dst.shape}] here`, { code: "mismatched model" });
      dst.data.set(src.data);
    }
    return names;
  }

  get imageTokens(): number {
    return imageTokens(this.cfg);
  }

  private graph(kind: GraphKind): Promise<CompiledGraph> {
    let c = this.compiled.get(kind);
    if (!c) {
      const { graph, outputs } = buildGraph(this.cfg, kind);
      c = graph.compile({ outputs, params: this.store, threads: this.threads });
      this.compiled.set(kind, c);
    }
    return c;
  }

  /** Serialised graph (params as inputs, or baked from the store) for workers and exports. */
  onnx(kind: GraphKind, bake = false): OnnxModel {
    const { graph, outputs } = buildGraph(this.cfg, kind);
    return graph.toOnnx({ outputs, ...(bake ? { bake: this.store } : {}) });
  }

  /** bos + prompt tokens (truncation counted by the tokenizer). */
  promptIds(prompt: string): number[] {
    const body = this.tokenizer.encode(prompt, { addSpecialTokens: false, maxLength: maxTextTokens(this.cfg) - 2 }).ids;
    return [this.cfg.bosTokenId, ...body];
  }

  /** Prompt + answer for scoring/SFT; the answer is cut (counted) to fit the context. */
  scoredText(prompt: string, answer: string): ScoredText {
    const p = this.promptIds(prompt);
    const room = maxTextTokens(this.cfg) - p.length - 1;
    const a = this.tokenizer.encode(answer, { addSpecialTokens: false, maxLength: Math.max(0, room) });
    const ids = [...p, ...a.ids, this.cfg.eosTokenId];
    return { ids, answerMask: ids.map((_, i) => (i >= p.length ? 1 : 0)), truncated: a.truncated };
  }

  private pixelFeed(pixels: Float32Array, n: number): TensorValue {
    const s = this.cfg.vision.imageSize;
    if (pixels.length !== n * 3 * s * s) throw new InputError(`LvlmModel: ${pixels.length} pixel floats is not [${n}, 3, ${s}, ${s}]`, { code: "bad image size" });
    return { dtype: "float32", dims: [n, 3, s, s], data: pixels };
  }

  /**
   * Prefill B prompts (one image each): next-token logits [B, V] and the KV cache, lengths =
   * image tokens + prompt length per row.
   */
  async prefill(pixels: Float32Array, prompts: readonly (readonly number[])[]): Promise<{ logits: Float32Array; cache: KvCache }> {
    const b = padIds(prompts, this.cfg.padTokenId);
    if (b.ids.dims[1]! > maxTextTokens(this.cfg)) {
      throw new InputError(`prefill: prompt of ${b.ids.dims[1]} tokens exceeds the text budget ${maxTextTokens(this.cfg)}`, { code: "prompt too long" });
    }
    const r = await (await this.graph("prefill")).run({
      [LVLM_IO.pixelValues]: this.pixelFeed(pixels, prompts.length),
      [LVLM_IO.inputIds]: b.ids,
      [LVLM_IO.attentionMask]: b.mask,
    });
    this.prefillRuns++;
    const cache = KvCache.fromOutputs(r, this.cfg.lm.layers, b.lengths.map((n) => n + this.imageTokens));
    return { logits: r[LVLM_IO.logits]!.data as Float32Array, cache };
  }

  /**
   * One decode step: feed `tokens[b]` at position `cache.lengths[b]` for every row. Grows the
   * cache capacity when a row is full (a new cache), then writes the step's K/V into it in
   * place. Returns logits [B, V] and that cache, lengths + 1.
   */
  async decode(cache: KvCache, tokens: readonly number[]): Promise<{ logits: Float32Array; cache: KvCache }> {
    if (tokens.length !== cache.batch) throw new Error(`decode: ${tokens.length} tokens for a batch of ${cache.batch}`); // internal invariant: generate() steps its own cache
    const longest = Math.max(...cache.lengths);
    if (longest >= this.cfg.lm.maxPositions) {
      throw new RuntimeError(`decode: position ${longest} beyond the model's ${this.cfg.lm.maxPositions} positions`, { code: "sequence too long" });
    }
    let c = cache;
    if (longest >= c.capacity) c = c.withCapacity(Math.min(this.cfg.lm.maxPositions, Math.max(c.capacity + 16, Math.ceil(c.capacity * 1.5))));
    const B = c.batch;
    const r = await (await this.graph("decode")).run({
      [LVLM_IO.inputIds]: { dtype: "int64", dims: [B, 1], data: BigInt64Array.from(tokens, (t) => BigInt(t)) },
      [LVLM_IO.positions]: { dtype: "int64", dims: [B], data: BigInt64Array.from(c.lengths, (n) => BigInt(n)) },
      ...c.feeds(),
    });
    return { logits: r[LVLM_IO.logits]!.data as Float32Array, cache: c.append(r) };
  }

  /** Sequence log-probs of answers: Σ log p over answer tokens and their count, per row. */
  async sequenceLogps(pixels: Float32Array, items: readonly ScoredText[]): Promise<{ logps: Float32Array; nTokens: Float32Array; tokenLogps: Float32Array }> {
    const b = padIds(items.map((i) => i.ids), this.cfg.padTokenId);
    const am = padIds(items.map((i) => i.answerMask), 0);
    const r = await (await this.graph("logps")).run({
      [LVLM_IO.pixelValues]: this.pixelFeed(pixels, items.length),
      [LVLM_IO.inputIds]: b.ids,
      [LVLM_IO.attentionMask]: b.mask,
      [LVLM_IO.answerMask]: am.ids,
    });
    return { logps: r[LVLM_IO.logps]!.data as Float32Array, nTokens: r[LVLM_IO.nTokens]!.data as Float32Array, tokenLogps: r[LVLM_IO.tokenLogps]!.data as Float32Array };
  }

  /** Full recomputation: logits at every text position, [B, T, V] (reference for KV decoding). */
  async textLogits(pixels: Float32Array, seqs: readonly (readonly number[])[]): Promise<{ logits: Float32Array; dims: number[] }> {
    const b = padIds(seqs, this.cfg.padTokenId);
    const r = await (await this.graph("logits")).run({
      [LVLM_IO.pixelValues]: this.pixelFeed(pixels, seqs.length),
      [LVLM_IO.inputIds]: b.ids,
      [LVLM_IO.attentionMask]: b.mask,
    });
    return { logits: r[LVLM_IO.logits]!.data as Float32Array, dims: r[LVLM_IO.logits]!.dims };
  }
}

function buildGraph(cfg: LvlmConfig, kind: GraphKind) {
  switch (kind) {
    case "prefill":
      return lvlmPrefillGraph(cfg);
    case "decode":
      return lvlmDecodeGraph(cfg);
    case "logps":
      return lvlmLogpsGraph(cfg);
    case "logits":
      return lvlmLogitsGraph(cfg);
    case "sft":
      return lvlmSftGraph(cfg);
  }
}

/** Every parameter of the LVLM (the SFT graph with pixel input uses them all). */
export function lvlmParamSpecs(cfg: LvlmConfig) {
  return lvlmSftGraph(cfg).graph.params();
}
