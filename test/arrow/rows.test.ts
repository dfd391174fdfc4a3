import { describe, expect, test } from "bun:test";
import { buildCandidates, buildPixels, rowById, rowIds, rowIndex, columnTensor } from "../../src/arrow/index.ts";

describe("row access by id", () => {
  const rows = Array.from({ length: 50 }, (_, i) => ({
    id: `c${i}`, image_id: `i${i >> 2}`, prompt: "p", text: `text ${i}`, logp: -i, n_tokens: i % 7,
  }));
  const b = buildCandidates(rows);

  test("every id maps back to its row", () => {
    for (const r of rows) expect(rowById(b, r.id)).toEqual(r);
    expect(rowById(b, "nope")).toBeUndefined();
    expect(rowIndex(b).get("c17")).toBe(17);
    expect(rowIndex(b)).toBe(rowIndex(b)); // cached per batch
    expect(rowIds(b).slice(0, 3)).toEqual(["c0", "c1", "c2"]);
  });

  test("duplicate ids are an error", () => {
    expect(() => rowIndex(b, "image_id")).toThrow("column 'image_id': duplicate id 'i0' at rows 0 and 1");
  });

  test("tensor cells are views of the column", () => {
    const px = buildPixels([
      { id: "a", image: new Uint8Array(1), prompt: "p", pixels: new Float32Array(4).fill(1) },
      { id: "b", image: new Uint8Array(1), prompt: "p", pixels: new Float32Array(4).fill(2) },
    ], [1, 2, 2]);
    const cell = rowById(px, "b")!.pixels as Float32Array;
    expect(Array.from(cell)).toEqual([2, 2, 2, 2]);
    cell[0] = 9;
    expect(columnTensor(px, "pixels").data[4]).toBe(9);
  });
});
