import { expect, test } from "bun:test";
import { lrSchedule } from "../../src/train/lr-schedule.ts";

test("constant, with and without warmup", () => {
  const c = lrSchedule({ kind: "constant", lr: 0.5 });
  expect([0, 1, 1000].map(c)).toEqual([0.5, 0.5, 0.5]);
  const w = lrSchedule({ kind: "constant", lr: 0.4, warmupSteps: 4 });
  // (s+1)/4 · 0.4 for s < 4
  expect([0, 1, 2, 3, 4, 9].map(w)).toEqual([0.1, 0.2, 0.30000000000000004, 0.4, 0.4, 0.4]);
});

test("warmup then cosine to a floor", () => {
  // lr 1, floor 0.1, W = 2, T = 6: decay steps 2..5 with p = (s−1)/4 → 0.25, 0.5, 0.75, 1
  const f = lrSchedule({ kind: "cosine", lr: 1, minLr: 0.1, warmupSteps: 2, totalSteps: 6 });
  expect(f(0)).toBeCloseTo(0.5, 12);
  expect(f(1)).toBeCloseTo(1, 12);
  // 0.1 + 0.9·½(1 + cos(π/4)) = 0.1 + 0.45·1.70710678 = 0.868198052
  expect(f(2)).toBeCloseTo(0.868198052, 8);
  // p = 0.5 → 0.1 + 0.45 = 0.55
  expect(f(3)).toBeCloseTo(0.55, 12);
  // p = 0.75 → 0.1 + 0.45·(1 − 0.70710678) = 0.231801948
  expect(f(4)).toBeCloseTo(0.231801948, 8);
  expect(f(5)).toBeCloseTo(0.1, 12);
  expect(f(50)).toBeCloseTo(0.1, 12);
});

test("warmup then linear decay (default floor 0)", () => {
  // lr 0.3, W = 1, T = 4: step 0 = 0.3 (1/1), then p = s/3 → 0.2, 0.1, 0
  const f = lrSchedule({ kind: "linear", lr: 0.3, warmupSteps: 1, totalSteps: 4 });
  expect([0, 1, 2, 3, 4].map((s) => Number(f(s).toFixed(12)))).toEqual([0.3, 0.2, 0.1, 0, 0]);
});

test("configuration errors are raised at construction", () => {
  expect(() => lrSchedule({ kind: "cosine", lr: 1, warmupSteps: 5, totalSteps: 5 })).toThrow("totalSteps must be an integer > warmupSteps (5)");
  expect(() => lrSchedule({ kind: "cosine", lr: 1, totalSteps: 5, minLr: 2 })).toThrow("minLr must be in [0, lr]");
  expect(() => lrSchedule({ kind: "constant", lr: -1 })).toThrow("lr must be a finite number >= 0");
  expect(() => lrSchedule({ kind: "constant", lr: 1, totalSteps: 3 } as never)).toThrow("unknown key 'totalSteps'");
  expect(() => lrSchedule({ kind: "step" } as never)).toThrow("unknown kind \"step\"");
  expect(() => lrSchedule({ kind: "constant", lr: 1 })(-1)).toThrow("step must be an integer >= 0");
});
