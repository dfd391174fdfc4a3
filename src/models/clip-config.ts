/**
 * CLIP configuration: checked plain data (unknown keys are errors), presets from the test size
 * to the ViT-B/32 shape, and the mapping to/from Hugging Face's CLIPConfig `config.json`.
 */
import { z } from "zod";
import { ModelFileError, type ClipflowErrorOptions } from "../util/errors.ts";

const act = z.enum(["gelu", "quick_gelu", "gelu_tanh"]);

export const ClipVisionConfigSchema = z.strictObject({
  imageSize: z.number().int().positive(),
  patchSize: z.number().int().positive(),
  width: z.number().int().positive(),
  layers: z.number().int().positive(),
  heads: z.number().int().positive(),
  /** MLP hidden size (ViT-B: 4 × width). */
  mlp: z.number().int().positive(),
  act: act.default("quick_gelu"),
  eps: z.number().positive().default(1e-5),
});

export const ClipTextConfigSchema = z.strictObject({
  vocabSize: z.number().int().positive(),
  /** Longest token sequence (CLIP: 77); also the size of the position table. */
  contextLength: z.number().int().positive(),
  width: z.number().int().positive(),
  layers: z.number().int().positive(),
  heads: z.number().int().positive(),
  mlp: z.number().int().positive(),
  act: act.default("quick_gelu"),
  eps: z.number().positive().default(1e-5),
  bosTokenId: z.number().int().nonnegative(),
  eosTokenId: z.number().int().nonnegative(),
  padTokenId: z.number().int().nonnegative(),
  /**
   * Where the text embedding is read: `eos` = first position holding eosTokenId (HF CLIP with a
   * modern config, and clipflow's word tokenizer); `argmax` = position of the largest id (original
   * OpenAI CLIP, whose end-of-text token has the largest id).
   */
  pooling: z.enum(["eos", "argmax"]).default("eos"),
});

export const ClipConfigSchema = z.strictObject({
  vision: ClipVisionConfigSchema,
  text: ClipTextConfigSchema,
  /** Size of the shared image-text embedding space. */
  embedDim: z.number().int().positive(),
  /** Initial log of the logit scale (CLIP: ln(1/0.07) = 2.6592). */
  logitScaleInit: z.number().default(Math.log(1 / 0.07)),
});

export type ClipVisionConfig = z.output<typeof ClipVisionConfigSchema>;
export type ClipTextConfig = z.output<typeof ClipTextConfigSchema>;
export type ClipConfig = z.output<typeof ClipConfigSchema>;
export type ClipConfigInput = z.input<typeof ClipConfigSchema>;

/**
 * A model configuration (config.json, a preset or its overrides) that cannot describe a model,
 * or a model folder missing a file it needs. A bad model file: exit 1, not a pipeline ConfigError.
 */
export class ModelConfigError extends ModelFileError {
  override name = "ModelConfigError";
  constructor(message: string, opts: ClipflowErrorOptions = {}) {
    super(message, { code: "model config", ...opts });
  }
}

/** Validate a zod schema with one error line naming `where` and every bad key. */
export function parseWith<S extends z.ZodType>(schema: S, raw: unknown, where: string): z.output<S> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`);
  throw new ModelConfigError(`${where}: ${issues.join("; ")}`);
}

/**
 * Validate and complete a CLIP config.
 * @example
 * const cfg = clipConfig(clipPresets.tiny(64));
 */
export function clipConfig(raw: ClipConfigInput | unknown, where = "clip config"): ClipConfig {
  const cfg = parseWith(ClipConfigSchema, raw, where);
  const v = cfg.vision, t = cfg.text;
  if (v.imageSize % v.patchSize !== 0) throw new ModelConfigError(`${where}: vision.imageSize ${v.imageSize} is not a multiple of patchSize ${v.patchSize}`);
  if (v.width % v.heads !== 0) throw new ModelConfigError(`${where}: vision.width ${v.width} is not a multiple of heads ${v.heads}`);
  if (t.width % t.heads !== 0) throw new ModelConfigError(`${where}: text.width ${t.width} is not a multiple of heads ${t.heads}`);
  for (const k of ["bosTokenId", "eosTokenId", "padTokenId"] as const) {
    if (t[k] >= t.vocabSize) throw new ModelConfigError(`${where}: text.${k} ${t[k]} outside vocabulary of ${t.vocabSize}`);
  }
  return cfg;
}

/** Number of image patches (= tokens besides the class token). */
export function numPatches(v: ClipVisionConfig): number {
  return (v.imageSize / v.patchSize) ** 2;
}

export const clipPresets = {
  /** Test size: 32² images, patch 8, width 32, one layer each. */
  tiny(vocabSize: number, ids: { bos: number; eos: number; pad: number } = { bos: 1, eos: 2, pad: 0 }): ClipConfigInput {
    return {
      vision: { imageSize: 32, patchSize: 8, width: 32, layers: 1, heads: 2, mlp: 64, act: "gelu" },
      text: { vocabSize, contextLength: 16, width: 32, layers: 1, heads: 2, mlp: 64, act: "gelu", bosTokenId: ids.bos, eosTokenId: ids.eos, padTokenId: ids.pad },
      embedDim: 16,
    };
  },
  /** OpenAI CLIP ViT-B/32: 224², patch 32, vision width 768 × 12 layers, text 512 × 12, embed 512. */
  vitB32(): ClipConfigInput {
    return {
      vision: { imageSize: 224, patchSize: 32, width: 768, layers: 12, heads: 12, mlp: 3072, act: "quick_gelu" },
      text: {
        vocabSize: 49408, contextLength: 77, width: 512, layers: 12, heads: 8, mlp: 2048, act: "quick_gelu",
        bosTokenId: 49406, eosTokenId: 49407, padTokenId: 49407, pooling: "argmax",
      },
      embedDim: 512,
    };
  },
};

// ------------------------------------------------------------------ Hugging Face config.json

const HF_ACT: Record<string, ClipVisionConfig["act"]> = { quick_gelu: "quick_gelu", gelu: "gelu", gelu_new: "gelu_tanh", gelu_pytorch_tanh: "gelu_tanh" };

/** HF CLIPConfig `config.json` for a clipflow CLIP (standard keys, plus a `clipflow` section). */
/** Hugging Face's name of an activation (`gelu_tanh` is `gelu_pytorch_tanh` there). */
export const hfActivation = (a: string): string => (a === "gelu_tanh" ? "gelu_pytorch_tanh" : a);

/** A ViT tower as Hugging Face's `clip_vision_model` config (CLIP exports and LLaVA-style VLM exports share it). */
export function toHfVisionConfig(v: ClipVisionConfig): Record<string, unknown> {
  return {
    model_type: "clip_vision_model",
    image_size: v.imageSize,
    patch_size: v.patchSize,
    num_channels: 3,
    hidden_size: v.width,
    intermediate_size: v.mlp,
    num_hidden_layers: v.layers,
    num_attention_heads: v.heads,
    hidden_act: hfActivation(v.act),
    layer_norm_eps: v.eps,
  };
}

export function toHfClipConfig(cfg: ClipConfig, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const v = cfg.vision, t = cfg.text;
  const hfAct = hfActivation;
  return {
    architectures: ["CLIPModel"],
    model_type: "clip",
    projection_dim: cfg.embedDim,
    logit_scale_init_value: cfg.logitScaleInit,
    text_config: {
      model_type: "clip_text_model",
      vocab_size: t.vocabSize,
      max_position_embeddings: t.contextLength,
      hidden_size: t.width,
      intermediate_size: t.mlp,
      num_hidden_layers: t.layers,
      num_attention_heads: t.heads,
      hidden_act: hfAct(t.act),
      layer_norm_eps: t.eps,
      bos_token_id: t.bosTokenId,
      eos_token_id: t.eosTokenId,
      pad_token_id: t.padTokenId,
      projection_dim: cfg.embedDim,
    },
    vision_config: { ...toHfVisionConfig(v), projection_dim: cfg.embedDim },
    clipflow: { format: 1, text_pooling: t.pooling, ...extra },
  };
}

/**
 * Read a HF CLIPConfig `config.json` (real exports or clipflow's). Missing fields take HF's
 * CLIPConfig defaults, which are the ViT-B/32 values. Text pooling follows transformers:
 * `eos_token_id == 2` (the legacy default) means argmax pooling, unless a `clipflow` section says otherwise.
 */
export function fromHfClipConfig(raw: unknown, where = "config.json"): ClipConfig {
  if (typeof raw !== "object" || raw === null) throw new ModelConfigError(`${where}: expected a JSON object`);
  const o = raw as Record<string, unknown>;
  const obj = (v: unknown): Record<string, unknown> => (typeof v === "object" && v !== null ? (v as Record<string, unknown>) : {});
  const tc = obj(o.text_config), vc = obj(o.vision_config), cf = obj(o.clipflow);
  const num = (src: Record<string, unknown>, k: string, dflt: number): number => {
    const v = src[k];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== "number" || !Number.isFinite(v)) throw new ModelConfigError(`${where}: ${k} must be a number, got ${JSON.stringify(v)}`);
    return v;
  };
  const actOf = (src: Record<string, unknown>): ClipVisionConfig["act"] => {
    const a = src.hidden_act ?? "quick_gelu";
    const m = typeof a === "string" ? HF_ACT[a] : undefined;
    if (!m) throw new ModelConfigError(`${where}: hidden_act ${JSON.stringify(a)} not supported`);
    return m;
  };
  const eos = num(tc, "eos_token_id", 2);
  const explicitPooling = cf.text_pooling;
  const pooling = explicitPooling === "eos" || explicitPooling === "argmax" ? explicitPooling : eos === 2 ? "argmax" : "eos";
  const tw = num(tc, "hidden_size", 512), vw = num(vc, "hidden_size", 768);
  return clipConfig(
    {
      vision: {
        imageSize: num(vc, "image_size", 224),
        patchSize: num(vc, "patch_size", 32),
        width: vw,
        layers: num(vc, "num_hidden_layers", 12),
        heads: num(vc, "num_attention_heads", 12),
        mlp: num(vc, "intermediate_size", 4 * vw),
        act: actOf(vc),
        eps: num(vc, "layer_norm_eps", 1e-5),
      },
      text: {
        vocabSize: num(tc, "vocab_size", 49408),
        contextLength: num(tc, "max_position_embeddings", 77),
        width: tw,
        layers: num(tc, "num_hidden_layers", 12),
        heads: num(tc, "num_attention_heads", 8),
        mlp: num(tc, "intermediate_size", 4 * tw),
        act: actOf(tc),
        eps: num(tc, "layer_norm_eps", 1e-5),
        bosTokenId: num(tc, "bos_token_id", 0),
        eosTokenId: eos,
        padTokenId: num(tc, "pad_token_id", 1),
        pooling,
      },
      embedDim: num(o, "projection_dim", 512),
      logitScaleInit: num(o, "logit_scale_init_value", Math.log(1 / 0.07)),
    },
    where,
  );
}
