/**
 * A CLIP whose two towers run on the inference scheduler (dynamic batching across every stage
 * and stream that embeds). Shared by `clipScore` and `filter`; the ONNX graphs are registered
 * once per scheduler as `<name>.image` and `<name>.text`.
 *
 * Embeddings come back L2-normalised, so a cosine is a dot product.
 *
 * @example
 * const s = new Scheduler();
 * const clip = ScheduledClip.fromModel(s, ClipModel.create(clipPresets.tiny(64), tok, 0));
 * const img = await clip.embedImages(pixels, n, "stream-a");   // Float32Array [n, E], unit rows
 * const txt = await clip.embedTexts(["a red circle"], "stream-a");
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { TensorValue } from "../src/graph/runtime.ts";
import { CLIP_IO } from "../src/models/clip.ts";
import { fromHfClipConfig } from "../src/models/clip-config.ts";
import type { ClipModel } from "../src/models/clip-model.ts";
import { HF_CLIP_FILES, readModelJson } from "../src/models/hf-clip.ts";
import { parsePreprocessorConfig, type ImageProcessorConfig } from "../src/models/preprocessor-config.ts";
import { loadTokenizer } from "../src/models/tokenizer-files.ts";
import type { Tokenizer } from "../src/models/tokenizer.ts";
import { padIds } from "../src/models/text-batch.ts";
import type { BatchedModel, BatchOptions, Scheduler } from "../src/scheduler/scheduler.ts";

export interface ClipInfo {
  tokenizer: Tokenizer;
  contextLength: number;
  embedDim: number;
  imageSize: number;
  preprocess: ImageProcessorConfig;
  /** exp(logit scale), for zero-shot softmax. */
  logitScale: number;
}

/** Rows of a [n, E] matrix scaled to unit length in place (a zero row stays zero). */
export function normalizeRows(m: Float32Array, e: number): Float32Array {
  // O(n·E): negligible next to the towers that produced the rows (O(n·E·width·layers) in ORT).
  for (let r = 0; r < m.length; r += e) {
    let s = 0;
    for (let k = r; k < r + e; k++) s += m[k]! * m[k]!;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let k = r; k < r + e; k++) m[k]! *= inv;
  }
  return m;
}

/** Width in tokens of the text tower's length groups (see `ScheduledClip.embedIds`). */
export const TEXT_LENGTH_STEP = 4;

/**
 * Upper bounds of the text tower's length groups up to `contextLength`: 4, 8, … (the last is
 * `contextLength`). Rows of one group pad to at most `TEXT_LENGTH_STEP - 1` tokens more than their own.
 * @example textLengthBuckets(10) // [4, 8, 10]
 */
export function textLengthBuckets(contextLength: number): number[] {
  const b: number[] = [];
  for (let l = TEXT_LENGTH_STEP; l < contextLength; l += TEXT_LENGTH_STEP) b.push(l);
  b.push(contextLength);
  return b;
}

export class ScheduledClip implements ClipInfo {
  private constructor(
    readonly info: ClipInfo,
    private readonly image: BatchedModel,
    private readonly text: BatchedModel,
  ) {}

  get tokenizer(): Tokenizer { return this.info.tokenizer; }
  get contextLength(): number { return this.info.contextLength; }
  get embedDim(): number { return this.info.embedDim; }
  get imageSize(): number { return this.info.imageSize; }
  get preprocess(): ImageProcessorConfig { return this.info.preprocess; }
  get logitScale(): number { return this.info.logitScale; }

  /** Register vision and text ONNX models (bytes or paths) with `scheduler` under `name`. */
  static register(
    scheduler: Scheduler,
    name: string,
    models: { vision: Uint8Array | string; text: Uint8Array | string },
    info: ClipInfo,
    opts: BatchOptions = {},
  ): ScheduledClip {
    const image = scheduler.register(`${name}.image`, { model: models.vision, outputNames: [CLIP_IO.imageEmbeds] }, opts);
    const text = scheduler.register(
      `${name}.text`,
      {
        model: models.text,
        inputs: {
          [CLIP_IO.inputIds]: { variableAxis: 1, padValue: BigInt(info.tokenizer.special.pad) },
          [CLIP_IO.attentionMask]: { variableAxis: 1, padValue: 0n },
        },
        outputNames: [CLIP_IO.textEmbeds],
        // Text cost grows with the padded length (the tower runs every padded position): the
        // batcher merges only requests of one length group (embedIds sends one per group).
        lengthBuckets: textLengthBuckets(info.contextLength),
      },
      opts,
    );
    return new ScheduledClip(info, image, text);
  }

  /** clipflow's own CLIP (weights baked into the registered graphs: later training is not seen). */
  static fromModel(scheduler: Scheduler, clip: ClipModel, name = "clip", opts: BatchOptions = {}): ScheduledClip {
    return ScheduledClip.register(scheduler, name, { vision: clip.visionOnnx(true).bytes, text: clip.textOnnx(true).bytes }, {
      tokenizer: clip.tokenizer,
      contextLength: clip.contextLength,
      embedDim: clip.embedDim,
      imageSize: clip.imageSize,
      preprocess: clip.preprocess,
      logitScale: clip.logitScale,
    }, opts);
  }

  /** A CLIP folder in the Hugging Face ONNX layout (the ONNX files go to the workers by path). */
  static async fromDir(scheduler: Scheduler, dir: string, name = "clip", opts: BatchOptions = {}): Promise<ScheduledClip> {
    const cfgPath = join(dir, HF_CLIP_FILES.config);
    const ppPath = join(dir, HF_CLIP_FILES.preprocessor);
    for (const p of [cfgPath, ppPath]) if (!existsSync(p)) throw new Error(`${dir}: missing ${p}`);
    const raw = (await readModelJson(cfgPath)) as Record<string, unknown>; // bad JSON names the file
    const cfg = fromHfClipConfig(raw, cfgPath);
    const preprocess = parsePreprocessorConfig(await readModelJson(ppPath), ppPath);
    const tokenizer = await loadTokenizer(dir);
    const find = (rel: string): string => {
      for (const p of [join(dir, rel), join(dir, rel.replace(/^onnx\//, ""))]) if (existsSync(p)) return p;
      throw new Error(`${dir}: missing ${rel}`);
    };
    const cf = (raw.clipflow ?? {}) as Record<string, unknown>;
    return ScheduledClip.register(scheduler, name, { vision: find(HF_CLIP_FILES.vision), text: find(HF_CLIP_FILES.text) }, {
      tokenizer,
      contextLength: Math.min(cfg.text.contextLength, tokenizer.modelMaxLength ?? Infinity),
      embedDim: cfg.embedDim,
      imageSize: cfg.vision.imageSize,
      preprocess,
      logitScale: typeof cf.logit_scale === "number" ? cf.logit_scale : 100,
    }, opts);
  }

  /** pixels [n, 3, S, S] -> unit image embeddings [n, E]. `pixels` is only read. */
  async embedImages(pixels: Float32Array, n: number, stream?: string): Promise<Float32Array> {
    const s = this.imageSize;
    if (pixels.length !== n * 3 * s * s) throw new Error(`embedImages: ${pixels.length} floats is not [${n}, 3, ${s}, ${s}]`);
    const px: TensorValue = { dtype: "float32", dims: [n, 3, s, s], data: pixels };
    const out = await this.image.run({ [CLIP_IO.pixelValues]: px }, stream ? { stream } : {});
    return normalizeRows(out[CLIP_IO.imageEmbeds]!.data as Float32Array, this.embedDim);
  }

  /**
   * Token id sequences (bos/eos included, each ≤ contextLength) -> unit text embeddings [n, E]
   * (input order). The rows go out in length groups (`textLengthBuckets`), one request each,
   * so a short text is not padded to the longest of the call: sampled captions vary widely in
   * length and the padding would otherwise be a large share of the text tower's work.
   */
  async embedIds(seqs: readonly (readonly number[])[], stream?: string): Promise<Float32Array> {
    // Some exports take no attention mask (they pool at the end token and ignore padding).
    const withMask = (await this.text.ready).inputNames.includes(CLIP_IO.attentionMask);
    const pad = this.tokenizer.special.pad;
    const e = this.embedDim;
    const run = async (group: readonly (readonly number[])[]): Promise<Float32Array> => {
      const b = padIds(group, pad);
      const feeds: Record<string, TensorValue> = { [CLIP_IO.inputIds]: b.ids };
      if (withMask) feeds[CLIP_IO.attentionMask] = b.mask;
      const out = await this.text.run(feeds, stream ? { stream } : {});
      return normalizeRows(out[CLIP_IO.textEmbeds]!.data as Float32Array, e);
    };
    const groups = new Map<number, number[]>(); // length group -> row indices
    seqs.forEach((s, i) => {
      const g = Math.ceil(s.length / TEXT_LENGTH_STEP);
      const rows = groups.get(g);
      if (rows) rows.push(i);
      else groups.set(g, [i]);
    });
    if (groups.size <= 1) return run(seqs);
    const parts = [...groups.values()];
    const embs = await Promise.all(parts.map((rows) => run(rows.map((i) => seqs[i]!))));
    const out = new Float32Array(seqs.length * e); // [n, E]
    parts.forEach((rows, g) => {
      const m = embs[g]!;
      rows.forEach((i, k) => out.set(m.subarray(k * e, (k + 1) * e), i * e));
    });
    return out;
  }

  /** Texts, truncated to the context (counted by the tokenizer) -> unit text embeddings [n, E]. */
  embedTexts(texts: readonly string[], stream?: string): Promise<Float32Array> {
    return this.embedIds(texts.map((t) => this.tokenizer.encode(t, { maxLength: this.contextLength }).ids), stream);
  }
}
