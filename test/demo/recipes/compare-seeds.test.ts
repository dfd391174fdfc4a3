import { describe, expect, test } from "bun:test";
import { floors, seedMarkdown, seedSummary } from "../../../demo/recipes/compare-seeds.ts";
import type { DecodingResult, EvalReport, EvalRow } from "../../../src/pipeline/report.ts";

const KEYS = ["chairI", "chairS", "cover", "addition", "misread", "count", "other", "attribute", "relation"];
const dec = (name: string, v: Record<string, number>, vs: number | null): DecodingResult => ({
  decoding: name, answers: 10, counts: {},
  rates: Object.fromEntries(KEYS.map((k) => [k, { value: v[k] ?? 0.1, lo: 0, hi: 1 }])),
  vsStart: vs === null ? null : Object.fromEntries(KEYS.map((k) => [k, { value: vs, lo: vs - 0.01, hi: vs + 0.01 }])),
  vsRandom: vs === null ? null : Object.fromEntries(KEYS.map((k) => [k, { value: -0.02, lo: -0.03, hi: -0.01 }])),
});
const row = (name: string, greedy: Record<string, number>, sampled: Record<string, number>, vs: number | null): EvalRow => ({
  name, model: "m", pairs: null, pairAudit: null, answers: 10, chairI: 0, chairS: 0, cover: 0, attributeHallucination: 0, relationHallucination: 0, counts: {},
  decodings: [dec("greedy", greedy, vs), dec("sampled", sampled, vs)],
});
const report = (clipSampled: number): EvalReport => ({
  split: "heldout", count: 10, seed: 0, prompt: "p", metrics: [], examples: [],
  decodings: [{ name: "greedy", temperature: 0, topP: 1, samples: 1 }, { name: "sampled", temperature: 1, topP: 0.95, samples: 4 }],
  rows: [
    row("SFT policy", { chairI: 0.08, cover: 0.83, addition: 0.01 }, { chairI: 0.2, cover: 0.82, addition: 0.06 }, null),
    row("CLIP-DPO", { chairI: 0.05, cover: 0.82, addition: 0.005 }, { chairI: clipSampled, cover: 0.81, addition: 0.02 }, -0.05),
    row("DPO on oracle pairs", { chairI: 0.04, cover: 0.83 }, { chairI: 0.1, cover: 0.82 }, -0.1),
  ],
});

describe("compare over seeds", () => {
  test("means and t intervals over seeds; floors from the means", () => {
    const s = seedSummary([report(0.1), report(0.12), report(0.14)]);
    const c = s.rates.sampled!["CLIP-DPO"]!.chairI!;
    expect(c.perSeed).toEqual([0.1, 0.12, 0.14]);
    expect(c.mean.value).toBeCloseTo(0.12, 12);
    expect(c.mean.hi - c.mean.value).toBeCloseTo((4.303 * 0.02) / Math.sqrt(3), 10);
    expect(s.vsStart.sampled!["CLIP-DPO"]!.chairI!.length).toBe(3);
    const f = floors(s).join("\n");
    // Sampled CHAIR_i 0.20 → 0.12: −40.0% relative (met); additions 0.06 → 0.02: −66.7% (met); greedy 0.08 → 0.05: −37.5% (met).
    expect(f).toContain("sampled CHAIR_i change: -40.0% relative (floor ≤ −40%) — met");
    expect(f).toContain("sampled co-occurrence additions change: -66.7% relative");
    expect(f).toContain("greedy Cover change: -1.0 points (floor within 3 points) — met");
    // Oracle gain share: (0.20 − 0.12) / (0.20 − 0.10) = 80%.
    expect(f).toContain("share of the oracle-pair gain (sampled CHAIR_i): 80.0% (floor ≥ 70%) — met");
    expect(seedMarkdown(s)).toContain("| CLIP-DPO |");
  });

  test("reports with different rows are refused with a clear message", () => {
    const other = report(0.1);
    other.rows = other.rows.slice(0, 2);
    expect(() => seedSummary([report(0.1), other])).toThrow("report 2 has rows SFT policy, CLIP-DPO");
  });
});
