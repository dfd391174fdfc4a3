/**
 * The continuous batcher's KV cache: one pool per running batch ("lane"), in SharedArrayBuffers
 * so the model-host worker reads it in place while the main thread owns it.
 *
 * Layout, per layer l, K and V alike (the decode graph's `past_key_values.{l}.key|value`, see
 * src/models/lvlm.ts): float32 [rows, H, Tcap, Dh] with Tcap = the model's maxPositions.
 * Running sequences occupy rows 0..B-1 with no holes, so a step feeds the prefix
 * [B, H, Tcap, Dh] of each buffer as a view (no copy, and nothing is transferred: the worker
 * reads the shared memory). Sequence b's token at position p lives in slot p of row b.
 *
 * What moves, and when (block copies only, never per-element math):
 * - a step: the graph returns only the new token's K/V [B, H, 1, Dh]; `append` writes them into
 *   slot lengths[b] — 2·L·B·H·Dh floats, the step's own output;
 * - a sequence joins: `load` copies its prompt's prefill K/V (H runs of length·Dh per layer and
 *   K/V) into a free row; n samples of one prompt copy the same prefill rows n times;
 * - a sequence leaves: the last running row moves into its row (`move`: H runs of that
 *   sequence's length·Dh per layer and K/V), so the rows stay dense. A row that is already last
 *   just shrinks B. So each departure costs at most one sequence's live K/V, never the batch's.
 */
import type { TensorValue } from "../graph/runtime.ts";
import { LVLM_IO } from "../models/lvlm.ts";

export interface KvShape {
  layers: number;
  heads: number;
  headDim: number;
  /** Slots per row (the model's maxPositions). */
  capacity: number;
}

/**
 * @example
 * const pool = new KvPool({ layers: 4, heads: 4, headDim: 32, capacity: 128 }, 64);
 * pool.load(0, prefill.present, 2, prefillSlots, 70); // row 0 <- row 2 of a prefill output
 * const feeds = pool.feeds(1);                         // past_key_values.* views [1, H, Tcap, Dh]
 */
export class KvPool {
  readonly keys: Float32Array[];
  readonly values: Float32Array[];
  /** Floats in one row of one layer's K (or V): H·Tcap·Dh. */
  readonly rowFloats: number;
  /** Floats copied by load/move so far (joining and compaction cost, for stats and tests). */
  copiedFloats = 0;

  constructor(
    readonly shape: KvShape,
    readonly maxRows: number,
  ) {
    const { layers, heads, headDim, capacity } = shape;
    this.rowFloats = heads * capacity * headDim;
    const make = () => new Float32Array(new SharedArrayBuffer(maxRows * this.rowFloats * 4));
    this.keys = Array.from({ length: layers }, make);
    this.values = Array.from({ length: layers }, make);
  }

  /** Bytes held by the pool (K and V, all layers, all rows). */
  get bytes(): number {
    return 2 * this.shape.layers * this.maxRows * this.rowFloats * 4;
  }

  /** Decode-step feeds for rows [0, rows): views of the shared buffers, no copy. */
  feeds(rows: number): Record<string, TensorValue> {
    const { layers, heads, capacity, headDim } = this.shape;
    const dims = [rows, heads, capacity, headDim];
    const n = rows * this.rowFloats;
    const f: Record<string, TensorValue> = {};
    for (let l = 0; l < layers; l++) {
      f[LVLM_IO.pastKey(l)] = { dtype: "float32", dims, data: new Float32Array(this.keys[l]!.buffer, 0, n) };
      f[LVLM_IO.pastValue(l)] = { dtype: "float32", dims, data: new Float32Array(this.values[l]!.buffer, 0, n) };
    }
    return f;
  }

  /**
   * Copy the first `length` slots of row `srcRow` of prefill outputs (`present.{l}.key|value`
   * [P, H, srcSlots, Dh]) into row `row`.
   */
  load(row: number, present: Record<string, TensorValue>, srcRow: number, srcSlots: number, length: number): void {
    const { layers, heads: H, headDim: Dh, capacity: T } = this.shape;
    if (!(row >= 0 && row < this.maxRows)) throw new RangeError(`KvPool.load: row ${row} outside [0, ${this.maxRows})`);
    if (!(length >= 0 && length <= srcSlots && length <= T)) throw new RangeError(`KvPool.load: length ${length} exceeds the source (${srcSlots}) or capacity (${T})`);
    const run = length * Dh;
    const put = (dst: Float32Array, name: string) => {
      const src = present[name]?.data;
      if (!(src instanceof Float32Array)) throw new Error(`KvPool.load: prefill output '${name}' missing`);
      for (let h = 0; h < H; h++) {
        const s = ((srcRow * H + h) * srcSlots) * Dh;
        dst.set(src.subarray(s, s + run), (row * H + h) * T * Dh);
      }
    };
    for (let l = 0; l < layers; l++) {
      put(this.keys[l]!, LVLM_IO.presentKey(l));
      put(this.values[l]!, LVLM_IO.presentValue(l));
    }
    this.copiedFloats += 2 * layers * H * run;
  }

  /** Move row `from` (its first `length` slots) into row `to` (compaction after a departure). */
  move(from: number, to: number, length: number): void {
    if (from === to) return;
    const { layers, heads: H, headDim: Dh, capacity: T } = this.shape;
    const run = length * Dh;
    for (let l = 0; l < layers; l++) {
      for (const buf of [this.keys[l]!, this.values[l]!]) {
        for (let h = 0; h < H; h++) {
          const s = (from * H + h) * T * Dh;
          buf.copyWithin((to * H + h) * T * Dh, s, s + run);
        }
      }
    }
    this.copiedFloats += 2 * layers * H * run;
  }

  /**
   * Write a decode step's new K/V (`new.{l}.key|value` [B, H, 1, Dh]) of rows [0, B) into slot
   * `slots[b]` of each row.
   */
  append(out: Record<string, TensorValue>, slots: readonly number[]): void {
    const { layers, heads: H, headDim: Dh, capacity: T } = this.shape;
    const B = slots.length;
    const put = (dst: Float32Array, name: string) => {
      const v = out[name];
      if (!v || !(v.data instanceof Float32Array) || v.data.length !== B * H * Dh) {
        throw new Error(`KvPool.append: output '${name}' missing or not [${B}, ${H}, 1, ${Dh}]`);
      }
      const src = v.data;
      for (let b = 0; b < B; b++) {
        const slot = slots[b]!;
        if (!(slot >= 0 && slot < T)) throw new RangeError(`KvPool.append: slot ${slot} outside capacity ${T}`);
        for (let h = 0; h < H; h++) {
          const i = b * H + h;
          dst.set(src.subarray(i * Dh, (i + 1) * Dh), (i * T + slot) * Dh);
        }
      }
    };
    for (let l = 0; l < layers; l++) {
      put(this.keys[l]!, LVLM_IO.newKey(l));
      put(this.values[l]!, LVLM_IO.newValue(l));
    }
  }
}
