import { describe, expect, test } from "bun:test";
import { argmax, sampleRng, sampleToken, samplingDistribution, tokenLogProb } from "../../src/models/sampling.ts";

const logits = [Math.log(0.5), Math.log(0.3), Math.log(0.2)];
const asMap = (d: { token: number; p: number }[]) => Object.fromEntries(d.map((x) => [x.token, +x.p.toFixed(6)]));

describe("sampling", () => {
  test("distribution after temperature / top-k / top-p, hand-computed", () => {
    expect(asMap(samplingDistribution(logits))).toEqual({ 0: 0.5, 1: 0.3, 2: 0.2 });
    // top-p 0.6: 0.5 alone is below 0.6, so {0, 1} renormalised: 0.5/0.8, 0.3/0.8
    expect(asMap(samplingDistribution(logits, { topP: 0.6 }))).toEqual({ 0: 0.625, 1: 0.375 });
    expect(asMap(samplingDistribution(logits, { topP: 0.5 }))).toEqual({ 0: 1 });
    expect(asMap(samplingDistribution(logits, { topK: 2 }))).toEqual({ 0: 0.625, 1: 0.375 });
    // temperature 2: p ∝ sqrt(p): sqrt(.5)=.707107, sqrt(.3)=.547723, sqrt(.2)=.447214, sum 1.702044
    const t2 = samplingDistribution(logits, { temperature: 2 });
    [0.415445, 0.321803, 0.262751].forEach((p, i) => expect(t2[i]!.p).toBeCloseTo(p, 5));
    expect(() => samplingDistribution(logits, { topP: 0 })).toThrow(/topP/);
    expect(() => samplingDistribution(logits, { topK: -1 })).toThrow(/topK/);
  });

  test("draw frequencies follow the distribution; top-p never draws outside the nucleus", () => {
    const rng = sampleRng(11, 0);
    const counts = [0, 0, 0];
    const N = 20000;
    for (let i = 0; i < N; i++) counts[sampleToken(logits, {}, rng)]!++;
    expect(Math.abs(counts[0]! / N - 0.5)).toBeLessThan(0.015);
    expect(Math.abs(counts[1]! / N - 0.3)).toBeLessThan(0.015);
    expect(Math.abs(counts[2]! / N - 0.2)).toBeLessThan(0.015);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) seen.add(sampleToken(logits, { topP: 0.6 }, rng));
    expect([...seen].sort()).toEqual([0, 1]);
  });

  test("seeded streams reproduce; greedy needs no randomness and breaks ties low", () => {
    const a = Array.from({ length: 50 }, ((r) => () => sampleToken(logits, { temperature: 1.3 }, r))(sampleRng(5, 2)));
    const b = Array.from({ length: 50 }, ((r) => () => sampleToken(logits, { temperature: 1.3 }, r))(sampleRng(5, 2)));
    const c = Array.from({ length: 50 }, ((r) => () => sampleToken(logits, { temperature: 1.3 }, r))(sampleRng(5, 3)));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    const r = sampleRng(1, 0);
    const before = r.state();
    expect(sampleToken([1, 3, 3, 0], { temperature: 0 }, r)).toBe(1);
    expect(r.state()).toEqual(before);
    expect(argmax([0, 2, 2])).toBe(1);
  });

  test("tokenLogProb is a stable log-softmax", () => {
    expect(tokenLogProb(logits, 1)).toBeCloseTo(Math.log(0.3), 12);
    expect(tokenLogProb([1000, 0], 1)).toBeCloseTo(-1000, 9);
  });
});
