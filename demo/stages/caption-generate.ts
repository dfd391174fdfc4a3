/**
 * The demo's `generate` stage: the framework stage, plus `prompts: "caption"` — the shapes
 * world's five caption prompts for every image (the paper's setting). Without it the stage reads
 * each row's own prompt, like the framework's.
 *
 * @example
 * captionGenerateStage.parse({ model: "policy", prompts: "caption" }).prompts // "caption"
 */
import { z } from "zod";
import { defineStage } from "../../src/flow/stage.ts";
import { generateCandidates, generateOptions } from "../../operators/generate.ts";
import { nonEmpty, type StageServices } from "../../operators/services.ts";
import { CAPTION_PROMPTS } from "../world/captions.ts";

/** Keyword for the world's caption prompt set. */
export const CAPTION_PROMPT_SET = "caption";

/** `generate` options with `prompts` also accepting "caption" (the default here, as in the shipped pipelines). */
export const captionGenerateOptions = generateOptions.extend({
  prompts: z
    .union([z.literal(CAPTION_PROMPT_SET), z.array(nonEmpty()).min(1), z.null()], { error: 'expected "caption", null (each row\'s prompt) or a non-empty list of prompts' })
    .default(CAPTION_PROMPT_SET),
});

export const captionGenerateStage = defineStage<typeof captionGenerateOptions, StageServices>({
  name: "generate",
  role: "operator",
  optionsSchema: captionGenerateOptions,
  modelRefs: { model: "lvlm" },
  create: async (o, s) => {
    const { model, prompts, ...sampling } = o;
    return generateCandidates({
      ...sampling,
      prompts: prompts === CAPTION_PROMPT_SET ? [...CAPTION_PROMPTS] : prompts,
      decoder: await s.services.decoder(model),
      name: s.name,
    });
  },
});
