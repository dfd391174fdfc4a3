/**
 * Single-stream reference generation: one image + prompt, n samples that share one prefill,
 * then KV-cache decoding with finished samples leaving the batch at once. The scheduler's
 * continuous batcher must produce exactly these tokens under the same seeds (see sampling.ts
 * for the determinism contract).
 */
import type { LvlmModel } from "./lvlm-model.ts";
import { sampleRng, sampleToken, tokenLogProb, type SamplingOptions } from "./sampling.ts";

export interface GenerateOptions extends SamplingOptions {
  /** Most tokens generated per sample (the stop token counts). */
  maxNewTokens: number;
  /** Samples per prompt, sharing one prefill. Default 1. */
  n?: number;
  /** Seed of the request; sample i uses sampleRng(seed, i). Default 0. */
  seed?: number;
  /** Token that ends a sample (default: the model's eos); null = never stop early. */
  stopToken?: number | null;
}

export interface Sample {
  /** Generated ids, including the stop token when one was produced. */
  tokens: number[];
  /** Decoded text (special tokens skipped). */
  text: string;
  /** Σ log p(token) under the model itself (temperature 1, no top-k/top-p), over `tokens`. */
  logp: number;
  nTokens: number;
  finish: "stop" | "length";
}

/**
 * Generate `n` answers for one image (pixels [3, S, S]) and prompt.
 * @example
 * const [s] = await generate(model, pixels, "describe the image.", { maxNewTokens: 24, temperature: 0 });
 */
export async function generate(model: LvlmModel, pixels: Float32Array, prompt: string | readonly number[], opts: GenerateOptions): Promise<Sample[]> {
  const n = opts.n ?? 1;
  if (!Number.isInteger(n) || n < 1) throw new Error(`generate: n must be a positive integer, got ${n}`);
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 1) throw new Error(`generate: maxNewTokens must be a positive integer, got ${opts.maxNewTokens}`);
  const stop = opts.stopToken === undefined ? model.cfg.eosTokenId : opts.stopToken;
  const seed = opts.seed ?? 0;
  const promptIds = typeof prompt === "string" ? model.promptIds(prompt) : [...prompt];
  const V = model.cfg.lm.vocabSize;

  const first = await model.prefill(pixels, [promptIds]);
  let cache = first.cache.repeat(n);
  let logits: Float32Array = new Float32Array(n * V);
  for (let i = 0; i < n; i++) logits.set(first.logits.subarray(0, V), i * V);

  const rngs = Array.from({ length: n }, (_, i) => sampleRng(seed, i));
  const out = Array.from({ length: n }, () => ({ tokens: [] as number[], logp: 0, finish: "length" as Sample["finish"] }));
  let active = Array.from({ length: n }, (_, i) => i); // sample index of each cache row
  while (active.length > 0) {
    const next: number[] = [];
    const keepRows: number[] = [];
    active.forEach((s, row) => {
      const row_ = logits.subarray(row * V, (row + 1) * V);
      const tok = sampleToken(row_, opts, rngs[s]!);
      const o = out[s]!;
      o.tokens.push(tok);
      o.logp += tokenLogProb(row_, tok);
      if (tok === stop) o.finish = "stop";
      else if (o.tokens.length < opts.maxNewTokens && cache.lengths[row]! < model.cfg.lm.maxPositions) {
        // feeding `tok` writes it at position lengths[row]; the model has positions up to maxPositions - 1
        keepRows.push(row);
        next.push(tok);
      }
    });
    if (keepRows.length === 0) break;
    if (keepRows.length !== active.length) {
      cache = cache.select(keepRows);
      active = keepRows.map((r) => active[r]!);
    }
    const r = await model.decode(cache, next);
    cache = r.cache;
    logits = r.logits;
  }
  return out.map((o) => ({
    tokens: o.tokens,
    text: model.tokenizer.decode(o.tokens),
    logp: o.logp,
    nTokens: o.tokens.length,
    finish: o.finish,
  }));
}
