/**
 * Configuration of the LLaVA-style LVLM: a (frozen) CLIP ViT tower whose patch features feed a
 * 2-layer MLP projector, then a decoder-only LM with learned positions over
 * [image tokens, text tokens]. Checked plain data; unknown keys are errors.
 */
import { z } from "zod";
import { ClipVisionConfigSchema, ModelConfigError, numPatches, parseWith } from "./clip-config.ts";

export const LvlmConfigSchema = z.strictObject({
  vision: ClipVisionConfigSchema,
  /**
   * Vision blocks run before patch features are read (LLaVA reads the penultimate layer).
   * Default: vision.layers - 1 (or 1 for a one-layer tower).
   */
  visionFeatureLayers: z.number().int().positive().optional(),
  /** Projector hidden size (default: lm.width). */
  projectorHidden: z.number().int().positive().optional(),
  /** Projector activation (LLaVA-1.5: GELU). */
  projectorAct: z.enum(["gelu", "quick_gelu", "gelu_tanh"]).default("gelu"),
  lm: z.strictObject({
    vocabSize: z.number().int().positive(),
    width: z.number().int().positive(),
    layers: z.number().int().positive(),
    heads: z.number().int().positive(),
    mlp: z.number().int().positive(),
    act: z.enum(["gelu", "quick_gelu", "gelu_tanh"]).default("gelu"),
    eps: z.number().positive().default(1e-5),
    /** Size of the position table: image tokens + the longest prompt + answer. */
    maxPositions: z.number().int().positive(),
  }),
  bosTokenId: z.number().int().nonnegative(),
  eosTokenId: z.number().int().nonnegative(),
  padTokenId: z.number().int().nonnegative(),
  /** Param name patterns trained by default (ParamStore.trainOnly); vision stays frozen. */
  trainable: z.array(z.string()).default(["projector", "lm"]),
});

export type LvlmConfig = z.output<typeof LvlmConfigSchema> & { visionFeatureLayers: number; projectorHidden: number };
export type LvlmConfigInput = z.input<typeof LvlmConfigSchema>;

/**
 * Validate and complete an LVLM config.
 * @example
 * const cfg = lvlmConfig(lvlmPresets.tiny(tok.vocabSize));
 */
export function lvlmConfig(raw: LvlmConfigInput | unknown, where = "lvlm config"): LvlmConfig {
  const c = parseWith(LvlmConfigSchema, raw, where);
  const v = c.vision;
  if (v.imageSize % v.patchSize !== 0) throw new ModelConfigError(`${where}: vision.imageSize ${v.imageSize} is not a multiple of patchSize ${v.patchSize}`);
  if (v.width % v.heads !== 0) throw new ModelConfigError(`${where}: vision.width ${v.width} is not a multiple of heads ${v.heads}`);
  if (c.lm.width % c.lm.heads !== 0) throw new ModelConfigError(`${where}: lm.width ${c.lm.width} is not a multiple of heads ${c.lm.heads}`);
  const featureLayers = c.visionFeatureLayers ?? Math.max(1, v.layers - 1);
  if (featureLayers > v.layers) throw new ModelConfigError(`${where}: visionFeatureLayers ${featureLayers} exceeds vision.layers ${v.layers}`);
  for (const k of ["bosTokenId", "eosTokenId", "padTokenId"] as const) {
    if (c[k] >= c.lm.vocabSize) throw new ModelConfigError(`${where}: ${k} ${c[k]} outside vocabulary of ${c.lm.vocabSize}`);
  }
  if (c.lm.maxPositions <= numPatches(v) + 1) {
    throw new ModelConfigError(`${where}: lm.maxPositions ${c.lm.maxPositions} leaves no room for text after ${numPatches(v)} image tokens`);
  }
  return { ...c, visionFeatureLayers: featureLayers, projectorHidden: c.projectorHidden ?? c.lm.width };
}

/** Image tokens the LM sees before the prompt. */
export function imageTokens(cfg: LvlmConfig): number {
  return numPatches(cfg.vision);
}

/** Longest text (prompt + answer) that fits after the image tokens. */
export function maxTextTokens(cfg: LvlmConfig): number {
  return cfg.lm.maxPositions - imageTokens(cfg);
}

export const lvlmPresets = {
  /** Test size: 16² images, patch 8 (4 image tokens), widths 32, one LM layer. */
  tiny(vocabSize: number, ids: { bos: number; eos: number; pad: number } = { bos: 1, eos: 2, pad: 0 }): LvlmConfigInput {
    return {
      vision: { imageSize: 16, patchSize: 8, width: 32, layers: 1, heads: 2, mlp: 64, act: "gelu" },
      lm: { vocabSize, width: 32, layers: 1, heads: 2, mlp: 64, maxPositions: 32 },
      bosTokenId: ids.bos, eosTokenId: ids.eos, padTokenId: ids.pad,
    };
  },
  /** Shape of the shipped shapes-world policy: 64² images, patch 8 (64 image tokens), LM width 128 × 4 layers. */
  shapesPolicy(vocabSize: number, ids: { bos: number; eos: number; pad: number } = { bos: 1, eos: 2, pad: 0 }): LvlmConfigInput {
    return {
      vision: { imageSize: 64, patchSize: 8, width: 128, layers: 4, heads: 4, mlp: 512, act: "gelu" },
      lm: { vocabSize, width: 128, layers: 4, heads: 4, mlp: 512, maxPositions: 128 },
      bosTokenId: ids.bos, eosTokenId: ids.eos, padTokenId: ids.pad,
    };
  },
};
