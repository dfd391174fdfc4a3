import { describe, expect, test } from "bun:test";
import { KvCache } from "../../src/models/kv-cache.ts";
import type { TensorValue } from "../../src/graph/index.ts";

// B=2, H=2, T=3, Dh=2, 1 layer; value encodes (b, h, t, d) so copies can be checked exactly.
const code = (b: number, h: number, t: number, d: number, v = 0) => v * 10000 + b * 1000 + h * 100 + t * 10 + d;
function outputs(B: number, T: number): Record<string, TensorValue> {
  const mk = (v: number) => {
    const a = new Float32Array(B * 2 * T * 2);
    for (let b = 0; b < B; b++) for (let h = 0; h < 2; h++) for (let t = 0; t < T; t++) for (let d = 0; d < 2; d++) a[((b * 2 + h) * T + t) * 2 + d] = code(b, h, t, d, v);
    return { dtype: "float32" as const, dims: [B, 2, T, 2], data: a };
  };
  return { "present.0.key": mk(0), "present.0.value": mk(1) };
}
const at = (c: KvCache, which: "keys" | "values", b: number, h: number, t: number, d: number) => c[which][0]![((b * c.heads + h) * c.capacity + t) * c.headDim + d];

describe("KvCache", () => {
  test("select, repeat, withCapacity and concat move whole rows", () => {
    const c = KvCache.fromOutputs(outputs(2, 3), 1, [3, 2]);
    expect(c.feeds()["past_key_values.0.key"]!.dims).toEqual([2, 2, 3, 2]);
    const s = c.select([1]);
    expect(s.lengths).toEqual([2]);
    expect(at(s, "values", 0, 1, 2, 1)).toBe(code(1, 1, 2, 1, 1));
    const r = c.repeat(2);
    expect(r.lengths).toEqual([3, 3, 2, 2]);
    expect(at(r, "keys", 3, 0, 1, 0)).toBe(code(1, 0, 1, 0));
    const g = c.withCapacity(5);
    expect(g.capacity).toBe(5);
    expect(at(g, "keys", 1, 1, 2, 1)).toBe(code(1, 1, 2, 1));
    expect(at(g, "keys", 1, 1, 4, 1)).toBe(0);
    expect(() => c.withCapacity(2)).toThrow(/below the longest/);
    const j = KvCache.concat([s, g]);
    expect(j.batch).toBe(3);
    expect(j.capacity).toBe(5);
    expect(j.lengths).toEqual([2, 3, 2]);
    expect(at(j, "keys", 0, 0, 2, 0)).toBe(code(1, 0, 2, 0));
    expect(at(j, "values", 2, 1, 0, 1)).toBe(code(1, 1, 0, 1, 1));
    expect(j.bytes).toBe(2 * 3 * 2 * 5 * 2 * 4);
    expect(() => c.select([2])).toThrow(/row 2 outside/);
  });

  test("append writes each row's new K/V into slot lengths[b] in place and advances the lengths", () => {
    const c = KvCache.fromOutputs(outputs(2, 3), 1, [1, 2]);
    const nk = new Float32Array(2 * 2 * 2).map((_, i) => -1 - i), nv = nk.map((x) => x - 100);
    const out = { "new.0.key": { dtype: "float32" as const, dims: [2, 2, 1, 2], data: nk }, "new.0.value": { dtype: "float32" as const, dims: [2, 2, 1, 2], data: nv } };
    expect(c.append(out)).toBe(c);
    expect(c.lengths).toEqual([2, 3]);
    // row 0 -> slot 1, row 1 -> slot 2; (b, h, d) of the new token is index (b*2+h)*2+d
    expect(at(c, "keys", 0, 1, 1, 0)).toBe(-1 - (0 * 2 + 1) * 2);
    expect(at(c, "values", 1, 0, 2, 1)).toBe(-1 - ((1 * 2 + 0) * 2 + 1) - 100);
    expect(at(c, "keys", 0, 1, 2, 0)).toBe(code(0, 1, 2, 0)); // other slots untouched
    expect(at(c, "keys", 1, 1, 1, 1)).toBe(code(1, 1, 1, 1));
    expect(() => c.append(out)).toThrow(/a row is full \(length 3, capacity 3\)/);
  });
});
