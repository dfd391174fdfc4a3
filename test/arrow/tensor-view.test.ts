import { describe, expect, test } from "bun:test";
import { Table, makeVector } from "apache-arrow";
import {
  buildPixels,
  columnTensor,
  float32ToColumn,
  float32View,
  pixelsFromColumns,
  tensorToColumn,
} from "../../src/arrow/index.ts";
import { columnOrt } from "../../src/graph/ort-view.ts";
import { onnx } from "onnx-proto";
import { createSession, fromOrt, runSession } from "../../src/graph/runtime.ts";

const shape = [3, 2, 2] as const; // C, H, W
const n = 4;
function pixelsBatch() {
  const data = Float32Array.from({ length: n * 12 }, (_, i) => i / 10);
  const b = pixelsFromColumns({
    id: ["a", "b", "c", "d"], image: Array.from({ length: n }, () => new Uint8Array([1])), prompt: ["p", "p", "p", "p"], pixels: data,
  }, shape);
  return { b, data };
}

describe("column <-> Float32Array <-> ORT tensor share memory", () => {
  test("from-columns keeps the caller's Float32Array as the column buffer", () => {
    const { b, data } = pixelsBatch();
    const t = columnTensor(b, "pixels");
    expect(t.data).toBe(data);
    expect(t.dims).toEqual([4, 3, 2, 2]);
    expect(t.copied).toBe(false);
  });

  test("write through the ORT tensor, read through the Arrow column (and back)", () => {
    const { b } = pixelsBatch();
    const ort = columnOrt(b, "pixels");
    expect(ort.type).toBe("float32");
    expect([...ort.dims]).toEqual([4, 3, 2, 2]);
    const od = ort.data as Float32Array;
    od[13] = 42.5; // row 1, element 1
    const cell = b.getChild("pixels")!.get(1)!; // Arrow's own accessor
    expect(cell.get(1)).toBe(42.5);
    // Arrow-side write (through the typed view of the column) shows up in the ORT tensor.
    columnTensor(b, "pixels").data[47] = -7;
    expect(od[47]).toBe(-7);
    expect(fromOrt(ort).data).toBe(od);
    expect(od.buffer).toBe(columnTensor(b, "pixels").data.buffer);
  });

  test("ORT-style output -> column without copy", () => {
    const out = new Float32Array(6 * 8); // [6, 8] embeddings
    const col = tensorToColumn({ dtype: "float32", dims: [6, 8], data: out });
    expect(col.length).toBe(6);
    out[8 * 5 + 7] = 3;
    expect(col.get(5)!.get(7)).toBe(3);
    expect(float32View(col).data).toBe(out);
  });

  test("a sliced batch views its own rows of the same buffer", () => {
    const { b, data } = pixelsBatch();
    const s = b.slice(1, 3); // rows 1, 2
    const t = columnTensor(s, "pixels");
    expect(t.dims).toEqual([2, 3, 2, 2]);
    expect(t.data.length).toBe(24);
    expect(t.data[0]).toBe(data[12]!);
    t.data[0] = 99;
    expect(data[12]).toBe(99);
    expect(t.data.buffer).toBe(data.buffer);
  });

  test("multi-chunk columns: error by default, explicit copy on request", () => {
    const { b } = pixelsBatch();
    const { b: b2 } = pixelsBatch();
    const table = new Table([b, b2]);
    const col = table.getChild("pixels")!;
    expect(col.data.length).toBe(2);
    expect(() => float32View(col, { name: "pixels" })).toThrow("column 'pixels' has 2 chunks");
    const v = float32View(col, { allowCopy: true, rowShape: [3, 2, 2] });
    expect(v.copied).toBe(true);
    expect(v.dims).toEqual([8, 3, 2, 2]);
    expect(v.data[12 * 4 + 5]).toBeCloseTo(0.5, 6);
    v.data[0] = 1234; // the copy is not the column
    expect(columnTensor(b, "pixels").data[0]).toBe(0);
  });

  test("shape errors and wrong types", () => {
    const { b } = pixelsBatch();
    expect(() => columnTensor(b, "pixels", { rowShape: [5, 2] })).toThrow("row shape [5,2] does not match list size 12");
    expect(() => columnTensor(b, "id")).toThrow("column 'id' is Utf8, expected FixedSizeList<Float32>");
    expect(() => columnTensor(b, "nope")).toThrow("batch has no column 'nope'");
    expect(() => float32ToColumn(new Float32Array(10), [3])).toThrow("does not split into rows of [3]");
  });

  test("rows-built tensor column matches per-row values", () => {
    const rows = Array.from({ length: 3 }, (_, r) => ({
      id: `r${r}`, image: new Uint8Array(1), prompt: "p", pixels: Float32Array.from({ length: 12 }, (_, i) => r * 100 + i),
    }));
    const t = columnTensor(buildPixels(rows, shape), "pixels");
    for (let r = 0; r < 3; r++) expect(Array.from(t.data.subarray(r * 12, r * 12 + 12))).toEqual(Array.from(rows[r]!.pixels));
    expect(makeVector(t.data).length).toBe(36);
  });
});

describe("ORT reads and writes the viewed memory", () => {
  // y = x * 2 over [rows, 12], a hand-built ONNX model (independent of src/graph).
  function doubleModel(): Uint8Array {
    const vi = (name: string) =>
      onnx.ValueInfoProto.create({
        name,
        type: onnx.TypeProto.create({
          tensorType: onnx.TypeProto.Tensor.create({
            elemType: onnx.TensorProto.DataType.FLOAT,
            shape: onnx.TensorShapeProto.create({ dim: [{ dimParam: "rows" }, { dimValue: 12 }] }),
          }),
        }),
      });
    const two = onnx.TensorProto.create({ name: "two", dataType: onnx.TensorProto.DataType.FLOAT, dims: [], floatData: [2] });
    const graph = onnx.GraphProto.create({
      name: "double",
      node: [onnx.NodeProto.create({ opType: "Mul", input: ["x", "two"], output: ["y"] })],
      initializer: [two],
      input: [vi("x")],
      output: [vi("y")],
    });
    const model = onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: "", version: 17 }], graph });
    return onnx.ModelProto.encode(model).finish();
  }

  test("a sliced column (non-zero byteOffset) feeds ORT; its output becomes a column without copying", async () => {
    const { b, data } = pixelsBatch();
    const s = b.slice(1, 3); // rows 1..2: the view starts 48 bytes into the buffer
    const x = columnTensor(s, "pixels", { rowShape: [12] });
    expect(x.data.byteOffset).toBe(12 * 4);
    const session = await createSession(doubleModel());
    const out = await runSession(session, { x });
    const y = out.y!;
    expect(y.dims).toEqual([2, 12]);
    for (let i = 0; i < 24; i++) expect(y.data[i]).toBeCloseTo(2 * data[12 + i]!, 6);
    const col = tensorToColumn(y);
    expect(float32View(col).data).toBe(y.data as Float32Array);
  });
});
