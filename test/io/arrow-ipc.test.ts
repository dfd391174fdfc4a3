/**
 * checkArrowBatch: the buffer checks that keep a corrupt IPC file from sending Arrow JS into a
 * huge allocation or an endless loop (fuzzing found both; test/fuzz/fuzz.test.ts replays them).
 */
import { describe, expect, test } from "bun:test";
import { Binary, Field, Float32, makeData, RecordBatch, Schema, Struct, Utf8 } from "apache-arrow";
import { checkArrowBatch } from "../../src/io/arrow-ipc.ts";

function batchOf(field: Field, data: ReturnType<typeof makeData>): RecordBatch {
  const schema = new Schema([field]);
  return new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: data.length, children: [data] }));
}

describe("checkArrowBatch", () => {
  test("a well-formed batch passes", () => {
    const utf8 = makeData({ type: new Utf8(), length: 2, valueOffsets: Int32Array.of(0, 1, 3), data: new TextEncoder().encode("abc") });
    expect(() => checkArrowBatch(batchOf(new Field("s", new Utf8()), utf8), "ok")).not.toThrow();
    const f32 = makeData({ type: new Float32(), length: 3, data: Float32Array.of(1, 2, 3) });
    expect(() => checkArrowBatch(batchOf(new Field("x", new Float32()), f32), "ok")).not.toThrow();
  });

  test("declared lengths beyond the buffers are errors naming the column", () => {
    // 5 rows declared over 2 offsets' worth of strings
    const utf8 = makeData({ type: new Utf8(), length: 5, valueOffsets: Int32Array.of(0, 1, 3), data: new TextEncoder().encode("abc") });
    expect(() => checkArrowBatch(batchOf(new Field("s", new Utf8()), utf8), "f.arrow: record batch 0")).toThrow("f.arrow: record batch 0: column 's': 5 rows but 3 value offsets");
    // offsets pointing past the value bytes
    const far = makeData({ type: new Binary(), length: 2, valueOffsets: Int32Array.of(0, 1, 900), data: Uint8Array.of(1, 2, 3) });
    expect(() => checkArrowBatch(batchOf(new Field("b", new Binary()), far), "w")).toThrow("w: column 'b': value offsets reach 900 but only 3 values are present");
    // decreasing offsets
    const down = makeData({ type: new Utf8(), length: 2, valueOffsets: Int32Array.of(0, 3, 1), data: new TextEncoder().encode("abc") });
    expect(() => checkArrowBatch(batchOf(new Field("s", new Utf8()), down), "w")).toThrow("w: column 's': value offsets decrease at row 1");
    // fixed width: 4 floats declared, 2 present
    const f32 = makeData({ type: new Float32(), length: 4, data: Float32Array.of(1, 2) });
    expect(() => checkArrowBatch(batchOf(new Field("x", new Float32()), f32), "w")).toThrow("w: column 'x': 4 rows of Float32 need 4 values, 2 present");
  });
});
