/**
 * CLIP in the Hugging Face ONNX layout, as transformers.js / Optimum exports write it:
 *
 * ```
 * <dir>/config.json                  CLIPConfig (text_config, vision_config, projection_dim)
 * <dir>/preprocessor_config.json     CLIPImageProcessor (size, crop_size, image_mean, image_std)
 * <dir>/tokenizer.json (+ tokenizer_config.json)   or clipflow's word_vocab.json (tokenizer-files.ts)
 * <dir>/onnx/vision_model.onnx       pixel_values float32 [batch, 3, S, S] -> image_embeds [batch, E]
 * <dir>/onnx/text_model.onnx         input_ids int64 [batch, seq] (+ attention_mask int64) -> text_embeds [batch, E]
 * <dir>/model.safetensors            clipflow exports only: trainable weights (param names of clip.ts)
 * ```
 * The embeddings are the projections *before* L2 normalisation (CLIPVisionModelWithProjection /
 * CLIPTextModelWithProjection); callers normalise for cosine scores. Real exports' text models
 * pool inside the graph (argmax or first-eos per their config), so the loader needs only sizes:
 * image size and mean/std from preprocessor_config.json, context length from
 * text_config.max_position_embeddings, pad/eos ids from the tokenizer.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { ParamStore } from "../graph/params.ts";
import { ModelConfigError, fromHfClipConfig, toHfClipConfig } from "./clip-config.ts";
import { ClipModel, clipParamSpecs, OnnxClip } from "./clip-model.ts";
import { parsePreprocessorConfig, pixelShape, toPreprocessorJson } from "./preprocessor-config.ts";
import { loadTokenizer, saveTokenizer } from "./tokenizer-files.ts";

export const HF_CLIP_FILES = {
  config: "config.json",
  preprocessor: "preprocessor_config.json",
  vision: "onnx/vision_model.onnx",
  text: "onnx/text_model.onnx",
  weights: "model.safetensors",
} as const;

/**
 * A model folder's JSON file (config.json, preprocessor_config.json): a missing file or bad JSON
 * is a one-line ModelConfigError naming the file.
 * @example const raw = await readModelJson(join(dir, "config.json"));
 */
export async function readModelJson(path: string): Promise<unknown> {
  if (!existsSync(path)) throw new ModelConfigError(`${path}: file not found`);
  let text: string;
  try {
    text = await Bun.file(path).text();
  } catch (e) {
    throw new ModelConfigError(`${path}: cannot read (${(e as Error).message.split("\n")[0]!.slice(0, 200)})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ModelConfigError(`${path}: not valid JSON (${(e as Error).message.split("\n")[0]!.slice(0, 200)})`);
  }
}
const readJson = readModelJson;

/**
 * Write `clip` as a HF-layout folder (ONNX weights baked as initializers) plus model.safetensors.
 * @example
 * await exportClip(clip, "models/shapes-clip");
 */
export async function exportClip(clip: ClipModel, dir: string): Promise<void> {
  mkdirSync(join(dir, "onnx"), { recursive: true });
  await Bun.write(join(dir, HF_CLIP_FILES.vision), clip.visionOnnx(true).bytes);
  await Bun.write(join(dir, HF_CLIP_FILES.text), clip.textOnnx(true).bytes);
  await Bun.write(join(dir, HF_CLIP_FILES.config), JSON.stringify(toHfClipConfig(clip.cfg, { logit_scale: clip.logitScale, tokenizer: clip.tokenizer.kind }), null, 2));
  await Bun.write(join(dir, HF_CLIP_FILES.preprocessor), JSON.stringify(toPreprocessorJson(clip.preprocess), null, 2));
  await saveTokenizer(clip.tokenizer, dir);
  await clip.store.save(join(dir, HF_CLIP_FILES.weights), { clipflow: "clip" });
}

/**
 * Open any CLIP folder in the HF ONNX layout (a real ViT-B/32 export or one clipflow wrote) for
 * inference. ONNX files are looked up under `onnx/`, then at the folder root.
 * @example
 * const clip = await loadClip("./hf/clip-vit-base-patch32");
 * const emb = await clip.encodeTexts(["a photo of a cat"]);
 */
export async function loadClip(dir: string, opts: { threads?: number } = {}): Promise<OnnxClip> {
  const cfg = fromHfClipConfig(await readJson(join(dir, HF_CLIP_FILES.config)), join(dir, HF_CLIP_FILES.config));
  const preprocess = parsePreprocessorConfig(await readJson(join(dir, HF_CLIP_FILES.preprocessor)), join(dir, HF_CLIP_FILES.preprocessor));
  const [, h, w] = pixelShape(preprocess);
  if (h !== w) throw new ModelConfigError(`${join(dir, HF_CLIP_FILES.preprocessor)}: crop ${h}x${w} is not square`);
  if (h !== cfg.vision.imageSize) {
    throw new ModelConfigError(`${dir}: preprocessor crop ${h} differs from vision_config.image_size ${cfg.vision.imageSize}`);
  }
  const tokenizer = await loadTokenizer(dir);
  const find = (rel: string): string => {
    for (const p of [join(dir, rel), join(dir, rel.replace(/^onnx\//, ""))]) if (existsSync(p)) return p;
    throw new ModelConfigError(`${dir}: missing ${rel} (a combined model.onnx is not supported; export vision and text models separately)`);
  };
  const raw = (await readJson(join(dir, HF_CLIP_FILES.config))) as Record<string, unknown>;
  const cf = (raw.clipflow ?? {}) as Record<string, unknown>;
  return OnnxClip.open({
    vision: find(HF_CLIP_FILES.vision),
    text: find(HF_CLIP_FILES.text),
    embedDim: cfg.embedDim,
    imageSize: cfg.vision.imageSize,
    contextLength: Math.min(cfg.text.contextLength, tokenizer.modelMaxLength ?? Infinity),
    tokenizer,
    preprocess,
    // Trained CLIPs sit at the clamp (100); clipflow records its own value.
    logitScale: typeof cf.logit_scale === "number" ? cf.logit_scale : 100,
    padId: tokenizer.special.pad,
    ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
  });
}

/** Reload a clipflow-exported CLIP as a trainable {@link ClipModel} (needs model.safetensors). */
export async function loadClipModel(dir: string): Promise<ClipModel> {
  const cfg = fromHfClipConfig(await readJson(join(dir, HF_CLIP_FILES.config)), join(dir, HF_CLIP_FILES.config));
  const preprocess = parsePreprocessorConfig(await readJson(join(dir, HF_CLIP_FILES.preprocessor)), join(dir, HF_CLIP_FILES.preprocessor));
  const weights = join(dir, HF_CLIP_FILES.weights);
  if (!existsSync(weights)) throw new ModelConfigError(`${dir}: no ${HF_CLIP_FILES.weights}; only clipflow exports can be reloaded for training`);
  const tokenizer = await loadTokenizer(dir);
  const { store } = await ParamStore.load(weights);
  checkParams(clipParamSpecs(cfg), store, weights);
  return new ClipModel(cfg, store, tokenizer, preprocess);
}

/** Every spec present with its shape, nothing extra: a config/weights mismatch fails naming the file. */
export function checkParams(specs: readonly { name: string; shape: number[] }[], store: ParamStore, where: string): void {
  const want = new Map(specs.map((s) => [s.name, s.shape]));
  for (const [name, shape] of want) {
    const p = store.get(name);
    if (!p) throw new ModelConfigError(`${where}: missing weight '${name}'`);
    if (p.shape.join() !== shape.join()) throw new ModelConfigError(`${where}: weight '${name}' is [${p.shape}], config wants [${shape}]`);
  }
  for (const name of store.names()) if (!want.has(name)) throw new ModelConfigError(`${where}: unexpected weight '${name}'`);
}
