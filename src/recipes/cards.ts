/**
 * MODEL_CARD.md of the shipped shapes models, filled from the run that trained them.
 */
import type { PretrainClipOptions, PretrainClipResult } from "./pretrain-clip.ts";
import { metricsTable, paramCount } from "./model-card.ts";

/** The shapes-clip card. */
export function clipCard(a: { options: PretrainClipOptions; result: PretrainClipResult; wallSeconds: number; command: string; file: string }): string {
  const o = a.options, m = a.result.metrics, c = a.result.clip.cfg;
  return `# shapes-clip

A tiny CLIP trained contrastively on the clipflow shapes world (src/world), shipped as the
embedded default CLIP of clipflow's CLIP-DPO pipelines. Hugging Face ONNX layout
(\`onnx/vision_model.onnx\`, \`onnx/text_model.onnx\`, \`config.json\`, \`preprocessor_config.json\`,
word tokenizer \`word_vocab.json\` + \`tokenizer_config.json\`) plus \`model.safetensors\` for
reloading as a trainable model (\`loadClip\` / \`loadClipModel\` in src/models).

## Architecture

- Vision: ViT, ${c.vision.imageSize}×${c.vision.imageSize} images, patch ${c.vision.patchSize} (${(c.vision.imageSize / c.vision.patchSize) ** 2} patches + class token), width ${c.vision.width}, ${c.vision.layers} layers, ${c.vision.heads} heads, MLP ${c.vision.mlp}, GELU, pre-LN.
- Text: causal transformer, word-level vocabulary of ${c.text.vocabSize} tokens (the closed shapes-world vocabulary), context ${c.text.contextLength}, width ${c.text.width}, ${c.text.layers} layers, ${c.text.heads} heads, MLP ${c.text.mlp}, pooled at the end-of-text token.
- Shared embedding: ${c.embedDim}; learned logit scale (final exp = ${a.result.clip.logitScale.toFixed(2)}, clamp 100).
- Parameters: ${paramCount(a.result.params)}.

## Training data

- Split \`clip-pretrain\` of the shapes world (world seed ${o.worldSeed}), scenes 0..${o.scenes - 1} rendered at ${o.imageSize}², **clean** captions (no co-occurrence noise), ${o.captionVariants} caption variants per scene.
- Hard negatives per image in every batch: ${o.negativesPerImage} — first the SFT noise exactly (the caption plus one absent, co-occurring object), then random other false edits from src/world's \`hardNegatives\` (wrong colour, replaced kind, added object, flipped relation). Image→text cross-entropy runs over positives and negatives, text→image over the positives (src/recipes/clip-contrastive.ts).
- Batch ${o.batchSize} images, ${o.optim.steps} steps of AdamW (weight decay ${o.optim.weightDecay}, global-norm clip ${o.optim.maxGradNorm}), lr ${o.optim.lr} with ${o.optim.warmupSteps} warmup steps and cosine decay to ${o.optim.minLr}. Seed ${o.seed}.
- Loss: ${a.result.losses[0]?.toFixed(3)} (first step) → ${a.result.losses.at(-1)?.toFixed(3)} (last step).

## Evaluation (held-out split, ${m.heldoutScenes} scenes)

${metricsTable([
    [`image→caption retrieval top-1 among ${m.retrievalCandidates} clean captions (${m.retrievalGroups} groups)`, m.retrievalTop1, "rate"],
    [`retrieval top-5 among ${m.retrievalCandidates}`, m.retrievalTop5, "rate"],
    [`zero-shot kind accuracy (${m.zeroShotScenes} single-object scenes, 9 classes)`, m.zeroShotAccuracy, "rate"],
    [`clean caption > caption + 1 absent co-occurring object (${m.addedObjectScenes} scenes)`, m.addedObjectPreference, "rate"],
    ["mean margin of that comparison, 100·Δcos", m.addedObjectMargin, "number"],
    ["share of those margins ≥ 2 (the default pair margin)", m.addedObjectMarginAtLeast2, "rate"],
    [`clean caption > caption with one wrong colour (${m.wrongColourScenes} scenes)`, m.wrongColourPreference, "rate"],
  ])}

## Reproduce

Wall time of the run that produced these weights: ${(a.wallSeconds / 60).toFixed(1)} min (training ${(a.result.trainSeconds / 60).toFixed(1)} min) on a shared 2-core machine, ORT intra-op threads ${o.threads}.

\`\`\`
${a.command}
\`\`\`

(recipe file \`${a.file}\`). Data order, caption and negative choice and initial weights all derive from the seeds;
with one ORT thread a rerun is bit-identical, with more threads ORT's parallel reductions may differ in the last bits.
`;
}
