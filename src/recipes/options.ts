/**
 * Option schemas shared by the recipes (zod, strict: unknown keys are errors).
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
