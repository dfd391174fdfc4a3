import { expect, test } from "bun:test";
import { resolveDpoLossConfig } from "../../src/train/dpo-loss-config.ts";

test("defaults: one sigmoid term, no smoothing, IPO length-normalised", () => {
  expect(resolveDpoLossConfig({ beta: 0.1 })).toEqual({
    beta: 0.1,
    terms: [{ type: "sigmoid", weight: 1 }],
    labelSmoothing: 0,
    ipoLengthNormalise: true,
    needsTokenCounts: false,
  });
  expect(resolveDpoLossConfig({ beta: 0.1, terms: [{ type: "ipo" }] }).needsTokenCounts).toBe(true);
  expect(resolveDpoLossConfig({ beta: 0.1, terms: [{ type: "ipo" }], ipoLengthNormalise: false }).needsTokenCounts).toBe(false);
  expect(resolveDpoLossConfig({ beta: 0.1, terms: [{ type: "hinge" }, { type: "sft", weight: 0.2 }] }).needsTokenCounts).toBe(true);
});

test("configuration errors are one clear line", () => {
  expect(() => resolveDpoLossConfig({ beta: 0 })).toThrow("beta must be a finite number > 0");
  expect(() => resolveDpoLossConfig({ beta: 0.1, labelSmoothing: 0.5 })).toThrow("labelSmoothing must be in [0, 0.5)");
  expect(() => resolveDpoLossConfig({ beta: 0.1, terms: [] })).toThrow("terms is empty");
  expect(() => resolveDpoLossConfig({ beta: 0.1, terms: [{ type: "kto" as never }] })).toThrow('terms[0].type "kto" is not one of');
  expect(() => resolveDpoLossConfig({ beta: 0.1, terms: [{ type: "ipo" }, { type: "ipo" }] })).toThrow("'ipo' listed twice");
  expect(() => resolveDpoLossConfig({ beta: 0.1, terms: [{ type: "ipo", weight: -1 }] })).toThrow("weight must be a finite number > 0");
  expect(() => resolveDpoLossConfig({ beta: 0.1, terms: [{ type: "ipo", w: 1 } as never] })).toThrow("terms[0] has unknown key 'w'");
  expect(() => resolveDpoLossConfig({ beta: 0.1, gamma: 1 } as never)).toThrow("unknown key 'gamma'");
});
