/**
 * `write`: writes every batch to a file (or stdout) and passes it on unchanged, so stages after
 * it (refLogps, dpoTrain) still see the pairs. Formats: Arrow IPC file (`arrow`), Arrow IPC
 * stream (`arrow-stream`), Parquet, JSONL — inferred from the extension when not given.
 * Layouts: `trl` (TRL's vision preference columns `images`, `prompt`, `chosen`, `rejected`;
 * see trl-layout.ts; needs the ImageStore for the image bytes) or `plain` (the batch's columns).
 *
 * Files are written atomically: into a temp file beside the target, fsynced and renamed over it
 * when the flow completes. An error, an unsubscribe or a crash leaves no half-written target.
 * stdout is a stream: batches go out as they come.
 *
 * @example
 * pairs$.pipe(write({ path: "out/pairs.parquet", layout: "trl", store }))
 */
import { extname } from "node:path";
import type { RecordBatch, Schema } from "apache-arrow";
import { pairsSchema } from "../src/arrow/schemas.ts";
import { takeRows } from "../src/arrow/take.ts";
import { operate, perRun, StageError, type FlowOperator } from "../src/flow/index.ts";
import { ArrowIpcWriter, type BatchWriter } from "../src/io/arrow-ipc.ts";
import type { ImageStore } from "../src/io/image-store.ts";
import { JsonlWriter } from "../src/io/jsonl.ts";
import { ParquetBatchWriter, plainColumns, plainParquetSchema } from "../src/io/parquet.ts";
import { defineStage } from "../src/flow/stage.ts";
import { z } from "zod";
import { nonEmpty, type StageServices } from "./services.ts";
import { ConfigError } from "../src/util/errors.ts";

/** File formats `write` supports, and the file extensions they are inferred from. */
export const writeFormats = {
  arrow: [".arrow", ".feather"],
  "arrow-stream": [".arrows"],
  parquet: [".parquet"],
  jsonl: [".jsonl"],
} as const;
export type WriteFormat = keyof typeof writeFormats;
import { trlBatch, trlJson, trlParquetSchema, trlRows, trlSchema, type TrlRow } from "./trl-layout.ts";

export interface WriteStageOptions {
  /** Target file; exactly one of `path` and `stdout`. */
  path?: string | null;
  stdout?: boolean;
  /** Default: from the extension; `arrow-stream` on stdout. */
  format?: WriteFormat | null;
  layout?: "trl" | "plain";
  /** Image bytes for the TRL layout. */
  store?: ImageStore;
  /** Schema of an empty plain output (default: the pairs schema). */
  schema?: Schema;
  /** File descriptor used for `stdout: true` (default 1; tests pass a file's). */
  fd?: number;
  name?: string;
}

export interface WriteResult {
  rows: number;
  path: string | null;
  committed: boolean;
}

/** The format of a path from its extension, or an error naming the known ones. @example formatOf("out/pairs.parquet") // "parquet" */
export function formatOf(path: string): WriteFormat {
  const ext = extname(path).toLowerCase();
  for (const [f, exts] of Object.entries(writeFormats)) if ((exts as readonly string[]).includes(ext)) return f as WriteFormat;
  throw new ConfigError(`cannot tell the format from '${ext || "(no extension)"}'; set format (arrow, arrow-stream, parquet, jsonl)`, { code: "bad option", where: { file: path } });
}

export function write(opts: WriteStageOptions): FlowOperator & { readonly result: WriteResult } {
  const name = opts.name ?? "write";
  const layout = opts.layout ?? "trl";
  const toStdout = opts.stdout ?? false;
  const path = opts.path ?? null;
  const bad = (msg: string) => new ConfigError(msg, { code: "bad option", where: { stage: name } });
  if ((path === null) === !toStdout) throw bad("give exactly one of path and stdout: true");
  const format: WriteFormat = opts.format ?? (path ? formatOf(path) : "arrow-stream");
  if (toStdout && format === "parquet") throw bad("parquet cannot be streamed to stdout (it ends with its footer); use arrow-stream or jsonl");
  if (layout === "trl" && !opts.store) throw bad("layout trl needs the image store (the image bytes)");
  const target = path !== null ? { path } : { fd: opts.fd ?? 1 };
  const runResult = perRun<WriteResult>(() => ({ rows: 0, path, committed: false }));

  const open = (schema: Schema): BatchWriter => {
    switch (format) {
      case "arrow":
      case "arrow-stream":
        return new ArrowIpcWriter({ ...target, format: format === "arrow" ? "file" : "stream", schema });
      case "parquet":
        return new ParquetBatchWriter(path!, layout === "trl" ? trlParquetSchema : plainParquetSchema(schema), plainColumns);
      case "jsonl":
        return new JsonlWriter(target, (b) => jsonRows(b));
    }
  };

  const op = operate({ name }, () => {
    const result = runResult.start();
    let writer: BatchWriter | null = null;
    let done = false;
    const writeTrl = (w: BatchWriter, rows: TrlRow[]): void => {
      if (w instanceof ParquetBatchWriter) {
        w.writeColumns({ images: rows.map((r) => r.images), prompt: rows.map((r) => r.prompt), chosen: rows.map((r) => r.chosen), rejected: rows.map((r) => r.rejected) }, rows.length);
      } else if (w instanceof JsonlWriter) w.writeRows(rows.map(trlJson));
      else w.write(trlBatch(rows));
    };
    // An I/O failure is not a bad row: the file may hold part of the batch, so the flow stops
    // (a StageError fails the flow even under onError: skip) and teardown removes the temp file.
    const io = <T>(what: () => T): T => {
      try {
        return what();
      } catch (e) {
        throw StageError.wrap(name, new Error(`${path ?? "stdout"}: ${(e as Error).message}`));
      }
    };
    return {
      process(fb, scope) {
        const batch = fb.batch;
        if (layout === "plain") {
          const w = (writer ??= io(() => open(batch.schema)));
          io(() => w.write(batch));
          result.rows = w.rows;
          return batch;
        }
        const { rows, kept } = trlRows(batch, opts.store!, scope);
        const w = (writer ??= io(() => open(trlSchema)));
        if (rows.length > 0) io(() => writeTrl(w, rows));
        result.rows = w.rows;
        return kept.length === batch.numRows ? batch : kept.length === 0 ? null : takeRows(batch, kept);
      },
      flush() {
        const w = (writer ??= io(() => open(layout === "trl" ? trlSchema : (opts.schema ?? pairsSchema))));
        io(() => w.commit());
        done = true;
        result.committed = path !== null;
      },
      teardown() {
        if (!done) writer?.abort();
      },
    };
  });
  return Object.assign(op, { result: runResult.view });
}

/** A plain batch's rows as JSON objects (binary as base64, float lists as arrays). */
function jsonRows(batch: RecordBatch): unknown[] {
  const cols = plainColumns(batch);
  const names = Object.keys(cols);
  return Array.from({ length: batch.numRows }, (_, i) => {
    const o: Record<string, unknown> = {};
    for (const n of names) {
      const v = cols[n]![i];
      o[n] = v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") : v;
    }
    return o;
  });
}

/**
 * Pipeline options of `write`: exactly one of `path` (relative to the output folder) and
 * `stdout: true`; `format` defaults from the file extension (`arrow-stream` on stdout). Layout
 * `trl` follows Hugging Face TRL's vision preference datasets; `plain` keeps the columns.
 */
export const writeOptions = z.strictObject({
  path: nonEmpty().nullable().default(null),
  stdout: z.boolean().default(false),
  format: z.enum(Object.keys(writeFormats) as [WriteFormat, ...WriteFormat[]]).nullable().default(null),
  layout: z.enum(["trl", "plain"]).default("trl"),
});

/** The `write` stage definition (passes batches through; commits the file at the end). */
export const writeStage = defineStage<typeof writeOptions, StageServices>({
  name: "write",
  role: "operator",
  optionsSchema: writeOptions,
  outputPaths: ["path"],
  create: (o, s) => write({ path: o.path, stdout: o.stdout, format: o.format, layout: o.layout, store: s.services.images(), name: s.name }),
  // rows written, the file, and whether it was committed (a failed or interrupted run leaves none)
  report: (inst) => ({ ...(inst as ReturnType<typeof write>).result }),
});
