import { describe, expect, test } from "bun:test";
import { Rng } from "../../src/util/rng.ts";

describe("Rng", () => {
  test("same seed, same stream; different seed, different stream", () => {
    const a = new Rng(7), b = new Rng(7), c = new Rng(8);
    const xa = Array.from({ length: 5 }, () => a.nextU32());
    const xb = Array.from({ length: 5 }, () => b.nextU32());
    const xc = Array.from({ length: 5 }, () => c.nextU32());
    expect(xa).toEqual(xb);
    expect(xa).not.toEqual(xc);
  });

  test("state round trip resumes the exact stream, including a pending normal", () => {
    const a = new Rng(3);
    a.normal(); // leaves a spare pending
    const b = Rng.fromState(a.state());
    expect(Array.from({ length: 6 }, () => b.normal())).toEqual(Array.from({ length: 6 }, () => a.normal()));
  });

  test("uniform in [0,1) with mean ~0.5; normal has mean ~0 and variance ~1", () => {
    const r = new Rng(11);
    let s = 0, s2 = 0, n = 20000, lo = 1, hi = 0;
    for (let i = 0; i < n; i++) { const u = r.uniform(); lo = Math.min(lo, u); hi = Math.max(hi, u); s += u; }
    expect(lo).toBeGreaterThanOrEqual(0);
    expect(hi).toBeLessThan(1);
    expect(Math.abs(s / n - 0.5)).toBeLessThan(0.01);
    s = 0;
    for (let i = 0; i < n; i++) { const z = r.normal(); s += z; s2 += z * z; }
    expect(Math.abs(s / n)).toBeLessThan(0.03);
    expect(Math.abs(s2 / n - 1)).toBeLessThan(0.05);
  });

  test("int covers its range and shuffle is a permutation", () => {
    const r = new Rng(5);
    const seen = new Set<number>();
    for (let i = 0; i < 500; i++) seen.add(r.int(7));
    expect([...seen].sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    const xs = r.shuffle([1, 2, 3, 4, 5, 6, 7, 8]);
    expect([...xs].sort()).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });
});
