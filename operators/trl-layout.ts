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
import type { ParquetLayout } from "../src/io/parquet.ts";

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

// Every field is nullable, as `datasets` writes them: `datasets.Features.from_arrow_schema` takes
// a column's feature from the `huggingface` metadata only when the metadata's own Arrow field
// (always nullable) equals the file's field, so a required field turns `images` back into plain
// `{bytes, path}` dicts instead of Image features.
const utf8 = (n: string) => new Field(n, new Utf8(), true);
const listOf = (name: string, item: Field[]) => new Field(name, new List(new Field("item", new Struct(item), true)), true);
const messages = (name: string) => listOf(name, [utf8("role"), listOf("content", [utf8("type"), utf8("text")])]);

/**
 * The `datasets` Features of the TRL layout for the `huggingface` schema metadata, in the
 * list-literal form (`[feature]`) that datasets 2.x/3.x and 4.x/5.x all read (datasets 4's
 * `{"_type": "List"}` spelling fails in 3.x; its `Sequence` of a struct is a struct of lists).
 * Field order matches the Arrow and Parquet schemas below.
 */
const value = { dtype: "string", _type: "Value" };
const messageFeature = [{ role: value, content: [{ type: value, text: value }] }];
export const trlFeatures = {
  images: [{ _type: "Image" }],
  prompt: messageFeature,
  chosen: messageFeature,
  rejected: messageFeature,
};
/** The `huggingface` key-value metadata entry (Arrow schema metadata and Parquet footer). */
export const trlHuggingfaceMetadata = { key: "huggingface", value: JSON.stringify({ info: { features: trlFeatures } }) };

/** Arrow schema of the TRL layout (nullable fields and the `huggingface` features metadata). */
export const trlSchema = new Schema(
  [listOf("images", [new Field("bytes", new Binary(), true), utf8("path")]), messages("prompt"), messages("chosen"), messages("rejected")],
  new Map([[trlHuggingfaceMetadata.key, trlHuggingfaceMetadata.value]]),
);

const list = (name: string, children: SchemaElement[], n: number): SchemaElement[] => [
  { name, repetition_type: "OPTIONAL", num_children: 1, converted_type: "LIST" },
  { name: "list", repetition_type: "REPEATED", num_children: 1 },
  { name: "element", repetition_type: "OPTIONAL", num_children: n },
  ...children,
];
const str = (name: string): SchemaElement => ({ name, repetition_type: "OPTIONAL", type: "BYTE_ARRAY", converted_type: "UTF8" });
const msgParquet = (name: string): SchemaElement[] => list(name, [str("role"), ...list("content", [str("type"), str("text")], 2)], 2);

/**
 * Parquet layout of the TRL columns: nested lists of structs with every level OPTIONAL and the
 * `huggingface` features in the footer's key-value metadata, as `Dataset.to_parquet` writes them,
 * so `datasets.load_dataset("parquet", …)` gives `images` as a list of Image features.
 */
export const trlParquetSchema: ParquetLayout = {
  elements: [
    { name: "root", num_children: 4 },
    ...list("images", [{ name: "bytes", repetition_type: "OPTIONAL", type: "BYTE_ARRAY" }, str("path")], 2),
    ...msgParquet("prompt"),
    ...msgParquet("chosen"),
    ...msgParquet("rejected"),
  ],
  kvMetadata: [trlHuggingfaceMetadata],
};

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
