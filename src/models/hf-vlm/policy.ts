/**
 * A Hugging Face image-text-to-text ONNX export (LLaVA-style: `LlavaForConditionalGeneration`
 * and its relatives in transformers.js) as a clipflow {@link PolicyModel}: the scheduler's
 * continuous batcher generates from it, and `sequenceLogps` scores given responses.
 *
 * Folder (nothing is downloaded; users point at a local directory):
 *   config.json (model_type llava | llava_qwen2 | moondream1, image_token_index, text_config,
 *   vision_config), generation_config.json (eos ids), preprocessor_config.json,
 *   tokenizer.json, tokenizer_config.json (chat_template), onnx/vision_encoder.onnx,
 *   onnx/embed_tokens.onnx, onnx/decoder_model_merged.onnx.
 *
 * What it does as transformers.js does:
 * - prompt: the chat template (rendered with @huggingface/jinja) over one user message
 *   [{type: image}, {type: text}], generation prompt on; the image token is expanded to the
 *   image's Np feature rows (LlavaProcessor); the image features replace the embeddings at the
 *   image token positions (default_merge_input_ids_with_image_features);
 * - positions are each row's own 0, 1, 2, … (cumsum of the attention mask), holes and padding
 *   masked by attention_mask;
 * - stop on generation_config's eos ids.
 * Sampling, seeds and log-probs are clipflow's (src/models/sampling.ts), as for the built-in
 * policy. Variants refused with one line naming the file or key: image splitting
 * (image_grid_pinpoints, llava_next / llava_onevision), encoder-decoders (is_encoder_decoder,
 * Florence-2), several images in one prompt.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { Template } from "@huggingface/jinja";
import type { TensorValue } from "../../graph/runtime.ts";
import { HfTokenizer } from "../hf-tokenizer.ts";
import type { PolicyKv, PolicyModel, PolicyPrefill, PolicyScoredText, SessionRun } from "../lvlm-policy.ts";
import { parsePreprocessorConfig, type ImageProcessorConfig } from "../preprocessor-config.ts";
import { HF_VLM_FILES } from "./export.ts";
import { HF_VLM_IO, hfLogpsHeadGraph } from "./graphs.ts";
import { InputError, ModelFileError, type ClipflowErrorOptions } from "../../util/errors.ts";

/**
 * A folder that is not a supported HF VLM export: a ModelFileError whose `where.file` is the
 * folder or file and whose code says why: "missing model file", "bad model file" (unreadable
 * JSON, an ONNX graph without the layout's inputs), "bad model config" (a missing key),
 * "unsupported model" (a variant refused at load: encoder-decoder, image splitting, another
 * model_type), "bad chat template", "bad model output" (a graph returning the wrong shape).
 * @example
 * await loadHfVlm("models/x").catch((e) => e instanceof HfVlmError && e.code === "unsupported model");
 */
export class HfVlmError extends ModelFileError {
  override name = "HfVlmError";
  constructor(detail: string, opts: ClipflowErrorOptions = {}) {
    super(detail, { code: "bad model folder", ...opts });
  }
}

/** An HfVlmError at `file` (the folder, or a file in it). */
const bad = (file: string, code: string, detail: string, cause?: unknown) => new HfVlmError(detail, { code, where: { file }, ...(cause !== undefined ? { cause } : {}) });

type Json = Record<string, unknown>;

const SUPPORTED = ["llava", "llava_qwen2", "moondream1"];

/** Session keys of an HF VLM policy (worker-side names are `{decoder}.{key}`). */
export const HF_VLM_SESSIONS = { embed: "embed_tokens", decoder: "decoder_model_merged", logps: "logps_head" } as const;

/** One (prompt, response) to score: ids of prompt ‖ response (+ eos) and 1 on response tokens. */
export type HfScoredText = PolicyScoredText;

async function readJson(dir: string, rel: string, required: true): Promise<Json>;
async function readJson(dir: string, rel: string, required: false): Promise<Json | undefined>;
async function readJson(dir: string, rel: string, required: boolean): Promise<Json | undefined> {
  const path = join(dir, rel);
  if (!existsSync(path)) {
    if (required) throw bad(dir, "missing model file", `missing ${rel}`);
    return undefined;
  }
  try {
    const v = JSON.parse(await Bun.file(path).text()) as unknown;
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not a JSON object"); // caught just below
    return v as Json;
  } catch (e) {
    throw bad(path, "bad model file", (e as Error).message.split("\n")[0]!, e);
  }
}

const num = (o: Json | undefined, ...keys: string[]): number | undefined => {
  for (const k of keys) {
    const v = o?.[k];
    if (typeof v === "number" && Number.isFinite(v)) return v;
  }
  return undefined;
};

/**
 * @example
 * const policy = await loadHfVlm("models/llava-tiny");
 * const gen = new Decoder(scheduler, "policy", policy, { maxBatch: 16 });
 * const [s] = await gen.run({ pixels, prompt: "Describe the image." }, { maxNewTokens: 32, temperature: 0 });
 */
export async function loadHfVlm(dir: string): Promise<HfVlm> {
  const root = resolve(dir);
  if (!existsSync(root)) throw bad(dir, "missing model file", "no such folder");
  const config = await readJson(root, HF_VLM_FILES.config, true);
  const where = `${dir}/${HF_VLM_FILES.config}`;
  const type = String(config.model_type ?? "");
  if (config.is_encoder_decoder === true || type === "florence2") {
    throw bad(where, "unsupported model", `encoder-decoder models (model_type ${type || "?"}, is_encoder_decoder) are not supported; only decoder-only LLaVA-style exports`);
  }
  if (config.image_grid_pinpoints !== undefined || type === "llava_next" || type === "llava_onevision") {
    throw bad(where, "unsupported model", `image splitting (image_grid_pinpoints, model_type ${type}) is not supported; one image = one fixed grid of features`);
  }
  if (!SUPPORTED.includes(type)) throw bad(where, "unsupported model", `model_type '${type}' is not supported (${SUPPORTED.join(", ")})`);
  const imageId = num(config, "image_token_index", "image_token_id");
  if (imageId === undefined) throw bad(where, "bad model config", "missing image_token_index");
  const text = (config.text_config ?? config.phi_config) as Json | undefined;
  if (!text || typeof text !== "object") throw bad(where, "bad model config", "missing text_config");
  const vision = config.vision_config as Json | undefined;
  if (!vision || typeof vision !== "object") throw bad(where, "bad model config", "missing vision_config");
  const need = (o: Json, what: string, ...keys: string[]): number => {
    const v = num(o, ...keys);
    if (v === undefined) throw bad(where, "bad model config", `missing ${what}.${keys[0]}`);
    return v;
  };
  const layers = need(text, "text_config", "num_hidden_layers", "n_layer");
  const heads = need(text, "text_config", "num_attention_heads", "n_head");
  const kvHeads = num(text, "num_key_value_heads") ?? heads;
  const width = need(text, "text_config", "hidden_size", "n_embd");
  const headDim = num(text, "head_dim") ?? width / heads;
  const vocabSize = need(text, "text_config", "vocab_size");
  const maxPositions = need(text, "text_config", "max_position_embeddings", "n_positions");
  const imageSize = need(vision, "vision_config", "image_size");
  const patch = need(vision, "vision_config", "patch_size");
  const strategy = String(config.vision_feature_select_strategy ?? "default");
  const np = (imageSize / patch) ** 2 + (strategy === "full" ? 1 : 0);
  if (!Number.isInteger(np)) throw bad(where, "bad model config", `vision_config.image_size ${imageSize} is not a multiple of patch_size ${patch}`);

  for (const rel of [HF_VLM_FILES.visionEncoder, HF_VLM_FILES.embedTokens, HF_VLM_FILES.decoder]) {
    if (!existsSync(join(root, rel))) {
      const merged = rel === HF_VLM_FILES.decoder && existsSync(join(root, "onnx/decoder_model.onnx"));
      if (merged) throw bad(dir, "unsupported model", `missing ${rel} (decoder_model.onnx without past inputs is not supported: export the merged decoder)`);
      throw bad(dir, "missing model file", `missing ${rel}`);
    }
  }
  const gen = await readJson(root, HF_VLM_FILES.generationConfig, false);
  const eosRaw = gen?.eos_token_id ?? config.eos_token_id ?? text.eos_token_id;
  const eos = (Array.isArray(eosRaw) ? eosRaw : [eosRaw]).filter((x): x is number => typeof x === "number");
  if (eos.length === 0) throw bad(dir, "bad model config", `missing ${HF_VLM_FILES.generationConfig} eos_token_id (nor in config.json)`);
  const pad = num(gen, "pad_token_id") ?? num(config, "pad_token_id") ?? num(text, "pad_token_id") ?? eos[0]!;

  const tokJson = await readJson(root, HF_VLM_FILES.tokenizer, true);
  const tokConfig = await readJson(root, HF_VLM_FILES.tokenizerConfig, true);
  const chatTemplate = typeof tokConfig.chat_template === "string" ? tokConfig.chat_template : undefined;
  if (!chatTemplate) throw bad(dir, "bad chat template", `missing ${HF_VLM_FILES.tokenizerConfig} chat_template`);
  const tokenizer = HfTokenizer.fromJSON(tokJson, tokConfig);
  const imageToken = tokenizer.idToToken(imageId);
  if (imageToken === undefined) throw bad(where, "bad model config", `image_token_index ${imageId} is not a token of ${HF_VLM_FILES.tokenizer}`);
  const pre = await readJson(root, HF_VLM_FILES.preprocessor, true);
  const preprocess = parsePreprocessorConfig(pre, `${dir}/${HF_VLM_FILES.preprocessor}`);

  const specialText = (k: string): string => {
    const v = tokConfig[k];
    if (typeof v === "string") return v;
    if (v && typeof v === "object" && typeof (v as Json).content === "string") return (v as Json).content as string;
    return "";
  };
  return new HfVlm({
    dir: root,
    vocabSize,
    maxPositions,
    imageTokens: np,
    width,
    imageSize,
    imageId,
    imageToken,
    stopTokens: eos,
    padId: pad,
    kv: { layers, heads: kvHeads, headDim, layout: "past" },
    tokenizer,
    template: new Template(chatTemplate),
    specials: { bos_token: specialText("bos_token"), eos_token: specialText("eos_token"), pad_token: specialText("pad_token"), unk_token: specialText("unk_token") },
    preprocess,
  });
}

interface HfVlmParts {
  dir: string;
  vocabSize: number;
  maxPositions: number;
  imageTokens: number;
  width: number;
  imageSize: number;
  imageId: number;
  imageToken: string;
  stopTokens: number[];
  padId: number;
  kv: PolicyModel["kv"];
  tokenizer: HfTokenizer;
  template: Template;
  specials: Record<string, string>;
  preprocess: ImageProcessorConfig;
}

/** An imported HF VLM (see the file header); create with {@link loadHfVlm}. */
export class HfVlm implements PolicyModel {
  readonly kind = "hf-onnx-vlm";
  readonly dir: string;
  readonly vocabSize: number;
  readonly maxPositions: number;
  /** The image's tokens are part of the prompt ids here, so no extra positions. */
  readonly imageTokens = 0;
  /** Image tokens (= feature rows) per image. */
  readonly imageTokenCount: number;
  readonly maxPromptTokens: number;
  readonly featureDims: readonly [number, number];
  readonly imageSize: number;
  readonly imageTokenId: number;
  readonly stopTokens: readonly number[];
  readonly padTokenId: number;
  readonly kv: PolicyModel["kv"];
  readonly tokenizer: HfTokenizer;
  readonly preprocess: ImageProcessorConfig;
  private readonly imageToken: string;
  private readonly template: Template;
  private readonly specials: Record<string, string>;
  private logpsHead: Uint8Array | undefined;
  /** The merged decoder takes Optimum's `use_cache_branch` flag (older merged exports do). */
  private cacheBranch = false;
  /** The merged decoder takes `num_logits_to_keep` (fed 0 = every position, as our reads need). */
  private logitsToKeep = false;

  constructor(p: HfVlmParts) {
    this.dir = p.dir;
    this.vocabSize = p.vocabSize;
    this.maxPositions = p.maxPositions;
    this.imageTokenCount = p.imageTokens;
    this.maxPromptTokens = p.maxPositions;
    this.featureDims = [p.imageTokens, p.width];
    this.imageSize = p.imageSize;
    this.imageTokenId = p.imageId;
    this.imageToken = p.imageToken;
    this.stopTokens = p.stopTokens;
    this.padTokenId = p.padId;
    this.kv = p.kv;
    this.tokenizer = p.tokenizer;
    this.template = p.template;
    this.specials = p.specials;
    this.preprocess = p.preprocess;
  }

  /** The chat template over one user turn with the image and `prompt` (generation prompt on). */
  renderPrompt(prompt: string, answer?: string): string {
    const messages: Json[] = [{ role: "user", content: [{ type: "image" }, { type: "text", text: prompt }] }];
    if (answer !== undefined) messages.push({ role: "assistant", content: [{ type: "text", text: answer }] });
    try {
      return this.template.render({ messages, add_generation_prompt: answer === undefined, ...this.specials });
    } catch (e) {
      throw bad(`${this.dir}/${HF_VLM_FILES.tokenizerConfig}`, "bad chat template", `chat_template failed: ${(e as Error).message.split("\n")[0]}`, e);
    }
  }

  /**
   * Text with exactly one image token -> ids with that token repeated once per feature row. The
   * whole text is tokenized at once (the image token is an added token, so it splits the text as
   * in LlavaProcessor, which repeats it in the text before tokenizing); special tokens come from
   * the chat template, none are added.
   */
  private idsWithImage(text: string, userText: string): number[] {
    const ids = this.tokenizer.encode(text, { addSpecialTokens: false, maxLength: 1 << 30 }).ids;
    const at = ids.flatMap((t, i) => (t === this.imageTokenId ? [i] : []));
    if (at.length !== 1) {
      const detail = `the rendered prompt has ${at.length} image tokens '${this.imageToken}'; exactly one image per prompt is supported`;
      // The user's own text naming the image token is a bad row; otherwise the template is at fault.
      if (userText.includes(this.imageToken)) throw new InputError(`${detail} (the prompt or response writes '${this.imageToken}')`, { code: "bad prompt", where: { file: this.dir } });
      throw bad(this.dir, "bad chat template", detail);
    }
    const i = at[0]!;
    return [...ids.slice(0, i), ...new Array<number>(this.imageTokenCount).fill(this.imageTokenId), ...ids.slice(i + 1)];
  }

  promptIds(prompt: string): number[] {
    return this.idsWithImage(this.renderPrompt(prompt), prompt);
  }

  /** Prompt ‖ response as the chat template writes a finished turn; 1 on the response's tokens. */
  scoredText(prompt: string, answer: string): HfScoredText {
    const p = this.promptIds(prompt);
    const full = this.idsWithImage(this.renderPrompt(prompt, answer), prompt + answer);
    let common = 0;
    while (common < p.length && common < full.length && p[common] === full[common]) common++;
    if (common === full.length) throw bad(this.dir, "bad chat template", `chat_template renders no tokens for the response '${answer.slice(0, 40)}'`);
    return { ids: full, answerMask: full.map((_, i) => (i >= common ? 1 : 0)) };
  }

  decodeTokens(ids: readonly number[]): string {
    return this.tokenizer.decode(ids);
  }

  sessions(opts: { scoring?: boolean } = {}): Record<string, Uint8Array | string> {
    const s: Record<string, Uint8Array | string> = {
      [HF_VLM_SESSIONS.embed]: join(this.dir, HF_VLM_FILES.embedTokens),
      [HF_VLM_SESSIONS.decoder]: join(this.dir, HF_VLM_FILES.decoder),
    };
    if (opts.scoring) {
      this.logpsHead ??= (() => {
        const h = hfLogpsHeadGraph();
        return h.graph.toOnnx({ outputs: h.outputs }).bytes;
      })();
      s[HF_VLM_SESSIONS.logps] = this.logpsHead;
    }
    return s;
  }

  vision(): { model: string; input: string; output: string } {
    return { model: join(this.dir, HF_VLM_FILES.visionEncoder), input: HF_VLM_IO.pixelValues, output: HF_VLM_IO.imageFeatures };
  }

  /**
   * Checks the graphs' real inputs once loaded: the layout's names must be there (one line naming
   * the file otherwise); Optimum's `use_cache_branch` is fed when the merged decoder has it.
   */
  sessionsLoaded(infos: Record<string, { inputNames: readonly string[]; outputNames: readonly string[] }>): void {
    const need = (key: string, file: string, inputs: string[], outputs: string[]) => {
      const info = infos[key];
      if (!info) return;
      const missIn = inputs.filter((n) => !info.inputNames.includes(n));
      const missOut = outputs.filter((n) => !info.outputNames.includes(n));
      if (missIn.length + missOut.length > 0) {
        const what = [...missIn.map((n) => `input ${n}`), ...missOut.map((n) => `output ${n}`)].join(", ");
        throw bad(`${this.dir}/${file}`, "bad model file", `missing ${what} (have inputs ${info.inputNames.join(", ")})`);
      }
    };
    const past: string[] = [];
    for (let l = 0; l < this.kv.layers; l++) past.push(HF_VLM_IO.pastKey(l), HF_VLM_IO.pastValue(l));
    need(HF_VLM_SESSIONS.embed, HF_VLM_FILES.embedTokens, [HF_VLM_IO.inputIds], [HF_VLM_IO.inputsEmbeds]);
    need(HF_VLM_SESSIONS.decoder, HF_VLM_FILES.decoder, [HF_VLM_IO.inputsEmbeds, HF_VLM_IO.attentionMask, HF_VLM_IO.positionIds, ...past], [HF_VLM_IO.logits, HF_VLM_IO.presentKey(0)]);
    this.cacheBranch = infos[HF_VLM_SESSIONS.decoder]?.inputNames.includes("use_cache_branch") ?? false;
    this.logitsToKeep = infos[HF_VLM_SESSIONS.decoder]?.inputNames.includes("num_logits_to_keep") ?? false;
  }

  /**
   * Optional inputs of real merged exports: `use_cache_branch` (true once a past exists) and
   * `num_logits_to_keep` (0: logits at every position — a right-padded prefill reads each row's
   * own last one, and scoring reads them all).
   */
  private branch(hasPast: boolean): Record<string, TensorValue> {
    const f: Record<string, TensorValue> = {};
    if (this.cacheBranch) f.use_cache_branch = { dtype: "bool", dims: [1], data: Uint8Array.of(hasPast ? 1 : 0) };
    if (this.logitsToKeep) f.num_logits_to_keep = { dtype: "int64", dims: [], data: BigInt64Array.of(0n) };
    return f;
  }

  private emptyPast(rows: number): Record<string, TensorValue> {
    const { layers, heads, headDim } = this.kv;
    const f: Record<string, TensorValue> = {};
    for (let l = 0; l < layers; l++) {
      f[HF_VLM_IO.pastKey(l)] = { dtype: "float32", dims: [rows, heads, 0, headDim], data: new Float32Array(0) };
      f[HF_VLM_IO.pastValue(l)] = { dtype: "float32", dims: [rows, heads, 0, headDim], data: new Float32Array(0) };
    }
    return f;
  }

  /**
   * Full forward over right-padded `ids` with the image features merged at the image tokens:
   * logits [R, T, V] and present K/V [R, H, T, Dh] (first call of the growing-past convention).
   */
  async forward(run: SessionRun, features: Float32Array, ids: readonly (readonly number[])[]): Promise<{ out: Record<string, TensorValue>; T: number }> {
    const R = ids.length;
    const T = Math.max(...ids.map((x) => x.length));
    const D = this.featureDims[1];
    const np = this.imageTokenCount;
    if (features.length !== R * np * D) throw bad(this.dir, "bad model output", `${features.length} feature floats for ${R} prompts, expected [${R}, ${np}, ${D}]`);
    const idData = new BigInt64Array(R * T).fill(BigInt(this.padTokenId));
    const mask = new BigInt64Array(R * T);
    const pos = new BigInt64Array(R * T).fill(1n); // pads: 1, as transformers.js's cumsum_masked_fill
    ids.forEach((row, r) => {
      row.forEach((t, i) => {
        idData[r * T + i] = BigInt(t);
        mask[r * T + i] = 1n;
        pos[r * T + i] = BigInt(i);
      });
    });
    const e = await run(HF_VLM_SESSIONS.embed, { [HF_VLM_IO.inputIds]: { dtype: "int64", dims: [R, T], data: idData } });
    const embeds = e[HF_VLM_IO.inputsEmbeds]!.data as Float32Array; // [R, T, D]
    if (embeds.length !== R * T * D) throw bad(this.dir, "bad model output", `embed_tokens returned ${embeds.length} floats, expected [${R}, ${T}, ${D}]`);
    // the image features replace the embeddings at the image tokens, in order (one image per row)
    ids.forEach((row, r) => {
      let k = 0;
      row.forEach((t, i) => {
        if (t !== this.imageTokenId) return;
        // internal invariant: ids come from promptIds/scoredText, which expand exactly one image
        if (k >= np) throw new Error(`${this.dir}: prompt ${r} has more than ${np} image tokens`);
        embeds.set(features.subarray((r * np + k) * D, (r * np + k + 1) * D), (r * T + i) * D);
        k++;
      });
      if (k !== np) throw new Error(`${this.dir}: prompt ${r} has ${k} image tokens, the image has ${np} features`); // internal invariant, as above
    });
    const out = await run(HF_VLM_SESSIONS.decoder, {
      [HF_VLM_IO.inputsEmbeds]: { dtype: "float32", dims: [R, T, D], data: embeds },
      [HF_VLM_IO.attentionMask]: { dtype: "int64", dims: [R, T], data: mask },
      [HF_VLM_IO.positionIds]: { dtype: "int64", dims: [R, T], data: pos },
      ...this.emptyPast(R),
      ...this.branch(false),
    });
    return { out, T };
  }

  async prefill(run: SessionRun, features: Float32Array, ids: readonly (readonly number[])[]): Promise<PolicyPrefill> {
    const { out, T } = await this.forward(run, features, ids);
    const V = this.vocabSize;
    const all = out[HF_VLM_IO.logits]!;
    if (all.data.length !== ids.length * T * V) throw bad(this.dir, "bad model output", `decoder logits are [${all.dims}], expected [${ids.length}, ${T}, ${V}]`);
    const logits = new Float32Array(ids.length * V);
    ids.forEach((row, r) => logits.set((all.data as Float32Array).subarray((r * T + row.length - 1) * V, (r * T + row.length) * V), r * V));
    // keep only the K/V: prefilled samples may wait for a row, the full logits need not wait with them
    const present: Record<string, TensorValue> = {};
    for (const [k, v] of Object.entries(out)) if (k.startsWith("present.")) present[k] = v;
    return { logits, present, srcSlots: T, lengths: ids.map((x) => x.length) };
  }

  async step(run: SessionRun, tokens: readonly number[], positions: readonly number[], kv: PolicyKv): Promise<Float32Array> {
    const B = tokens.length;
    const D = this.featureDims[1];
    // internal invariant: clipflow's Decoder builds the lane from this policy's own kv layout
    if (!kv.holes || kv.pastSlots === undefined) throw new Error(`${this.dir}: the decoder gave a KV lane without the past layout`);
    const past = kv.feeds(B);
    const holes = kv.holes(B);
    const T = kv.pastSlots;
    const e = await run(HF_VLM_SESSIONS.embed, { [HF_VLM_IO.inputIds]: { dtype: "int64", dims: [B, 1], data: BigInt64Array.from(tokens, (t) => BigInt(t)) } });
    const mask = new BigInt64Array(B * (T + 1));
    holes.forEach((h, b) => mask.fill(1n, b * (T + 1) + h, (b + 1) * (T + 1)));
    const out = await run(HF_VLM_SESSIONS.decoder, {
      [HF_VLM_IO.inputsEmbeds]: { dtype: "float32", dims: [B, 1, D], data: e[HF_VLM_IO.inputsEmbeds]!.data },
      [HF_VLM_IO.attentionMask]: { dtype: "int64", dims: [B, T + 1], data: mask },
      [HF_VLM_IO.positionIds]: { dtype: "int64", dims: [B, 1], data: BigInt64Array.from(positions, (p) => BigInt(p)) },
      ...past,
      ...this.branch(true),
    });
    kv.append(out, positions);
    return out[HF_VLM_IO.logits]!.data as Float32Array; // [B, 1, V]
  }

  /**
   * Log-probs of given responses in one teacher-forced pass: Σ log p over each item's
   * response tokens (answerMask) and their count. features [R, Np, D].
   */
  async sequenceLogps(run: SessionRun, features: Float32Array, items: readonly HfScoredText[]): Promise<{ logps: Float32Array; nTokens: Float32Array }> {
    const ids = items.map((i) => i.ids);
    const { out, T } = await this.forward(run, features, ids);
    const R = items.length;
    const am = new BigInt64Array(R * T);
    const idData = new BigInt64Array(R * T).fill(BigInt(this.padTokenId));
    items.forEach((it, r) => it.ids.forEach((t, i) => {
      idData[r * T + i] = BigInt(t);
      am[r * T + i] = BigInt(it.answerMask[i] ?? 0);
    }));
    const lp = await run(HF_VLM_SESSIONS.logps, {
      logits: out[HF_VLM_IO.logits]!,
      input_ids: { dtype: "int64", dims: [R, T], data: idData },
      answer_mask: { dtype: "int64", dims: [R, T], data: am },
    });
    return { logps: lp.logps!.data as Float32Array, nTokens: lp.n_tokens!.data as Float32Array };
  }
}
