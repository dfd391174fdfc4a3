/**
 * Batch assembly against hand-written expectations: stacking, padding a variable axis (inner
 * and middle axes), int64 pads, splitting back with and without cutting, and clear errors.
 */
import { describe, expect, test } from "bun:test";
import type { TensorValue } from "../../src/graph/runtime.ts";
import { concatRows, rowsOf, sliceRows, split, stack } from "../../src/scheduler/batch-tensors.ts";

const f32 = (dims: number[], values: number[]): TensorValue => ({ dtype: "float32", dims, data: Float32Array.from(values) });
const vals = (t: TensorValue) => [...(t.data as Float32Array)];

describe("stack", () => {
  test("fixed shapes concatenate along axis 0 into a fresh buffer", () => {
    const a = f32([2, 2], [1, 2, 3, 4]);
    const b = f32([1, 2], [5, 6]);
    const s = stack("x", [a, b]);
    expect(s.dims).toEqual([3, 2]);
    expect(vals(s)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(s.data.buffer).not.toBe(a.data.buffer);
    expect(s.data.byteOffset).toBe(0);
    expect(s.data.buffer.byteLength).toBe(6 * 4); // exactly sized: safe to transfer whole
  });

  test("a variable last-but-one axis is padded per row block with the pad value", () => {
    // a: [1, 1, 2], b: [2, 3, 2] -> [3, 3, 2]; pad -1
    const a = f32([1, 1, 2], [1, 2]);
    const b = f32([2, 3, 2], [10, 11, 12, 13, 14, 15, 20, 21, 22, 23, 24, 25]);
    const s = stack("x", [a, b], { variableAxis: 1, padValue: -1 });
    expect(s.dims).toEqual([3, 3, 2]);
    expect(vals(s)).toEqual([1, 2, -1, -1, -1, -1, 10, 11, 12, 13, 14, 15, 20, 21, 22, 23, 24, 25]);
  });

  test("a variable last axis with int64 data and a bigint pad", () => {
    const a: TensorValue = { dtype: "int64", dims: [1, 2], data: BigInt64Array.of(7n, 8n) };
    const b: TensorValue = { dtype: "int64", dims: [1, 4], data: BigInt64Array.of(1n, 2n, 3n, 4n) };
    const s = stack("ids", [a, b], { variableAxis: 1, padValue: 49407n });
    expect(s.dims).toEqual([2, 4]);
    expect([...(s.data as BigInt64Array)]).toEqual([7n, 8n, 49407n, 49407n, 1n, 2n, 3n, 4n]);
  });

  test("a variable middle axis with dims between batch and it", () => {
    // [rows, heads=2, seq, d=1]: a seq 1, b seq 2
    const a = f32([1, 2, 1, 1], [1, 2]);
    const b = f32([1, 2, 2, 1], [3, 4, 5, 6]);
    const s = stack("kv", [a, b], { variableAxis: 2 });
    expect(s.dims).toEqual([2, 2, 2, 1]);
    expect(vals(s)).toEqual([1, 0, 2, 0, 3, 4, 5, 6]);
  });

  test("padTo pads past the longest item", () => {
    const s = stack("x", [f32([1, 1], [9])], { variableAxis: 1, padValue: 0 }, 3);
    expect(s.dims).toEqual([1, 3]);
    expect(vals(s)).toEqual([9, 0, 0]);
  });

  test("mismatches are one clear error naming the input", () => {
    expect(() => stack("x", [f32([1, 2], [1, 2]), f32([1, 3], [1, 2, 3])])).toThrow(
      "input 'x': dims [1,3] and [1,2] differ on axis 1 (declare it variable in the model spec to pad it)",
    );
    expect(() => stack("x", [f32([1, 2], [1, 2]), { dtype: "int32", dims: [1, 2], data: Int32Array.of(1, 2) }])).toThrow(
      "input 'x': dtype int32 differs from float32 in one batch",
    );
    expect(() => stack("x", [f32([1, 2], [1, 2])], { variableAxis: 2 })).toThrow("input 'x': variableAxis 2 out of range for rank 2");
    expect(() => rowsOf(f32([2, 2], [1, 2, 3]), "model 'm' input 'x'")).toThrow("model 'm' input 'x': data has 3 elements but dims [2,2] need 4");
  });
});

describe("split", () => {
  test("fixed outputs split into zero-copy row views", () => {
    const y = f32([3, 2], [1, 2, 3, 4, 5, 6]);
    const [a, b] = split("y", y, [2, 1]);
    expect(a!.dims).toEqual([2, 2]);
    expect(vals(a!)).toEqual([1, 2, 3, 4]);
    expect(vals(b!)).toEqual([5, 6]);
    expect(b!.data.buffer).toBe(y.data.buffer);
  });

  test("variable outputs are cut back to each item's length", () => {
    // padded [2, 3, 2]; item 0 length 1, item 1 length 3
    const y = f32([2, 3, 2], [1, 2, 0, 0, 0, 0, 3, 4, 5, 6, 7, 8]);
    const [a, b] = split("h", y, [1, 1], { variableAxis: 1 }, [1, 3]);
    expect(a!.dims).toEqual([1, 1, 2]);
    expect(vals(a!)).toEqual([1, 2]);
    expect(b!.dims).toEqual([1, 3, 2]);
    expect(vals(b!)).toEqual([3, 4, 5, 6, 7, 8]);
  });

  test("stack then split is the identity for every item", () => {
    const items = [f32([2, 1, 3], [1, 2, 3, 4, 5, 6]), f32([1, 4, 3], Array.from({ length: 12 }, (_, i) => 10 + i)), f32([1, 2, 3], [7, 7, 7, 8, 8, 8])];
    const s = stack("x", items, { variableAxis: 1, padValue: 99 });
    const back = split("x", s, [2, 1, 1], { variableAxis: 1 }, [1, 4, 2]);
    back.forEach((t, i) => {
      expect(t.dims).toEqual(items[i]!.dims);
      expect(vals(t)).toEqual(vals(items[i]!));
    });
    expect(vals(concatRows("x", [sliceRows(items[0]!, 0, 1), sliceRows(items[0]!, 1, 2)]))).toEqual(vals(items[0]!));
  });

  test("a batch axis that does not match the rows sent is an error", () => {
    expect(() => split("y", f32([2, 1], [1, 2]), [1, 2])).toThrow("output 'y': batch axis is 2 but the batch had 3 rows");
  });
});
