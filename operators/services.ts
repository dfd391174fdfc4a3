/**
 * What the shipped stages need from their host (the pipeline runner, or a user's own code) to
 * build themselves from options: models by name, the scheduler, and the run's image store.
 * A host implements this once; each stage definition (`xxxStage` in its operator file) takes it
 * as `setup.services`.
 *
 * @example
 * const services: StageServices = { clip: (n) => loadScheduledClip(n), lvlm, decoder, scheduler, batchOptions: (x) => ({ ...x }), images: () => store, threads: 2 };
 * const op = await clipScoreStage.create!(clipScoreStage.parse({ model: "clip" }), { ...setup, services });
 */
import { z } from "zod";
import type { ImageStore } from "../src/io/image-store.ts";
import type { LvlmModel } from "../src/models/lvlm-model.ts";
import type { PolicyModel } from "../src/models/lvlm-policy.ts";
import type { Decoder } from "../src/scheduler/decoder.ts";
import type { BatchOptions, Scheduler } from "../src/scheduler/scheduler.ts";
import type { ScheduledClip } from "./scheduled-clip.ts";

export interface StageServices {
  /** A CLIP by its `models` name, on the scheduler. */
  clip(name: string): Promise<ScheduledClip>;
  /** An LVLM policy by name (loaded once). */
  lvlm(name: string): Promise<LvlmModel>;
  /**
   * A policy to score with, by name: the built-in LVLM of a clipflow folder, or an imported
   * Hugging Face image-text-to-text export (`format: hf-onnx-vlm`) behind the `PolicyModel` interface.
   */
  policy(name: string): Promise<LvlmModel | PolicyModel>;
  /** The continuous batcher of an LVLM policy. */
  decoder(name: string): Promise<Decoder>;
  readonly scheduler: Scheduler;
  /** The host's batching settings for a model registered by a stage. */
  batchOptions(extra?: BatchOptions): BatchOptions;
  /** The run's bounded per-image store (decode fills it; later stages read it by image id). */
  images(): ImageStore;
  /** Intra-op threads for training sessions. */
  readonly threads?: number;
}

// Option building blocks shared by the stage schemas.
export const positiveInt = () => z.number().int().positive();
export const nonNegativeInt = () => z.number().int().nonnegative();
export const nonEmpty = () => z.string().min(1);
/** A key of the host's `models` section; the host checks it exists and has the right kind. */
export const modelRef = () => nonEmpty();
