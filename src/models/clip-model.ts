/**
 * Runnable CLIPs. {@link ClipEncoder} is what operators and the scheduler consume; two
 * implementations: {@link ClipModel} (clipflow's own graphs fed from a ParamStore, trainable)
 * and {@link OnnxClip} (any pair of HF-layout ONNX files, e.g. a real exported ViT-B/32).
 */
import { cachedSession, type CompiledGraph, type OnnxModel, type TensorValue } from "../graph/index.ts";
import { ParamStore } from "../graph/params.ts";
import { createSession, runSession, type InferenceSession } from "../graph/runtime.ts";
import { Rng } from "../util/rng.ts";
import { InputError, ModelFileError } from "../util/errors.ts";
import { clipConfig, type ClipConfig, type ClipConfigInput } from "./clip-config.ts";
import { CLIP_IO, clipLossGraph, clipTextGraph, clipVisionGraph } from "./clip.ts";
import { clipImageConfig, type ImageProcessorConfig } from "./preprocessor-config.ts";
import { padIds } from "./text-batch.ts";
import type { Tokenizer } from "./tokenizer.ts";

/** The runnable face of a CLIP, whatever its origin. */
export interface ClipEncoder {
  readonly embedDim: number;
  /** Side of the square model input. */
  readonly imageSize: number;
  /** Longest token sequence the text tower accepts. */
  readonly contextLength: number;
  readonly tokenizer: Tokenizer;
  readonly preprocess: ImageProcessorConfig;
  /** exp(logit scale) the model was trained with (CLIPScore-style scores use it). */
  readonly logitScale: number;
  /** pixels [n, 3, S, S] (preprocessed) -> image embeddings [n, E], not normalised. */
  encodeImages(pixels: Float32Array, n: number): Promise<Float32Array>;
  /** Token id sequences (already wrapped in bos/eos) -> text embeddings [n, E], not normalised. */
  encodeIds(seqs: readonly (readonly number[])[]): Promise<Float32Array>;
  /** Tokenise (truncating to the context, counted by the tokenizer) and embed. */
  encodeTexts(texts: readonly string[]): Promise<Float32Array>;
}

function checkPixels(pixels: Float32Array, n: number, s: number): void {
  if (!Number.isInteger(n) || n < 1 || pixels.length !== n * 3 * s * s) {
    throw new InputError(`encodeImages: ${pixels.length} floats is not [${n}, 3, ${s}, ${s}]`, { code: "bad image size" });
  }
}

function f32(v: TensorValue | undefined, what: string): Float32Array {
  if (!v || !(v.data instanceof Float32Array)) throw new ModelFileError(`CLIP: output '${what}' missing or not float32`, { code: "bad model output" });
  return v.data;
}

/**
 * clipflow's CLIP: graphs built from a {@link ClipConfig}, weights in a ParamStore (so training
 * updates are seen by the next call without rebuilding sessions).
 *
 * @example
 * const clip = ClipModel.create(clipPresets.tiny(tok.vocabSize), tok, 0);
 * const emb = await clip.encodeTexts(["a red circle"]); // Float32Array [1, 16]
 */
export class ClipModel implements ClipEncoder {
  readonly cfg: ClipConfig;
  readonly preprocess: ImageProcessorConfig;
  private vision?: Promise<CompiledGraph>;
  private text?: Promise<CompiledGraph>;

  constructor(
    cfg: ClipConfig | ClipConfigInput,
    readonly store: ParamStore,
    readonly tokenizer: Tokenizer,
    preprocess?: ImageProcessorConfig,
    /** ORT intra-op threads for this model's sessions. */
    readonly threads = 1,
  ) {
    this.cfg = clipConfig(cfg);
    this.preprocess = preprocess ?? clipImageConfig(this.cfg.vision.imageSize);
    if (tokenizer.vocabSize > this.cfg.text.vocabSize) {
      throw new ModelFileError(`ClipModel: tokenizer has ${tokenizer.vocabSize} tokens, text tower only ${this.cfg.text.vocabSize}`, { code: "mismatched model" });
    }
  }

  /** A fresh model with weights drawn from `seed`. */
  static create(cfg: ClipConfig | ClipConfigInput, tokenizer: Tokenizer, seed: number, preprocess?: ImageProcessorConfig): ClipModel {
    const c = clipConfig(cfg);
    return new ClipModel(c, ParamStore.fromSpecs(clipParamSpecs(c), new Rng(seed)), tokenizer, preprocess);
  }

  get embedDim(): number {
    return this.cfg.embedDim;
  }
  get imageSize(): number {
    return this.cfg.vision.imageSize;
  }
  get contextLength(): number {
    return this.cfg.text.contextLength;
  }
  get logitScale(): number {
    const p = this.store.get("logit_scale");
    return p ? Math.min(Math.exp(p.data[0]!), 100) : Math.exp(this.cfg.logitScaleInit);
  }

  async encodeImages(pixels: Float32Array, n: number): Promise<Float32Array> {
    const s = this.imageSize;
    checkPixels(pixels, n, s);
    this.vision ??= (() => {
      const { graph, outputs } = clipVisionGraph(this.cfg);
      return graph.compile({ outputs, params: this.store, threads: this.threads });
    })();
    const r = await (await this.vision).run({ [CLIP_IO.pixelValues]: { dtype: "float32", dims: [n, 3, s, s], data: pixels } });
    return f32(r[CLIP_IO.imageEmbeds], CLIP_IO.imageEmbeds);
  }

  async encodeIds(seqs: readonly (readonly number[])[]): Promise<Float32Array> {
    const b = padIds(seqs, this.cfg.text.padTokenId);
    if (b.ids.dims[1]! > this.contextLength) throw new InputError(`encodeIds: ${b.ids.dims[1]} tokens exceed the context of ${this.contextLength}`, { code: "text too long" });
    this.text ??= (() => {
      const { graph, outputs } = clipTextGraph(this.cfg);
      return graph.compile({ outputs, params: this.store, threads: this.threads });
    })();
    const r = await (await this.text).run({ [CLIP_IO.inputIds]: b.ids, [CLIP_IO.attentionMask]: b.mask });
    return f32(r[CLIP_IO.textEmbeds], CLIP_IO.textEmbeds);
  }

  encodeTexts(texts: readonly string[]): Promise<Float32Array> {
    return this.encodeIds(texts.map((t) => this.tokenizer.encode(t, { maxLength: this.contextLength }).ids));
  }

  /** HF onnx/vision_model.onnx bytes; weights baked as initializers unless `bake` is false. */
  visionOnnx(bake = true): OnnxModel {
    const { graph, outputs } = clipVisionGraph(this.cfg);
    return graph.toOnnx({ outputs, ...(bake ? { bake: this.store } : {}) });
  }

  /** HF onnx/text_model.onnx bytes; weights baked as initializers unless `bake` is false. */
  textOnnx(bake = true): OnnxModel {
    const { graph, outputs } = clipTextGraph(this.cfg);
    return graph.toOnnx({ outputs, ...(bake ? { bake: this.store } : {}) });
  }
}

/** Every parameter of a CLIP (the loss graph uses them all). */
export function clipParamSpecs(cfg: ClipConfig) {
  return clipLossGraph(cfg).graph.params();
}

/**
 * A CLIP given as two HF-layout ONNX models (`pixel_values` -> `image_embeds`;
 * `input_ids` [+ `attention_mask`] -> `text_embeds`). Works for Optimum / transformers.js exports,
 * whose text model may or may not take an attention mask: the session's input names decide.
 */
export class OnnxClip implements ClipEncoder {
  private constructor(
    private readonly visionSession: InferenceSession,
    private readonly textSession: InferenceSession,
    readonly embedDim: number,
    readonly imageSize: number,
    readonly contextLength: number,
    readonly tokenizer: Tokenizer,
    readonly preprocess: ImageProcessorConfig,
    readonly logitScale: number,
    private readonly padId: number,
    /** Pad every text batch to the full context (exports with a fixed sequence length need it). */
    private readonly padToContext: boolean,
    private readonly idsType: "int64" | "int32" = "int64",
  ) {}

  static async open(opts: {
    vision: Uint8Array | string;
    text: Uint8Array | string;
    embedDim: number;
    imageSize: number;
    contextLength: number;
    tokenizer: Tokenizer;
    preprocess: ImageProcessorConfig;
    logitScale?: number;
    padId: number;
    threads?: number;
    padToContext?: boolean;
  }): Promise<OnnxClip> {
    // A path goes straight to ORT (a real ViT-B/32 vision model is ~350 MB: no JS copy, no hashing).
    const open = (m: Uint8Array | string) =>
      typeof m === "string" ? createSession(m, { intraOpThreads: opts.threads ?? 1 }) : cachedSession(m, { threads: opts.threads });
    const [v, t] = await Promise.all([open(opts.vision), open(opts.text)]);
    const need = (s: InferenceSession, names: string[], what: string) => {
      for (const n of names) {
        if (!s.inputNames.includes(n) && !s.outputNames.includes(n)) {
          throw modelErr(what, "bad model file", `expected '${n}' (has inputs ${s.inputNames.join(", ")}; outputs ${s.outputNames.join(", ")})`);
        }
      }
    };
    const vName = typeof opts.vision === "string" ? opts.vision : "vision model";
    const tName = typeof opts.text === "string" ? opts.text : "text model";
    // A path is the `where` of the error; bytes have only a name, kept in the message.
    const modelErr = (name: string, code: string, detail: string) =>
      name === opts.vision || name === opts.text ? new ModelFileError(detail, { code, where: { file: name } }) : new ModelFileError(`${name}: ${detail}`, { code });
    need(v, [CLIP_IO.pixelValues, CLIP_IO.imageEmbeds], vName);
    need(t, [CLIP_IO.inputIds, CLIP_IO.textEmbeds], tName);
    // Declared input types/shapes: fp16 exports and image-size mismatches fail here, clearly;
    // int32 ids and a fixed sequence length (some exports bake 77) are adapted to.
    const meta = (s: InferenceSession, name: string) => {
      const m = s.inputMetadata?.find((x) => x.name === name);
      return m && m.isTensor ? m : undefined;
    };
    const pv = meta(v, CLIP_IO.pixelValues);
    if (pv && pv.type !== "float32") throw modelErr(vName, "unsupported model", `pixel_values is ${pv.type}; use the float32 export`);
    const side = pv?.shape[3];
    if (typeof side === "number" && side !== opts.imageSize) throw modelErr(vName, "mismatched model", `pixel_values is ${side}px wide, config says ${opts.imageSize}`);
    const ii = meta(t, CLIP_IO.inputIds);
    if (ii && ii.type !== "int64" && ii.type !== "int32") throw modelErr(tName, "unsupported model", `input_ids is ${ii.type}, expected int64 or int32`);
    const fixed = ii?.shape[1];
    return new OnnxClip(
      v, t, opts.embedDim, opts.imageSize,
      typeof fixed === "number" ? fixed : opts.contextLength,
      opts.tokenizer, opts.preprocess, opts.logitScale ?? 100, opts.padId,
      opts.padToContext ?? typeof fixed === "number",
      ii?.type === "int32" ? "int32" : "int64",
    );
  }

  /** Input names of the text session (whether it takes `attention_mask`). */
  get textInputs(): readonly string[] {
    return this.textSession.inputNames;
  }

  async encodeImages(pixels: Float32Array, n: number): Promise<Float32Array> {
    const s = this.imageSize;
    checkPixels(pixels, n, s);
    const r = await runSession(this.visionSession, { [CLIP_IO.pixelValues]: { dtype: "float32", dims: [n, 3, s, s], data: pixels } }, [CLIP_IO.imageEmbeds]);
    return f32(r[CLIP_IO.imageEmbeds], CLIP_IO.imageEmbeds);
  }

  async encodeIds(seqs: readonly (readonly number[])[]): Promise<Float32Array> {
    const b = padIds(seqs, this.padId, this.padToContext ? this.contextLength : undefined);
    if (b.ids.dims[1]! > this.contextLength) throw new InputError(`encodeIds: ${b.ids.dims[1]} tokens exceed the context of ${this.contextLength}`, { code: "text too long" });
    const as = (x: TensorValue): TensorValue =>
      this.idsType === "int64" ? x : { dtype: "int32", dims: x.dims, data: Int32Array.from(x.data as BigInt64Array, Number) };
    const feeds: Record<string, TensorValue> = { [CLIP_IO.inputIds]: as(b.ids) };
    if (this.textSession.inputNames.includes(CLIP_IO.attentionMask)) feeds[CLIP_IO.attentionMask] = as(b.mask);
    const r = await runSession(this.textSession, feeds, [CLIP_IO.textEmbeds]);
    return f32(r[CLIP_IO.textEmbeds], CLIP_IO.textEmbeds);
  }

  encodeTexts(texts: readonly string[]): Promise<Float32Array> {
    return this.encodeIds(texts.map((t) => this.tokenizer.encode(t, { maxLength: this.contextLength }).ids));
  }
}
