/**
 * The TRL layout of preference pairs: Hugging Face TRL's vision preference datasets (e.g.
 * HuggingFaceH4/rlaif-v_formatted, used by TRL's DPO vision examples):
 *
 * ```
 * images:   [{ bytes, path }]                                   (a list with the one image)
 * prompt:   [{ role: "user", content: [{ type: "image" }, { type: "text", text: Q }] }]
 * chosen:   [{ role: "assistant", content: [{ type: "text", text: A+ }] }]
 * rejected: [{ role: "assistant", content: [{ type: "text", text: A- }] }]
 * ```
 * `images` items are the `datasets.Image` feature's storage form (`bytes`, `path`); `path` holds
 * the image id. In JSONL, `bytes` is base64 (JSON has no binary). Image bytes come from the
 * flow's ImageStore (`decode` put them there); a pair whose image is gone is a bad row.
 */
import { Binary, Field, List, Schema, Struct, Utf8, type RecordBatch } from "apache-arrow";
import type { SchemaElement } from "hyparquet";
import { batchFromColumns } from "../src/arrow/build.ts";
import type { BatchScope } from "../src/flow/index.ts";
import type { ImageStore } from "../src/io/image-store.ts";

export interface TrlContent {
  type: "image" | "text";
  text: string | null;
}
export interface TrlMessage {
  role: "user" | "assistant";
  content: TrlContent[];
}
export interface TrlRow {
  images: { bytes: Uint8Array; path: string }[];
  prompt: TrlMessage[];
  chosen: TrlMessage[];
  rejected: TrlMessage[];
}

const utf8 = (n: string, nullable = false) => new Field(n, new Utf8(), nullable);
const messages = (name: string) =>
  new Field(
    name,
    new List(
      new Field(
        "item",
        new Struct([utf8("role"), new Field("content", new List(new Field("item", new Struct([utf8("type"), utf8("text", true)]), false)), false)]),
        false,
      ),
    ),
    false,
  );

/** Arrow schema of the TRL layout. */
export const trlSchema = new Schema([
  new Field("images", new List(new Field("item", new Struct([new Field("bytes", new Binary(), false), utf8("path")]), false)), false),
  messages("prompt"),
  messages("chosen"),
  messages("rejected"),
]);

const list = (name: string, children: SchemaElement[], n: number): SchemaElement[] => [
  { name, repetition_type: "REQUIRED", num_children: 1, converted_type: "LIST" },
  { name: "list", repetition_type: "REPEATED", num_children: 1 },
  { name: "element", repetition_type: "REQUIRED", num_children: n },
  ...children,
];
const str = (name: string, optional = false): SchemaElement => ({ name, repetition_type: optional ? "OPTIONAL" : "REQUIRED", type: "BYTE_ARRAY", converted_type: "UTF8" });
const msgParquet = (name: string): SchemaElement[] => list(name, [str("role"), ...list("content", [str("type"), str("text", true)], 2)], 2);

/** Parquet schema of the TRL layout (nested lists of structs, as `datasets` writes them). */
export const trlParquetSchema: SchemaElement[] = [
  { name: "root", num_children: 4 },
  ...list("images", [{ name: "bytes", repetition_type: "REQUIRED", type: "BYTE_ARRAY" }, str("path")], 2),
  ...msgParquet("prompt"),
  ...msgParquet("chosen"),
  ...msgParquet("rejected"),
];

const text = (t: string): TrlContent => ({ type: "text", text: t });

/** TRL rows of a `pairs` batch; rows whose image bytes are not in the store are rejected. */
export function trlRows(batch: RecordBatch, store: ImageStore, scope: BatchScope): { rows: TrlRow[]; kept: number[] } {
  const col = (c: string) => {
    const v = batch.getChild(c);
    if (!v) throw new Error(`layout trl needs a '${c}' column (pairs schema)`);
    return v;
  };
  const id = col("image_id"), prompt = col("prompt"), chosen = col("chosen"), rejected = col("rejected");
  const rows: TrlRow[] = [];
  const kept: number[] = [];
  for (let i = 0; i < batch.numRows; i++) {
    const imageId = String(id.get(i));
    const img = store.get(imageId);
    if (!img) {
      scope.reject(i, `image '${imageId}' bytes are not in the image store (evicted: raise its capacity)`);
      continue;
    }
    kept.push(i);
    rows.push({
      images: [{ bytes: img.bytes, path: imageId }],
      prompt: [{ role: "user", content: [{ type: "image", text: null }, text(String(prompt.get(i)))] }],
      chosen: [{ role: "assistant", content: [text(String(chosen.get(i)))] }],
      rejected: [{ role: "assistant", content: [text(String(rejected.get(i)))] }],
    });
  }
  return { rows, kept };
}

/** TRL rows as an Arrow batch of `trlSchema`. */
export function trlBatch(rows: readonly TrlRow[]): RecordBatch {
  return batchFromColumns(trlSchema, {
    images: rows.map((r) => r.images),
    prompt: rows.map((r) => r.prompt),
    chosen: rows.map((r) => r.chosen),
    rejected: rows.map((r) => r.rejected),
  }, "trl");
}

/** A TRL row as a JSON object (image bytes base64; the image content item has no `text`). */
export function trlJson(r: TrlRow): unknown {
  const msg = (m: TrlMessage[]) => m.map((x) => ({ role: x.role, content: x.content.map((c) => (c.type === "image" ? { type: "image" } : c)) }));
  return {
    images: r.images.map((x) => ({ bytes: Buffer.from(x.bytes.buffer, x.bytes.byteOffset, x.bytes.byteLength).toString("base64"), path: x.path })),
    prompt: msg(r.prompt),
    chosen: msg(r.chosen),
    rejected: msg(r.rejected),
  };
}
