/**
 * The embedded demo's stages: where the shapes world plugs into the framework's stages. Each
 * replaces the framework stage of the same name in the demo's registry:
 *
 * - `source` adds the `shapes-world` kind;
 * - `generate` adds `prompts: "caption"` (the world's caption prompts; the default here);
 * - `pairs` adds the `random` and `oracle` baselines (they read the world's truth).
 *
 * A registry composes `{ ...operatorStages, ...demoStages }`.
 *
 * @example
 * import { operatorStages } from "../../operators/index.ts";
 * const registry = { ...operatorStages, ...demoStages };
 */
import { comparePairsStage } from "./baseline-pairs-stage.ts";
import { captionGenerateStage } from "./caption-generate.ts";
import { shapesSourceStage } from "./shapes-source.ts";

export { shapesSourceStage, shapesWorldBatches, shapesWorldSourceOptions, demoSourceOptions, demoSourceBatches } from "./shapes-source.ts";
export type { ShapesWorldSource } from "./shapes-source.ts";
export { captionGenerateStage, captionGenerateOptions, CAPTION_PROMPT_SET } from "./caption-generate.ts";
export { comparePairsStage, comparePairsOptions } from "./baseline-pairs-stage.ts";
export { baselinePairs, hallucinationCount, sceneOfImageId } from "./baseline-pairs.ts";
export type { BaselinePairsOptions, BaselineStrategy } from "./baseline-pairs.ts";

/** The demo's stage definitions, keyed by stage name (they override the framework's). */
export const demoStages = {
  source: shapesSourceStage,
  generate: captionGenerateStage,
  pairs: comparePairsStage,
} as const;

// The world itself (package subpath `clipflow/demo` is this module): scenes, rendering, captions, metrics.
export { sceneAt, renderScene, captionScene, hallucinationMetrics, SPLITS } from "../world/index.ts";
export type { Scene, Split } from "../world/index.ts";
