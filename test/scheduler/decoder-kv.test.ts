/**
 * The decoder's KV lanes: PastKvLane (the exported decoders' growing past/present convention)
 * lays rows out left-padded to the longest, reports each row's holes, adopts a step's present
 * without copying, and re-lays out on joins and departures — checked element by element against
 * a plain per-row model of what each row must hold.
 */
import { describe, expect, test } from "bun:test";
import type { TensorValue } from "../../src/graph/runtime.ts";
import { PastKvLane } from "../../src/scheduler/kv-pool.ts";

const shape = { layers: 2, heads: 2, headDim: 3, capacity: 16 };
const { layers: L, heads: H, headDim: Dh } = shape;

/** Token t of row tag r in layer l, head h, dim d (K; V is the negative). */
const val = (tag: number, l: number, h: number, t: number, d: number) => tag * 1000 + l * 100 + h * 10 + t + d / 10;

/** Prefill outputs for rows with `lengths` (right-padded to the longest; pads hold -1). */
function prefill(tags: number[], lengths: number[]): { present: Record<string, TensorValue>; T: number } {
  const T = Math.max(...lengths);
  const present: Record<string, TensorValue> = {};
  for (let l = 0; l < L; l++) {
    const k = new Float32Array(tags.length * H * T * Dh).fill(-1), v = new Float32Array(k.length).fill(-1);
    tags.forEach((tag, r) => {
      for (let h = 0; h < H; h++) for (let t = 0; t < lengths[r]!; t++) for (let d = 0; d < Dh; d++) {
        const i = ((r * H + h) * T + t) * Dh + d;
        k[i] = val(tag, l, h, t, d);
        v[i] = -val(tag, l, h, t, d);
      }
    });
    present[`present.${l}.key`] = { dtype: "float32", dims: [tags.length, H, T, Dh], data: k };
    present[`present.${l}.value`] = { dtype: "float32", dims: [tags.length, H, T, Dh], data: v };
  }
  return { present, T };
}

/** What the graph would return after a step: past ‖ the new token (position slots[b]). */
function step(feeds: Record<string, TensorValue>, tags: number[], slots: number[]): Record<string, TensorValue> {
  const out: Record<string, TensorValue> = {};
  for (let l = 0; l < L; l++) {
    for (const [kind, sign] of [["key", 1], ["value", -1]] as const) {
      const past = feeds[`past_key_values.${l}.${kind}`]!;
      const [B, , T] = past.dims as [number, number, number, number];
      const p = new Float32Array(B * H * (T + 1) * Dh);
      for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
        p.set((past.data as Float32Array).subarray((b * H + h) * T * Dh, (b * H + h + 1) * T * Dh), (b * H + h) * (T + 1) * Dh);
        for (let d = 0; d < Dh; d++) p[((b * H + h) * (T + 1) + T) * Dh + d] = sign * val(tags[b]!, l, h, slots[b]!, d);
      }
      out[`present.${l}.${kind}`] = { dtype: "float32", dims: [B, H, T + 1, Dh], data: p };
    }
  }
  return out;
}

/** Row b of the fed past holds holes, then tokens 0..len-1 of its tag. */
function expectRows(lane: PastKvLane, tags: number[], lengths: number[]): void {
  const feeds = lane.feeds(tags.length);
  const T = lane.pastSlots;
  expect(T).toBe(Math.max(...lengths));
  expect(lane.holes(tags.length)).toEqual(lengths.map((n) => T - n));
  for (let l = 0; l < L; l++) {
    const k = feeds[`past_key_values.${l}.key`]!, v = feeds[`past_key_values.${l}.value`]!;
    expect(k.dims).toEqual([tags.length, H, T, Dh]);
    tags.forEach((tag, b) => {
      for (let h = 0; h < H; h++) for (let t = 0; t < lengths[b]!; t++) for (let d = 0; d < Dh; d++) {
        const i = ((b * H + h) * T + (T - lengths[b]!) + t) * Dh + d;
        expect(k.data[i]).toBe(Math.fround(val(tag, l, h, t, d)));
        expect(v.data[i]).toBe(Math.fround(-val(tag, l, h, t, d)));
      }
    });
  }
}

describe("PastKvLane", () => {
  test("joins left-pad to the longest row; steps adopt present; departures compact and trim", () => {
    const lane = new PastKvLane(shape, 4);
    const a = prefill([1, 2], [5, 3]);
    lane.load(0, a.present, 0, a.T, 5);
    lane.load(1, a.present, 1, a.T, 3);
    expectRows(lane, [1, 2], [5, 3]);
    const copied = lane.copiedFloats;
    expect(copied).toBe(2 * L * H * (5 + 3) * Dh);

    // two steps: rows grow by one token each, nothing is copied on the main thread
    let lens = [5, 3];
    for (let s = 0; s < 2; s++) {
      const out = step(lane.feeds(2), [1, 2], lens);
      const adopted = out["present.0.key"]!.data;
      lane.append(out, lens);
      lens = lens.map((n) => n + 1);
      expect(lane.feeds(2)["past_key_values.0.key"]!.data).toBe(adopted); // the same buffer
    }
    expect(lane.copiedFloats).toBe(copied);
    expectRows(lane, [1, 2], lens);

    // a third row joins (shorter), then row 0 (the longest) leaves: last row moves into it, T trims
    const b = prefill([3], [2]);
    lane.load(2, b.present, 0, b.T, 2);
    expectRows(lane, [1, 2, 3], [7, 5, 2]);
    lane.move(2, 0, 2);
    expectRows(lane, [3, 2], [2, 5]);
    expect(lane.pastSlots).toBe(5);
    // the last row leaves without a move: the lane shrinks
    expectRows(lane, [3], [2]);
  });

  test("a step's outputs must match what was fed", () => {
    const lane = new PastKvLane(shape, 2);
    const a = prefill([1], [4]);
    lane.load(0, a.present, 0, a.T, 4);
    const out = step(lane.feeds(1), [1], [4]);
    expect(() => lane.append(out, [4, 4])).toThrow(/2 rows stepped, 1 fed/);
    delete out["present.1.value"];
    expect(() => lane.append(out, [4])).toThrow(/present\.1\.value' missing/);
  });
});
