/**
 * The trainer's data state: pairs waiting for their first step (`pending`), a bounded FIFO of
 * pairs kept for later epochs (`replay`), and the pixels of every image those pairs refer to,
 * pinned by reference count so an image stays available exactly as long as a pair needs it
 * (the shared PixelCache may evict it meanwhile). All of it round-trips through a checkpoint.
 */
import { loadSafetensors, saveSafetensors, tensorToFloat32 } from "../graph/safetensors.ts";
import type { PairRecord } from "./dpo-batch.ts";
import type { PixelLookup } from "./pixel-lookup.ts";
import { CheckpointError } from "./checkpoint.ts";
import { ConfigError, RuntimeError } from "../util/errors.ts";

export const DATA_FILE = "data.safetensors";

/** Serialisable part of the buffer (pixels go to data.safetensors). */
export interface ReplayState {
  pending: PairRecord[];
  replay: PairRecord[];
}

/**
 * @example
 * const buf = new ReplayBuffer(4096, imageFloats);
 * buf.admit(pair, cache, true);
 * const step = buf.takePending(16);
 */
export class ReplayBuffer {
  pending: PairRecord[] = [];
  replay: PairRecord[] = [];
  private readonly images = new Map<string, { px: Float32Array; refs: number }>();
  /** Pairs dropped from the replay FIFO because it was full. */
  evicted = 0;

  constructor(
    readonly capacity: number,
    /** Pixel floats per image (3·S·S). */
    readonly imageFloats: number,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new ConfigError(`replay buffer capacity must be an integer >= 1, got ${capacity}`, { code: "bad option" });
  }

  get pinnedImages(): number {
    return this.images.size;
  }

  private pin(id: string, lookup: PixelLookup | undefined): void {
    const e = this.images.get(id);
    if (e) {
      e.refs++;
      return;
    }
    const px = lookup?.get(id);
    if (!px) throw new RuntimeError(`image '${id}' is not in the pixel cache (never decoded, or evicted: raise the cache size)`, { code: "image not cached", where: { rowId: id } });
    if (px.length !== this.imageFloats) {
      throw new RuntimeError(`image '${id}' has ${px.length} pixel values, the policy wants ${this.imageFloats}`, { code: "image size mismatch", where: { rowId: id } });
    }
    this.images.set(id, { px: px.slice(), refs: 1 });
  }

  private unpin(id: string): void {
    const e = this.images.get(id)!;
    if (--e.refs === 0) this.images.delete(id);
  }

  /** Pixels of a pinned image. */
  pixels(id: string): Float32Array {
    const e = this.images.get(id);
    if (!e) throw new Error(`replay buffer: image '${id}' is not pinned`); // internal invariant: only admitted pairs are read
    return e.px;
  }

  /** Adds a stream pair to `pending` (and to `replay` when `keep`), pinning its image. */
  admit(p: PairRecord, lookup: PixelLookup, keep: boolean): void {
    this.pin(p.imageId, lookup);
    this.pending.push(p);
    if (keep) {
      this.pin(p.imageId, undefined);
      this.replay.push(p);
      if (this.replay.length > this.capacity) {
        this.unpin(this.replay.shift()!.imageId);
        this.evicted++;
      }
    }
  }

  /** Removes up to `n` pending pairs (oldest first). Their pixels stay valid until `done(pairs)`. */
  takePending(n: number): PairRecord[] {
    return this.pending.splice(0, n);
  }

  /** Releases the pending pins of pairs taken with takePending, after their step ran. */
  done(pairs: readonly PairRecord[]): void {
    for (const p of pairs) this.unpin(p.imageId);
  }

  state(): ReplayState {
    return { pending: [...this.pending], replay: [...this.replay] };
  }

  /** Writes the pinned pixels (`pixels` [n, floats] + ids in metadata). */
  async savePixels(path: string): Promise<void> {
    const ids = [...this.images.keys()];
    const data = new Float32Array(ids.length * this.imageFloats);
    ids.forEach((id, i) => data.set(this.images.get(id)!.px, i * this.imageFloats));
    await saveSafetensors(path, { pixels: { shape: [ids.length, this.imageFloats], data } }, { ids: JSON.stringify(ids) });
  }

  /** Restores pending/replay and their pixels from a checkpoint. */
  async restore(state: ReplayState, pixelsPath: string): Promise<void> {
    const f = await loadSafetensors(pixelsPath);
    let ids: unknown;
    try {
      ids = JSON.parse(f.metadata.ids ?? "null");
    } catch {
      ids = null;
    }
    if (!Array.isArray(ids)) throw new CheckpointError("metadata 'ids' is not a JSON list", { code: "bad checkpoint", where: { file: pixelsPath } });
    const all = tensorToFloat32(f, "pixels");
    if (all.length !== ids.length * this.imageFloats) {
      throw new CheckpointError(`${all.length} pixel values for ${ids.length} images of ${this.imageFloats}`, { code: "bad checkpoint", where: { file: pixelsPath } });
    }
    const byId = new Map<string, Float32Array>();
    ids.forEach((id, i) => byId.set(String(id), all.slice(i * this.imageFloats, (i + 1) * this.imageFloats)));
    const lookup: PixelLookup = { get: (id) => byId.get(id) };
    this.images.clear();
    this.pending = [];
    this.replay = [];
    for (const p of state.pending) {
      this.pin(p.imageId, lookup);
      this.pending.push(p);
    }
    for (const p of state.replay) {
      this.pin(p.imageId, lookup);
      this.replay.push(p);
    }
  }
}
