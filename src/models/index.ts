/**
 * Public surface of src/models: CLIP, the LVLM, tokenizers, image preprocessing, generation, the
 * Hugging Face layout (CLIP, and image-text-to-text VLMs both ways: `loadHfVlm` / `exportHfVlm`)
 * and the `PolicyModel` interface the scheduler's decoder drives. Explicit named exports only.
 *
 * @example
 * import { loadClip, preprocessBatch } from "../models/index.ts";
 * const clip = await loadClip("./hf/clip-vit-base-patch32");
 * const { pixels, errors } = await preprocessBatch(images, clip.preprocess);
 * const emb = await clip.encodeImages(pixels, images.length);
 * const vlm = await loadHfVlm("./hf/my-llava-export"); // a PolicyModel: scheduler.decoder("policy", vlm)
 */
export { type Tokenizer, type Encoding, type EncodeOptions, type DecodeOptions, type SpecialIds, type TruncationListener, TokenizerError } from "./tokenizer.ts";
export { WordTokenizer, WORD_VOCAB_FORMAT, type WordVocabFile } from "./word-tokenizer.ts";
export { HfTokenizer } from "./hf-tokenizer.ts";
export { loadTokenizer, saveTokenizer, WORD_TOKENIZER_CLASS, WORD_VOCAB_FILE } from "./tokenizer-files.ts";
export {
  type ImageProcessorConfig,
  clipImageConfig,
  parsePreprocessorConfig,
  pixelShape,
  toPreprocessorJson,
  PreprocessorConfigError,
  CLIP_MEAN,
  CLIP_STD,
} from "./preprocessor-config.ts";
export { preprocessImage, preprocessBatch, ImageDecodeError, type ImageErrorReason, type PixelBatch } from "./image-preprocess.ts";
export { clipConfig, clipPresets, fromHfClipConfig, toHfClipConfig, numPatches, ModelConfigError, type ClipConfig, type ClipConfigInput } from "./clip-config.ts";
export { CLIP_IO, clipVisionGraph, clipTextGraph, clipLossGraph, clipImageEmbeds, clipImageProjection, clipTextEmbeds, clipVisionTower } from "./clip.ts";
export { type ClipEncoder, ClipModel, OnnxClip, clipParamSpecs } from "./clip-model.ts";
export { exportClip, loadClip, loadClipModel, HF_CLIP_FILES } from "./hf-clip.ts";
export { lvlmConfig, lvlmPresets, imageTokens, maxTextTokens, type LvlmConfig, type LvlmConfigInput } from "./lvlm-config.ts";
export {
  LVLM_IO,
  type VisionInput,
  lvlmPrefillGraph,
  lvlmDecodeGraph,
  lvlmLogpsGraph,
  lvlmSftGraph,
  lvlmLogitsGraph,
  lvlmVisionGraph,
  sequenceLogps,
  imageInput,
} from "./lvlm.ts";
export { LvlmModel, lvlmParamSpecs, type ScoredText } from "./lvlm-model.ts";
export { exportLvlm, loadLvlm, LVLM_MODEL_TYPE } from "./lvlm-io.ts";
export { KvCache } from "./kv-cache.ts";
export { type SamplingOptions, sampleRng, sampleToken, samplingDistribution, tokenLogProb, argmax } from "./sampling.ts";
export { generate, generateMany, type GenerateOptions, type GenerateRequest, type Sample } from "./generate.ts";
export { padIds, type IdBatch } from "./text-batch.ts";
export { lvlmPolicy, type PolicyModel, type PolicyKv, type PolicyPrefill, type PolicyScoredText, type SessionRun, type KvLayout } from "./lvlm-policy.ts";
export { loadHfVlm, HfVlm, HfVlmError, HF_VLM_SESSIONS, type HfScoredText } from "./hf-vlm/policy.ts";
export { exportHfVlm, clipflowChatTemplate, HF_VLM_FILES, type HfVlmExportOptions } from "./hf-vlm/export.ts";
export { HF_VLM_IO } from "./hf-vlm/graphs.ts";
export { localSessions, hostSessions, type LocalSessions, type SessionHost } from "./hf-vlm/local.ts";
export { wordLevelTokenizer } from "./hf-vlm/word-level.ts";
