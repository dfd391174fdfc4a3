import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, type SchemaElement } from "hyparquet";
import { ParquetBatchWriter, plainColumns, readParquetImages } from "../../src/io/parquet.ts";
import { trlBatch, trlFeatures, trlParquetSchema, trlSchema, type TrlRow } from "../../operators/trl-layout.ts";
import { png } from "../operators/fixtures.ts";

const dir = mkdtempSync(join(tmpdir(), "clipflow-parquet-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A type tree both sides reduce to: what `datasets` compares (name, nullability, nested types). */
interface Node {
  name: string;
  nullable: boolean;
  type: string;
  children?: Node[];
}

/**
 * What `datasets.Features(...).arrow_schema` is for a features JSON, written from datasets'
 * documented rules: every field nullable, `[f]` a list of f, a dict a struct in key order,
 * Value(string) utf8, Image the struct {bytes: binary, path: string}.
 */
function featureNode(name: string, f: unknown): Node {
  if (Array.isArray(f)) return { name, nullable: true, type: "list", children: [featureNode("item", f[0])] };
  const o = f as Record<string, unknown>;
  if (o._type === "Image") return { name, nullable: true, type: "struct", children: [featureNode("bytes", { _type: "Value", dtype: "binary" }), featureNode("path", { _type: "Value", dtype: "string" })] };
  if (o._type === "Value") return { name, nullable: true, type: String(o.dtype) };
  return { name, nullable: true, type: "struct", children: Object.entries(o).map(([k, v]) => featureNode(k, v)) };
}

/** The Arrow field tree pyarrow derives from a Parquet schema (3-level LIST, UTF8 strings). */
function parquetNodes(schema: SchemaElement[]): Node[] {
  let i = 1;
  const read = (): Node => {
    const e = schema[i++]!;
    const nullable = e.repetition_type === "OPTIONAL";
    if (e.converted_type === "LIST") {
      const rep = schema[i++]!; // the repeated `list` group
      expect(rep.repetition_type).toBe("REPEATED");
      const item = read();
      return { name: e.name, nullable, type: "list", children: [{ ...item, name: "item" }] };
    }
    if (e.num_children) return { name: e.name, nullable, type: "struct", children: Array.from({ length: e.num_children }, read) };
    return { name: e.name, nullable, type: e.converted_type === "UTF8" ? "string" : e.type === "BYTE_ARRAY" ? "binary" : String(e.type) };
  };
  const out: Node[] = [];
  while (i < schema.length) out.push(read());
  return out;
}

async function trlRow(path: string, r: number, q: string): Promise<TrlRow> {
  return {
    images: [{ bytes: await png(r, 0, 0, 8), path }],
    prompt: [{ role: "user", content: [{ type: "image", text: null }, { type: "text", text: q }] }],
    chosen: [{ role: "assistant", content: [{ type: "text", text: `yes ${q}` }] }],
    rejected: [{ role: "assistant", content: [{ type: "text", text: `no ${q}` }] }],
  };
}

describe("TRL layout as datasets reads it", () => {
  // One-off second reader (not in CI, Python stays out of the product): datasets 5.0.1 with
  // pyarrow 25 loads a file written exactly like this one with
  // `load_dataset("parquet", data_files=…)` as `images: List(Image())`, rows decoded to PIL images.
  test("Parquet footer carries the huggingface features and every field matches their nullable Arrow form", async () => {
    const p = join(dir, "trl.parquet");
    const rows = [await trlRow("i1", 200, "Q1"), await trlRow("i2", 10, "Q2")];
    const w = new ParquetBatchWriter(p, trlParquetSchema, plainColumns);
    w.writeColumns({ images: rows.map((r) => r.images), prompt: rows.map((r) => r.prompt), chosen: rows.map((r) => r.chosen), rejected: rows.map((r) => r.rejected) }, 2);
    w.commit();
    const file = await asyncBufferFromFile(p);
    const meta = await parquetMetadataAsync(file);
    const hf = meta.key_value_metadata?.find((kv) => kv.key === "huggingface");
    expect(hf).toBeDefined();
    const features = JSON.parse(hf!.value!).info.features;
    expect(Object.keys(features)).toEqual(["images", "prompt", "chosen", "rejected"]);
    expect(features.images).toEqual([{ _type: "Image" }]);
    // datasets keeps a column's metadata feature only if its Arrow field equals the file's field.
    const want = Object.entries(features).map(([k, v]) => featureNode(k, v));
    expect(parquetNodes(meta.schema)).toEqual(want);
    // the values round-trip
    const back = (await parquetReadObjects({ file, utf8: true })) as { images: { bytes: Uint8Array; path: string }[]; chosen: unknown }[];
    expect(back.length).toBe(2);
    expect(back[1]!.images[0]!.path).toBe("i2");
    const raw = (await parquetReadObjects({ file, columns: ["images"], utf8: false })) as { images: { bytes: Uint8Array }[] }[];
    expect(Buffer.from(raw[1]!.images[0]!.bytes).equals(Buffer.from(rows[1]!.images[0]!.bytes))).toBe(true);
    expect(back[0]!.chosen).toEqual([{ role: "assistant", content: [{ type: "text", text: "yes Q1" }] }]);
  });

  test("the Arrow layout has the same features in its schema metadata and nullable fields", async () => {
    expect(JSON.parse(trlSchema.metadata.get("huggingface")!).info.features).toEqual(trlFeatures);
    const nullable = (f: { nullable: boolean; type: { children?: { nullable: boolean; type: unknown }[] } }): boolean =>
      f.nullable && (f.type.children ?? []).every((c) => nullable(c as never));
    for (const f of trlSchema.fields) expect(nullable(f as never)).toBe(true);
    const b = trlBatch([await trlRow("i1", 1, "Q")]);
    expect(b.numRows).toBe(1);
    expect(b.schema.metadata.get("huggingface")).toBe(trlSchema.metadata.get("huggingface"));
  });
});

describe("Parquet images source", () => {
  const str = (name: string, rep: "REQUIRED" | "OPTIONAL" = "REQUIRED"): SchemaElement => ({ name, repetition_type: rep, type: "BYTE_ARRAY", converted_type: "UTF8" });
  /** A file shaped like `Dataset.to_parquet`'s: id, image {bytes, path} (an Image feature), prompt. */
  function writeHfImages(p: string, ids: string[], images: { bytes: Uint8Array | null; path: string | null }[]): void {
    const schema: SchemaElement[] = [
      { name: "root", num_children: 3 },
      str("id", "OPTIONAL"),
      { name: "image", repetition_type: "OPTIONAL", num_children: 2 },
      { name: "bytes", repetition_type: "OPTIONAL", type: "BYTE_ARRAY" },
      str("path", "OPTIONAL"),
      str("prompt", "OPTIONAL"),
    ];
    const w = new ParquetBatchWriter(p, schema, () => ({}));
    w.writeColumns({ id: ids, image: images, prompt: ids.map(() => "Describe.") }, ids.length);
    w.commit();
  }
  async function readAll(p: string) {
    const bad: [string, string][] = [];
    const out: { id: string; image: Uint8Array }[] = [];
    for await (const b of readParquetImages(p, { batchSize: 2, onBadRow: (id, r) => void bad.push([id, r]) })) {
      for (let i = 0; i < b.numRows; i++) out.push({ id: b.getChild("id")!.get(i) as string, image: b.getChild("image")!.get(i) as Uint8Array });
    }
    return { out, bad };
  }

  test("a datasets Image column stored by path reads the file beside the Parquet file; bad paths dead-lettered with the row id", async () => {
    const d = join(dir, "by-path");
    mkdirSync(join(d, "imgs"), { recursive: true });
    const a = await png(10, 20, 30), b = await png(40, 50, 60);
    writeFileSync(join(d, "imgs", "a.png"), a);
    writeFileSync(join(d, "b.png"), b);
    writeFileSync(join(d, "empty.png"), new Uint8Array(0));
    const embedded = await png(1, 2, 3);
    const p = join(d, "train.parquet");
    writeHfImages(p, ["a", "b", "c", "up", "missing", "none", "empty"], [
      { bytes: null, path: "imgs/a.png" },
      { bytes: null, path: join(d, "b.png") }, // absolute: taken as is
      { bytes: embedded, path: "ignored.png" }, // embedded bytes win over the path
      { bytes: null, path: "../secret.png" },
      { bytes: null, path: "imgs/nope.png" },
      { bytes: null, path: null },
      { bytes: null, path: "empty.png" },
    ]);
    const { out, bad } = await readAll(p);
    expect(out.map((r) => r.id)).toEqual(["a", "b", "c"]);
    expect(Buffer.from(out[0]!.image).equals(Buffer.from(a))).toBe(true);
    expect(Buffer.from(out[1]!.image).equals(Buffer.from(b))).toBe(true);
    expect(Buffer.from(out[2]!.image).equals(Buffer.from(embedded))).toBe(true);
    expect(bad).toEqual([
      ["up", `${p}#3: image path '../secret.png' leaves the folder ${d}`],
      ["missing", `${p}#4: image 'imgs/nope.png' cannot be read (ENOENT)`],
      ["none", `${p}#5: image has neither bytes nor a path`],
      ["empty", `${p}#6: image 'empty.png' is empty`],
    ]);
  });

  test("an image column of plain path strings reads the files too", async () => {
    const d = join(dir, "path-strings");
    mkdirSync(d, { recursive: true });
    const a = await png(5, 6, 7);
    writeFileSync(join(d, "a.png"), a);
    const p = join(d, "t.parquet");
    const w = new ParquetBatchWriter(p, [{ name: "root", num_children: 3 }, str("id"), str("image"), str("prompt")], () => ({}));
    w.writeColumns({ id: ["a", "b"], image: ["a.png", "b.png"], prompt: ["Q", "Q"] }, 2);
    w.commit();
    const { out, bad } = await readAll(p);
    expect(out.map((r) => r.id)).toEqual(["a"]);
    expect(Buffer.from(out[0]!.image).equals(Buffer.from(a))).toBe(true);
    expect(bad).toEqual([["b", `${p}#1: image 'b.png' cannot be read (ENOENT)`]]);
  });

  test("a corrupt page names the file and rows; a file that is not Parquet names the file", async () => {
    const p = join(dir, "corrupt.parquet");
    const imgs = await Promise.all([0, 1, 2].map((k) => png(k * 80, 0, 0)));
    writeHfImages(p, ["x", "y", "z"], imgs.map((bytes) => ({ bytes, path: null })));
    const buf = new Uint8Array(readFileSync(p));
    buf.fill(0xee, 4, 40); // the first page header sits right after the 4-byte magic
    writeFileSync(p, buf);
    await expect(readAll(p)).rejects.toThrow(`${p}: rows 0-2 cannot be decoded, the file is corrupt (`);
    const junk = join(dir, "junk.parquet");
    writeFileSync(junk, "PAR1 but nothing else");
    await expect(readAll(junk)).rejects.toThrow(`${junk}: not a readable Parquet file`);
  });
});
