/**
 * Held-out evaluation of a captioning policy on the shapes world: greedy captions and T-sampled
 * captions of `heldout` scenes (prompt i mod 5 of the five caption prompts), scored with the
 * exact hallucination metrics of demo/world (CHAIR_i, CHAIR_s, Cover, attribute hallucination),
 * plus how diverse the samples of one image are — CLIP-DPO needs, per image, some candidates
 * with and some without a hallucinated object.
 */
import { CAPTION_PROMPTS, evaluateAnswer, generateScenes, hallucinationMetrics, type HallucinationMetrics } from "../world/index.ts";
import { generate, type LvlmModel } from "../../src/models/index.ts";
import { pixelsOf, renderAll } from "./world-data.ts";

export interface PolicyMetrics {
  readonly heldoutScenes: number;
  readonly greedy: HallucinationMetrics;
  readonly sampled: HallucinationMetrics;
  readonly temperature: number;
  readonly samplesPerImage: number;
  /** Mean distinct texts among one image's samples. */
  readonly distinctPerImage: number;
  /** Share of images whose samples include both a caption with and one without a hallucinated object. */
  readonly mixedHallucinationImages: number;
  /** Share of generated texts that ended by the length limit instead of end-of-sequence. */
  readonly truncatedShare: number;
  /** A few greedy captions, for the model card. */
  readonly examples: readonly { readonly truth: string; readonly prompt: string; readonly greedy: string; readonly sample: string }[];
}

/**
 * Generate and score captions of `heldout` scenes 0..scenes-1.
 * @example
 * const m = await evaluatePolicy(policy, { scenes: 100, samples: 4 });
 */
export async function evaluatePolicy(
  model: LvlmModel,
  opts: { seed?: number; scenes: number; samples: number; temperature?: number; maxNewTokens?: number; examples?: number },
): Promise<PolicyMetrics> {
  const scenes = generateScenes("heldout", opts.scenes, { seed: opts.seed ?? 1 });
  const r = await renderAll(scenes, model.cfg.vision.imageSize);
  const temperature = opts.temperature ?? 1;
  const maxNewTokens = opts.maxNewTokens ?? 56;
  const greedy: { text: string; scene: (typeof scenes)[number] }[] = [];
  const sampled: { text: string; scene: (typeof scenes)[number] }[] = [];
  let distinct = 0, mixed = 0, truncated = 0, texts = 0;
  const examples: { truth: string; prompt: string; greedy: string; sample: string }[] = [];
  for (let i = 0; i < scenes.length; i++) {
    const scene = scenes[i]!;
    const px = pixelsOf(r, [i], model.preprocess);
    const prompt = CAPTION_PROMPTS[i % CAPTION_PROMPTS.length]!;
    const [g] = await generate(model, px, prompt, { maxNewTokens, temperature: 0 });
    const ss = await generate(model, px, prompt, { maxNewTokens, temperature, n: opts.samples, seed: 1000 + i });
    greedy.push({ text: g!.text, scene });
    for (const s of ss) sampled.push({ text: s.text, scene });
    truncated += [g!, ...ss].filter((s) => s.finish === "length").length;
    texts += 1 + ss.length;
    distinct += new Set(ss.map((s) => s.text)).size;
    const hall = ss.map((s) => evaluateAnswer(s.text, scene).hallucinatedKinds.length > 0);
    if (hall.some((h) => h) && hall.some((h) => !h)) mixed++;
    if (examples.length < (opts.examples ?? 6)) {
      const truth = scene.objects.map((o) => `${o.size} ${o.colour} ${o.kind}`).join(", ");
      examples.push({ truth, prompt, greedy: g!.text, sample: ss[0]!.text });
    }
  }
  return {
    heldoutScenes: scenes.length,
    greedy: hallucinationMetrics(greedy),
    sampled: hallucinationMetrics(sampled),
    temperature,
    samplesPerImage: opts.samples,
    distinctPerImage: distinct / scenes.length,
    mixedHallucinationImages: mixed / scenes.length,
    truncatedShare: truncated / texts,
    examples,
  };
}
