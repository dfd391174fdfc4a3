import { captionDefaultsFor, captionScene, type CaptionNoise, type CaptionOptions } from "./captions.ts";
import type { Scene, Split } from "./scene.ts";
import { sceneAt, sceneContentHash, type SceneOptions } from "./splits.ts";

/**
 * One dataset row of the shapes world, in the shape of the `images` Arrow batch (DESIGN.md:
 * `id`, `prompt`, `reference`, `meta`; the PNG comes from renderScene). The reference is the
 * split's caption: noisy for `sft`, clean for `clip-pretrain` and `heldout`, and null for `dpo`
 * (images and prompts only — pairs come from the policy).
 *
 * @example
 * const ex = sceneExample("sft", 0, { seed: 1 });
 * ex.reference; // "There is a red star and a heart."  (example; may carry co-occurrence noise)
 * JSON.parse(ex.meta).paintedText; // null or e.g. "STOP"
 */
export interface SceneExample {
  readonly id: string;
  readonly scene: Scene;
  readonly prompt: string;
  readonly reference: string | null;
  /** JSON: { sceneId, split, contentHash, objects, paintedText, noise } */
  readonly meta: string;
  readonly noise: CaptionNoise;
}

/**
 * The example of scene `index` of `split`; caption options default to captionDefaultsFor(split).
 * @example
 * sceneExample("dpo", 3).reference; // null
 */
export function sceneExample(split: Split, index: number, opts: SceneOptions & { caption?: Partial<CaptionOptions> } = {}): SceneExample {
  const scene = sceneAt(split, index, opts);
  const caption = captionScene(scene, { ...captionDefaultsFor(split), ...opts.caption });
  const reference = split === "dpo" ? null : caption.text;
  const meta = JSON.stringify({
    sceneId: scene.id,
    split,
    contentHash: sceneContentHash(scene),
    objects: scene.objects,
    paintedText: scene.text?.word ?? null,
    noise: caption.noise,
  });
  return { id: scene.id, scene, prompt: caption.prompt, reference, meta, noise: caption.noise };
}
