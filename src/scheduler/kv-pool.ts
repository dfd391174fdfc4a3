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
 *
 * Errors: a decoder graph whose present K/V outputs are missing or mis-shaped is a bad model
 * (ModelFileError, code "bad model output"); the RangeErrors and the row-count check are internal
 * invariants (the decoder hands out rows and slots) and stay plain errors.
 */
import type { TensorValue } from "../graph/runtime.ts";
import { ModelFileError } from "../util/errors.ts";
import type { PolicyKv } from "../models/lvlm-policy.ts";
import { LVLM_IO } from "../models/lvlm.ts";

/** A decoder graph that does not return the K/V this pool needs: the model, not clipflow, is wrong. */
function badOutput(detail: string): ModelFileError {
  return new ModelFileError(detail, { code: "bad model output" });
}

/** One lane's KV cache as the decoder manipulates it (rows dense in [0, B)). */
export interface KvLane extends PolicyKv {
  /** Floats copied by joins, compaction and re-layout so far. */
  readonly copiedFloats: number;
  /** Bytes held now. */
  readonly bytes: number;
  /**
   * Row `row` <- the first `length` slots of row `srcRow` of prefill outputs
   * (`present.{l}.key|value` [P, H, srcSlots, Dh]).
   */
  load(row: number, present: Record<string, TensorValue>, srcRow: number, srcSlots: number, length: number): void;
  /** Row `to` <- row `from` (its `length` tokens): compaction after a departure. */
  move(from: number, to: number, length: number): void;
}

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
export class KvPool implements KvLane {
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
      if (!(src instanceof Float32Array)) throw badOutput(`KvPool.load: prefill output '${name}' missing`);
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
        throw badOutput(`KvPool.append: output '${name}' missing or not [${B}, ${H}, 1, ${Dh}]`);
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

type RowSource =
  | { kind: "lane"; row: number; length: number }
  | { kind: "prefill"; present: Record<string, TensorValue>; srcRow: number; srcSlots: number; length: number };

/**
 * The exported-decoder ("past/present") KV convention of Hugging Face ONNX decoders, as
 * transformers.js runs them: a step feeds `past_key_values.{l}.key|value` [B, H, T, Dh] and the
 * graph returns `present.{l}.key|value` [B, H, T + 1, Dh], which becomes the next past as is
 * (adopted, no copy).
 *
 * Rows of different lengths share one T: row b's tokens are the *last* lengths[b] slots
 * (left-padded), the `holes(B)` leading slots are masked by the policy's attention_mask and
 * every step appends each row's new token at slot T. Joins and departures re-lay the lane out
 * once before the next step (one block copy of each live row, T trimmed to the longest row),
 * so between them a step copies nothing on the main thread; ORT's Concat inside the graph is
 * the price of this convention (it rewrites the cache every step), which is why the built-in
 * LVLM uses the preallocated `slots` layout instead.
 * @example
 * const lane = new PastKvLane({ layers: 2, heads: 4, headDim: 16, capacity: 256 }, 32);
 * lane.load(0, prefill.present, 0, prefill.srcSlots, 40);
 * const feeds = lane.feeds(1); // past_key_values.* [1, 4, 40, 16]; lane.holes(1) = [0]
 */
export class PastKvLane implements KvLane {
  private keys: Float32Array[] = [];
  private values: Float32Array[] = [];
  /** Rows laid out in `keys`/`values` now, and their slot count. */
  private rows = 0;
  private T = 0;
  private lengths: number[] = [];
  /** Pending layout per row (undefined: in place). */
  private sources: (RowSource | undefined)[] = [];
  private dirty = false;
  copiedFloats = 0;

  constructor(
    readonly shape: KvShape,
    readonly maxRows: number,
  ) {}

  get bytes(): number {
    return 2 * this.shape.layers * this.rows * this.shape.heads * this.T * this.shape.headDim * 4;
  }

  get pastSlots(): number {
    return this.T;
  }

  holes(rows: number): number[] {
    this.layout(rows);
    return this.lengths.slice(0, rows).map((n) => this.T - n);
  }

  load(row: number, present: Record<string, TensorValue>, srcRow: number, srcSlots: number, length: number): void {
    if (!(row >= 0 && row < this.maxRows)) throw new RangeError(`PastKvLane.load: row ${row} outside [0, ${this.maxRows})`);
    if (!(length >= 0 && length <= srcSlots && length <= this.shape.capacity)) throw new RangeError(`PastKvLane.load: length ${length} exceeds the source (${srcSlots}) or capacity (${this.shape.capacity})`);
    this.sources[row] = { kind: "prefill", present, srcRow, srcSlots, length };
    this.lengths[row] = length;
    this.dirty = true;
  }

  move(from: number, to: number, length: number): void {
    if (from === to) return;
    this.sources[to] = this.sources[from] ?? { kind: "lane", row: from, length };
    this.lengths[to] = length;
    this.dirty = true;
  }

  feeds(rows: number): Record<string, TensorValue> {
    this.layout(rows);
    const { layers, heads: H, headDim: Dh } = this.shape;
    const dims = [rows, H, this.T, Dh];
    const f: Record<string, TensorValue> = {};
    for (let l = 0; l < layers; l++) {
      f[LVLM_IO.pastKey(l)] = { dtype: "float32", dims, data: this.keys[l]! };
      f[LVLM_IO.pastValue(l)] = { dtype: "float32", dims, data: this.values[l]! };
    }
    return f;
  }

  /** Adopt `present.{l}.key|value` [B, H, T + 1, Dh] as the lane's cache; row b now ends at slots[b] + 1 tokens. */
  append(out: Record<string, TensorValue>, slots: readonly number[]): void {
    const { layers, heads: H, headDim: Dh } = this.shape;
    const B = slots.length;
    if (B !== this.rows) throw new Error(`PastKvLane.append: ${B} rows stepped, ${this.rows} fed`);
    const want = [B, H, this.T + 1, Dh].join();
    const grab = (name: string) => {
      const v = out[name];
      if (!v || !(v.data instanceof Float32Array) || v.dims.join() !== want) throw badOutput(`PastKvLane.append: output '${name}' missing or not [${want}]`);
      return v.data;
    };
    const keys: Float32Array[] = [], values: Float32Array[] = [];
    for (let l = 0; l < layers; l++) {
      keys.push(grab(LVLM_IO.presentKey(l)));
      values.push(grab(LVLM_IO.presentValue(l)));
    }
    this.keys = keys;
    this.values = values;
    this.T++;
    for (let b = 0; b < B; b++) this.lengths[b] = Math.min(slots[b]! + 1, this.T);
  }

  /** Re-lay rows [0, rows) out when joins/departures changed them: left-padded to the longest. */
  private layout(rows: number): void {
    if (!this.dirty && rows === this.rows) return;
    if (rows > this.maxRows) throw new RangeError(`PastKvLane: ${rows} rows exceed ${this.maxRows}`);
    const { layers, heads: H, headDim: Dh } = this.shape;
    const T = rows === 0 ? 0 : Math.max(...this.lengths.slice(0, rows));
    const keys: Float32Array[] = [], values: Float32Array[] = [];
    for (let l = 0; l < layers; l++) {
      keys.push(new Float32Array(rows * H * T * Dh));
      values.push(new Float32Array(rows * H * T * Dh));
    }
    for (let r = 0; r < rows; r++) {
      const src = this.sources[r] ?? { kind: "lane" as const, row: r, length: this.lengths[r]! };
      const n = src.length;
      for (let l = 0; l < layers; l++) {
        for (const [dst, name, cur] of [
          [keys[l]!, LVLM_IO.presentKey(l), this.keys[l]],
          [values[l]!, LVLM_IO.presentValue(l), this.values[l]],
        ] as const) {
          for (let h = 0; h < H; h++) {
            const d = ((r * H + h) * T + (T - n)) * Dh;
            if (src.kind === "prefill") {
              const data = src.present[name]?.data;
              if (!(data instanceof Float32Array)) throw badOutput(`PastKvLane: prefill output '${name}' missing`);
              const s = (src.srcRow * H + h) * src.srcSlots * Dh;
              dst.set(data.subarray(s, s + n * Dh), d);
            } else {
              // a lane row's tokens are its last `n` slots of the current T
              const s = ((src.row * H + h) * this.T + (this.T - n)) * Dh;
              dst.set(cur!.subarray(s, s + n * Dh), d);
            }
          }
        }
      }
      this.copiedFloats += 2 * layers * H * n * Dh;
    }
    this.keys = keys;
    this.values = values;
    this.rows = rows;
    this.T = T;
    this.lengths.length = rows;
    this.sources = [];
    this.dirty = false;
  }
}
