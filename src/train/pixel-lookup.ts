/**
 * How the DPO stages find a pair's image (DESIGN "Data model"): pairs rows keep only
 * `image_id`; the pixels come from the flow's bounded per-image store (src/io/image-store.ts,
 * filled by `decode`), never from re-reading the source.
 */

/** Anything that hands out model-ready pixels [3·S·S] by image id. */
export interface PixelLookup {
  get(imageId: string): Float32Array | undefined;
}

/** The shape of the flow's ImageStore as far as the trainer is concerned. */
export interface ImageStoreLike {
  get(id: string): { pixels: Float32Array } | undefined;
}

/**
 * Pixels of an ImageStore-like cache (or a PixelLookup, passed through).
 *
 * @example
 * const pixels = pixelLookup(imageStore); pixels.get("img-3") // Float32Array | undefined
 */
export function pixelLookup(src: ImageStoreLike | PixelLookup): PixelLookup {
  return {
    get(id) {
      const v = src.get(id);
      if (v === undefined) return undefined;
      return v instanceof Float32Array ? v : v.pixels;
    },
  };
}
