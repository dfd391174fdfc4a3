import { expect, test } from "bun:test";
import { dpoLossReference, logSigmoid } from "../../src/train/losses-reference.ts";

test("logSigmoid reference is stable at the extremes", () => {
  expect(logSigmoid(0)).toBeCloseTo(-Math.LN2, 15);
  expect(logSigmoid(-1000)).toBe(-1000);
  expect(logSigmoid(1000)).toBeCloseTo(0, 12);
  expect(logSigmoid(1.5)).toBeCloseTo(-0.20141328, 8);
});

test("metrics count a tie as not accurate; per-term values are unweighted", () => {
  // One pair with equal rewards: β(πc − refc) = β(πr − refr) = 0.2·1 → margin 0, accuracy 0.
  const r = dpoLossReference(
    { policyChosen: [-4], policyRejected: [-5], refChosen: [-5], refRejected: [-6], chosenTokens: [2], rejectedTokens: [2] },
    { beta: 0.2, terms: [{ type: "sigmoid", weight: 3 }, { type: "sft", weight: 0.5 }] },
  );
  expect(r.metrics["rewards/margins"]).toBeCloseTo(0, 12);
  expect(r.metrics["rewards/accuracies"]).toBe(0);
  // z = 0 → sigmoid term log 2; sft = 4/2 = 2; loss = 3·ln 2 + 0.5·2
  expect(r.terms.sigmoid).toBeCloseTo(Math.LN2, 12);
  expect(r.terms.sft).toBe(2);
  expect(r.loss).toBeCloseTo(3 * Math.LN2 + 1, 12);
});

test("input errors", () => {
  expect(() => dpoLossReference({ policyChosen: [1, 2], policyRejected: [1], refChosen: [1, 2], refRejected: [1, 2] }, { beta: 0.1 })).toThrow(
    "policyRejected has length 1, expected 2",
  );
  expect(() => dpoLossReference({ policyChosen: [], policyRejected: [], refChosen: [], refRejected: [] }, { beta: 0.1 })).toThrow("empty batch");
  expect(() => dpoLossReference({ policyChosen: [1], policyRejected: [1], refChosen: [1], refRejected: [1] }, { beta: 0.1, terms: [{ type: "sft" }] })).toThrow(
    "needs chosenTokens and rejectedTokens",
  );
});
