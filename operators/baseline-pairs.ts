/**
 * @deprecated Moved to demo/stages/baseline-pairs.ts (it reads the shapes world's truth). This
 * forwarding module exists only until the pipeline registry builds stages from definitions.
 */
export { baselinePairs, hallucinationCount, sceneOfImageId } from "../demo/stages/baseline-pairs.ts";
export type { BaselinePairsOptions, BaselineStrategy } from "../demo/stages/baseline-pairs.ts";
