import { describe, expect, test } from "bun:test";
import { tableFromIPC, tableToIPC, Table, vectorFromArray, Utf8, util } from "apache-arrow";
import {
  batchFromColumns,
  buildCandidates,
  buildImages,
  buildMetrics,
  buildPairs,
  buildPixels,
  buildRefPairs,
  buildScored,
  candidatesFromColumns,
  candidatesSchema,
  imagesSchema,
  pixelsFromColumns,
  columnTensor,
  rowAt,
} from "../../src/arrow/index.ts";

const png = (n: number) => new Uint8Array([0x89, 0x50, 0x4e, 0x47, n]);

describe("typed builders", () => {
  test("images from rows: values, nullables and schema", () => {
    const b = buildImages([
      { id: "a", image: png(1), prompt: "Describe.", reference: "a red square" },
      { id: "b", image: png(2), prompt: "What is here?", meta: '{"split":"train"}' },
    ]);
    expect(b.numRows).toBe(2);
    expect(b.schema.fields.map((f) => f.name)).toEqual(imagesSchema.fields.map((f) => f.name));
    expect(b.getChild("id")!.get(1)).toBe("b");
    expect(b.getChild("reference")!.get(0)).toBe("a red square");
    expect(b.getChild("reference")!.get(1)).toBeNull();
    expect(b.getChild("meta")!.get(0)).toBeNull();
    expect(Array.from(b.getChild("image")!.get(1) as Uint8Array)).toEqual([0x89, 0x50, 0x4e, 0x47, 2]);
  });

  test("candidates rows and columns build identical batches", () => {
    const rows = [
      { id: "c0", image_id: "i0", prompt: "p", text: "a cat", logp: -3.5, n_tokens: 3 },
      { id: "c1", image_id: "i0", prompt: "p", text: "a dog on a mat", logp: -7.25, n_tokens: 5 },
    ];
    const a = buildCandidates(rows);
    const logp = new Float32Array([-3.5, -7.25]);
    const b = candidatesFromColumns({
      id: ["c0", "c1"], image_id: ["i0", "i0"], prompt: ["p", "p"], text: ["a cat", "a dog on a mat"],
      logp, n_tokens: new Int32Array([3, 5]),
    });
    expect(rowAt(a, 1)).toEqual(rowAt(b, 1));
    expect(rowAt(a, 0)).toEqual({ id: "c0", image_id: "i0", prompt: "p", text: "a cat", logp: -3.5, n_tokens: 3 });
    // The Float32Array column was used as-is.
    expect(b.getChild("logp")!.data[0]!.values).toBe(logp);
    expect(util.compareSchemas(b.schema, candidatesSchema)).toBe(true);
  });

  test("scored: List<Float32> sentence scores round-trip", () => {
    const b = buildScored([
      { id: "c0", image_id: "i0", prompt: "p", text: "x. y.", logp: -1, n_tokens: 2, clip_score: 25.5, sentence_scores: [24, 27] },
      { id: "c1", image_id: "i0", prompt: "p", text: "z.", logp: -2, n_tokens: 1, clip_score: 20, sentence_scores: new Float32Array([20]) },
    ]);
    expect(Array.from(rowAt(b, 0).sentence_scores as Float32Array)).toEqual([24, 27]);
    expect(Array.from(rowAt(b, 1).sentence_scores as Float32Array)).toEqual([20]);
    expect(b.getChild("clip_score")!.get(0)).toBeCloseTo(25.5, 6);
  });

  test("pixels rows: tensor column laid out row-major with the [C,H,W] shape", () => {
    const p0 = Float32Array.from({ length: 12 }, (_, i) => i);
    const p1 = Float32Array.from({ length: 12 }, (_, i) => 100 + i);
    const b = buildPixels([
      { id: "a", image: png(1), prompt: "p", pixels: p0 },
      { id: "b", image: png(2), prompt: "p", pixels: Array.from(p1) },
    ], [3, 2, 2]);
    const t = columnTensor(b, "pixels");
    expect(t.dims).toEqual([2, 3, 2, 2]);
    expect(Array.from(t.data)).toEqual([...p0, ...p1]);
  });

  test("pairs, refPairs and metrics", () => {
    const pr = { image_id: "i", prompt: "p", chosen: "a", rejected: "b", chosen_score: 30, rejected_score: 27, margin: 3 };
    expect(rowAt(buildPairs([pr]), 0)).toEqual(pr);
    const rp = { ...pr, ref_logp_chosen: -4, ref_logp_rejected: -6 };
    expect(rowAt(buildRefPairs([rp]), 0)).toEqual(rp);
    const m = {
      step: 3, loss: 0.6931, rewards_chosen: 0.1, rewards_rejected: -0.1, rewards_margin: 0.2, rewards_accuracy: 1,
      logps_chosen: -12.5, logps_rejected: -14, grad_norm: 1.25, lr: 5e-6,
    };
    expect(rowAt(buildMetrics([m]), 0)).toEqual(m); // Float64: exact
  });

  test("IPC round-trip keeps schema, shape metadata and values", () => {
    const b = buildPixels([{ id: "a", image: png(1), prompt: "p", pixels: new Float32Array(12).fill(0.5) }], [3, 2, 2]);
    const t = tableFromIPC(tableToIPC(new Table(b), "file"));
    const back = t.batches[0]!;
    expect(columnTensor(back, "pixels").dims).toEqual([1, 3, 2, 2]);
    expect(columnTensor(back, "pixels").data[11]).toBe(0.5);
  });

  test("single-chunk Arrow vectors pass through; type mismatches are one-line errors", () => {
    const ids = vectorFromArray(["x", "y"], new Utf8());
    const b = batchFromColumns(candidatesSchema, {
      id: ids, image_id: ["i", "i"], prompt: ["p", "p"], text: ["t", "u"], logp: [0, 1], n_tokens: [1, 2],
    });
    expect(b.getChild("id")!.data[0]).toBe(ids.data[0]!);
    expect(() => batchFromColumns(candidatesSchema, {
      id: ["x"], image_id: ["i"], prompt: ["p"], text: ["t"], logp: new Float64Array([1]), n_tokens: [1],
    })).toThrow("column 'logp': expected Float32Array for Float32, got Float64Array");
  });
});

describe("builder errors name schema, column and row", () => {
  const ok = { id: "c0", image_id: "i0", prompt: "p", text: "t", logp: -1, n_tokens: 1 };
  test("missing column", () => {
    const { text: _t, ...noText } = ok;
    expect(() => buildCandidates([ok, noText as typeof ok])).toThrow("candidates: row 1 is missing column 'text'");
  });
  test("unknown column", () => {
    expect(() => buildCandidates([{ ...ok, colour: "red" } as typeof ok])).toThrow("candidates: row 0 has unknown column 'colour'");
  });
  test("wrong value type", () => {
    expect(() => buildCandidates([ok, { ...ok, n_tokens: "3" as unknown as number }])).toThrow(
      "candidates: column 'n_tokens' row 1: expected a number, got string \"3\"",
    );
    expect(() => buildCandidates([{ ...ok, text: 7 as unknown as string }])).toThrow("column 'text' row 0: number does not fit Utf8");
  });
  test("null in a non-nullable column", () => {
    expect(() => buildCandidates([{ ...ok, prompt: null as unknown as string }])).toThrow("candidates: column 'prompt' row 0: null in a non-nullable column");
  });
  test("tensor of the wrong size", () => {
    expect(() => buildPixels([{ id: "a", image: png(0), prompt: "p", pixels: new Float32Array(11) }], [3, 2, 2])).toThrow(
      "pixels: column 'pixels' row 0: expected 12 values, got 11",
    );
    expect(() => pixelsFromColumns({ id: ["a"], image: [png(0)], prompt: ["p"], pixels: new Float32Array(13) }, [3, 2, 2])).toThrow(
      "Float32Array length 13 is not a multiple of the list size 12",
    );
  });
  test("columns of different lengths", () => {
    expect(() => candidatesFromColumns({
      id: ["a", "b"], image_id: ["i"], prompt: ["p", "p"], text: ["t", "t"], logp: [0, 0], n_tokens: [1, 1],
    })).toThrow("candidates: column 'image_id' has 1 rows but 'id' has 2");
  });
});
