/**
 * The bounded per-image cache of a flow (DESIGN.md "Images travel with their batch"): rows
 * downstream of generation carry only `image_id`, so the stages that need the image again —
 * clipScore (pixels, embedding), filter (embedding), write with the TRL layout (encoded bytes),
 * the trainer (pixels) — look it up here. `decode` puts every image it decodes.
 *
 * Bounded by entry count, least-recently-used out first. Size it above the images alive in a
 * flow (maxInFlight × source batchSize, plus what buffering stages hold); a lookup of an
 * evicted image is a per-row error naming the image, never a silent re-read of the source.
 *
 * @example
 * const store = new ImageStore({ capacity: 4096 });
 * store.put("img-1", { bytes: png, pixels });      // by decode
 * store.get("img-1")?.pixels;                      // by clipScore
 */

export interface StoredImage {
  /** Encoded PNG/JPEG bytes as read by the source. */
  bytes: Uint8Array;
  /** Model-ready pixels [3, H, W] (its own buffer, not a view into a batch). */
  pixels: Float32Array;
  /** L2-normalised CLIP image embedding [E], filled in by the first stage that computes it. */
  embedding?: Float32Array;
  /** Text-in-image verdict of the filter stage, cached per image. */
  hasText?: boolean;
}

export class ImageStore {
  readonly capacity: number;
  private readonly map = new Map<string, StoredImage>();
  /** Entries dropped to stay within capacity. */
  evictions = 0;

  constructor(opts: { capacity?: number } = {}) {
    this.capacity = opts.capacity ?? 4096;
    if (!Number.isInteger(this.capacity) || this.capacity < 1) throw new Error(`ImageStore: capacity must be a positive integer, got ${this.capacity}`);
  }

  get size(): number {
    return this.map.size;
  }

  put(id: string, img: StoredImage): void {
    this.map.delete(id);
    this.map.set(id, img);
    while (this.map.size > this.capacity) {
      const oldest = this.map.keys().next().value as string;
      this.map.delete(oldest);
      this.evictions++;
    }
  }

  /** The entry (and mark it recently used), or undefined. */
  get(id: string): StoredImage | undefined {
    const v = this.map.get(id);
    if (v) {
      this.map.delete(id);
      this.map.set(id, v);
    }
    return v;
  }

  has(id: string): boolean {
    return this.map.has(id);
  }
}
