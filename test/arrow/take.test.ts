import { describe, expect, test } from "bun:test";
import { Field, Int32, Schema, Bool } from "apache-arrow";
import { buildScored, buildPixels, buildImages, concatBatches, takeRows, rowAt, batchFromRows, gatherRows } from "../../src/arrow/index.ts";
import { Rng } from "../../src/util/rng.ts";

const rng = new Rng(7);
const scoredRows = Array.from({ length: 40 }, (_, i) => ({
  id: `c${i}`, image_id: `i${i % 5}`, prompt: `p${i % 3}`, text: "w".repeat(rng.int(6)) + `#${i}`,
  logp: -i / 4, n_tokens: i, clip_score: 20 + i / 8, sentence_scores: Array.from({ length: rng.int(4) }, (_, k) => k + i),
}));

/** Reference: select rows through plain row objects (obviously correct, slow). */
const refTake = <T>(rows: T[], idx: number[]) => idx.map((i) => rows[i]!);

describe("takeRows / concatBatches against a row-object reference", () => {
  test("random selections of a scored batch", () => {
    const b = buildScored(scoredRows);
    for (let trial = 0; trial < 20; trial++) {
      const idx = Array.from({ length: rng.int(40) }, () => rng.int(40));
      const t = takeRows(b, Int32Array.from(idx));
      expect(t.numRows).toBe(idx.length);
      const want = refTake(scoredRows, idx);
      for (let j = 0; j < idx.length; j++) {
        const r = rowAt(t, j);
        expect(r.id).toBe(want[j]!.id);
        expect(r.text).toBe(want[j]!.text);
        expect(r.n_tokens).toBe(want[j]!.n_tokens);
        expect(Array.from(r.sentence_scores as Float32Array)).toEqual(want[j]!.sentence_scores);
        expect(r.clip_score as number).toBeCloseTo(want[j]!.clip_score, 5);
      }
    }
  });

  test("tensor, binary and nullable columns; identity selection is free", () => {
    const rows = Array.from({ length: 6 }, (_, i) => ({
      id: `a${i}`, image: new Uint8Array([i, i + 1]), prompt: "p", reference: i % 2 ? null : `ref${i}`,
      pixels: Float32Array.from({ length: 4 }, (_, k) => i * 10 + k),
    }));
    const b = buildPixels(rows, [1, 2, 2]);
    const t = takeRows(b, [5, 0, 3]);
    expect(rowAt(t, 0).reference).toBeNull();
    expect(rowAt(t, 1).reference).toBe("ref0");
    expect(Array.from(rowAt(t, 0).image as Uint8Array)).toEqual([5, 6]);
    expect(Array.from(rowAt(t, 2).pixels as Float32Array)).toEqual([30, 31, 32, 33]);
    expect(takeRows(b, [0, 1, 2, 3, 4, 5])).toBe(b);
    expect(takeRows(b, []).numRows).toBe(0);
  });

  test("concat keeps order across batches, including slices", () => {
    const b = buildScored(scoredRows);
    const parts = [b.slice(0, 7), b.slice(7, 20), b.slice(20, 40)];
    const c = concatBatches(parts);
    expect(c.numRows).toBe(40);
    for (let i = 0; i < 40; i += 3) expect(rowAt(c, i)).toEqual(rowAt(b, i));
  });

  test("fallback type (Bool) goes through Arrow builders", () => {
    const s = new Schema([new Field("k", new Int32()), new Field("flag", new Bool(), true)]);
    const b = batchFromRows(s, [{ k: 1, flag: true }, { k: 2, flag: null }, { k: 3, flag: false }]);
    const t = takeRows(b, [2, 1]);
    expect([rowAt(t, 0), rowAt(t, 1)]).toEqual([{ k: 3, flag: false }, { k: 2, flag: null }]);
  });

  test("errors: out-of-range index, schema mismatch", () => {
    const b = buildScored(scoredRows.slice(0, 3));
    expect(() => takeRows(b, [3])).toThrow("row index 3 out of range [0, 3)");
    const im = buildImages([{ id: "x", image: new Uint8Array(1), prompt: "p" }]);
    expect(() => gatherRows(b.schema, [{ batch: im }, { batch: b }])).toThrow("gatherRows: batch schema");
  });
});
