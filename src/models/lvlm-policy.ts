/**
 * The model interface the scheduler's continuous batcher (src/scheduler/decoder.ts) drives: a
 * policy is "prefill these prompts", "step these rows once" and "this is the shape of your KV
 * cache". The built-in LVLM implements it here ({@link lvlmPolicy}); an imported Hugging Face
 * ONNX VLM implements it in src/models/hf-vlm/. The decoder never sees graph input names.
 *
 * Sessions run wherever the decoder puts them (model-host workers): a policy lists its ONNX
 * graphs in `sessions()`, and `prefill` / `step` receive a `run(session, feeds)` that executes
 * one of them on the executor the decoder holds.
 *
 * KV layouts (src/scheduler/kv-pool.ts implements both):
 * - `slots`: per layer [rows, H, Tcap, Dh] preallocated; a step reads the cache in place and
 *   returns only the new token's K/V (`new.{l}.key|value` [B, H, 1, Dh]) — the built-in LVLM;
 * - `past`: the exported-decoder convention transformers.js uses: a step takes
 *   `past_key_values.{l}.key|value` [B, H, T, Dh] and returns `present.{l}.key|value`
 *   [B, H, T + 1, Dh]; rows are left-padded to the longest past and the lane reports each row's
 *   leading holes so the policy can mark them in its attention mask.
 */
import type { TensorValue } from "../graph/runtime.ts";
import { imageTokens, maxTextTokens } from "./lvlm-config.ts";
import type { LvlmModel } from "./lvlm-model.ts";
import { LVLM_IO, lvlmDecodeGraph, lvlmLogpsGraph, lvlmPrefillGraph, lvlmVisionGraph } from "./lvlm.ts";
import { padIds } from "./text-batch.ts";

/** Runs one of the policy's sessions (a key of `sessions()`) on the decoder's executor. */
export type SessionRun = (session: string, feeds: Record<string, TensorValue>) => Promise<Record<string, TensorValue>>;

/** What a step needs from the KV cache of its rows (one lane of the decoder). */
export interface PolicyKv {
  /** Feeds `past_key_values.{l}.key|value` for rows [0, rows). */
  feeds(rows: number): Record<string, TensorValue>;
  /** Take a step's outputs: row b's new token went to position `slots[b]`. */
  append(out: Record<string, TensorValue>, slots: readonly number[]): void;
  /** `past` layout only: slots of the fed past (T) and each row's leading hole count. */
  readonly pastSlots?: number;
  holes?(rows: number): number[];
}

export type KvLayout = "slots" | "past";

/** One (prompt, response) to score: prompt ‖ response ids, 1 on the scored (response) tokens. */
export interface PolicyScoredText {
  ids: number[];
  answerMask: number[];
}

/** A prefill's result: next-token logits per prompt and the prompts' K/V. */
export interface PolicyPrefill {
  /** [R, V]: logits after each prompt's last token. */
  logits: Float32Array;
  /** `present.{l}.key|value` [R, H, srcSlots, Dh]; prompt r's tokens in slots [0, lengths[r]). */
  present: Record<string, TensorValue>;
  srcSlots: number;
  /** Positions each prompt occupies (image tokens included). */
  lengths: number[];
}

/**
 * A generation policy the continuous batcher can drive.
 * @example
 * const policy = lvlmPolicy(await loadLvlm("models/shapes-lvlm"));
 * const gen = new Decoder(scheduler, "policy", policy, { maxBatch: 32 });
 */
export interface PolicyModel {
  /** What it is, for messages: `clipflow-lvlm` or `hf-onnx-vlm`. */
  readonly kind: string;
  readonly vocabSize: number;
  /** Positions the LM has: a sequence stops (finish "length") when it would go beyond. */
  readonly maxPositions: number;
  /** Sequence positions one image takes outside the prompt ids (0 when image tokens are in the ids). */
  readonly imageTokens: number;
  /** Longest prompt (ids) accepted: shorter than this leaves room for an answer. */
  readonly maxPromptTokens: number;
  /** One image's features [N, D] as the vision session returns them. */
  readonly featureDims: readonly [number, number];
  /** Pixel side of the vision session's input [3, S, S]. */
  readonly imageSize: number;
  /** Tokens that end a sample by default (the model's eos ids). */
  readonly stopTokens: readonly number[];
  readonly kv: { layers: number; heads: number; headDim: number; layout: KvLayout };
  /** Prompt text -> the ids to prefill (chat template, bos, image tokens as the model wants). */
  promptIds(prompt: string): number[];
  /** Generated ids -> text (special tokens skipped). */
  decodeTokens(ids: readonly number[]): string;
  /** ONNX graphs (bytes or file paths) to load on every executor, by session key; `scoring` adds what sequenceLogps runs. */
  sessions(opts?: { scoring?: boolean }): Record<string, Uint8Array | string>;
  /** The vision model: pixel_values [B, 3, S, S] -> image_features [B, N, D]. */
  vision(): { model: Uint8Array | string; input: string; output: string };
  /** Prefill prompts `ids[r]` with image features `features` [R, N, D]. */
  prefill(run: SessionRun, features: Float32Array, ids: readonly (readonly number[])[]): Promise<PolicyPrefill>;
  /**
   * One decode step: row b feeds `tokens[b]` at position `positions[b]`; the step's K/V go into
   * `kv` (kv.append). Returns logits [B, V].
   */
  step(run: SessionRun, tokens: readonly number[], positions: readonly number[], kv: PolicyKv): Promise<Float32Array>;
  /**
   * Called with each loaded session's input/output names (per executor, before it serves): a
   * policy may check them (one-line error naming the file) or adapt its feeds to them.
   */
  sessionsLoaded?(infos: Record<string, { inputNames: readonly string[]; outputNames: readonly string[] }>): void;
  /** Prompt ‖ response as this model scores it (its own prompt layout; eos closes the response). */
  scoredText(prompt: string, response: string): PolicyScoredText;
  /**
   * Log-probs of given responses in one teacher-forced pass (sessions from `sessions({ scoring: true })`):
   * Σ log p over each item's response tokens and their count; features [R, N, D], one image per item.
   */
  sequenceLogps(run: SessionRun, features: Float32Array, items: readonly PolicyScoredText[]): Promise<{ logps: Float32Array; nTokens: Float32Array }>;
}

/**
 * The built-in LVLM as a {@link PolicyModel}: prefill and decode graphs with weights baked from
 * its store now (a decoder generates from a snapshot of the policy), `slots` KV layout.
 * @example
 * const gen = new Decoder(scheduler, "policy", lvlmPolicy(lvlm));
 */
export function lvlmPolicy(lvlm: LvlmModel): PolicyModel {
  const cfg = lvlm.cfg;
  const np = imageTokens(cfg);
  const V = cfg.lm.vocabSize;
  const bake = (g: { graph: ReturnType<typeof lvlmPrefillGraph>["graph"]; outputs: ReturnType<typeof lvlmPrefillGraph>["outputs"] }) => g.graph.toOnnx({ outputs: g.outputs, bake: lvlm.store }).bytes;
  let baked: { prefill: Uint8Array; decode: Uint8Array; vision: Uint8Array } | undefined;
  let scoring: Uint8Array | undefined;
  const bakeAll = () => {
    baked ??= { prefill: bake(lvlmPrefillGraph(cfg, "features")), decode: bake(lvlmDecodeGraph(cfg)), vision: bake(lvlmVisionGraph(cfg)) };
    return baked;
  };
  return {
    kind: "clipflow-lvlm",
    vocabSize: V,
    maxPositions: cfg.lm.maxPositions,
    imageTokens: np,
    maxPromptTokens: maxTextTokens(cfg),
    featureDims: [np, cfg.vision.width],
    imageSize: cfg.vision.imageSize,
    stopTokens: [cfg.eosTokenId],
    kv: { layers: cfg.lm.layers, heads: cfg.lm.heads, headDim: cfg.lm.width / cfg.lm.heads, layout: "slots" },
    promptIds: (prompt) => lvlm.promptIds(prompt),
    decodeTokens: (ids) => lvlm.tokenizer.decode(ids),
    sessions: (opts = {}) => {
      const b = bakeAll();
      const s: Record<string, Uint8Array> = { prefill: b.prefill, decode: b.decode };
      if (opts.scoring) s.logps = scoring ??= bake(lvlmLogpsGraph(cfg, "features"));
      return s;
    },
    vision: () => ({ model: bakeAll().vision, input: LVLM_IO.pixelValues, output: LVLM_IO.imageFeatures }),
    async prefill(run, features, ids) {
      const R = ids.length;
      const b = padIds(ids, cfg.padTokenId);
      const out = await run("prefill", {
        [LVLM_IO.imageFeatures]: { dtype: "float32", dims: [R, np, cfg.vision.width], data: features },
        [LVLM_IO.inputIds]: b.ids,
        [LVLM_IO.attentionMask]: b.mask,
      });
      const logits = out[LVLM_IO.logits]!.data as Float32Array; // [R, V]
      if (logits.length !== R * V) throw new Error(`lvlm prefill: logits have ${logits.length} floats, expected [${R}, ${V}]`);
      return { logits, present: out, srcSlots: out[LVLM_IO.presentKey(0)]!.dims[2]!, lengths: ids.map((x) => np + x.length) };
    },
    async step(run, tokens, positions, kv) {
      const B = tokens.length;
      const out = await run("decode", {
        [LVLM_IO.inputIds]: { dtype: "int64", dims: [B, 1], data: BigInt64Array.from(tokens, (t) => BigInt(t)) },
        [LVLM_IO.positions]: { dtype: "int64", dims: [B], data: BigInt64Array.from(positions, (p) => BigInt(p)) },
        ...kv.feeds(B),
      });
      kv.append(out, positions);
      return out[LVLM_IO.logits]!.data as Float32Array;
    },
    scoredText(prompt, response) {
      const t = lvlm.scoredText(prompt, response);
      return { ids: t.ids, answerMask: t.answerMask };
    },
    async sequenceLogps(run, features, items) {
      const R = items.length;
      const b = padIds(items.map((i) => i.ids), cfg.padTokenId);
      const am = padIds(items.map((i) => i.answerMask), 0);
      const out = await run("logps", {
        [LVLM_IO.imageFeatures]: { dtype: "float32", dims: [R, np, cfg.vision.width], data: features },
        [LVLM_IO.inputIds]: b.ids,
        [LVLM_IO.attentionMask]: b.mask,
        [LVLM_IO.answerMask]: am.ids,
      });
      return { logps: out[LVLM_IO.logps]!.data as Float32Array, nTokens: out[LVLM_IO.nTokens]!.data as Float32Array };
    },
  };
}
