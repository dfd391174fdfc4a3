import { describe, expect, test } from "bun:test";
import { bootstrapPlan, meanCi, pairedRatioDiffCi, quantileSorted, ratioCi, resampledRatios, tQuantile975 } from "../../src/util/bootstrap.ts";
import { Rng } from "../../src/util/rng.ts";

describe("bootstrap", () => {
  test("quantiles interpolate between order statistics (type 7)", () => {
    expect(quantileSorted([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantileSorted([1, 2, 3, 4], 0)).toBe(1);
    expect(quantileSorted([1, 2, 3, 4], 1)).toBe(4);
    expect(quantileSorted([10, 20, 30, 40, 50], 0.25)).toBe(20);
    expect(quantileSorted([0, 10], 0.025)).toBeCloseTo(0.25, 12);
    expect(() => quantileSorted([], 0.5)).toThrow("empty");
  });

  test("every resample draws n units; the plan is a pure function of its seed", () => {
    const a = bootstrapPlan(7, { resamples: 50, seed: 3 });
    const b = bootstrapPlan(7, { resamples: 50, seed: 3 });
    const c = bootstrapPlan(7, { resamples: 50, seed: 4 });
    expect(a.weights.length).toBe(350);
    for (let r = 0; r < 50; r++) expect(a.weights.subarray(r * 7, r * 7 + 7).reduce((s, w) => s + w, 0)).toBe(7);
    expect([...a.weights]).toEqual([...b.weights]);
    expect([...a.weights]).not.toEqual([...c.weights]);
  });

  test("two scenes: the exact bootstrap puts 1/4 on each scene alone, so the 95% CI is [ratio of one, ratio of the other]", () => {
    // Scene A: 1 of 4 mentions hallucinated; scene B: 3 of 4. Resamples {A,A} (p 1/4), {A,B}/{B,A} (1/2), {B,B} (1/4)
    // give 0.25, 0.5, 0.75; the 2.5% and 97.5% percentiles fall inside the 1/4 masses at the ends.
    const plan = bootstrapPlan(2, { resamples: 4000, seed: 1 });
    const ci = ratioCi(plan, [1, 3], [4, 4]);
    expect(ci.value).toBe(0.5);
    expect(ci.lo).toBe(0.25);
    expect(ci.hi).toBe(0.75);
    const dist = resampledRatios(plan, [1, 3], [4, 4]);
    const share = (v: number): number => dist.filter((x) => x === v).length / dist.length;
    expect(share(0.25)).toBeCloseTo(0.25, 1);
    expect(share(0.5)).toBeCloseTo(0.5, 1);
    expect(share(0.75)).toBeCloseTo(0.25, 1);
  });

  test("ratio of sums, not mean of ratios: a scene with many mentions weighs more", () => {
    const plan = bootstrapPlan(2, { resamples: 10, seed: 0 });
    // 1/1 and 0/9: ratio of sums 0.1, mean of ratios would be 0.5.
    expect(ratioCi(plan, [1, 0], [1, 9]).value).toBeCloseTo(0.1, 12);
  });

  test("a large sample agrees with the normal approximation of a proportion", () => {
    const rng = new Rng(11);
    const n = 4000, p = 0.2;
    const num = Array.from({ length: n }, () => (rng.uniform() < p ? 1 : 0));
    const den = new Array<number>(n).fill(1);
    const ci = ratioCi(bootstrapPlan(n, { resamples: 2000, seed: 5 }), num, den);
    const phat = ci.value;
    const half = 1.96 * Math.sqrt((phat * (1 - phat)) / n);
    expect(Math.abs(ci.lo - (phat - half))).toBeLessThan(0.15 * half);
    expect(Math.abs(ci.hi - (phat + half))).toBeLessThan(0.15 * half);
  }, 30_000);

  test("paired difference: identical rows give exactly [0, 0]; a constant per-scene shift gives a zero-width CI at the shift", () => {
    const rng = new Rng(2);
    const n = 300;
    const num = Array.from({ length: n }, () => rng.int(3));
    const den = Array.from({ length: n }, () => 3);
    const plan = bootstrapPlan(n, { resamples: 1000, seed: 9 });
    expect(pairedRatioDiffCi(plan, num, den, num, den)).toEqual({ value: 0, lo: 0, hi: 0 });
    // B hallucinates one more of every 3 mentions in every scene: the difference is 1/3 in every resample.
    const numB = num.map((x) => x + 1);
    const d = pairedRatioDiffCi(plan, numB, den, num, den);
    expect(d.value).toBeCloseTo(1 / 3, 12);
    expect(d.lo).toBeCloseTo(1 / 3, 12);
    expect(d.hi).toBeCloseTo(1 / 3, 12);
    // Unpaired, the two rows' CIs overlap widely although the paired difference is certain.
    const a = ratioCi(plan, num, den);
    expect(a.hi - a.lo).toBeGreaterThan(0.05);
  });

  test("paired CI is narrower than the unpaired spread when rows are correlated", () => {
    const rng = new Rng(4);
    const n = 500;
    const base = Array.from({ length: n }, () => rng.int(4));
    const numA = base.map((x) => x + (rng.uniform() < 0.1 ? 1 : 0));
    const den = new Array<number>(n).fill(4);
    const plan = bootstrapPlan(n, { resamples: 1000, seed: 1 });
    const d = pairedRatioDiffCi(plan, numA, den, base, den);
    const a = ratioCi(plan, numA, den), b = ratioCi(plan, base, den);
    expect(d.lo).toBeGreaterThan(0);
    expect(d.hi - d.lo).toBeLessThan((a.hi - a.lo + b.hi - b.lo) / 4);
  });

  test("bad input fails with a one-line message", () => {
    expect(() => bootstrapPlan(0)).toThrow("at least one unit");
    expect(() => ratioCi(bootstrapPlan(3, { resamples: 5 }), [1, 2], [1, 2])).toThrow("2 values for a plan over 3 units");
    expect(() => bootstrapPlan(3, { level: 1 })).toThrow("level");
  });

  test("mean over seeds with a t interval", () => {
    const c = meanCi([1, 2, 3]);
    expect(c.value).toBe(2);
    expect(c.sd).toBe(1);
    expect(c.lo).toBeCloseTo(2 - 4.303 / Math.sqrt(3), 10);
    expect(c.hi).toBeCloseTo(2 + 4.303 / Math.sqrt(3), 10);
    expect(meanCi([0.5])).toEqual({ value: 0.5, lo: 0.5, hi: 0.5, sd: 0, n: 1 });
    expect(tQuantile975(1)).toBe(12.706);
  });
});
