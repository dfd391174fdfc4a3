/**
 * Write a clipflow LVLM (the shipped policy, a DPO-trained one, or a random test model) as a
 * folder in the Hugging Face image-text-to-text ONNX layout that transformers.js loads as
 * `LlavaForConditionalGeneration` (graphs in ./graphs.ts):
 *
 *   config.json                 model_type llava, image_token_index, text_config (gpt2-style:
 *                               pre-LN, learned positions), vision_config (clip_vision_model)
 *   generation_config.json      bos/eos/pad ids
 *   preprocessor_config.json    CLIPImageProcessor settings of the policy
 *   processor_config.json       LlavaProcessor: image_token, patch_size (Np = (S/P)², no extra)
 *   tokenizer.json, tokenizer_config.json (chat_template)
 *   onnx/vision_encoder.onnx, onnx/embed_tokens.onnx, onnx/decoder_model_merged.onnx
 *
 * The tokenizer is written as tokenizer.json: a Hugging Face one as it is, clipflow's word-level
 * one (the shapes world's) as a WordLevel tokenizer with the same ids (./word-level.ts). It needs
 * an image token; the chat template decides where the image tokens go. {@link clipflowChatTemplate} reproduces clipflow's
 * own prompt layout ([image tokens] bos prompt), so the exported folder generates what the
 * policy generates in clipflow.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { HfTokenizer } from "../hf-tokenizer.ts";
import { WordTokenizer } from "../word-tokenizer.ts";
import { hfActivation, toHfVisionConfig } from "../clip-config.ts";
import { imageTokens } from "../lvlm-config.ts";
import type { LvlmModel } from "../lvlm-model.ts";
import { toPreprocessorJson } from "../preprocessor-config.ts";
import { wordLevelTokenizer } from "./word-level.ts";
import { hfDecoderMergedGraph, hfEmbedTokensGraph, hfVisionEncoderGraph, type HfGraph } from "./graphs.ts";

/** Files of the layout, relative to the folder. */
export const HF_VLM_FILES = {
  config: "config.json",
  generationConfig: "generation_config.json",
  preprocessor: "preprocessor_config.json",
  processor: "processor_config.json",
  tokenizer: "tokenizer.json",
  tokenizerConfig: "tokenizer_config.json",
  visionEncoder: "onnx/vision_encoder.onnx",
  embedTokens: "onnx/embed_tokens.onnx",
  decoder: "onnx/decoder_model_merged.onnx",
} as const;

/**
 * clipflow's prompt layout as a chat template: the image token (expanded to the image's Np
 * tokens by the processor), then bos, then the user's text (no role words), and nothing for the
 * generation prompt — what LvlmModel.promptIds feeds after the image tokens.
 * @example
 * await exportHfVlm(policy, dir, { chatTemplate: clipflowChatTemplate("<image>") });
 */
export const clipflowChatTemplate = (imageToken = "<image>"): string =>
  "{% for message in messages %}{% if message['role'] == 'user' %}" +
  `{% for c in message['content'] %}{% if c['type'] == 'image' %}${imageToken}{% endif %}{% endfor %}` +
  "{{ bos_token }}{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}" +
  "{% else %}{% for c in message['content'] %}{% if c['type'] == 'text' %} {{ c['text'] }}{% endif %}{% endfor %}{{ eos_token }}{% endif %}{% endfor %}";

export interface HfVlmExportOptions {
  /** Chat template (default clipflowChatTemplate(imageToken)); it may use `bos_token`, `eos_token`. */
  chatTemplate?: string;
  /** The image token's text (default "<image>"); it must be a token of the tokenizer. */
  imageToken?: string;
  /** Extra keys for tokenizer_config.json (e.g. padding_side). */
  tokenizerConfig?: Record<string, unknown>;
}

/**
 * @example
 * await exportHfVlm(policy, "out/policy-hf");
 * // then, in transformers.js: LlavaForConditionalGeneration.from_pretrained("policy-hf", { local_files_only: true })
 */
export async function exportHfVlm(lvlm: LvlmModel, dir: string, opts: HfVlmExportOptions = {}): Promise<void> {
  const tok = lvlm.tokenizer instanceof WordTokenizer ? wordLevelTokenizer(lvlm.tokenizer) : lvlm.tokenizer;
  if (!(tok instanceof HfTokenizer)) {
    throw new Error(`exportHfVlm: the policy's tokenizer is '${lvlm.tokenizer.kind}', the layout needs a Hugging Face tokenizer.json`);
  }
  const cfg = lvlm.cfg;
  const imageToken = opts.imageToken ?? "<image>";
  const imageId = tok.tokenToId(imageToken);
  if (imageId === undefined) throw new Error(`exportHfVlm: image token '${imageToken}' is not in the tokenizer's vocabulary`);
  const tableRows = Math.max(cfg.lm.vocabSize, imageId + 1);
  const v = cfg.vision;
  const hfAct = hfActivation;
  const np = imageTokens(cfg);
  const config = {
    architectures: ["LlavaForConditionalGeneration"],
    model_type: "llava",
    image_token_index: imageId,
    // hidden_states[-k]: the tower's output after visionFeatureLayers of its layers
    vision_feature_layer: cfg.visionFeatureLayers - v.layers - 1,
    vision_feature_select_strategy: "default",
    projector_hidden_act: hfAct(cfg.projectorAct),
    image_seq_length: np,
    bos_token_id: cfg.bosTokenId,
    eos_token_id: cfg.eosTokenId,
    pad_token_id: cfg.padTokenId,
    text_config: {
      model_type: "gpt2",
      vocab_size: tableRows,
      n_embd: cfg.lm.width,
      n_layer: cfg.lm.layers,
      n_head: cfg.lm.heads,
      n_inner: cfg.lm.mlp,
      n_positions: cfg.lm.maxPositions,
      activation_function: hfAct(cfg.lm.act),
      layer_norm_epsilon: cfg.lm.eps,
      bos_token_id: cfg.bosTokenId,
      eos_token_id: cfg.eosTokenId,
      pad_token_id: cfg.padTokenId,
    },
    vision_config: toHfVisionConfig(v),
    clipflow: { format: 1, lm_vocab_size: cfg.lm.vocabSize },
  };
  const tokenizerConfig = {
    ...tok.tokenizerConfig,
    chat_template: opts.chatTemplate ?? clipflowChatTemplate(imageToken),
    image_token: imageToken,
    processor_class: "LlavaProcessor",
    ...opts.tokenizerConfig,
  };
  mkdirSync(join(dir, "onnx"), { recursive: true });
  const bake = (h: HfGraph) => h.graph.toOnnx({ outputs: h.outputs, bake: lvlm.store }).bytes;
  await Bun.write(join(dir, HF_VLM_FILES.visionEncoder), bake(hfVisionEncoderGraph(cfg)));
  await Bun.write(join(dir, HF_VLM_FILES.embedTokens), bake(hfEmbedTokensGraph(cfg, tableRows)));
  await Bun.write(join(dir, HF_VLM_FILES.decoder), bake(hfDecoderMergedGraph(cfg)));
  const json = (x: unknown) => JSON.stringify(x, null, 2);
  await Bun.write(join(dir, HF_VLM_FILES.config), json(config));
  await Bun.write(join(dir, HF_VLM_FILES.generationConfig), json({ bos_token_id: cfg.bosTokenId, eos_token_id: cfg.eosTokenId, pad_token_id: cfg.padTokenId }));
  // processor_class picks transformers.js's AutoProcessor: LlavaProcessor = this image processor + the tokenizer
  await Bun.write(join(dir, HF_VLM_FILES.preprocessor), json({ ...toPreprocessorJson(lvlm.preprocess), processor_class: "LlavaProcessor" }));
  await Bun.write(join(dir, HF_VLM_FILES.processor), json({ processor_class: "LlavaProcessor", image_token: imageToken, patch_size: v.patchSize, num_additional_image_tokens: 0 }));
  await Bun.write(join(dir, HF_VLM_FILES.tokenizer), JSON.stringify(tok.tokenizerJson));
  await Bun.write(join(dir, HF_VLM_FILES.tokenizerConfig), json(tokenizerConfig));
}
