/**
 * Host-side KV cache of the LVLM decoder (layout documented in lvlm.ts): per layer K and V as
 * float32 [B, H, Tcap, Dh], plus each sequence's length (= the position its next token takes).
 * A decode step's new K/V are written in place (`append`); everything else returns a new cache.
 *
 * Rows are independent, so the continuous batcher can drop finished sequences (`select`), add
 * new ones (`concat`), fan one prefill out to n samples (`repeat`) and make room (`withCapacity`)
 * between steps. All of these are block copies (TypedArray.set of contiguous [Tcap·Dh] runs),
 * never per-element math.
 *
 * Errors: a graph whose present K/V outputs are missing or mis-shaped is a bad model
 * (ModelFileError, "bad model output"); every other check (lengths, rows, capacity, concat of
 * different models) is an internal invariant of the in-process generator and stays a plain Error.
 */
import type { TensorValue } from "../graph/index.ts";
import { LVLM_IO } from "./lvlm.ts";
import { ModelFileError } from "../util/errors.ts";

/**
 * @example
 * const { cache } = await model.prefill(pixels, prompts);     // rows = prompts
 * let c = cache.repeat(4);                                    // 4 samples per prompt share it
 * const { logits } = await model.decode(c, nextTokens);        // writes the new slot, lengths + 1
 * c = KvCache.concat([c.select(stillRunning), joining.cache]); // continuous batching between steps
 */
export class KvCache {
  private constructor(
    readonly layers: number,
    readonly heads: number,
    readonly headDim: number,
    readonly batch: number,
    readonly capacity: number,
    /** Per layer [B, H, Tcap, Dh]. */
    readonly keys: Float32Array[],
    readonly values: Float32Array[],
    /** Per sequence: tokens cached so far (image + text), i.e. the next token's position. */
    readonly lengths: number[],
  ) {}

  /** An empty cache (no sequences). */
  static empty(layers: number, heads: number, headDim: number, capacity: number): KvCache {
    return new KvCache(layers, heads, headDim, 0, capacity, Array.from({ length: layers }, () => new Float32Array(0)), Array.from({ length: layers }, () => new Float32Array(0)), []);
  }

  /**
   * Adopt graph outputs `present.{l}.key|value` [B, H, T, Dh] (no copy) with per-row lengths.
   */
  static fromOutputs(out: Record<string, TensorValue>, layers: number, lengths: readonly number[]): KvCache {
    const k0 = out[LVLM_IO.presentKey(0)];
    if (!k0) throw new ModelFileError("KvCache: outputs have no present.0.key", { code: "bad model output" });
    const [B, H, T, Dh] = k0.dims as [number, number, number, number];
    if (lengths.length !== B) throw new Error(`KvCache: ${lengths.length} lengths for a batch of ${B}`);
    for (const n of lengths) if (!(n >= 0 && n <= T)) throw new Error(`KvCache: length ${n} outside capacity ${T}`);
    const grab = (name: string): Float32Array => {
      const v = out[name];
      if (!v || !(v.data instanceof Float32Array) || v.dims.join() !== k0.dims.join()) throw new ModelFileError(`KvCache: output '${name}' missing or not [${k0.dims}]`, { code: "bad model output" });
      return v.data;
    };
    const keys: Float32Array[] = [], values: Float32Array[] = [];
    for (let l = 0; l < layers; l++) {
      keys.push(grab(LVLM_IO.presentKey(l)));
      values.push(grab(LVLM_IO.presentValue(l)));
    }
    return new KvCache(layers, H, Dh, B, T, keys, values, [...lengths]);
  }

  /**
   * After a decode step: write each row's new K/V (`new.{l}.key|value` [B, H, 1, Dh]) into slot
   * lengths[b], in place, and advance every length by one. Returns this cache.
   */
  append(out: Record<string, TensorValue>): KvCache {
    const { heads: H, headDim: Dh, capacity: T } = this;
    for (const n of this.lengths) if (n >= T) throw new Error(`KvCache.append: a row is full (length ${n}, capacity ${T}); grow it first`);
    const put = (dst: Float32Array, name: string) => {
      const v = out[name];
      if (!v || !(v.data instanceof Float32Array) || v.dims.join() !== [this.batch, H, 1, Dh].join()) {
        throw new ModelFileError(`KvCache.append: output '${name}' missing or not [${this.batch}, ${H}, 1, ${Dh}]`, { code: "bad model output" });
      }
      const src = v.data;
      for (let b = 0; b < this.batch; b++) {
        const slot = this.lengths[b]!;
        for (let h = 0; h < H; h++) {
          const i = b * H + h;
          dst.set(src.subarray(i * Dh, (i + 1) * Dh), (i * T + slot) * Dh);
        }
      }
    };
    for (let l = 0; l < this.layers; l++) {
      put(this.keys[l]!, LVLM_IO.newKey(l));
      put(this.values[l]!, LVLM_IO.newValue(l));
    }
    for (let b = 0; b < this.batch; b++) this.lengths[b]!++;
    return this;
  }

  /** Feeds for a decode step: `past_key_values.{l}.key|value` (no copy). */
  feeds(): Record<string, TensorValue> {
    const dims = [this.batch, this.heads, this.capacity, this.headDim];
    const f: Record<string, TensorValue> = {};
    for (let l = 0; l < this.layers; l++) {
      f[LVLM_IO.pastKey(l)] = { dtype: "float32", dims, data: this.keys[l]! };
      f[LVLM_IO.pastValue(l)] = { dtype: "float32", dims, data: this.values[l]! };
    }
    return f;
  }

  /** Bytes held (K and V, all layers). */
  get bytes(): number {
    return 2 * this.layers * this.batch * this.heads * this.capacity * this.headDim * 4;
  }

  /** Copy rows `rows` (in that order; repeats allowed) into a new cache of capacity `capacity`. */
  private gather(rows: readonly number[], capacity: number, lengths: number[]): KvCache {
    const { heads: H, headDim: Dh } = this;
    const run = Math.min(capacity, this.capacity) * Dh;
    const copy = (src: Float32Array): Float32Array => {
      const dst = new Float32Array(rows.length * H * capacity * Dh);
      rows.forEach((r, i) => {
        if (!(r >= 0 && r < this.batch)) throw new Error(`KvCache: row ${r} outside batch of ${this.batch}`);
        for (let h = 0; h < H; h++) {
          const s = (r * H + h) * this.capacity * Dh;
          dst.set(src.subarray(s, s + run), (i * H + h) * capacity * Dh);
        }
      });
      return dst;
    };
    return new KvCache(this.layers, H, Dh, rows.length, capacity, this.keys.map(copy), this.values.map(copy), lengths);
  }

  /** Keep only `rows` (e.g. drop finished sequences). */
  select(rows: readonly number[]): KvCache {
    return this.gather(rows, this.capacity, rows.map((r) => this.lengths[r]!));
  }

  /** Each row repeated `n` times in place (n samples sharing one prefill): [a, b] -> [a×n, b×n]. */
  repeat(n: number): KvCache {
    const rows: number[] = [];
    for (let r = 0; r < this.batch; r++) for (let i = 0; i < n; i++) rows.push(r);
    return this.select(rows);
  }

  /** Same rows with a new capacity (>= every length); slots beyond the old capacity are zero. */
  withCapacity(capacity: number): KvCache {
    const need = Math.max(0, ...this.lengths);
    if (capacity < need) throw new Error(`KvCache: capacity ${capacity} below the longest sequence (${need})`);
    if (capacity === this.capacity) return this;
    return this.gather(this.lengths.map((_, i) => i), capacity, [...this.lengths]);
  }

  /** Rows of several caches stacked into one batch, at the largest capacity (or `capacity`). */
  static concat(caches: readonly KvCache[], capacity?: number): KvCache {
    const live = caches.filter((c) => c.batch > 0);
    if (live.length === 0) {
      const c = caches[0];
      if (!c) throw new Error("KvCache.concat: nothing to concatenate");
      return capacity === undefined ? c : KvCache.empty(c.layers, c.heads, c.headDim, capacity);
    }
    const a = live[0]!;
    for (const c of live) {
      if (c.layers !== a.layers || c.heads !== a.heads || c.headDim !== a.headDim) throw new Error("KvCache.concat: caches of different models");
    }
    const cap = capacity ?? Math.max(...live.map((c) => c.capacity));
    const parts = live.map((c) => c.withCapacity(cap));
    const join = (pick: (c: KvCache) => Float32Array[]) =>
      Array.from({ length: a.layers }, (_, l) => {
        const out = new Float32Array(parts.reduce((s, c) => s + pick(c)[l]!.length, 0));
        let o = 0;
        for (const c of parts) {
          out.set(pick(c)[l]!, o);
          o += pick(c)[l]!.length;
        }
        return out;
      });
    return new KvCache(a.layers, a.heads, a.headDim, parts.reduce((s, c) => s + c.batch, 0), cap, join((c) => c.keys), join((c) => c.values), parts.flatMap((c) => c.lengths));
  }
}
