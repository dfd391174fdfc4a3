/**
 * Shapes-world data for the pretraining recipes: scenes rendered once to interleaved RGB bytes
 * (12 KB per 64² scene, so thousands stay in memory) and turned into model-ready pixels per
 * batch with the model's own mean/std. For square renders at the model's input size the CLIP
 * preprocessing (decode, no resize, no crop, rescale, normalise) reduces to exactly this, which
 * test/recipes/world-data.test.ts checks against preprocessImage on the PNG.
 */
import { renderSceneRgb, worldVocabulary, type Scene } from "../world/index.ts";
import { WordTokenizer, type ImageProcessorConfig } from "../../src/models/index.ts";

/** Scenes with their renders, [n, S, S, 3] uint8 interleaved. */
export interface RenderedScenes {
  readonly scenes: readonly Scene[];
  readonly size: number;
  readonly rgb: Uint8Array;
}

/**
 * Render scenes at `size`² into one byte buffer (sharp runs on libuv's pool; `concurrency`
 * bounds the renders in flight).
 * @example
 * const r = await renderAll(generateScenes("heldout", 10), 64);
 */
export async function renderAll(scenes: readonly Scene[], size: number, concurrency = 32): Promise<RenderedScenes> {
  const per = size * size * 3;
  const rgb = new Uint8Array(scenes.length * per);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < scenes.length; i = next++) {
      const r = await renderSceneRgb(scenes[i]!, { size });
      if (r.width !== size || r.height !== size) throw new Error(`renderAll: scene ${scenes[i]!.id} rendered ${r.width}x${r.height}, expected ${size}²`);
      rgb.set(r.data, i * per);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, scenes.length) }, worker));
  return { scenes, size, rgb };
}

/**
 * Model-ready pixels [rows.length, 3, S, S] for the chosen scenes (rescale + normalise + HWC→CHW,
 * as CLIPImageProcessor does once resize/crop are identities).
 */
export function pixelsOf(r: RenderedScenes, rows: readonly number[], pre: ImageProcessorConfig): Float32Array {
  const S = r.size, plane = S * S, per = plane * 3;
  if (pre.crop.height !== S || pre.crop.width !== S) throw new Error(`pixelsOf: renders are ${S}², the model wants ${pre.crop.width}x${pre.crop.height}`);
  const out = new Float32Array(rows.length * per);
  const scale = pre.doRescale ? pre.rescaleFactor : 1;
  rows.forEach((row, k) => {
    if (!Number.isInteger(row) || row < 0 || row >= r.scenes.length) throw new Error(`pixelsOf: row ${row} outside [0, ${r.scenes.length})`);
    const src = row * per, dst = k * per;
    for (let c = 0; c < 3; c++) {
      const a = scale / (pre.doNormalize ? pre.std[c]! : 1);
      const b = pre.doNormalize ? -pre.mean[c]! / pre.std[c]! : 0;
      const base = dst + c * plane;
      for (let i = 0; i < plane; i++) out[base + i] = r.rgb[src + i * 3 + c]! * a + b;
    }
  });
  return out;
}

/**
 * The word tokenizer both shapes models use: the closed world vocabulary (demo/world) after the
 * specials, so every template text encodes without `<unk>`.
 * @example
 * const tok = worldTokenizer(40); tok.encode("A red circle.").ids; // [bos, a, red, circle, ., eos]
 */
export function worldTokenizer(modelMaxLength?: number): WordTokenizer {
  return WordTokenizer.fromWords(worldVocabulary(), modelMaxLength !== undefined ? { modelMaxLength } : {});
}
