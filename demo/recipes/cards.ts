/**
 * MODEL_CARD.md of the shipped shapes models, filled from the run that trained them.
 */
import type { HallucinationMetrics } from "../world/index.ts";
import type { PretrainClipOptions, PretrainClipResult } from "./pretrain-clip.ts";
import type { SftPolicyOptions, SftPolicyResult } from "./sft-policy.ts";
import { metricsTable, paramCount } from "./model-card.ts";

function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

function warmupSection(r: PretrainClipResult, o: PretrainClipOptions): string {
  const w = r.warmup;
  if (!w) return "";
  const row = (name: string, p: NonNullable<typeof w.afterContrastive>) => `| ${name} | ${pct(p.objectPatchAccuracy)} | ${pct(p.singleObjectKindAccuracy)} (${p.singleObjectScenes} scenes) |`;
  return `
Patch probe (the stage-1 head on last-layer patch tokens, held-out scenes; measurement only):

| when | object patches classified by kind | single-object scenes, majority vote |
|---|---|---|
${row("after the patch warm-up", w.probe)}
${w.afterContrastive ? row(o.patchKindWeight > 0 ? `after the contrastive stage (the head kept training in the auxiliary term, weight ${o.patchKindWeight})` : "after the contrastive stage, same head not refitted (the contrastive stage moves the last-layer patch features)", w.afterContrastive) : ""}
`;
}

/** The shapes-clip card. */
export function clipCard(a: { options: PretrainClipOptions; result: PretrainClipResult; wallSeconds: number; command: string; file: string }): string {
  const o = a.options, m = a.result.metrics, c = a.result.clip.cfg;
  return `# shapes-clip

A tiny CLIP trained contrastively on the clipflow shapes world (demo/world), shipped as the
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
${a.result.warmup ? `- Stage 1, patch warm-up (demo/recipes/patch-kind.ts): ${o.patchWarmup.steps} steps, batch ${o.patchWarmup.batchSize}, AdamW lr ${o.patchWarmup.lr} (${o.patchWarmup.warmupSteps} warmup steps, cosine to ${o.patchWarmup.minLr}), on the same clip-pretrain scenes: every vision patch token is classified as the kind of the object covering its centre, or background, by a linear head that is discarded afterwards. Objects sit at random sub-patch offsets and a ViT has no built-in shift tolerance; trained only contrastively this tower took the colour/count shortcut and stayed kind-blind (zero-shot kind 15%). Loss ${a.result.warmup.firstLoss.toFixed(3)} → ${a.result.warmup.lastLoss.toFixed(3)}, ${(a.result.warmup.seconds / 60).toFixed(1)} min.
- Stage 2, contrastive:` : "-"} Captions of scenes with a painted word end with "The word … is written in the picture." (demo/world \`textMentionSentence\`), so the CLIP can see rendered text.
- Hard negatives per image in every batch: ${o.negativesPerImage} — first the SFT noise exactly (the caption plus one absent, co-occurring object), ${o.kindNegativeFirst ? "then one kind replaced by an absent kind, then" : "then"} random other false edits from demo/world's \`hardNegatives\` (wrong colour, replaced kind, added object, flipped relation, the text mention dropped or a false one added). Image→text cross-entropy runs over positives and negatives, text→image over the positives (demo/recipes/clip-contrastive.ts).
${o.patchKindWeight > 0 ? `- The patch-kind loss stays in the contrastive stage as an auxiliary term (weight ${o.patchKindWeight}), so the patch tokens a LLaVA-style policy reads stay kind-discriminative; the head is discarded at export.\n` : ""}- Batch ${o.batchSize} images, ${o.optim.steps} steps of AdamW (weight decay ${o.optim.weightDecay}, global-norm clip ${o.optim.maxGradNorm}), lr ${o.optim.lr} with ${o.optim.warmupSteps} warmup steps and cosine decay to ${o.optim.minLr}. Seed ${o.seed}.
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
    [`clean caption > caption with one kind replaced by an absent kind (${m.replacedKindScenes} scenes)`, m.replacedKindPreference, "rate"],
    [`caption + "The word … is written in the picture." preferred, image with a painted word (${m.textScenes} scenes)`, m.textMentionAccuracyWithText, "rate"],
    [`plain caption preferred to that, image without a word (${m.heldoutScenes - m.textScenes} scenes)`, m.textMentionAccuracyWithoutText, "rate"],
  ])}
${warmupSection(a.result, o)}

## Reproduce

Wall time of the run that produced these weights: ${(a.wallSeconds / 60).toFixed(1)} min (training ${(a.result.trainSeconds / 60).toFixed(1)} min) on a shared 2-core machine, ORT intra-op threads ${o.threads}.

\`\`\`
${a.command}
\`\`\`

(recipe file \`${a.file}\`). Data order, caption and negative choice and initial weights all derive from the seeds;
with one ORT thread a rerun is bit-identical, with more threads ORT's parallel reductions may differ in the last bits.
`;
}

/** The shapes-lvlm card. */
export function policyCard(a: { options: SftPolicyOptions; clipDir: string; result: SftPolicyResult; wallSeconds: number; command: string; file: string }): string {
  const o = a.options, m = a.result.metrics, c = a.result.policy.cfg;
  const row = (h: HallucinationMetrics, what: string) =>
    `| ${what} | ${h.answers} | ${(100 * h.chairI).toFixed(1)}% | ${(100 * h.chairS).toFixed(1)}% | ${(100 * h.cover).toFixed(1)}% | ${(100 * h.attributeHallucination).toFixed(1)}% | ${(100 * h.attributeHallucinationOnPresent).toFixed(1)}% | ${(100 * h.relationHallucination).toFixed(1)}% |`;
  const ex = m.examples.map((e) => `- scene: ${e.truth}\n  prompt: "${e.prompt}"\n  greedy: "${e.greedy}"\n  T=${m.temperature} sample: "${e.sample}"`).join("\n");
  return `# shapes-lvlm

The shapes-world captioning policy (LLaVA-style) that clipflow's embedded CLIP-DPO pipeline
starts from. Trained with supervised fine-tuning on **noisy** captions, so it hallucinates
co-occurring objects the way LVLMs do — the hallucination CLIP-DPO is meant to remove.
Folder layout: src/models/lvlm-io.ts (\`config.json\`, \`model.safetensors\`,
\`preprocessor_config.json\`, word tokenizer, \`onnx/prefill|decode|logps.onnx\` taking the weights
as named inputs). Load with \`loadLvlm\` (src/models).

## Architecture

- Vision: the ViT of shapes-clip (\`${a.clipDir}\`), ${c.vision.imageSize}² images, patch ${c.vision.patchSize}, width ${c.vision.width}; patch features read after block ${c.visionFeatureLayers} of ${c.vision.layers} (class token dropped) → ${a.result.policy.imageTokens} image tokens. ${o.trainVision ? "Initialised from shapes-clip and **fine-tuned** with the LM (trainVision: true; the rest of the tower is not used). Chosen on validation scenes (demo/recipes/validate-policy.ts), see the recipe-choice section of this card." : "Frozen (LLaVA)."}
- Projector: 2-layer MLP ${c.vision.width} → ${c.projectorHidden} → ${c.lm.width} (GELU).
- LM: decoder-only, width ${c.lm.width}, ${c.lm.layers} layers, ${c.lm.heads} heads, MLP ${c.lm.mlp}, learned positions (${c.lm.maxPositions} = image tokens + prompt + answer), word-level vocabulary of ${c.lm.vocabSize} tokens (the closed shapes-world vocabulary, shared with shapes-clip).
- Parameters: ${paramCount(a.result.params)} (${paramCount(a.result.trainableParams)} trained: ${o.trainVision ? "the vision blocks read + projector + LM" : "projector + LM; the vision tower stays frozen"}). Trainable patterns saved in the safetensors metadata.

## Training data

- Split \`sft\` of the shapes world (world seed ${o.worldSeed}), scenes 0..${o.scenes - 1}, ${o.captionVariants} caption variants per scene, each answering one of the five caption prompts.
- Co-occurrence noise: with p = ${o.noiseProb} a caption also names an absent object drawn by co-occurrence with the scene's objects; wrong-colour noise p = ${o.wrongAttributeProb}. Measured share of noisy training captions: ${(100 * a.result.noisyShare).toFixed(1)}%.
- Loss: mean token NLL of the answer (prompt tokens unscored). Batch ${o.batchSize}, ${o.optim.steps} steps of AdamW (weight decay ${o.optim.weightDecay}, clip ${o.optim.maxGradNorm}), lr ${o.optim.lr}, ${o.optim.warmupSteps} warmup steps, cosine to ${o.optim.minLr}. Seed ${o.seed}.
- Loss: ${a.result.losses[0]?.toFixed(3)} (first step) → ${a.result.losses.at(-1)?.toFixed(3)} (last step).

## Evaluation (held-out split, ${m.heldoutScenes} scenes, prompt i mod 5)

| decoding | answers | CHAIR_i | CHAIR_s (Hal) | Cover | attribute hall. | attribute hall. (present kinds) | relation hall. |
|---|---|---|---|---|---|---|---|
${row(m.greedy, "greedy")}
${row(m.sampled, `T = ${m.temperature}, ${m.samplesPerImage} samples/image`)}

Sample diversity at T = ${m.temperature}: ${m.distinctPerImage.toFixed(2)} distinct captions of ${m.samplesPerImage} per image;
${(100 * m.mixedHallucinationImages).toFixed(1)}% of images get both a caption with and one without a hallucinated object
(CLIP-DPO needs such images to build pairs). Captions ended by the length limit: ${(100 * m.truncatedShare).toFixed(1)}%.

Examples (held-out):

${ex}

## Reproduce

Wall time of the run that produced these weights: ${(a.wallSeconds / 60).toFixed(1)} min (training ${(a.result.trainSeconds / 60).toFixed(1)} min) on a shared 2-core machine, ORT intra-op threads ${o.threads}.

\`\`\`
${a.command}
\`\`\`

(recipe file \`${a.file}\`; needs shapes-clip first). Seeds fix weights, data order, caption choice and noise;
with one ORT thread a rerun is bit-identical, with more threads ORT's parallel reductions may differ in the last bits.
`;
}
