import { describe, expect, test } from "bun:test";
import { buildScored } from "../../src/arrow/build.ts";
import type { PairRow, ScoredRow } from "../../src/arrow/schemas.ts";
import { rowAt } from "../../src/arrow/rows.ts";
import { groupPairs, lengthRatio, pairCandidates as pairs } from "../../operators/pairs.ts";
import { creditsBack, runStages, stage } from "./fixtures.ts";

let n = 0;
const row = (image_id: string, text: string, clip_score: number, prompt = "Describe."): ScoredRow => ({
  id: `c${n++}`, image_id, prompt, text, logp: -1, n_tokens: 1, clip_score, sentence_scores: [],
});
const out = (bs: { numRows: number }[]) => (bs as Parameters<typeof rowAt>[0][]).flatMap((b) => Array.from({ length: b.numRows }, (_, i) => rowAt(b, i) as unknown as PairRow));
const brief = (ps: PairRow[]) => ps.map((p) => [p.image_id, p.chosen, p.rejected, Math.round(p.margin * 1000) / 1000]);

describe("pairs", () => {
  test("length ratio in words; a zero-word text counts as one", () => {
    expect(lengthRatio(6, 4)).toBe(1.5);
    expect(lengthRatio(0, 3)).toBe(3);
  });

  test("best-vs-worst: best with the lowest-scored valid partner, each candidate once; margin exactly minMargin is kept", async () => {
    const b = buildScored([
      row("i1", "one two three", 30),
      row("i1", "four five six", 25),
      row("i1", "seven eight nine", 28),
      row("i1", "ten eleven twelve", 26),
      row("i2", "a b", 22), // i2: margin 1.5 < 2 → no pair
      row("i2", "c d", 20.5),
    ]);
    const op = pairs({ minMargin: 2, maxPairsPerImage: 5 });
    const r = await runStages([b], [op]);
    // sorted i1: 30, 28, 26, 25 → (30 vs 25, margin 5), then (28 vs 26, margin 2: kept at exactly the margin)
    expect(brief(out(r.batches))).toEqual([
      ["i1", "one two three", "four five six", 5],
      ["i1", "seven eight nine", "ten eleven twelve", 2],
    ]);
    expect(op.counts).toEqual({ groups: 2, pairs: 2, singleCandidate: 0, margin: 1, lengthRatio: 0, capped: 0 });
    const p = out(r.batches)[0]!;
    expect([p.prompt, p.chosen_score, p.rejected_score]).toEqual(["Describe.", 30, 25]);
    expect(creditsBack(r.ctx)).toBe(true);
  });

  test("length ratio skips an over-long rejected for the next valid one; a group where all fail counts as lengthRatio", async () => {
    const b = buildScored([
      row("i1", "a b c d", 30),
      row("i1", "a b c d e f g h i j", 10), // worst, but 10/4 words > 1.5
      row("i1", "a b c d e", 20), // 5/4 = 1.25 ok
      row("i2", "x", 30),
      row("i2", "x y z", 10), // ratio 3 > 1.5
    ]);
    const op = pairs({ minMargin: 2, maxLengthRatio: 1.5, maxPairsPerImage: 2 });
    const r = await runStages([b], [op]);
    expect(brief(out(r.batches))).toEqual([["i1", "a b c d", "a b c d e", 10]]);
    expect(op.counts.lengthRatio).toBe(1);
  });

  test("all-over-margin: every valid combination, largest margin first, capped per image; caps count", async () => {
    const rows = [row("i1", "w1", 10), row("i1", "w2", 7), row("i1", "w3", 4), row("i1", "w4", 3.5)];
    const all = groupPairs(rows.map((r, k) => ({ row: k, score: r.clip_score, words: 1 })), "all-over-margin", 2, 1.5);
    // brute force reference: all i<j (by score) with diff >= 2, sorted by diff desc
    const ref: [number, number, number][] = [];
    for (const a of rows) for (const c of rows) if (a.clip_score - c.clip_score >= 2) ref.push([a.clip_score, c.clip_score, a.clip_score - c.clip_score]);
    ref.sort((x, y) => y[2] - x[2]);
    expect(all.pairs.map(([c, r]) => [c.score, r.score, c.score - r.score])).toEqual(ref);
    const op = pairs({ strategy: "all-over-margin", maxPairsPerImage: 3 });
    const r = await runStages([buildScored(rows)], [op]);
    expect(brief(out(r.batches))).toEqual([["i1", "w1", "w4", 6.5], ["i1", "w1", "w3", 6], ["i1", "w2", "w4", 3.5]]);
    expect(op.counts).toMatchObject({ pairs: 3, capped: 2 });
  });

  test("maxPairsPerImage is shared round-robin across the image's prompt groups", async () => {
    const b = buildScored([
      row("i1", "p1 best", 30, "P1"), row("i1", "p1 mid", 20, "P1"), row("i1", "p1 low", 10, "P1"), row("i1", "p1 lowest", 5, "P1"),
      row("i1", "q1 best", 40, "P2"), row("i1", "q1 low", 10, "P2"),
    ]);
    const r = await runStages([b], [pairs({ maxPairsPerImage: 2 })]);
    expect(out(r.batches).map((p) => [p.prompt, p.chosen, p.rejected])).toEqual([
      ["P1", "p1 best", "p1 lowest"],
      ["P2", "q1 best", "q1 low"],
    ]);
  });

  test("counts: singletons, empty and single-row batches; rows in reconcile as filtered/expanded", async () => {
    const op = pairs();
    const r = await runStages([buildScored([row("s", "only one", 50)]), buildScored([])], [op]);
    expect(r.rows).toBe(0);
    expect(op.counts).toMatchObject({ groups: 1, singleCandidate: 1, pairs: 0 });
    const st = stage(r.ctx, "pairs");
    expect([st.rowsIn, st.rowsOut, st.filtered]).toEqual([1, 0, 1]);
    expect(creditsBack(r.ctx)).toBe(true);
  });

  test("a duplicate image id in a later batch is dead-lettered as `duplicate id` and the run goes on; counts reconcile", async () => {
    const b1 = buildScored([row("i9", "a", 30), row("i9", "b", 10)]);
    const b2 = buildScored([row("i9", "c", 20), row("i9", "d", 5), row("i3", "x", 40), row("i3", "y", 10)]);
    const op = pairs();
    const r = await runStages([b1, b2], [op], { onError: "skip" });
    expect(brief(out(r.batches))).toEqual([
      ["i9", "a", "b", 20],
      ["i3", "x", "y", 30],
    ]);
    const dead = r.ctx.deadLetter.rows();
    expect(dead.map((d) => [d.stage, d.code])).toEqual([
      ["pairs", "duplicate id"],
      ["pairs", "duplicate id"],
    ]);
    expect(r.ctx.deadLetter.summary()).toEqual([{ stage: "pairs", code: "duplicate id", count: 2, examples: [dead[0]!.id, dead[1]!.id] }]);
    const s = stage(r.ctx, "pairs");
    expect([s.rowsIn, s.deadLettered, s.rowsOut, s.filtered, s.expanded]).toEqual([6, 2, 2, 2, 0]);
    expect(op.counts.groups).toBe(2);
    expect(creditsBack(r.ctx)).toBe(true);
    // Under onError: fail the duplicate stops the run with one line naming stage, row and code.
    const e = await runStages([b1, b2], [pairs()], { onError: "fail" }).then(
      () => null,
      (x: unknown) => x as Error & { code: string },
    );
    expect(e?.code).toBe("duplicate id");
    expect(e?.message).toMatch(/^stage "pairs", row .+: image_id "i9" with this prompt was already grouped in an earlier batch$/);
  });

  test("cold: subscribing twice (a second run, retry) starts from fresh state and counts per run", async () => {
    const op = pairs();
    const b = buildScored([row("i1", "a", 30), row("i1", "b", 10)]);
    const first = await runStages([b], [op]);
    expect(out(first.batches).length).toBe(1);
    const second = await runStages([b], [op]); // same ids again: a fresh run, not a duplicate
    expect(out(second.batches).length).toBe(1);
    expect(second.ctx.deadLetter.count).toBe(0);
    expect(op.counts).toMatchObject({ groups: 1, pairs: 1 });
  });

  test("never reads ground truth: only clip_score and text decide (meta is not an input column)", async () => {
    const b = buildScored([row("i1", "a red circle", 30), row("i1", "a blue star", 10)]);
    expect(b.schema.fields.map((f) => f.name)).not.toContain("meta");
    const r = await runStages([b], [pairs()]);
    expect(brief(out(r.batches))).toEqual([["i1", "a red circle", "a blue star", 20]]);
  });

  test("bad options are one clear error", () => {
    expect(() => pairs({ minMargin: -1 })).toThrow('stage "pairs": option minMargin: Too small: expected number to be >=0');
    expect(() => pairs({ maxLengthRatio: 0.5 })).toThrow('stage "pairs": option maxLengthRatio: Too small');
    expect(() => pairs({ maxPairsPerImage: 0 })).toThrow('stage "pairs": option maxPairsPerImage: Too small');
    expect(() => pairs({ strategy: "oracle" as never })).toThrow('stage "pairs": option strategy: ');
  });
});
