/**
 * The shapes world: synthetic scenes, renderer, captions/QA, vocabulary and exact
 * hallucination metrics. Explicit named exports only.
 *
 * @example
 * import { sceneAt, renderScene, captionScene, captionDefaultsFor, hallucinationMetrics } from "clipflow/demo/world";
 * const scene = sceneAt("sft", 0, { seed: 1 });
 * const png = await renderScene(scene);
 * const { text } = captionScene(scene, captionDefaultsFor("sft"));
 *
 * @packageDocumentation
 */

export {
  SHAPE_KINDS, COLOURS, SIZES, COUNT_WORDS, KIND_NOUNS, EXTRA_KIND_SYNONYMS, EXTRA_COLOUR_SYNONYMS, EXTRA_SIZE_SYNONYMS,
  BACKGROUND_RGB, colourRgb, sizeRadius, kindNoun, pluralOf,
} from "./attributes.ts";
export type { ShapeKind, Colour, Size } from "./attributes.ts";
export {
  CO_OCCURRENCE_CLUSTERS, CO_OCCURRENCE_BRIDGES, AFFINITY_CLUSTER, AFFINITY_BRIDGE, AFFINITY_SELF,
  coOccurrenceAffinity, coOccurrenceWeights, sampleCoOccurringKind,
} from "./co-occurrence.ts";
export {
  SPLITS, RELATIONS, DEFAULT_SCENE_CONFIG, TEXT_STRIP_TOP, generateLayout, checkSceneConfig, relationHolds, clearRelation, sceneKinds, interiorPoint,
} from "./scene.ts";
export type { Scene, SceneObject, PaintedText, SceneConfig, Split, Relation } from "./scene.ts";
export { sceneAt, sceneOfId, generateScenes, sceneContentKey, sceneContentHash, splitOfContentHash } from "./splits.ts";
export { PairAuditor, type PairAudit } from "./pair-audit.ts";
export type { SceneOptions } from "./splits.ts";
export { PAINTED_WORDS, strokeTextPath, strokeTextWidth } from "./stroke-font.ts";
export { renderScene, renderScenes, renderSceneRgb, sceneToSvg, shapeSvg } from "./render.ts";
export type { RenderOptions } from "./render.ts";
export {
  CAPTION_PROMPTS, CAPTION_TEMPLATES, RELATION_PHRASES, RELATION_TEMPLATE, DEFAULT_CAPTION_OPTIONS,
  captionScene, captionDefaultsFor, TEXT_MENTION_TEMPLATE, textMentionSentence, captionRng, planCaption, applyCaptionNoise, realiseCaption, groupObjects,
} from "./captions.ts";
export type { Caption, CaptionPlan, CaptionNoise, CaptionOptions, MentionGroup } from "./captions.ts";
export { sceneExample } from "./examples.ts";
export type { SceneExample } from "./examples.ts";
export { QA_TEMPLATES, sceneQa } from "./qa.ts";
export type { QaItem, QaType } from "./qa.ts";
export { hardNegatives } from "./hard-negatives.ts";
export type { HardNegative, HardNegativeType } from "./hard-negatives.ts";
export { worldTokenize } from "./tokenize.ts";
export { worldVocabulary } from "./vocabulary.ts";
export { parseCaption } from "./parse-caption.ts";
export type { ObjectMention, RelationMention, ParsedCaption } from "./parse-caption.ts";
export { evaluateAnswer, hallucinationMetrics } from "./hallucination-metrics.ts";
export type { AnswerEvaluation, AttributeCheck, AttributeType, RelationCheck, HallucinationMetrics } from "./hallucination-metrics.ts";
export { HALLUCINATION_CAUSES, RATE_DEFINITIONS, attributeAnswer, addAnswerCounts, zeroCounts } from "./hallucination-attribution.ts";
export type { AnswerCounts, AttributedAnswer, AttributedHallucination, CountKey, HallucinationCause, RateDefinition } from "./hallucination-attribution.ts";
export { ZERO_SHOT_TEMPLATE, zeroShotPrompts, zeroShotAccuracy, retrievalTopK } from "./zero-shot.ts";
export { mixSeed, fnv1a64 } from "./hash.ts";
