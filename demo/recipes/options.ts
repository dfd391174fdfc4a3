/**
 * Option schemas of the pretraining recipes (zod only, strict: unknown keys are errors), kept
 * free of model/world imports so the pipeline schema can use them. The `*Stage` variants add
 * `modelDir`, the output model folder (resolved against `out.dir` like every output path).
 */
import { z } from "zod";

/** AdamW + warmup/cosine settings (see train-loop.ts). */
export const optimSchema = z.strictObject({
  steps: z.number().int().positive(),
  lr: z.number().positive(),
  warmupSteps: z.number().int().nonnegative(),
  minLr: z.number().nonnegative(),
  weightDecay: z.number().nonnegative(),
  maxGradNorm: z.number().positive(),
});

const towerSchema = z.strictObject({
  width: z.number().int().positive(),
  layers: z.number().int().positive(),
  heads: z.number().int().positive(),
  mlp: z.number().int().positive(),
});

/** Options of the pretrainClip recipe (every default visible). */
export const pretrainClipOptions = z.strictObject({
  /** Seed of weight init, batch order, caption and negative choice. */
  seed: z.number().int().default(1),
  /** Seed of the shapes world (scene generation). */
  worldSeed: z.number().int().default(1),
  /** Training scenes, `clip-pretrain` split indices 0..scenes-1 (rendered once). */
  scenes: z.number().int().positive().default(8000),
  /** Distinct clean captions per scene to draw from (caption index 0..n-1). */
  captionVariants: z.number().int().positive().default(8),
  batchSize: z.number().int().min(2).default(64),
  /** Hard negatives per image in a batch (the noise-style added object first, then random other types). */
  negativesPerImage: z.number().int().nonnegative().default(2),
  /** Put a replaced-kind negative right after the added-object one (else random order). */
  kindNegativeFirst: z.boolean().default(false),
  imageSize: z.number().int().positive().default(64),
  patchSize: z.number().int().positive().default(8),
  vision: towerSchema.default({ width: 128, layers: 4, heads: 4, mlp: 512 }),
  text: towerSchema.default({ width: 128, layers: 3, heads: 4, mlp: 512 }),
  embedDim: z.number().int().positive().default(128),
  /** Text context (tokens incl. bos/eos); just above the longest world caption. */
  contextLength: z.number().int().positive().default(48),
  /**
   * Warm-up of the vision tower before the contrastive stage: per-patch shape-kind labels of
   * the same clip-pretrain scenes (demo/recipes/patch-kind.ts explains why). `steps: 0` skips it.
   */
  patchWarmup: z
    .strictObject({
      steps: z.number().int().nonnegative(),
      batchSize: z.number().int().positive(),
      lr: z.number().positive(),
      warmupSteps: z.number().int().nonnegative(),
      minLr: z.number().nonnegative(),
      weightDecay: z.number().nonnegative(),
      maxGradNorm: z.number().positive(),
      /** Held-out scenes the patch probe is measured on. */
      probeScenes: z.number().int().positive(),
    })
    .default({ steps: 1200, batchSize: 64, lr: 1e-3, warmupSteps: 20, minLr: 1e-4, weightDecay: 0.05, maxGradNorm: 1, probeScenes: 600 }),
  /**
   * Weight of the patch-kind loss kept as an auxiliary term during the contrastive stage (0: off),
   * so the patch tokens a LLaVA-style policy reads stay kind-discriminative.
   */
  patchKindWeight: z.number().nonnegative().default(0.5),
  optim: optimSchema.default({ steps: 600, lr: 1e-3, warmupSteps: 40, minLr: 2e-5, weightDecay: 0.05, maxGradNorm: 1 }),
  /** ORT intra-op threads of the training step. */
  threads: z.number().int().positive().default(1),
  eval: z
    .strictObject({
      /** Held-out scenes for every metric (retrieval in groups of `candidates`). */
      scenes: z.number().int().positive().default(1000),
      candidates: z.number().int().min(2).default(100),
    })
    .default({ scenes: 1000, candidates: 100 }),
  logEvery: z.number().int().positive().default(20),
});

/** Options of the sftPolicy recipe (every default visible). */
export const sftPolicyOptions = z.strictObject({
  /** Folder of the trained CLIP (src/models layout with model.safetensors) whose vision tower is adopted. */
  clip: z.string().min(1),
  seed: z.number().int().default(1),
  worldSeed: z.number().int().default(1),
  /** Training scenes: `sft` split indices 0..scenes-1. */
  scenes: z.number().int().positive().default(6000),
  /** Distinct captions per scene to draw from (each with its own prompt and noise roll). */
  captionVariants: z.number().int().positive().default(8),
  /** Probability that an SFT caption names an absent, co-occurring object (the hallucination source). */
  noiseProb: z.number().min(0).max(1).default(0.3),
  /** Probability that an SFT caption gives one real object a wrong colour. */
  wrongAttributeProb: z.number().min(0).max(1).default(0),
  lm: z
    .strictObject({
      width: z.number().int().positive(),
      layers: z.number().int().positive(),
      heads: z.number().int().positive(),
      mlp: z.number().int().positive(),
      maxPositions: z.number().int().positive(),
    })
    .default({ width: 128, layers: 3, heads: 4, mlp: 512, maxPositions: 128 }),
  /**
   * Also fine-tune the vision blocks the policy reads (initialised from the CLIP), on pixels
   * instead of cached features. Off = LLaVA's frozen tower.
   */
  trainVision: z.boolean().default(false),
  /** Vision blocks before the patch features are read (LLaVA: the penultimate layer). */
  visionFeatureLayers: z.number().int().positive().optional(),
  batchSize: z.number().int().positive().default(32),
  optim: optimSchema.default({ steps: 800, lr: 1e-3, warmupSteps: 40, minLr: 2e-5, weightDecay: 0.05, maxGradNorm: 1 }),
  threads: z.number().int().positive().default(1),
  eval: z
    .strictObject({
      scenes: z.number().int().positive().default(300),
      samples: z.number().int().positive().default(4),
      temperature: z.number().nonnegative().default(1),
      maxNewTokens: z.number().int().positive().default(56),
    })
    .default({ scenes: 300, samples: 4, temperature: 1, maxNewTokens: 56 }),
  logEvery: z.number().int().positive().default(20),
});

/** `pretrainClip` stage options in a pipeline file. */
export const pretrainClipStageOptions = pretrainClipOptions.extend({
  /** Output model folder (HF layout + MODEL_CARD.md + metrics.json), relative to `out.dir`. */
  modelDir: z.string().min(1).default("shapes-clip"),
});

/** `sftPolicy` stage options in a pipeline file. */
export const sftPolicyStageOptions = sftPolicyOptions.extend({
  /** Output model folder (policy layout + MODEL_CARD.md + metrics.json), relative to `out.dir`. */
  modelDir: z.string().min(1).default("shapes-lvlm"),
});
