/**
 * Single-stream reference generation: one image + prompt, n samples that share one prefill,
 * then KV-cache decoding with finished samples leaving the batch at once. The scheduler's
 * continuous batcher must produce exactly these tokens under the same seeds (see sampling.ts
 * for the determinism contract).
 */
import type { LvlmModel } from "./lvlm-model.ts";
import { sampleRng, sampleToken, tokenLogProb, type SamplingOptions } from "./sampling.ts";
import { ConfigError, InputError } from "../util/errors.ts";

export interface GenerateOptions extends SamplingOptions {
  /** Most tokens generated per sample (the stop token counts). */
  maxNewTokens: number;
  /** Samples per prompt, sharing one prefill. Default 1. */
  n?: number;
  /** Seed of the request; sample i uses sampleRng(seed, i). Default 0. */
  seed?: number;
  /** Token(s) that end a sample (default: the model's eos); null = never stop early. */
  stopToken?: number | readonly number[] | null;
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

/** One prompt of a batched call: its image [3, S, S], prompt, samples and seed. */
export interface GenerateRequest {
  pixels: Float32Array;
  prompt: string | readonly number[];
  /** Samples for this prompt (default: opts.n, else 1). */
  n?: number;
  /** Seed of this request (default: opts.seed, else 0); sample i uses sampleRng(seed, i). */
  seed?: number;
}

/**
 * Generate `n` answers for one image (pixels [3, S, S]) and prompt.
 * @example
 * const [s] = await generate(model, pixels, "describe the image.", { maxNewTokens: 24, temperature: 0 });
 */
export async function generate(model: LvlmModel, pixels: Float32Array, prompt: string | readonly number[], opts: GenerateOptions): Promise<Sample[]> {
  return (await generateMany(model, [{ pixels, prompt }], opts))[0]!;
}

/**
 * Static-batch generation for several prompts at once (one prefill for all of them, samples of a
 * prompt sharing it, finished samples leaving the batch at once). Each sample draws from its own
 * seeded stream, so results match {@link generate} per request (up to float rounding of batched
 * matmuls, ~1e-6 on logits). Chunk long request lists: the KV cache grows with the batch.
 * @example
 * const captions = await generateMany(model, images.map((pixels) => ({ pixels, prompt })), { maxNewTokens: 32, temperature: 0 });
 */
export async function generateMany(model: LvlmModel, requests: readonly GenerateRequest[], opts: GenerateOptions): Promise<Sample[][]> {
  if (requests.length === 0) return [];
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 1) throw new ConfigError(`generate: maxNewTokens must be a positive integer, got ${opts.maxNewTokens}`, { code: "bad option" });
  const st = opts.stopToken === undefined ? model.cfg.eosTokenId : opts.stopToken;
  const stop: readonly number[] = st === null ? [] : typeof st === "number" ? [st] : st;
  const V = model.cfg.lm.vocabSize;
  const img = 3 * model.cfg.vision.imageSize ** 2;
  const pixels = new Float32Array(requests.length * img);
  requests.forEach((r, i) => {
    if (r.pixels.length !== img) throw new InputError(`generate: request ${i} has ${r.pixels.length} pixel floats, expected ${img}`, { code: "bad image size" });
    pixels.set(r.pixels, i * img);
  });
  const prompts = requests.map((r) => (typeof r.prompt === "string" ? model.promptIds(r.prompt) : [...r.prompt]));
  const ns = requests.map((r, i) => {
    const n = r.n ?? opts.n ?? 1;
    if (!Number.isInteger(n) || n < 1) throw new ConfigError(`generate: request ${i}: n must be a positive integer, got ${n}`, { code: "bad option" });
    return n;
  });

  const first = await model.prefill(pixels, prompts);
  // one cache row per sample: request r's row repeated n_r times
  const owner: { req: number; sample: number }[] = [];
  ns.forEach((n, req) => { for (let i = 0; i < n; i++) owner.push({ req, sample: i }); });
  let cache = first.cache.select(owner.map((o) => o.req));
  let logits: Float32Array = new Float32Array(owner.length * V);
  owner.forEach((o, row) => logits.set(first.logits.subarray(o.req * V, (o.req + 1) * V), row * V));

  const rngs = owner.map((o) => sampleRng(requests[o.req]!.seed ?? opts.seed ?? 0, o.sample));
  const out = owner.map(() => ({ tokens: [] as number[], logp: 0, finish: "length" as Sample["finish"] }));
  let active = owner.map((_, i) => i); // sample slot of each cache row
  while (active.length > 0) {
    const next: number[] = [];
    const keepRows: number[] = [];
    active.forEach((s, row) => {
      const rowLogits = logits.subarray(row * V, (row + 1) * V);
      const tok = sampleToken(rowLogits, opts, rngs[s]!);
      const o = out[s]!;
      o.tokens.push(tok);
      o.logp += tokenLogProb(rowLogits, tok);
      if (stop.includes(tok)) o.finish = "stop";
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
  const result: Sample[][] = requests.map(() => []);
  owner.forEach((o, i) => {
    const x = out[i]!;
    result[o.req]!.push({ tokens: x.tokens, text: model.tokenizer.decode(x.tokens), logp: x.logp, nTokens: x.tokens.length, finish: x.finish });
  });
  return result;
}
